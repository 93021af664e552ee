//! `/auth/verify`: forward authentication for services behind a proxy
//! (nginx `auth_request`, Caddy `forward_auth`, Traefik ForwardAuth, Envoy
//! `ext_authz`). The proxy forwards the request's headers; the key is taken
//! from them exactly as the guard takes it (same verifier, same caches,
//! same refusals), and the scopes the route needs come from the auth URL
//! the operator configured: `/auth/verify?scope=read&scope=write`.
//!
//! Accepted: `200` with an empty body and the caller in `X-Keyward-*`
//! headers. Refused: the API's own `401`/`403` answers and challenges.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use super::{ApiError, ApiKey};

pub const USER: HeaderName = HeaderName::from_static("x-keyward-user");
pub const KEY_ID: HeaderName = HeaderName::from_static("x-keyward-key-id");
pub const KEY_PREFIX: HeaderName = HeaderName::from_static("x-keyward-key-prefix");
pub const SCOPES: HeaderName = HeaderName::from_static("x-keyward-scopes");

/// Scopes required at most in one auth URL.
const MAX_SCOPES: usize = 32;

/// The `scope` parameters of the query string, one scope each; other
/// parameters (a key someone put there, say) are ignored. An empty,
/// overlong or oddly spelled scope is the operator's mistake in the auth
/// URL: 400, never a silent "no scope needed". Borrowed from the query
/// string unless percent-encoded.
fn required_scopes(query: &str) -> Result<Vec<std::borrow::Cow<'_, str>>, ApiError> {
    let mut scopes = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name != "scope" {
            continue;
        }
        let well_formed =
            (1..=64).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b":._-".contains(&b));
        if !well_formed || scopes.len() == MAX_SCOPES {
            return Err(ApiError::BadRequest("invalid_scope"));
        }
        scopes.push(value);
    }
    Ok(scopes)
}

/// Any method; the body is never read.
#[utoipa::path(
    method(get, post, put, patch, delete, head, options),
    path = "/auth/verify",
    tag = "forward auth",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("scope" = Option<Vec<String>>, Query, explode, description = "Scopes the key must all carry",
            max_items = 32, pattern = r"^[0-9A-Za-z:._-]{1,64}$"),
    ),
    responses(
        (status = 200, description = "Accepted: an empty body, the caller in headers",
            headers(
                ("X-Keyward-User" = String, description = "The key owner's username"),
                ("X-Keyward-Key-Id" = String, description = "The key's id"),
                ("X-Keyward-Key-Prefix" = String, description = "The key's display prefix"),
                ("X-Keyward-Scopes" = String, description = "The key's scopes, space-separated"),
            )),
        (status = 400, description = "A malformed `scope` in the auth URL", body = super::openapi::ErrorJson),
        (status = 401, description = "No key, or an invalid one", body = super::openapi::ErrorJson),
        (status = 403, description = "The key lacks a required scope, or is used from an address its allowlist does not name", body = super::openapi::ErrorJson),
        (status = 429, description = "The key is over its rate limit", body = super::openapi::ErrorJson),
        (status = 503, description = "The database is unavailable", body = super::openapi::ErrorJson),
    )
)]
pub async fn verify(
    req: HttpRequest,
    key: Result<ApiKey, ApiError>,
    verifier: actix_web::web::Data<crate::keys::Verifier>,
) -> HttpResponse {
    // Refusals answered here, not boxed through actix's error path (as
    // `routes::whoami` does).
    key.and_then(|key| decide(&req, &key, &verifier))
        .unwrap_or_else(|refused| actix_web::ResponseError::error_response(&refused))
}

/// The answer for a valid key: its scopes against the auth URL's.
fn decide(req: &HttpRequest, key: &ApiKey, verifier: &crate::keys::Verifier) -> Result<HttpResponse, ApiError> {
    let required = required_scopes(req.query_string())?;
    if required.iter().any(|s| !key.has_scope(s)) {
        let missing: Vec<&str> = required.iter().map(|s| &**s).filter(|s| !key.has_scope(s)).collect();
        return Err(ApiError::InsufficientScope(missing.join(" ")));
    }
    for scope in &required {
        verifier.record_scope(key, scope);
    }
    Ok(identified(key))
}

/// `200` with the caller in `X-Keyward-*` headers, their four values cut
/// from one buffer (one allocation, not four) and inserted directly.
fn identified(key: &crate::keys::VerifiedKey) -> HttpResponse {
    let parts = [key.username(), key.key_id(), key.prefix(), key.scopes_joined()];
    let mut all = actix_web::web::BytesMut::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        all.extend_from_slice(part.as_bytes());
    }
    let all = all.freeze();
    // An empty body, announced with `Content-Length: 0`: nginx closes a
    // kept-alive connection to an auth service whose answer has a body.
    let mut res = HttpResponse::with_body(actix_web::http::StatusCode::OK, ()).map_into_boxed_body();
    let headers = res.headers_mut();
    let mut start = 0;
    for (name, part) in [USER, KEY_ID, KEY_PREFIX, SCOPES].into_iter().zip(parts) {
        let end = start + part.len();
        // Usernames, prefixes and scopes are plain ASCII by construction;
        // a value that could not be a header is left out, not mangled.
        if let Ok(v) = HeaderValue::from_maybe_shared(all.slice(start..end)) {
            headers.insert(name, v);
        }
        start = end;
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_come_from_repeated_or_spaced_parameters_only() {
        assert_eq!(
            required_scopes("scope=read&scope=write&key=kw_x&scope=keys%3Aread").unwrap(),
            ["read", "write", "keys:read"]
        );
        assert!(required_scopes("").unwrap().is_empty());
        assert!(required_scopes(&"scope=x&".repeat(40)).is_err());
        for bad in [
            "scope=",
            "scope=a+b",
            "scope=%C3%A9",
            &format!("scope={}", "x".repeat(65)),
        ] {
            assert!(required_scopes(bad).is_err(), "{bad}");
        }
    }
}
