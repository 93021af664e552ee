//! Table definitions shared by both backends. Written by hand: `diesel
//! print-schema` would print `Integer` for SQLite and `BigInt` for
//! PostgreSQL, and one schema must serve both.

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        email -> Text,
        password_hash -> Text,
        created_at -> Timestamp,
        totp_secret -> Nullable<Binary>,
        totp_last_step -> Nullable<BigInt>,
        is_admin -> Bool,
        disabled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    instance_secrets (name) {
        name -> Text,
        value -> Binary,
    }
}

diesel::table! {
    key_changes (seq) {
        seq -> BigInt,
        key_id -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    key_policy (id) {
        id -> BigInt,
        max_key_lifetime_days -> Nullable<Integer>,
    }
}

diesel::table! {
    user_sessions (id) {
        id -> Binary,
        user_id -> BigInt,
        created_at -> Timestamp,
        public_id -> Text,
        address -> Text,
        user_agent -> Text,
        last_seen_at -> Nullable<Timestamp>,
        authenticated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    recovery_codes (digest) {
        digest -> Binary,
        user_id -> BigInt,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    email_change_tokens (digest) {
        digest -> Binary,
        user_id -> BigInt,
        new_email -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        user_id -> BigInt,
        name -> Text,
        prefix -> Text,
        digest -> Binary,
        scopes -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
        retires_at -> Nullable<Timestamp>,
        last_used_address -> Nullable<Text>,
        allowed_ips -> Text,
        rate_limit_per_minute -> Nullable<Integer>,
    }
}

diesel::table! {
    key_usage (key_id, hour) {
        key_id -> Text,
        hour -> Timestamp,
        calls -> BigInt,
    }
}

diesel::table! {
    key_scope_use (key_id, scope) {
        key_id -> Text,
        scope -> Text,
        last_used_at -> Timestamp,
    }
}

diesel::table! {
    activity_events (id) {
        id -> BigInt,
        user_id -> BigInt,
        event -> Text,
        at -> Timestamp,
        address -> Text,
        user_agent -> Text,
        key_prefix -> Text,
        detail -> Text,
    }
}

diesel::table! {
    mail_claims (claim) {
        claim -> Text,
        claimed_at -> Timestamp,
    }
}

diesel::table! {
    password_reset_tokens (digest) {
        digest -> Binary,
        user_id -> BigInt,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    health_probe (id) {
        id -> BigInt,
        checked_at -> Timestamp,
    }
}

diesel::table! {
    instances (id) {
        id -> Text,
        started_at -> Timestamp,
        seen_at -> Timestamp,
        address -> Text,
        host -> Text,
        pid -> BigInt,
        version -> Text,
    }
}

diesel::table! {
    throttle_counters (scope, key) {
        scope -> Text,
        key -> Text,
        count -> Integer,
        window_start -> Timestamp,
        locked_until -> Nullable<Timestamp>,
    }
}

diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(user_sessions -> users (user_id));
diesel::joinable!(password_reset_tokens -> users (user_id));
diesel::joinable!(activity_events -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(email_change_tokens -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    user_sessions,
    api_keys,
    password_reset_tokens,
    health_probe,
    key_usage,
    key_scope_use,
    activity_events,
    mail_claims,
    recovery_codes,
    email_change_tokens,
    key_policy,
    key_changes,
    instance_secrets,
    instances,
    throttle_counters
);
