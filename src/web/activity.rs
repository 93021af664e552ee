//! `GET /account/activity`: the user's security events, newest first.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::keys::When;
use super::{render, CurrentUser, Page, WebError};
use crate::activity;
use crate::state::AppState;

pub struct EventView {
    pub event: String,
    /// The event, readable: "key rotated".
    pub label: String,
    pub when: When,
    pub address: String,
    pub user_agent: String,
    pub key_prefix: String,
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    page: Page,
    events: Vec<EventView>,
    /// The link to older events, if any.
    older: Option<String>,
}

#[derive(serde::Deserialize)]
struct Before {
    before: Option<i64>,
}

async fn show(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    me: CurrentUser,
) -> Result<HttpResponse, WebError> {
    let before = web::Query::<Before>::from_query(req.query_string())
        .map_err(|_| WebError::BadRequest("That page of activity does not exist."))?
        .into_inner()
        .before;
    let mut rows = activity::for_user(&state.pool, me.user.id, before).await?;
    let older = if rows.len() as i64 > activity::PAGE_SIZE {
        rows.truncate(activity::PAGE_SIZE as usize);
        rows.last().map(|r| format!("/account/activity?before={}", r.id))
    } else {
        None
    };
    let now = crate::time::now();
    let events = rows
        .into_iter()
        .map(|r| EventView {
            when: When::new(r.at, now),
            label: r.event.replace('_', " "),
            event: r.event,
            address: r.address,
            user_agent: r.user_agent,
            key_prefix: r.key_prefix,
        })
        .collect();
    render(
        StatusCode::OK,
        &ActivityPage {
            page: Page::new(&session, &state, Some(&me.user), "Activity"),
            events,
            older,
        },
    )
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/account/activity").route(web::get().to(show)));
}
