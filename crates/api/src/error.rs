//! The API's one error type: every variant is an HTTP status and a message that names what is
//! wrong (the field of the body, the model, the header).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use graphscale_nn::NnError;

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON the endpoint reads (400); `field` is the path where parsing stopped.
    #[error("{field}: {reason}")]
    Malformed {
        /// Path in the body (`series.nodes.frontend.rps[3]`), or `body`.
        field: String,
        /// serde's message.
        reason: String,
    },
    /// Well-formed, but a value is not acceptable (422).
    #[error("{field}: {reason}")]
    Invalid {
        /// Path in the body.
        field: String,
        /// Why.
        reason: String,
    },
    /// No such model or job (404).
    #[error("{what} `{name}` not found")]
    NotFound {
        /// `model` or `job`.
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A model of that name exists already (409).
    #[error("model `{0}` exists already: pick another name")]
    Exists(String),
    /// No bearer token, or not one of the form `Authorization: Bearer TOKEN` (401).
    #[error("this endpoint needs `Authorization: Bearer TOKEN`")]
    Unauthenticated,
    /// The bearer token is not the configured one (403).
    #[error("the bearer token is not the configured one")]
    WrongToken,
    /// Mutating endpoints are off because no token is configured (403).
    #[error(
        "mutating endpoints are off: no token is configured (--token-file or GRAPHSCALE_API_TOKEN)"
    )]
    Disabled,
    /// Too many training jobs at once (429).
    #[error("{0} training job(s) are running, the most at once: try again later")]
    Busy(usize),
    /// A model failed on input that passed the checks (422, naming the series).
    #[error("series: {0}")]
    Model(#[from] NnError),
    /// The body could not be read: larger than the server's limit (413), or cut off (400).
    #[error("body: {0}")]
    Body(#[from] axum::extract::rejection::BytesRejection),
    /// A training thread could not be started (503).
    #[error("cannot start a training thread: {0}")]
    Thread(std::io::Error),
    /// No actuator is configured (503).
    #[error("no actuator is configured: POST /v1/apply is off")]
    NoActuator,
    /// No cluster is watched (503): `graphscale serve --kube-namespace` acts, but has no board.
    #[error("no cluster is watched: the board shows the simulated cluster of `graphscale serve` (not with --kube-namespace)")]
    NoBoard,
    /// The actuator failed to read or write (502): the cluster refused or could not be reached.
    #[error("the {actuator} failed: {source}")]
    Actuator {
        /// `simulator` or `kubernetes`.
        actuator: String,
        /// Its error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A worker thread panicked or was cancelled (500).
    #[error("internal error: the worker stopped ({0})")]
    Worker(#[from] tokio::task::JoinError),
}

impl ApiError {
    /// A 422 naming `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A 502: `actuator` failed with `e`.
    pub fn actuator(actuator: &str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Actuator {
            actuator: actuator.to_string(),
            source: Box::new(e),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed { .. } => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } | ApiError::Model(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Exists(_) => StatusCode::CONFLICT,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::WrongToken | ApiError::Disabled => StatusCode::FORBIDDEN,
            ApiError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Body(r) => r.status(),
            ApiError::Thread(_) | ApiError::NoActuator | ApiError::NoBoard => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Actuator { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Worker(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The field of the body the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::Malformed { field, .. } | ApiError::Invalid { field, .. } => Some(field),
            ApiError::Model(_) => Some("series"),
            ApiError::Body(_) => Some("body"),
            _ => None,
        }
    }
}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// What is wrong, naming the field, model or header.
    pub error: String,
    /// The field of the request body, when the error is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
                field: self.field().map(str::to_string),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
