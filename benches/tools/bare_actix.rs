//! The reference for benches/instructions.sh: the smallest actix-web app
//! that answers one route with a tiny JSON body, built with the same
//! actix-web and the same release profile as Keyward. What a request
//! costs here is actix's own cost, which no change of ours can remove.
//!
//! ```sh
//! bare_actix 127.0.0.1:8080     # GET /ping → {"status":"ok"}
//! ```

use actix_web::{web, App, HttpResponse, HttpServer};

async fn ping() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    HttpServer::new(|| App::new().route("/ping", web::get().to(ping)))
        .workers(workers)
        .bind(addr)?
        .run()
        .await
}
