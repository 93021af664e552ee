//! What a hostile client tries: spraying passwords, locking others out,
//! reading files it should not, flooding the password hasher, probing for
//! accounts, and odd requests. Each test is one finding of the black-box
//! review (docs/login-throttling.md, docs/accounts.md).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::helpers::*;
use crate::mailbox::wait_for_messages;
use reqwest::{Client, StatusCode};

async fn login_status(app: &TestApp, client: &Client, user: &str, password: &str) -> StatusCode {
    app.login_with(client, user, password).await.status()
}

// ---- M1, M2: login throttling -------------------------------------------

#[actix_web::test]
async fn one_address_spraying_passwords_is_throttled_even_between_its_own_logins() {
    let app = spawn_app().await;
    let victims: Vec<String> = (0..12).map(|i| format!("victim{i}")).collect();
    for v in &victims {
        app.register_with(&browser(), v, &format!("{v}@example.com"), PASSWORD)
            .await;
    }
    app.register_with(&browser(), "mallory", "mallory@example.com", PASSWORD)
        .await;

    // Two guesses at each victim, then a successful login into their own
    // account, over and over: the success must not wipe the address's count.
    let mut refused_guesses = 0;
    let mut throttled = 0;
    for round in 0..3 {
        for v in &victims {
            match login_status(&app, &browser(), v, &format!("guess {round}")).await {
                StatusCode::UNAUTHORIZED => refused_guesses += 1,
                StatusCode::TOO_MANY_REQUESTS => throttled += 1,
                other => panic!("unexpected {other}"),
            }
            if refused_guesses % 3 == 0 {
                let own = login_status(&app, &browser(), "mallory", PASSWORD).await;
                assert!(
                    own == StatusCode::SEE_OTHER || own == StatusCode::TOO_MANY_REQUESTS,
                    "{own}"
                );
            }
        }
    }

    assert!(refused_guesses <= 20, "{refused_guesses} guesses were checked");
    assert!(throttled >= 16, "only {throttled} guesses were throttled");
}

