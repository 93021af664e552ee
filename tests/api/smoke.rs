use crate::helpers::*;
use reqwest::StatusCode;

#[actix_web::test]
async fn a_user_registers_creates_a_key_and_calls_the_api_with_it() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &["keys:read"]).await;
    let res = app.api_get("/api/v1/whoami", &key).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"], "alice");
    assert_eq!(body["key"]["prefix"], prefix_of(&key));
}

#[actix_web::test]
async fn the_suite_runs_on_the_backend_it_was_asked_for() {
    let app = spawn_app().await;
    let conn = app.state.pool.get().unwrap();
    let on_postgres = matches!(*conn, keyward::db::DbConnection::Postgresql(_));
    assert_eq!(on_postgres, crate::pg::selected());
}
