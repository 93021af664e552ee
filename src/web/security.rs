//! Account security pages (docs/account-security.md): two-factor
//! enrolment and the second login step, `/confirm` (recent
//! authentication), email change, sessions, account deletion.

use crate::mail::texts;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::Duration;

use super::auth::AccountPage;
use super::keys::When;
use super::session::safe_next;
use super::{client_addr, csrf, flash, redirect, render, CurrentUser, FieldErrors, Form, NoFields, Page, WebError};
use crate::accounts::domain::{Email, Username, PASSWORD_MAX};
use crate::accounts::throttle::Attempt;
use crate::accounts::{self, security, totp, User};
use crate::activity::{self, Event};
use crate::mail::MailKind;
use crate::state::AppState;

const PENDING_USER: &str = "2fa_user";
const PENDING_SINCE: &str = "2fa_since";
const PENDING_NEXT: &str = "2fa_next";
const ENROLLING: &str = "2fa_enrolling";
const CONFIRM_PASSWORD_AT: &str = "confirm_password_at";

/// Session fields of half-done steps, cleared whenever someone logs in.
pub(super) const SESSION_SCRATCH: [&str; 5] = [
    PENDING_USER,
    PENDING_SINCE,
    PENDING_NEXT,
    ENROLLING,
    CONFIRM_PASSWORD_AT,
];

/// How long a correct password waits for its second factor.
const SECOND_STEP_MINUTES: i64 = 5;

fn unix_now() -> u64 {
    crate::time::now().and_utc().timestamp().max(0) as u64
}

/// After a correct password for an account with 2FA: the session remembers
/// who is half logged in, and for how long.
pub(super) fn await_second_factor(session: &Session, user: &User, next: &str) -> Result<(), WebError> {
    let insert = |k: &str, v: String| {
        session
            .insert(k, v)
            .map_err(|e| WebError::Unexpected(anyhow::anyhow!("session: {e}")))
    };
    insert(PENDING_USER, user.id.to_string())?;
    insert(PENDING_SINCE, unix_now().to_string())?;
    insert(PENDING_NEXT, safe_next(if next.is_empty() { "/keys" } else { next }))?;
    Ok(())
}

fn pending_user_id(session: &Session) -> Option<i64> {
    let since: u64 = session.get::<String>(PENDING_SINCE).ok()??.parse().ok()?;
    if unix_now().saturating_sub(since) > (SECOND_STEP_MINUTES * 60) as u64 {
        return None;
    }
    session.get::<String>(PENDING_USER).ok()??.parse().ok()
}

fn clear_pending(session: &Session) {
    session.remove(PENDING_USER);
    session.remove(PENDING_SINCE);
    session.remove(PENDING_NEXT);
}

#[derive(Template)]
#[template(path = "login_2fa.html")]
struct SecondStepPage {
    page: Page,
    error: String,
}

async fn second_step_form(session: Session, state: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    if pending_user_id(&session).is_none() {
        return Ok(redirect("/login"));
    }
    render(
        StatusCode::OK,
        &SecondStepPage {
            page: Page::new(&session, &state, None, "Two-factor authentication"),
            error: String::new(),
        },
    )
}

/// `POST /login/2fa`.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct SecondStepForm {
    /// A code from the app, or a recovery code.
    code: String,
}

async fn second_step(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    form: Form<SecondStepForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let Some(user_id) = pending_user_id(&session) else {
        clear_pending(&session);
        flash(&session, "That took too long. Log in again.");
        return Ok(redirect("/login"));
    };
    let Some(user) = security::find_by_id(&state.pool, user_id).await? else {
        clear_pending(&session);
        return Ok(redirect("/login"));
    };
    let device = super::device::known(&req, &state.cookie_key, state.settings.is_https(), &user.username);
    let attempt = Attempt::new(&user.username, &client_addr(&req), device);
    let page = |status: StatusCode, error: &str| {
        render(
            status,
            &SecondStepPage {
                page: Page::new(&session, &state, None, "Two-factor authentication"),
                error: error.to_owned(),
            },
        )
    };
    if let Some(wait) = state.login_limits.charge(&attempt).await? {
        let secs = wait.as_secs() + 1;
        let mut res = page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many failed attempts. Wait {secs} seconds, then try again."),
        )?;
        res.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(secs),
        );
        return Ok(res);
    }
    if !security::second_factor(&state.pool, &state.totp_key, &user, &form.code, unix_now()).await? {
        tracing::info!(target: "keyward::audit", event = "login_failed", step = "2fa", user = %user.username, addr = %client_addr(&req));
        activity::record(&state.pool, user.id, Event::LoginFailed, &super::origin(&req), "").await;
        return page(
            StatusCode::UNAUTHORIZED,
            "That code is not right, or was already used. Enter the current code from your app, or a recovery code.",
        );
    }
    let next = session.get::<String>(PENDING_NEXT).ok().flatten().unwrap_or_default();
    clear_pending(&session);
    super::auth::complete_login(&req, &session, &state, &user, &attempt, &next).await
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    page: Page,
    next: String,
    /// The password was right; the code is still needed.
    code_step: bool,
    error: String,
}

