//! The key pages: list, create (shown once), the key's own page (use,
//! edit, rotate, retire), delete.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{Duration, NaiveDateTime};

use super::{csrf, flash, redirect, render, CurrentUser, FieldErrors, Form, NoFields, Page, WebError};
use crate::activity::{self, Event};
use crate::keys::lifecycle::{self, ChangeError};
use crate::keys::restrictions::{self, AllowedIps};
use crate::keys::{self, CreateKeyError, KeyInfo, KeyName, NewKeyRequest, Scopes};
use crate::notices::{self, KeyNotice};
use crate::state::AppState;
use crate::time::{exact, relative};

/// A time shown as "3 minutes ago" with the exact UTC time on hover.
pub struct When {
    pub exact: String,
    pub iso: String,
    pub relative: String,
}

impl When {
    pub fn new(t: NaiveDateTime, now: NaiveDateTime) -> Self {
        Self {
            exact: exact(t),
            iso: crate::time::rfc3339(t),
            relative: relative(t, now),
        }
    }
}

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created: When,
    pub last_used: Option<When>,
    pub last_used_address: String,
    pub expires: Option<When>,
    pub expired: bool,
    pub expiring_soon: bool,
    /// `active`, `retiring` or `retired`.
    pub state: &'static str,
    pub retires: Option<When>,
    pub allowed_ips: Vec<String>,
    pub rate_limit: Option<i32>,
}

impl KeyRow {
    pub(super) fn new(k: &KeyInfo, now: NaiveDateTime) -> Self {
        let expired = k.is_expired(now);
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            scopes: k.scope_list(),
            created: When::new(k.created_at, now),
            last_used: k.last_used_at.map(|t| When::new(t, now)),
            last_used_address: k.last_used_address.clone().unwrap_or_default(),
            expires: k.expires_at.map(|t| When::new(t, now)),
            expired,
            expiring_soon: !expired && k.expires_at.is_some_and(|e| e - now < Duration::days(7)),
            state: k.state(now),
            retires: k.retires_at.map(|t| When::new(t, now)),
            allowed_ips: k.allowed_ips.split_whitespace().map(str::to_owned).collect(),
            rate_limit: k.rate_limit_per_minute,
        }
    }
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    page: Page,
    keys: Vec<KeyRow>,
    /// All the user's keys, on every page.
    total: i64,
    /// The link to the next (older) page, if any.
    next: Option<String>,
    /// Whether this is a later page (then "Newest keys" links back).
    later_page: bool,
    max_keys: u32,
}

#[derive(serde::Deserialize)]
struct PageQuery {
    after: Option<String>,
}

async fn list(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
) -> Result<HttpResponse, WebError> {
    let now = crate::time::now();
    let after = match web::Query::<PageQuery>::from_query(req.query_string()) {
        Ok(q) => match q.into_inner().after.filter(|a| !a.is_empty()) {
            None => None,
            Some(a) => Some(keys::Cursor::parse(&a).ok_or(WebError::BadRequest("That page of keys does not exist."))?),
        },
        Err(_) => return Err(WebError::BadRequest("That page of keys does not exist.")),
    };
    let later_page = after.is_some();
    let page = keys::list(&state.pool, state.verifier.last_used(), me.user.id, after).await?;
    render(
        StatusCode::OK,
        &KeysPage {
            page: Page::new(&session, &state, Some(&me.user), "API keys"),
            keys: page.keys.iter().map(|k| KeyRow::new(k, now)).collect(),
            total: page.total,
            next: page.next.map(|c| format!("/keys?after={c}")),
            later_page,
            max_keys: state.settings.max_keys_per_user,
        },
    )
}

#[derive(Template)]
#[template(path = "key_new.html")]
struct NewKeyPage {
    page: Page,
    name: String,
    /// (scope, checked)
    scopes: Vec<(String, bool)>,
    expires_in_days: String,
    allowed_ips: String,
    rate_limit_per_minute: String,
    errors: FieldErrors,
}

