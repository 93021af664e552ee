//! The `keyward` binary: parse the CLI, then hand over to the library.

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::Context as _;
use clap::Parser as _;
use keyward::accounts::{self, domain};
use keyward::config::{Cli, Command, DbCommand, UserCommand};
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
#[allow(unsafe_code)]
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets allocator parameters; it runs first in
    // `main`, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
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
        Command::User(UserCommand::Create { name, email }) => {
            let username = domain::Username::parse(&name).map_err(anyhow::Error::msg)?;
            let email = domain::Email::parse(&email).map_err(anyhow::Error::msg)?;
            let password = domain::Password::parse(&read_password()?).map_err(anyhow::Error::msg)?;
            std::fs::create_dir_all(&settings.data_dir)?;
            let pool = keyward::db::connect(&settings.database())?;
            let user = accounts::register(&pool, username, email, password)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create user: {e}"))?;
            println!("created user {}", user.username);
            Ok(())
        }
    }
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
