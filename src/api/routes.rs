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
pub(crate) async fn whoami(key: ApiKey) -> HttpResponse {
    HttpResponse::Ok().insert_header(JSON).body(whoami_body(&key))
}

/// Written by hand from the cached key, in one allocation: the same JSON
/// `Whoami` serialises to (a test compares them), at a fraction of serde's
/// cost per call (BENCHMARKS.md, "Instructions per request").
fn whoami_body(key: &keys::VerifiedKey) -> String {
    let mut body = String::with_capacity(160 + key.name().len());
    body.push_str(r#"{"user":"#);
    json_str(&mut body, key.username());
    // The id and the prefix are base62 and `_` by construction (a valid
    // key's own characters): nothing to escape.
    body.push_str(r#","key":{"id":""#);
    body.push_str(key.key_id());
    body.push_str(r#"","name":"#);
    json_str(&mut body, key.name());
    body.push_str(r#","prefix":""#);
    body.push_str(key.prefix());
    body.push_str(r#"","scopes":["#);
    for (i, scope) in key.scopes().enumerate() {
        if i > 0 {
            body.push(',');
        }
        json_str(&mut body, scope);
    }
    body.push_str(r#"],"expires_at":"#);
    match key.expires_at() {
        Some(t) => json_str(&mut body, &rfc3339(t)),
        None => body.push_str("null"),
    }
    body.push_str("}}");
    body
}

/// `s` as a JSON string. Text with nothing to escape (usernames, scopes,
/// most names) is copied as it is; the rest goes through serde_json.
fn json_str(out: &mut String, s: &str) {
    // One table lookup per byte, with no branch per byte.
    static ESCAPED: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            t[b] = b < 0x20 || b == b'"' as usize || b == b'\\' as usize;
            b += 1;
        }
        t
    };
    if !s.bytes().fold(false, |any, b| any | ESCAPED[usize::from(b)]) {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // Writing a `str` to a `String` cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()));
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
    HttpResponse::Ok().insert_header(JSON).body(r#"{"status":"ok"}"#)
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
    cfg.service(web::resource("/api/v1/whoami").route(web::get().to(whoami)))
        .service(web::resource("/api/v1/ping").route(web::get().to(ping)))
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
        .service(web::resource("/api/v1/openapi.json").route(web::get().to(openapi::document)))
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
        .service(web::resource("/metrics").route(web::get().to(metrics)))
        // Anything else under the API answers JSON, not the portal's page.
        .service(web::resource(["/api/v1", "/api/v1/{tail:.*}"]).to(not_found));
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
        for (name, scopes, expires) in [
            ("ci deploy", vec!["read", "write"], None),
            ("quote \" back\\slash\ttab \u{1} é \u{2028}", vec![], expiry),
            ("", vec!["keys:read"], None),
        ] {
            let key = keys::VerifiedKey::new(
                "AbCd1234",
                7,
                "alice",
                name,
                "kw_AbCd1234",
                &scopes,
                expires,
                KeyDigest([0; 32]),
            );
            let expected = serde_json::to_value(Whoami {
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
            let got: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(got, expected, "{body}");
        }
    }
}
