//! Register, log in, log out, and the account page.

use super::client_addr;
use actix_identity::Identity;
use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::session::{log_in, safe_next};
use super::{csrf, flash, redirect, render, CurrentUser, FieldErrors, Form, NoFields, Page, WebError};
use crate::accounts::domain::{Email, Password, Username};
use crate::accounts::throttle::Attempt;
use crate::accounts::{self, RegisterError};
use crate::activity::{self, Event};
use crate::config::Registration;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    page: Page,
    open: bool,
    username: String,
    email: String,
    errors: FieldErrors,
}

async fn register_form(
    session: Session,
    state: web::Data<AppState>,
    user: Option<CurrentUser>,
) -> Result<HttpResponse, WebError> {
    if user.is_some() {
        return Ok(redirect("/keys"));
    }
    let open = state.settings.registration == Registration::Open;
    render(
        StatusCode::OK,
        &RegisterPage {
            page: Page::new(&session, &state, None, "Create an account"),
            open,
            username: String::new(),
            email: String::new(),
            errors: FieldErrors::default(),
        },
    )
}

/// `POST /register`.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct RegisterForm {
    username: String,
    email: String,
    password: String,
    password_confirm: String,
}

async fn register(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    form: Form<RegisterForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    if state.settings.registration != Registration::Open {
        return Err(WebError::Forbidden(
            "Registration is closed. Ask an administrator for an account.",
        ));
    }
    let address = client_addr(&req);
    if !state
        .register_per_address
        .allow(&crate::net::limit_key(&address))
        .await?
    {
        tracing::info!(target: "keyward::audit", event = "register_rate_limited", addr = %address);
        return Err(WebError::TooManyRequests(15 * 60));
    }
    let mut errors = FieldErrors::default();
    let username = Username::parse(&form.username)
        .map_err(|e| errors.add("username", e))
        .ok();
    let email = Email::parse(&form.email).map_err(|e| errors.add("email", e)).ok();
    let password = Password::parse(&form.password, &form.username)
        .map_err(|e| errors.add("password", e))
        .ok();
    if form.password != form.password_confirm {
        errors.add("password_confirm", "The two passwords do not match.");
    }
    let rerender = |errors: FieldErrors| {
        render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &RegisterPage {
                page: Page::new(&session, &state, None, "Create an account"),
                open: true,
                username: form.username.clone(),
                email: form.email.clone(),
                errors,
            },
        )
    };
    let (Some(username), Some(email), Some(password), true) = (username, email, password, errors.is_empty()) else {
        return rerender(errors);
    };
    let registered = match accounts::register(&state.pool, username, email, password).await {
        Ok(r) => r,
        Err(RegisterError::UsernameTaken) => {
            errors.add("username", "That username is taken. Choose another.");
            return rerender(errors);
        }
        Err(RegisterError::Unexpected(e)) => return Err(e.into()),
    };
    let user = registered.user;
    tracing::info!(target: "keyward::audit", event = "registered", user = %user.username, addr = %address);
    for owner in &registered.same_email {
        send_address_reused_notice(&state, owner, &user.username);
    }
    // The session changes hands: a new CSRF token, as at login.
    csrf::rotate(&session);
    log_in(&req, &state, &user).await?;
    flash(
        &session,
        format!("Welcome, {}! Create your first API key below.", user.username),
    );
    let mut res = redirect("/keys");
    let https = state.settings.is_https();
    super::device::remember(&mut res, &state.cookie_key, https, &user.username, None);
    Ok(res)
}

/// Tells the owner of an address that another account now uses it: the
/// registration page does not say an address is taken (that would tell
/// anyone who has an account), so its owner hears of it here.
fn send_address_reused_notice(state: &AppState, owner: &crate::accounts::User, new_username: &str) {
    let body = crate::mail::texts::render(&crate::mail::texts::AddressReused {
        username: &owner.username,
        new_username,
        base: state.settings.base_url(),
    });
    state.mailer.send_in_background(
        &owner.email,
        "A new Keyward account uses your email address",
        body,
        crate::mail::MailKind::AddressReused,
    );
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: Page,
    username: String,
    next: String,
    error: String,
}

