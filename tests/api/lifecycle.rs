//! A key after its creation: its page, edits, rotation with a grace
//! period, retirement, usage counters, the activity log and the mails.

use chrono::Duration;
use reqwest::{Client, StatusCode};

use crate::helpers::*;
use crate::mailbox::{messages_in, wait_for_messages};

fn outbox(app: &TestApp) -> std::path::PathBuf {
    app.dir.path().join("outbox")
}

fn attr(row: &str, name: &str) -> Option<String> {
    // A lone <tr> is only kept by the parser inside a table.
    attr_of(&format!("<table>{row}</table>"), "tr", name)
}

async fn rotate(app: &TestApp, key: &str, grace: &str) -> reqwest::Response {
    app.post_form(
        &format!("/keys/{}/rotate", id_of(key)),
        &[("grace_minutes", grace), ("expires_in_days", "")],
    )
    .await
}

async fn whoami(app: &TestApp, key: &str) -> StatusCode {
    app.api_get("/api/v1/whoami", key).await.status()
}

#[actix_web::test]
async fn the_key_page_shows_the_key_its_chart_and_forms_and_is_private() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("billing", &["read"]).await;

    let page = app.get_html(&format!("/keys/{}", id_of(&key))).await;

    assert!(page.contains("billing"));
    assert!(page.contains(&prefix_of(&key)));
    assert!(page.contains(r#"<svg id="usage-chart""#));
    assert!(page.contains(r#"action="/keys/"#) && page.contains("/rotate"));
    assert!(!page.contains(&secret_of(&key)), "never the secret");
    let list = app.get_html("/keys").await;
    assert!(
        list.contains(&format!(r#"href="/keys/{}""#, id_of(&key))),
        "the list links to it"
    );

    let bob = app.new_user("bob").await;
    for path in [
        format!("/keys/{}", id_of(&key)),
        "/keys/nonsense!".into(),
        "/keys/AAAAAAAA".into(),
    ] {
        assert_eq!(
            app.get_with(&bob, &path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let res = app
        .post_form_with(
            &bob,
            &format!("/keys/{}/rotate", id_of(&key)),
            &[("grace_minutes", "0")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(whoami(&app, &key).await, StatusCode::OK, "unchanged");
}

#[actix_web::test]
async fn an_edit_takes_effect_on_the_next_call() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &["read", "keys:read"]).await;
    assert_eq!(app.api_get("/api/v1/keys", &key).await.status(), StatusCode::OK);

    let res = app
        .post_form(
            &format!("/keys/{}", id_of(&key)),
            &[
                ("name", "deploy"),
                ("scopes", "read"),
                ("allowed_ips", ""),
                ("rate_limit_per_minute", ""),
            ],
        )
        .await;

    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let me: serde_json::Value = app.api_get("/api/v1/whoami", &key).await.json().await.unwrap();
    assert_eq!(me["key"]["name"], "deploy");
    assert_eq!(me["key"]["scopes"], serde_json::json!(["read"]));
    assert_eq!(app.api_get("/api/v1/keys", &key).await.status(), StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn an_edit_to_a_name_in_use_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    app.create_key("taken", &[]).await;
    let key = app.create_key("mine", &["read"]).await;

    let res = app
        .post_form(
            &format!("/keys/{}", id_of(&key)),
            &[("name", "taken"), ("scopes", "write")],
        )
        .await;

    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("already have a key with this name"));
    let me: serde_json::Value = app.api_get("/api/v1/whoami", &key).await.json().await.unwrap();
    assert_eq!(me["key"]["name"], "mine");
    assert_eq!(me["key"]["scopes"], serde_json::json!(["read"]));
}

#[actix_web::test]
async fn a_rotated_key_works_through_its_grace_period_and_then_is_refused() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let old = app.create_key("ci", &["read"]).await;

    let res = rotate(&app, &old, "60").await;

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let new = new_key_in(&res.text().await.unwrap()).expect("the new key, shown once");
    assert_ne!(new, old);
    assert_eq!(whoami(&app, &old).await, StatusCode::OK, "old key in its grace period");
    assert_eq!(whoami(&app, &new).await, StatusCode::OK);
    let me: serde_json::Value = app.api_get("/api/v1/whoami", &new).await.json().await.unwrap();
    assert_eq!(me["key"]["name"], "ci", "same name");
    assert_eq!(me["key"]["scopes"], serde_json::json!(["read"]), "same scopes");

    let row = app.key_row(&app.client, &prefix_of(&old)).await.unwrap();
    assert_eq!(attr(&row, "data-key-state").as_deref(), Some("retiring"));
    let retires = attr(&row, "data-retires-at").unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(&retires).is_ok(), "{retires}");
    let new_row = app.key_row(&app.client, &prefix_of(&new)).await.unwrap();
    assert_eq!(attr(&new_row, "data-key-state").as_deref(), Some("active"));

    app.state.verifier.skew_clock(Duration::minutes(61));

    assert_eq!(whoami(&app, &old).await, StatusCode::UNAUTHORIZED, "grace over");
    assert_eq!(whoami(&app, &new).await, StatusCode::OK);
}

#[actix_web::test]
async fn a_rotation_without_grace_refuses_the_old_key_at_once() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let old = app.create_key("ci", &[]).await;
    assert_eq!(whoami(&app, &old).await, StatusCode::OK);

    let res = rotate(&app, &old, "0").await;

    let new = new_key_in(&res.text().await.unwrap()).unwrap();
    assert_eq!(whoami(&app, &old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(whoami(&app, &new).await, StatusCode::OK);
}

#[actix_web::test]
async fn retire_now_ends_the_grace_period() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let old = app.create_key("ci", &[]).await;
    rotate(&app, &old, "600").await;
    assert_eq!(whoami(&app, &old).await, StatusCode::OK);

    let res = app.post_form(&format!("/keys/{}/retire", id_of(&old)), &[]).await;

    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(whoami(&app, &old).await, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn bad_rotations_get_a_message_and_change_nothing() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    for grace in ["", "abc", "-1", "10081", "1e3"] {
        let res = rotate(&app, &key, grace).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{grace:?}");
        assert!(
            res.text().await.unwrap().contains("from 0 to 10080 minutes"),
            "{grace:?}"
        );
    }
    assert_eq!(app.key_count(), 1);

    // Already retiring: rotate its successor instead.
    rotate(&app, &key, "60").await;
    let res = rotate(&app, &key, "60").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.key_count(), 2);

    // Deleted: gone.
    let other = app.create_key("other", &[]).await;
    app.post_form(&format!("/keys/{}/delete", id_of(&other)), &[]).await;
    assert_eq!(rotate(&app, &other, "60").await.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn calls_and_used_scopes_are_counted_and_shown_after_a_flush() {
    let app = spawn_app_with(|s| s.last_used_flush_seconds = 3600).await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &["keys:read", "read"]).await;
    for _ in 0..5 {
        assert_eq!(whoami(&app, &key).await, StatusCode::OK);
    }
    for _ in 0..2 {
        assert_eq!(app.api_get("/api/v1/keys", &key).await.status(), StatusCode::OK);
    }
    let res = Client::new()
        .get(app.url("/auth/verify?scope=read"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    app.state.verifier.flush_last_used().await.unwrap();

    let page = app.get_html(&format!("/keys/{}", id_of(&key))).await;
    assert!(page.contains("8 accepted calls in the last 7 days"), "{page}");
    let used = page.split(r#"class="key-scopes-used""#).nth(1).unwrap();
    let used = used.split("</p>").next().unwrap();
    assert!(used.contains("keys:read") && used.contains(">read<"), "{used}");
    assert!(page.contains("127.0.0.1"), "last used address");
    let rows: serde_json::Value = app.api_get("/api/v1/keys", &key).await.json().await.unwrap();
    assert_eq!(rows["keys"][0]["last_used_address"], "127.0.0.1");
    assert_eq!(rows["keys"][0]["state"], "active");
}

#[actix_web::test]
async fn the_activity_log_lists_a_journey_newest_first() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    app.post_form(
        &format!("/keys/{}", id_of(&key)),
        &[("name", "ci2"), ("scopes", "read")],
    )
    .await;
    let res = rotate(&app, &key, "5").await;
    let new = new_key_in(&res.text().await.unwrap()).unwrap();
    app.post_form(&format!("/keys/{}/delete", id_of(&new)), &[]).await;
    app.logout_with(&app.client).await;
    app.login_with(&browser(), "alice", "wrong password").await;
    app.login_with(&app.client, "alice", PASSWORD).await;

    let page = app.get_html("/account/activity").await;

    let events = attrs_of(&page, "tr[data-event]", "data-event");
    assert_eq!(
        events,
        [
            "login",
            "login_failed",
            "logout",
            "key_deleted",
            "key_rotated",
            "key_updated",
            "key_created"
        ],
        "newest first"
    );
    assert!(page.contains(&prefix_of(&key)));
    assert!(page.contains("127.0.0.1"));
    let bob = app.new_user("bob").await;
    let theirs = app.get_with(&bob, "/account/activity").await.text().await.unwrap();
    assert!(!theirs.contains(&prefix_of(&key)), "only one's own events");
}

#[actix_web::test]
async fn the_owner_is_mailed_when_a_key_is_created_rotated_or_deleted() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let res = rotate(&app, &key, "60").await;
    let new = new_key_in(&res.text().await.unwrap()).unwrap();
    app.post_form(&format!("/keys/{}/delete", id_of(&new)), &[]).await;

    let mails = wait_for_messages(&outbox(&app), 3).await;

    assert_eq!(mails.len(), 3);
    for (mail, what) in mails.iter().zip(["was created", "was rotated", "was deleted"]) {
        assert!(mail.contains("To: alice@example.com"), "{mail}");
        assert!(mail.contains(what), "{what}: {mail}");
        assert!(!mail.contains(&secret_of(&key)) && !mail.contains(&secret_of(&new)));
    }
    assert!(mails[0].contains(&prefix_of(&key)) && mails[0].contains("127.0.0.1"));
    assert!(mails[1].contains(&prefix_of(&new)));
}

#[actix_web::test]
async fn expiry_reminders_go_out_once() {
    let app = spawn_app_with(|s| s.reminder_seconds = 3600).await;
    app.signed_up("alice").await;
    let (status, _) = app.create_key_with(&app.client, "short-lived", &[], "1").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.create_key_with(&app.client, "long-lived", &[], "30").await;
    assert_eq!(status, StatusCode::OK);
    let before = wait_for_messages(&outbox(&app), 2).await.len();

    let now = keyward::time::now();
    let sent = keyward::notices::send_due_reminders(&app.state, now).await.unwrap();
    let again = keyward::notices::send_due_reminders(&app.state, now + Duration::minutes(5))
        .await
        .unwrap();

    assert_eq!((sent, again), (1, 0));
    let mails = wait_for_messages(&outbox(&app), before + 1).await;
    assert_eq!(mails.len(), before + 1);
    let reminder = mails.iter().find(|m| m.contains("expires tomorrow")).unwrap();
    assert!(reminder.contains("short-lived"));
    // 23 days on, the long-lived key is 7 days from expiry: one mail.
    let later = now + Duration::days(23);
    assert_eq!(
        keyward::notices::send_due_reminders(&app.state, later).await.unwrap(),
        1
    );
    assert_eq!(
        keyward::notices::send_due_reminders(&app.state, later).await.unwrap(),
        0
    );
    app.state.mailer.idle().await;
    assert_eq!(messages_in(&outbox(&app)).len(), before + 2);
}

#[actix_web::test]
async fn a_retiring_key_still_in_use_in_its_last_hour_warns_its_owner_once() {
    let app = spawn_app_with(|s| s.reminder_seconds = 3600).await;
    app.signed_up("alice").await;
    let old = app.create_key("ci", &[]).await;
    rotate(&app, &old, "30").await;
    assert_eq!(whoami(&app, &old).await, StatusCode::OK);
    app.state.verifier.flush_last_used().await.unwrap();
    let before = wait_for_messages(&outbox(&app), 2).await.len();

    let now = keyward::time::now();
    assert_eq!(keyward::notices::send_due_reminders(&app.state, now).await.unwrap(), 1);
    assert_eq!(keyward::notices::send_due_reminders(&app.state, now).await.unwrap(), 0);

    let mails = wait_for_messages(&outbox(&app), before + 1).await;
    assert!(mails
        .iter()
        .any(|m| m.contains("still being used") && m.contains(&prefix_of(&old))));
}

#[actix_web::test]
async fn the_api_list_carries_state_and_restrictions() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let reader = app.create_key("reader", &["keys:read"]).await;
    rotate(&app, &reader, "60").await;
    let res = app
        .post_form(
            "/keys",
            &[
                ("name", "limited"),
                ("allowed_ips", "10.0.0.0/8, 2001:db8::1"),
                ("rate_limit_per_minute", "100"),
            ],
        )
        .await;
    let limited = new_key_in(&res.text().await.unwrap()).unwrap();

    let all: serde_json::Value = app.api_get("/api/v1/keys", &reader).await.json().await.unwrap();

    let find = |id: &str| {
        all["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .cloned()
            .unwrap()
    };
    let old = find(&id_of(&reader));
    assert_eq!(old["state"], "retiring");
    assert!(old["retires_at"].is_string());
    let l = find(&id_of(&limited));
    assert_eq!(l["state"], "active");
    assert!(l["retires_at"].is_null());
    assert_eq!(l["allowed_ips"], serde_json::json!(["10.0.0.0/8", "2001:db8::1/128"]));
    assert_eq!(l["rate_limit_per_minute"], 100);
}

#[actix_web::test]
async fn uses_recorded_before_an_edit_or_a_rotation_are_kept() {
    let app = spawn_app_with(|s| s.last_used_flush_seconds = 3600).await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &["read"]).await;
    for _ in 0..3 {
        assert_eq!(whoami(&app, &key).await, StatusCode::OK);
    }

    app.post_form(&format!("/keys/{}", id_of(&key)), &[("name", "ci"), ("scopes", "read")])
        .await;
    rotate(&app, &key, "60").await;
    app.state.verifier.flush_last_used().await.unwrap();

    let page = app.get_html(&format!("/keys/{}", id_of(&key))).await;
    assert!(page.contains("3 accepted calls in the last 7 days"), "{page}");
    let row = app.key_row(&app.client, &prefix_of(&key)).await.unwrap();
    assert!(!cell(&row, "key-last-used").contains("never"));
}

#[actix_web::test]
async fn this_hours_calls_are_drawn_in_the_last_bar() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let hour = || keyward::time::now().format("%a %d %b %H:00").to_string();
    let before = hour();
    assert_eq!(whoami(&app, &key).await, StatusCode::OK);
    let after = hour();

    let page = app.get_html(&format!("/keys/{}", id_of(&key))).await;

    let svg = page.split(r#"<svg id="usage-chart""#).nth(1).unwrap();
    let svg = svg.split("</svg>").next().unwrap();
    assert!(svg.contains(r#"<rect class="bar" x="668""#), "{svg}");
    // (The call may straddle the turn of an hour.)
    assert!(
        svg.contains(&format!("{before} UTC: 1 call")) || svg.contains(&format!("{after} UTC: 1 call")),
        "{before}: {svg}"
    );
}

#[actix_web::test]
async fn a_chain_of_rotations_cannot_get_round_the_cap_on_keys() {
    let app = spawn_app_with(|s| s.max_keys_per_user = 2).await;
    app.signed_up("alice").await;
    let mut key = app.create_key("ci", &[]).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let res = rotate(&app, &key, "600").await;
        statuses.push(res.status());
        if res.status() == StatusCode::OK {
            key = new_key_in(&res.text().await.unwrap()).unwrap();
        }
    }

    assert_eq!(statuses[..3], [StatusCode::OK, StatusCode::OK, StatusCode::OK]);
    assert_eq!(statuses[3], StatusCode::UNPROCESSABLE_ENTITY, "{statuses:?}");
    assert_eq!(app.key_count(), 4);
}
