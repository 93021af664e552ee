//! The operators' console under `/admin` (docs/operators.md): users,
//! disabling and enabling them, revoking their keys, every user's activity
//! (with CSV and JSON-lines export, streamed), and the key policy. Anyone
//! but an admin gets 404 here, whatever the path.

use std::future::Future;
use std::pin::Pin;

use actix_session::Session;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use askama::Template;

use super::keys::When;
use super::{client_addr, csrf, flash, redirect, render, CurrentUser, FieldErrors, Form, NoFields, Page, WebError};
use crate::activity::{self, Event};
use crate::operators;
use crate::state::AppState;

/// A logged-in admin. For anyone else every admin route is 404, so the
/// console's existence is not advertised.
pub struct Admin(CurrentUser);

impl FromRequest for Admin {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, WebError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = CurrentUser::from_request(req, payload);
        Box::pin(async move {
            match user.await {
                Ok(me) if me.user.is_admin => Ok(Admin(me)),
                _ => Err(WebError::NotFound),
            }
        })
    }
}

const PAGE: i64 = 50;

pub struct UserRow {
    pub name: String,
    pub email: String,
    pub keys: i64,
    pub last_login: Option<When>,
    pub state: &'static str,
    pub admin: bool,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    page: Page,
    users: Vec<UserRow>,
    q: String,
    next: Option<String>,
    prev: Option<String>,
}

#[derive(serde::Deserialize)]
struct UsersQuery {
    q: Option<String>,
    page: Option<i64>,
}

async fn users(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    Admin(me): Admin,
) -> Result<HttpResponse, WebError> {
    let query = web::Query::<UsersQuery>::from_query(req.query_string())
        .map_err(|_| WebError::BadRequest("That page does not exist."))?
        .into_inner();
    let q: String = query.q.unwrap_or_default().chars().take(64).collect();
    let page = query.page.unwrap_or(0).clamp(0, 1_000_000);
    let mut list = operators::users(&state.pool, q.clone(), page * PAGE, PAGE + 1).await?;
    let more = list.len() as i64 > PAGE;
    list.truncate(PAGE as usize);
    let now = crate::time::now();
    let link = |p: i64| {
        format!(
            "/admin/users?q={}&page={p}",
            percent_encoding::utf8_percent_encode(&q, percent_encoding::NON_ALPHANUMERIC)
        )
    };
    render(
        StatusCode::OK,
        &UsersPage {
            page: Page::new(&session, &state, Some(&me.user), "Users"),
            users: list
                .into_iter()
                .map(|u| UserRow {
                    state: if u.user.disabled_at.is_some() {
                        "disabled"
                    } else {
                        "active"
                    },
                    admin: u.user.is_admin,
                    name: u.user.username,
                    email: u.user.email,
                    keys: u.keys,
                    last_login: u.last_login.map(|t| When::new(t, now)),
                })
                .collect(),
            next: more.then(|| link(page + 1)),
            prev: (page > 0).then(|| link(page - 1)),
            q,
        },
    )
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct UserPage {
    page: Page,
    user: UserRow,
    keys: Vec<super::keys::KeyRow>,
    is_self: bool,
}

async fn find(state: &AppState, name: &str) -> Result<crate::accounts::User, WebError> {
    let name = crate::accounts::domain::Username::parse(name).map_err(|_| WebError::NotFound)?;
    crate::accounts::find_user(&state.pool, &name)
        .await?
        .ok_or(WebError::NotFound)
}

async fn user(
    session: Session,
    state: web::Data<AppState>,
    Admin(me): Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let user = find(&state, &path).await?;
    let keys = crate::keys::list(&state.pool, state.verifier.last_used(), user.id, None).await?;
    let now = crate::time::now();
    let summary = operators::users(&state.pool, user.username.clone(), 0, 50)
        .await?
        .into_iter()
        .find(|u| u.user.id == user.id);
    render(
        StatusCode::OK,
        &UserPage {
            page: Page::new(&session, &state, Some(&me.user), &format!("User {}", user.username)),
            is_self: user.id == me.user.id,
            keys: keys.keys.iter().map(|k| super::keys::KeyRow::new(k, now)).collect(),
            user: UserRow {
                state: if user.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                },
                admin: user.is_admin,
                name: user.username,
                email: user.email,
                keys: keys.total,
                last_login: summary.and_then(|s| s.last_login).map(|t| When::new(t, now)),
            },
        },
    )
}

