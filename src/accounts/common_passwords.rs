//! The refused-password list (docs/accounts.md, "Passwords").
//!
//! `common-passwords.txt` is the 20,000-entry list Django ships
//! (django/contrib/auth/common-passwords.txt.gz, BSD-3-Clause, derived from
//! Royce Williams' compilation of breached passwords), in full and in order
//! of frequency. Matching is case-insensitive, as in Django.

use std::collections::HashSet;
use std::sync::OnceLock;

static LIST: &str = include_str!("common-passwords.txt");

fn set() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| LIST.lines().map(str::trim).filter(|l| !l.is_empty()).collect())
}

pub fn is_common(password: &str) -> bool {
    set().contains(password.trim().to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_most_common_passwords_are_known() {
        assert!(super::is_common("password"));
        assert!(super::is_common("Password1"));
        assert!(super::is_common("12345678"));
        assert!(super::is_common("qwertyuiop"));
        assert!(!super::is_common("correct horse battery staple 42"));
        assert!(super::set().len() >= 10_000);
    }
}
