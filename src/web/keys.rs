//! The key pages: list, create (shown once), delete.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{Duration, NaiveDateTime};

use super::{csrf, flash, redirect, render, CurrentUser, FieldErrors, FormFields, Page, WebError};
use crate::keys::{self, CreateKeyError, KeyInfo, KeyName, NewKeyRequest, Scopes};
use crate::state::AppState;
use crate::time::{exact, relative};

/// A time shown as "3 minutes ago" with the exact UTC time on hover.
pub struct When {
    pub exact: String,
    pub iso: String,
    pub relative: String,
}

impl When {
    fn new(t: NaiveDateTime, now: NaiveDateTime) -> Self {
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
    pub expires: Option<When>,
    pub expired: bool,
    pub expiring_soon: bool,
}

impl KeyRow {
    fn new(k: &KeyInfo, now: NaiveDateTime) -> Self {
        let expired = k.is_expired(now);
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            scopes: k.scope_list(),
            created: When::new(k.created_at, now),
            last_used: k.last_used_at.map(|t| When::new(t, now)),
            expires: k.expires_at.map(|t| When::new(t, now)),
            expired,
            expiring_soon: !expired && k.expires_at.is_some_and(|e| e - now < Duration::days(7)),
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
    errors: FieldErrors,
}

async fn new_form(session: Session, state: web::Data<AppState>, me: CurrentUser) -> Result<HttpResponse, WebError> {
    render(
        StatusCode::OK,
        &NewKeyPage {
            page: Page::new(&session, &state, Some(&me.user), "New API key"),
            name: String::new(),
            scopes: state.scopes.iter().map(|s| (s.clone(), false)).collect(),
            expires_in_days: String::new(),
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
}

async fn create(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
    form: FormFields,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let chosen = form.get_all("scopes");
    let mut errors = FieldErrors::default();
    let name = KeyName::parse(form.get("name")).map_err(|e| errors.add("name", e)).ok();
    let scopes = Scopes::parse(&chosen, &state.scopes)
        .map_err(|e| errors.add("scopes", e))
        .ok();
    let expiry = keys::parse_expiry(form.get("expires_in_days"))
        .map_err(|e| errors.add("expires_in_days", e))
        .ok();
    let rerender = |errors: FieldErrors| {
        render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &NewKeyPage {
                page: Page::new(&session, &state, Some(&me.user), "New API key"),
                name: form.get("name").to_owned(),
                scopes: state.scopes.iter().map(|s| (s.clone(), chosen.contains(s))).collect(),
                expires_in_days: form.get("expires_in_days").to_owned(),
                errors,
            },
        )
    };
    let (Some(name), Some(scopes), Some(expires_in_days)) = (name, scopes, expiry) else {
        return rerender(errors);
    };
    let request = NewKeyRequest {
        user_id: me.user.id,
        max_keys: state.settings.max_keys_per_user,
        name,
        scopes,
        expires_in_days,
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
    tracing::info!(
        target: "keyward::audit",
        event = "key_created",
        user = %me.user.username,
        key = %info.prefix,
        addr = %super::client_addr(&req)
    );
    render(
        StatusCode::OK,
        &KeyCreatedPage {
            page: Page::new(&session, &state, Some(&me.user), "Your new API key"),
            key: generated.key.expose(),
            scopes: info.scope_list(),
            name: info.name,
            prefix: info.prefix,
        },
    )
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
    form: FormFields,
) -> Result<HttpResponse, WebError> {
    csrf::verify(&session, &form)?;
    let id = path.into_inner();
    let key = find_own(&state, me.user.id, &id).await?;
    if !keys::delete(&state.pool, &state.verifier, me.user.id, &id).await? {
        return Err(WebError::NotFound);
    }
    tracing::info!(
        target: "keyward::audit",
        event = "key_deleted",
        user = %me.user.username,
        key = %key.prefix,
        addr = %super::client_addr(&req)
    );
    flash(
        &session,
        format!("Key \"{}\" ({}) was deleted. It no longer works.", key.name, key.prefix),
    );
    Ok(redirect("/keys"))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/keys")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(web::resource("/keys/new").route(web::get().to(new_form)))
    .service(
        web::resource("/keys/{id}/delete")
            .route(web::get().to(confirm_delete))
            .route(web::post().to(delete)),
    );
}