async fn set_disabled(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    Admin(me): Admin,
    path: web::Path<String>,
    form: Form<NoFields>,
    disabled: bool,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let user = find(&state, &path).await?;
    if disabled && user.id == me.user.id {
        flash(&session, "You cannot disable your own account.");
        return Ok(HttpResponse::Conflict()
            .insert_header((
                actix_web::http::header::LOCATION,
                format!("/admin/users/{}", user.username),
            ))
            .body("You cannot disable your own account."));
    }
    operators::set_disabled(&state.pool, &state.verifier, &user.username, disabled).await?;
    let event = if disabled {
        "account_disabled"
    } else {
        "account_enabled"
    };
    tracing::warn!(target: "keyward::audit", event, user = %user.username, by = %me.user.username, addr = %client_addr(&req));
    if disabled {
        activity::record(&state.pool, user.id, Event::AccountDisabled, &super::origin(&req), "").await;
    }
    flash(
        &session,
        if disabled {
            format!(
                "{} is disabled: their sessions ended and their keys are refused.",
                user.username
            )
        } else {
            format!("{} is enabled again.", user.username)
        },
    );
    Ok(redirect(&format!("/admin/users/{}", user.username)))
}

async fn disable(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<String>,
    form: Form<NoFields>,
) -> Result<HttpResponse, WebError> {
    set_disabled(req, session, state, admin, path, form, true).await
}

async fn enable(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<String>,
    form: Form<NoFields>,
) -> Result<HttpResponse, WebError> {
    set_disabled(req, session, state, admin, path, form, false).await
}

async fn revoke_keys(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    Admin(me): Admin,
    path: web::Path<String>,
    form: Form<NoFields>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let user = find(&state, &path).await?;
    let n = operators::revoke_all_keys(&state.pool, &state.verifier, user.id).await?;
    tracing::warn!(target: "keyward::audit", event = "keys_revoked_by_admin", user = %user.username, keys = n, by = %me.user.username, addr = %client_addr(&req));
    activity::record(&state.pool, user.id, Event::KeyDeleted, &super::origin(&req), "").await;
    flash(
        &session,
        format!("Revoked {n} key{} of {}.", if n == 1 { "" } else { "s" }, user.username),
    );
    Ok(redirect(&format!("/admin/users/{}", user.username)))
}

#[derive(serde::Deserialize)]
struct ActivityQuery {
    user: Option<String>,
    event: Option<String>,
    format: Option<String>,
    before: Option<i64>,
}

pub struct AdminEvent {
    pub id: i64,
    pub user: String,
    pub event: String,
    pub when: When,
    pub address: String,
    pub user_agent: String,
    pub key_prefix: String,
}

#[derive(Template)]
#[template(path = "admin_activity.html")]
struct ActivityPage {
    page: Page,
    events: Vec<AdminEvent>,
    user: String,
    event: String,
    older: Option<String>,
}

/// Rows read per database round trip while exporting.
const EXPORT_BATCH: i64 = 500;

fn csv_field(s: &str) -> String {
    // Quoted; a leading = + - @ is defused for spreadsheets.
    let s = s.replace('"', "\"\"");
    if s.starts_with(['=', '+', '-', '@']) {
        format!("\"'{s}\"")
    } else {
        format!("\"{s}\"")
    }
}

fn line(format: &str, row: &activity::EventRow, user: &str) -> String {
    let at = crate::time::rfc3339(row.at);
    if format == "csv" {
        format!(
            "{},{},{},{},{},{},{}\n",
            row.id,
            csv_field(&at),
            csv_field(user),
            csv_field(&row.event),
            csv_field(&row.address),
            csv_field(&row.user_agent),
            csv_field(&row.key_prefix)
        )
    } else {
        let mut l = serde_json::json!({
            "id": row.id, "at": at, "user": user, "event": row.event,
            "address": row.address, "user_agent": row.user_agent, "key_prefix": row.key_prefix,
        })
        .to_string();
        l.push('\n');
        l
    }
}

async fn activity_page(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    Admin(me): Admin,
) -> Result<HttpResponse, WebError> {
    let q = web::Query::<ActivityQuery>::from_query(req.query_string())
        .map_err(|_| WebError::BadRequest("That page does not exist."))?
        .into_inner();
    let user = q.user.filter(|u| !u.is_empty()).map(|u| u.trim().to_ascii_lowercase());
    let event = q.event.filter(|e| !e.is_empty());
    match q.format.as_deref() {
        None | Some("") | Some("html") => {}
        Some(f @ ("csv" | "jsonl")) => return Ok(export(state, user, event, f)),
        Some(_) => return Err(WebError::BadRequest("Export as format=csv or format=jsonl.")),
    }
    let mut rows = activity::all(&state.pool, user.clone(), event.clone(), q.before, PAGE + 1).await?;
    let older = (rows.len() as i64 > PAGE).then(|| {
        rows.truncate(PAGE as usize);
        rows.last().map(|(r, _)| r.id)
    });
    let now = crate::time::now();
    let enc = |s: &Option<String>| {
        percent_encoding::utf8_percent_encode(s.as_deref().unwrap_or(""), percent_encoding::NON_ALPHANUMERIC)
            .to_string()
    };
    let older = older
        .flatten()
        .map(|id| format!("/admin/activity?user={}&event={}&before={id}", enc(&user), enc(&event)));
    render(
        StatusCode::OK,
        &ActivityPage {
            page: Page::new(&session, &state, Some(&me.user), "Activity"),
            events: rows
                .into_iter()
                .map(|(r, name)| AdminEvent {
                    id: r.id,
                    user: name,
                    when: When::new(r.at, now),
                    event: r.event,
                    address: r.address,
                    user_agent: r.user_agent,
                    key_prefix: r.key_prefix,
                })
                .collect(),
            user: user.unwrap_or_default(),
            event: event.unwrap_or_default(),
            older,
        },
    )
}

