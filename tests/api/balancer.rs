//! Real proxies for the tests: starting nginx (and other proxies) on a
//! free port with a configuration of the test's, and `Balanced`, three
//! real `keyward` instances on one fresh PostgreSQL behind nginx as a
//! round-robin load balancer (docs/instances.md). Both suites use it: the
//! API suite (`proxies`, `balanced`) and the browser suite (`balanced`).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Client;

use crate::helpers::{Binary, Mark, Output, Unheard};

/// What a `keyward` instance logs (at DEBUG, target `keyward::last_used`)
/// after a last-used flush that wrote keys, once it has committed them.
pub const FLUSH_WRITTEN: &str = "last-used flush written";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A proxy process, stopped when dropped.
pub struct Proxy {
    pub child: Child,
    pub port: u16,
    pub name: &'static str,
    pub dir: tempfile::TempDir,
}

impl Drop for Proxy {
    /// A graceful stop (SIGQUIT for nginx, SIGTERM for Caddy), so nginx's
    /// master takes its workers with it; SIGKILL only if that fails.
    fn drop(&mut self) {
        let signal = if self.name == "nginx" { "-QUIT" } else { "-TERM" };
        let stopped = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Proxy {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until the proxy answers (any status), up to 10 s.
    pub async fn ready(mut self) -> Option<Self> {
        for _ in 0..200 {
            if Client::new().get(self.url("/")).send().await.is_ok() {
                return Some(self);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                eprintln!("{} exited: {status}", self.name);
                return None;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// nginx's error log (where it says which upstream failed).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

fn nginx_program() -> Option<&'static str> {
    if Path::new("/usr/sbin/nginx").exists() {
        Some("/usr/sbin/nginx")
    } else if installed("nginx") {
        Some("nginx")
    } else {
        None
    }
}

/// Whether nginx is installed; prints `skipped: …` when it is not.
pub fn nginx_or_skip() -> bool {
    let found = nginx_program().is_some();
    if !found {
        println!("skipped: nginx is not installed (apt-get install nginx-light)");
    }
    found
}

/// An nginx configuration around `http_body` (upstreams and servers):
/// one worker in the foreground, every file in `dir`.
pub fn nginx_conf_around(dir: &Path, http_body: &str) -> String {
    let d = dir.display();
    let user = if is_root() { "user root;" } else { "" };
    format!(
        r#"{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{http_body}
}}
"#
    )
}

/// Starts nginx with the configuration `conf(dir, port)` on a free port
/// (nginx cannot listen on port 0: another port is tried if that one was
/// taken meanwhile). None, after `skipped: …`, without nginx.
pub async fn start_nginx(conf: impl Fn(&Path, u16) -> String) -> Option<Proxy> {
    let Some(program) = nginx_program() else {
        println!("skipped: nginx is not installed (apt-get install nginx-light)");
        return None;
    };
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let file = dir.path().join("nginx.conf");
        std::fs::write(&file, conf(dir.path(), port)).unwrap();
        let child = Command::new(program)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let proxy = Proxy {
            child,
            port,
            name: "nginx",
            dir,
        };
        if let Some(p) = proxy.ready().await {
            return Some(p);
        }
    }
    panic!("nginx did not start");
}

/// The load balancer of docs/instances.md, with test ports: round robin,
/// no stickiness, a dead instance skipped.
pub fn balancer_conf(port: u16, instances: &[u16]) -> String {
    let servers: String = instances
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p};\n"))
        .collect();
    format!(
        r#"
    upstream keyward {{
{servers}    }}

    server {{
        listen 127.0.0.1:{port};

        location / {{
            proxy_pass http://keyward;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            # A dead instance (refused or timed-out connection): the next
            # one. A POST already sent is never sent twice.
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
        }}
    }}
"#
    )
}

/// Three `keyward serve` processes on one fresh PostgreSQL database, and
/// nginx in front of them.
pub struct Balanced {
    pub nginx: Proxy,
    /// `None` once killed.
    pub instances: std::sync::Mutex<Vec<Option<Binary>>>,
    pub database_url: String,
}

impl Balanced {
    /// None, after `skipped: …`, without nginx or PostgreSQL.
    pub async fn start(test: &str) -> Option<Self> {
        if !nginx_or_skip() {
            return None;
        }
        let database_url = crate::pg::fresh_database_or_skip(test)?;
        let mut instances = Vec::new();
        for _ in 0..3 {
            instances.push(Some(
                Binary::start_fresh(&[
                    ("DATABASE_URL", &database_url),
                    ("KEYWARD_LAST_USED_FLUSH_SECONDS", "1"),
                    // Warnings, and the line of each last-used flush that
                    // wrote keys, which tests wait for (`Balanced::flushed`).
                    ("RUST_LOG", "warn,keyward::last_used=debug"),
                ])
                .await,
            ));
        }
        let ports: Vec<u16> = instances.iter().map(|i| port_of(&i.as_ref().unwrap().base)).collect();
        let nginx = start_nginx(|dir, port| nginx_conf_around(dir, &balancer_conf(port, &ports))).await?;
        Some(Self {
            nginx,
            instances: std::sync::Mutex::new(instances),
            database_url,
        })
    }

    pub fn url(&self, path: &str) -> String {
        self.nginx.url(path)
    }

    /// SIGKILL for instance `n`: no goodbye, no last flush.
    pub fn kill(&self, n: usize) {
        let mut binary = self.instances.lock().unwrap()[n].take().expect("a live instance");
        binary.child.kill().expect("kill");
        binary.child.wait().expect("wait");
    }

    /// The output of instance `n`, which must be alive.
    pub fn output(&self, n: usize) -> Output {
        self.instances.lock().unwrap()[n]
            .as_ref()
            .expect("a live instance")
            .output
            .clone()
    }

    /// The base URL of instance `n`, which must be alive.
    pub fn base(&self, n: usize) -> String {
        self.instances.lock().unwrap()[n]
            .as_ref()
            .expect("a live instance")
            .base
            .clone()
    }

    /// Waits until instance `n` logs a last-used flush that wrote keys
    /// after `mark` (taken from `output(n)`): from then on, whatever it
    /// held before the flush began is in the database. Woken by its output,
    /// never polling; fails, with the logs, past 30 s (a guard only: it
    /// flushes every second here).
    pub async fn flushed(&self, n: usize, mark: Mark) {
        let heard = self
            .output(n)
            .line_after(mark, FLUSH_WRITTEN, Duration::from_secs(30))
            .await;
        match heard {
            Ok(_) => {}
            Err(Unheard::Closed) => panic!("instance {n} exited before a last-used flush; logs:\n{}", self.logs()),
            Err(Unheard::TimedOut) => panic!(
                "instance {n} logged no last-used flush within 30 s; logs:\n{}",
                self.logs()
            ),
        }
    }

    /// The base URLs of the instances still alive.
    pub fn live(&self) -> Vec<String> {
        self.instances
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|b| b.base.clone())
            .collect()
    }

    /// What every instance (alive or not) and nginx wrote, for a failure.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for (n, i) in self.instances.lock().unwrap().iter().enumerate() {
            if let Some(i) = i {
                all.push_str(&format!("--- instance {n}\n{}", i.logs()));
            }
        }
        all.push_str(&format!("--- nginx\n{}", self.nginx.error_log()));
        all
    }
}

fn port_of(base: &str) -> u16 {
    base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port")
}
