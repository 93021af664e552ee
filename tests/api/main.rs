mod helpers;

mod api;
mod bad_input;
mod logs;
mod mailbox;
mod pages;
mod password;
mod smoke;
