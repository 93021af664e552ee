//! The form decoder, `FormFields::parse`.
//!
//! Invariants: a body that is valid UTF-8 with no `%` always decodes; `get`
//! is the first of `get_all`; and what was decoded, percent-encoded again
//! byte by byte, decodes to the same fields.
#![no_main]

use keyward::web::forms::FormFields;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(form) = FormFields::parse(data) else {
        // Only percent-escapes can make text that is not UTF-8.
        assert!(
            data.contains(&b'%') || std::str::from_utf8(data).is_err(),
            "refused a UTF-8 body without escapes: {:?}",
            String::from_utf8_lossy(data)
        );
        return;
    };
    let name = form.get("name");
    let scopes = form.get_all("scopes");
    assert_eq!(form.get("scopes"), scopes.first().map_or("", String::as_str));
    let pairs = data.split(|&b| b == b'&').filter(|p| !p.is_empty()).count();
    assert!(scopes.len() <= pairs);

    // Round trip: every byte escaped, `+` included.
    let mut body = Vec::new();
    body.extend_from_slice(b"name=");
    escape(name.as_bytes(), &mut body);
    for s in &scopes {
        body.extend_from_slice(b"&scopes=");
        escape(s.as_bytes(), &mut body);
    }
    let Ok(again) = FormFields::parse(&body) else {
        panic!("re-encoded form refused: {:?}", String::from_utf8_lossy(&body));
    };
    assert_eq!(again.get("name"), name);
    assert_eq!(again.get_all("scopes"), scopes);
});

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
    }
}
