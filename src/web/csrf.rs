//! CSRF protection: a random token per session (synchronizer pattern),
//! put in every form as `csrf_token` and checked in constant time on every
//! POST before anything else happens.

use actix_session::Session;
use subtle::ConstantTimeEq;

use super::forms::Form;
use super::WebError;

const KEY: &str = "csrf";

/// The session's token, created on first use.
pub fn token(session: &Session) -> String {
    if let Ok(Some(t)) = session.get::<String>(KEY) {
        return t;
    }
    let t = crate::keys::format::random_base62(32);
    if let Err(e) = session.insert(KEY, &t) {
        tracing::error!(error = %e, "cannot store CSRF token");
    }
    t
}

/// Forgets the session's token: the next page gets a new one. Called when
/// the session changes hands (login, registration).
pub fn rotate(session: &Session) {
    session.remove(KEY);
}

/// Checks the token `form` carried. Every POST handler calls it first,
/// before reading any other field or changing anything.
pub fn verify<T>(session: &Session, form: &Form<T>) -> Result<(), WebError> {
    let sent = form.csrf_token();
    match session.get::<String>(KEY) {
        Ok(Some(expected)) if !sent.is_empty() && bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) => Ok(()),
        _ => Err(WebError::Csrf),
    }
}
