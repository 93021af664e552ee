//! The application: binds its listener (port 0 in tests), wires middleware,
//! routes and background work, and flushes pending writes on shutdown.

use secrecy::ExposeSecret as _;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_identity::IdentityMiddleware;
use actix_session::config::PersistentSession;
use actix_session::storage::CookieSessionStore;
use actix_session::SessionMiddleware;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;

use crate::accounts::throttle::{LoginLimits, LoginThrottle, RateLimit, Store};
use crate::config::Settings;
use crate::keys::{LastUsed, Verifier};
use crate::state::AppState;
use crate::{api, db};

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    /// Held while serving a SQLite database (`files::InstanceLock`).
    lock: Option<crate::files::InstanceLock>,
    /// This process as it announces itself to `keyward check`.
    instance_id: String,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(&settings.bind).with_context(|| format!("cannot listen on {}", settings.bind))?;
        Self::build_on(settings, listener).await
    }

    /// `build`, serving on a listener the caller bound (tests bind port 0
    /// and know the port before the app starts, with no race for it).
    pub async fn build_on(settings: Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let scopes = settings.all_scopes();
        if let Some(bad) = scopes
            .iter()
            .find(|s| s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b":._-".contains(&b)))
        {
            anyhow::bail!("invalid scope {bad:?} in KEYWARD_SCOPES: use letters, digits and : . _ -");
        }
        crate::files::secure_data_dir(&settings.data_dir)
            .with_context(|| format!("data directory {}", settings.data_dir.display()))?;
        let url = settings.database();
        tracing::info!(database = %url.redacted(), "opening database");
        let lock = match &url {
            crate::db::DatabaseUrl::Sqlite(path) => Some(crate::files::InstanceLock::acquire(Path::new(path))?),
            crate::db::DatabaseUrl::Postgres(_) => None,
        };
        let pool = web::block(move || db::migrate_and_connect(&url))
            .await
            .context("blocking task failed")??;
        let key = session_key(&settings, &pool).await?;
        let port = listener.local_addr()?.port();

        let last_used = Arc::new(LastUsed::default());
        let cache = crate::keys::CacheSettings {
            ttl: Duration::from_secs(settings.key_cache_seconds.max(1)),
            ..Default::default()
        };
        let verifier = Arc::new(Verifier::with_cache(pool.clone(), last_used.clone(), cache));
        let settings = Arc::new(settings);
        let mailer = Arc::new(crate::mail::Mailer::from_settings(&settings)?);
        tracing::info!(transport = mailer.describe(), "mail configured");
        let clock = crate::time::Clock::default();
        // Memory on SQLite (one instance), the database on PostgreSQL:
        // every instance then counts against one budget.
        let counts = Store::for_database(&settings.database(), &pool);
        let window = Duration::from_secs(settings.login_window_seconds);
        let lockout = Duration::from_secs(settings.login_lockout_seconds);
        let rate = |scope, max: u32, window: Duration| {
            RateLimit::new(scope, max, window)
                .with_clock(&clock)
                .with_store(&counts)
        };
        let state = web::Data::new(AppState {
            pool,
            settings: settings.clone(),
            verifier: verifier.clone(),
            scopes,
            mailer,
            login_limits: LoginLimits::new(settings.login_max_failures, window, lockout)
                .with_clock(&clock)
                .with_store(&counts),
            reauth_throttle: LoginThrottle::new("reauth", settings.login_max_failures, window, lockout)
                .with_clock(&clock)
                .with_store(&counts),
            register_per_address: rate(
                "register:address",
                settings.registrations_per_hour,
                Duration::from_secs(3600),
            ),
            cookie_key: key.clone(),
            totp_key: crate::accounts::totp::SealingKey::derive(key.master()),
            health: Default::default(),
            github_keys: settings.github_scanning_keys.clone().map(crate::leaks::GithubKeys::new),
            revoke_per_address: rate("revoke:address", 30, Duration::from_secs(60)),
            reset_per_account: rate("reset:account", 3, Duration::from_secs(15 * 60)),
            reset_per_address: rate("reset:address", 30, Duration::from_secs(15 * 60)),
            clock,
        });

        verifier.spawn_flusher(Duration::from_secs(settings.last_used_flush_seconds.max(1)));
        spawn_housekeeping(state.clone());
        verifier
            .follow_changes()
            .context("cannot start following the change feed")?;
        if let crate::db::DatabaseUrl::Postgres(url) = settings.database() {
            spawn_revocation_listener(url, &verifier)?;
        }

        let https = settings.is_https();
        let cookie_name = if https { "__Host-keyward" } else { "keyward" };
        let max = settings.session_max();
        let app_state = state.clone();
        let trusted = web::Data::new(settings.trusted_proxies.clone());
        let mut server = HttpServer::new(move || {
            let session = SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                .cookie_name(cookie_name.to_owned())
                .cookie_secure(https)
                .cookie_http_only(true)
                .cookie_same_site(SameSite::Lax)
                .cookie_path("/".to_owned())
                .session_lifecycle(
                    PersistentSession::default()
                        .session_ttl(actix_web::cookie::time::Duration::seconds(max.as_secs() as i64)),
                )
                .build();
            // The idle timeout is `web::session::current`'s, on the
            // instance clock.
            let identity = IdentityMiddleware::builder().login_deadline(Some(max)).build();
            App::new()
                .app_data(app_state.clone())
                .app_data(web::Data::from(app_state.verifier.clone()))
                .app_data(trusted.clone())
                .app_data(web::PayloadConfig::new(crate::web::forms::FORM_LIMIT))
                .wrap(crate::headers::EveryResponse::new(https))
                // The API needs no cookies: it sits outside the session layers.
                .configure(api::configure)
                .service(
                    web::scope("")
                        .wrap(from_fn(crate::web::error::with_user))
                        .wrap(identity)
                        .wrap(session)
                        .configure(crate::web::configure)
                        .default_service(web::to(crate::web::not_found)),
                )
        })
        .listen(listener)?;
        let workers = settings
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1);
        // Each worker's blocking pool runs only database calls (hashing and
        // mail have threads of their own), each holding a pooled connection:
        // more threads than connections would only wait for one, each
        // costing a stack and, with glibc, a malloc arena of its own.
        let blocking = (state.pool.max_size() as usize).div_ceil(workers).max(2);
        server = server.workers(workers).worker_max_blocking_threads(blocking);
        let server = server.shutdown_timeout(10).run();
        if let Some(lock) = &lock {
            tracing::debug!(lock = %lock.path().display(), "holding the database lock");
        }
        let instance_id = spawn_heartbeat(&state, listener_address(&settings.bind, port)).await?;
        Ok(Self {
            port,
            server,
            state,
            lock,
            instance_id,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle to stop the server gracefully (what SIGTERM does).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or the handle stops it), then writes the
    /// pending last-used times so no accepted use is lost.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let _lock = self.lock;
        let served = self.server.await;
        let last_used = self.state.verifier.last_used().clone();
        match last_used.flush(&self.state.pool).await {
            Ok(n) => tracing::info!(keys = n, "flushed pending last-used times"),
            Err(e) => tracing::error!(error = ?e, "final last-used flush failed"),
        }
        let id = self.instance_id;
        if let Err(e) = db::run(&self.state.pool, move |conn| Ok(db::instances::leave(conn, &id)?)).await {
            tracing::warn!(error = ?e, "cannot remove this instance's heartbeat row");
        }
        served.context("server failed")
    }
}

