//! Device cookies (OWASP's "device cookie" against lock-out attacks): a
//! browser that logs into an account gets a long-lived signed cookie naming
//! the username and a random device id. Login attempts that carry it are
//! throttled per device, not per account or address, so an attacker who
//! exhausts an account's or an address's limit cannot lock its owner's
//! usual browser out. See docs/login-throttling.md.

use actix_web::cookie::{Cookie, CookieJar, Key, SameSite};
use actix_web::{HttpRequest, HttpResponse};

/// A year: the cookie is renewed at each login.
const LIFETIME_DAYS: i64 = 365;

fn name(https: bool) -> &'static str {
    if https {
        "__Host-keyward-device"
    } else {
        "keyward-device"
    }
}

/// The device id this browser holds for `username`, when its cookie is
/// present, signed by this instance and issued to that username.
pub fn known(req: &HttpRequest, key: &Key, https: bool, username: &str) -> Option<String> {
    let raw = req.cookie(name(https))?;
    let mut jar = CookieJar::new();
    jar.add_original(raw.into_owned());
    let verified = jar.signed(key).get(name(https))?;
    let (user, device) = verified.value().rsplit_once(':')?;
    (user.eq_ignore_ascii_case(username.trim()) && !device.is_empty()).then(|| device.to_owned())
}

/// Gives this browser a device cookie for `username` (kept device id when
/// it had one for them, so its failure count follows it).
pub fn remember(res: &mut HttpResponse, key: &Key, https: bool, username: &str, device: Option<String>) {
    let device = device.unwrap_or_else(|| crate::keys::format::random_base62(22));
    let mut jar = CookieJar::new();
    jar.signed_mut(key).add(
        Cookie::build(name(https), format!("{username}:{device}"))
            .path("/")
            .http_only(true)
            .secure(https)
            .same_site(SameSite::Lax)
            .max_age(actix_web::cookie::time::Duration::days(LIFETIME_DAYS))
            .finish(),
    );
    for cookie in jar.delta() {
        if let Err(e) = res.add_cookie(cookie) {
            tracing::warn!(error = %e, "cannot set the device cookie");
        }
    }
}
