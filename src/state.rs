//! What every handler can reach.

use std::sync::Arc;

use crate::config::Settings;
use crate::db::Pool;
use crate::keys::Verifier;

pub struct AppState {
    pub pool: Pool,
    pub settings: Arc<Settings>,
    pub verifier: Arc<Verifier>,
    /// Every scope a key may carry, built-ins first.
    pub scopes: Vec<String>,
}