#[derive(serde::Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn confirm_form(
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    query: Option<web::Query<NextQuery>>,
) -> Result<HttpResponse, WebError> {
    let next = safe_next(&query.and_then(|q| q.into_inner().next).unwrap_or_default());
    render(
        StatusCode::OK,
        &ConfirmPage {
            page: Page::new(&session, &state, Some(&me.user), "Confirm it's you"),
            next,
            code_step: false,
            error: String::new(),
        },
    )
}

/// Checks the password of a logged-in user, counted like logins.
async fn password_ok(state: &AppState, req: &HttpRequest, user: &User, password: &str) -> Result<bool, WebError> {
    let key = user.id.to_string();
    if let Some(wait) = state.reauth_throttle.check(&key).await? {
        return Err(WebError::TooManyRequests(wait.as_secs() + 1));
    }
    let ok = !password.is_empty()
        && password.chars().count() <= PASSWORD_MAX
        && accounts::authenticate(
            &state.pool,
            Username::parse(&user.username).ok().as_ref(),
            password.to_owned(),
        )
        .await?
        .is_some();
    if ok {
        state.reauth_throttle.succeed(&key).await?;
    } else {
        tracing::info!(target: "keyward::audit", event = "reauth_failed", user = %user.username, addr = %client_addr(req));
        state.reauth_throttle.fail(&key).await?;
    }
    Ok(ok)
}

/// A code of a logged-in user, counted like wrong passwords but on a count
/// of its own: a right password must not wipe the wrong codes.
async fn code_ok(state: &AppState, user: &User, code: &str) -> Result<bool, WebError> {
    let key = format!("{}:code", user.id);
    if let Some(wait) = state.reauth_throttle.check(&key).await? {
        return Err(WebError::TooManyRequests(wait.as_secs() + 1));
    }
    let ok = security::second_factor(&state.pool, &state.totp_key, user, code, unix_now()).await?;
    if ok {
        state.reauth_throttle.succeed(&key).await?;
    } else {
        state.reauth_throttle.fail(&key).await?;
    }
    Ok(ok)
}

/// `POST /confirm`: the password, then (with 2FA) the code, on one page
/// or in two steps.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct ConfirmForm {
    password: String,
    code: String,
    next: String,
}

async fn confirm(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    form: Form<ConfirmForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let next = safe_next(&form.next);
    let page = |status: StatusCode, code_step: bool, error: &str| {
        render(
            status,
            &ConfirmPage {
                page: Page::new(&session, &state, Some(&me.user), "Confirm it's you"),
                next: next.clone(),
                code_step,
                error: error.to_owned(),
            },
        )
    };
    // The password: now, or a moment ago on this same page.
    let password_at: Option<u64> = session
        .get::<String>(CONFIRM_PASSWORD_AT)
        .ok()
        .flatten()
        .and_then(|t| t.parse().ok());
    let password_done = password_at.is_some_and(|t| unix_now().saturating_sub(t) <= (SECOND_STEP_MINUTES * 60) as u64);
    if !form.password.is_empty() || !password_done {
        if !password_ok(&state, &req, &me.user, &form.password).await? {
            return page(StatusCode::UNAUTHORIZED, false, "That password is not right.");
        }
        if me.user.has_2fa() && form.code.is_empty() {
            let _ = session.insert(CONFIRM_PASSWORD_AT, unix_now().to_string());
            return page(StatusCode::OK, true, "");
        }
    }
    if me.user.has_2fa() && !code_ok(&state, &me.user, &form.code).await? {
        return page(
            StatusCode::UNAUTHORIZED,
            true,
            "That code is not right, or was already used.",
        );
    }
    session.remove(CONFIRM_PASSWORD_AT);
    security::reauthenticated(&state.pool, me.token.clone()).await?;
    tracing::info!(target: "keyward::audit", event = "reauthenticated", user = %me.user.username, addr = %client_addr(&req));
    Ok(redirect(&next))
}

