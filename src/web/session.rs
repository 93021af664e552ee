//! Who is logged in. The identity stored in the (encrypted) session cookie
//! is a random session token; the server-side `user_sessions` row decides
//! whether it is still valid.

use std::future::Future;
use std::pin::Pin;

use actix_identity::Identity;
use actix_session::SessionExt as _;
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
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| anyhow::anyhow!("AppState missing"))?
                .clone();
            match current(&req, &state).await? {
                Some(me) => Ok(me),
                None => {
                    // No session, or one ended on the server (logout
                    // elsewhere, password change): drop any stale identity
                    // from this browser too.
                    if let Ok(identity) = Identity::extract(&req).await {
                        identity.logout();
                    }
                    Err(WebError::LoginRequired(next))
                }
            }
        })
    }
}

/// The one path from a browser to its user: the identity in the cookie
/// names a session token, and the server-side session record (alive, not
/// idle, not past `KEYWARD_SESSION_MAX_HOURS`) names the user. `Ok(None)`
/// when there is no identity or the session has ended.
pub async fn current(req: &HttpRequest, state: &AppState) -> anyhow::Result<Option<CurrentUser>> {
    let Some(id) = Identity::extract(req).await.ok().and_then(|i| i.id().ok()) else {
        return Ok(None);
    };
    if !still_active(req, state) {
        return Ok(None);
    }
    let token = SessionToken::from_cookie(id);
    let found = accounts::session(&state.pool, token.clone(), state.settings.session_lifetime()).await?;
    Ok(found.map(|(user, session)| CurrentUser { user, token, session }))
}

/// The cookie session's last visit, in milliseconds of the instance clock.
const LAST_VISIT: &str = "seen";

/// False when the browser's last visit is older than the idle timeout
/// (`KEYWARD_SESSION_IDLE_MINUTES`); otherwise this visit becomes the last.
/// Timed by the instance clock, so tests move it rather than wait.
fn still_active(req: &HttpRequest, state: &AppState) -> bool {
    let session = req.get_session();
    let now = state.clock.now().and_utc().timestamp_millis();
    let idle = i64::try_from(state.settings.session_idle().as_millis()).unwrap_or(i64::MAX);
    // Every login records a visit (`log_in`): a session without one (a
    // cookie from before this check, a damaged one) is treated as idle.
    match session.get::<i64>(LAST_VISIT) {
        Ok(Some(seen)) if now.saturating_sub(seen) <= idle => {}
        _ => return false,
    }
    // A failed write only means the next visit is judged by an older one.
    let _ = session.insert(LAST_VISIT, now);
    true
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
    if let Ok(session) = actix_session::Session::extract(req).await {
        let _ = session.insert(LAST_VISIT, state.clock.now().and_utc().timestamp_millis());
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