async fn new_form(session: Session, state: web::Data<AppState>, me: CurrentUser) -> Result<HttpResponse, WebError> {
    me.require_recent(&state, "/keys/new")?;
    render(
        StatusCode::OK,
        &NewKeyPage {
            page: Page::new(&session, &state, Some(&me.user), "New API key"),
            name: String::new(),
            scopes: state.scopes.iter().map(|s| (s.clone(), false)).collect(),
            expires_in_days: String::new(),
            allowed_ips: String::new(),
            rate_limit_per_minute: String::new(),
            errors: FieldErrors::default(),
        },
    )
}

#[derive(Template)]
#[template(path = "key_created.html")]
struct KeyCreatedPage<'a> {
    page: Page,
    key: &'a str,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    /// After a rotation: the old key's prefix and when it stops working.
    replaces: Option<(String, String)>,
}

/// `POST /keys`: the new-key form.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct NewKeyForm {
    name: String,
    /// One per ticked box.
    scopes: Vec<String>,
    expires_in_days: String,
    allowed_ips: String,
    rate_limit_per_minute: String,
}

async fn create(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    form: Form<NewKeyForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    me.require_recent(&state, "/keys/new")?;
    let chosen = &form.scopes;
    let mut errors = FieldErrors::default();
    let name = KeyName::parse(&form.name).map_err(|e| errors.add("name", e)).ok();
    let scopes = Scopes::parse(chosen, &state.scopes)
        .map_err(|e| errors.add("scopes", e))
        .ok();
    let expiry = keys::parse_expiry(&form.expires_in_days)
        .map_err(|e| errors.add("expires_in_days", e))
        .ok();
    let expiry = within_policy(&state, expiry, &mut errors).await?;
    let allowed = AllowedIps::parse(&form.allowed_ips)
        .map_err(|e| errors.add("allowed_ips", e))
        .ok();
    let rate = restrictions::parse_rate_limit(&form.rate_limit_per_minute)
        .map_err(|e| errors.add("rate_limit_per_minute", e))
        .ok();
    let rerender = |errors: FieldErrors| {
        render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &NewKeyPage {
                page: Page::new(&session, &state, Some(&me.user), "New API key"),
                name: form.name.clone(),
                scopes: state.scopes.iter().map(|s| (s.clone(), chosen.contains(s))).collect(),
                expires_in_days: form.expires_in_days.clone(),
                allowed_ips: form.allowed_ips.clone(),
                rate_limit_per_minute: form.rate_limit_per_minute.clone(),
                errors,
            },
        )
    };
    let (Some(name), Some(scopes), Some(expires_in_days), Some(allowed_ips), Some(rate_limit_per_minute)) =
        (name, scopes, expiry, allowed, rate)
    else {
        return rerender(errors);
    };
    let request = NewKeyRequest {
        user_id: me.user.id,
        max_keys: state.settings.max_keys_per_user,
        name,
        scopes,
        expires_in_days,
        allowed_ips,
        rate_limit_per_minute,
    };
    let created = keys::create(&state.pool, &state.verifier, &state.settings.key_prefix, request).await;
    let (generated, info) = match created {
        Ok(x) => x,
        Err(CreateKeyError::NameTaken) => {
            errors.add("name", "You already have a key with this name. Choose another name.");
            return rerender(errors);
        }
        Err(CreateKeyError::TooMany(max)) => {
            errors.add(
                "name",
                format!("You have {max} keys, the most an account may hold. Delete a key you no longer use, then create this one."),
            );
            return rerender(errors);
        }
        Err(CreateKeyError::Unexpected(e)) => return Err(e.into()),
    };
    tracing::info!(target: "keyward::audit", event = "key_created", user = %me.user.username, key = %info.prefix, addr = %super::client_addr(&req));
    key_event(&req, &state, &me, KeyNotice::Created, &info, None).await;
    render(
        StatusCode::OK,
        &KeyCreatedPage {
            page: Page::new(&session, &state, Some(&me.user), "Your new API key"),
            key: generated.key.expose(),
            scopes: info.scope_list(),
            name: info.name,
            prefix: info.prefix,
            replaces: None,
        },
    )
}

pub struct RefusalView {
    pub when: When,
    pub reason: &'static str,
    pub address: String,
    pub count: u64,
}