#[derive(Template)]
#[template(path = "two_factor.html")]
struct TwoFactorPage {
    page: Page,
    enabled: bool,
    /// While enrolling: the secret in base32 and its QR code (SVG).
    secret: String,
    qr: String,
    recovery_left: i64,
    errors: FieldErrors,
}

fn enrolling_secret(session: &Session) -> Vec<u8> {
    if let Some(s) = session
        .get::<String>(ENROLLING)
        .ok()
        .flatten()
        .and_then(|b| totp::from_base32(&b))
    {
        return s;
    }
    let secret = totp::new_secret();
    let _ = session.insert(ENROLLING, totp::base32(&secret));
    secret
}

async fn two_factor_page(
    session: &Session,
    state: &AppState,
    me: &CurrentUser,
    errors: FieldErrors,
) -> Result<TwoFactorPage, WebError> {
    let enabled = me.user.has_2fa();
    let (secret, qr) = if enabled {
        (String::new(), String::new())
    } else {
        let secret = enrolling_secret(session);
        let url = totp::otpauth_url(&secret, "Keyward", &me.user.username);
        (totp::base32(&secret), totp::qr_svg(&url))
    };
    let recovery_left = if enabled {
        security::recovery_codes_left(&state.pool, me.user.id).await?
    } else {
        0
    };
    Ok(TwoFactorPage {
        page: Page::new(session, state, Some(&me.user), "Two-factor authentication"),
        enabled,
        secret,
        qr,
        recovery_left,
        errors,
    })
}

async fn two_factor(session: Session, state: web::Data<AppState>, me: CurrentUser) -> Result<HttpResponse, WebError> {
    render(
        StatusCode::OK,
        &two_factor_page(&session, &state, &me, FieldErrors::default()).await?,
    )
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct RecoveryCodesPage {
    page: Page,
    codes: Vec<String>,
}

/// The two forms of the two-factor page, which ask the same: turning
/// two-factor on or off takes the password and a code.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct TwoFactorForm {
    password: String,
    code: String,
}

/// `POST /account/2fa` (`code`, `password`): turns two-factor on.
async fn enable_two_factor(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    form: Form<TwoFactorForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let mut errors = FieldErrors::default();
    if me.user.has_2fa() {
        errors.add(
            "code",
            "Two-factor authentication is already on. Turn it off first to enrol a new device.",
        );
        return render(
            StatusCode::CONFLICT,
            &two_factor_page(&session, &state, &me, errors).await?,
        );
    }
    let secret = enrolling_secret(&session);
    if !password_ok(&state, &req, &me.user, &form.password).await? {
        errors.add("password", "That password is not right.");
    }
    let step = match totp::parse_code(&form.code) {
        None => {
            errors.add("code", "Enter the 6-digit code your app shows.");
            None
        }
        Some(code) => {
            let step = totp::matching_step(&secret, &code, unix_now(), None);
            if step.is_none() {
                errors.add(
                    "code",
                    "That code does not match. Check the time on your phone, and enter the code your app shows now.",
                );
            }
            step
        }
    };
    let (Some(step), true) = (step, errors.is_empty()) else {
        return render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &two_factor_page(&session, &state, &me, errors).await?,
        );
    };
    let codes = totp::new_recovery_codes();
    if !security::enable_totp(&state.pool, me.user.id, state.totp_key.seal(&secret), &codes, step).await? {
        return Ok(redirect("/account/2fa"));
    }
    session.remove(ENROLLING);
    security::reauthenticated(&state.pool, me.token.clone()).await?;
    tracing::info!(target: "keyward::audit", event = "totp_enabled", user = %me.user.username, addr = %client_addr(&req));
    activity::record(&state.pool, me.user.id, Event::TotpEnabled, &super::origin(&req), "").await;
    notice(
        &state,
        &me.user,
        "Two-factor authentication was turned on",
        "Logging in now needs a code from your authenticator app, or one of your recovery codes.",
    );
    render(
        StatusCode::OK,
        &RecoveryCodesPage {
            page: Page::new(&session, &state, Some(&me.user), "Your recovery codes"),
            codes,
        },
    )
}

