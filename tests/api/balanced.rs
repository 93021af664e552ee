//! Three real `keyward serve` processes on one PostgreSQL behind real
//! nginx as a round-robin load balancer (no stickiness): a user's whole
//! journey through the balancer, one instance SIGKILLed half-way
//! (docs/instances.md, "Behind a load balancer").

use std::time::{Duration, Instant};

use reqwest::{Client, Response, StatusCode};

use crate::balancer::Balanced;
use crate::helpers::*;

/// Calls through nginx in a row: with three instances in round robin and
/// nothing else in flight, each instance answers at least two of them.
const EVERY_INSTANCE: usize = 6;

/// The browser's side of the journey, all through nginx.
struct Journey<'a> {
    lb: &'a Balanced,
    browser: Client,
}

impl Journey<'_> {
    /// An answer that is not a redirect to /login (the session holds on
    /// every instance) and not a server error.
    fn checked(&self, step: &str, res: Response) -> Response {
        let status = res.status();
        assert!(
            !(status.is_redirection() && location(&res).starts_with("/login")),
            "{step}: sent back to /login ({status}); logs:\n{}",
            self.lb.logs()
        );
        assert!(!status.is_server_error(), "{step}: {status}; logs:\n{}", self.lb.logs());
        res
    }

    /// A GET of a whole URL: through nginx or from one instance directly.
    async fn get_url(&self, step: &str, url: &str) -> Response {
        let res = self.browser.get(url).send().await.expect("GET");
        self.checked(step, res)
    }

    async fn page(&self, step: &str, path: &str) -> String {
        self.page_url(step, &self.lb.url(path)).await
    }

    async fn page_url(&self, step: &str, url: &str) -> String {
        let res = self.get_url(step, url).await;
        assert_eq!(res.status(), StatusCode::OK, "{step}");
        res.text().await.unwrap()
    }

    /// Posts a form with the CSRF token of `form_page`, as it comes back.
    async fn send_form(&self, step: &str, form_page: &str, path: &str, fields: &[(&str, &str)]) -> Response {
        let token = csrf_in(&self.page(step, form_page).await);
        let mut all = fields.to_vec();
        all.push(("csrf_token", &token));
        self.browser
            .post(self.lb.url(path))
            .form(&all)
            .send()
            .await
            .expect("POST")
    }

    /// `send_form`, checked.
    async fn post(&self, step: &str, form_page: &str, path: &str, fields: &[(&str, &str)]) -> Response {
        let res = self.send_form(step, form_page, path, fields).await;
        self.checked(step, res)
    }

    /// The row of the key list for `key`, if listed.
    async fn row(&self, key: &str) -> Option<String> {
        self.row_in(&self.page("the key list", "/keys").await, key)
    }

    /// The same, from the instance at `base` directly (the session cookie
    /// is for 127.0.0.1, whatever the port).
    async fn row_on(&self, base: &str, key: &str) -> Option<String> {
        let html = self.page_url("the key list", &format!("{base}/keys")).await;
        self.row_in(&html, key)
    }

    fn row_in(&self, html: &str, key: &str) -> Option<String> {
        select(html, &format!(r#"tr[data-key-prefix="{}"]"#, prefix_of(key)))
            .into_iter()
            .next()
    }

    async fn create_key(&self, name: &str) -> String {
        let res = self
            .post(
                "create a key",
                "/keys/new",
                "/keys",
                &[("name", name), ("expires_in_days", ""), ("scopes", "read")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "create a key");
        new_key_in(&res.text().await.unwrap()).expect("the new key is shown")
    }

    async fn whoami(&self, key: &str) -> StatusCode {
        let res = Client::new()
            .get(self.lb.url("/api/v1/whoami"))
            .bearer_auth(key)
            .send()
            .await
            .expect("API call");
        self.checked("whoami", res).status()
    }

    /// `EVERY_INSTANCE` calls in a row, so every live instance answers.
    async fn whoami_everywhere(&self, key: &str) -> Vec<StatusCode> {
        let mut all = Vec::new();
        for _ in 0..EVERY_INSTANCE {
            all.push(self.whoami(key).await);
        }
        all
    }

    /// How long until `key` is refused by every instance: `EVERY_INSTANCE`
    /// refusals in a row. Fails past one second.
    async fn refused_everywhere_within_a_second(&self, what: &str, key: &str) -> Duration {
        let start = Instant::now();
        let mut in_a_row = 0;
        while in_a_row < EVERY_INSTANCE {
            match self.whoami(key).await {
                StatusCode::UNAUTHORIZED => in_a_row += 1,
                StatusCode::OK => in_a_row = 0,
                other => panic!("{what}: {other}"),
            }
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{what}: still accepted somewhere after 1 s; logs:\n{}",
                self.lb.logs()
            );
        }
        start.elapsed()
    }
}

#[actix_web::test]
async fn a_journey_through_nginx_and_three_instances_survives_losing_one() {
    let Some(lb) = Balanced::start("a_journey_through_nginx_and_three_instances_survives_losing_one").await else {
        return;
    };
    let journey = Journey {
        lb: &lb,
        browser: browser(),
    };
    let j = &journey;

    // Sign up and log out, then log in.
    let res = j
        .post(
            "register",
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
    assert_eq!(location(&res), "/keys");
    // The one redirect to /login that is expected.
    let res = j.send_form("log out", "/keys", "/logout", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "log out");
    assert_eq!(location(&res), "/login");
    let res = j
        .post(
            "log in",
            "/login",
            "/login",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "log in");
    assert_eq!(location(&res), "/keys");

    // Create a key; it is listed on every instance (each page load lands
    // on the next one) and works on every instance.
    let first = j.create_key("first").await;
    for _ in 0..3 {
        assert!(j.row(&first).await.is_some(), "listed");
    }
    // Used once, on instance 0 only: the first use of any key, so the
    // only one any instance has to write. Instance 0 writes it at its next
    // flush (every second here) and logs that flush once committed; the
    // others write nothing (and log no flush) and read the database. So
    // once instance 0 has logged a flush after the mark (taken before the
    // call: the flush may come before the answer is read), every instance
    // shows the use on /keys: one page load from each, no retry.
    let output = lb.output(0);
    let before_the_call = output.mark();
    let used = Instant::now();
    let direct = lb.base(0) + "/api/v1/whoami";
    let res = Client::new().get(direct).bearer_auth(&first).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    lb.flushed(0, before_the_call).await;
    println!(
        "instance 0 logged the flush of the use {:?} after the call",
        used.elapsed()
    );
    for base in lb.live() {
        let row = j.row_on(&base, &first).await.expect("listed");
        assert!(
            !cell(&row, "key-last-used").contains("never"),
            "last use not shown by {base} after instance 0 flushed it: {row}; logs:\n{}",
            lb.logs()
        );
    }
    let statuses = j.whoami_everywhere(&first).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");

    // Rotate it with no grace: the old key is refused everywhere within a
    // second, the new one works everywhere.
    let id = id_of(&first);
    let res = j
        .post(
            "rotate",
            &format!("/keys/{id}"),
            &format!("/keys/{id}/rotate"),
            &[("grace_minutes", "0"), ("expires_in_days", "")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK, "rotate");
    let rotated = new_key_in(&res.text().await.unwrap()).expect("the new key is shown");
    let took = j.refused_everywhere_within_a_second("the rotated key", &first).await;
    println!("rotated key refused through nginx by every instance after {took:?}");
    let statuses = j.whoami_everywhere(&rotated).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");

    // One instance dies (SIGKILL: no goodbye, no last flush) mid-journey.
    lb.kill(1);

    // Nothing acknowledged is lost: the key made before is listed and works
    // on the two left, and the session holds.
    assert!(j.row(&rotated).await.is_some(), "still listed");
    let statuses = j.whoami_everywhere(&rotated).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    // Logging in works on the two that are left.
    log_in_anew(&lb).await;
    // The rest of the journey on them.
    let second = j.create_key("second").await;
    assert!(j.row(&second).await.is_some());
    let statuses = j.whoami_everywhere(&second).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");

    // Delete the rotated key: refused everywhere within a second.
    let id = id_of(&rotated);
    let path = format!("/keys/{id}/delete");
    let res = j.post("delete", &path, &path, &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "delete");
    assert_eq!(location(&res), "/keys");
    let took = j.refused_everywhere_within_a_second("the deleted key", &rotated).await;
    println!("deleted key refused through nginx by every live instance after {took:?}");
    assert!(j.row(&rotated).await.is_none(), "gone from the list");
    assert!(j.row(&second).await.is_some(), "the other key stays");
    assert_eq!(j.whoami(&second).await, StatusCode::OK);

    // nginx did meet the dead instance, and passed those requests on to
    // the next one: no answer above was an error.
    assert!(
        lb.nginx.error_log().contains("connect() failed"),
        "no request went to the dead instance; nginx log:\n{}",
        lb.nginx.error_log()
    );

    // Each survivor, asked directly, agrees.
    for base in lb.live() {
        let status = |key: &str| {
            let url = format!("{base}/api/v1/whoami");
            let key = key.to_owned();
            async move { Client::new().get(url).bearer_auth(key).send().await.unwrap().status() }
        };
        assert_eq!(status(&rotated).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(&second).await, StatusCode::OK);
    }
}

/// A new browser logging alice in through the balancer.
async fn log_in_anew(lb: &Balanced) -> Client {
    let client = browser();
    let page = client.get(lb.url("/login")).send().await.unwrap().text().await.unwrap();
    let token = csrf_in(&page);
    let res = client
        .post(lb.url("/login"))
        .form(&[("username", "alice"), ("password", PASSWORD), ("csrf_token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "log in after the kill");
    assert_eq!(location(&res), "/keys");
    client
}