/// The operators' policy (`/admin/policy`): with a maximum lifetime, a new
/// or rotated key must expire within it.
async fn within_policy(
    state: &AppState,
    expiry: Option<Option<u32>>,
    errors: &mut FieldErrors,
) -> Result<Option<Option<u32>>, WebError> {
    let Some(days) = expiry else { return Ok(None) };
    let Some(max) = crate::operators::max_key_lifetime_days(&state.pool).await? else {
        return Ok(Some(days));
    };
    match days {
        Some(d) if d <= max => Ok(Some(Some(d))),
        _ => {
            errors.add(
                "expires_in_days",
                format!("Keys must expire within {max} days here: enter a number of days from 1 to {max}."),
            );
            Ok(None)
        }
    }
}

/// The key page: what the key is, how it is used, and its forms.
#[derive(Template)]
#[template(path = "key_detail.html")]
struct KeyDetailPage {
    page: Page,
    key: KeyRow,
    chart: super::chart::Chart,
    scopes_used: Vec<String>,
    /// Calls refused by the key's restrictions, on this instance.
    refusals: Vec<RefusalView>,
    /// The edit form: (scope, checked), and what was typed.
    scope_choices: Vec<(String, bool)>,
    name: String,
    allowed_ips: String,
    rate_limit_per_minute: String,
    grace_minutes: String,
    expires_in_days: String,
    errors: FieldErrors,
}

impl KeyDetailPage {
    async fn build(state: &AppState, session: &Session, me: &CurrentUser, key: &KeyInfo) -> Result<Self, WebError> {
        let now = crate::time::now();
        let usage = lifecycle::usage(&state.pool, state.verifier.last_used(), &key.id, now).await?;
        let scopes = key.scope_list();
        Ok(Self {
            page: Page::new(session, state, Some(&me.user), &format!("Key {}", key.name)),
            key: KeyRow::new(key, now),
            chart: super::chart::Chart::hourly(&usage.hourly),
            scopes_used: usage.scopes_used,
            refusals: state
                .verifier
                .recent_refusals(&key.id)
                .into_iter()
                .map(|r| RefusalView {
                    when: When::new(r.at, now),
                    reason: if r.reason == "rate_limited" {
                        "over the rate limit"
                    } else {
                        "address not allowed"
                    },
                    address: r.address.map(|a| a.to_string()).unwrap_or_default(),
                    count: r.count,
                })
                .collect(),
            scope_choices: state.scopes.iter().map(|s| (s.clone(), scopes.contains(s))).collect(),
            name: key.name.clone(),
            allowed_ips: key.allowed_ips.split_whitespace().collect::<Vec<_>>().join("\n"),
            rate_limit_per_minute: key.rate_limit_per_minute.map(|n| n.to_string()).unwrap_or_default(),
            grace_minutes: "60".into(),
            expires_in_days: String::new(),
            errors: FieldErrors::default(),
        })
    }
}

async fn show(
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let key = find_own(&state, me.user.id, &path).await?;
    render(
        StatusCode::OK,
        &KeyDetailPage::build(&state, &session, &me, &key).await?,
    )
}

/// The key page's edit form.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct EditKeyForm {
    name: String,
    /// One per ticked box.
    scopes: Vec<String>,
    allowed_ips: String,
    rate_limit_per_minute: String,
}

