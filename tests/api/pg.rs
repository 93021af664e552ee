//! A throwaway PostgreSQL for the tests: `KEYWARD_TEST_DATABASE_URL` when
//! given (an admin URL), else a cluster started once per test process with
//! Debian's `initdb`/`pg_ctl` on 127.0.0.1 and a free port. A watchdog stops
//! the cluster and deletes it when the test process exits. Each test gets a
//! fresh database of its own.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use diesel::{Connection, RunQueryDsl};

/// Whether this run of the suite targets PostgreSQL.
pub fn selected() -> bool {
    std::env::var("KEYWARD_TEST_BACKEND").is_ok_and(|b| b == "postgres" || b == "postgresql")
}

fn pg_bin(name: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop()
}

fn as_postgres_user(program: &std::path::Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start_cluster() -> Result<String, String> {
    let initdb = pg_bin("initdb").ok_or("PostgreSQL is not installed (apt-get install postgresql)")?;
    let pg_ctl = pg_bin("pg_ctl").ok_or("pg_ctl not found")?;
    let dir = tempfile::Builder::new()
        .prefix("keyward-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let _ = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(&dir)
        .status();
    let data = dir.join("data");
    let out = as_postgres_user(&initdb)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=400",
        dir.display()
    );
    let out = as_postgres_user(&pg_ctl)
        .args(["-D"])
        .arg(&data)
        .args(["-o", &opts, "-l"])
        .arg(dir.join("log"))
        .args(["-w", "start"])
        .stdout(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("pg_ctl start failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    // Stop and remove the cluster once this test process is gone.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runas} {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        runas = if as_postgres_user(&pg_ctl).get_program() == "runuser" { "runuser -u postgres --" } else { "" },
        pg_ctl = pg_ctl.display(),
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &stop])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// The admin URL of the test server, or why there is none.
pub fn admin_url() -> Result<String, String> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("KEYWARD_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Ok(u),
        _ => start_cluster(),
    })
    .clone()
}

/// A new, empty database on the test server.
pub fn fresh_database() -> Result<String, String> {
    let admin = admin_url()?;
    let mut conn = diesel::PgConnection::establish(&admin).map_err(|e| e.to_string())?;
    let name = format!("kw_{}", keyward::keys::format::random_base62(12).to_lowercase());
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

/// A fresh database, or None after printing why the test is skipped.
pub fn fresh_database_or_skip(test: &str) -> Option<String> {
    match fresh_database() {
        Ok(u) => Some(u),
        Err(why) => {
            println!("skipped: {test}: no PostgreSQL server ({why})");
            None
        }
    }
}
