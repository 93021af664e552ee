//! Test harness: the real app on port 0 with its own temporary database, and
//! a cookie-keeping client with redirects off, one method per endpoint.
//! The browser suite (tests/browser) starts its app through this too.

#![allow(dead_code)]

use std::sync::Once;

use actix_web::web;
use keyward::config::Settings;
use keyward::startup::Application;
use keyward::state::AppState;
use reqwest::{Client, Response, StatusCode};

pub const PASSWORD: &str = "a perfectly fine passphrase";

pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// The default browser (keeps cookies, does not follow redirects).
    pub client: Client,
    pub state: web::Data<AppState>,
    pub handle: actix_web::dev::ServerHandle,
    /// `run_until_stopped`: finishes after the server stops and the pending
    /// last-used times are flushed.
    pub running: actix_web::rt::task::JoinHandle<anyhow::Result<()>>,
    pub dir: tempfile::TempDir,
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            keyward::telemetry::init();
        }
    });
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::with_data_dir(dir.path());
    if crate::pg::selected() {
        // The same suite, on PostgreSQL: one fresh database per test.
        settings.database_url = Some(
            crate::pg::fresh_database()
                .expect("KEYWARD_TEST_BACKEND=postgres needs a server")
                .into(),
        );
    }
    // Port 0, bound here: the base URL (the links in mails) names the
    // app's own port before it starts, with no race for the port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    settings.base_url = format!("http://127.0.0.1:{port}");
    settings.workers = Some(1);
    settings.last_used_flush_seconds = 1;
    configure(&mut settings);
    let app = Application::build_on(settings, listener).await.expect("app builds");
    let state = app.state();
    let handle = app.handle();
    let running = actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: browser(),
        state,
        handle,
        running,
        dir,
    }
}

/// A fresh browser: its own cookie jar, no redirects followed.
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The elements of a page (or a fragment of one) that `css` selects.
pub fn select(html: &str, css: &str) -> Vec<String> {
    let selector = scraper::Selector::parse(css).unwrap_or_else(|e| panic!("bad selector {css:?}: {e}"));
    scraper::Html::parse_document(html)
        .select(&selector)
        .map(|e| e.html())
        .collect()
}

/// The text of the first element `css` selects, trimmed.
pub fn text_of(html: &str, css: &str) -> Option<String> {
    let selector = scraper::Selector::parse(css).unwrap_or_else(|e| panic!("bad selector {css:?}: {e}"));
    let doc = scraper::Html::parse_document(html);
    let text = doc.select(&selector).next()?.text().collect::<String>();
    Some(text.trim().to_owned())
}

/// Attribute `name` of the first element `css` selects.
pub fn attr_of(html: &str, css: &str, name: &str) -> Option<String> {
    let selector = scraper::Selector::parse(css).unwrap_or_else(|e| panic!("bad selector {css:?}: {e}"));
    let doc = scraper::Html::parse_document(html);
    let value = doc.select(&selector).next()?.value().attr(name)?.to_owned();
    Some(value)
}

/// Attribute `name` of every element `css` selects, in page order.
pub fn attrs_of(html: &str, css: &str, name: &str) -> Vec<String> {
    let selector = scraper::Selector::parse(css).unwrap_or_else(|e| panic!("bad selector {css:?}: {e}"));
    scraper::Html::parse_document(html)
        .select(&selector)
        .filter_map(|e| e.value().attr(name).map(str::to_owned))
        .collect()
}

/// The text of every element `css` selects, trimmed, in page order.
pub fn texts_of(html: &str, css: &str) -> Vec<String> {
    let selector = scraper::Selector::parse(css).unwrap_or_else(|e| panic!("bad selector {css:?}: {e}"));
    scraper::Html::parse_document(html)
        .select(&selector)
        .map(|e| e.text().collect::<String>().trim().to_owned())
        .collect()
}