/// `POST /keys/{id}`: name, scopes, allowlist and rate limit.
async fn edit(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    form: Form<EditKeyForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let key = find_own(&state, me.user.id, &path).await?;
    me.require_recent(&state, &format!("/keys/{}", key.id))?;
    let chosen = &form.scopes;
    let mut errors = FieldErrors::default();
    let name = KeyName::parse(&form.name).map_err(|e| errors.add("name", e)).ok();
    let scopes = Scopes::parse(chosen, &state.scopes)
        .map_err(|e| errors.add("scopes", e))
        .ok();
    let allowed = AllowedIps::parse(&form.allowed_ips)
        .map_err(|e| errors.add("allowed_ips", e))
        .ok();
    let rate = restrictions::parse_rate_limit(&form.rate_limit_per_minute)
        .map_err(|e| errors.add("rate_limit_per_minute", e))
        .ok();
    if key.retires_at.is_some() {
        errors.add("name", "A rotated key cannot be edited: edit its successor.");
    }
    let outcome = match (name, scopes, allowed, rate, errors.is_empty()) {
        (Some(name), Some(scopes), Some(allowed_ips), Some(rate_limit_per_minute), true) => {
            let change = lifecycle::Edit {
                name,
                scopes,
                allowed_ips,
                rate_limit_per_minute,
            };
            match lifecycle::edit(&state.pool, &state.verifier, me.user.id, &key.id, change).await {
                Ok(updated) => Some(updated),
                Err(ChangeError::NameTaken) => {
                    errors.add("name", "You already have a key with this name. Choose another name.");
                    None
                }
                Err(ChangeError::TooMany) => return Err(WebError::NotFound),
                Err(ChangeError::NotFound) => return Err(WebError::NotFound),
                Err(ChangeError::Unexpected(e)) => return Err(e.into()),
            }
        }
        _ => None,
    };
    let Some(updated) = outcome else {
        let mut page = KeyDetailPage::build(&state, &session, &me, &key).await?;
        page.name = form.name.clone();
        page.scope_choices = state.scopes.iter().map(|s| (s.clone(), chosen.contains(s))).collect();
        page.allowed_ips = form.allowed_ips.clone();
        page.rate_limit_per_minute = form.rate_limit_per_minute.clone();
        page.errors = errors;
        return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    tracing::info!(target: "keyward::audit", event = "key_updated", user = %me.user.username, key = %updated.prefix, addr = %super::client_addr(&req));
    activity::record(
        &state.pool,
        me.user.id,
        Event::KeyUpdated,
        &super::origin(&req),
        &updated.prefix,
    )
    .await;
    flash(
        &session,
        format!(
            "Key \"{}\" was saved. The change applies to its next call.",
            updated.name
        ),
    );
    Ok(redirect(&format!("/keys/{}", updated.id)))
}

/// The key page's rotate form.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct RotateForm {
    grace_minutes: String,
    expires_in_days: String,
}

