//! The guard: an `ApiKey` extractor and a `RequireScope` middleware, usable
//! on any actix-web route or scope. Answers follow RFC 6750.
//!
//! ```ignore
//! App::new()
//!     .app_data(web::Data::new(verifier))
//!     .service(
//!         web::scope("/reports")
//!             .wrap(RequireScope::new("read"))
//!             .route("", web::get().to(|key: ApiKey| async move { key.username().to_owned() })),
//!     )
//! ```

use std::future::{ready, Future, Ready};
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::EitherBody;
use actix_web::dev::{forward_ready, Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};

use crate::keys::restrictions::Decision;
use crate::keys::{Checked, Verified, VerifiedKey, Verifier, VerifyError};
use crate::metrics::Outcome;
use crate::net::client_addr;

/// `Content-Type: application/json`, built once: parsing it from a `Mime`
/// or a string costs ~600 instructions a call.
pub(crate) const JSON: (header::HeaderName, header::HeaderValue) = (
    header::CONTENT_TYPE,
    header::HeaderValue::from_static("application/json"),
);

/// Every error answer of the API: a machine-readable code, and for
/// `insufficient_scope` the scope that was missing.
#[derive(serde::Serialize)]
#[cfg_attr(feature = "portal", derive(utoipa::ToSchema), schema(as = Error))]
pub struct ErrorJson {
    /// `missing_key`, `invalid_token`, `insufficient_scope`, `not_found`,
    /// `unavailable`, `invalid_cursor`, `invalid_query`, `invalid_scope`.
    #[cfg_attr(feature = "portal", schema(example = "invalid_token"))]
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// JSON errors of the API, with their `WWW-Authenticate` challenges.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing_key")]
    MissingKey,
    #[error("invalid_token")]
    InvalidToken,
    #[error("insufficient_scope")]
    InsufficientScope(String),
    #[error("not_found")]
    NotFound,
    #[error("unavailable")]
    Unavailable,
    /// A malformed request (the code names what was wrong).
    #[error("{0}")]
    BadRequest(&'static str),
    /// The key's allowlist does not name the caller's address.
    #[error("address_not_allowed")]
    AddressNotAllowed,
    /// The key is over its rate limit.
    #[error("rate_limited")]
    RateLimited(Decision),
    /// A leak report whose signature does not verify.
    #[error("invalid_signature")]
    InvalidSignature,
    /// Too many requests from this address.
    #[error("rate_limited")]
    TooManyRequests,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MissingKey | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::AddressNotAllowed => StatusCode::FORBIDDEN,
            Self::RateLimited(_) | Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::InvalidSignature => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // The refusals a flood gets (bad keys, a key over its limit or
        // used from elsewhere) are fixed bytes and headers, inserted
        // directly: the builder's `insert_header` converts its argument and
        // `from_static` checks its bytes on every call (~750 instructions
        // together; BENCHMARKS.md, "Instructions per request").
        const MISSING: HeaderValue = HeaderValue::from_static(r#"Bearer realm="keyward""#);
        const INVALID: HeaderValue = HeaderValue::from_static(r#"Bearer realm="keyward", error="invalid_token""#);
        let fixed = |body: &'static str| {
            let mut res = HttpResponse::with_body(self.status_code(), body).map_into_boxed_body();
            res.headers_mut().insert(JSON.0, JSON.1);
            res
        };
        match self {
            Self::MissingKey | Self::InvalidToken => {
                let (challenge, body) = match self {
                    Self::MissingKey => (MISSING, r#"{"error":"missing_key"}"#),
                    _ => (INVALID, r#"{"error":"invalid_token"}"#),
                };
                let mut res = fixed(body);
                res.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
                return res;
            }
            // A key driven far over its limit, or used from elsewhere, gets
            // these on every call: fixed bytes too.
            Self::AddressNotAllowed => return fixed(r#"{"error":"address_not_allowed"}"#),
            Self::RateLimited(d) => {
                let mut res = fixed(r#"{"error":"rate_limited"}"#);
                let headers = res.headers_mut();
                headers.insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after_secs));
                for (name, value) in rate_limit_headers(d) {
                    headers.insert(name, value);
                }
                return res;
            }
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        if let Self::InsufficientScope(s) = self {
            let challenge = format!(r#"Bearer realm="keyward", error="insufficient_scope", scope="{s}""#);
            if let Ok(c) = HeaderValue::from_str(&challenge) {
                res.insert_header((header::WWW_AUTHENTICATE, c));
            }
        }
        if let Self::Unavailable = self {
            res.insert_header((header::RETRY_AFTER, "1"));
        }
        if let Self::TooManyRequests = self {
            res.insert_header((header::RETRY_AFTER, "60"));
        }
        let body = match self {
            Self::InsufficientScope(s) => ErrorJson {
                error: "insufficient_scope".to_owned(),
                scope: Some(s.clone()),
            },
            other => ErrorJson {
                error: other.to_string(),
                scope: None,
            },
        };
        res.json(body)
    }
}

/// The verified key of the caller. Extracting it answers 401 when there is
/// no key or a bad one; the handler only runs for a valid key. It shares
/// the cached answer rather than copying it.
#[derive(Clone, Debug)]
pub struct ApiKey(Verified);

impl ApiKey {
    /// A handle to the verified key that may cross threads.
    pub fn shared(&self) -> Arc<VerifiedKey> {
        self.0.shared()
    }
}

impl Deref for ApiKey {
    type Target = VerifiedKey;
    fn deref(&self) -> &VerifiedKey {
        &self.0
    }
}

impl ApiKey {
    /// 403 `insufficient_scope` unless the key carries `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope(scope.to_owned()))
        }
    }

    /// `require`, and a scope the key has is recorded as used (its page
    /// shows the scopes a key actually needed).
    pub fn require_recorded(&self, scope: &str, verifier: &Verifier) -> Result<(), ApiError> {
        self.require(scope)?;
        verifier.record_scope(self, scope);
        Ok(())
    }
}

/// The key from `Authorization: Bearer …` or `X-API-Key: …`. Query strings
/// and bodies are never looked at: keys there end up in logs and caches.
fn presented_key(req: &HttpRequest) -> Result<&[u8], ApiError> {
    key_bytes_from_headers(req.headers())
}

/// The key a request presents, from its headers alone (public for the
/// fuzz targets and for embedders with their own request types): the
/// bytes of `key_bytes_from_headers`, which must be UTF-8.
pub fn key_from_headers(headers: &header::HeaderMap) -> Result<&str, ApiError> {
    key_bytes_from_headers(headers).and_then(text)
}

/// The key a request presents, as the bytes its header carried, trimmed
/// as `str::trim` trims (Unicode whitespace included).
///
/// Two `Authorization` or two `X-API-Key` headers are refused as invalid:
/// "first one wins" would let a proxy and a client disagree about which
/// credential was checked. An `Authorization` header with another scheme
/// (Basic, say) is not a key, and `X-API-Key` is then consulted, unless
/// it is not UTF-8, which makes the request's key invalid.
///
/// The key's own bytes are not checked to be text here: the verifier
/// refuses anything but ASCII letters, digits and `_` after checking the
/// checksum, so a typo or a made-up key never costs a UTF-8 pass
/// (BENCHMARKS.md, "Instructions per request"). `key_from_headers` gives
/// the same answer as text.
pub fn key_bytes_from_headers(headers: &header::HeaderMap) -> Result<&[u8], ApiError> {
    const X_API_KEY: header::HeaderName = header::HeaderName::from_static("x-api-key");
    // Looked up by reference (an owned name is dropped after each lookup).
    let mut auth = headers.get_all(&header::AUTHORIZATION);
    if let Some(v) = auth.next() {
        if auth.next().is_some() {
            return Err(ApiError::InvalidToken);
        }
        let b = trimmed(v.as_bytes())?;
        // `Bearer <token>`, the scheme in any case, compared as bytes.
        if b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"bearer") && (b.len() == 6 || b[6] == b' ') {
            let token = trimmed(&b[6..])?;
            return if token.is_empty() {
                Err(ApiError::MissingKey)
            } else {
                Ok(token)
            };
        }
        text(b)?;
    }
    let mut api_key = headers.get_all(&X_API_KEY);
    if let Some(v) = api_key.next() {
        if api_key.next().is_some() {
            return Err(ApiError::InvalidToken);
        }
        let v = trimmed(v.as_bytes())?;
        return if v.is_empty() { Err(ApiError::MissingKey) } else { Ok(v) };
    }
    Err(ApiError::MissingKey)
}

/// `b` without the whitespace `str::trim` removes at either end. ASCII
/// whitespace is cut from the bytes; where a non-ASCII byte is then at an
/// end (Unicode whitespace, or not text at all), the value is read as
/// UTF-8 and trimmed as text, and bytes that are not UTF-8 make the key
/// invalid.
fn trimmed(b: &[u8]) -> Result<&[u8], ApiError> {
    // `char::is_whitespace` within ASCII (with U+000B, which
    // `u8::is_ascii_whitespace` leaves out).
    let space = |c: &u8| matches!(c, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ');
    let start = b.iter().position(|c| !space(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !space(c)).map_or(start, |i| i + 1);
    let t = &b[start..end];
    match (t.first(), t.last()) {
        (Some(first), Some(last)) if !first.is_ascii() || !last.is_ascii() => Ok(text(t)?.trim().as_bytes()),
        _ => Ok(t),
    }
}

/// A header's bytes as text; bytes that are not UTF-8 make the key invalid
/// (keys are ASCII).
fn text(b: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(b).map_err(|_| ApiError::InvalidToken)
}

/// Refused keys logged one by one per second and worker thread, at most.
/// Each refusal is logged, but a flood of made-up keys must not turn into a
/// flood of log lines (formatting and writing one costs more than refusing
/// the key, and it would fill the disk): beyond this, refusals are counted
/// and the count is logged once a second. `/metrics` counts every one.
/// The budget is per thread so that refusing a key writes no memory other
/// workers use.
const REFUSALS_LOGGED_PER_SECOND: u64 = 50;

/// This thread's refusal-log window: its second, and the refusals logged
/// and left unlogged in it.
struct RefusalWindow {
    second: u64,
    logged: u64,
    unlogged: u64,
}

fn log_refusal<'a>(req: &HttpRequest, shown: impl FnOnce() -> &'a str) {
    // Where refusals are not logged at all (RUST_LOG=warn, say), there is
    // no budget to keep: no clock read per refusal.
    if !tracing::enabled!(target: "keyward::audit", tracing::Level::INFO) {
        return;
    }
    thread_local! {
        static WINDOW: std::cell::RefCell<RefusalWindow> =
            const { std::cell::RefCell::new(RefusalWindow { second: 0, logged: 0, unlogged: 0 }) };
    }
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let log_it = WINDOW.with(|w| {
        let mut w = w.borrow_mut();
        if w.second != second {
            if w.unlogged > 0 {
                tracing::info!(target: "keyward::audit", event = "key_refused", count = w.unlogged, "more keys refused than logged one by one");
            }
            *w = RefusalWindow { second, logged: 0, unlogged: 0 };
        }
        if w.logged < REFUSALS_LOGGED_PER_SECOND {
            w.logged += 1;
            true
        } else {
            w.unlogged += 1;
            false
        }
    });
    if !log_it {
        return;
    }
    tracing::info!(target: "keyward::audit", event = "key_refused", key = ?shown(), addr = %client_addr(req));
}

/// The answer to a verification, logged.
/// `shown` gives the key's display prefix, for the log of a refusal.
fn conclude<'a>(
    req: &HttpRequest,
    shown: impl FnOnce() -> &'a str,
    result: Result<Verified, VerifyError>,
) -> Result<ApiKey, ApiError> {
    match result {
        Ok(v) => {
            tracing::debug!(target: "keyward::audit", event = "key_accepted", user = %v.username(), key = %v.prefix(), addr = %client_addr(req));
            if let Some(d) = v.rate_limit() {
                req.extensions_mut().insert(RateLimitState(d));
            }
            Ok(ApiKey(v))
        }
        Err(VerifyError::Invalid) => {
            log_refusal(req, shown);
            Err(ApiError::InvalidToken)
        }
        Err(VerifyError::AddressNotAllowed) => {
            tracing::info!(target: "keyward::audit", event = "key_refused_address", key = %shown(), addr = %client_addr(req));
            Err(ApiError::AddressNotAllowed)
        }
        Err(VerifyError::RateLimited(d)) => Err(ApiError::RateLimited(d)),
        Err(VerifyError::Unavailable(e)) => {
            tracing::error!(error = ?e, "key verification failed");
            Err(ApiError::Unavailable)
        }
    }
}

/// Only the display prefix of a presented key is logged, and only when
/// well-formed.
fn shown_prefix(presented: &[u8]) -> &str {
    std::str::from_utf8(presented)
        .ok()
        .and_then(|p| crate::keys::format::parse_parts(p).ok())
        .map(|p| p.display_prefix)
        .unwrap_or_default()
}

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (the IETF
/// draft's fields) of a limited key.
pub fn rate_limit_headers(d: &Decision) -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::HeaderName::from_static("ratelimit-limit"),
            HeaderValue::from(d.limit),
        ),
        (
            header::HeaderName::from_static("ratelimit-remaining"),
            HeaderValue::from(d.remaining),
        ),
        (
            header::HeaderName::from_static("ratelimit-reset"),
            HeaderValue::from(d.reset_secs),
        ),
    ]
}

