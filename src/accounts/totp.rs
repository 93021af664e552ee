//! Two-factor authentication with time-based one-time codes (RFC 6238:
//! HMAC-SHA-1, 6 digits, 30-second steps), recovery codes, and the secret's
//! encryption at rest (docs/account-security.md).
//!
//! The secret is stored sealed with AES-256-GCM under a key derived (HKDF-
//! SHA-256) from the instance secret (`session.key`): a copy of the database
//! alone does not yield it. A code is accepted once: the step it belongs to
//! must be later than the last accepted one.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Secret, TOTP};

pub const STEP: u64 = 30;
pub const DIGITS: usize = 6;
/// Recovery codes given at enrolment.
pub const RECOVERY_CODES: usize = 10;

/// The key that seals TOTP secrets, derived from the instance secret.
#[derive(Clone)]
pub struct SealingKey([u8; 32]);

impl SealingKey {
    pub fn derive(instance_secret: &[u8]) -> Self {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"keyward"), instance_secret);
        let mut key = [0u8; 32];
        // 32 bytes is always a valid HKDF-SHA-256 output length.
        let _ = hk.expand(b"totp secret v1", &mut key);
        Self(key)
    }

    /// nonce (12 bytes) || ciphertext with its tag.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new((&self.0).into());
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        // Encryption into a Vec cannot fail for inputs this small.
        out.extend(cipher.encrypt(Nonce::from_slice(&nonce), plain).unwrap_or_default());
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 12 + 16 {
            return None;
        }
        let (nonce, ct) = sealed.split_at(12);
        Aes256Gcm::new((&self.0).into())
            .decrypt(Nonce::from_slice(nonce), ct)
            .ok()
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey([REDACTED])")
    }
}

/// A new secret: 160 random bits, as RFC 4226 recommends.
pub fn new_secret() -> Vec<u8> {
    let mut s = vec![0u8; 20];
    rand::thread_rng().fill_bytes(&mut s);
    s
}

/// The secret as authenticator apps take it typed in: base32, no padding.
pub fn base32(secret: &[u8]) -> String {
    match Secret::Raw(secret.to_vec()).to_encoded() {
        Secret::Encoded(s) => s.trim_end_matches('=').to_owned(),
        Secret::Raw(_) => String::new(),
    }
}

pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    Secret::Encoded(text.trim().to_ascii_uppercase()).to_bytes().ok()
}

fn totp(secret: &[u8]) -> Option<TOTP> {
    TOTP::new(Algorithm::SHA1, DIGITS, 1, STEP, secret.to_vec()).ok()
}

/// The code for the step containing `unix` (tests and the browser test
/// compute codes with it).
pub fn code_at(secret: &[u8], unix: u64) -> String {
    totp(secret).map(|t| t.generate(unix)).unwrap_or_default()
}

/// A code from a form: exactly 6 digits, spaces ignored.
pub fn parse_code(input: &str) -> Option<String> {
    let code: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    (code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// The step whose code `code` is, among the current one and one either
/// side (clocks drift), if any and if later than `last_used`.
pub fn matching_step(secret: &[u8], code: &str, unix: u64, last_used: Option<i64>) -> Option<i64> {
    use subtle::ConstantTimeEq as _;
    let now_step = (unix / STEP) as i64;
    (now_step - 1..=now_step + 1).find(|&step| {
        let expected = code_at(secret, step as u64 * STEP);
        bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && last_used.is_none_or(|l| step > l)
    })
}

/// What authenticator apps read from the QR code.
pub fn otpauth_url(secret: &[u8], issuer: &str, account: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let issuer_enc = utf8_percent_encode(issuer, NON_ALPHANUMERIC);
    format!(
        "otpauth://totp/{issuer_enc}:{}?secret={}&issuer={issuer_enc}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        utf8_percent_encode(account, NON_ALPHANUMERIC),
        base32(secret)
    )
}

/// The QR code of `text` as an inline SVG (no script, no style attribute).
pub fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            // Inline in HTML: no XML declaration.
            svg.find("<svg").map_or(svg.clone(), |i| svg[i..].to_owned())
        }
        Err(_) => String::new(),
    }
}

/// Ten fresh recovery codes, `xxxxx-xxxxx` (lower-case base32, ≈50 bits).
pub fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut c = String::with_capacity(11);
            for i in 0..10 {
                if i == 5 {
                    c.push('-');
                }
                c.push(ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char);
            }
            c
        })
        .collect()
}

/// A recovery code as typed: lower case, no spaces; its stored digest.
pub fn recovery_digest(typed: &str) -> Vec<u8> {
    let norm: String = typed
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    Sha256::digest(norm.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_rfc_6238() {
        // RFC 6238, appendix B: the SHA-1 secret "12345678901234567890".
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59), "287082");
        assert_eq!(code_at(secret, 1111111109), "081804");
        assert_eq!(code_at(secret, 1234567890), "005924");
    }

    #[test]
    fn a_code_matches_once_and_within_one_step() {
        let secret = new_secret();
        let t = 1_800_000_000;
        let code = code_at(&secret, t);
        let step = matching_step(&secret, &code, t + 20, None).unwrap();
        assert_eq!(step, (t / STEP) as i64);
        assert_eq!(matching_step(&secret, &code, t + 20, Some(step)), None, "replayed");
        assert_eq!(matching_step(&secret, &code, t + 95, None), None, "too old");
        assert!(parse_code("12 34 56").is_some());
        for bad in ["12345", "1234567", "12a456", ""] {
            assert!(parse_code(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_sealed_and_round_trip() {
        let key = SealingKey::derive(&[7u8; 64]);
        let secret = new_secret();
        let sealed = key.seal(&secret);
        assert_ne!(&sealed[12..], &secret[..]);
        assert_eq!(key.open(&sealed).unwrap(), secret);
        assert!(SealingKey::derive(&[8u8; 64]).open(&sealed).is_none());
        assert_eq!(from_base32(&base32(&secret)).unwrap(), secret);
    }
}
