//! The `keyward` binary: parse the CLI, then hand over to the library.

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::Context as _;
use clap::Parser as _;
use keyward::accounts::{self, domain};
use keyward::config::{Cli, Command, DbCommand, KeysCommand, UserCommand};
use keyward::startup::Application;

fn main() -> anyhow::Result<()> {
    tune_malloc();
    actix_web::rt::System::new().block_on(run())
}

/// glibc's malloc, set for a long-running server whose memory is mostly
/// many small cache entries: two arenas rather than eight per core, and a
/// fixed 128 KiB threshold above which blocks are mapped and unmapped on
/// their own, so memory goes back to the system after a burst of logins
/// or cache churn. Why, and the figures: BENCHMARKS.md, "Memory policy".
///
/// The one `unsafe` of the crate: two `mallopt` calls, made first thing in
/// `main`, before any other thread exists. A `GLIBC_TUNABLES` the operator
/// gave with any `glibc.malloc.` entry wins: then nothing is changed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.")) {
        return;
    }
    // SAFETY: `mallopt` only sets parameters of glibc's allocator; it is
    // called before any thread is spawned and before any large allocation,
    // and a refused value (return 0) leaves glibc's default in place.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

async fn run() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    keyward::telemetry::init();
    let settings = cli.settings;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let bind = settings.bind.clone();
            let app = Application::build(settings).await?;
            // On stdout whatever the log level: with KEYWARD_BIND=…:0 this
            // is how a supervisor (or a test) learns the port.
            let host = bind.rsplit_once(':').map_or(bind.as_str(), |(host, _)| host);
            println!("Keyward listening on http://{host}:{}", app.port());
            app.run_until_stopped().await
        }
        Command::Check => check(&settings),
        Command::Migrate => {
            let url = settings.database();
            keyward::db::run_migrations(&url)?;
            println!("migrations applied to {}", url.redacted());
            Ok(())
        }
        Command::Db(DbCommand::Copy { to }) => {
            let from = settings.database();
            let to = keyward::db::DatabaseUrl::parse(secrecy::ExposeSecret::expose_secret(&to).trim());
            let copied = keyward::db::copy::copy_sqlite_to_postgres(&from, &to)?;
            println!(
                "copied {} users, {} keys and {} reset tokens from {} to {} (row counts verified)",
                copied.users,
                copied.keys,
                copied.reset_tokens,
                from.redacted(),
                to.redacted()
            );
            Ok(())
        }
        Command::User(UserCommand::Admin { name, revoke }) => {
            let pool = open_pool(&settings)?;
            anyhow::ensure!(
                keyward::operators::set_admin(&pool, &name, !revoke).await?,
                "no user named {name:?}"
            );
            println!("{name} is {}an admin", if revoke { "no longer " } else { "now " });
            Ok(())
        }
        Command::User(UserCommand::Disable { name }) => set_disabled(&settings, &name, true).await,
        Command::User(UserCommand::Enable { name }) => set_disabled(&settings, &name, false).await,
        Command::Keys(KeysCommand::Revoke { prefix }) => {
            let pool = open_pool(&settings)?;
            let verifier = cli_verifier(&pool);
            anyhow::ensure!(
                keyward::operators::revoke_by_prefix(&pool, &verifier, prefix.trim()).await?,
                "no key with prefix {prefix:?}"
            );
            println!("revoked {prefix}");
            Ok(())
        }
        Command::User(UserCommand::Create { name, email, admin }) => {
            let username = domain::Username::parse(&name).map_err(anyhow::Error::msg)?;
            let email = domain::Email::parse(&email).map_err(anyhow::Error::msg)?;
            let password = domain::Password::parse(&read_password()?, username.as_str()).map_err(anyhow::Error::msg)?;
            std::fs::create_dir_all(&settings.data_dir)?;
            let pool = keyward::db::migrate_and_connect(&settings.database())?;
            let registered = accounts::register(&pool, username, email, password)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create user: {e}"))?;
            if admin {
                keyward::operators::set_admin(&pool, &registered.user.username, true).await?;
            }
            println!(
                "created user {}{}",
                registered.user.username,
                if admin { " (admin)" } else { "" }
            );
            Ok(())
        }
    }
}

/// `keyward check`: what this configuration reaches, without changing it.
fn check(settings: &keyward::config::Settings) -> anyhow::Result<()> {
    println!("configuration (secrets redacted):\n{settings:#?}");
    let url = settings.database();
    let (applied, pending) =
        keyward::db::migration_status(&url).with_context(|| format!("database {} not reached", url.redacted()))?;
    println!("database: {} (reached)", url.redacted());
    println!(
        "migrations: {} applied (latest {}), {} pending",
        applied.len(),
        applied.iter().max().map_or("none", String::as_str),
        pending.len()
    );
    let pool = keyward::db::connect(&url)?;
    let mut conn = pool.get().context("no connection to the database")?;
    if pending.is_empty() {
        let position = keyward::db::revocation::feed_position(&mut conn)?;
        println!("change feed: at {position}");
        let now = keyward::time::now();
        let live = keyward::db::instances::live(&mut conn, now)?;
        println!("live instances: {}", live.len());
        for i in live {
            println!(
                "  {} on {} ({}, pid {}, version {}): up since {}, seen {} s ago",
                i.id,
                i.address,
                i.host,
                i.pid,
                i.version,
                keyward::time::rfc3339(i.started_at),
                (now - i.seen_at).num_seconds().max(0)
            );
        }
    }
    anyhow::ensure!(
        pending.is_empty(),
        "{} migrations are pending ({}): run `keyward migrate`, or start the server, which applies them",
        pending.len(),
        pending.join(", ")
    );
    Ok(())
}

fn open_pool(settings: &keyward::config::Settings) -> anyhow::Result<keyward::db::Pool> {
    if let keyward::db::DatabaseUrl::Sqlite(_) = settings.database() {
        std::fs::create_dir_all(&settings.data_dir)?;
    }
    keyward::db::migrate_and_connect(&settings.database())
}

/// A verifier for the CLI's own changes. Running instances hear of them
/// through the change feed within a second (and on PostgreSQL at once,
/// through NOTIFY).
fn cli_verifier(pool: &keyward::db::Pool) -> keyward::keys::Verifier {
    keyward::keys::Verifier::new(pool.clone(), std::sync::Arc::new(keyward::keys::LastUsed::default()))
}

async fn set_disabled(settings: &keyward::config::Settings, name: &str, disabled: bool) -> anyhow::Result<()> {
    let pool = open_pool(settings)?;
    let verifier = cli_verifier(&pool);
    anyhow::ensure!(
        keyward::operators::set_disabled(&pool, &verifier, name, disabled).await?,
        "no user named {name:?}"
    );
    println!("{name} is {}", if disabled { "disabled" } else { "enabled" });
    Ok(())
}

/// From a prompt (asked twice) on a terminal, else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Password (again): ")?;
        anyhow::ensure!(first == second, "the two passwords do not match");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}
