//! The API key format: `{prefix}_{id}_{secret}{check}` (docs/keys.md).
//!
//! Everything here is pure and allocation-light: parsing and checksum
//! verification happen before any database access, so garbage and typos are
//! rejected for the cost of a CRC.

use std::fmt;

use rand::rngs::OsRng;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Base62 digits in digit order: `0-9`, `A-Z`, `a-z`.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const ID_LEN: usize = 8;
pub const SECRET_LEN: usize = 32;
pub const CHECK_LEN: usize = 6;
/// Longest possible key: an 8-letter tag plus the fixed parts.
pub const MAX_KEY_LEN: usize = 8 + 1 + ID_LEN + 1 + SECRET_LEN + CHECK_LEN;

/// The key's leading tag (`kw` by default): 2–8 lowercase ASCII letters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTag(String);

impl KeyTag {
    pub fn parse(s: &str) -> Result<Self, String> {
        if (2..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("key prefix must be 2-8 lowercase letters a-z, got {s:?}"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for KeyTag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for KeyTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The full key as given to the user once. `Debug` never shows it.
#[derive(Clone, Debug)]
pub struct ApiKeySecret(SecretString);

impl ApiKeySecret {
    /// The whole key; only for showing it once to its owner.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// SHA-256 of the whole key. Keys carry ~190 random bits, so a fast hash is
/// enough: nobody can brute-force the pre-image, and verification must cost
/// microseconds (a slow KDF here made other key libraries 10-30x slower).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Constant-time comparison with a stored digest: the differences are
    /// folded together word by word, and only the fold is tested (one
    /// optimisation barrier instead of one per byte).
    pub fn matches(&self, stored: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        if stored.len() != 32 {
            return false;
        }
        let diff = self
            .0
            .chunks_exact(8)
            .zip(stored.chunks_exact(8))
            .fold(0u64, |acc, (a, b)| acc | (word(a) ^ word(b)));
        bool::from(diff.ct_eq(&0))
    }
}

fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes);
    u64::from_ne_bytes(w)
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

/// A freshly generated key with everything the store needs.
#[derive(Debug)]
pub struct GeneratedKey {
    pub key: ApiKeySecret,
    pub id: String,
    pub display_prefix: String,
    pub digest: KeyDigest,
}

/// A syntactically valid key with a correct checksum, borrowing from the
/// presented string: what the verification hot path needs, with no
/// allocation.
#[derive(Debug, Clone, Copy)]
pub struct KeyParts<'a> {
    /// The 8-character id, ASCII base62.
    pub id: &'a str,
    /// `{tag}_{id}`.
    pub display_prefix: &'a str,
    pub digest: KeyDigest,
}

impl KeyParts<'_> {
    /// The id as a fixed-size value, for maps that should not allocate.
    pub fn id_bytes(&self) -> [u8; ID_LEN] {
        let mut out = [0u8; ID_LEN];
        out.copy_from_slice(self.id.as_bytes());
        out
    }

    pub fn to_parsed(self) -> ParsedKey {
        ParsedKey {
            id: self.id.to_owned(),
            display_prefix: self.display_prefix.to_owned(),
            digest: self.digest,
        }
    }
}

/// A syntactically valid key with a correct checksum.
#[derive(Debug, Clone)]
pub struct ParsedKey {
    pub id: String,
    pub display_prefix: String,
    pub digest: KeyDigest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the key does not have the expected shape")]
    Shape,
    #[error("the key's checksum is wrong")]
    Checksum,
}

/// `n` base62 characters from the OS CSPRNG (uniform: `gen_range` rejects bias).
pub fn random_base62(n: usize) -> String {
    let mut rng = OsRng;
    (0..n).map(|_| BASE62[rng.gen_range(0..BASE62.len())] as char).collect()
}

/// CRC-32 (IEEE) of `body`, as 6 base62 digits, most significant first.
pub fn checksum(body: &str) -> [u8; CHECK_LEN] {
    let mut n = crc32fast::hash(body.as_bytes()) as u64;
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

pub fn generate(tag: &KeyTag) -> GeneratedKey {
    let id = random_base62(ID_LEN);
    let secret = random_base62(SECRET_LEN);
    let mut key = format!("{tag}_{id}_{secret}");
    let check = checksum(&key);
    // `checksum` only yields ASCII base62 digits.
    key.extend(check.iter().map(|&b| b as char));
    GeneratedKey {
        digest: KeyDigest::of(&key),
        display_prefix: format!("{tag}_{id}"),
        id,
        key: ApiKeySecret(key.into()),
    }
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Parses and checks a presented key without touching any storage.
pub fn parse(key: &str) -> Result<ParsedKey, FormatError> {
    parse_parts(key).map(KeyParts::to_parsed)
}

/// `parse` without allocating: the parts borrow from `key`.
pub fn parse_parts(key: &str) -> Result<KeyParts<'_>, FormatError> {
    parse_shape(key)?.checked()
}

/// A presented key of the right shape: from `parse_shape`, its checksum
/// not checked yet (`checked`, `checksum_ok`); from `parse_checked_shape`,
/// what the verifier runs first, checked before its alphabet, so a typo
/// never costs a SHA-256, a clock read or a cache lookup.
#[derive(Debug, Clone, Copy)]
pub struct KeyShape<'a> {
    key: &'a str,
    tag_len: usize,
}

impl<'a> KeyShape<'a> {
    /// The 8-character id, ASCII base62.
    pub fn id(&self) -> &'a str {
        &self.key[self.tag_len + 1..self.tag_len + 1 + ID_LEN]
    }

