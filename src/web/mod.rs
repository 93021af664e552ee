//! The server-rendered portal: pages, forms, CSRF, flash messages and
//! error pages (docs/http.md). The headers every response carries are
//! `crate::headers`'.

pub mod activity;
pub mod admin;
pub mod assets;
pub mod auth;
pub mod chart;
pub mod csrf;
pub mod device;
pub mod error;
pub mod forms;
pub mod keys;
pub mod password;
pub mod security;
pub mod session;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

pub use error::WebError;
pub use forms::{Form, NoFields};
pub use session::CurrentUser;

use crate::state::AppState;

/// What the layout needs on every page.
pub struct Page {
    pub title: String,
    pub user: Option<String>,
    /// The user may use `/admin`.
    pub admin: bool,
    pub csrf: String,
    pub flash: Option<String>,
    pub registration_open: bool,
}

const FLASH: &str = "flash";

impl Page {
    pub fn new(session: &Session, state: &AppState, user: Option<&crate::accounts::User>, title: &str) -> Self {
        let flash = session.remove_as::<String>(FLASH).and_then(Result::ok);
        Self {
            title: title.to_owned(),
            user: user.map(|u| u.username.clone()),
            admin: user.is_some_and(|u| u.is_admin),
            csrf: csrf::token(session),
            flash,
            registration_open: state.settings.registration == crate::config::Registration::Open,
        }
    }

    /// The first letter of the user's name, for the avatar in the header.
    pub fn initial(&self) -> String {
        self.user
            .as_deref()
            .and_then(|u| u.chars().next())
            .map(|c| c.to_uppercase().to_string())
            .unwrap_or_default()
    }

    /// For error pages, rendered without access to the session.
    pub fn anonymous(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            user: None,
            admin: false,
            csrf: String::new(),
            flash: None,
            registration_open: false,
        }
    }
}

pub use crate::net::client_addr;

/// Where a request came from, for the activity log.
pub fn origin(req: &actix_web::HttpRequest) -> crate::activity::Origin {
    let agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    crate::activity::Origin::new(client_addr(req), agent)
}

/// Shows `message` on the next page this browser loads.
pub fn flash(session: &Session, message: impl Into<String>) {
    if let Err(e) = session.insert(FLASH, message.into()) {
        tracing::warn!(error = %e, "cannot store flash message");
    }
}

pub fn render<T: askama::Template>(status: StatusCode, tpl: &T) -> Result<HttpResponse, WebError> {
    let body = tpl.render().map_err(|e| anyhow::anyhow!("template failed: {e}"))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, to.to_owned()))
        .finish()
}

/// Per-field error messages of a form.
#[derive(Default)]
pub struct FieldErrors(Vec<(&'static str, String)>);

impl FieldErrors {
    pub fn add(&mut self, field: &'static str, msg: impl Into<String>) {
        if !self.has(field) {
            self.0.push((field, msg.into()));
        }
    }
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| *f == field)
    }
    pub fn get(&self, field: &str) -> &str {
        self.0.iter().find(|(f, _)| *f == field).map_or("", |(_, m)| m.as_str())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

async fn index(user: Option<CurrentUser>) -> HttpResponse {
    if user.is_some() {
        redirect("/keys")
    } else {
        redirect("/login")
    }
}

/// What the last health check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// Reads work, writes fail (disk full, read-only file system).
    WritesFailing,
    /// The database does not answer.
    Unavailable,
}

/// The last health check, reused for a second: a probe writes a row, and a
/// flood of `/healthz` must not become a flood of writes.
#[derive(Default)]
pub struct HealthCache(tokio::sync::Mutex<Option<(std::time::Instant, Health)>>);

impl HealthCache {
    /// Forgets the last answer: the next `/healthz` probes again.
    pub async fn forget(&self) {
        *self.0.lock().await = None;
    }
}

async fn probe(state: &AppState) -> Health {
    let mut last = state.health.0.lock().await;
    if let Some((at, health)) = *last {
        if at.elapsed() < std::time::Duration::from_secs(1) {
            return health;
        }
    }
    let read = crate::db::run(&state.pool, |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT 1").execute(conn)?;
        Ok(())
    })
    .await;
    let health = match read {
        Err(e) => {
            tracing::error!(error = ?e, "health check: the database does not answer");
            Health::Unavailable
        }
        Ok(()) => match crate::db::run(&state.pool, |conn| Ok(crate::db::write_probe(conn)?)).await {
            Ok(()) => Health::Ok,
            Err(e) => {
                tracing::error!(error = ?e, "health check: the database refuses writes");
                Health::WritesFailing
            }
        },
    };
    *last = Some((std::time::Instant::now(), health));
    health
}

/// `GET /healthz`: 200 `{"status":"ok"}` when the database answers and
/// takes writes; 503 otherwise, saying which.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses(
        (status = 200, description = "The database answers and takes writes", body = crate::api::openapi::StatusJson),
        (status = 503, description = "`degraded`: writes fail; `unavailable`: no answer", body = crate::api::openapi::StatusJson),
    )
)]
pub(crate) async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    use crate::api::openapi::StatusJson;
    let (status, database) = match probe(&state).await {
        Health::Ok => {
            return HttpResponse::Ok().json(StatusJson {
                status: "ok",
                database: None,
            })
        }
        Health::WritesFailing => ("degraded", "writes_failing"),
        Health::Unavailable => ("unavailable", "unreachable"),
    };
    HttpResponse::ServiceUnavailable()
        .insert_header((actix_web::http::header::RETRY_AFTER, "5"))
        .json(StatusJson {
            status,
            database: Some(database),
        })
}

pub async fn not_found() -> Result<HttpResponse, WebError> {
    Err(WebError::NotFound)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(index)))
        .service(web::resource("/healthz").route(web::get().to(healthz)))
        .configure(auth::configure)
        .configure(keys::configure)
        .configure(activity::configure)
        .configure(security::configure)
        .configure(admin::configure)
        .configure(password::configure)
        .configure(assets::configure);
}
