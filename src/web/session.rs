//! Who is logged in. The identity stored in the (encrypted) session cookie
//! is a random session token; the server-side `user_sessions` row decides
//! whether it is still valid.

use std::future::Future;
use std::pin::Pin;

use actix_identity::Identity;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use chrono::Duration;

use super::WebError;
use crate::accounts::{self, SessionToken, User};
use crate::state::AppState;

pub struct CurrentUser {
    pub user: User,
    pub token: SessionToken,
    pub session: accounts::sessions::SessionInfo,
}

impl CurrentUser {
    /// `Err(ConfirmRequired)` unless this session proved its user within
    /// `KEYWARD_CONFIRM_MINUTES`: creating, editing or rotating keys
    /// needs it. `back` is where `/confirm` returns to.
    pub fn require_recent(&self, state: &AppState, back: &str) -> Result<(), WebError> {
        let within = Duration::from_std(state.settings.confirm_within()).unwrap_or(Duration::minutes(15));
        if accounts::security::is_recent(self.session.authenticated_at, within, crate::time::now()) {
            Ok(())
        } else {
            Err(WebError::ConfirmRequired(back.to_owned()))
        }
    }
}

/// Where to come back to after logging in: this request's path and query.
fn here(req: &HttpRequest) -> String {
    match req.uri().path_and_query() {
        Some(pq) if req.method() == actix_web::http::Method::GET => pq.as_str().to_owned(),
        _ => String::new(),
    }
}

impl FromRequest for CurrentUser {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, WebError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let next = here(&req);
            let Ok(identity) = Identity::extract(&req).await else {
                return Err(WebError::LoginRequired(next));
            };
            let Ok(id) = identity.id() else {
                identity.logout();
                return Err(WebError::LoginRequired(next));
            };
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| anyhow::anyhow!("AppState missing"))?
                .clone();
            let token = SessionToken::from_cookie(id);
            let max_age = Duration::from_std(state.settings.session_max()).unwrap_or(Duration::hours(12));
            match accounts::session(&state.pool, token.clone(), max_age).await? {
                Some((user, session)) => Ok(CurrentUser { user, token, session }),
                None => {
                    // Ended on the server (logout elsewhere, password change):
                    // drop the stale identity from this browser too.
                    identity.logout();
                    Err(WebError::LoginRequired(next))
                }
            }
        })
    }
}

/// Starts a fresh session for `user`: a new server-side record and a renewed
/// cookie (no fixation).
pub async fn log_in(req: &HttpRequest, state: &AppState, user: &User) -> Result<(), WebError> {
    // Logging in over an existing session ends the old one on the server.
    if let Some(old) = Identity::extract(req).await.ok().and_then(|i| i.id().ok()) {
        accounts::end_session(&state.pool, SessionToken::from_cookie(old)).await?;
    }
    // Nothing a previous visitor of this browser left in the session
    // (a 2FA secret being enrolled, a half-done confirmation) carries over.
    if let Ok(session) = actix_session::Session::extract(req).await {
        for stale in super::security::SESSION_SCRATCH {
            session.remove(stale);
        }
    }
    let origin = super::origin(req);
    let token = accounts::start_session(&state.pool, user.id, origin.address, origin.user_agent).await?;
    Identity::login(&req.extensions(), token.expose().to_owned()).map_err(|e| anyhow::anyhow!("cannot log in: {e}"))?;
    Ok(())
}

/// A local path to go to after login, or `/keys`. Refuses anything that
/// could leave the site (`//host`, `/\host`, absolute URLs).
pub fn safe_next(next: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && next.len() <= 512;
    if ok {
        next.to_owned()
    } else {
        "/keys".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_the_site() {
        assert_eq!(safe_next("/keys/new"), "/keys/new");
        for bad in [
            "//evil.test",
            "/\\evil.test",
            "https://evil.test",
            "",
            "/a\r\nb",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(bad), "/keys", "{bad:?}");
        }
    }
}