/// The value of the first `csrf_token` hidden field in a page.
pub fn csrf_in(html: &str) -> String {
    attr_of(html, r#"input[name="csrf_token"]"#, "value").expect("page has a csrf_token field")
}

/// The full key shown once on the creation page.
pub fn new_key_in(html: &str) -> Option<String> {
    text_of(html, "code#new-key")
}

pub fn location(res: &Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get_with(&self, client: &Client, path: &str) -> Response {
        client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.get_with(&self.client, path).await
    }

    pub async fn get_html(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    /// A CSRF token of `client`'s session (read from the login page, which
    /// every visitor can load).
    pub async fn csrf_for(&self, client: &Client) -> String {
        let page = self.get_with(client, "/login").await.text().await.unwrap();
        if page.contains(r#"name="csrf_token""#) {
            csrf_in(&page)
        } else {
            // Logged in: /login redirects, so take it from the account page.
            csrf_in(&self.get_with(client, "/account").await.text().await.unwrap())
        }
    }

    /// POSTs a form with `client`'s valid CSRF token added.
    pub async fn post_form_with(&self, client: &Client, path: &str, fields: &[(&str, &str)]) -> Response {
        let token = self.csrf_for(client).await;
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &token));
        client.post(self.url(path)).form(&all).send().await.expect("POST")
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.post_form_with(&self.client, path, fields).await
    }

    pub async fn register_with(&self, client: &Client, username: &str, email: &str, password: &str) -> Response {
        self.post_form_with(
            client,
            "/register",
            &[
                ("username", username),
                ("email", email),
                ("password", password),
                ("password_confirm", password),
            ],
        )
        .await
    }

    pub async fn register(&self, username: &str) -> Response {
        self.register_with(&self.client, username, &format!("{username}@example.com"), PASSWORD)
            .await
    }

    pub async fn login_with(&self, client: &Client, username: &str, password: &str) -> Response {
        self.post_form_with(client, "/login", &[("username", username), ("password", password)])
            .await
    }

    pub async fn logout_with(&self, client: &Client) -> Response {
        let token = csrf_in(&self.get_with(client, "/keys").await.text().await.unwrap());
        client
            .post(self.url("/logout"))
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .unwrap()
    }

    /// Creates a key through the page and returns (response status, page html).
    pub async fn create_key_with(
        &self,
        client: &Client,
        name: &str,
        scopes: &[&str],
        expires_in_days: &str,
    ) -> (StatusCode, String) {
        let mut fields = vec![("name", name), ("expires_in_days", expires_in_days)];
        for s in scopes {
            fields.push(("scopes", s));
        }
        let res = self.post_form_with(client, "/keys", &fields).await;
        let status = res.status();
        (status, res.text().await.unwrap())
    }

    /// Creates a key for the default browser's user; returns the full key.
    pub async fn create_key(&self, name: &str, scopes: &[&str]) -> String {
        let (status, html) = self.create_key_with(&self.client, name, scopes, "").await;
        assert_eq!(status, StatusCode::OK, "key creation failed: {html}");
        new_key_in(&html).expect("the new key is shown")
    }

    /// A registered and logged-in user in the default browser.
    pub async fn signed_up(&self, username: &str) {
        let res = self.register(username).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "registration failed");
    }

    pub async fn api_get(&self, path: &str, key: &str) -> Response {
        Client::new().get(self.url(path)).bearer_auth(key).send().await.unwrap()
    }

    pub async fn api_delete(&self, path: &str, key: &str) -> Response {
        Client::new()
            .delete(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// Row of the keys page for a key, by its display prefix (its HTML).
    pub async fn key_row(&self, client: &Client, prefix: &str) -> Option<String> {
        let html = self.get_with(client, "/keys").await.text().await.unwrap();
        select(&html, &format!(r#"tr[data-key-prefix="{prefix}"]"#))
            .into_iter()
            .next()
    }
}

/// `kw_XXXXXXXX` of a full key.
pub fn prefix_of(key: &str) -> String {
    key[..key.rfind('_').unwrap()].to_owned()
}

/// The 8-character id of a full key.
pub fn id_of(key: &str) -> String {
    let p = prefix_of(key);
    p[p.find('_').unwrap() + 1..].to_owned()
}

// ---- Browsers, users and the database -------------------------------------

/// A fresh browser whose cookie jar the test can read (to copy a cookie).
pub fn browser_with_jar() -> (Client, std::sync::Arc<reqwest::cookie::Jar>) {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    (client, jar)
}

/// A browser that sends exactly `cookie` as its `Cookie` header and keeps no jar.
pub fn browser_with_cookie(cookie: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, cookie.parse().expect("cookie header value"));
    Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The part of a full key after the display prefix: secret and checksum.
pub fn secret_of(key: &str) -> String {
    key[key.rfind('_').unwrap() + 1..].to_owned()
}

/// The inner HTML of the first cell with `class` in a table row.
pub fn cell(row: &str, class: &str) -> String {
    let selector = scraper::Selector::parse(&format!("td.{class}")).expect("a class name");
    // A lone <tr> is only kept by the parser inside a table.
    let doc = scraper::Html::parse_fragment(&format!("<table>{row}</table>"));
    doc.select(&selector).next().map(|c| c.inner_html()).unwrap_or_default()
}

impl TestApp {
    /// A new browser with a newly registered, logged-in user.
    pub async fn new_user(&self, username: &str) -> Client {
        let client = browser();
        let res = self
            .register_with(&client, username, &format!("{username}@example.com"), PASSWORD)
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "registration of {username} failed");
        client
    }

    /// Creates a key in `client`'s session; returns the full key.
    pub async fn create_key_for(&self, client: &Client, name: &str, scopes: &[&str]) -> String {
        let (status, html) = self.create_key_with(client, name, scopes, "").await;
        assert_eq!(status, StatusCode::OK, "key creation failed: {html}");
        new_key_in(&html).expect("the new key is shown")
    }

    /// A direct database connection, to arrange or check what pages cannot.
    pub fn db(&self) -> keyward::db::PooledConn {
        self.state.pool.get().expect("database connection")
    }

    pub fn key_count(&self) -> i64 {
        use diesel::prelude::*;
        use keyward::db::schema::api_keys;
        api_keys::table.count().get_result(&mut *self.db()).expect("count keys")
    }

    pub fn user_count(&self) -> i64 {
        use diesel::prelude::*;
        use keyward::db::schema::users;
        users::table.count().get_result(&mut *self.db()).expect("count users")
    }

    /// Whether `client` is logged in (the keys page shows rather than redirects).
    pub async fn is_logged_in(&self, client: &Client) -> bool {
        self.get_with(client, "/keys").await.status() == StatusCode::OK
    }
}

/// Starts `command` with its output appended to `log` and waits for the
/// line where it says it listens (`marker` followed by its address): read
/// from its stdout as it is written, so nothing polls. Panics with the log
/// if it exits first or says nothing within 30 s. For the keyward binary
/// and the protect_routes example, both started on port 0.
pub async fn spawn_announcing(
    command: &mut std::process::Command,
    log: &std::path::Path,
    marker: &'static str,
) -> (std::process::Child, String) {
    let (child, address, _) = spawn_watched(command, log, marker).await;
    (child, address)
}

/// `spawn_announcing`, also handing back its stdout line by line
/// (`Output`), for tests that wait for what it says later.
pub async fn spawn_watched(
    command: &mut std::process::Command,
    log: &std::path::Path,
    marker: &'static str,
) -> (std::process::Child, String, Output) {
    use std::io::{BufRead as _, Write as _};
    let file = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the log file")
    };
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(file()))
        .spawn()
        .expect("the program starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (said, output) = tokio::sync::watch::channel(Vec::<String>::new());
    let mut copy = file();
    // Ends, dropping `said`, when the program closes its stdout.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(copy, "{line}");
            said.send_modify(|lines| lines.push(line));
        }
    });
    let output = Output(output);
    let logs = || std::fs::read_to_string(log).unwrap_or_default();
    match output
        .line_after(Mark(0), marker, std::time::Duration::from_secs(30))
        .await
    {
        Ok(line) => {
            let address = line
                .split_once(marker)
                .map(|(_, a)| a.trim().to_owned())
                .unwrap_or_default();
            (child, address, output)
        }
        Err(Unheard::Closed) => panic!("it exited before saying where it listens; logs:\n{}", logs()),
        Err(Unheard::TimedOut) => panic!("it did not say where it listens within 30 s; logs:\n{}", logs()),
    }
}