    /// The id as a fixed-size value, for maps that should not allocate.
    pub fn id_bytes(&self) -> [u8; ID_LEN] {
        let mut out = [0u8; ID_LEN];
        out.copy_from_slice(self.id().as_bytes());
        out
    }

    /// `{tag}_{id}`.
    pub fn display_prefix(&self) -> &'a str {
        &self.key[..self.tag_len + 1 + ID_LEN]
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(self.key)
    }

    /// Whether the last six characters are the checksum of the rest.
    pub fn checksum_ok(&self) -> bool {
        checksum_matches(self.key.as_bytes())
    }

    /// The parts, with the SHA-256 of the whole key, for a shape whose
    /// checksum was checked (`parse_checked_shape`, `checksum_ok`).
    pub(crate) fn into_parts(self) -> KeyParts<'a> {
        KeyParts {
            id: self.id(),
            display_prefix: self.display_prefix(),
            digest: self.digest(),
        }
    }

    /// Checks the checksum; the parts then carry the digest too.
    pub fn checked(self) -> Result<KeyParts<'a>, FormatError> {
        if self.checksum_ok() {
            Ok(self.into_parts())
        } else {
            Err(FormatError::Checksum)
        }
    }
}

/// Which bytes are ASCII letters and digits.
static ALNUM: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    t
};

/// The tag's length, from the key's: every part but the tag has a fixed
/// length (`{tag}_{id:8}_{secret:32}{check:6}`).
fn tag_len(key: &[u8]) -> Option<usize> {
    const FIXED: usize = 1 + ID_LEN + 1 + SECRET_LEN + CHECK_LEN;
    key.len().checked_sub(FIXED).filter(|n| (2..=8).contains(n))
}

/// Whether each part has its alphabet and the separators sit where they
/// should. Checked by position rather than by splitting: this runs on
/// every API call.
fn alphabet_ok(bytes: &[u8], tag_len: usize) -> bool {
    let (tag, rest) = bytes.split_at(tag_len);
    let id = &rest[1..=ID_LEN];
    let tail = &rest[ID_LEN + 2..];
    // One table lookup per byte, with no branch per byte.
    let alnum = |part: &[u8]| part.iter().fold(true, |ok, &b| ok & ALNUM[usize::from(b)]);
    tag.iter().all(u8::is_ascii_lowercase) && rest[0] == b'_' && rest[ID_LEN + 1] == b'_' && alnum(id) & alnum(tail)
}

