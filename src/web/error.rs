//! Errors of the HTML pages, each shown as a page in the site layout with no
//! internals. Unexpected errors are logged in full and shown as an opaque 500.

use actix_session::SessionExt;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use super::Page;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("the form has expired or did not come from this site")]
    Csrf,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("login required")]
    LoginRequired(String),
    /// The action needs a recent password (or 2FA) check: off to `/confirm`,
    /// then back to this path.
    #[error("confirmation required")]
    ConfirmRequired(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("too many attempts")]
    TooManyRequests(u64),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    page: Page,
    status: u16,
    heading: &'a str,
    message: &'a str,
}

/// What an error page says, taken from a `WebError` so the page can be
/// drawn again for a logged-in user (see `with_user`).
struct ErrorView {
    status: StatusCode,
    heading: &'static str,
    message: &'static str,
    retry_after: Option<u64>,
}

impl WebError {
    /// The page this error shows; `None` for a redirect to the login page.
    fn view(&self) -> Option<ErrorView> {
        let (heading, message) = match self {
            Self::LoginRequired(_) | Self::ConfirmRequired(_) => return None,
            Self::BadRequest(m) => ("Bad request", *m),
            Self::Csrf => (
                "Form expired",
                "This form has expired or did not come from this site. Go back, reload the page and try again.",
            ),
            Self::Forbidden(m) => ("Not allowed", *m),
            Self::NotFound => (
                "Not found",
                "There is nothing here. It may have been deleted, or the link is wrong.",
            ),
            Self::PayloadTooLarge => ("Too large", "What you sent is larger than this site accepts."),
            Self::TooManyRequests(_) => ("Too many attempts", "Too many attempts. Wait a little and try again."),
            Self::Unexpected(_) => (
                "Something went wrong",
                "Something went wrong on our side. Please try again in a moment.",
            ),
        };
        let status = self.status_code();
        let retry_after = match self {
            Self::TooManyRequests(secs) => Some(*secs),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(5),
            _ => None,
        };
        Some(ErrorView {
            status,
            heading,
            message,
            retry_after,
        })
    }
}

impl ErrorView {
    fn respond(&self, page: Page) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.content_type("text/html; charset=utf-8");
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        let page = ErrorPage {
            page,
            status: self.status.as_u16(),
            heading: self.heading,
            message: self.message,
        };
        match page.render() {
            Ok(body) => res.body(body),
            Err(_) => res.body(self.message),
        }
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Csrf | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::LoginRequired(_) | Self::ConfirmRequired(_) => StatusCode::SEE_OTHER,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unexpected(e)
                if e.downcast_ref::<crate::db::Unavailable>().is_some()
                    || e.downcast_ref::<crate::accounts::password::Busy>().is_some() =>
            {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::ConfirmRequired(back) = self {
            let target = format!(
                "/confirm?next={}",
                percent_encoding::utf8_percent_encode(
                    &super::session::safe_next(back),
                    percent_encoding::NON_ALPHANUMERIC
                )
            );
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, target))
                .finish();
        }
        let Some(view) = self.view() else {
            let next = match self {
                Self::LoginRequired(next) => next.as_str(),
                _ => "",
            };
            let target = if next.is_empty() || next == "/" || next == "/keys" {
                "/login".to_owned()
            } else {
                format!(
                    "/login?next={}",
                    percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
                )
            };
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, target))
                .finish();
        };
        if let Self::Unexpected(e) = self {
            if e.downcast_ref::<crate::accounts::password::Busy>().is_some() {
                tracing::warn!(error = %e, "request shed: try again shortly");
            } else {
                tracing::error!(error = ?e, "request failed");
            }
        }
        // Drawn for a visitor: `with_user` draws it again for a logged-in one.
        view.respond(Page::anonymous(view.heading))
    }
}

/// Middleware of the pages (inside the session and identity layers): an
/// error page shown to someone logged in gets the header of every other
/// page, with their name, the menu and "Log out", instead of "Log in".
/// Costs a session lookup only when an error page goes to a browser with a
/// login cookie.
pub async fn with_user(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let view = match res.response().error().and_then(|e| e.as_error::<WebError>()) {
        Some(e) => e.view(),
        None => None,
    };
    let Some(view) = view else {
        return Ok(res.map_into_boxed_body());
    };
    let Some(user) = current_user(res.request()).await else {
        return Ok(res.map_into_boxed_body());
    };
    let (Some(state), session) = (
        res.request().app_data::<web::Data<AppState>>().cloned(),
        res.request().get_session(),
    ) else {
        return Ok(res.map_into_boxed_body());
    };
    let page = Page::new(&session, &state, Some(&user), view.heading);
    let drawn = view.respond(page);
    Ok(res.into_response(drawn).map_into_boxed_body())
}

/// The logged-in user of this request, if any; `None` when the session
/// has ended or the database cannot say.
async fn current_user(req: &HttpRequest) -> Option<crate::accounts::User> {
    let state = req.app_data::<web::Data<AppState>>()?;
    super::session::current(req, state)
        .await
        .ok()
        .flatten()
        .map(|me| me.user)
}