/// Put in a request's extensions when its key is rate-limited, so that
/// `add_rate_limit_headers` can tell the client where it stands.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitState(pub Decision);

/// Middleware: adds the `RateLimit-*` headers to every answer to a call
/// made with a rate-limited key, for services that embed the guard: wrap
/// the app (or the routes the guard protects) with
/// `actix_web::middleware::from_fn(add_rate_limit_headers)`. Keyward's own
/// app does this in its one outer layer (`crate::headers::EveryResponse`).
pub async fn add_rate_limit_headers(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    insert_rate_limit_headers(&mut res);
    Ok(res)
}

/// The `RateLimit-*` headers, when the request's key is rate-limited.
pub fn insert_rate_limit_headers<B>(res: &mut ServiceResponse<B>) {
    let state = res.request().extensions().get::<RateLimitState>().copied();
    if let Some(RateLimitState(d)) = state {
        for (name, value) in rate_limit_headers(&d) {
            res.headers_mut().insert(name, value);
        }
    }
}

/// What extracting an `ApiKey` returns: most calls are decided from memory
/// at once, with nothing allocated; only a key that must be looked up in
/// the database gets a boxed future.
pub struct ApiKeyFuture(Step);

enum Step {
    Decided(Option<Result<ApiKey, ApiError>>),
    Waiting(Pin<Box<dyn Future<Output = Result<ApiKey, ApiError>>>>),
}

