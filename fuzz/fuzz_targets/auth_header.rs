//! The API guard's header parser, `key_from_headers` (and
//! `key_bytes_from_headers`, which must agree with it).
//!
//! Input layout: the first byte says how many `Authorization` headers (bits
//! 0-1, 0-3) and `X-API-Key` headers (bits 2-3, 0-3) to append, and whether
//! an unrelated header comes first (bit 4) and the two kinds are
//! interleaved (bit 5); the rest is split on 0x00 into the header values.
//! Values `HeaderValue::from_bytes` refuses are skipped.
//!
//! Invariants: a returned key is non-empty, has no leading or trailing
//! whitespace and lies inside one of the appended values; more than one
//! `Authorization` header is always refused as `InvalidToken`.
#![no_main]

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use keyward::api::guard::{key_bytes_from_headers, key_from_headers};
use keyward::api::ApiError;
use libfuzzer_sys::fuzz_target;

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let n_auth = usize::from(ctl & 0b11);
    let n_api = usize::from((ctl >> 2) & 0b11);
    let unrelated_first = ctl & 0x10 != 0;
    let interleave = ctl & 0x20 != 0;

    let mut values = rest.split(|&b| b == 0);
    let mut headers = HeaderMap::new();
    if unrelated_first {
        headers.append(HeaderName::from_static("x-other"), HeaderValue::from_static("Bearer decoy"));
    }
    let mut order: Vec<bool> = Vec::with_capacity(n_auth + n_api); // true: Authorization
    if interleave {
        let (mut a, mut k) = (n_auth, n_api);
        while a + k > 0 {
            if k > 0 {
                order.push(false);
                k -= 1;
            }
            if a > 0 {
                order.push(true);
                a -= 1;
            }
        }
    } else {
        order.extend(std::iter::repeat_n(true, n_auth));
        order.extend(std::iter::repeat_n(false, n_api));
    }

    let (mut auth_appended, mut api_appended) = (0usize, 0usize);
    for is_auth in order {
        let Some(raw) = values.next() else { break };
        let Ok(v) = HeaderValue::from_bytes(raw) else { continue };
        if is_auth {
            headers.append(AUTHORIZATION, v);
            auth_appended += 1;
        } else {
            headers.append(X_API_KEY, v);
            api_appended += 1;
        }
    }

    let result = key_from_headers(&headers);

    // It reads what the header reader read before it worked on bytes.
    assert_eq!(
        result.as_ref().copied().map_err(ToString::to_string),
        as_text_first(&headers).map_err(|e| e.to_string()),
        "against the text-first reader"
    );

    // The byte reader the guard uses agrees: the same key, or bytes that
    // are not UTF-8 (which the verifier refuses as invalid), or the same
    // refusal.
    let bytes = key_bytes_from_headers(&headers);
    match (&result, &bytes) {
        (Ok(k), Ok(b)) => assert_eq!(k.as_bytes(), *b),
        (Err(ApiError::InvalidToken), Ok(b)) => assert!(std::str::from_utf8(b).is_err(), "{b:?}"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (r, b) => panic!("as text {r:?}, as bytes {b:?}"),
    }

    if auth_appended > 1 {
        assert!(
            matches!(result, Err(ApiError::InvalidToken)),
            "{auth_appended} Authorization headers gave {result:?}"
        );
    }
    if auth_appended == 0 && api_appended == 0 {
        assert!(matches!(result, Err(ApiError::MissingKey)), "no key header gave {result:?}");
    }

    if let Ok(key) = result {
        assert!(!key.is_empty(), "empty key");
        assert_eq!(key, key.trim(), "key with surrounding whitespace: {key:?}");
        assert!(!key.starts_with(char::is_whitespace) && !key.ends_with(char::is_whitespace));
        // It borrows from one of the appended values.
        let (start, end) = (key.as_ptr() as usize, key.as_ptr() as usize + key.len());
        let inside = headers
            .get_all(AUTHORIZATION)
            .chain(headers.get_all(X_API_KEY))
            .any(|v| {
                let b = v.as_bytes();
                let (vs, ve) = (b.as_ptr() as usize, b.as_ptr() as usize + b.len());
                vs <= start && end <= ve
            });
        assert!(inside, "key {key:?} is not part of any Authorization/X-API-Key value");
        // An X-API-Key key is only taken when it is the only one.
        if auth_appended == 0 {
            assert_eq!(api_appended, 1, "key {key:?} taken from {api_appended} X-API-Key headers");
        }
    }
});

/// How keys were read before the reader worked on bytes: each value read as
/// UTF-8 first, then trimmed as text (`str::trim`).
fn as_text_first(headers: &HeaderMap) -> Result<&str, ApiError> {
    fn text(v: &HeaderValue) -> Result<&str, ApiError> {
        std::str::from_utf8(v.as_bytes()).map_err(|_| ApiError::InvalidToken)
    }
    let auth: Vec<&HeaderValue> = headers.get_all(AUTHORIZATION).collect();
    if auth.len() > 1 {
        return Err(ApiError::InvalidToken);
    }
    if let Some(v) = auth.first() {
        let v = text(v)?.trim();
        let b = v.as_bytes();
        if b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"bearer") && (b.len() == 6 || b[6] == b' ') {
            let token = v[6..].trim();
            return if token.is_empty() { Err(ApiError::MissingKey) } else { Ok(token) };
        }
    }
    let keys: Vec<&HeaderValue> = headers.get_all(X_API_KEY).collect();
    match keys[..] {
        [] => Err(ApiError::MissingKey),
        [v] => match text(v)?.trim() {
            "" => Err(ApiError::MissingKey),
            v => Ok(v),
        },
        _ => Err(ApiError::InvalidToken),
    }
}
