//! The API key parser: `parse`, `parse_parts`, `parse_shape` + `checked`,
//! and `parse_checked_shape` (the verifier's, checksum first).
//!
//! Arbitrary bytes; valid UTF-8 is parsed as it is, anything else through
//! `String::from_utf8_lossy`. Besides "never panics", the three entry points
//! must agree with each other, and a key of the right shape whose checksum
//! is then set right must parse (the fuzzer cannot be expected to guess
//! CRCs, so this is what reaches the accepting paths).
#![no_main]

use keyward::keys::format::{
    checksum, is_key_id, parse, parse_checked_shape, parse_parts, parse_shape, FormatError, KeyDigest, KeyTag, CHECK_LEN,
    ID_LEN, MAX_KEY_LEN,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(s) => check(s, true),
        Err(_) => {
            // The verifier reads header bytes: ones that are not UTF-8 are
            // never a key, whatever their checksum.
            assert!(parse_checked_shape(data).is_err(), "accepted bytes that are not UTF-8: {data:?}");
            check(&String::from_utf8_lossy(data), true)
        }
    }
});

fn check(s: &str, fix_checksum: bool) {
    let parsed = parse(s);
    let parts = parse_parts(s);
    let shape = parse_shape(s);
    let via_shape = shape.and_then(|x| x.checked());

    // The three ways agree on success and on the error.
    assert_eq!(parsed.is_ok(), parts.is_ok(), "parse vs parse_parts on {s:?}");
    assert_eq!(parsed.is_ok(), via_shape.is_ok(), "parse vs parse_shape+checked on {s:?}");
    // The verifier's order (checksum before alphabet) accepts the same keys.
    assert_eq!(
        parsed.is_ok(),
        parse_checked_shape(s.as_bytes()).is_ok(),
        "parse vs parse_checked_shape on {s:?}"
    );
    if let (Err(a), Err(b), Err(c)) = (&parsed, &parts, &via_shape) {
        assert_eq!(a, b, "{s:?}");
        assert_eq!(a, c, "{s:?}");
    }

    match &shape {
        Err(e) => {
            assert_eq!(*e, FormatError::Shape, "{s:?}");
            assert_eq!(parsed.as_ref().unwrap_err(), &FormatError::Shape, "{s:?}");
        }
        Ok(sh) => {
            // A shape is all ASCII and of a bounded length.
            assert!(s.is_ascii() && s.len() <= MAX_KEY_LEN, "{s:?}");
            assert!(is_key_id(sh.id()), "{s:?}");
            assert_eq!(sh.id_bytes(), sh.id().as_bytes(), "{s:?}");
            assert!(s.starts_with(sh.display_prefix()), "{s:?}");
            assert!(sh.display_prefix().ends_with(sh.id()), "{s:?}");
            let tag = &sh.display_prefix()[..sh.display_prefix().len() - ID_LEN - 1];
            assert!(KeyTag::parse(tag).is_ok(), "tag {tag:?} of {s:?}");
            assert_eq!(sh.digest(), KeyDigest::of(s), "{s:?}");

            // Only the checksum can fail now, and exactly when it is wrong.
            let body = &s[..s.len() - CHECK_LEN];
            let check_ok = checksum(body).as_slice() == &s.as_bytes()[body.len()..];
            assert_eq!(parsed.is_ok(), check_ok, "{s:?}");
            if let Err(e) = &parsed {
                assert_eq!(*e, FormatError::Checksum, "{s:?}");
            }

            // With the checksum set right, the key must be accepted.
            if fix_checksum && !check_ok {
                let mut fixed = body.to_owned();
                fixed.extend(checksum(body).iter().map(|&b| b as char));
                check(&fixed, false);
                assert!(parse(&fixed).is_ok(), "fixed checksum still refused: {fixed:?}");
            }
        }
    }

    if let Ok(p) = &parsed {
        let q = via_shape.as_ref().expect("checked above");
        let r = parts.as_ref().expect("checked above");
        assert_eq!(p.id, q.id, "{s:?}");
        assert_eq!(p.id, r.id, "{s:?}");
        assert_eq!(p.display_prefix, q.display_prefix, "{s:?}");
        assert_eq!(p.digest, q.digest, "{s:?}");
        assert_eq!(p.digest, KeyDigest::of(s), "{s:?}");
        assert!(p.digest.matches(KeyDigest::of(s).as_bytes()), "{s:?}");
        assert_eq!(p.id.len(), ID_LEN, "{s:?}");
        assert!(is_key_id(&p.id), "{s:?}");
        assert_eq!(r.id_bytes(), p.id.as_bytes(), "{s:?}");
        assert!(s.starts_with(&p.display_prefix), "{s:?}");
        assert_eq!(p.display_prefix, format!("{tag}_{}", p.id, tag = &s[..p.display_prefix.len() - ID_LEN - 1]));
    }
}