impl ApiKeyFuture {
    fn decided(result: Result<ApiKey, ApiError>) -> Self {
        Self(Step::Decided(Some(result)))
    }
}

impl Future for ApiKeyFuture {
    type Output = Result<ApiKey, ApiError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            // Polled again after answering: a caller bug, answered safely.
            Step::Decided(result) => Poll::Ready(result.take().unwrap_or(Err(ApiError::Unavailable))),
            Step::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}

impl FromRequest for ApiKey {
    type Error = ApiError;
    type Future = ApiKeyFuture;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(k) = req.extensions().get::<ApiKey>() {
            return ApiKeyFuture::decided(Ok(k.clone()));
        }
        let Some(verifier) = req.app_data::<web::Data<Verifier>>() else {
            tracing::error!("ApiKey used without a Verifier in app_data");
            return ApiKeyFuture::decided(Err(ApiError::Unavailable));
        };
        let presented = match presented_key(req) {
            Ok(k) => k,
            Err(e) => {
                let outcome = match e {
                    ApiError::MissingKey => Outcome::Missing,
                    _ => Outcome::Invalid,
                };
                verifier.metrics().unverified(outcome);
                return ApiKeyFuture::decided(Err(e));
            }
        };
        let lookup = match verifier.check_bytes(presented, || crate::net::client_ip(req)) {
            Checked::Done(result) => return ApiKeyFuture::decided(conclude(req, || shown_prefix(presented), result)),
            Checked::Lookup(lookup) => lookup,
        };
        // Parsed and hashed once: the lookup carries what `check` found.
        let req = req.clone();
        let verifier = verifier.clone();
        ApiKeyFuture(Step::Waiting(Box::pin(async move {
            let result = verifier.look_up(&lookup, crate::net::client_ip(&req)).await;
            conclude(&req, || lookup.display_prefix(), result)
        })))
    }
}

