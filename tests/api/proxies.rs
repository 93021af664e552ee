//! Forward auth through real proxies: Debian's nginx (`auth_request`) and
//! Caddy (`forward_auth`), each in front of a small upstream that echoes
//! the headers it receives, with Keyward as the auth service, all on
//! 127.0.0.1. The configurations are the README's.

use std::path::Path;
use std::process::{Command, Stdio};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use reqwest::{Client, StatusCode};

use crate::balancer::{free_port, installed, nginx_conf_around, Proxy};
use crate::helpers::*;

/// The upstream API: answers every request with the headers it got, as
/// JSON (names lower-case, repeated values joined with ", ").
fn start_echo() -> u16 {
    async fn echo(req: HttpRequest) -> HttpResponse {
        let mut headers = serde_json::Map::new();
        for name in req.headers().keys() {
            let values: Vec<String> = req
                .headers()
                .get_all(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            headers.insert(name.as_str().to_owned(), values.join(", ").into());
        }
        HttpResponse::Ok().json(headers)
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| App::new().default_service(web::to(echo)))
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
    actix_web::rt::spawn(server);
    port
}

/// The README's nginx configuration, with test paths and ports.
fn nginx_conf(dir: &Path, port: u16, keyward: u16, upstream: u16) -> String {
    let body = format!(
        r#"
    upstream keyward {{ server 127.0.0.1:{keyward}; keepalive 64; }}
    upstream api {{ server 127.0.0.1:{upstream}; keepalive 16; }}

    server {{
        listen 127.0.0.1:{port};

        # One auth location per set of required scopes.
        location = /_keyward/read {{
            internal;
            proxy_pass http://keyward/auth/verify?scope=read;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location = /_keyward/write {{
            internal;
            proxy_pass http://keyward/auth/verify?scope=write;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}

        location /read/ {{
            auth_request /_keyward/read;
            auth_request_set $keyward_user $upstream_http_x_keyward_user;
            auth_request_set $keyward_key_id $upstream_http_x_keyward_key_id;
            auth_request_set $keyward_key $upstream_http_x_keyward_key_prefix;
            auth_request_set $keyward_scopes $upstream_http_x_keyward_scopes;
            proxy_set_header X-Keyward-User $keyward_user;
            proxy_set_header X-Keyward-Key-Id $keyward_key_id;
            proxy_set_header X-Keyward-Key-Prefix $keyward_key;
            proxy_set_header X-Keyward-Scopes $keyward_scopes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://api;
        }}
        location /write/ {{
            auth_request /_keyward/write;
            auth_request_set $keyward_user $upstream_http_x_keyward_user;
            auth_request_set $keyward_key_id $upstream_http_x_keyward_key_id;
            auth_request_set $keyward_key $upstream_http_x_keyward_key_prefix;
            auth_request_set $keyward_scopes $upstream_http_x_keyward_scopes;
            proxy_set_header X-Keyward-User $keyward_user;
            proxy_set_header X-Keyward-Key-Id $keyward_key_id;
            proxy_set_header X-Keyward-Key-Prefix $keyward_key;
            proxy_set_header X-Keyward-Scopes $keyward_scopes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://api;
        }}
    }}
"#
    );
    nginx_conf_around(dir, &body)
}

async fn start_nginx(keyward: u16, upstream: u16) -> Option<Proxy> {
    crate::balancer::start_nginx(|dir, port| nginx_conf(dir, port, keyward, upstream)).await
}

/// The README's Caddyfile, with test ports.
fn caddyfile(port: u16, keyward: u16, upstream: u16) -> String {
    format!(
        r#"{{
    admin off
    auto_https off
}}

http://127.0.0.1:{port} {{
    # Whatever the client sent in these headers, the API sees only Keyward's.
    request_header -X-Keyward-*

    route /read/* {{
        forward_auth 127.0.0.1:{keyward} {{
            uri /auth/verify?scope=read
            copy_headers X-Keyward-User X-Keyward-Key-Id X-Keyward-Key-Prefix X-Keyward-Scopes
        }}
        reverse_proxy 127.0.0.1:{upstream}
    }}
    route /write/* {{
        forward_auth 127.0.0.1:{keyward} {{
            uri /auth/verify?scope=write
            copy_headers X-Keyward-User X-Keyward-Key-Id X-Keyward-Key-Prefix X-Keyward-Scopes
        }}
        reverse_proxy 127.0.0.1:{upstream}
    }}
}}
"#
    )
}

async fn start_caddy(keyward: u16, upstream: u16) -> Option<Proxy> {
    if !installed("caddy") {
        println!("skipped: caddy is not installed (apt-get install caddy)");
        return None;
    }
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let file = dir.path().join("Caddyfile");
        std::fs::write(&file, caddyfile(port, keyward, upstream)).unwrap();
        let child = Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("caddy starts");
        let proxy = Proxy {
            child,
            port,
            name: "caddy",
            dir,
        };
        if let Some(p) = proxy.ready().await {
            return Some(p);
        }
    }
    panic!("caddy did not start");
}

/// The same journey through either proxy.
async fn through(proxy: &Proxy, app: &TestApp) {
    let name = proxy.name;
    let reader = app.create_key(&format!("{name} reader"), &["read"]).await;
    let client = Client::new();

    // No key: 401 with the challenge, and the API is never reached.
    let res = client.get(proxy.url("/read/items")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
    let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with(r#"Bearer realm="keyward""#),
        "{name}: {challenge}"
    );

    // A valid key reaches the API, which learns who calls; a client-sent
    // X-Keyward-User is not passed on.
    let res = client
        .get(proxy.url("/read/items?key=ignored"))
        .bearer_auth(&reader)
        .header("x-keyward-user", "mallory")
        .header("x-keyward-scopes", "keys:write admin")
        .header("x-keyward-key-id", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{name}");
    let seen: serde_json::Value = res.json().await.unwrap();
    assert_eq!(seen["x-keyward-user"], "alice", "{name}: {seen}");
    assert_eq!(seen["x-keyward-scopes"], "read", "{name}: {seen}");
    assert_eq!(seen["x-keyward-key-id"], id_of(&reader), "{name}: {seen}");
    assert_eq!(seen["x-keyward-key-prefix"], prefix_of(&reader), "{name}");

    // Forged identity without a key: refused, nothing reaches the API.
    let res = client
        .get(proxy.url("/read/items"))
        .header("x-keyward-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");

    // A key without the route's scope: 403.
    let res = client
        .get(proxy.url("/write/items"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}");

    // Its use shows on /keys (flushed every second here).
    // Written by an explicit flush, not by waiting for the timer.
    app.state.verifier.flush_last_used().await.unwrap();
    let row = app.key_row(&app.client, &prefix_of(&reader)).await.unwrap();
    assert!(
        !cell(&row, "key-last-used").contains("never"),
        "{name}: last-used shows on /keys"
    );

    // Deleted: refused at once.
    let res = app.post_form(&format!("/keys/{}/delete", id_of(&reader)), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = client
        .get(proxy.url("/read/items"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
}

#[actix_web::test]
async fn nginx_auth_request_protects_an_api_with_keyward() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let upstream = start_echo();
    let Some(nginx) = start_nginx(app.port, upstream).await else {
        return;
    };
    through(&nginx, &app).await;
}

#[actix_web::test]
async fn caddy_forward_auth_protects_an_api_with_keyward() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let upstream = start_echo();
    let Some(caddy) = start_caddy(app.port, upstream).await else {
        return;
    };
    through(&caddy, &app).await;
}
