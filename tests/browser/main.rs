//! The portal in a real browser: headless Chromium driven over WebDriver.
//!
//! - `journey`: a user's whole story, from signing up to resetting a
//!   forgotten password, clicking what a user clicks.
//! - `balanced`: the journey's key steps through nginx in front of three
//!   instances on one PostgreSQL.
//! - `keyboard`: every page walked with Tab alone (each control gets a
//!   visible focus) and used with the keyboard alone.
//!
//! After every page the browser console must be free of errors and of
//! Content-Security-Policy violations.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them each test
//! prints `skipped: …` and passes. `KEYWARD_SCREENSHOTS=1` also refreshes the
//! README's pictures in `docs/screenshots/`.

mod app;
mod balanced;
#[path = "../api/balancer.rs"]
mod balancer;
mod browser;
// One harness for both suites: the browser's app is the API suite's.
#[path = "../api/helpers.rs"]
mod helpers;
mod journey;
mod keyboard;
#[path = "../api/mailbox.rs"]
mod mailbox;
#[path = "../api/pg.rs"]
mod pg;
mod rotation;
mod two_factor;
