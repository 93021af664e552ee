//! The portal with the keyboard alone: on every page, Tab reaches every link,
//! button and field, each with a visible focus, and a user who never touches
//! a mouse can sign up, create, copy and delete a key, fix form errors,
//! change their password and log out.

use fantoccini::key::Key;

use crate::app::PASSWORD;
use crate::browser::{in_browser, Browser};

/// Tabs through the whole page: every interactive element must receive the
/// focus, visibly.
async fn walk(b: &Browser) {
    let page = b.path().await;
    let elements = b.mark_interactive().await;
    assert!(!elements.is_empty(), "nothing to focus on {page}");
    let mut reached = vec![false; elements.len()];
    // One round through the page, plus the browser's own stop and a margin.
    for _ in 0..elements.len() * 2 + 4 {
        b.press(Key::Tab).await;
        let focus = b.focus().await;
        if let Some(i) = focus.index {
            assert!(focus.visible, "{page}: the focus on {} cannot be seen", focus.describe);
            reached[i] = true;
        }
        if reached.iter().all(|r| *r) {
            break;
        }
    }
    let missed: Vec<&String> = elements
        .iter()
        .zip(&reached)
        .filter(|(_, r)| !**r)
        .map(|(e, _)| e)
        .collect();
    assert!(missed.is_empty(), "{page}: Tab never reaches {missed:?}");
}

/// Presses Tab until the element matching `css` has a visible focus. (An
/// element focused by `autofocus` while the focus is in the browser's own
/// controls, after a walk, is reached by Tab like any other.)
async fn tab_to(b: &Browser, css: &str) {
    let mut seen_invisible = None;
    for _ in 0..60 {
        if b.focused_matches(css).await {
            let focus = b.focus().await;
            if focus.visible {
                return;
            }
            seen_invisible = Some(focus.describe);
        }
        b.press(Key::Tab).await;
    }
    match seen_invisible {
        Some(el) => panic!("{}: the focus on {el} cannot be seen", b.path().await),
        None => panic!("{}: Tab never reaches {css}", b.path().await),
    }
}

/// Presses Enter and waits for the next page to show `then`.
async fn enter_through(b: &Browser, then: &str) {
    b.mark_page().await;
    b.press(Key::Enter).await;
    b.wait_for_new_page().await;
    b.find(then).await;
}

/// The error message tied to the field `id` by `aria-describedby`.
async fn described_error(b: &Browser, id: &str) -> String {
    let text = b
        .run(
            "const field = document.getElementById(arguments[0]);
             if (!field || field.getAttribute('aria-invalid') !== 'true') return '';
             return (field.getAttribute('aria-describedby') || '').split(/\\s+/)
               .map(id => document.getElementById(id))
               .filter(el => el && el.classList.contains('field-error') || el && el.classList.contains('form-error'))
               .map(el => el.textContent.trim()).join(' ');",
            vec![id.into()],
        )
        .await;
    text.as_str().unwrap_or_default().to_owned()
}