/// A program's stdout as it writes it, one entry per line, from its start
/// (`spawn_watched`). Every line is kept: a test can wait for a line
/// written after a point it marked before acting, so a line written
/// before the wait begins is not missed.
#[derive(Clone)]
pub struct Output(tokio::sync::watch::Receiver<Vec<String>>);

/// A point in an `Output`: how many lines had been written then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark(usize);

/// Why `Output::line_after` found no line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unheard {
    /// The program closed its stdout (it exited) first.
    Closed,
    /// The deadline passed first.
    TimedOut,
}

impl Output {
    /// Now, as a point to wait for lines after: the lines read from the
    /// program so far. A line it wrote a moment before may not have been
    /// read yet, and then counts as after: mark before acting, and wait for
    /// a line only what you did can cause.
    pub fn mark(&self) -> Mark {
        Mark(self.0.borrow().len())
    }

    /// Waits until a line containing `needle` has been read after `mark`,
    /// and returns the first such line: woken by each new line,
    /// never polling. `deadline` only guards against waiting forever.
    pub async fn line_after(&self, mark: Mark, needle: &str, deadline: std::time::Duration) -> Result<String, Unheard> {
        let mut said = self.0.clone();
        let found = |lines: &Vec<String>| lines.iter().skip(mark.0).find(|l| l.contains(needle)).cloned();
        let heard = said.wait_for(|lines| found(lines).is_some());
        // Bound, not returned: the answer borrows `said`, dropped first.
        let line = match actix_web::rt::time::timeout(deadline, heard).await {
            Ok(Ok(lines)) => found(&lines).ok_or(Unheard::Closed),
            Ok(Err(_)) => Err(Unheard::Closed),
            Err(_) => Err(Unheard::TimedOut),
        };
        line
    }
}

