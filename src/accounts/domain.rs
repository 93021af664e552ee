//! Account newtypes: once you hold one, it is valid.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// 3-32 characters of `a-z 0-9 _ . -`, stored lower-case so names are
/// unique case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s = input.trim().to_ascii_lowercase();
        if s.chars().count() < 3 {
            return Err("Usernames are at least 3 characters long.");
        }
        if s.chars().count() > 32 {
            return Err("Usernames are at most 32 characters long.");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
        {
            return Err("Use only letters, digits, '_', '.' and '-'.");
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A plausible email address, stored lower-case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s = input.trim().to_lowercase();
        let msg = "Enter a valid email address, like name@example.com.";
        if s.is_empty() || s.len() > 254 {
            return Err(msg);
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(msg);
        };
        let bad_char = |c: char| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c);
        if local.is_empty()
            || local.len() > 64
            || domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || domain.contains('@')
            || s.chars().any(bad_char)
        {
            return Err(msg);
        }
        // The mailer's own rules too (dots at the ends or doubled in the
        // local part, hyphens at the ends of a label): an address it would
        // refuse must not be accepted here and fail later.
        if s.parse::<lettre::Address>().is_err()
            || domain
                .split('.')
                .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
        {
            return Err(msg);
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;

/// A password that meets the rules: 8-128 characters, never truncated, no
/// composition rules, not one of the most common passwords, not only
/// blanks or invisible characters, not the username. Held in Unicode NFC,
/// so the same password typed on systems that compose accents differently
/// hashes the same. `Debug` is redacted.
#[derive(Clone, Debug)]
pub struct Password(SecretString);

impl Password {
    /// Checks a new password for the account `username`.
    pub fn parse(input: &str, username: &str) -> Result<Self, &'static str> {
        let input = normalize(input);
        let n = input.chars().count();
        if n < PASSWORD_MIN {
            return Err("Passwords are at least 8 characters long.");
        }
        if n > PASSWORD_MAX {
            return Err("Passwords are at most 128 characters long.");
        }
        if input.chars().all(is_invisible) {
            return Err("A password needs visible characters, not only spaces or invisible ones.");
        }
        if input.trim().eq_ignore_ascii_case(username.trim()) {
            return Err("Your password must not be your username.");
        }
        if super::common_passwords::is_common(&input) {
            return Err("This password is one of the most common passwords; choose another.");
        }
        Ok(Self(input.into()))
    }
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A password as it is hashed and checked: Unicode NFC.
pub fn normalize(password: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    if unicode_normalization::is_nfc_quick(password.chars()) == unicode_normalization::IsNormalized::Yes {
        password.to_owned()
    } else {
        password.nfc().collect()
    }
}

/// Blank or invisible: white space, controls, and the format and filler
/// characters that render as nothing.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{2800}'
            | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(Username::parse(" Alice ").unwrap().as_str(), "alice");
        assert!(Username::parse("al").is_err());
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse("al\r\nice").is_err());
        assert!(Username::parse("a.b-c_9").is_ok());
    }

    #[test]
    fn emails_are_checked() {
        assert!(Email::parse("a@example.com").is_ok());
        for bad in [
            "",
            "a",
            "a@b",
            "@x.com",
            "a@.com",
            "a b@x.com",
            "a@x..com",
            "a@x\n.com",
            "a\r@x.com",
            "a..b@x.com",
            ".a@x.com",
            "a.@x.com",
            "a@-x.com",
            "a@x-.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_have_length_limits_without_truncation() {
        assert!(Password::parse("short", "bob").is_err());
        assert!(Password::parse(&"x".repeat(129), "bob").is_err());
        assert!(Password::parse(&"é".repeat(128), "bob").is_ok());
        assert!(format!("{:?}", Password::parse("a long secret phrase", "bob").unwrap()).contains("REDACTED"));
    }

    #[test]
    fn blank_invisible_and_username_passwords_are_refused() {
        assert!(Password::parse("          ", "bob").is_err());
        assert!(Password::parse(
            "\u{200B}\u{200B}\u{200B}\u{200B}\u{200B}\u{200B}\u{200B}\u{200B}",
            "bob"
        )
        .is_err());
        assert!(Password::parse(" \u{3164}\u{FEFF}\t\u{2800}   \u{00A0} ", "bob").is_err());
        assert!(Password::parse("alice.smith", "alice.smith").is_err());
        assert!(Password::parse("Alice.Smith", "alice.smith").is_err());
        assert!(Password::parse("alice.smith!", "alice.smith").is_ok());
    }

    #[test]
    fn passwords_are_held_in_nfc() {
        let composed = Password::parse("caf\u{e9} au lait", "bob").unwrap();
        let decomposed = Password::parse("cafe\u{301} au lait", "bob").unwrap();
        assert_eq!(composed.expose(), decomposed.expose());
    }
}
