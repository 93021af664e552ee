//! The API side of Keyward (docs/http.md).
//!
//! `guard` is the library part: the `ApiKey` extractor and `RequireScope`,
//! which any actix-web service can use with a `keys::Verifier`. The rest
//! (the JSON routes, forward auth, leak reports, the OpenAPI document)
//! belongs to the portal and is built with the `portal` feature.

pub mod guard;

#[cfg(feature = "portal")]
pub mod forward_auth;
#[cfg(feature = "portal")]
pub mod leaks;
#[cfg(feature = "portal")]
pub mod openapi;
#[cfg(feature = "portal")]
pub(crate) mod routes;

pub use guard::{ApiError, ApiKey, RequireScope};
#[cfg(feature = "portal")]
pub use routes::*;
