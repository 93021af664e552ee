//! A Rust service protecting its own actix-web routes with Keyward's guard.
//!
//! It shares Keyward's database (the same `DATABASE_URL`), so the keys your
//! customers create in the portal work here at once, and a key deleted,
//! edited or rotated in the portal is refused (or narrowed) here within a
//! fraction of a second: the verifier follows the change feed.
//!
//! ```sh
//! cargo run --example protect_routes   # on 127.0.0.1:8081, or $PROTECT_ROUTES_BIND
//! curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8081/hello
//! curl -H "X-API-Key: $KEY" http://127.0.0.1:8081/reports
//! ```

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use keyward::api::{ApiError, ApiKey, RequireScope};
use keyward::db::{self, DatabaseUrl};
use keyward::keys::{LastUsed, Verifier};

/// Any valid key may call this; the extractor answers 401 otherwise.
async fn hello(key: ApiKey) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "hello": key.username(), "key": key.prefix() }))
}

/// Reached only with the `read` scope: `RequireScope` wraps the whole scope.
async fn reports(key: ApiKey) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "reports": [], "for": key.username() }))
}

/// A scope check inside a handler, for decisions that depend on the request.
async fn publish(key: ApiKey) -> Result<HttpResponse, ApiError> {
    key.require("write")?;
    Ok(HttpResponse::Accepted().finish())
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "data/keyward.db".into());
    // Keyward owns the schema and migrates it when it starts: this service
    // only connects (start Keyward once before it).
    let pool = db::connect(&DatabaseUrl::parse(&url))?;
    let verifier = Arc::new(Verifier::new(pool, Arc::new(LastUsed::default())));
    // Last-used times are batched in memory and written every few seconds.
    verifier.spawn_flusher(Duration::from_secs(2));
    // Changes made in the portal (or by other services) apply here at once.
    verifier.follow_changes()?;

    let data = web::Data::from(verifier.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/hello", web::get().to(hello))
            .route("/publish", web::post().to(publish))
            .service(
                web::scope("/reports")
                    .wrap(RequireScope::new("read"))
                    .route("", web::get().to(reports)),
            )
    })
    .bind(std::env::var("PROTECT_ROUTES_BIND").unwrap_or_else(|_| "127.0.0.1:8081".into()))?;
    // The real port, also when PROTECT_ROUTES_BIND asks for port 0.
    for addr in server.addrs() {
        println!("listening on http://{addr}");
    }
    server.run().await?;
    // Write the uses not yet flushed before exiting.
    verifier.flush_last_used().await?;
    Ok(())
}