/// The filtered log as CSV or JSON lines, streamed a batch at a time: an
/// export of any size holds one batch in memory.
fn export(state: web::Data<AppState>, user: Option<String>, event: Option<String>, format: &str) -> HttpResponse {
    let csv = format == "csv";
    let format = format.to_owned();
    let header = csv.then(|| "id,at,user,event,address,user_agent,key_prefix\n".to_owned());
    let start = (Some(i64::MAX), header);
    let body = futures_util::stream::unfold(start, move |(before, header)| {
        let (state, user, event, format) = (state.clone(), user.clone(), event.clone(), format.clone());
        async move {
            if let Some(h) = header {
                return Some((Ok::<_, actix_web::Error>(web::Bytes::from(h)), (before, None)));
            }
            let before = before?;
            let rows = match activity::all(&state.pool, user, event, Some(before), EXPORT_BATCH).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = ?e, "activity export failed");
                    return None;
                }
            };
            if rows.is_empty() {
                return None;
            }
            let next = (rows.len() as i64 == EXPORT_BATCH)
                .then(|| rows.last().map(|(r, _)| r.id))
                .flatten();
            let mut chunk = String::with_capacity(rows.len() * 128);
            for (r, name) in &rows {
                chunk.push_str(&line(&format, r, name));
            }
            Some((Ok(web::Bytes::from(chunk)), (next, None)))
        }
    });
    let (content_type, file) = if csv {
        ("text/csv; charset=utf-8", "activity.csv")
    } else {
        ("application/x-ndjson", "activity.jsonl")
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .streaming(body)
}

#[derive(Template)]
#[template(path = "admin_policy.html")]
struct PolicyPage {
    page: Page,
    max_key_lifetime_days: String,
    errors: FieldErrors,
}

async fn policy(session: Session, state: web::Data<AppState>, Admin(me): Admin) -> Result<HttpResponse, WebError> {
    let days = operators::max_key_lifetime_days(&state.pool).await?;
    render(
        StatusCode::OK,
        &PolicyPage {
            page: Page::new(&session, &state, Some(&me.user), "Key policy"),
            max_key_lifetime_days: days.map(|d| d.to_string()).unwrap_or_default(),
            errors: FieldErrors::default(),
        },
    )
}

/// `POST /admin/policy`.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct PolicyForm {
    max_key_lifetime_days: String,
}

async fn set_policy(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    Admin(me): Admin,
    form: Form<PolicyForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let raw = form.max_key_lifetime_days.trim();
    let days = if raw.is_empty() {
        None
    } else {
        match raw.parse::<u32>() {
            Ok(d) if (1..=3650).contains(&d) => Some(d),
            _ => {
                let mut errors = FieldErrors::default();
                errors.add(
                    "max_key_lifetime_days",
                    "Enter a number of days from 1 to 3650, or leave it empty for no limit.",
                );
                return render(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &PolicyPage {
                        page: Page::new(&session, &state, Some(&me.user), "Key policy"),
                        max_key_lifetime_days: raw.to_owned(),
                        errors,
                    },
                );
            }
        }
    };
    operators::set_max_key_lifetime_days(&state.pool, days).await?;
    tracing::warn!(target: "keyward::audit", event = "policy_changed", max_key_lifetime_days = ?days, by = %me.user.username, addr = %client_addr(&req));
    flash(
        &session,
        "The key policy was saved. It applies to new and rotated keys.",
    );
    Ok(redirect("/admin/policy"))
}

async fn not_found(_: Admin) -> Result<HttpResponse, WebError> {
    Err(WebError::NotFound)
}

async fn index(_: Admin) -> HttpResponse {
    redirect("/admin/users")
}

/// A resource whose wrong methods answer 404 like everything else here
/// (a 405 would tell a stranger the path exists).
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(not_found))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .service(resource("").route(web::get().to(index)))
            .service(resource("/users").route(web::get().to(users)))
            .service(resource("/users/{name}").route(web::get().to(user)))
            .service(resource("/users/{name}/disable").route(web::post().to(disable)))
            .service(resource("/users/{name}/enable").route(web::post().to(enable)))
            .service(resource("/users/{name}/revoke-keys").route(web::post().to(revoke_keys)))
            .service(resource("/activity").route(web::get().to(activity_page)))
            .service(
                resource("/policy")
                    .route(web::get().to(policy))
                    .route(web::post().to(set_policy)),
            )
            .default_service(web::to(not_found)),
    );
}
