//! `application/x-www-form-urlencoded` bodies, decoded strictly: invalid
//! UTF-8 is a 400 (not silently replaced), repeated fields are kept (for
//! the scope checkboxes), and the body size is capped.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use percent_encoding::percent_decode;

use super::WebError;

/// Largest form body accepted.
pub const FORM_LIMIT: usize = 16 * 1024;

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

impl FromRequest for FormFields {
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
                return Ok(FormFields(Vec::new()));
            }
            let bytes = body.await.map_err(|_| WebError::PayloadTooLarge)?;
            if bytes.len() > FORM_LIMIT {
                return Err(WebError::PayloadTooLarge);
            }
            FormFields::parse(&bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
