//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of every JSON
//! route, generated at build time from the handlers' annotations (utoipa),
//! so it cannot drift from the code. CI checks the running server against
//! it with schemathesis (scripts/schemathesis.sh).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub use super::guard::ErrorJson;

/// `{"status": …}`: health and liveness answers.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Status)]
pub struct StatusJson {
    /// `ok`, `degraded` (writes fail) or `unavailable`.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// What is wrong with the database, when something is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<&'static str>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("kw_{id}_{secret}{check}")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Keyward API", description = "API keys: who is calling, the caller's keys, forward auth."),
    paths(
        super::routes::whoami,
        super::routes::list_keys,
        super::routes::delete_key,
        super::routes::ping,
        super::forward_auth::verify,
        crate::web::healthz,
    ),
    modifiers(&Security),
    tags(
        (name = "keys", description = "Calls made with a key"),
        (name = "forward auth", description = "For proxies: nginx auth_request, Caddy forward_auth, Traefik, Envoy"),
        (name = "health", description = "Probes"),
    )
)]
struct Doc;

/// The document, rendered once.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| Doc::openapi().to_json().unwrap_or_else(|_| "{}".to_owned()))
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(json())
}
