//! What every handler can reach.

use std::sync::Arc;

use crate::accounts::throttle::{LoginThrottle, RateLimit};
use crate::config::Settings;
use crate::db::Pool;
use crate::keys::Verifier;
use crate::mail::Mailer;

pub struct AppState {
    pub pool: Pool,
    pub settings: Arc<Settings>,
    pub verifier: Arc<Verifier>,
    /// Every scope a key may carry, built-ins first.
    pub scopes: Vec<String>,
    pub mailer: Arc<Mailer>,
    /// Failed logins per username.
    pub login_throttle: LoginThrottle,
    /// Failed logins per client address (a looser limit).
    pub login_throttle_by_address: LoginThrottle,
    /// Reset requests per account (silently dropped beyond the limit).
    pub reset_per_account: RateLimit,
    /// Reset requests per client address (429 beyond the limit).
    pub reset_per_address: RateLimit,
}