/// `host:port` this instance serves on, as `keyward check` shows it.
fn listener_address(bind: &str, port: u16) -> String {
    let host = bind.rsplit_once(':').map_or(bind, |(host, _)| host);
    format!("{host}:{port}")
}

/// Announces this instance (`db::instances`) before it serves, then every
/// `HEARTBEAT` while the runtime runs; returns its id.
async fn spawn_heartbeat(state: &web::Data<AppState>, address: String) -> anyhow::Result<String> {
    let me = db::instances::Instance::this_process(address, crate::time::now());
    let id = me.id.clone();
    let first = me.clone();
    db::run(&state.pool, move |conn| {
        Ok(db::instances::beat(conn, &first, crate::time::now())?)
    })
    .await
    .context("cannot announce this instance")?;
    let state = state.clone();
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(db::instances::HEARTBEAT);
        tick.tick().await;
        loop {
            tick.tick().await;
            let me = me.clone();
            let beat = db::run(&state.pool, move |conn| {
                Ok(db::instances::beat(conn, &me, crate::time::now())?)
            })
            .await;
            if let Err(e) = beat {
                tracing::warn!(error = ?e, "heartbeat failed; will retry");
            }
        }
    });
    Ok(id)
}

/// Keys deleted on other instances are forgotten here within ~100 ms. The
/// listener holds only a weak reference and ends with the application.
fn spawn_revocation_listener(url: String, verifier: &Arc<Verifier>) -> anyhow::Result<()> {
    use crate::db::revocation::{spawn_listener, Revoked};
    let weak = Arc::downgrade(verifier);
    spawn_listener(url, move |event| {
        let Some(verifier) = weak.upgrade() else {
            return false;
        };
        match event {
            Revoked::Key(id) => verifier.forget(id),
            Revoked::Unknown => verifier.forget_all(),
            Revoked::Idle => {}
        }
        true
    })
    .context("cannot start the revocation listener")
}