#[actix_web::test]
async fn an_attacker_cannot_lock_a_victim_out_of_their_usual_browser() {
    let app = spawn_app().await;
    let victim = browser();
    app.register_with(&victim, "victim", "victim@example.com", PASSWORD)
        .await;
    app.logout_with(&victim).await;

    // From the same address (a shared proxy), far past every limit.
    let mut throttled = 0;
    for i in 0..40 {
        if login_status(&app, &browser(), "victim", &format!("wrong {i}")).await == StatusCode::TOO_MANY_REQUESTS {
            throttled += 1;
        }
    }
    assert!(throttled > 20, "the attacker was slowed down ({throttled} throttled)");

    // An unknown browser is held back, even with the right password (the
    // trade-off: see docs/login-throttling.md)...
    assert_eq!(
        login_status(&app, &browser(), "victim", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...but the owner's usual browser gets in.
    let res = app.login_with(&victim, "victim", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/keys");
    assert!(app.is_logged_in(&victim).await);
}

#[actix_web::test]
async fn a_device_cookie_for_ones_own_account_does_not_help_against_another() {
    let app = spawn_app().await;
    app.register_with(&browser(), "victim", "victim@example.com", PASSWORD)
        .await;
    let attacker = browser();
    app.register_with(&attacker, "mallory", "mallory@example.com", PASSWORD)
        .await;

    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(login_status(&app, &attacker, "victim", &format!("wrong {i}")).await);
    }

    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(statuses[7], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

#[actix_web::test]
async fn a_forged_device_cookie_is_ignored() {
    let app = spawn_app().await;
    app.register_with(&browser(), "victim", "victim@example.com", PASSWORD)
        .await;
    let (forged, jar) = browser_with_jar();
    jar.add_cookie_str(
        "keyward-device=victim:abcdefghijklmnopqrstuv; Path=/",
        &app.address.parse().unwrap(),
    );

    let mut last = StatusCode::OK;
    for i in 0..8 {
        last = login_status(&app, &forged, "victim", &format!("wrong {i}")).await;
    }

    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

// ---- L2: the current password on the account page ------------------------

#[actix_web::test]
async fn wrong_current_passwords_are_throttled_like_logins() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let change = |current: &'static str| {
        let app = &app;
        async move {
            app.post_form_with(
                &app.client,
                "/account/password",
                &[
                    ("current_password", current),
                    ("new_password", "another fine passphrase"),
                    ("new_password_confirm", "another fine passphrase"),
                ],
            )
            .await
        }
    };
    for _ in 0..5 {
        assert_eq!(
            change("not my password").await.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    let res = change(PASSWORD).await;

    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        login_status(&app, &browser(), "alice", PASSWORD).await,
        StatusCode::SEE_OTHER,
        "the password did not change"
    );
}

// ---- M3: file modes -------------------------------------------------------

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[actix_web::test]
async fn the_data_directory_and_every_file_in_it_are_private_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bin = Binary::start_with_umask(dir.path(), &[("KEYWARD_DATA_DIR", data.to_str().unwrap())], "022").await;
    let client = browser();
    let (res, _) = bin
        .post_form(
            &client,
            "/register",
            "/register",
            &[
                ("username", "alice"),
                ("email", "alice@example.com"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (res, _) = bin
        .post_form(
            &browser(),
            "/password/forgot",
            "/password/forgot",
            &[("email", "alice@example.com")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mails = wait_for_messages(&data.join("outbox"), 1).await;
    assert_eq!(mails.len(), 1, "the reset mail was written");

    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&data.join("outbox")), 0o700, "outbox");
    let mut seen = Vec::new();
    for folder in [data.clone(), data.join("outbox")] {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            if entry.file_type().unwrap().is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                assert_eq!(mode(&entry.path()), 0o600, "{name}");
                seen.push(name);
            }
        }
    }
    for expected in ["keyward.db", "keyward.db-wal", "keyward.db-shm", "session.key"] {
        assert!(seen.iter().any(|n| n == expected), "{expected} in {seen:?}");
    }
    assert!(seen.iter().any(|n| n.ends_with(".eml")), "{seen:?}");
    drop(bin);
}

#[actix_web::test]
async fn a_data_directory_left_readable_is_made_private_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("outbox")).unwrap();
    std::fs::write(data.join("outbox/old.eml"), "To: a@example.com\n\nold link").unwrap();
    for p in [&data, &data.join("outbox")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(data.join("outbox/old.eml"), std::fs::Permissions::from_mode(0o644)).unwrap();

    let bin = Binary::start_with_umask(dir.path(), &[("KEYWARD_DATA_DIR", data.to_str().unwrap())], "022").await;

    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("outbox")), 0o700);
    assert_eq!(mode(&data.join("outbox/old.eml")), 0o600);
    drop(bin);
}

// ---- L3: one instance per SQLite file -------------------------------------

#[actix_web::test]
async fn a_second_instance_on_the_same_sqlite_file_refuses_to_start() {
    if crate::pg::selected() {
        println!("skipped: SQLite only (PostgreSQL serves many instances)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = Binary::start(dir.path(), &[]).await;

    let second = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("KEYWARD_DATA_DIR", dir.path())
        .env("KEYWARD_BIND", "127.0.0.1:0")
        .output()
        .unwrap();

    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("another Keyward instance"), "{said}");
    assert!(said.contains("keyward.db"), "names the database: {said}");
    assert_eq!(
        Client::new().get(first.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK,
        "the first one serves on"
    );
}

#[actix_web::test]
async fn a_database_that_cannot_be_opened_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not-a-dir"), "").unwrap();
    let path = dir.path().join("not-a-dir/keyward.db");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .current_dir(dir.path())
        .env("DATABASE_URL", &path)
        .env("KEYWARD_DATA_DIR", dir.path().join("data"))
        .env("KEYWARD_BIND", "127.0.0.1:0")
        .output()
        .unwrap();

    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not-a-dir"), "{said}");
}

// ---- M4: registration cannot stall logins ---------------------------------

fn backend_env() -> Vec<(&'static str, String)> {
    if crate::pg::selected() {
        vec![("DATABASE_URL", crate::pg::fresh_database().unwrap())]
    } else {
        Vec::new()
    }
}

#[actix_web::test]
async fn a_registration_flood_is_shed_and_a_real_login_still_completes() {
    let backend = backend_env();
    let mut env: Vec<(&str, &str)> = backend.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("KEYWARD_REGISTRATIONS_PER_HOUR", "100000"));
    env.push(("RUST_LOG", "warn"));
    let bin = Binary::start_fresh(&env).await;
    let alice = browser();
    let register = |client: Client, name: String| {
        let base = bin.base.clone();
        async move {
            let page = client
                .get(format!("{base}/register"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let token = csrf_in(&page);
            let email = format!("{name}@example.com");
            client
                .post(format!("{base}/register"))
                .form(&[
                    ("username", name.as_str()),
                    ("email", email.as_str()),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        register(alice.clone(), "alice".into()).await.status(),
        StatusCode::SEE_OTHER
    );
    let login_page = bin.page(&alice, "/keys").await;
    let token = csrf_in(&login_page);
    alice
        .post(bin.url("/logout"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();

    // 120 sign-ups at once, with a real login in the middle of them.
    let flood: Vec<_> = (0..120)
        .map(|i| actix_web::rt::spawn(register(browser(), format!("bot{i}"))))
        .collect();
    let (login, _) = bin
        .post_form(
            &alice,
            "/login",
            "/login",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    let mut shed = 0;
    let mut created = 0;
    for f in flood {
        let res = f.await.unwrap();
        match res.status() {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(res.headers().contains_key("retry-after"));
                shed += 1;
            }
            StatusCode::SEE_OTHER => created += 1,
            other => panic!("unexpected {other}"),
        }
    }

    assert_eq!(login.status(), StatusCode::SEE_OTHER, "alice logged in");
    assert_eq!(location(&login), "/keys");
    assert!(shed > 0, "some sign-ups were shed ({created} created)");
    assert!(created > 0, "some sign-ups went through");
}

#[actix_web::test]
async fn registrations_are_limited_per_address() {
    let app = spawn_app_with(|s| s.registrations_per_hour = 3).await;
    for i in 0..3 {
        let res = app
            .register_with(&browser(), &format!("user{i}"), &format!("u{i}@example.com"), PASSWORD)
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }

    let res = app.register_with(&browser(), "user3", "u3@example.com", PASSWORD).await;

    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(app.user_count(), 3);
}

#[actix_web::test]
async fn a_taken_username_is_refused_with_a_message() {
    let app = spawn_app().await;
    app.register("alice").await;

    let res = app
        .register_with(&browser(), "Alice", "other@example.com", PASSWORD)
        .await;

    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("That username is taken"));
    assert_eq!(app.user_count(), 1);
}

// ---- L1: registration reveals no email address ----------------------------

#[actix_web::test]
async fn registering_with_a_known_address_looks_the_same_and_tells_its_owner() {
    let app = spawn_app().await;
    let outbox = app.dir.path().join("outbox");
    let first = app
        .register_with(&browser(), "alice", "alice@example.com", PASSWORD)
        .await;
    let fresh = app.register_with(&browser(), "bob", "bob@example.com", PASSWORD).await;

    let reused = app
        .register_with(&browser(), "mallory", "Alice@Example.com", PASSWORD)
        .await;

    for res in [&first, &fresh, &reused] {
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(res), "/keys");
    }
    let mails = wait_for_messages(&outbox, 1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("To: alice@example.com"), "{}", mails[0]);
    assert!(mails[0].contains("mallory"), "{}", mails[0]);
    assert!(!mails[0].contains(PASSWORD));
}

#[actix_web::test]
async fn a_reset_for_a_shared_address_mails_each_account() {
    let app = spawn_app().await;
    let outbox = app.dir.path().join("outbox");
    app.register_with(&browser(), "alice", "team@example.com", PASSWORD)
        .await;
    app.register_with(&browser(), "bob", "team@example.com", PASSWORD).await;
    let before = wait_for_messages(&outbox, 1).await.len();

    let res = app
        .post_form_with(&browser(), "/password/forgot", &[("email", "team@example.com")])
        .await;

    assert_eq!(res.status(), StatusCode::OK);
    let mails = wait_for_messages(&outbox, before + 2).await;
    let resets: Vec<&String> = mails.iter().filter(|m| m.contains("/password/reset?token=")).collect();
    assert_eq!(resets.len(), 2);
    assert!(resets.iter().any(|m| m.contains("\"alice\"")));
    assert!(resets.iter().any(|m| m.contains("\"bob\"")));
}

// ---- L5: addresses the mailer would refuse ------------------------------

#[actix_web::test]
async fn addresses_the_mailer_would_refuse_are_refused_at_registration() {
    let app = spawn_app().await;
    for (i, bad) in ["a..b@example.com", ".a@example.com", "a@-x.com", "a.@example.com"]
        .iter()
        .enumerate()
    {
        let res = app.register_with(&browser(), &format!("user{i}"), bad, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(
            res.text().await.unwrap().contains("Enter a valid email address"),
            "{bad}"
        );
    }
    assert_eq!(app.user_count(), 0);
}

// ---- passwords -------------------------------------------------------------

#[actix_web::test]
async fn blank_invisible_and_username_passwords_are_refused() {
    let app = spawn_app().await;
    for bad in [
        "          ",
        "\u{200B}\u{200B}\u{200B}\u{200B}\u{200B}\u{200B}\u{200B}\u{200B}",
        "alice.smith",
    ] {
        let res = app
            .register_with(&browser(), "alice.smith", "alice@example.com", bad)
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
    }
    assert_eq!(app.user_count(), 0);
}

#[actix_web::test]
async fn a_password_typed_with_composed_or_decomposed_accents_is_the_same() {
    let app = spawn_app().await;
    let decomposed = "cafe\u{301} cre\u{300}me brul\u{e9}e";
    let composed = "caf\u{e9} cr\u{e8}me brul\u{e9}e";
    app.register_with(&browser(), "alice", "alice@example.com", decomposed)
        .await;

    assert_eq!(
        login_status(&app, &browser(), "alice", composed).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        login_status(&app, &browser(), "alice", decomposed).await,
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn registration_gives_the_session_a_new_csrf_token() {
    let app = spawn_app().await;
    let client = browser();
    let before = csrf_in(&app.get_with(&client, "/register").await.text().await.unwrap());
    let res = client
        .post(app.url("/register"))
        .form(&[
            ("username", "alice"),
            ("email", "alice@example.com"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
            ("csrf_token", before.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    let after = csrf_in(&app.get_with(&client, "/keys/new").await.text().await.unwrap());
    let replayed = client
        .post(app.url("/keys"))
        .form(&[("name", "ci"), ("csrf_token", before.as_str())])
        .send()
        .await
        .unwrap();

    assert_ne!(before, after);
    assert_eq!(replayed.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.key_count(), 0);
}

// ---- L6: many keys ---------------------------------------------------------

#[actix_web::test]
async fn keys_beyond_the_limit_are_refused_with_a_message() {
    let app = spawn_app_with(|s| s.max_keys_per_user = 3).await;
    app.signed_up("alice").await;
    for i in 0..3 {
        app.create_key(&format!("key {i}"), &[]).await;
    }

    let (status, html) = app.create_key_with(&app.client, "one more", &[], "").await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("the most an account may hold"), "{html}");
    assert!(html.contains("one more"), "the form keeps what was typed");
    assert_eq!(app.key_count(), 3);
}

fn row_ids(html: &str) -> Vec<String> {
    attrs_of(html, "tr[data-key-id]", "data-key-id")
}

#[actix_web::test]
async fn the_key_list_comes_in_pages_of_fifty() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let mut made = Vec::new();
    for i in 0..62 {
        made.push(id_of(&app.create_key(&format!("key {i:02}"), &["keys:read"]).await));
    }

    let first = app.get_html("/keys").await;
    let first_ids = row_ids(&first);
    let next = attr_of(&first, r#"a[rel="next"]"#, "href").expect("a link to the next page");
    let second_ids = row_ids(&app.get_html(&next).await);

    assert_eq!(first_ids.len(), 50);
    assert!(first.contains("62 keys"));
    assert_eq!(second_ids.len(), 12);
    let mut all: Vec<String> = first_ids.into_iter().chain(second_ids).collect();
    all.sort();
    made.sort();
    assert_eq!(all, made, "every key once, on one page or the other");

    // The API pages the same way.
    let key = app.create_key("reader", &["keys:read"]).await;
    let page: serde_json::Value = app.api_get("/api/v1/keys", &key).await.json().await.unwrap();
    assert_eq!(page["keys"].as_array().unwrap().len(), 50);
    assert_eq!(page["total"], 63);
    let after = page["next_after"].as_str().unwrap().to_owned();
    let rest: serde_json::Value = app
        .api_get(&format!("/api/v1/keys?after={after}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["keys"].as_array().unwrap().len(), 13);
    assert!(rest["next_after"].is_null());

    let bad = app.api_get("/api/v1/keys?after=nonsense", &key).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/keys?after=nonsense").await.status(), StatusCode::BAD_REQUEST);
}

// ---- L7: HEAD and 405 ------------------------------------------------------

#[actix_web::test]
async fn head_works_on_get_routes_and_a_wrong_method_gets_405_with_allow() {
    let app = spawn_app().await;
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, status) in [
        ("/healthz", StatusCode::OK),
        ("/api/v1/ping", StatusCode::OK),
        ("/", StatusCode::SEE_OTHER),
        ("/login", StatusCode::OK),
    ] {
        let res = client.head(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), status, "HEAD {path}");
        assert!(res.text().await.unwrap().is_empty(), "HEAD {path} has no body");
    }

    let res = client.post(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = res.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");

    // The API's GET routes too (their method check is our own).
    for path in ["/api/v1/ping", "/api/v1/whoami"] {
        let res = client.post(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "POST {path}");
        assert_eq!(res.headers()["allow"], "GET, HEAD", "POST {path}");
    }

    let res = client.delete(app.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = res.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("POST") && allow.contains("GET"), "{allow}");

    assert_eq!(
        client.get(app.url("/no/such/page")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

// ---- L8: health and database errors ----------------------------------------

fn execute(app: &TestApp, sql: &str) {
    use diesel::RunQueryDsl as _;
    diesel::sql_query(sql).execute(&mut *app.db()).unwrap();
}

#[actix_web::test]
async fn healthz_reports_a_database_that_refuses_writes() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);

    // Writes to the probe's table fail from now on (as on a full disk).
    execute(&app, "DROP TABLE health_probe");
    // The last answer is kept for a second: forget it rather than wait.
    app.state.health.forget().await;
    let res = app.get("/healthz").await;

    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
}

#[actix_web::test]
async fn a_key_lookup_that_fails_in_the_database_answers_503_not_401() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    app.state.verifier.forget_all();

    execute(&app, "ALTER TABLE api_keys RENAME TO api_keys_away");
    let res = app.api_get("/api/v1/whoami", &key).await;

    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    execute(&app, "ALTER TABLE api_keys_away RENAME TO api_keys");
    assert_eq!(app.api_get("/api/v1/whoami", &key).await.status(), StatusCode::OK);
}

// ---- the guard: several credentials ----------------------------------------

#[actix_web::test]
async fn two_authorization_headers_are_refused_even_if_one_is_valid() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let url = app.url("/api/v1/whoami");
    let bearer = format!("Bearer {key}");

    for (first, second) in [("authorization", "authorization"), ("x-api-key", "x-api-key")] {
        let value = |h: &str| {
            if h == "authorization" {
                bearer.clone()
            } else {
                key.clone()
            }
        };
        let mut headers = reqwest::header::HeaderMap::new();
        headers.append(first, value(first).parse().unwrap());
        headers.append(second, value(second).parse().unwrap());
        let res = Client::new().get(&url).headers(headers).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{first} twice");
        assert_eq!(res.text().await.unwrap(), r#"{"error":"invalid_token"}"#);
    }
    assert_eq!(app.api_get("/api/v1/whoami", &key).await.status(), StatusCode::OK);
}

// ---- durability -------------------------------------------------------------

#[actix_web::test]
async fn after_kill_9_every_acknowledged_key_works_and_every_acknowledged_delete_holds() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend_env();
    let env: Vec<(&str, &str)> = backend.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bin = Binary::start(dir.path(), &env).await;
    let client = browser();
    let (res, _) = bin
        .post_form(
            &client,
            "/register",
            "/register",
            &[
                ("username", "alice"),
                ("email", "alice@example.com"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let mut keys = Vec::new();
    for i in 0..20 {
        let (res, _) = bin
            .post_form(&client, "/keys/new", "/keys", &[("name", &format!("key {i}"))])
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        keys.push(new_key_in(&res.text().await.unwrap()).unwrap());
    }
    let (kept, deleted) = keys.split_at(12);
    for key in deleted {
        let (res, _) = bin
            .post_form(&client, "/keys", &format!("/keys/{}/delete", id_of(key)), &[])
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }

    let logs = bin.stop(); // SIGKILL: no graceful shutdown
    let bin = Binary::start(dir.path(), &env).await;
    let whoami = |key: &String| Client::new().get(bin.url("/api/v1/whoami")).bearer_auth(key).send();

    for key in kept {
        assert_eq!(whoami(key).await.unwrap().status(), StatusCode::OK, "{logs}");
    }
    for key in deleted {
        assert_eq!(whoami(key).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
}
