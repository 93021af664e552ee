//! Leaked keys: GitHub's secret-scanning partner endpoint and public
//! revocation (docs/operators.md). Thin: the signature check here, the
//! revocation in `operators`.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;

/// GitHub's public keys, read from `KEYWARD_GITHUB_SCANNING_KEYS` and read
/// again whenever the file changes (GitHub rotates them).
pub struct GithubKeys {
    path: PathBuf,
    /// The keys as last read, with the file's modification time then.
    loaded: Mutex<Option<(SystemTime, Keys)>>,
}

/// Key identifier and key.
type Keys = Vec<(String, VerifyingKey)>;

#[derive(serde::Deserialize)]
struct KeysFile {
    public_keys: Vec<KeyEntry>,
}

#[derive(serde::Deserialize)]
struct KeyEntry {
    key_identifier: String,
    key: String,
}

impl GithubKeys {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            loaded: Mutex::new(None),
        }
    }

    fn keys(&self) -> Keys {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some((at, keys)), Some(m)) = (loaded.as_ref(), modified) {
            if *at == m {
                return keys.clone();
            }
        }
        let keys = match std::fs::read(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<KeysFile>(&b).map_err(|e| e.to_string()))
        {
            Ok(file) => file
                .public_keys
                .into_iter()
                .filter_map(|k| {
                    VerifyingKey::from_public_key_pem(&k.key)
                        .ok()
                        .map(|v| (k.key_identifier, v))
                })
                .collect(),
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot read GitHub's secret-scanning keys");
                Vec::new()
            }
        };
        if let Some(m) = modified {
            *loaded = Some((m, keys.clone()));
        }
        keys
    }

    /// Whether `signature` (base64 of a DER ECDSA P-256 SHA-256 signature)
    /// signs `body` with the key named `identifier`.
    pub fn verify(&self, identifier: &str, signature: &str, body: &[u8]) -> bool {
        let Ok(der) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
            return false;
        };
        let Ok(sig) = Signature::from_der(&der) else {
            return false;
        };
        self.keys()
            .iter()
            .find(|(id, _)| id == identifier)
            .is_some_and(|(_, key)| key.verify(body, &sig).is_ok())
    }
}
