//! The texts of the mails about accounts and revoked keys, as askama
//! templates in `templates/mail/` (plain text: nothing is escaped). Mail
//! about key changes and reminders is `crate::notices`'.

use askama::Template;

/// A reset link (`/password/forgot`).
#[derive(Template)]
#[template(path = "mail/reset.txt")]
pub struct Reset<'a> {
    pub username: &'a str,
    pub minutes: u64,
    pub link: &'a str,
}

/// The password was changed or reset.
#[derive(Template)]
#[template(path = "mail/password_changed.txt")]
pub struct PasswordChanged<'a> {
    pub username: &'a str,
    pub base: &'a str,
}

/// Something changed on the account (two-factor on or off, ...).
#[derive(Template)]
#[template(path = "mail/account_notice.txt")]
pub struct AccountNotice<'a> {
    pub username: &'a str,
    pub what: &'a str,
    pub more: &'a str,
    pub base: &'a str,
}

/// A link to confirm a new address, sent to that address.
#[derive(Template)]
#[template(path = "mail/email_confirm.txt")]
pub struct EmailConfirm<'a> {
    pub username: &'a str,
    pub minutes: u64,
    pub link: &'a str,
}

/// The address changed, sent to the old one.
#[derive(Template)]
#[template(path = "mail/email_changed.txt")]
pub struct EmailChanged<'a> {
    pub username: &'a str,
    pub old: &'a str,
    pub new: &'a str,
    pub base: &'a str,
}

/// The account and its keys are gone.
#[derive(Template)]
#[template(path = "mail/account_deleted.txt")]
pub struct AccountDeleted<'a> {
    pub username: &'a str,
    pub keys: usize,
}

/// Another account was registered with this address.
#[derive(Template)]
#[template(path = "mail/address_reused.txt")]
pub struct AddressReused<'a> {
    pub username: &'a str,
    pub new_username: &'a str,
    pub base: &'a str,
}

/// A key was revoked because it leaked.
#[derive(Template)]
#[template(path = "mail/key_revoked.txt")]
pub struct KeyRevoked<'a> {
    pub username: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    /// "was found in public code on GitHub", ...
    pub how: &'a str,
    pub base: &'a str,
}

/// The text of `mail`; a template that cannot render (it cannot: they
/// only interpolate strings and numbers) gives an empty body, logged.
pub fn render(mail: &impl Template) -> String {
    mail.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot render a mail text");
        String::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_fill_in_names_links_and_plurals_without_escaping() {
        let reset = render(&Reset {
            username: "o'neil",
            minutes: 30,
            link: "https://k.example/password/reset?token=abc&x=1",
        });
        assert!(reset.starts_with("Hello o'neil,\n\n"));
        assert!(reset.contains("within 30 minutes"));
        assert!(reset.contains("\n\nhttps://k.example/password/reset?token=abc&x=1\n\n"));
        let one = render(&AccountDeleted { username: "a", keys: 1 });
        let two = render(&AccountDeleted { username: "a", keys: 2 });
        assert!(one.contains("its 1 API key: they"), "{one}");
        assert!(two.contains("its 2 API keys: they"), "{two}");
    }
}