/// The shape of a presented key alone: lengths and alphabets, no checksum.
pub fn parse_shape(key: &str) -> Result<KeyShape<'_>, FormatError> {
    match tag_len(key.as_bytes()) {
        // Only ASCII is accepted, so every slice of the key taken later is
        // at char boundaries.
        Some(tag_len) if alphabet_ok(key.as_bytes(), tag_len) => Ok(KeyShape { key, tag_len }),
        _ => Err(FormatError::Shape),
    }
}

/// `parse_shape` and the checksum, the checksum first: it is computed on
/// the raw bytes, and under callgrind the CRC and its read-back cost ~150
/// instructions where the alphabet check costs ~200, so a typo or a
/// made-up key is refused at the least cost. What the verifier runs.
///
/// It takes the bytes a header carried, not yet known to be text: only a
/// key whose checksum matched is read as UTF-8 (after the alphabet check it
/// is ASCII), so a refused key never costs a UTF-8 pass.
pub fn parse_checked_shape(bytes: &[u8]) -> Result<KeyShape<'_>, FormatError> {
    let Some(tag_len) = tag_len(bytes) else {
        return Err(FormatError::Shape);
    };
    if !checksum_matches(bytes) {
        return Err(FormatError::Checksum);
    }
    if !alphabet_ok(bytes, tag_len) {
        return Err(FormatError::Shape);
    }
    let key = std::str::from_utf8(bytes).map_err(|_| FormatError::Shape)?;
    Ok(KeyShape { key, tag_len })
}