/// The real `keyward` binary on a free loopback port, with its data (and
/// working) directory and its output in `keyward.log` there; killed when
/// dropped, even if the test fails.
pub struct Binary {
    pub child: std::process::Child,
    pub base: String,
    /// Its stdout, line by line (its logs are there: `RUST_LOG` says which).
    pub output: Output,
    log: std::path::PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    /// Starts it in `dir` with one worker, no `DATABASE_URL` and no SMTP
    /// server unless `env` sets them, and waits until `/healthz` answers.
    pub async fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Self {
        Self::spawn(dir, env, None).await
    }

    /// The same in a fresh temporary directory that lives as long as it.
    pub async fn start_fresh(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        Self::spawn(&path, env, Some(dir)).await
    }

    /// `start`, under the given umask (e.g. "022").
    pub async fn start_with_umask(dir: &std::path::Path, env: &[(&str, &str)], umask: &str) -> Self {
        Self::spawn_as(dir, env, None, Some(umask)).await
    }

    async fn spawn(dir: &std::path::Path, env: &[(&str, &str)], owned: Option<tempfile::TempDir>) -> Self {
        Self::spawn_as(dir, env, owned, None).await
    }

    async fn spawn_as(
        dir: &std::path::Path,
        env: &[(&str, &str)],
        owned: Option<tempfile::TempDir>,
        umask: Option<&str>,
    ) -> Self {
        use std::process::{Command, Stdio};
        let log = dir.join("keyward.log");
        // A fresh log for this run.
        std::fs::File::create(&log).unwrap();
        let mut command = match umask {
            None => Command::new(env!("CARGO_BIN_EXE_keyward")),
            Some(mask) => {
                let mut sh = Command::new("sh");
                sh.args([
                    "-c",
                    &format!("umask {mask} && exec \"$0\""),
                    env!("CARGO_BIN_EXE_keyward"),
                ]);
                sh
            }
        };
        command
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env_remove("KEYWARD_SMTP_URL")
            // Port 0: the binary says which port it got (no race for one).
            .env("KEYWARD_BIND", "127.0.0.1:0")
            .env("KEYWARD_DATA_DIR", dir)
            .env("KEYWARD_WORKERS", "1")
            .env("RUST_LOG", "info");
        for (name, value) in env {
            command.env(name, value);
        }
        let (child, base, output) = spawn_watched(command.stdin(Stdio::null()), &log, "Keyward listening on ").await;
        let binary = Self {
            child,
            base,
            output,
            log,
            _dir: owned,
        };
        // It listens already: the request waits in the backlog if need be.
        let health = Client::new().get(binary.url("/healthz")).send().await;
        assert!(
            health.as_ref().is_ok_and(|r| r.status() == StatusCode::OK),
            "keyward is not healthy ({health:?}); logs:\n{}",
            binary.logs()
        );
        binary
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Kills it and returns everything it wrote.
    /// Stops it as a supervisor would (SIGTERM) and waits for it to exit;
    /// returns how it exited. A watchdog kills it after 30 s, and the test
    /// then fails saying so.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let (exited, watched) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let hung = matches!(
                watched.recv_timeout(std::time::Duration::from_secs(30)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            );
            if hung {
                let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
            }
            hung
        });
        let status = self.child.wait().expect("wait for keyward");
        let _ = exited.send(());
        let hung = watchdog.join().unwrap_or(true);
        assert!(!hung, "no exit within 30 s of SIGTERM; logs:\n{}", self.logs());
        status
    }

    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs()
    }

    /// Everything it wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn page(&self, client: &Client, path: &str) -> String {
        client.get(self.url(path)).send().await.unwrap().text().await.unwrap()
    }

    /// Posts a form with the CSRF token from `form_page`; returns the
    /// answer and the token used.
    pub async fn post_form(
        &self,
        client: &Client,
        form_page: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (Response, String) {
        let token = csrf_in(&self.page(client, form_page).await);
        let mut all = fields.to_vec();
        all.push(("csrf_token", &token));
        (client.post(self.url(path)).form(&all).send().await.unwrap(), token)
    }
}
