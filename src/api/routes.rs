//! The JSON API's routes under `/api/v1` (whoami, keys, ping), `/metrics`,
//! and how they are registered: the portal's side of `api` (docs/http.md).

use super::guard::JSON;
use super::{forward_auth, leaks, openapi, RequireScope};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError as _};
use secrecy::ExposeSecret as _;
use serde::Serialize;

use super::{ApiError, ApiKey};

use crate::keys::{self, KeyInfo, Verifier};
use crate::state::AppState;
use crate::time::rfc3339;

/// A key as its owner sees it: never a secret.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Key)]
pub(crate) struct KeyJson {
    #[schema(example = "3fJk9QzL")]
    id: String,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    created_at: String,
    /// RFC 3339, UTC; null when never used.
    last_used_at: Option<String>,
    /// RFC 3339, UTC; null when it never expires.
    expires_at: Option<String>,
    expired: bool,
    /// `active`, or `retiring` once rotated (then `retires_at` says until
    /// when it works).
    #[schema(example = "active")]
    state: &'static str,
    retires_at: Option<String>,
    /// The address of the last accepted call.
    last_used_address: Option<String>,
    /// Networks the key may be used from; empty for anywhere.
    allowed_ips: Vec<String>,
    rate_limit_per_minute: Option<i32>,
}

/// One page of the caller's keys, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct KeyList {
    keys: Vec<KeyJson>,
    /// All the caller's keys, on every page.
    total: i64,
    /// Pass as `?after=` for the next page; null on the last page.
    next_after: Option<String>,
}

impl KeyJson {
    fn from_info(k: &KeyInfo, now: chrono::NaiveDateTime) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            scopes: k.scope_list(),
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
            expires_at: k.expires_at.map(rfc3339),
            expired: k.is_expired(now),
            state: k.state(now),
            retires_at: k.retires_at.map(rfc3339),
            last_used_address: k.last_used_address.clone(),
            allowed_ips: k.allowed_ips.split_whitespace().map(str::to_owned).collect(),
            rate_limit_per_minute: k.rate_limit_per_minute,
        }
    }
}

/// Who is calling: the schema of `whoami_body`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Whoami<'a> {
    user: &'a str,
    key: WhoamiKey<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct WhoamiKey<'a> {
    id: &'a str,
    name: &'a str,
    prefix: &'a str,
    #[schema(value_type = Vec<String>)]
    scopes: ScopeList<'a>,
    expires_at: Option<String>,
}

/// A key's scopes as a JSON array, straight from the cached key.
struct ScopeList<'a>(&'a keys::VerifiedKey);

impl Serialize for ScopeList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.scopes())
    }
}

/// `GET /api/v1/whoami`: any valid key. Serialised straight from the
/// cached key (no intermediate JSON tree): this is the hot path's answer.
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = "keys",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The caller and the key it used", body = Whoami),
        (status = 401, description = "No key, or an invalid one", body = openapi::ErrorJson),
        (status = 403, description = "Used from an address the key's allowlist does not name", body = openapi::ErrorJson),
        (status = 429, description = "The key is over its rate limit", body = openapi::ErrorJson),
        (status = 503, description = "The database is unavailable", body = openapi::ErrorJson),
    )
)]
pub(crate) async fn whoami(key: Result<ApiKey, ApiError>) -> HttpResponse {
    // A refused key is answered here: through actix's error path (a failed
    // extractor) the refusal would be boxed into an `actix_web::Error` and
    // kept with the response, an allocation per refusal that a flood of
    // bad keys pays on every call (BENCHMARKS.md, "Instructions per
    // request"). The answer is the same bytes either way.
    match key {
        Ok(key) => json_ok(whoami_body(&key)),
        Err(refused) => refused.error_response(),
    }
}

/// 200 with a JSON body, its one header inserted directly: the builder's
/// `insert_header` converts its argument on every call (~230 instructions).
fn json_ok(body: impl actix_web::body::MessageBody + 'static) -> HttpResponse {
    let mut res = HttpResponse::with_body(actix_web::http::StatusCode::OK, body).map_into_boxed_body();
    res.headers_mut().insert(JSON.0, JSON.1);
    res
}