#[derive(serde::Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_form(
    session: Session,
    state: web::Data<AppState>,
    query: Option<web::Query<NextQuery>>,
    user: Option<CurrentUser>,
) -> Result<HttpResponse, WebError> {
    let next = query
        .and_then(|q| q.into_inner().next)
        .map(|n| safe_next(&n))
        .unwrap_or_default();
    if user.is_some() {
        return Ok(redirect(if next.is_empty() { "/keys" } else { &next }));
    }
    render(
        StatusCode::OK,
        &LoginPage {
            page: Page::new(&session, &state, None, "Log in"),
            username: String::new(),
            next,
            error: String::new(),
        },
    )
}

/// `POST /login`.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct LoginForm {
    username: String,
    password: String,
    next: String,
}

async fn login(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    form: Form<LoginForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let username = form.username.as_str();
    let password = form.password.as_str();
    let login_page = |status: StatusCode, error: String| {
        render(
            status,
            &LoginPage {
                page: Page::new(&session, &state, None, "Log in"),
                username: username.to_owned(),
                next: safe_next(&form.next),
                error,
            },
        )
    };
    // Throttled before any Argon2 work (docs/login-throttling.md).
    let device = super::device::known(&req, &state.cookie_key, state.settings.is_https(), username);
    let attempt = Attempt::new(username, &client_addr(&req), device.clone());
    if let Some(wait) = state.login_limits.charge(&attempt).await? {
        let secs = wait.as_secs() + 1;
        tracing::info!(target: "keyward::audit", event = "login_throttled", user = ?username, addr = %client_addr(&req));
        let mut res = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed attempts. Wait {secs} seconds, then try again."),
        )?;
        res.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(secs),
        );
        return Ok(res);
    }
    // As every account name is stored: trimmed and lower-cased (`None`:
    // no account can have it).
    let typed = Username::parse(username).ok();
    let user = if password.is_empty() || password.chars().count() > crate::accounts::domain::PASSWORD_MAX {
        None
    } else {
        accounts::authenticate(&state.pool, typed.as_ref(), password.to_owned()).await?
    };
    let Some(user) = user else {
        // Already counted by `charge`.
        tracing::info!(target: "keyward::audit", event = "login_failed", user = ?username, addr = %client_addr(&req));
        // Shown to the account's owner, when there is one.
        let owner = match &typed {
            Some(name) => accounts::find_user(&state.pool, name).await.ok().flatten(),
            None => None,
        };
        if let Some(owner) = owner {
            activity::record(&state.pool, owner.id, Event::LoginFailed, &super::origin(&req), "").await;
        }
        return login_page(StatusCode::UNAUTHORIZED, "Incorrect username or password.".into());
    };
    if user.disabled_at.is_some() {
        state.login_limits.succeeded(&attempt).await?;
        tracing::info!(target: "keyward::audit", event = "login_refused_disabled", user = %user.username, addr = %client_addr(&req));
        return login_page(
            StatusCode::FORBIDDEN,
            "This account is disabled. Ask an administrator.".into(),
        );
    }
    if user.has_2fa() {
        // The password was right; the second step decides (`/login/2fa`).
        state.login_limits.succeeded(&attempt).await?;
        super::security::await_second_factor(&session, &user, &form.next)?;
        return Ok(redirect("/login/2fa"));
    }
    complete_login(&req, &session, &state, &user, &attempt, &form.next).await
}

/// Logs `user` in once every factor is checked: clears the account's
/// failure counts, records the event, renews the session and the CSRF
/// token, and remembers this browser as a known device.
pub(super) async fn complete_login(
    req: &HttpRequest,
    session: &Session,
    state: &AppState,
    user: &crate::accounts::User,
    attempt: &Attempt,
    next: &str,
) -> Result<HttpResponse, WebError> {
    state.login_limits.succeeded(attempt).await?;
    tracing::info!(target: "keyward::audit", event = "login", user = %user.username, addr = %client_addr(req));
    activity::record(&state.pool, user.id, Event::Login, &super::origin(req), "").await;
    // A fresh CSRF token for the logged-in session.
    csrf::rotate(session);
    log_in(req, state, user).await?;
    let mut res = redirect(&if next.is_empty() {
        "/keys".to_owned()
    } else {
        safe_next(next)
    });
    let https = state.settings.is_https();
    let device = super::device::known(req, &state.cookie_key, https, &user.username);
    super::device::remember(&mut res, &state.cookie_key, https, &user.username, device);
    Ok(res)
}

