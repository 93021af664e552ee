mod helpers;

mod smoke;
