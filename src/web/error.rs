//! Errors of the HTML pages, each shown as a page in the site layout with no
//! internals. Unexpected errors are logged in full and shown as an opaque 500.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use super::Page;

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

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Csrf | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::LoginRequired(_) => StatusCode::SEE_OTHER,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unexpected(e) if e.downcast_ref::<crate::db::Unavailable>().is_some() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::LoginRequired(next) = self {
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
        }
        if let Self::Unexpected(e) = self {
            tracing::error!(error = ?e, "request failed");
        }
        let (heading, message) = match self {
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
            Self::Unexpected(_) | Self::LoginRequired(_) => (
                "Something went wrong",
                "Something went wrong on our side. Please try again in a moment.",
            ),
        };
        let status = self.status_code();
        let mut res = HttpResponse::build(status);
        res.content_type("text/html; charset=utf-8");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.insert_header((header::RETRY_AFTER, "5"));
        }
        if let Self::TooManyRequests(secs) = self {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        let page = ErrorPage {
            page: Page::anonymous(heading),
            status: status.as_u16(),
            heading,
            message,
        };
        match page.render() {
            Ok(body) => res.body(body),
            Err(_) => res.body(message.to_owned()),
        }
    }
}
