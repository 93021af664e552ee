//! Static files compiled into the binary, and the pages' CSP (the headers
//! themselves are added in `crate::headers`).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const STYLE: &str = include_str!("../../static/style.css");
const SCRIPT: &str = include_str!("../../static/app.js");
const FAVICON: &str = include_str!("../../static/favicon.svg");

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}
async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}
async fn favicon() -> HttpResponse {
    asset("image/svg+xml", FAVICON)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/static/style.css").route(web::get().to(style)))
        .service(web::resource("/static/app.js").route(web::get().to(script)))
        .service(web::resource("/static/favicon.svg").route(web::get().to(favicon)))
        .service(web::resource("/favicon.ico").route(web::get().to(favicon)));
}

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