/// Written by hand from the cached key: the same JSON `Whoami` serialises
/// to (a test compares them), at a fraction of serde's cost per call
/// (BENCHMARKS.md, "Instructions per request"). Written into this worker's
/// buffer and split off it, so that a call allocates nothing: the buffer
/// is shared by the bodies in flight and replaced when used up.
fn whoami_body(key: &keys::VerifiedKey) -> actix_web::web::Bytes {
    thread_local! {
        // Bodies are ~200 bytes: a buffer serves about 80 of them.
        static BUFFER: std::cell::RefCell<actix_web::web::BytesMut> =
            std::cell::RefCell::new(actix_web::web::BytesMut::with_capacity(16 * 1024));
    }
    BUFFER.with(|buffer| {
        let mut body = buffer.borrow_mut();
        // Empty unless a call panicked half-way: never send its leftovers.
        body.clear();
        let (username, name) = (key.username(), key.name());
        // Enough unless a name needs escaping (then it grows as it goes).
        body.reserve(256 + username.len() + name.len());
        // The id and the prefix are base62 and `_` by construction (a valid
        // key's own characters): nothing to escape. Names and usernames
        // rarely need it: then the quotes go with the fixed text, in as
        // few appends as the JSON allows.
        if needs_escape(username) || needs_escape(name) {
            body.extend_from_slice(br#"{"user":"#);
            json_str(&mut body, username);
            body.extend_from_slice(br#","key":{"id":""#);
            body.extend_from_slice(key.key_id().as_bytes());
            body.extend_from_slice(br#"","name":"#);
            json_str(&mut body, name);
            body.extend_from_slice(br#","prefix":""#);
        } else {
            body.extend_from_slice(br#"{"user":""#);
            body.extend_from_slice(username.as_bytes());
            body.extend_from_slice(br#"","key":{"id":""#);
            body.extend_from_slice(key.key_id().as_bytes());
            body.extend_from_slice(br#"","name":""#);
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(br#"","prefix":""#);
        }
        body.extend_from_slice(key.prefix().as_bytes());
        body.extend_from_slice(br#"","scopes":["#);
        // Scopes are stored space-separated and never contain a space: the
        // JSON list is that text with each space turned into `","`.
        let scopes = key.scopes_joined();
        if needs_escape(scopes) {
            for (i, scope) in key.scopes().enumerate() {
                if i > 0 {
                    body.extend_from_slice(b",");
                }
                json_str(&mut body, scope);
            }
        } else if !scopes.is_empty() {
            body.extend_from_slice(b"\"");
            for (i, scope) in scopes.as_bytes().split(|&b| b == b' ').enumerate() {
                if i > 0 {
                    body.extend_from_slice(br#"",""#);
                }
                body.extend_from_slice(scope);
            }
            body.extend_from_slice(b"\"");
        }
        body.extend_from_slice(br#"],"expires_at":"#);
        match key.expires_at() {
            Some(t) => json_str(&mut body, &rfc3339(t)),
            None => body.extend_from_slice(b"null"),
        }
        body.extend_from_slice(b"}}");
        body.split().freeze()
    })
}

/// Whether `s` has a byte a JSON string must escape. One table lookup per
/// byte, with no branch per byte.
fn needs_escape(s: &str) -> bool {
    static ESCAPED: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            t[b] = b < 0x20 || b == b'"' as usize || b == b'\\' as usize;
            b += 1;
        }
        t
    };
    s.bytes().fold(false, |any, b| any | ESCAPED[usize::from(b)])
}

/// `s` as a JSON string. Text with nothing to escape (usernames, scopes,
/// most names) is copied as it is; the rest goes through serde_json.
fn json_str(out: &mut actix_web::web::BytesMut, s: &str) {
    if needs_escape(s) {
        // Writing a `str` to a `String` cannot fail.
        out.extend_from_slice(
            serde_json::to_string(s)
                .unwrap_or_else(|_| "\"\"".to_owned())
                .as_bytes(),
        );
    } else {
        out.extend_from_slice(b"\"");
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(b"\"");
    }
}

/// `GET /api/v1/ping`: no key, no database. A liveness probe, and the
/// baseline the load test compares the guard against.
#[utoipa::path(
    get,
    path = "/api/v1/ping",
    tag = "health",
    responses((status = 200, description = "Always", body = openapi::StatusJson))
)]
pub(crate) async fn ping() -> HttpResponse {
    json_ok(r#"{"status":"ok"}"#)
}

/// `GET /metrics`: the guard's counters in the Prometheus text format,
/// only for `Authorization: Bearer $KEYWARD_METRICS_TOKEN`, and not served
/// at all (404) without that setting: its cache counters would tell a
/// stranger whether a key id exists.
async fn metrics(req: HttpRequest, state: web::Data<AppState>, verifier: web::Data<Verifier>) -> HttpResponse {
    use subtle::ConstantTimeEq as _;
    let Some(expected) = state
        .settings
        .metrics_token
        .as_ref()
        .filter(|t| !t.expose_secret().is_empty())
    else {
        return ApiError::NotFound.error_response();
    };
    let sent = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(sent.trim().as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, r#"Bearer realm="keyward-metrics""#))
            .json(serde_json::json!({ "error": "invalid_token" }));
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(verifier.metrics().render(verifier.gauges()))
}

#[derive(serde::Deserialize)]
struct PageQuery {
    after: Option<String>,
}

/// `GET /api/v1/keys`: the caller's keys (scope `keys:read`), never a
/// secret, newest first, 50 a page: `next_after` (when not null) is the
/// `?after=` of the next page.
#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "keys",
    security(("bearer" = ["keys:read"]), ("api_key" = ["keys:read"])),
    params(
        ("after" = Option<String>, Query, description = "`next_after` of the previous page",
            pattern = r"^[0-9]{1,15}_[0-9A-Za-z]{8}$"),
    ),
    responses(
        (status = 200, description = "One page of the caller's keys", body = KeyList),
        (status = 400, description = "A malformed `after`", body = openapi::ErrorJson),
        (status = 401, description = "No key, or an invalid one", body = openapi::ErrorJson),
        (status = 403, description = "The key lacks `keys:read`, or its allowlist does not name the caller", body = openapi::ErrorJson),
        (status = 429, description = "The key is over its rate limit", body = openapi::ErrorJson),
        (status = 503, description = "The database is unavailable", body = openapi::ErrorJson),
    )
)]
pub(crate) async fn list_keys(
    key: ApiKey,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let after = match web::Query::<PageQuery>::from_query(req.query_string()) {
        Ok(q) => match q.into_inner().after {
            None => None,
            Some(a) => Some(keys::Cursor::parse(&a).ok_or(ApiError::BadRequest("invalid_cursor"))?),
        },
        Err(_) => return Err(ApiError::BadRequest("invalid_query")),
    };
    let page = keys::list(&state.pool, state.verifier.last_used(), key.user_id, after)
        .await
        .map_err(|e| {
            tracing::error!(error = ?e, "listing keys failed");
            ApiError::Unavailable
        })?;
    let now = crate::time::now();
    let keys: Vec<KeyJson> = page.keys.iter().map(|k| KeyJson::from_info(k, now)).collect();
    Ok(HttpResponse::Ok().json(KeyList {
        keys,
        total: page.total,
        next_after: page.next.map(|c| c.to_string()),
    }))
}

/// `DELETE /api/v1/keys/{id}`: revokes one of the caller's keys (scope `keys:write`).
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "keys",
    security(("bearer" = ["keys:write"]), ("api_key" = ["keys:write"])),
    params(("id" = String, Path, description = "The key's id (the part after the tag)")),
    responses(
        (status = 204, description = "Revoked: refused from now on"),
        (status = 401, description = "No key, or an invalid one", body = openapi::ErrorJson),
        (status = 403, description = "The key lacks `keys:write`, or its allowlist does not name the caller", body = openapi::ErrorJson),
        (status = 429, description = "The key is over its rate limit", body = openapi::ErrorJson),
        (status = 404, description = "The caller has no such key", body = openapi::ErrorJson),
        (status = 503, description = "The database is unavailable", body = openapi::ErrorJson),
    )
)]
pub(crate) async fn delete_key(
    req: HttpRequest,
    key: ApiKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
    verifier: web::Data<Verifier>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let unavailable = |e: anyhow::Error| {
        tracing::error!(error = ?e, "deleting key failed");
        ApiError::Unavailable
    };
    let Some(target) = keys::find_own(&state.pool, verifier.last_used(), key.user_id, &id)
        .await
        .map_err(unavailable)?
    else {
        return Err(ApiError::NotFound);
    };
    let deleted = keys::delete(&state.pool, &verifier, key.user_id, &id)
        .await
        .map_err(unavailable)?;
    if deleted {
        let origin = crate::activity::Origin::new(
            crate::net::client_addr(&req),
            req.headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        );
        crate::activity::record(
            &state.pool,
            key.user_id,
            crate::activity::Event::KeyDeleted,
            &origin,
            &target.prefix,
        )
        .await;
        let user_id = key.user_id;
        let owner = crate::db::run(&state.pool, move |conn| {
            Ok(crate::accounts::users::find_by_id(conn, user_id)?)
        })
        .await;
        if let Ok(Some(owner)) = owner {
            crate::notices::key_changed(
                &state,
                &owner,
                crate::notices::KeyNotice::Deleted,
                &target.name,
                &target.prefix,
                &origin.address,
                Some(format!("Deleted through the API with key {}", key.prefix())),
            );
        }
        tracing::info!(
            target: "keyward::audit",
            event = "key_deleted",
            user = %key.username(),
            key = %format!("{}_{id}", state.settings.key_prefix),
            by = %key.prefix(),
            via = "api"
        );
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// The API's routes, each registered with its full path rather than in a
/// `/api/v1` scope: a scope matches and captures its prefix on every call,
/// which cost the hot path ~900 instructions (BENCHMARKS.md, "Instructions
/// per request"). The most called routes come first.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/api/v1/whoami", whoami))
        .service(get_only("/api/v1/ping", ping))
        .service(web::resource("/auth/verify").route(web::route().to(forward_auth::verify)))
        .service(
            web::resource("/api/v1/keys")
                .wrap(RequireScope::new("keys:read"))
                .route(web::get().to(list_keys)),
        )
        .service(
            web::resource("/api/v1/keys/{id}")
                .wrap(RequireScope::new("keys:write"))
                .route(web::delete().to(delete_key)),
        )
        .service(get_only("/api/v1/openapi.json", openapi::document))
        .service(
            web::resource("/api/v1/leaks/github")
                .app_data(web::PayloadConfig::new(leaks::BODY_LIMIT))
                .route(web::post().to(leaks::github)),
        )
        .service(
            web::resource("/api/v1/revoke")
                .app_data(web::PayloadConfig::new(leaks::BODY_LIMIT))
                .route(web::post().to(leaks::revoke)),
        )
        .service(get_only("/metrics", metrics))
        // Anything else under the API answers JSON, not the portal's page.
        .service(web::resource(["/api/v1", "/api/v1/{tail:.*}"]).to(not_found));
}

/// `path` answering GET (and HEAD, which `headers::EveryResponse` turns
/// into GET) with `handler`, and any other method with 405 and `Allow`.
/// Not `web::get()`: actix's method guard records each method it tries in
/// the request's extensions, for the `Allow` of a 405, which is an
/// allocation and a map insert on every call, ~550 instructions
/// (BENCHMARKS.md, "Instructions per request").
fn get_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::route().guard(IsGet).to(handler))
        .default_service(web::to(get_only_refused))
}

/// A method guard that records nothing: see `get_only`.
struct IsGet;

impl actix_web::guard::Guard for IsGet {
    fn check(&self, ctx: &actix_web::guard::GuardContext<'_>) -> bool {
        ctx.head().method == actix_web::http::Method::GET
    }
}

/// 405 for a `get_only` path (`headers` adds HEAD to the `Allow`).
async fn get_only_refused() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "GET"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::format::KeyDigest;

    /// The hand-written answer is exactly what serde makes of `Whoami`,
    /// for plain names and names that need escaping alike.
    #[test]
    fn whoami_body_is_the_json_of_whoami() {
        let expiry = chrono::NaiveDate::from_ymd_opt(2027, 1, 2).and_then(|d| d.and_hms_opt(3, 4, 5));
        let mut earlier: Vec<(actix_web::web::Bytes, Vec<u8>)> = Vec::new();
        for (user, name, scopes, expires) in [
            ("alice", "ci deploy", vec!["read", "write"], None),
            ("alice", "quote \" back\\slash\ttab \u{1} é \u{2028}", vec![], expiry),
            ("alice", "", vec!["keys:read"], None),
            ("b\"ob", "plain", vec!["read"], expiry),
        ] {
            let key = keys::VerifiedKey::new(
                "AbCd1234",
                7,
                user,
                name,
                "kw_AbCd1234",
                &scopes,
                expires,
                KeyDigest([0; 32]),
            );
            let expected = serde_json::to_vec(&Whoami {
                user: key.username(),
                key: WhoamiKey {
                    id: key.key_id(),
                    name: key.name(),
                    prefix: key.prefix(),
                    scopes: ScopeList(&key),
                    expires_at: key.expires_at().map(rfc3339),
                },
            })
            .unwrap();
            let body = whoami_body(&key);
            // Byte for byte, field order included.
            assert_eq!(String::from_utf8_lossy(&body), String::from_utf8_lossy(&expected));
            earlier.push((body, expected));
        }
        // Bodies split off the same buffer stay as they were written.
        for (body, expected) in earlier {
            assert_eq!(&body[..], &expected[..]);
        }
    }
}
