//! The one layer around every request (wired in `startup.rs`): `HEAD`
//! answered as `GET`, the security headers every response carries, and the
//! `RateLimit-*` headers of a rate-limited key. Pages and API answers get
//! different sets; see `EveryResponse`.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;

/// The CSP of API answers: JSON is never rendered, so it only has to
/// forbid everything, framing included, in a few bytes.
pub const API_CSP: &str = "default-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// What a response is, for the headers it gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// HTML pages (and their errors): the full set.
    Page,
    /// Static files: the full set, but cacheable.
    Asset,
    /// JSON under `/api/`: the headers an API needs.
    Api,
    /// `/auth/verify`: answers to a proxy's subrequest never reach a
    /// browser, so only `no-store` (docs/forward-auth.md).
    Proxy,
}

impl Kind {
    fn of(path: &str) -> Self {
        if path.starts_with("/api/") {
            Self::Api
        } else if path == "/auth/verify" {
            Self::Proxy
        } else if path.starts_with("/static/") || path == "/favicon.ico" {
            Self::Asset
        } else {
            Self::Page
        }
    }
}

/// The one layer around every request: `HEAD` answered as `GET` (with
/// `Allow` naming HEAD on a 405), the security headers, and the
/// `RateLimit-*` headers of a rate-limited key. One hand-written layer
/// rather than three `from_fn` ones: each of those costs a boxed future on
/// every call (BENCHMARKS.md, "Instructions per request").
///
/// Headers: pages get a CSP without inline scripts, `nosniff`,
/// `no-referrer`, `DENY` framing and `no-store` (static files are
/// cacheable); API answers get what an API needs: a short CSP, `nosniff`
/// and `no-store`; HSTS on all of these when the public URL is https.
#[derive(Clone, Copy, Debug)]
pub struct EveryResponse {
    hsts: bool,
}

impl EveryResponse {
    /// `hsts`: whether the public URL is https.
    pub fn new(hsts: bool) -> Self {
        Self { hsts }
    }
}

impl<S, B> Transform<S, ServiceRequest> for EveryResponse
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = EveryResponseService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(EveryResponseService {
            service,
            hsts: self.hsts,
        }))
    }
}

pub struct EveryResponseService<S> {
    service: S,
    hsts: bool,
}

impl<S, B> Service<ServiceRequest> for EveryResponseService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = EveryResponseFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        if req.method() == Method::HEAD {
            req.head_mut().method = Method::GET;
        }
        let kind = Kind::of(req.path());
        // The request line is copied for the debug log only when that log
        // is on: every API call passes here.
        let logged = tracing::enabled!(target: "keyward::http", tracing::Level::DEBUG)
            .then(|| (req.method().clone(), req.path().to_owned()));
        EveryResponseFuture {
            inner: self.service.call(req),
            kind,
            hsts: self.hsts,
            logged,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct EveryResponseFuture<F> {
        #[pin]
        inner: F,
        kind: Kind,
        hsts: bool,
        logged: Option<(Method, String)>,
    }
}

impl<F, B> Future for EveryResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = match this.inner.poll(cx) {
            Poll::Ready(Ok(res)) => res,
            other => return other,
        };
        if let Some((method, path)) = this.logged.take() {
            tracing::debug!(target: "keyward::http", %method, path = ?path, status = res.status().as_u16());
        }
        name_head_in_allow(&mut res);
        crate::api::guard::insert_rate_limit_headers(&mut res);
        add_security_headers(res.headers_mut(), *this.kind, *this.hsts);
        Poll::Ready(Ok(res))
    }
}

/// The headers' values, checked once at compile time: `from_static`
/// outside a constant checks its bytes on every call.
mod values {
    use actix_web::http::header::HeaderValue;
    pub const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
    pub const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
    pub const API_CSP: HeaderValue = HeaderValue::from_static(super::API_CSP);
    pub const PAGE_CSP: HeaderValue = HeaderValue::from_static(crate::web::assets::CSP);
    pub const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");
    pub const DENY: HeaderValue = HeaderValue::from_static("DENY");
    pub const SAME_ORIGIN: HeaderValue = HeaderValue::from_static("same-origin");
    pub const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000; includeSubDomains");
}

fn add_security_headers(h: &mut header::HeaderMap, kind: Kind, hsts: bool) {
    if kind != Kind::Asset {
        h.insert(header::CACHE_CONTROL, values::NO_STORE);
    }
    if kind == Kind::Proxy {
        return;
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, values::NOSNIFF);
    if kind == Kind::Api {
        h.insert(header::CONTENT_SECURITY_POLICY, values::API_CSP);
    } else {
        h.insert(header::CONTENT_SECURITY_POLICY, values::PAGE_CSP);
        h.insert(header::REFERRER_POLICY, values::NO_REFERRER);
        h.insert(header::X_FRAME_OPTIONS, values::DENY);
        h.insert(
            header::HeaderName::from_static("cross-origin-opener-policy"),
            values::SAME_ORIGIN,
        );
    }
    if hsts {
        h.insert(header::STRICT_TRANSPORT_SECURITY, values::HSTS);
    }
}

/// A known path asked with a method it does not take answers 405 with
/// `Allow`, which then names HEAD beside GET: load balancers and link
/// checkers probe with HEAD, and every GET route answers it (actix leaves
/// the body out of a response to a HEAD request, and keeps its length).
fn name_head_in_allow<B>(res: &mut ServiceResponse<B>) {
    if res.status() != actix_web::http::StatusCode::METHOD_NOT_ALLOWED {
        return;
    }
    let allow = res
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(allow) = allow.filter(|a| a.split(',').any(|m| m.trim() == "GET")) {
        if let Ok(v) = HeaderValue::from_str(&format!("{allow}, HEAD")) {
            res.headers_mut().insert(header::ALLOW, v);
        }
    }
}
