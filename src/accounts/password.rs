//! Argon2id hashing, always off the async executor, on a bounded set of
//! threads of its own so a login storm cannot starve API verification.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, OnceLock, PoisonError};

use anyhow::Context as _;
use argon2::password_hash::{self, rand_core::OsRng, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::domain::Password;

/// OWASP's minimum for Argon2id: m=19456 KiB, t=2, p=1.
pub const M_COST: u32 = 19_456;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

fn params() -> Params {
    Params::new(M_COST, T_COST, P_COST, None).expect("static Argon2 params are valid")
}

thread_local! {
    /// This thread's Argon2 memory, kept from one hash to the next while
    /// hashes are queued, and given back when the queue runs dry. Allocating
    /// and freeing 19 MiB per hash fragments glibc's heap under its default
    /// settings (after the first free it stops giving such blocks back),
    /// which left a login storm at 90-700 MiB resident; kept for good, it
    /// would be 19 MiB of every idle server's memory. The binary's malloc
    /// policy (src/main.rs, `tune_malloc`: a fixed 128 KiB mmap threshold)
    /// is what makes the given-back block leave the process; a program that
    /// embeds the portal without that policy keeps glibc's defaults.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Gives this thread's Argon2 memory back (the binary maps blocks this
/// large on their own, so the pages return to the system at once).
fn release_memory() {
    BLOCKS.with(|blocks| *blocks.borrow_mut() = Vec::new());
}

/// Argon2 into a PHC hash, as `PasswordHasher::hash_password` does, but in
/// this thread's kept memory.
fn phc<'a>(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: Salt<'a>,
) -> password_hash::Result<PasswordHash<'a>> {
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let argon = Argon2::new(algorithm, version, params.clone());
    let output = Output::init_with(params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN), |out| {
        BLOCKS.with(|blocks| {
            let mut blocks = blocks.borrow_mut();
            if blocks.len() < params.block_count() {
                blocks.resize(params.block_count(), Block::default());
            }
            argon.hash_password_into_with_memory(password, salt_bytes, out, &mut blocks[..])
        })?;
        Ok(())
    })?;
    Ok(PasswordHash {
        algorithm: algorithm.ident(),
        version: Some(version.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt),
        hash: Some(output),
    })
}

/// `PasswordVerifier::verify_password`, in this thread's kept memory: the
/// stored hash's own algorithm, version and parameters, and a constant-time
/// comparison of the outputs.
fn phc_matches(password: &[u8], stored: &PasswordHash<'_>) -> bool {
    let (Some(salt), Some(expected)) = (stored.salt, &stored.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(stored.algorithm),
        stored.version.map_or(Ok(Version::default()), Version::try_from),
        Params::try_from(stored),
    ) else {
        return false;
    };
    phc(algorithm, version, params, password, salt).is_ok_and(|h| h.hash.as_ref() == Some(expected))
}

type Job = Box<dyn FnOnce() + Send>;

/// How much a hash may wait for: anonymous work (a registration) gets a
/// small share of the queue, so a flood of sign-ups is shed long before it
/// delays the logins of people who have an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Logins, password changes and resets.
    Normal,
    /// Registrations: anyone may send them.
    Low,
}

/// Hashes queued or running, at most: beyond this a request is answered
/// 503 with `Retry-After` at once rather than queued. One hash takes
/// ~20-30 ms on one thread, so a full queue is about a second of work.
const MAX_QUEUED: usize = 48;
/// Of which registrations, at most.
const MAX_QUEUED_LOW: usize = 4;

static QUEUED: AtomicUsize = AtomicUsize::new(0);
static QUEUED_LOW: AtomicUsize = AtomicUsize::new(0);

/// Too many hashes are waiting: answer 503 with `Retry-After`.
#[derive(Debug, thiserror::Error)]
#[error("too many password hashes are queued")]
pub struct Busy;

/// A place in the queue, given back when the job ends (or is dropped).
struct Slot(Priority);

impl Slot {
    fn take(priority: Priority) -> Result<Self, Busy> {
        let claim = |counter: &AtomicUsize, max: usize| {
            counter
                .fetch_update(SeqCst, SeqCst, |n| (n < max).then_some(n + 1))
                .is_ok()
        };
        if priority == Priority::Low && !claim(&QUEUED_LOW, MAX_QUEUED_LOW) {
            return Err(Busy);
        }
        if !claim(&QUEUED, MAX_QUEUED) {
            if priority == Priority::Low {
                QUEUED_LOW.fetch_sub(1, SeqCst);
            }
            return Err(Busy);
        }
        Ok(Self(priority))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        QUEUED.fetch_sub(1, SeqCst);
        if self.0 == Priority::Low {
            QUEUED_LOW.fetch_sub(1, SeqCst);
        }
    }
}

