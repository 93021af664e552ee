//! Outgoing mail with lettre: SMTP from `KEYWARD_SMTP_URL`, or, without it,
//! `.eml` files in `DATA_DIR/outbox/`. Sending never blocks a page: mail
//! goes out on a thread of its own, in order, and failures are logged. (Not
//! on actix's blocking pool: that is kept small and for the database, and a
//! slow SMTP server must not hold its threads.) Message bodies
//! (which hold reset links) are never logged.

pub mod texts;

use secrecy::ExposeSecret as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use anyhow::Context as _;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::Body;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{FileTransport, Message, SmtpTransport, Transport as _};

use crate::config::Settings;

enum Transport {
    Smtp(Box<SmtpTransport>),
    /// lettre's file transport into this directory: one `{uuid}.eml` per
    /// mail, made owner-only once written (the directory already is).
    Outbox(FileTransport, PathBuf),
}

pub struct Mailer {
    from: Mailbox,
    transport: Transport,
    /// The mail thread's queue, started with the first mail. The thread
    /// ends when the mailer is dropped.
    queue: OnceLock<SyncSender<(Message, MailKind)>>,
    /// Mails queued and not yet delivered (or failed), and a wake-up for
    /// whoever waits for none (`idle`).
    pending: AtomicUsize,
    drained: tokio::sync::Notify,
}

/// Mails waiting for the mail thread at most; beyond this they are dropped
/// (and logged): the senders are rate-limited, so only a stalled SMTP
/// server fills it.
const QUEUE: usize = 256;

/// What a mail is for, in logs.
#[derive(Clone, Copy, Debug)]
pub enum MailKind {
    PasswordReset,
    PasswordChanged,
    /// Another account was registered with this address.
    AddressReused,
    /// A key was created, rotated, deleted, or is about to stop working.
    KeyNotice,
    /// A link to confirm a new email address.
    EmailChange,
    /// Two-factor on or off, the address changed, the account deleted.
    AccountNotice,
}

