//! `application/x-www-form-urlencoded` bodies as typed forms: the body size
//! is capped, the text is checked strictly (invalid UTF-8 is a 400, never
//! silently replaced), and only then does serde map it onto the handler's
//! form struct. Every form carries the CSRF token beside its own fields,
//! so no form struct declares it and none can forget it.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use percent_encoding::percent_decode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::WebError;

/// Largest form body accepted.
pub const FORM_LIMIT: usize = 16 * 1024;

/// A decoded form: the handler's fields (`T`, reached through `Deref`) and
/// the CSRF token sent with them, for `csrf::verify`.
///
/// `T` derives `Deserialize` and `Default` with `#[serde(default)]`: a
/// missing field is empty, as an empty input box is, and a body that is not
/// a form at all gives the empty form, whose missing token the handler's
/// CSRF check answers with 403. A field a form reads once but that is sent
/// twice is a 400: the two copies might disagree, and the handler cannot
/// tell which one the user meant. Fields a form does not name are ignored.
pub struct Form<T> {
    csrf_token: String,
    fields: T,
}

impl<T> Form<T> {
    pub fn csrf_token(&self) -> &str {
        &self.csrf_token
    }

    pub fn into_inner(self) -> T {
        self.fields
    }
}

impl<T> Deref for Form<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.fields
    }
}

/// The fields of a form that sends only its CSRF token (log out, delete,
/// revoke: the action is in the path).
#[derive(Debug, Default, Deserialize)]
pub struct NoFields {}

/// The token every form sends.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Token {
    csrf_token: String,
}

impl<T: DeserializeOwned> Form<T> {
    /// Decodes a form body: the strict UTF-8 check first, then serde.
    pub fn decode(body: &[u8]) -> Result<Self, WebError> {
        FormFields::parse(body)?;
        let token: Token = typed(body)?;
        Ok(Self {
            csrf_token: token.csrf_token,
            fields: typed(body)?,
        })
    }
}

fn typed<T: DeserializeOwned>(body: &[u8]) -> Result<T, WebError> {
    serde_html_form::from_bytes(body).map_err(|e| {
        tracing::debug!(error = %e, "form refused");
        WebError::BadRequest("The form could not be read: a field was sent more than once.")
    })
}

impl<T: DeserializeOwned + Default + 'static> FromRequest for Form<T> {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, WebError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let declared_too_large = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > FORM_LIMIT);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if declared_too_large {
                return Err(WebError::PayloadTooLarge);
            }
            if !is_form {
                // Not a form (no body, JSON, text): no field can be read, so
                // the handler's CSRF check answers 403 and nothing changes.
                return Ok(Form {
                    csrf_token: String::new(),
                    fields: T::default(),
                });
            }
            let bytes = body.await.map_err(|_| WebError::PayloadTooLarge)?;
            if bytes.len() > FORM_LIMIT {
                return Err(WebError::PayloadTooLarge);
            }
            Form::decode(&bytes)
        })
    }
}

/// The strict decoder: every name and value percent-decoded, `+` as a
/// space, and a 400 for any that is not valid UTF-8. `Form` runs it before
/// serde, whose decoder would replace such bytes with U+FFFD instead.
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    pub fn parse(body: &[u8]) -> Result<Self, WebError> {
        let mut out = Vec::new();
        for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            out.push((decode(k)?, decode(v)?));
        }
        Ok(Self(out))
    }

    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    pub fn get_all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn decode(raw: &[u8]) -> Result<String, WebError> {
    let plus_as_space: Vec<u8> = raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    percent_decode(&plus_as_space)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| WebError::BadRequest("The form contained text that is not valid UTF-8."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct KeyForm {
        name: String,
        scopes: Vec<String>,
        empty: String,
        flag: String,
        missing: String,
    }

    #[test]
    fn fields_decode_with_repeats() {
        let f = FormFields::parse(b"a=1+2&scopes=read&scopes=keys%3Aread&empty=&flag").unwrap();
        assert_eq!(f.get("a"), "1 2");
        assert_eq!(f.get_all("scopes"), vec!["read", "keys:read"]);
        assert_eq!(f.get("empty"), "");
        assert_eq!(f.get("missing"), "");
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert!(FormFields::parse(b"name=%FF%FE").is_err());
    }

    #[test]
    fn a_typed_form_reads_its_fields_and_the_token() {
        let f =
            Form::<KeyForm>::decode(b"name=a+b%21&scopes=read&scopes=keys%3Aread&empty=&flag&csrf_token=t0k&other=x")
                .unwrap();
        assert_eq!(f.csrf_token(), "t0k");
        assert_eq!(f.name, "a b!");
        assert_eq!(f.scopes, vec!["read", "keys:read"]);
        assert_eq!((f.empty.as_str(), f.flag.as_str(), f.missing.as_str()), ("", "", ""));
    }

    #[test]
    fn an_empty_body_is_an_empty_form() {
        let f = Form::<KeyForm>::decode(b"").unwrap();
        assert_eq!(f.csrf_token(), "");
        assert!(f.name.is_empty() && f.scopes.is_empty());
        assert!(Form::<NoFields>::decode(b"csrf_token=t&x=1").is_ok());
    }

    #[test]
    fn a_typed_form_refuses_invalid_utf8_in_a_name_or_a_value() {
        for body in [&b"name=%FF"[..], b"na%FFme=x", b"other=%C3%28", b"csrf_token=%FE"] {
            match Form::<KeyForm>::decode(body) {
                Err(WebError::BadRequest(m)) => assert_eq!(m, "The form contained text that is not valid UTF-8."),
                _ => panic!("accepted {body:?}"),
            }
        }
    }

    #[test]
    fn a_single_field_sent_twice_is_a_bad_request() {
        for body in [&b"name=a&name=b"[..], b"csrf_token=a&csrf_token=b"] {
            assert!(matches!(Form::<KeyForm>::decode(body), Err(WebError::BadRequest(_))));
        }
        // A field the form does not read may repeat.
        assert!(Form::<NoFields>::decode(b"name=a&name=b").is_ok());
    }
}
