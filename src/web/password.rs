//! Forgotten passwords: request a link by email, then set a new password.

use super::client_addr;
use crate::mail::texts;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::Duration;

use super::{csrf, flash, redirect, render, FieldErrors, Form, Page, WebError};
use crate::accounts::domain::{Email, Password};
use crate::accounts::reset::ResetToken;
use crate::accounts::{self, User};
use crate::mail::MailKind;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage {
    page: Page,
    email: String,
    sent: bool,
    errors: FieldErrors,
}

impl ForgotPage {
    /// The empty form, under `title`.
    fn new(session: &Session, state: &AppState, title: &str) -> Self {
        Self {
            page: Page::new(session, state, None, title),
            email: String::new(),
            sent: false,
            errors: FieldErrors::default(),
        }
    }
}

async fn forgot_form(session: Session, state: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    render(
        StatusCode::OK,
        &ForgotPage::new(&session, &state, "Forgot your password?"),
    )
}

/// `POST /password/forgot`.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct ForgotForm {
    email: String,
}

/// Answers at once and identically whether or not the account exists: the
/// lookup, the token and the mail all happen after the response, in the
/// background.
async fn forgot(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    form: Form<ForgotForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let email = match Email::parse(&form.email) {
        Ok(e) => e,
        Err(msg) => {
            let mut errors = FieldErrors::default();
            errors.add("email", msg);
            return render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &ForgotPage {
                    email: form.email.clone(),
                    errors,
                    ..ForgotPage::new(&session, &state, "Forgot your password?")
                },
            );
        }
    };
    let address = client_addr(&req);
    if !state.reset_per_address.allow(&crate::net::limit_key(&address)).await? {
        tracing::info!(target: "keyward::audit", event = "reset_rate_limited", addr = %address);
        return Err(WebError::TooManyRequests(15 * 60));
    }
    // Counted by a digest of the address: no stranger's email is stored.
    let account = crate::accounts::throttle::digest(email.as_str());
    if state.reset_per_account.allow(&account).await? {
        let state = state.clone();
        let lifetime = Duration::minutes(state.settings.reset_token_minutes as i64);
        actix_web::rt::spawn(async move {
            match accounts::request_password_reset(&state.pool, &email, lifetime).await {
                Ok(issued) if issued.is_empty() => {
                    tracing::info!(target: "keyward::audit", event = "reset_requested_unknown", addr = %address)
                }
                Ok(issued) => {
                    for (user, token) in issued {
                        tracing::info!(target: "keyward::audit", event = "reset_requested", user = %user.username, addr = %address);
                        send_reset_mail(&state, &user, &token);
                    }
                }
                Err(e) => tracing::error!(error = ?e, "reset request failed"),
            }
        });
    } else {
        tracing::info!(target: "keyward::audit", event = "reset_rate_limited_account", addr = %address);
    }
    render(
        StatusCode::OK,
        &ForgotPage {
            sent: true,
            ..ForgotPage::new(&session, &state, "Check your email")
        },
    )
}

fn send_reset_mail(state: &AppState, user: &User, token: &ResetToken) {
    // Built from the configured base URL only, never from request headers.
    let link = format!("{}/password/reset?token={}", state.settings.base_url(), token.expose());
    let body = texts::render(&texts::Reset {
        username: &user.username,
        minutes: state.settings.reset_token_minutes,
        link: &link,
    });
    state.mailer.send_in_background(
        &user.email,
        "Reset your Keyward password",
        body,
        MailKind::PasswordReset,
    );
}

/// Tells the user their password changed, in case it was not them.
pub fn send_changed_notice(state: &AppState, user: &User) {
    let body = texts::render(&texts::PasswordChanged {
        username: &user.username,
        base: state.settings.base_url(),
    });
    state.mailer.send_in_background(
        &user.email,
        "Your Keyward password was changed",
        body,
        MailKind::PasswordChanged,
    );
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage {
    page: Page,
    token: String,
    valid: bool,
    errors: FieldErrors,
}

impl ResetPage {
    /// The form for a live link (`token`), or the "link is dead" page
    /// when `token` is `None`.
    fn new(session: &Session, state: &AppState, token: Option<String>, errors: FieldErrors) -> Self {
        Self {
            page: Page::new(session, state, None, "Choose a new password"),
            valid: token.is_some(),
            token: token.unwrap_or_default(),
            errors,
        }
    }

    /// 400 and the "link is dead" page.
    fn dead_link(session: &Session, state: &AppState) -> Result<HttpResponse, WebError> {
        render(
            StatusCode::BAD_REQUEST,
            &Self::new(session, state, None, FieldErrors::default()),
        )
    }
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn reset_form(
    session: Session,
    state: web::Data<AppState>,
    query: Option<web::Query<TokenQuery>>,
) -> Result<HttpResponse, WebError> {
    let raw = query.and_then(|q| q.into_inner().token).unwrap_or_default();
    let valid = match ResetToken::parse(&raw) {
        Some(t) => accounts::reset_token_user(&state.pool, t).await?.is_some(),
        None => false,
    };
    if !valid {
        return ResetPage::dead_link(&session, &state);
    }
    render(
        StatusCode::OK,
        &ResetPage::new(&session, &state, Some(raw), FieldErrors::default()),
    )
}

/// `POST /password/reset`.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct ResetForm {
    token: String,
    password: String,
    password_confirm: String,
}

async fn reset(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    form: Form<ResetForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let Some(token) = ResetToken::parse(&form.token) else {
        return ResetPage::dead_link(&session, &state);
    };
    // Say a dead link is dead before asking for a better password.
    let Some(owner) = accounts::reset_token_user(&state.pool, token.clone()).await? else {
        return ResetPage::dead_link(&session, &state);
    };
    let mut errors = FieldErrors::default();
    let password = Password::parse(&form.password, &owner.username)
        .map_err(|e| errors.add("password", e))
        .ok();
    if form.password != form.password_confirm {
        errors.add("password_confirm", "The two passwords do not match.");
    }
    let (Some(password), true) = (password, errors.is_empty()) else {
        return render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ResetPage::new(&session, &state, Some(token.expose().to_owned()), errors),
        );
    };
    let Some(user) = accounts::reset_password(&state.pool, token, password).await? else {
        return ResetPage::dead_link(&session, &state);
    };
    tracing::info!(target: "keyward::audit", event = "password_reset", user = %user.username, addr = %client_addr(&req));
    crate::activity::record(
        &state.pool,
        user.id,
        crate::activity::Event::PasswordReset,
        &super::origin(&req),
        "",
    )
    .await;
    send_changed_notice(&state, &user);
    flash(&session, "Your password has been reset. Log in with your new password.");
    Ok(redirect("/login"))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/password/forgot")
            .route(web::get().to(forgot_form))
            .route(web::post().to(forgot)),
    )
    .service(
        web::resource("/password/reset")
            .route(web::get().to(reset_form))
            .route(web::post().to(reset)),
    );
}