impl Mailer {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let from: Mailbox = settings
            .mail_from
            .parse()
            .with_context(|| format!("KEYWARD_MAIL_FROM {:?} is not a valid mailbox", settings.mail_from))?;
        let transport = match &settings.smtp_url {
            Some(url) if !url.expose_secret().trim().is_empty() => {
                Transport::Smtp(Box::new(smtp_transport(url.expose_secret().trim())?))
            }
            _ => {
                let dir = settings.data_dir.join("outbox");
                Transport::Outbox(FileTransport::new(&dir), dir)
            }
        };
        Ok(Self {
            from,
            transport,
            queue: OnceLock::new(),
            pending: AtomicUsize::new(0),
            drained: tokio::sync::Notify::new(),
        })
    }

    pub fn describe(&self) -> &'static str {
        match self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::Outbox(..) => "outbox",
        }
    }

    /// Queues a plain-text mail and returns at once.
    pub fn send_in_background(self: &Arc<Self>, to: &str, subject: &str, body: String, kind: MailKind) {
        let message = match self.build(to, subject, body) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = ?e, ?kind, "cannot build mail");
                return;
            }
        };
        let queue = self.queue.get_or_init(|| self.start_thread());
        self.pending.fetch_add(1, SeqCst);
        let refused = match queue.try_send((message, kind)) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => "mail queue full; mail dropped",
            Err(TrySendError::Disconnected(_)) => "mail thread stopped; mail dropped",
        };
        tracing::error!(target: "keyward::mail", ?kind, "{refused}");
        self.done_one();
    }

    /// Waits until every mail queued so far has been delivered (or has
    /// failed): what shutdown and tests wait for, rather than a fixed time.
    pub async fn idle(&self) {
        loop {
            // Registered before the check, so a wake-up in between counts.
            let drained = self.drained.notified();
            if self.pending.load(SeqCst) == 0 {
                return;
            }
            drained.await;
        }
    }

    fn done_one(&self) {
        if self.pending.fetch_sub(1, SeqCst) == 1 {
            self.drained.notify_waiters();
        }
    }

    fn start_thread(self: &Arc<Self>) -> SyncSender<(Message, MailKind)> {
        let (tx, rx) = mpsc::sync_channel::<(Message, MailKind)>(QUEUE);
        let mailer: Weak<Self> = Arc::downgrade(self);
        let started = std::thread::Builder::new().name("keyward-mail".into()).spawn(move || {
            while let Ok((message, kind)) = rx.recv() {
                let Some(mailer) = mailer.upgrade() else { break };
                match mailer.deliver(&message) {
                    Ok(where_) => {
                        tracing::info!(target: "keyward::mail", ?kind, delivered = %where_, "mail sent")
                    }
                    Err(e) => {
                        tracing::error!(target: "keyward::mail", ?kind, error = ?e, "mail delivery failed")
                    }
                }
                mailer.done_one();
            }
        });
        if let Err(e) = started {
            // The receiver is gone with the closure: sends report it.
            tracing::error!(target: "keyward::mail", error = %e, "cannot start the mail thread");
        }
        tx
    }

    fn build(&self, to: &str, subject: &str, body: String) -> anyhow::Result<Message> {
        let to: Mailbox = to.parse().context("invalid recipient")?;
        // 7bit whenever possible, so that a reset link stays on one line,
        // unbroken by quoted-printable.
        // SMTP wants CRLF line ends; bare LFs would force an encoding too.
        let body = body.replace("\r\n", "\n").replace('\n', "\r\n");
        // lettre's own 7bit choice stops at 76-character lines; RFC 5322
        // allows 998, which is what we check before sending the text as is.
        let plain = body.is_ascii() && !body.contains('\0') && body.split("\r\n").all(|l| l.len() <= 998);
        let body = if plain {
            Body::dangerous_pre_encoded(body.into_bytes(), ContentTransferEncoding::SevenBit)
        } else {
            Body::new(body)
        };
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .context("building message")
    }

    /// Sends one message synchronously; says where it went.
    fn deliver(&self, message: &Message) -> anyhow::Result<String> {
        match &self.transport {
            Transport::Smtp(t) => {
                t.send(message).context("SMTP send failed")?;
                Ok("smtp".into())
            }
            Transport::Outbox(files, dir) => {
                // Messages hold live reset links: owner-only, whatever the umask.
                crate::files::private_dir(dir)?;
                let id = files.send(message).context("cannot write to the outbox")?;
                let path = dir.join(format!("{id}.eml"));
                crate::files::make_private(&path)?;
                Ok(path.display().to_string())
            }
        }
    }
}

/// `smtps://` is implicit TLS (port 465 by default). `smtp://` requires
/// STARTTLS (port 587 by default), except on a loopback host, where a local
/// relay without TLS is accepted (STARTTLS is still used when offered), or
/// when `?tls=opportunistic` is given.
fn smtp_transport(raw: &str) -> anyhow::Result<SmtpTransport> {
    let url = url::Url::parse(raw).map_err(|_| anyhow::anyhow!("KEYWARD_SMTP_URL is not a valid URL"))?;
    let host = url
        .host_str()
        .context("KEYWARD_SMTP_URL has no host")?
        .trim_matches(['[', ']'])
        .to_owned();
    let opportunistic = url
        .query_pairs()
        .any(|(k, v)| k == "tls" && (v == "opportunistic" || v == "none"))
        || host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let mut builder = match url.scheme() {
        "smtps" => SmtpTransport::relay(&host)?.port(url.port().unwrap_or(465)),
        "smtp" if opportunistic => {
            let params = TlsParameters::new(host.clone())?;
            SmtpTransport::builder_dangerous(&host)
                .port(url.port().unwrap_or(587))
                .tls(Tls::Opportunistic(params))
        }
        "smtp" => SmtpTransport::starttls_relay(&host)?.port(url.port().unwrap_or(587)),
        other => anyhow::bail!("KEYWARD_SMTP_URL scheme must be smtp or smtps, not {other}"),
    };
    if !url.username().is_empty() {
        let user = percent_encoding::percent_decode_str(url.username())
            .decode_utf8_lossy()
            .into_owned();
        let pass = percent_encoding::percent_decode_str(url.password().unwrap_or(""))
            .decode_utf8_lossy()
            .into_owned();
        builder = builder.credentials(Credentials::new(user, pass));
    }
    Ok(builder.timeout(Some(Duration::from_secs(15))).build())
}
