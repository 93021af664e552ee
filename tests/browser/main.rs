//! The portal in a real browser: headless Chromium driven over WebDriver.
//!
//! - `journey`: a user's whole story, from signing up to resetting a
//!   forgotten password, clicking what a user clicks.
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
mod browser;
mod journey;
mod keyboard;
mod rotation;
mod two_factor;