/// `POST /account/2fa/disable` (`password`, `code`).
async fn disable_two_factor(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    form: Form<TwoFactorForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    if !me.user.has_2fa() {
        return Ok(redirect("/account/2fa"));
    }
    let mut errors = FieldErrors::default();
    if !password_ok(&state, &req, &me.user, &form.password).await? {
        errors.add("password", "That password is not right.");
    } else if !code_ok(&state, &me.user, &form.code).await? {
        errors.add("code", "That code is not right, or was already used.");
    }
    if !errors.is_empty() {
        return render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &two_factor_page(&session, &state, &me, errors).await?,
        );
    }
    security::disable_totp(&state.pool, me.user.id).await?;
    tracing::info!(target: "keyward::audit", event = "totp_disabled", user = %me.user.username, addr = %client_addr(&req));
    activity::record(&state.pool, me.user.id, Event::TotpDisabled, &super::origin(&req), "").await;
    notice(
        &state,
        &me.user,
        "Two-factor authentication was turned off",
        "Logging in now needs only your password. If this was not you, change your password and turn it on again.",
    );
    flash(&session, "Two-factor authentication is off.");
    Ok(redirect("/account/2fa"))
}

fn notice(state: &AppState, user: &User, what: &str, more: &str) {
    let body = texts::render(&texts::AccountNotice {
        username: &user.username,
        what,
        more,
        base: state.settings.base_url(),
    });
    state
        .mailer
        .send_in_background(&user.email, &format!("{what} (Keyward)"), body, MailKind::AccountNotice);
}

/// The account page's email-change form.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct ChangeEmailForm {
    email: String,
    password: String,
}

