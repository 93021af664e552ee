//! What a user types when creating a key, checked: its name, its scopes
//! and its lifetime in days (docs/keys.md).

/// A key's name: 1-64 characters after trimming, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s = input.trim();
        if s.is_empty() {
            return Err("Give the key a name, like \"production server\".");
        }
        if s.chars().count() > 64 {
            return Err("Key names are at most 64 characters long.");
        }
        if s.chars().any(char::is_control) {
            return Err("Key names cannot contain control characters.");
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The scopes chosen for a key, each one of the configured scopes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Scopes(Vec<String>);

impl Scopes {
    pub fn parse(chosen: &[String], allowed: &[String]) -> Result<Self, &'static str> {
        let mut out: Vec<String> = Vec::new();
        for c in chosen {
            if !allowed.contains(c) {
                return Err("Choose scopes from the list.");
            }
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        // Keep the configured order, whatever order the form sent.
        out.sort_by_key(|s| allowed.iter().position(|a| a == s));
        Ok(Self(out))
    }
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// Days until expiry: empty means never, else 1-3650.
pub fn parse_expiry(input: &str) -> Result<Option<u32>, &'static str> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(d) if (1..=3650).contains(&d) => Ok(Some(d)),
        _ => Err("Enter a whole number of days from 1 to 3650, or leave it empty for no expiry."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_trimmed_and_bounded() {
        assert_eq!(KeyName::parse("  ci ").unwrap().as_str(), "ci");
        assert!(KeyName::parse("   ").is_err());
        assert!(KeyName::parse(&"n".repeat(65)).is_err());
        assert!(KeyName::parse("a\nb").is_err());
    }

    #[test]
    fn scopes_must_come_from_the_allowed_list() {
        let allowed: Vec<String> = ["keys:read", "read", "write"].iter().map(|s| s.to_string()).collect();
        let s = Scopes::parse(&["write".into(), "keys:read".into(), "write".into()], &allowed).unwrap();
        assert_eq!(s.as_slice(), ["keys:read", "write"]);
        assert!(Scopes::parse(&["admin".into()], &allowed).is_err());
    }

    #[test]
    fn expiry_is_empty_or_a_day_count() {
        assert_eq!(parse_expiry(""), Ok(None));
        assert_eq!(parse_expiry("30"), Ok(Some(30)));
        for bad in ["0", "-1", "abc", "3651", "1.5"] {
            assert!(parse_expiry(bad).is_err());
        }
    }
}
