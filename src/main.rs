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
/// many small cache entries: two arenas rather than eight per core (each
/// thread that allocates would otherwise get one, and the blocking threads
/// that read keys leave their arenas part-filled), and a fixed 128 KiB
/// threshold above which blocks are mapped and unmapped on their own (by
/// default the threshold rises to 32 MiB after the first large free, and
/// the cache's growing tables then fragment the heap). Measured: peak RSS
/// with 100k keys cached fell from 77 to 68 MiB (BENCHMARKS.md).
///
/// glibc reads these settings from `GLIBC_TUNABLES` when the process
/// starts, before `main`, so the binary sets the variable and executes
/// itself once more (same process id, same arguments): no `unsafe`
/// `mallopt` call. Settings the operator gave in `GLIBC_TUNABLES` win; if
/// the binary cannot be executed again it runs with glibc's defaults.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_TUNABLES: &str = "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072";

/// Set in the environment of the second execution.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const REEXECUTED: &str = "KEYWARD_MALLOC_TUNED";

fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt as _;
        // Once only: glibc drops GLIBC_TUNABLES from the environment of a
        // setuid or setcap binary, so the variable alone cannot tell.
        if std::env::var_os(REEXECUTED).is_some() {
            return;
        }
        let given = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if given.contains("glibc.malloc.") {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let tunables = if given.is_empty() {
            MALLOC_TUNABLES.to_owned()
        } else {
            format!("{given}:{MALLOC_TUNABLES}")
        };
        let mut args = std::env::args_os();
        let mut again = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            again.arg0(arg0);
        }
        // Returns only if the binary could not be executed.
        let _ = again
            .args(args)
            .env("GLIBC_TUNABLES", tunables)
            .env(REEXECUTED, "1")
            .exec();
    }
}

async fn run() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    keyward::telemetry::init();
    let settings = cli.settings;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let bind = settings.bind.clone();
            let app = Application::build(settings).await?;
            tracing::info!("Keyward listening on http://{bind} (port {})", app.port());
            app.run_until_stopped().await
        }
        Command::Migrate => {
            let url = settings.database();
            keyward::db::run_migrations(&url)?;
            println!("migrations applied to {}", url.redacted());
            Ok(())
        }
        Command::Db(DbCommand::Copy { to }) => {
            let from = settings.database();
            let to = keyward::db::DatabaseUrl::parse(to.0.trim());
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
            let pool = keyward::db::connect(&settings.database())?;
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

fn open_pool(settings: &keyward::config::Settings) -> anyhow::Result<keyward::db::Pool> {
    if let keyward::db::DatabaseUrl::Sqlite(_) = settings.database() {
        std::fs::create_dir_all(&settings.data_dir)?;
    }
    keyward::db::connect(&settings.database())
}

/// A verifier for the CLI's own changes. A running instance on PostgreSQL
/// hears of them through NOTIFY; on SQLite within its cache lifetime.
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