async fn logout(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    identity: Option<Identity>,
    form: Form<NoFields>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    if let Some(identity) = identity {
        let mut user = None;
        if let Some(me) = super::session::current(&req, &state).await? {
            activity::record(&state.pool, me.user.id, Event::Logout, &super::origin(&req), "").await;
            user = Some(me.user.username);
        }
        // The record ends whether or not it was still alive.
        if let Ok(id) = identity.id() {
            accounts::end_session(&state.pool, accounts::SessionToken::from_cookie(id)).await?;
        }
        // Not `identity.logout()`: it purges the cookie session, and the
        // flash below with it. Clearing the session forgets the identity all
        // the same; the server-side session record is already gone.
        session.clear();
        session.renew();
        tracing::info!(target: "keyward::audit", event = "logout", user = ?user, addr = %client_addr(&req));
    }
    flash(&session, "You have been logged out.");
    Ok(redirect("/login"))
}

#[derive(Template)]
#[template(path = "account.html")]
pub(super) struct AccountPage {
    page: Page,
    email: String,
    two_factor: bool,
    /// What was typed in the email-change form.
    pub(super) new_email: String,
    pub(super) errors: FieldErrors,
}

impl AccountPage {
    pub(super) fn new(session: &Session, state: &AppState, me: &CurrentUser) -> Self {
        Self {
            page: Page::new(session, state, Some(&me.user), "Account"),
            email: me.user.email.clone(),
            two_factor: me.user.has_2fa(),
            new_email: String::new(),
            errors: FieldErrors::default(),
        }
    }
}

async fn account(session: Session, state: web::Data<AppState>, me: CurrentUser) -> Result<HttpResponse, WebError> {
    render(StatusCode::OK, &AccountPage::new(&session, &state, &me))
}

/// `POST /account/password`.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct ChangePasswordForm {
    current_password: String,
    new_password: String,
    new_password_confirm: String,
}

async fn change_password(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    form: Form<ChangePasswordForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    // Wrong current passwords count like failed logins: a stolen session
    // must not be a free password-guessing oracle.
    let throttle_key = me.user.id.to_string();
    if let Some(wait) = state.reauth_throttle.check(&throttle_key).await? {
        tracing::info!(target: "keyward::audit", event = "reauth_throttled", user = %me.user.username, addr = %client_addr(&req));
        return Err(WebError::TooManyRequests(wait.as_secs() + 1));
    }
    let mut errors = FieldErrors::default();
    let new = Password::parse(&form.new_password, &me.user.username)
        .map_err(|e| errors.add("new_password", e))
        .ok();
    if form.new_password != form.new_password_confirm {
        errors.add("new_password_confirm", "The two passwords do not match.");
    }
    let current_ok = !form.current_password.is_empty()
        && form.current_password.chars().count() <= crate::accounts::domain::PASSWORD_MAX
        && accounts::authenticate(
            &state.pool,
            Username::parse(&me.user.username).ok().as_ref(),
            form.current_password.clone(),
        )
        .await?
        .is_some();
    if current_ok {
        state.reauth_throttle.succeed(&throttle_key).await?;
    } else {
        tracing::info!(target: "keyward::audit", event = "reauth_failed", user = %me.user.username, addr = %client_addr(&req));
        state.reauth_throttle.fail(&throttle_key).await?;
        errors.add("current_password", "Your current password is not correct.");
    }
    let (Some(new), true) = (new, errors.is_empty()) else {
        let mut page = AccountPage::new(&session, &state, &me);
        page.errors = errors;
        return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    accounts::change_password(&state.pool, me.user.id, new, Some(me.token.clone())).await?;
    super::password::send_changed_notice(&state, &me.user);
    tracing::info!(target: "keyward::audit", event = "password_changed", user = %me.user.username, addr = %client_addr(&req));
    activity::record(
        &state.pool,
        me.user.id,
        Event::PasswordChanged,
        &super::origin(&req),
        "",
    )
    .await;
    flash(
        &session,
        "Your password has been changed. Other sessions have been logged out.",
    );
    Ok(redirect("/account"))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/register")
            .route(web::get().to(register_form))
            .route(web::post().to(register)),
    )
    .service(
        web::resource("/login")
            .route(web::get().to(login_form))
            .route(web::post().to(login)),
    )
    .service(web::resource("/logout").route(web::post().to(logout)))
    .service(web::resource("/account").route(web::get().to(account)))
    .service(web::resource("/account/password").route(web::post().to(change_password)));
}
