//! What every handler can reach.

use std::sync::Arc;

use actix_web::cookie::Key;

use crate::accounts::throttle::{LoginLimits, LoginThrottle, RateLimit};
use crate::config::Settings;
use crate::db::Pool;
use crate::keys::Verifier;
use crate::mail::Mailer;

pub struct AppState {
    pub pool: Pool,
    /// What lock-outs, rate limits and idle sessions are timed by; tests
    /// move it forward instead of sleeping.
    pub clock: crate::time::Clock,
    pub settings: Arc<Settings>,
    pub verifier: Arc<Verifier>,
    /// Every scope a key may carry, built-ins first.
    pub scopes: Vec<String>,
    pub mailer: Arc<Mailer>,
    /// Failed logins, per (username, address), address, username and
    /// known device (docs/login-throttling.md).
    pub login_limits: LoginLimits,
    /// Wrong current passwords given by a logged-in user, per user.
    pub reauth_throttle: LoginThrottle,
    /// Registrations per client address (429 beyond the limit).
    pub register_per_address: RateLimit,
    /// The last `/healthz` probe.
    pub health: crate::web::HealthCache,
    /// Signs the device cookies (the session cookie's key).
    pub cookie_key: Key,
    /// GitHub's secret-scanning keys, when configured.
    pub github_keys: Option<crate::leaks::GithubKeys>,
    /// Public revocation requests per address.
    pub revoke_per_address: RateLimit,
    /// Seals TOTP secrets (derived from the same instance secret).
    pub totp_key: crate::accounts::totp::SealingKey,
    /// Reset requests per account (silently dropped beyond the limit).
    pub reset_per_account: RateLimit,
    /// Reset requests per client address (429 beyond the limit).
    pub reset_per_address: RateLimit,
}
