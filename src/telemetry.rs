//! Logging. User input is always logged with `?` (Debug), which escapes CR/LF
//! so nobody can forge log lines; secrets never reach a log call.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .try_init();
}
