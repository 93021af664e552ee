//! Headless Chromium driven over WebDriver (fantoccini): starting and
//! stopping chromedriver, what a user does (visit, type, click, press keys),
//! and the checks every page must pass (no console errors, no CSP
//! violations). On a failure the screenshot and the page source land in
//! `target/browser-failures/`.

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::app::TestApp;

/// Exactly the flags the CI machine needs: no sandbox (containers), no GPU,
/// and nothing that reaches for the network (there is none).
const CHROMIUM_ARGS: [&str; 7] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The viewport of the journey and of the README screenshots.
pub const DESKTOP: (u32, u32) = (1280, 900);
/// The narrowest phone the portal supports.
pub const MOBILE: (u32, u32) = (360, 740);

/// How long an element may take to appear after a navigation.
const PATIENCE: Duration = Duration::from_secs(10);

fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Debian's `/usr/bin/chromium` is a shell script that adds flags of its
/// own; the binary behind it gets exactly ours.
fn chromium() -> Option<PathBuf> {
    let real = Path::new("/usr/lib/chromium/chromium");
    if real.is_file() {
        return Some(real.to_owned());
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|n| in_path(n))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A chromedriver on a free 127.0.0.1 port. Dropping it ends the browser
/// session (so no Chromium is left behind, even when a test panics) and then
/// chromedriver itself.
pub struct Driver {
    child: Child,
    port: u16,
    chromium: PathBuf,
    session: Option<String>,
    profile: tempfile::TempDir,
}

impl Driver {
    /// None, after printing `skipped: …`, when Chromium or chromedriver is
    /// not installed.
    pub fn start() -> Option<Self> {
        let (Some(chromium), Some(chromedriver)) = (chromium(), in_path("chromedriver")) else {
            println!("skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
            return None;
        };
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Self {
            child,
            port,
            chromium,
            session: None,
            profile: tempfile::tempdir().expect("temp dir for the browser profile"),
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < PATIENCE, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(driver)
    }

    /// Opens a fresh Chromium (new profile, desktop viewport, clipboard
    /// allowed for the app) for the app at `base`.
    pub async fn open(&mut self, base: &str) -> Browser {
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", self.profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": { "binary": self.chromium, "args": args },
        });
        let Value::Object(caps) = caps else { unreachable!() };
        let webdriver = format!("http://127.0.0.1:{}", self.port);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .expect("Chromium starts under chromedriver");
        let session = client.session_id().await.expect("session id").expect("a session");
        self.session = Some(session.clone());
        let browser = Browser {
            client,
            session_url: format!("{webdriver}/session/{session}"),
            http: reqwest::Client::new(),
            base: base.to_owned(),
        };
        browser.viewport(DESKTOP, false).await;
        // The copy button writes the clipboard; the test reads it back.
        browser
            .cdp(
                "Browser.grantPermissions",
                json!({ "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"], "origin": base }),
            )
            .await;
        browser
    }

    pub async fn close(&mut self, browser: Browser) {
        // Ends the session: chromedriver quits Chromium.
        let _ = browser.client.close().await;
        self.session = None;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Synchronous on purpose: this may run while a panic unwinds.
        if let Some(session) = self.session.take() {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let request = format!(
                    "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.port
                );
                if stream.write_all(request.as_bytes()).is_ok() {
                    let _ = stream.read_to_end(&mut Vec::new());
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `journey` against a fresh app in a fresh Chromium. When it fails,
/// saves what the browser showed under `target/browser-failures/{name}.*`
/// before failing the test.
pub async fn in_browser<F, Fut>(name: &str, journey: F)
where
    F: FnOnce(TestApp, Browser) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let Some(driver) = Driver::start() else {
        return;
    };
    let app = TestApp::spawn().await;
    let base = app.address.clone();
    drive(name, driver, &base, app, journey).await;
}

/// Runs `journey` in a fresh Chromium opened on `base`, with `app`
/// (whatever serves `base`: an in-process app, a load balancer), saving
/// what the browser showed when it fails.
pub async fn drive<A, F, Fut>(name: &str, mut driver: Driver, base: &str, app: A, journey: F)
where
    F: FnOnce(A, Browser) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let browser = driver.open(base).await;
    // A task of its own so that a failed assertion comes back here as an
    // error, with the browser still open to photograph.
    let outcome = actix_web::rt::spawn(journey(app, browser.clone())).await;
    if outcome.is_err() {
        browser.save_failure(name).await;
    }
    driver.close(browser).await;
    match outcome {
        Ok(()) => {}
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("{name}: {e}"),
    }
}

/// What the focused element looks like.
#[derive(Debug, serde::Deserialize)]
pub struct Focus {
    /// Tag, id or name, and text: enough to recognise it in a message.
    pub describe: String,
    /// The index `mark_interactive` gave it, if any.
    pub index: Option<usize>,
    /// An outline or a box shadow at least 2px wide is drawn around it.
    pub visible: bool,
}

/// One browser tab, as a user drives it.
#[derive(Clone)]
pub struct Browser {
    pub client: Client,
    session_url: String,
    http: reqwest::Client,
    base: String,
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A WebDriver command fantoccini has no method for.
    async fn command(&self, path: &str, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}/{path}", self.session_url))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        let status = res.status();
        let mut value: Value = res.json().await.unwrap_or_default();
        assert!(status.is_success(), "WebDriver {path} failed: {value}");
        value["value"].take()
    }

    /// A Chrome DevTools Protocol command, through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.command("goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
            .await
    }

    /// Sets the page's viewport (CSS pixels), as on a phone when `mobile`.
    pub async fn viewport(&self, (width, height): (u32, u32), mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
    }

    /// Makes the page see `prefers-color-scheme: dark` (or light), with
    /// reduced motion so that the colours change at once, not in a
    /// transition half-way through a screenshot.
    pub async fn color_scheme(&self, dark: bool) {
        let value = if dark { "dark" } else { "light" };
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [
                { "name": "prefers-color-scheme", "value": value },
                { "name": "prefers-reduced-motion", "value": "reduce" },
            ] }),
        )
        .await;
    }

    /// Console messages since the last call (chromedriver's browser log).
    async fn console(&self) -> Vec<Value> {
        match self.command("se/log", json!({ "type": "browser" })).await {
            Value::Array(entries) => entries,
            _ => Vec::new(),
        }
    }

    /// Errors in the console since the last check: script errors, failed
    /// loads and Content-Security-Policy violations, except the failed load
    /// of this very page with `status` (a form answered 401 or 422 on
    /// purpose).
    async fn console_errors(&self, status: Option<u16>) -> Vec<String> {
        let here = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        self.console()
            .await
            .into_iter()
            .filter_map(|e| {
                let level = e["level"].as_str().unwrap_or_default().to_owned();
                let message = e["message"].as_str().unwrap_or_default().to_owned();
                let csp = message.contains("Content Security Policy");
                let expected = status.is_some_and(|s| {
                    message.starts_with(&format!("{here} - Failed to load resource"))
                        && message.contains(&format!("status of {s} "))
                });
                ((level == "SEVERE" || csp) && !expected).then(|| format!("{level}: {message}"))
            })
            .collect()
    }

    /// Asserts the console has shown no error since the last check.
    pub async fn assert_clean_console(&self) {
        let errors = self.console_errors(None).await;
        assert!(
            errors.is_empty(),
            "console errors on {}:\n{}",
            self.path().await,
            errors.join("\n")
        );
    }

    /// Like `assert_clean_console`, but this page was answered with `status`.
    pub async fn assert_clean_console_but_status(&self, status: u16) {
        let errors = self.console_errors(Some(status)).await;
        assert!(
            errors.is_empty(),
            "console errors on {}:\n{}",
            self.path().await,
            errors.join("\n")
        );
    }

    /// Opens `path` of the app; its console must stay clean.
    pub async fn visit(&self, path: &str) {
        self.client.goto(&self.url(path)).await.expect("navigation");
        self.assert_clean_console().await;
    }

    /// The current path and query, like `/keys`.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits (boundedly) until the current path is `path`.
    pub async fn wait_for_path(&self, path: &str) {
        let start = Instant::now();
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "expected to arrive at {path}, still at {now}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("no {css} on {}: {e}", self.path().await),
        }
    }

    /// Whether something matches `css` right now.
    pub async fn has(&self, css: &str) -> bool {
        !self.client.find_all(Locator::Css(css)).await.expect("find").is_empty()
    }

    /// The visible text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("element text")
    }

    /// Waits until the element matching `css` shows `expected` in its text.
    pub async fn wait_for_text(&self, css: &str, expected: &str) {
        let start = Instant::now();
        loop {
            let text = self.text(css).await;
            if text.contains(expected) {
                return;
            }
            assert!(start.elapsed() < PATIENCE, "{css} shows {text:?}, not {expected:?}");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `value` into the (emptied) field matching `css`.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear field");
        if !value.is_empty() {
            field.send_keys(value).await.expect("type into field");
        }
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Clicks `css`, which leads to another page, and waits for that page to
    /// show `then`. Its console must stay clean.
    pub async fn click_through(&self, css: &str, then: &str) {
        self.mark_page().await;
        self.click(css).await;
        self.wait_for_new_page().await;
        self.find(then).await;
        self.assert_clean_console().await;
    }

    /// Tags the current document, so that `wait_for_new_page` can tell when
    /// the browser has replaced it (even by a page at the same URL).
    pub async fn mark_page(&self) {
        self.run("window.__kwOld = true;", vec![]).await;
    }

    /// Waits until the document tagged by `mark_page` has been replaced and
    /// the new one has loaded.
    pub async fn wait_for_new_page(&self) {
        let start = Instant::now();
        loop {
            let done = self
                .client
                .execute(
                    "return window.__kwOld !== true && document.readyState === 'complete';",
                    vec![],
                )
                .await;
            // Errors are expected while the navigation is under way.
            if matches!(done, Ok(Value::Bool(true))) {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "no new page loaded after {}",
                self.path().await
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reloads the page until the text of `css` satisfies `ok`.
    pub async fn refresh_until(&self, css: &str, ok: impl Fn(&str) -> bool) {
        let start = Instant::now();
        loop {
            let text = self.text(css).await;
            if ok(&text) {
                return;
            }
            assert!(start.elapsed() < PATIENCE, "{css} still shows {text:?}");
            actix_web::rt::time::sleep(Duration::from_millis(200)).await;
            self.client.refresh().await.expect("reload");
            self.assert_clean_console().await;
        }
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.expect("find").len()
    }

    /// The HTML of the page as the browser has it.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// Whether the focused element matches `css`.
    pub async fn focused_matches(&self, css: &str) -> bool {
        self.run("return document.activeElement.matches(arguments[0]);", vec![css.into()])
            .await
            .as_bool()
            .unwrap_or(false)
    }

    /// Presses and releases one key (see `fantoccini::key::Key`).
    pub async fn press(&self, key: impl Into<char>) {
        let key = key.into();
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(actions).await.expect("key press");
    }

    /// Types `text` with the keyboard into whatever has the focus.
    pub async fn type_text(&self, text: &str) {
        let mut actions = KeyActions::new("keyboard".into());
        for c in text.chars() {
            actions = actions
                .then(KeyAction::Down { value: c })
                .then(KeyAction::Up { value: c });
        }
        self.client.perform_actions(actions).await.expect("typing");
    }

    /// Runs `script` in the page (`arguments[0]`… are `args`).
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// What a user would read from their clipboard.
    pub async fn clipboard(&self) -> String {
        let text = self
            .client
            .execute_async(
                "const done = arguments[0];
                 navigator.clipboard.readText().then(done, e => done('clipboard error: ' + e));",
                vec![],
            )
            .await
            .expect("clipboard read");
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Gives every element a keyboard user must be able to reach an index
    /// (a script property, not an attribute: the page is not changed) and
    /// returns their descriptions, in document order.
    pub async fn mark_interactive(&self) -> Vec<String> {
        let list = self
            .run(
                "const all = document.querySelectorAll(
                   'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex=\"-1\"])');
                 const seen = [];
                 for (const el of all) {
                   const r = el.getBoundingClientRect();
                   if (el.disabled || r.width === 0 || r.height === 0 || getComputedStyle(el).visibility === 'hidden') continue;
                   el.__kw_index = seen.length;
                   seen.push(el.tagName.toLowerCase() + ' ' + (el.id || el.name || el.textContent.trim().slice(0, 40)));
                 }
                 return seen;",
                vec![],
            )
            .await;
        serde_json::from_value(list).expect("list of elements")
    }

    /// The focused element and whether its focus can be seen.
    pub async fn focus(&self) -> Focus {
        let value = self
            .run(
                "const el = document.activeElement;
                 const s = getComputedStyle(el);
                 const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
                 const shadow = s.boxShadow !== 'none';
                 return {
                   describe: el.tagName.toLowerCase() + ' ' + (el.id || el.name || el.textContent.trim().slice(0, 40)),
                   index: el.__kw_index === undefined ? null : el.__kw_index,
                   visible: el !== document.body && el.matches(':focus-visible') && (outline || shadow),
                 };",
                vec![],
            )
            .await;
        serde_json::from_value(value).expect("focus description")
    }

    /// Saves a screenshot to `docs/screenshots/{name}.png`, only when
    /// `KEYWARD_SCREENSHOTS=1` (the README's pictures are refreshed on
    /// purpose, never as a side effect of running the tests).
    pub async fn screenshot_for_docs(&self, name: &str) {
        if std::env::var("KEYWARD_SCREENSHOTS").as_deref() != Ok("1") {
            return;
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).expect("docs/screenshots");
        // No focus ring in the pictures, and let a just-changed viewport or
        // colour scheme settle into a frame.
        self.run(
            "document.activeElement.blur();
             return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));",
            vec![],
        )
        .await;
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Keeps what the browser shows for the failure report.
    async fn save_failure(&self, name: &str) {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        let dir = target.join("browser-failures");
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(dir.join(format!("{name}.png")), png);
        }
        if let Ok(html) = self.client.source().await {
            let _ = std::fs::write(dir.join(format!("{name}.html")), html);
        }
        eprintln!("browser state saved to {}/{name}.{{png,html}}", dir.display());
    }
}
