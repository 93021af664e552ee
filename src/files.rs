//! Files in the data directory: private to the user Keyward runs as,
//! whatever the umask (the SQLite database, the session key, and the mail
//! outbox, whose messages hold live reset links), and the lock that keeps a
//! second instance off a SQLite database.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Options that create a new file readable and writable by its owner only.
pub fn private_new_file() -> OpenOptions {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Creates `dir` (and its parents) and makes it owner-only (0700).
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    set_mode(dir, 0o700)
}

/// Writes a new file that only its owner may read.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    private_new_file()
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Makes the data directory private, with the files Keyward keeps there
/// (a data directory made by an older version, or copied in, may be
/// readable by others). Files Keyward does not own are left alone.
pub fn secure_data_dir(dir: &Path) -> anyhow::Result<()> {
    private_dir(dir)?;
    let ours = |name: &str| {
        name == "session.key" || name.starts_with("keyward.db") || name.ends_with(".lock") || name.ends_with(".eml")
    };
    for folder in [dir.to_path_buf(), dir.join("outbox")] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        if folder != dir {
            set_mode(&folder, 0o700)?;
        }
        for entry in entries.flatten() {
            let name = entry.file_name();
            if entry.file_type().is_ok_and(|t| t.is_file()) && ours(&name.to_string_lossy()) {
                set_mode(&entry.path(), 0o600)?;
            }
        }
    }
    Ok(())
}

/// Makes an existing file owner-only (0600).
pub fn make_private(path: &Path) -> anyhow::Result<()> {
    set_mode(path, 0o600)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot restrict the permissions of {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// An exclusive advisory lock beside a SQLite database, held while the
/// instance serves. A second instance on the same file would not hear of
/// keys revoked by the first (SQLite has no NOTIFY) and would accept them
/// until its cache expired, so it refuses to start instead.
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    pub fn acquire(database: &Path) -> anyhow::Result<Self> {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{flock, FlockOperation};
            if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
                anyhow::bail!(
                    "another Keyward instance is serving the SQLite database {} (it holds {}). \
                     Stop it first, or use PostgreSQL (DATABASE_URL=postgres://…) to run several instances.",
                    database.display(),
                    path.display()
                );
            }
        }
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
