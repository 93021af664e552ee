//! Keyward: a self-hosted API-key portal and guard.
//!
//! `web`/`api` handlers → domain modules (`accounts`, `keys`) → `db`.

pub mod accounts;
pub mod activity;
pub mod api;
pub mod config;
pub mod db;
pub mod files;
pub mod headers;
pub mod keys;
pub mod leaks;
pub mod mail;
pub mod metrics;
pub mod net;
pub mod notices;
pub mod operators;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod time;
pub mod web;
