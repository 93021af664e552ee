//! Typed settings from command-line flags, environment variables and an
//! optional `.env` file (README.md, "Configuration"). Every setting has a working default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::db::DatabaseUrl;
use crate::keys::format::KeyTag;

#[derive(Parser, Debug)]
#[command(name = "keyward", version, about = "Self-hosted API-key portal and guard")]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the portal and the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check the setup: print the configuration (secrets redacted), the
    /// database, its migrations, the change feed's position and the live
    /// instances. Fails when the database cannot be reached or migrations
    /// are pending. Changes nothing.
    Check,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
    /// Revoke keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Revoke the key with this display prefix (kw_AbCdEfGh), whoever owns it.
    Revoke { prefix: String },
}

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Copy users, keys and pending reset tokens from this SQLite database
    /// into an empty PostgreSQL database.
    Copy {
        /// The target, postgres://user:pass@host/db (must be empty).
        #[arg(long, hide_env_values = true)]
        to: SecretString,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password is read from stdin or a prompt.
    Create {
        /// The username (3-32 characters of a-z 0-9 _ . -).
        name: String,
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// Make the user an admin (the /admin console).
        #[arg(long)]
        admin: bool,
    },
    /// Make a user an admin, or with --revoke no longer one.
    Admin {
        name: String,
        #[arg(long)]
        revoke: bool,
    },
    /// Disable a user: no login, sessions ended, keys refused.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Registration {
    Open,
    Closed,
}

/// Strings that never appear in `Debug` output (URLs with credentials:
/// SMTP's, the database's; the session and metrics secrets). Read them
/// with `ExposeSecret::expose_secret`.
pub use secrecy::{ExposeSecret, SecretString};

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";
pub const DEFAULT_MAIL_FROM: &str = "Keyward <no-reply@localhost>";

#[derive(Args, Clone, Debug)]
pub struct Settings {
    /// Database: a SQLite path (default: DATA_DIR/keyward.db) or a postgres:// URL.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<SecretString>,
    /// Listen address.
    #[arg(long = "bind", env = "KEYWARD_BIND", default_value = DEFAULT_BIND, global = true)]
    pub bind: String,
    /// Public URL, used in emailed links; https:// turns on Secure cookies and HSTS.
    #[arg(long, env = "KEYWARD_BASE_URL", default_value = DEFAULT_BASE_URL, global = true)]
    pub base_url: String,
    /// Directory for the SQLite file, the session secret and the mail outbox.
    #[arg(long, env = "KEYWARD_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,
    /// smtp://user:pass@host:587 (STARTTLS) or smtps://…; unset writes mail to DATA_DIR/outbox.
    #[arg(long, env = "KEYWARD_SMTP_URL", global = true, hide_env_values = true)]
    pub smtp_url: Option<SecretString>,
    /// Sender address of outgoing mail.
    #[arg(long, env = "KEYWARD_MAIL_FROM", default_value = DEFAULT_MAIL_FROM, global = true)]
    pub mail_from: String,
    /// The key's leading tag (a-z, 2-8 characters).
    #[arg(long, env = "KEYWARD_KEY_PREFIX", default_value = "kw", global = true)]
    pub key_prefix: KeyTag,
    /// Scopes a key may be given, besides the built-in keys:read and keys:write.
    #[arg(long, env = "KEYWARD_SCOPES", default_value = "read,write", global = true)]
    pub scopes: String,
    /// open, or closed (then only the CLI creates users).
    #[arg(
        long,
        env = "KEYWARD_REGISTRATION",
        value_enum,
        ignore_case = true,
        default_value = "open",
        global = true
    )]
    pub registration: Registration,
    /// A session unused this long ends.
    #[arg(long, env = "KEYWARD_SESSION_IDLE_MINUTES", default_value_t = 30.0, global = true)]
    pub session_idle_minutes: f64,
    /// A session ends this long after login, used or not.
    #[arg(long, env = "KEYWARD_SESSION_MAX_HOURS", default_value_t = 12.0, global = true)]
    pub session_max_hours: f64,
    /// Failed logins (per username, and per address) before answers are slowed down.
    #[arg(
        long,
        env = "KEYWARD_LOGIN_MAX_FAILURES",
        default_value_t = 5,
        global = true,
        hide = true
    )]
    pub login_max_failures: u32,
    /// Failed logins are counted over this many seconds.
    #[arg(
        long,
        env = "KEYWARD_LOGIN_WINDOW_SECONDS",
        default_value_t = 900,
        global = true,
        hide = true
    )]
    pub login_window_seconds: u64,
    /// First lock-out after too many failures; doubles with each further failure.
    #[arg(
        long,
        env = "KEYWARD_LOGIN_LOCKOUT_SECONDS",
        default_value_t = 30,
        global = true,
        hide = true
    )]
    pub login_lockout_seconds: u64,
    /// Lifetime of a password-reset link.
    #[arg(
        long,
        env = "KEYWARD_RESET_TOKEN_MINUTES",
        default_value_t = 30,
        global = true,
        hide = true
    )]
    pub reset_token_minutes: u64,
    /// Proxies (CIDRs) whose X-Forwarded-For / X-Real-IP name the client.
    #[arg(
        long,
        env = "KEYWARD_TRUSTED_PROXIES",
        default_value = "127.0.0.1/32,::1/128",
        global = true
    )]
    pub trusted_proxies: crate::net::TrustedProxies,
    /// Accounts one client address may register per hour.
    #[arg(
        long,
        env = "KEYWARD_REGISTRATIONS_PER_HOUR",
        default_value_t = 20,
        global = true,
        hide = true
    )]
    pub registrations_per_hour: u32,
    /// Creating, editing or rotating keys needs a password (or 2FA) check
    /// this recent; older sessions are asked to confirm first.
    #[arg(long, env = "KEYWARD_CONFIRM_MINUTES", default_value_t = 15.0, global = true)]
    pub confirm_minutes: f64,
    /// GitHub's secret-scanning public keys (their meta JSON); unset, the
    /// leak endpoint is not served.
    #[arg(long, env = "KEYWARD_GITHUB_SCANNING_KEYS", global = true)]
    pub github_scanning_keys: Option<PathBuf>,
    /// The session secret, base64 (64 bytes); unset, it is kept in the
    /// database and shared by every instance.
    #[arg(long, env = "KEYWARD_SESSION_KEY", global = true, hide_env_values = true)]
    pub session_key: Option<SecretString>,
    /// Security events are kept this many days.
    #[arg(long, env = "KEYWARD_ACTIVITY_RETENTION_DAYS", default_value_t = 90, global = true)]
    pub activity_retention_days: u32,
    /// How often retired keys are removed and expiry reminders sent.
    #[arg(
        long,
        env = "KEYWARD_REMINDER_SECONDS",
        default_value_t = 60,
        global = true,
        hide = true
    )]
    pub reminder_seconds: u64,
    /// Keys one account may hold.
    #[arg(long, env = "KEYWARD_MAX_KEYS_PER_USER", default_value_t = 100, global = true)]
    pub max_keys_per_user: u32,
    /// Bearer token that `GET /metrics` requires; unset, /metrics is not served.
    #[arg(long, env = "KEYWARD_METRICS_TOKEN", global = true, hide_env_values = true)]
    pub metrics_token: Option<SecretString>,
    /// How often pending last-used times are written to the database.
    #[arg(
        long,
        env = "KEYWARD_LAST_USED_FLUSH_SECONDS",
        default_value_t = 2,
        global = true,
        hide = true
    )]
    pub last_used_flush_seconds: u64,
    /// How long a key checked in the database is trusted from memory.
    /// Deletes and changes made anywhere reach every instance at once (the
    /// change feed), so this only bounds changes made by hand in the
    /// database; benches/instructions.sh raises it, since under valgrind a
    /// pass over 10,000 keys outlasts 30 s.
    #[arg(
        long,
        env = "KEYWARD_KEY_CACHE_SECONDS",
        default_value_t = 30,
        global = true,
        hide = true
    )]
    pub key_cache_seconds: u64,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "KEYWARD_WORKERS", global = true, hide = true)]
    pub workers: Option<usize>,
}

