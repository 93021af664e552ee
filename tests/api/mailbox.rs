//! Reading mail the app sent: the file outbox, or a real SMTP server
//! (Debian's python3-aiosmtpd) started on 127.0.0.1 for the test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// All `.eml`/maildir messages in `dir`, oldest first.
pub fn messages_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    files.iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect()
}

/// Waits (up to 10 s) until `dir` holds at least `n` messages.
pub async fn wait_for_messages(dir: &Path, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let m = messages_in(dir);
        if m.len() >= n || start.elapsed() > Duration::from_secs(10) {
            return m;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The reset link in a mail.
pub fn reset_link(mail: &str) -> Option<String> {
    let start = mail.find("http")?;
    let link: String = mail[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    link.contains("/password/reset?token=").then_some(link)
}

pub fn token_of(link: &str) -> String {
    link.split("token=").nth(1).unwrap_or_default().to_owned()
}

/// A real SMTP server on 127.0.0.1 writing a maildir; killed on drop.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: tempfile::TempDir,
    child: Child,
}

impl SmtpServer {
    /// None (after printing "skipped: …") when aiosmtpd is not installed.
    pub fn start() -> Option<Self> {
        let python = ["/usr/bin/python3", "python3"].into_iter().find(|p| {
            Command::new(p)
                .args(["-c", "import aiosmtpd"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let Some(python) = python else {
            println!("skipped: python3-aiosmtpd is not installed (apt-get install python3-aiosmtpd)");
            return None;
        };
        // aiosmtpd cannot be handed a listening socket: a free port is
        // picked, released and given to it. Another process may take it in
        // between; aiosmtpd then exits, and a new port is tried.
        let maildir = tempfile::tempdir().ok()?;
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            let mut child = Command::new(python)
                .args([
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-l",
                    &format!("127.0.0.1:{port}"),
                    "-c",
                    "aiosmtpd.handlers.Mailbox",
                ])
                .arg(maildir.path().join("mail"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            // Wait until it accepts connections, or has exited.
            let start = Instant::now();
            loop {
                let exited = child.try_wait().ok().flatten().is_some();
                if exited {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(Self { port, maildir, child });
                }
                if start.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    panic!("aiosmtpd did not start");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("aiosmtpd could not listen on any of 5 free ports");
    }

    pub fn new_mail_dir(&self) -> PathBuf {
        self.maildir.path().join("mail").join("new")
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
