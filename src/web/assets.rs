//! Static files compiled into the binary, and the headers every response
//! carries (SPEC §6).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

const STYLE: &str = include_str!("../../static/style.css");
const SCRIPT: &str = include_str!("../../static/app.js");
const FAVICON: &str = include_str!("../../static/favicon.svg");

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}
async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}
async fn favicon() -> HttpResponse {
    asset("image/svg+xml", FAVICON)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/static/style.css").route(web::get().to(style)))
        .service(web::resource("/static/app.js").route(web::get().to(script)))
        .service(web::resource("/static/favicon.svg").route(web::get().to(favicon)))
        .service(web::resource("/favicon.ico").route(web::get().to(favicon)));
}

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Security headers on every response; `no-store` on everything but the
/// static assets, since most pages are behind the login and the rest hold
/// CSRF tokens. HSTS only when the public URL is https.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let hsts = req
        .app_data::<web::Data<crate::state::AppState>>()
        .is_some_and(|s| s.settings.is_https());
    let is_asset = req.path().starts_with("/static/") || req.path() == "/favicon.ico";
    // Answers to a proxy's auth subrequest never reach a browser: the
    // page headers would only cost every protected call ~450 bytes
    // (docs/forward-auth.md). `no-store` stays.
    let for_proxy = req.path() == "/auth/verify";
    // The request line is copied for the debug log only when that log is
    // on: every API call passes here.
    let logged = tracing::enabled!(target: "keyward::http", tracing::Level::DEBUG)
        .then(|| (req.method().clone(), req.path().to_owned()));
    let mut res = next.call(req).await?;
    if let Some((method, path)) = logged {
        tracing::debug!(target: "keyward::http", %method, path = ?path, status = res.status().as_u16());
    }
    let h = res.headers_mut();
    if for_proxy {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(res);
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    Ok(res)
}

/// `HEAD` is answered as `GET` on every route, without the body (actix
/// leaves the body out of a response to a HEAD request, and keeps its
/// length): load balancers and link checkers probe with it. A known path
/// asked with a method it does not take answers 405 with `Allow`, which
/// then names HEAD beside GET.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use actix_web::http::{Method, StatusCode};
    let head = req.method() == Method::HEAD;
    if head {
        req.head_mut().method = Method::GET;
    }
    let mut res = next.call(req).await?;
    if res.status() == StatusCode::METHOD_NOT_ALLOWED {
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
    Ok(res)
}
