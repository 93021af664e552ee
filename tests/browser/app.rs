//! The real app, in-process, for the browser: its own temporary data
//! directory (SQLite file and mail outbox) and a port of its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use keyward::config::Settings;
use keyward::startup::Application;

pub const PASSWORD: &str = "a perfectly fine passphrase";

pub struct TestApp {
    /// `http://127.0.0.1:{port}`, also the configured base URL, so the
    /// emailed reset link is the very link the browser opens.
    pub address: String,
    pub dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn() -> Self {
        static LOGS: std::sync::Once = std::sync::Once::new();
        LOGS.call_once(|| {
            if std::env::var("TEST_LOG").is_ok() {
                keyward::telemetry::init();
            }
        });
        let dir = tempfile::tempdir().expect("temp dir");
        // The base URL must name the port before the app starts: bind port
        // 0 here and hand the listener over.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("its address").port();
        let mut settings = Settings::with_data_dir(dir.path());
        settings.base_url = format!("http://127.0.0.1:{port}");
        settings.workers = Some(1);
        settings.last_used_flush_seconds = 1;
        let app = Application::build_on(settings, listener).await.expect("app builds");
        actix_web::rt::spawn(app.run_until_stopped());
        Self {
            address: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    /// The mails written to the outbox so far, oldest first.
    pub fn mails(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.outbox()) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files.iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect()
    }

    /// The link of the newest password-reset mail, waiting (up to 10 s) for
    /// it: the mail is sent in the background, after the page answered.
    pub async fn reset_link(&self) -> String {
        let start = Instant::now();
        loop {
            let link = self.mails().iter().rev().find_map(|m| {
                let start = m.find("/password/reset?token=")?;
                let from = m[..start].rfind("http")?;
                Some(m[from..].chars().take_while(|c| !c.is_whitespace()).collect::<String>())
            });
            if let Some(link) = link {
                return link;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no reset mail in the outbox");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Calls the API with `key` as a program would; returns the status.
    pub async fn call_api(&self, key: &str) -> u16 {
        reqwest::Client::new()
            .get(format!("{}/api/v1/whoami", self.address))
            .bearer_auth(key)
            .send()
            .await
            .expect("API call")
            .status()
            .as_u16()
    }
}