/// `POST /keys/{id}/rotate`: a new key now, the old one after the grace.
async fn rotate(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    form: Form<RotateForm>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let key = find_own(&state, me.user.id, &path).await?;
    me.require_recent(&state, &format!("/keys/{}", key.id))?;
    let mut errors = FieldErrors::default();
    let grace = lifecycle::parse_grace(&form.grace_minutes)
        .map_err(|e| errors.add("grace_minutes", e))
        .ok();
    let expiry = keys::parse_expiry(&form.expires_in_days)
        .map_err(|e| errors.add("expires_in_days", e))
        .ok();
    let expiry = within_policy(&state, expiry, &mut errors).await?;
    if key.retires_at.is_some() {
        errors.add(
            "grace_minutes",
            "This key is already being replaced. Rotate its successor instead.",
        );
    }
    let rotated = match (grace, expiry, errors.is_empty()) {
        (Some(grace), Some(expires_in_days), true) => {
            match lifecycle::rotate(
                &state.pool,
                &state.verifier,
                &state.settings.key_prefix,
                me.user.id,
                &key.id,
                lifecycle::Rotation {
                    grace_minutes: grace,
                    expires_in_days,
                    max_keys: state.settings.max_keys_per_user,
                },
            )
            .await
            {
                Ok(r) => Some(r),
                Err(ChangeError::TooMany) => {
                    errors.add(
                        "grace_minutes",
                        "You have too many keys still retiring. Retire some now, then rotate this one.",
                    );
                    None
                }
                Err(ChangeError::NotFound) => {
                    errors.add(
                        "grace_minutes",
                        "This key is already being replaced. Rotate its successor instead.",
                    );
                    None
                }
                Err(ChangeError::NameTaken) => return Err(WebError::NotFound),
                Err(ChangeError::Unexpected(e)) => return Err(e.into()),
            }
        }
        _ => None,
    };
    let Some((generated, new, old)) = rotated else {
        let mut page = KeyDetailPage::build(&state, &session, &me, &key).await?;
        page.grace_minutes = form.grace_minutes.clone();
        page.expires_in_days = form.expires_in_days.clone();
        page.errors = errors;
        return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    let retires = old.retires_at.map(exact).unwrap_or_default();
    tracing::info!(target: "keyward::audit", event = "key_rotated", user = %me.user.username, key = %old.prefix, new_key = %new.prefix, addr = %super::client_addr(&req));
    let extra = format!("New key: {}, old key works until {retires}", new.prefix);
    key_event(&req, &state, &me, KeyNotice::Rotated, &old, Some(extra)).await;
    render(
        StatusCode::OK,
        &KeyCreatedPage {
            page: Page::new(&session, &state, Some(&me.user), "Your new API key"),
            key: generated.key.expose(),
            scopes: new.scope_list(),
            name: new.name,
            prefix: new.prefix,
            replaces: Some((old.prefix, retires)),
        },
    )
}

/// `POST /keys/{id}/retire`: ends a retiring key's grace period now.
async fn retire(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    form: Form<NoFields>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let Some(key) = lifecycle::retire_now(&state.pool, &state.verifier, me.user.id, &path).await? else {
        return Err(WebError::NotFound);
    };
    tracing::info!(target: "keyward::audit", event = "key_retired", user = %me.user.username, key = %key.prefix, addr = %super::client_addr(&req));
    flash(&session, format!("The old key {} no longer works.", key.prefix));
    Ok(redirect("/keys"))
}

#[derive(Template)]
#[template(path = "key_delete.html")]
struct DeleteKeyPage {
    page: Page,
    key: KeyRow,
}

async fn find_own(state: &AppState, user_id: i64, id: &str) -> Result<KeyInfo, WebError> {
    if !keys::format::is_key_id(id) {
        return Err(WebError::NotFound);
    }
    keys::find_own(&state.pool, state.verifier.last_used(), user_id, id)
        .await?
        .ok_or(WebError::NotFound)
}

async fn confirm_delete(
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let key = find_own(&state, me.user.id, &path).await?;
    render(
        StatusCode::OK,
        &DeleteKeyPage {
            page: Page::new(&session, &state, Some(&me.user), "Delete API key"),
            key: KeyRow::new(&key, crate::time::now()),
        },
    )
}

async fn delete(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    form: Form<NoFields>,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let id = path.into_inner();
    let key = find_own(&state, me.user.id, &id).await?;
    if !keys::delete(&state.pool, &state.verifier, me.user.id, &id).await? {
        return Err(WebError::NotFound);
    }
    tracing::info!(target: "keyward::audit", event = "key_deleted", user = %me.user.username, key = %key.prefix, addr = %super::client_addr(&req));
    key_event(&req, &state, &me, KeyNotice::Deleted, &key, None).await;
    flash(
        &session,
        format!("Key \"{}\" ({}) was deleted. It no longer works.", key.name, key.prefix),
    );
    Ok(redirect("/keys"))
}

/// What follows a key created, rotated or deleted in the portal: the
/// owner's activity log and a mail to the owner (the audit log line is the
/// caller's, since each says something different).
async fn key_event(
    req: &HttpRequest,
    state: &AppState,
    me: &CurrentUser,
    notice: KeyNotice,
    key: &keys::KeyInfo,
    extra: Option<String>,
) {
    let event = match notice {
        KeyNotice::Created => Event::KeyCreated,
        KeyNotice::Rotated => Event::KeyRotated,
        KeyNotice::Deleted => Event::KeyDeleted,
    };
    let origin = super::origin(req);
    activity::record(&state.pool, me.user.id, event, &origin, &key.prefix).await;
    notices::key_changed(state, &me.user, notice, &key.name, &key.prefix, &origin.address, extra);
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/keys")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(web::resource("/keys/new").route(web::get().to(new_form)))
    .service(
        web::resource("/keys/{id}")
            .route(web::get().to(show))
            .route(web::post().to(edit)),
    )
    .service(web::resource("/keys/{id}/rotate").route(web::post().to(rotate)))
    .service(web::resource("/keys/{id}/retire").route(web::post().to(retire)))
    .service(
        web::resource("/keys/{id}/delete")
            .route(web::get().to(confirm_delete))
            .route(web::post().to(delete)),
    );
}
