mod helpers;

mod abuse;
mod api;
mod bad_input;
mod cli;
mod forward_auth;
mod instances;
mod logs;
mod mailbox;
mod metrics;
mod migrations;
mod pages;
mod password;
mod pg;
mod proxies;
mod shutdown;
mod smoke;