/// Runs key reminders every `reminder_seconds` and prunes old sessions,
/// feed rows, use records and activity hourly.
fn spawn_housekeeping(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let every = Duration::from_secs(state.settings.reminder_seconds.max(1));
        let mut tick = actix_web::rt::time::interval(every);
        let mut since_prune = Duration::ZERO;
        loop {
            tick.tick().await;
            keep_keys(&state).await;
            since_prune += every;
            if since_prune >= Duration::from_secs(3600) {
                since_prune = Duration::ZERO;
                let max_age = state.settings.session_lifetime();
                let pruned = db::run(&state.pool, move |conn| {
                    Ok(crate::accounts::sessions::delete_expired(
                        conn,
                        crate::time::now(),
                        max_age,
                    )?)
                })
                .await;
                if let Err(e) = pruned {
                    tracing::warn!(error = ?e, "session pruning failed");
                }
                let old = crate::time::now() - chrono::Duration::hours(1);
                if let Err(e) = db::run(&state.pool, move |conn| Ok(db::revocation::prune(conn, old)?)).await {
                    tracing::warn!(error = ?e, "pruning the change feed failed");
                }
                if let Err(e) = db::run(&state.pool, move |conn| Ok(db::instances::prune(conn, old)?)).await {
                    tracing::warn!(error = ?e, "pruning dead instances failed");
                }
                let (before, now) = (state.clock.now() - throttle_memory(&state), state.clock.now());
                let counts = db::run(&state.pool, move |conn| {
                    Ok(crate::accounts::counters::prune(conn, before, now)?)
                })
                .await;
                if let Err(e) = counts {
                    tracing::warn!(error = ?e, "pruning throttle counts failed");
                }
                let orphans = db::run(&state.pool, |conn| Ok(crate::keys::store::prune_orphan_usage(conn)?)).await;
                if let Err(e) = orphans {
                    tracing::warn!(error = ?e, "pruning use records failed");
                }
                let keep = chrono::Duration::days(i64::from(state.settings.activity_retention_days));
                if let Err(e) = crate::activity::prune(&state.pool, crate::time::now() - keep).await {
                    tracing::warn!(error = ?e, "activity pruning failed");
                }
            }
        }
    });
}

/// How long a throttle count may matter after its window began: the
/// longest window of any limit (rows older than that are pruned).
fn throttle_memory(state: &AppState) -> chrono::Duration {
    let longest = [
        state.login_limits.window(),
        state.reauth_throttle.window(),
        state.register_per_address.window(),
        state.revoke_per_address.window(),
        state.reset_per_account.window(),
        state.reset_per_address.window(),
    ]
    .into_iter()
    .max()
    .unwrap_or_default();
    chrono::Duration::from_std(longest).unwrap_or(chrono::Duration::days(1))
}

/// Removes keys past their grace period and sends the reminders that are
/// due (each once: see `notices`).
pub async fn keep_keys(state: &AppState) {
    if let Err(e) = crate::keys::lifecycle::remove_retired(&state.pool, &state.verifier).await {
        tracing::warn!(error = ?e, "removing retired keys failed");
    }
    if let Err(e) = crate::notices::send_due_reminders(state, state.verifier.now()).await {
        tracing::warn!(error = ?e, "sending key reminders failed");
    }
}

/// The cookie signing/encryption key, the same for every instance on this
/// database: `KEYWARD_SESSION_KEY` (base64, 64 bytes) when set; otherwise
/// the one stored in the database, which the first instance creates (from
/// an existing `DATA_DIR/session.key`, imported once, or at random), in one
/// insert-if-absent-then-read that every instance agrees on.
async fn session_key(settings: &Settings, pool: &db::Pool) -> anyhow::Result<Key> {
    if let Some(given) = settings
        .session_key
        .as_ref()
        .filter(|k| !k.expose_secret().trim().is_empty())
    {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(given.expose_secret().trim())
            .map_err(|_| anyhow::anyhow!("KEYWARD_SESSION_KEY is not base64"))?;
        anyhow::ensure!(
            bytes.len() >= 64,
            "KEYWARD_SESSION_KEY must be at least 64 bytes once decoded (it is {})",
            bytes.len()
        );
        return Key::try_from(&bytes[..64]).map_err(|_| anyhow::anyhow!("KEYWARD_SESSION_KEY is not a usable key"));
    }
    let file = settings.data_dir.join("session.key");
    let candidate = if file.exists() {
        let mut bytes = Vec::new();
        std::fs::File::open(&file)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .with_context(|| format!("cannot read {}", file.display()))?;
        Key::try_from(bytes.as_slice()).map_err(|_| anyhow::anyhow!("{} is not a valid 64-byte key", file.display()))?
    } else {
        Key::generate()
    };
    let proposed = candidate.master().to_vec();
    let stored = db::run(pool, move |conn| {
        use crate::db::schema::instance_secrets as t;
        use diesel::prelude::*;
        let found: Option<Vec<u8>> = t::table.find("session").select(t::value).first(conn).optional()?;
        if let Some(v) = found {
            return Ok(v);
        }
        let inserted = diesel::insert_into(t::table)
            .values((t::name.eq("session"), t::value.eq(&proposed)))
            .execute(conn);
        match inserted {
            Ok(_) => Ok(proposed),
            // Another instance stored one first: theirs it is.
            Err(e) if db::is_unique_violation(&e) => Ok(t::table.find("session").select(t::value).first(conn)?),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    let key = Key::try_from(stored.as_slice())
        .map_err(|_| anyhow::anyhow!("the session secret stored in the database is damaged"))?;
    // The data directory keeps a copy (0600), as it always has: a backup
    // of the directory restores sessions and 2FA secrets with it.
    if !file.exists() {
        crate::files::write_private(&file, key.master())?;
    } else if candidate.master() != key.master() {
        tracing::warn!(file = %file.display(), "session.key differs from the secret shared in the database; the database's is used");
    }
    Ok(key)
}