/// Hashes run on threads of their own, one per two cores, queued in order:
/// at most half the cores hash at once and the rest stay free for the API.
///
/// Not on actix's blocking pool: a hash allocates 19 MiB, and glibc keeps
/// what a thread frees in that thread's malloc arena (its mmap threshold
/// rises after the first large free). Spread over the dozens of threads of
/// the blocking pool, a login storm left hundreds of MiB resident; a fixed
/// set of hashing threads keeps it to 19 MiB each, and only while busy.
fn queue() -> anyhow::Result<&'static mpsc::Sender<Job>> {
    static QUEUE: OnceLock<Result<mpsc::Sender<Job>, String>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            for i in 0..(cores / 2).max(1) {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("argon2-{i}"))
                    .spawn(move || {
                        yield_to_the_api();
                        hash_jobs(&rx)
                    })
                    .map_err(|e| format!("cannot start a hashing thread: {e}"))?;
            }
            Ok(tx)
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The nice value of the hashing threads. Under an API flood on every
/// core, a hash at the default priority takes its full share of a core for
/// ~20 ms at a time, and API calls queue behind it (p99 from 7.9 to 11.3 ms
/// in the load test, BENCHMARKS.md); at 10 it gets about a tenth of a
/// busy core and API calls preempt it, while logins still run at ~30/s
/// during such a flood and at full speed on an idle machine.
const HASHING_NICE: i32 = 10;

/// Lowers this thread's scheduling priority (Linux keeps a nice value per
/// thread). Without it the server still works, with a longer tail.
fn yield_to_the_api() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), HASHING_NICE) {
        tracing::warn!(error = %e, "cannot lower the priority of the hashing thread");
    }
}

/// Runs hashing jobs until the queue closes, giving Argon2's memory back
/// whenever the queue is empty.
fn hash_jobs(rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let next = {
            let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            match rx.try_recv() {
                Err(mpsc::TryRecvError::Empty) => {
                    release_memory();
                    rx.recv().ok()
                }
                next => next.ok(),
            }
        };
        let Some(job) = next else { return };
        // A panicking hash fails its own request (its answer
        // channel closes), not the thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

async fn blocking<T: Send + 'static>(priority: Priority, f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    let slot = Slot::take(priority)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _slot = slot;
        let _ = tx.send(f());
    });
    queue()?
        .send(job)
        .map_err(|_| anyhow::anyhow!("the hashing threads have stopped"))?;
    rx.await.context("hashing task failed")
}

pub fn hash_now(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    phc(
        Algorithm::Argon2id,
        Version::V0x13,
        params(),
        password.as_bytes(),
        salt.as_salt(),
    )
    .map(|h| h.to_string())
    .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
}

pub async fn hash(password: Password, priority: Priority) -> anyhow::Result<String> {
    blocking(priority, move || hash_now(password.expose())).await?
}

/// Hashes a password that is not re-checked against today's rules (a
/// correct legacy password being re-hashed at login).
pub async fn hash_raw(password: String) -> anyhow::Result<String> {
    blocking(Priority::Normal, move || hash_now(&password)).await?
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, but the stored hash is weaker than today's parameters.
    YesButRehash,
}

pub fn verify_now(stored: &str, candidate: &str) -> Verified {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verified::No;
    };
    if !phc_matches(candidate.as_bytes(), &parsed) {
        return Verified::No;
    }
    let strong = parsed.algorithm == Algorithm::Argon2id.ident()
        && parsed.version == Some(Version::V0x13.into())
        && Params::try_from(&parsed)
            .map(|p| p.m_cost() >= M_COST && p.t_cost() >= T_COST && p.p_cost() >= P_COST)
            .unwrap_or(false);
    if strong {
        Verified::Yes
    } else {
        Verified::YesButRehash
    }
}

/// Checks `candidate` against `stored`, or against a dummy hash when there
/// is no user, so both cases cost one full Argon2 verification.
///
/// The candidate is checked in Unicode NFC; a password set before
/// passwords were normalised, typed the same way as then, is still
/// accepted (and re-hashed in NFC).
pub async fn verify(stored: Option<String>, candidate: String) -> anyhow::Result<Verified> {
    blocking(Priority::Normal, move || {
        let nfc = super::domain::normalize(&candidate);
        match stored {
            Some(s) => match verify_now(&s, &nfc) {
                Verified::No if nfc != candidate => match verify_now(&s, &candidate) {
                    Verified::No => Verified::No,
                    _ => Verified::YesButRehash,
                },
                outcome => outcome,
            },
            None => {
                let _ = verify_now(dummy_hash(), &nfc);
                Verified::No
            }
        }
    })
    .await
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_now("keyward dummy password for timing equality").unwrap_or_else(|_| {
            String::from("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_now("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(verify_now(&h, "correct horse"), Verified::Yes);
        assert_eq!(verify_now(&h, "correct horsf"), Verified::No);
        assert_eq!(verify_now("garbage", "x"), Verified::No);
    }

    #[test]
    fn hashes_agree_with_the_argon2_crates_own_hasher_and_verifier() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password(b"correct horse", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert_eq!(verify_now(&theirs, "correct horse"), Verified::Yes);
        assert_eq!(verify_now(&theirs, "correct horsf"), Verified::No);
        let ours = hash_now("correct horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"correct horsf", &parsed).is_err());
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(8192, 3, 1, None).unwrap(),
        )
        .hash_password(b"old one", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        assert_eq!(verify_now(&argon2i, "old one"), Verified::YesButRehash);
        assert_eq!(verify_now(&argon2i, "old two"), Verified::No);
    }

    #[test]
    fn a_weaker_hash_asks_for_a_rehash() {
        use argon2::PasswordHasher;
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut OsRng);
        let h = weak.hash_password(b"pw123456", &salt).unwrap().to_string();
        assert_eq!(verify_now(&h, "pw123456"), Verified::YesButRehash);
    }
}