/// Base62 digit values; 255 for any other byte.
static DIGIT: [u8; 256] = {
    let mut t = [255u8; 256];
    let mut i = 0;
    while i < 62 {
        t[BASE62[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Whether the last six bytes are the checksum of the rest, compared by
/// reading them as a base62 number rather than writing the CRC out in
/// base62 (six multiplications instead of six divisions). The same test
/// as `checksum(body) == check`: a CRC is below 62^6, so its six digits
/// are unique.
fn checksum_matches(key: &[u8]) -> bool {
    let Some(body_len) = key.len().checked_sub(CHECK_LEN) else {
        return false;
    };
    let mut n = 0u64;
    let mut all_digits = true;
    for &b in &key[body_len..] {
        let d = DIGIT[usize::from(b)];
        all_digits &= d != 255;
        n = n * 62 + u64::from(d);
    }
    all_digits && n == u64::from(crc32fast::hash(&key[..body_len]))
}

/// Whether `s` looks like a key id (used to 404 early on bad URLs).
pub fn is_key_id(s: &str) -> bool {
    s.len() == ID_LEN && is_base62(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_read_back_agrees_with_the_checksum_written_out() {
        for _ in 0..200 {
            let key = generate(&tag()).key.expose().to_owned();
            let body_len = key.len() - CHECK_LEN;
            assert!(checksum_matches(key.as_bytes()));
            assert!(parse_checked_shape(key.as_bytes()).is_ok());
            // Any other last character is refused, by both tests alike.
            for &c in BASE62.iter().chain(b"_-!") {
                let mut other = key.clone().into_bytes();
                other[key.len() - 1] = c;
                let expected = checksum(&key[..body_len]).as_slice() == &other[body_len..];
                assert_eq!(checksum_matches(&other), expected);
            }
        }
        assert!(!checksum_matches(b"12345"));
        assert_eq!(
            parse_checked_shape(b"kw_AbCd1234_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000").unwrap_err(),
            FormatError::Checksum
        );
    }

    fn tag() -> KeyTag {
        KeyTag::parse("kw").unwrap()
    }

    #[test]
    fn a_generated_key_parses_back_to_its_id_prefix_and_digest() {
        let g = generate(&tag());
        let p = parse(g.key.expose()).unwrap();
        assert_eq!(p.id, g.id);
        assert_eq!(p.display_prefix, g.display_prefix);
        assert_eq!(p.digest, g.digest);
        assert!(g.display_prefix.starts_with("kw_"));
        assert_eq!(g.key.expose().len(), 2 + 1 + 8 + 1 + 32 + 6);
    }

    #[test]
    fn generated_keys_differ() {
        let a = generate(&tag());
        let b = generate(&tag());
        assert_ne!(a.key.expose(), b.key.expose());
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn the_checksum_is_crc32_in_six_base62_digits() {
        // crc32("") == 0
        assert_eq!(&checksum(""), b"000000");
        // crc32("123456789") == 0xCBF43926 == 3421780262 (the standard check value)
        let mut n: u64 = 3421780262;
        let mut want = [b'0'; 6];
        for slot in want.iter_mut().rev() {
            *slot = BASE62[(n % 62) as usize];
            n /= 62;
        }
        assert_eq!(checksum("123456789"), want);
        assert_eq!(&want, b"3jZRME");
    }

    #[test]
    fn one_changed_character_breaks_the_checksum() {
        let g = generate(&tag());
        let mut bytes = g.key.expose().as_bytes().to_vec();
        bytes[20] = if bytes[20] == b'a' { b'b' } else { b'a' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(parse(&tampered).unwrap_err(), FormatError::Checksum);
    }

    #[test]
    fn malformed_shapes_are_rejected() {
        let g = generate(&tag());
        let k = g.key.expose();
        let cases = [
            String::new(),
            "kw".into(),
            "kw_".into(),
            "kw__".into(),
            format!("{k}x"),
            k[..k.len() - 1].to_string(),
            k.replacen("kw_", "KW_", 1),
            k.replacen("kw_", "k_", 1),
            k.replacen("kw_", "abcdefghi_", 1),
            k.replacen('_', "-", 2),
            format!("{}é", &k[..k.len() - 2]),
            format!("{}_{}", &k[..12], &k[12..]),
            format!(" {k}"),
            "kw_abcdefgh_".to_string() + &"!".repeat(38),
            "x".repeat(10_000),
        ];
        for c in cases {
            assert!(parse(&c).is_err(), "accepted {c:?}");
        }
    }

    /// Bytes that are not text, even under a checksum that matches them,
    /// are a malformed key: the checksum is checked before the bytes are
    /// known to be text.
    #[test]
    fn bytes_that_are_not_text_are_refused_whatever_their_checksum() {
        let g = generate(&tag());
        let k = g.key.expose().as_bytes();
        for bad in [0xFFu8, 0x80, 0xC3, b'!'] {
            let mut body = k[..k.len() - CHECK_LEN].to_vec();
            body[5] = bad;
            let mut n = u64::from(crc32fast::hash(&body));
            let mut check = [b'0'; CHECK_LEN];
            for slot in check.iter_mut().rev() {
                *slot = BASE62[(n % 62) as usize];
                n /= 62;
            }
            body.extend_from_slice(&check);
            assert!(checksum_matches(&body), "the checksum of {bad:#x} matches");
            assert_eq!(parse_checked_shape(&body).unwrap_err(), FormatError::Shape, "{bad:#x}");
        }
    }

    #[test]
    fn tags_are_two_to_eight_lowercase_letters() {
        assert!(KeyTag::parse("kw").is_ok());
        assert!(KeyTag::parse("abcdefgh").is_ok());
        for bad in ["k", "abcdefghi", "Kw", "k1", "k_", ""] {
            assert!(KeyTag::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_digest_matches_itself_only() {
        let g = generate(&tag());
        assert!(g.digest.matches(g.digest.as_bytes()));
        for i in 0..32 {
            let mut other = g.digest.0;
            other[i] ^= 1;
            assert!(!g.digest.matches(&other), "byte {i}");
        }
        assert!(!g.digest.matches(&g.digest.0[..31]));
        assert!(!g.digest.matches(&[]));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let g = generate(&tag());
        let shown = format!("{g:?}");
        assert!(!shown.contains(&g.key.expose()[12..]));
    }
}