#[actix_web::test]
async fn every_page_can_be_used_with_the_keyboard_alone() {
    in_browser("keyboard", |app, b| async move {
        // Visitor pages.
        for page in ["/login", "/password/forgot", "/register"] {
            b.visit(page).await;
            walk(&b).await;
        }

        // Sign up, with a mistake first: the message is tied to its field.
        b.visit("/register").await;
        tab_to(&b, "#username").await;
        b.type_text("bob").await;
        b.press(Key::Tab).await;
        b.type_text("bob@example.com").await;
        b.press(Key::Tab).await;
        b.type_text(PASSWORD).await;
        b.press(Key::Tab).await;
        b.type_text("not the same passphrase").await;
        enter_through(&b, "#password_confirm-error").await;
        b.assert_clean_console_but_status(422).await;
        assert!(described_error(&b, "password_confirm").await.contains("do not match"));
        assert!(
            b.focused_matches("#password").await,
            "the focus waits on the field to fix"
        );
        b.type_text(PASSWORD).await;
        b.press(Key::Tab).await;
        b.type_text(PASSWORD).await;
        enter_through(&b, ".empty").await;
        b.assert_clean_console().await;
        assert_eq!(b.path().await, "/keys");
        walk(&b).await;

        // Create a key; a missing name is reported next to the field.
        tab_to(&b, ".empty a[href='/keys/new']").await;
        enter_through(&b, "#name").await;
        b.assert_clean_console().await;
        walk(&b).await;
        tab_to(&b, "#name").await;
        enter_through(&b, "#name-error").await;
        b.assert_clean_console_but_status(422).await;
        assert!(
            !described_error(&b, "name").await.is_empty(),
            "the error is tied to the name field"
        );
        assert!(b.focused_matches("#name").await, "the focus waits on the field to fix");
        b.type_text("deploy bot").await;
        tab_to(&b, "input[name=scopes][value=write]").await;
        b.press(Key::Space).await;
        tab_to(&b, "#expires_in_days").await;
        b.type_text("30").await;
        enter_through(&b, "#new-key").await;
        b.assert_clean_console().await;
        let key = b.text("#new-key").await;
        walk(&b).await;

        // Copy it, then go back to the list.
        tab_to(&b, "button[data-copy-target]").await;
        b.press(Key::Enter).await;
        b.wait_for_text("button[data-copy-target]", "Copied").await;
        assert_eq!(b.clipboard().await, key);
        tab_to(&b, "#done").await;
        enter_through(&b, "table.keys").await;
        b.assert_clean_console().await;
        walk(&b).await;

        // Delete it, confirming on the next page.
        tab_to(&b, "tr[data-key-id] a[href$='/delete']").await;
        enter_through(&b, "main form button.danger").await;
        b.assert_clean_console().await;
        walk(&b).await;
        tab_to(&b, "main form button.danger").await;
        enter_through(&b, ".flash").await;
        b.assert_clean_console().await;
        assert!(!b.has("tr[data-key-id]").await, "the key is gone");
        assert_eq!(app.call_api(&key).await, 401);

        // The account page: a wrong current password is reported on its field.
        tab_to(&b, ".main-nav a[href='/account']").await;
        enter_through(&b, "#current_password").await;
        b.assert_clean_console().await;
        walk(&b).await;
        tab_to(&b, "#current_password").await;
        b.type_text("not my password").await;
        b.press(Key::Tab).await;
        b.type_text("a brand new passphrase").await;
        b.press(Key::Tab).await;
        b.type_text("a brand new passphrase").await;
        enter_through(&b, "#current_password-error").await;
        b.assert_clean_console_but_status(422).await;
        assert!(described_error(&b, "current_password")
            .await
            .contains("current password is not correct"));

        // A page that does not exist still has the whole layout.
        b.client.goto(&b.url("/no/such/page")).await.expect("navigation");
        b.assert_clean_console_but_status(404).await;
        walk(&b).await;

        // Log out; a reset link's page is usable too.
        b.visit("/keys").await;
        tab_to(&b, "form[action='/logout'] button").await;
        enter_through(&b, ".flash").await;
        b.assert_clean_console().await;
        assert_eq!(b.path().await, "/login");
        tab_to(&b, "a[href='/password/forgot']").await;
        enter_through(&b, "#email").await;
        b.type_text("bob@example.com").await;
        enter_through(&b, ".success-head").await;
        b.assert_clean_console().await;
        walk(&b).await;
        b.client
            .goto(&app.reset_link().await)
            .await
            .expect("open the emailed link");
        b.assert_clean_console().await;
        walk(&b).await;

        // Log in with Enter.
        b.visit("/login").await;
        tab_to(&b, "#username").await;
        b.type_text("bob").await;
        b.press(Key::Tab).await;
        b.type_text(PASSWORD).await;
        enter_through(&b, ".empty").await;
        b.assert_clean_console().await;
        assert_eq!(b.path().await, "/keys");
    })
    .await;
}
