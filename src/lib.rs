//! Keyward: a self-hosted API-key portal and guard (docs/architecture.md).
//!
//! `web`/`api` handlers → domain modules (`accounts`, `keys`) → `db`.
//!
//! Without the default `portal` feature the crate is the guard alone: the
//! key verifier (`keys`), the `api::ApiKey` extractor and `api::RequireScope`,
//! and the database (`db`), for a service that checks keys that a Keyward
//! portal hands out (examples/protect_routes.rs).

pub mod api;
pub mod db;
pub mod files;
pub mod keys;
pub mod metrics;
pub mod net;
pub mod time;

#[cfg(feature = "portal")]
pub mod accounts;
#[cfg(feature = "portal")]
pub mod activity;
#[cfg(feature = "portal")]
pub mod config;
#[cfg(feature = "portal")]
pub mod headers;
#[cfg(feature = "portal")]
pub mod leaks;
#[cfg(feature = "portal")]
pub mod mail;
#[cfg(feature = "portal")]
pub mod notices;
#[cfg(feature = "portal")]
pub mod operators;
#[cfg(feature = "portal")]
pub mod startup;
#[cfg(feature = "portal")]
pub mod state;
#[cfg(feature = "portal")]
pub mod telemetry;
#[cfg(feature = "portal")]
pub mod web;
