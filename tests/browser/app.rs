//! The real app, in-process, for the browser: its own temporary data
//! directory (SQLite file and mail outbox) and a port of its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use crate::helpers::PASSWORD;

pub struct TestApp {
    /// `http://127.0.0.1:{port}`, also the configured base URL, so the
    /// emailed reset link is the very link the browser opens.
    pub address: String,
    /// The API suite's harness, which started the app.
    pub inner: crate::helpers::TestApp,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let inner = crate::helpers::spawn_app().await;
        Self {
            address: inner.address.clone(),
            inner,
        }
    }

    fn outbox(&self) -> PathBuf {
        self.inner.dir.path().join("outbox")
    }

    /// The mails written to the outbox so far, oldest first.
    pub fn mails(&self) -> Vec<String> {
        crate::mailbox::messages_in(&self.outbox())
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
