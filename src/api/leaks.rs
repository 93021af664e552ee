//! `POST /api/v1/leaks/github` (GitHub's secret-scanning partner format)
//! and `POST /api/v1/revoke` (anyone holding a key may kill it).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ApiError;
use crate::activity::{self, Event, Origin};
use crate::mail::MailKind;
use crate::operators::{self, Revoked};
use crate::state::AppState;

/// Bodies larger than this are refused (413).
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Tokens in one request, at most.
pub const MAX_TOKENS: usize = 1000;

#[derive(Deserialize)]
struct Reported {
    token: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    url: String,
}

#[derive(Serialize)]
struct Feedback {
    token_hash: String,
    token_type: String,
    label: &'static str,
}

fn origin(req: &HttpRequest) -> Origin {
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    Origin::new(crate::net::client_addr(req), agent)
}

fn unavailable(e: anyhow::Error) -> ApiError {
    tracing::error!(error = ?e, "revoking keys failed");
    ApiError::Unavailable
}

fn tell_owner(state: &AppState, r: &Revoked, how: &str) {
    let body = crate::mail::texts::render(&crate::mail::texts::KeyRevoked {
        username: &r.owner.username,
        name: &r.name,
        prefix: &r.prefix,
        how,
        base: state.settings.base_url(),
    });
    state.mailer.send_in_background(
        &r.owner.email,
        "Your Keyward API key was revoked",
        body,
        MailKind::KeyNotice,
    );
}

/// GitHub's report of tokens found in public code. 404 when
/// `KEYWARD_GITHUB_SCANNING_KEYS` is not set; 401 without a valid
/// signature, and then nothing is revoked.
pub async fn github(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let Some(keys) = &state.github_keys else {
        return Err(ApiError::NotFound);
    };
    let text = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    if !keys.verify(
        text("github-public-key-identifier"),
        text("github-public-key-signature"),
        &body,
    ) {
        tracing::warn!(target: "keyward::audit", event = "leak_report_refused", addr = %crate::net::client_addr(&req));
        return Err(ApiError::InvalidSignature);
    }
    let reported: Vec<Reported> = serde_json::from_slice(&body).map_err(|_| ApiError::BadRequest("invalid_body"))?;
    if reported.len() > MAX_TOKENS {
        return Err(ApiError::BadRequest("too_many_tokens"));
    }
    let tokens: Vec<String> = reported.iter().map(|r| r.token.clone()).collect();
    let (revoked, live) = operators::revoke_presented(&state.pool, &state.verifier, tokens)
        .await
        .map_err(unavailable)?;
    let origin = origin(&req);
    let mut revoked = revoked.into_iter();
    let mut feedback = Vec::with_capacity(reported.len());
    for (r, is_live) in reported.iter().zip(live) {
        if is_live {
            if let Some(k) = revoked.next() {
                tracing::warn!(target: "keyward::audit", event = "key_leaked", user = %k.owner.username, key = %k.prefix, url = ?r.url);
                activity::record(&state.pool, k.owner.id, Event::KeyLeaked, &origin, &k.prefix).await;
                let found = if r.url.is_empty() {
                    "was found in public by GitHub's secret scanning".to_owned()
                } else {
                    format!("was found in public at {} (GitHub secret scanning)", r.url)
                };
                tell_owner(&state, &k, &found);
            }
        }
        feedback.push(Feedback {
            token_hash: hex(&Sha256::digest(r.token.as_bytes())),
            token_type: r.kind.clone(),
            label: if is_live { "true_positive" } else { "false_positive" },
        });
    }
    Ok(HttpResponse::Ok().json(feedback))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Deserialize)]
struct RevokeRequest {
    keys: Vec<String>,
}

/// Anyone holding a key can revoke it. Always `202 {}`, whether or not
/// anything was revoked: the answer tells nothing about any key.
pub async fn revoke(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    if !state
        .revoke_per_address
        .allow(&crate::net::limit_key(&crate::net::client_addr(&req)))
        .await
        .map_err(unavailable)?
    {
        return Err(ApiError::TooManyRequests);
    }
    let request: RevokeRequest = serde_json::from_slice(&body).map_err(|_| ApiError::BadRequest("invalid_body"))?;
    if request.keys.len() > MAX_TOKENS {
        return Err(ApiError::BadRequest("too_many_keys"));
    }
    let (revoked, _) = operators::revoke_presented(&state.pool, &state.verifier, request.keys)
        .await
        .map_err(unavailable)?;
    let origin = origin(&req);
    for k in &revoked {
        tracing::warn!(target: "keyward::audit", event = "key_revoked_publicly", user = %k.owner.username, key = %k.prefix, addr = %origin.address);
        activity::record(&state.pool, k.owner.id, Event::KeyDeleted, &origin, &k.prefix).await;
        tell_owner(&state, k, "was revoked by someone who holds it (public revocation)");
    }
    Ok(HttpResponse::Accepted().json(serde_json::json!({})))
}