/// Middleware: only requests with a valid key carrying `scope` reach the
/// wrapped route or scope (401 without a valid key, 403 without the scope).
#[derive(Clone)]
pub struct RequireScope {
    scope: Rc<str>,
}

impl RequireScope {
    pub fn new(scope: &str) -> Self {
        Self { scope: Rc::from(scope) }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequireScope
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireScopeMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireScopeMiddleware {
            service: Rc::new(service),
            scope: self.scope.clone(),
        }))
    }
}

pub struct RequireScopeMiddleware<S> {
    service: Rc<S>,
    scope: Rc<str>,
}

impl<S, B> Service<ServiceRequest> for RequireScopeMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let scope = self.scope.clone();
        Box::pin(async move {
            let checked = match req.extract::<ApiKey>().await {
                Ok(key) => {
                    let allowed = match req.app_data::<web::Data<Verifier>>() {
                        Some(v) => key.require_recorded(&scope, v),
                        None => Err(ApiError::Unavailable),
                    };
                    // The handler's own `ApiKey` is then taken from here,
                    // not verified a second time.
                    req.extensions_mut().insert(key);
                    allowed
                }
                Err(e) => Err(e),
            };
            match checked {
                Ok(()) => service.call(req).await.map(ServiceResponse::map_into_left_body),
                Err(e) => {
                    let res = e.error_response();
                    Ok(req.into_response(res).map_into_right_body())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How keys were read from headers before the bytes were trimmed
    /// directly: the value read as UTF-8 first, then trimmed as text.
    fn as_text_first(headers: &header::HeaderMap) -> Result<&str, ApiError> {
        let auth: Vec<_> = headers.get_all(header::AUTHORIZATION).collect();
        if auth.len() > 1 {
            return Err(ApiError::InvalidToken);
        }
        if let Some(v) = auth.first() {
            let v = text(v.as_bytes())?.trim();
            if v.len() >= 6
                && v.as_bytes()[..6].eq_ignore_ascii_case(b"bearer")
                && (v.len() == 6 || v.as_bytes()[6] == b' ')
            {
                let token = v[6..].trim();
                return if token.is_empty() {
                    Err(ApiError::MissingKey)
                } else {
                    Ok(token)
                };
            }
        }
        let keys: Vec<_> = headers.get_all("x-api-key").collect();
        match keys[..] {
            [] => Err(ApiError::MissingKey),
            [v] => match text(v.as_bytes())?.trim() {
                "" => Err(ApiError::MissingKey),
                v => Ok(v),
            },
            _ => Err(ApiError::InvalidToken),
        }
    }

    fn headers(pairs: &[(&'static str, &[u8])]) -> header::HeaderMap {
        let mut map = header::HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_static(name),
                HeaderValue::from_bytes(value).expect("a header value"),
            );
        }
        map
    }

    #[test]
    fn keys_are_read_from_header_bytes_as_they_were_read_from_text() {
        let key: &[u8] = b"kw_AbCd1234_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000";
        let with = |before: &[u8], after: &[u8]| [before, key, after].concat();
        let values: Vec<Vec<u8>> = vec![
            with(b"Bearer ", b""),
            with(b"bEaReR   ", b" \t"),
            with(b"Bearer ", "\u{a0}".as_bytes()),
            with(b"Bearer ", "\u{3000}\t".as_bytes()),
            with("\u{2003}Bearer ".as_bytes(), b""),
            with(b"Bearer \xff", b""),
            with(b"Bearer ", b"\xff"),
            with(b"Bearer kw_\xfe", b""),
            with(b"Bearer\xc2\xa0", b""),
            with(b"Basic ", b""),
            with(b"Basic \xff", b""),
            b"Bearer".to_vec(),
            b"Bearer   ".to_vec(),
            b"Bearerx".to_vec(),
            Vec::new(),
            b" \t ".to_vec(),
            "\u{85}".as_bytes().to_vec(),
            with(b"", b""),
        ];
        for v in &values {
            for case in [
                headers(&[("authorization", v)]),
                headers(&[("x-api-key", v)]),
                headers(&[("authorization", v), ("x-api-key", key)]),
                headers(&[("authorization", b"Basic x"), ("x-api-key", v)]),
            ] {
                let old = as_text_first(&case).map_err(|e| e.to_string());
                let bytes = key_bytes_from_headers(&case);
                match &old {
                    Ok(k) => assert_eq!(bytes.as_ref().ok(), Some(&k.as_bytes()), "{case:?}"),
                    // Not UTF-8 inside the key: the same refusal, later,
                    // from the verifier (such bytes are never a key).
                    Err(e) if e == "invalid_token" => {
                        assert!(
                            bytes.as_ref().map_or_else(
                                |e| matches!(e, ApiError::InvalidToken),
                                |b| std::str::from_utf8(b).is_err()
                            ),
                            "{case:?}: {bytes:?}"
                        )
                    }
                    Err(_) => assert!(matches!(bytes, Err(ApiError::MissingKey)), "{case:?}: {bytes:?}"),
                }
                assert_eq!(key_from_headers(&case).map_err(|e| e.to_string()), old, "{case:?}");
            }
        }
    }
}