/// `POST /account/email` (`email`, `password`): a link to the new address.
async fn change_email(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    form: Form<ChangeEmailForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let mut errors = FieldErrors::default();
    let email = Email::parse(&form.email).map_err(|e| errors.add("email", e)).ok();
    if email.as_ref().is_some_and(|e| e.as_str() == me.user.email) {
        errors.add("email", "That is already your address.");
    }
    if !password_ok(&state, &req, &me.user, &form.password).await? {
        errors.add("email_password", "That password is not right.");
    }
    let (Some(email), true) = (email, errors.is_empty()) else {
        let mut page = AccountPage::new(&session, &state, &me);
        page.new_email = form.email.clone();
        page.errors = errors;
        return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    let lifetime = Duration::minutes(state.settings.reset_token_minutes as i64);
    let token = security::request_email_change(&state.pool, me.user.id, email.as_str().to_owned(), lifetime).await?;
    let link = format!("{}/account/email/confirm?token={token}", state.settings.base_url());
    let body = texts::render(&texts::EmailConfirm {
        username: &me.user.username,
        minutes: state.settings.reset_token_minutes,
        link: &link,
    });
    state.mailer.send_in_background(
        email.as_str(),
        "Confirm your new Keyward email address",
        body,
        MailKind::EmailChange,
    );
    tracing::info!(target: "keyward::audit", event = "email_change_requested", user = %me.user.username, addr = %client_addr(&req));
    flash(
        &session,
        format!("We sent a link to {email}. Your address changes when you open it."),
    );
    Ok(redirect("/account"))
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `GET /account/email/confirm?token=…`: makes the change, tells the old
/// address.
async fn confirm_email(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    query: Option<web::Query<TokenQuery>>,
) -> Result<HttpResponse, WebError> {
    let token = query.and_then(|q| q.into_inner().token).unwrap_or_default();
    let Some((old, new)) = security::confirm_email_change(&state.pool, me.user.id, &token).await? else {
        return Err(WebError::BadRequest(
            "This link is not valid: it expired, was already used, or belongs to another account.",
        ));
    };
    tracing::info!(target: "keyward::audit", event = "email_changed", user = %me.user.username, addr = %client_addr(&req));
    activity::record(&state.pool, me.user.id, Event::EmailChanged, &super::origin(&req), "").await;
    let body = texts::render(&texts::EmailChanged {
        username: &me.user.username,
        old: &old,
        new: &new,
        base: state.settings.base_url(),
    });
    state.mailer.send_in_background(
        &old,
        "Your Keyward email address was changed",
        body,
        MailKind::AccountNotice,
    );
    flash(&session, format!("Your email address is now {new}."));
    Ok(redirect("/account"))
}

pub struct SessionRow {
    pub id: String,
    pub created: When,
    pub last_seen: Option<When>,
    pub address: String,
    pub user_agent: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsPage {
    page: Page,
    sessions: Vec<SessionRow>,
}

async fn sessions(session: Session, state: web::Data<AppState>, me: CurrentUser) -> Result<HttpResponse, WebError> {
    let now = crate::time::now();
    let rows = security::sessions(&state.pool, me.user.id, state.settings.session_lifetime())
        .await?
        .into_iter()
        .map(|s| SessionRow {
            current: s.public_id == me.session.public_id,
            id: s.public_id,
            created: When::new(s.created_at, now),
            last_seen: s.last_seen_at.map(|t| When::new(t, now)),
            address: s.address,
            user_agent: s.user_agent,
        })
        .collect();
    render(
        StatusCode::OK,
        &SessionsPage {
            page: Page::new(&session, &state, Some(&me.user), "Sessions"),
            sessions: rows,
        },
    )
}

async fn revoke_session(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    form: Form<NoFields>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let id = path.into_inner();
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) || !security::revoke_session(&state.pool, me.user.id, id).await? {
        return Err(WebError::NotFound);
    }
    tracing::info!(target: "keyward::audit", event = "session_revoked", user = %me.user.username, addr = %client_addr(&req));
    activity::record(&state.pool, me.user.id, Event::SessionRevoked, &super::origin(&req), "").await;
    flash(&session, "The session was ended. That browser must log in again.");
    Ok(redirect("/account/sessions"))
}

async fn revoke_other_sessions(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    form: Form<NoFields>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let n = security::revoke_other_sessions(&state.pool, me.user.id, me.token.clone()).await?;
    tracing::info!(target: "keyward::audit", event = "session_revoked", sessions = n, user = %me.user.username, addr = %client_addr(&req));
    if n > 0 {
        activity::record(&state.pool, me.user.id, Event::SessionRevoked, &super::origin(&req), "").await;
    }
    flash(
        &session,
        format!("Ended {n} other session{}.", if n == 1 { "" } else { "s" }),
    );
    Ok(redirect("/account/sessions"))
}

/// The account page's delete form.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct DeleteAccountForm {
    password: String,
    /// The username, typed again.
    confirm: String,
}

/// `POST /account/delete` (`password`, `confirm` = the username).
async fn delete_account(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    form: Form<DeleteAccountForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let mut errors = FieldErrors::default();
    if form.confirm.trim().to_ascii_lowercase() != me.user.username {
        errors.add("confirm", "Type your username exactly to confirm.");
    }
    if !password_ok(&state, &req, &me.user, &form.password).await? {
        errors.add("delete_password", "That password is not right.");
    }
    if !errors.is_empty() {
        let mut page = AccountPage::new(&session, &state, &me);
        page.errors = errors;
        return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let ids = security::delete_account(&state.pool, me.user.id).await?;
    for id in &ids {
        state.verifier.forget_deleted(id);
    }
    tracing::info!(target: "keyward::audit", event = "account_deleted", user = %me.user.username, keys = ids.len(), addr = %client_addr(&req));
    let body = texts::render(&texts::AccountDeleted {
        username: &me.user.username,
        keys: ids.len(),
    });
    state.mailer.send_in_background(
        &me.user.email,
        "Your Keyward account was deleted",
        body,
        MailKind::AccountNotice,
    );
    session.clear();
    session.renew();
    flash(&session, "Your account and its keys were deleted.");
    Ok(redirect("/login"))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/login/2fa")
            .route(web::get().to(second_step_form))
            .route(web::post().to(second_step)),
    )
    .service(
        web::resource("/confirm")
            .route(web::get().to(confirm_form))
            .route(web::post().to(confirm)),
    )
    .service(
        web::resource("/account/2fa")
            .route(web::get().to(two_factor))
            .route(web::post().to(enable_two_factor)),
    )
    .service(web::resource("/account/2fa/disable").route(web::post().to(disable_two_factor)))
    .service(web::resource("/account/email").route(web::post().to(change_email)))
    .service(web::resource("/account/email/confirm").route(web::get().to(confirm_email)))
    .service(web::resource("/account/sessions").route(web::get().to(sessions)))
    .service(web::resource("/account/sessions/revoke-others").route(web::post().to(revoke_other_sessions)))
    .service(web::resource("/account/sessions/{id}/revoke").route(web::post().to(revoke_session)))
    .service(web::resource("/account/delete").route(web::post().to(delete_account)));
}
