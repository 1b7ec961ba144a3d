//! Every error the API answers with, and the one place that turns an error
//! into a status code, headers and a JSON body.
//!
//! Bodies are `{"error": CODE, "message": TEXT}`: `CODE` is stable and meant
//! for programs, `TEXT` is for people and may change.

use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::body::Body;

use crate::wallet::InvalidWallet;

/// An error the API answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The wallet in the path is not an address.
    #[error(transparent)]
    InvalidWallet(#[from] InvalidWallet),
    /// Something else in the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// An admin route without a bearer token.
    #[error("this route needs an `Authorization: Bearer` token")]
    Unauthorized,
    /// An admin route with the wrong token.
    #[error("the bearer token is not the admin token")]
    Forbidden,
    /// An admin route while no admin token is configured.
    #[error("admin routes are disabled: set ADMIN_TOKEN to enable them")]
    AdminDisabled,
    /// No such route.
    #[error("no route for {0}")]
    NotFound(String),
    /// The route exists, not with this method.
    #[error("method {method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The methods the route takes, for the `Allow` header.
        allow: &'static str,
    },
    /// The source failed and nothing servable was cached.
    #[error("the position source failed: {0}")]
    SourceFailed(String),
    /// The source took longer than the load timeout.
    #[error("the position source did not answer within {0} ms")]
    SourceTimeout(u128),
    /// Too much work queued for the source.
    #[error("too many loads are waiting for the source; retry shortly")]
    Overloaded,
    /// An invalidation reached memory but not Redis.
    #[error("dropped from memory, but Redis did not answer ({0}); retry to drop it there too")]
    RedisUnavailable(String),
    /// A pattern invalidation reached memory and some of a Redis
    /// Cluster's primaries, not all: entries that match may be left in
    /// Redis. The body says how many went (`removed`) and `partial: true`.
    #[error("dropped {removed} entries matching {pattern:?}, but not everywhere in Redis ({detail}); retry to finish")]
    PartialDeletion {
        /// The pattern, as given.
        pattern: String,
        /// How many entries went (memory and Redis).
        removed: u64,
        /// Which primaries were not walked, and why.
        detail: String,
    },
    /// The service is shutting down.
    #[error("the service is shutting down")]
    ShuttingDown,
    /// A bug: a loader panicked or an invariant broke.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Seconds a client is told to wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

impl ApiError {
    /// The status code this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidWallet(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::AdminDisabled => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::SourceFailed(_) => StatusCode::BAD_GATEWAY,
            Self::SourceTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Overloaded | Self::ShuttingDown | Self::RedisUnavailable(_) | Self::PartialDeletion { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidWallet(_) => "invalid_wallet",
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::AdminDisabled => "admin_disabled",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::SourceFailed(_) => "source_failed",
            Self::SourceTimeout(_) => "source_timeout",
            Self::Overloaded => "overloaded",
            Self::ShuttingDown => "shutting_down",
            Self::RedisUnavailable(_) => "redis_unavailable",
            Self::PartialDeletion { .. } => "partial_deletion",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The full response: status, headers and JSON body.
    pub fn to_response(&self) -> Response<Body> {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            error: &'a str,
            message: String,
            /// A partial deletion's answer carries what a complete one does
            /// (`pattern`, `removed`), and `partial: true`.
            #[serde(flatten, skip_serializing_if = "Option::is_none")]
            deletion: Option<Deletion<'a>>,
        }
        #[derive(Serialize)]
        struct Deletion<'a> {
            pattern: &'a str,
            removed: u64,
            partial: bool,
        }
        let deletion = match self {
            Self::PartialDeletion { pattern, removed, .. } => {
                Some(Deletion { pattern, removed: *removed, partial: true })
            }
            _ => None,
        };
        let body = serde_json::to_vec(&ErrorBody { error: self.code(), message: self.to_string(), deletion })
            .unwrap_or_else(|_| br#"{"error":"internal_error","message":"unrenderable error"}"#.to_vec());
        let mut response = Response::new(Body::full(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match self {
            Self::Unauthorized => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::MethodNotAllowed { allow, .. } => {
                headers.insert(ALLOW, HeaderValue::from_static(allow));
            }
            Self::Overloaded | Self::ShuttingDown | Self::RedisUnavailable(_) | Self::PartialDeletion { .. } => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body_json(response: Response<Body>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.expect("full body").to_bytes();
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn errors_render_as_json_with_their_headers() {
        let overloaded = ApiError::Overloaded.to_response();
        assert_eq!(overloaded.status(), 503);
        assert_eq!(overloaded.headers()[RETRY_AFTER], "1");
        assert_eq!(body_json(overloaded).await["error"], "overloaded");

        let not_allowed = ApiError::MethodNotAllowed { method: "PUT".into(), allow: "GET, DELETE" }.to_response();
        assert_eq!(not_allowed.status(), 405);
        assert_eq!(not_allowed.headers()[ALLOW], "GET, DELETE");

        let unauthorized = ApiError::Unauthorized.to_response();
        assert_eq!(unauthorized.headers()[WWW_AUTHENTICATE], "Bearer");

        let invalid = ApiError::from(crate::wallet::Wallet::parse("0xZZ").expect_err("invalid"));
        let json = body_json(invalid.to_response()).await;
        assert_eq!(json["error"], "invalid_wallet");
        assert_eq!(json["message"], r#"invalid wallet "0xZZ": expected 0x and 40 hex digits"#);
        assert!(json.get("partial").is_none(), "only a deletion's answer says partial");

        let partial =
            ApiError::PartialDeletion { pattern: "0xab*".into(), removed: 7, detail: "1 of 3 primaries".into() };
        let response = partial.to_response();
        assert_eq!(
            (response.status().as_u16(), &response.headers()[RETRY_AFTER]),
            (503, &HeaderValue::from_static("1"))
        );
        let json = body_json(response).await;
        assert_eq!(
            (&json["error"], &json["pattern"], &json["removed"], &json["partial"]),
            (
                &serde_json::json!("partial_deletion"),
                &serde_json::json!("0xab*"),
                &serde_json::json!(7),
                &serde_json::json!(true)
            )
        );
    }
}