pub const BUILTIN_SCOPES: [&str; 2] = ["keys:read", "keys:write"];

impl Settings {
    /// The defaults, with data in `data_dir`; what tests start from.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            database_url: None,
            bind: "127.0.0.1:0".into(),
            base_url: DEFAULT_BASE_URL.into(),
            data_dir: data_dir.into(),
            smtp_url: None,
            mail_from: DEFAULT_MAIL_FROM.into(),
            key_prefix: KeyTag::parse("kw").expect("valid default tag"),
            scopes: "read,write".into(),
            registration: Registration::Open,
            session_idle_minutes: 30.0,
            session_max_hours: 12.0,
            login_max_failures: 5,
            login_window_seconds: 900,
            login_lockout_seconds: 30,
            reset_token_minutes: 30,
            last_used_flush_seconds: 2,
            key_cache_seconds: 30,
            trusted_proxies: crate::net::TrustedProxies::loopback(),
            registrations_per_hour: 20,
            max_keys_per_user: 100,
            activity_retention_days: 90,
            github_scanning_keys: None,
            session_key: None,
            confirm_minutes: 15.0,
            reminder_seconds: 60,
            metrics_token: None,
            workers: None,
        }
    }

    pub fn database(&self) -> DatabaseUrl {
        match self.database_url.as_ref().map(|u| u.expose_secret()) {
            Some(u) if !u.trim().is_empty() => DatabaseUrl::parse(u.trim()),
            _ => DatabaseUrl::Sqlite(self.data_dir.join("keyward.db").to_string_lossy().into_owned()),
        }
    }

    pub fn is_https(&self) -> bool {
        self.base_url.starts_with("https://")
    }

    /// The base URL without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    /// Idle timeout of a browser session.
    pub fn session_idle(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64((self.session_idle_minutes * 60.0).clamp(1.0, 1e9))
    }

    /// How recent a password check must be for sensitive actions.
    pub fn confirm_within(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64((self.confirm_minutes * 60.0).clamp(0.0, 1e9))
    }

    /// Absolute lifetime of a browser session.
    pub fn session_max(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64((self.session_max_hours * 3600.0).clamp(1.0, 1e10))
    }

    /// `session_max` as the session records are judged by (calendar time).
    pub fn session_lifetime(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.session_max()).unwrap_or(chrono::Duration::hours(12))
    }

    /// Every scope a key may carry: the built-ins, then the configured ones.
    pub fn all_scopes(&self) -> Vec<String> {
        let mut out: Vec<String> = BUILTIN_SCOPES.iter().map(|s| s.to_string()).collect();
        for s in self.scopes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !out.iter().any(|o| o == s) {
                out.push(s.to_owned());
            }
        }
        out
    }
}
