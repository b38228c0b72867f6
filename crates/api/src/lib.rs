//! # graphscale-api
//!
//! The HTTP API of `graphscale serve` (docs/api.md): `POST /v1/predict` (a graph model's
//! forecast of every service from a recent series, and the planner's replicas with their
//! reasons), `POST /v1/train` and `GET /v1/jobs/{id}` (training off the request path),
//! `GET /v1/models`, `/healthz`, `/readyz`, `/metrics` and `/openapi.json`.
//!
//! `POST /v1/apply` hands decisions to the server's actuator (the simulated cluster by default,
//! or Kubernetes), with `dry_run` to check them without a write.
//!
//! `GET /` is a web page of the watched cluster (its service graph with the load, forecasts with
//! their bands, the plan's decisions and reasons, the HPA's shadow), drawn from `GET /v1/board`.
//!
//! Mutating endpoints (`/v1/train`, `/v1/apply`) need `Authorization: Bearer TOKEN`; with no token
//! configured they answer 403. Every 4xx is JSON naming the field, model or header that is
//! wrong. The server itself (connection, header-read and request limits, body size, graceful
//! shutdown) is `graphscale_monitor::http::serve`.

pub mod apply;
pub mod auth;
pub mod board;
mod error;
pub mod jobs;
pub mod metrics;
pub mod models;
pub mod openapi;
pub mod predict;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

pub use auth::Token;
pub use error::{ApiError, ErrorBody};
use metrics::{ApiMetrics, RequestLabels};
pub use models::Models;

/// What a route reads or answers, for the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Plain text.
    Text,
    /// `Vec<ModelInfo>`.
    Models,
    /// [`predict::PredictRequest`].
    PredictRequest,
    /// [`predict::PredictResponse`].
    PredictResponse,
    /// [`apply::ApplyRequest`].
    ApplyRequest,
    /// [`apply::ApplyResponse`].
    ApplyResponse,
    /// [`jobs::TrainRequest`].
    TrainRequest,
    /// [`jobs::Accepted`].
    Accepted,
    /// [`jobs::Job`].
    Job,
    /// A JSON document.
    Document,
    /// An HTML page.
    Html,
    /// [`board::BoardView`].
    Board,
}

/// One route of the API.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path, axum's and OpenAPI's syntax.
    pub path: &'static str,
    /// OpenAPI operation id.
    pub operation: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Whether it needs the bearer token.
    pub auth: bool,
    /// Its body, if it reads one.
    pub request: Option<Body>,
    /// Status of success.
    pub ok: u16,
    /// What it answers.
    pub response: Body,
    /// Error statuses it answers.
    pub errors: &'static [u16],
}

const fn read(
    path: &'static str,
    operation: &'static str,
    summary: &'static str,
    response: Body,
    errors: &'static [u16],
) -> Route {
    Route {
        method: "GET",
        path,
        operation,
        summary,
        auth: false,
        request: None,
        ok: 200,
        response,
        errors,
    }
}

/// Every route; the router and the OpenAPI document are built from it.
pub const ROUTES: &[Route] = &[
    read(
        "/",
        "page",
        "The web page: the watched cluster's service graph with its load, forecasts with bands, decisions with reasons, the HPA's shadow",
        Body::Html,
        &[],
    ),
    read(
        "/v1/board",
        "board",
        "What the web page shows: the watched cluster now and its recent history, a model's forecast and plan, the HPA's shadow and the decisions applied",
        Body::Board,
        &[400, 404, 422, 503],
    ),
    read("/healthz", "healthz", "The process is up", Body::Text, &[]),
    read(
        "/readyz",
        "readyz",
        "Ready to predict: at least one model is loaded",
        Body::Text,
        &[503],
    ),
    read(
        "/metrics",
        "metrics",
        "Prometheus exposition of the API's metrics",
        Body::Text,
        &[],
    ),
    read(
        "/openapi.json",
        "openapi",
        "This document",
        Body::Document,
        &[],
    ),
    read(
        "/v1/models",
        "listModels",
        "The models served",
        Body::Models,
        &[],
    ),
    Route {
        method: "POST",
        path: "/v1/predict",
        operation: "predict",
        summary: "Forecast every service of a recent series with a model, and plan its replicas",
        auth: false,
        request: Some(Body::PredictRequest),
        ok: 200,
        response: Body::PredictResponse,
        errors: &[400, 404, 413, 422],
    },
    Route {
        method: "POST",
        path: "/v1/train",
        operation: "train",
        summary: "Start training a graph model (an asynchronous job)",
        auth: true,
        request: Some(Body::TrainRequest),
        ok: 202,
        response: Body::Accepted,
        errors: &[400, 401, 403, 409, 413, 422, 429],
    },
    Route {
        method: "POST",
        path: "/v1/apply",
        operation: "apply",
        summary: "Hand decisions (replicas per workload) to the actuator: the simulated cluster, or Kubernetes when configured; `dry_run` checks without writing",
        auth: true,
        request: Some(Body::ApplyRequest),
        ok: 200,
        response: Body::ApplyResponse,
        errors: &[400, 401, 403, 413, 422, 502, 503],
    },
    read(
        "/v1/jobs/{id}",
        "getJob",
        "A training job's progress and result",
        Body::Job,
        &[400, 404],
    ),
];

/// The API's state.
pub struct Api {
    /// Models served.
    pub models: Arc<Models>,
    /// Training jobs.
    pub jobs: Arc<jobs::Jobs>,
    /// The token of the mutating endpoints.
    pub token: Token,
    /// Metrics.
    pub metrics: ApiMetrics,
    /// Where `/v1/apply` sends decisions; `None`: it answers 503.
    pub actuator: Option<Arc<dyn apply::ApplyTarget>>,
    /// The cluster the web page shows; `None`: `/v1/board` answers 503.
    pub board: Option<Arc<board::Board>>,
    /// Predictions computed at once: four per core (measured: one per core served 25 % fewer
    /// requests at 8 connections, as the model's kernels wait on each other). Without a bound
    /// every request in flight got a blocking thread of its own (90 threads and 1.1 GB resident
    /// at 64 connections; 40 threads and 180 MB with it).
    predict_slots: Arc<tokio::sync::Semaphore>,
}

impl Api {
    /// An API over `models`, with `token` guarding the mutating endpoints.
    pub fn new(models: Models, token: Token) -> Self {
        Api {
            models: Arc::new(models),
            jobs: Arc::new(jobs::Jobs::default()),
            token,
            actuator: None,
            board: None,
            metrics: ApiMetrics::default(),
            predict_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()) * 4,
            )),
        }
    }

    /// The web page shows `board` (its driver pushes what it observes; `/v1/apply` adds its
    /// decisions).
    pub fn with_board(mut self, board: Arc<board::Board>) -> Self {
        self.board = Some(board);
        self
    }

    /// `/v1/apply` sends decisions to `actuator`.
    pub fn with_actuator(mut self, actuator: Arc<dyn apply::ApplyTarget>) -> Self {
        self.actuator = Some(actuator);
        self
    }
}

type Shared = Arc<Api>;

/// The router of every route in [`ROUTES`].
pub fn router(api: Shared) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/v1/board", get(board_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi_json))
        .route("/v1/models", get(list_models))
        .route("/v1/predict", post(predict_handler))
        .route("/v1/train", post(train_handler))
        .route("/v1/apply", post(apply_handler))
        .route("/v1/jobs/{id}", get(job_handler))
        .layer(axum::middleware::from_fn_with_state(api.clone(), count))
        .with_state(api)
}

async fn count(State(api): State<Shared>, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |m| m.as_str().to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    let labels = RequestLabels {
        endpoint,
        code: resp.status().as_u16(),
    };
    api.metrics.requests.get_or_create(&labels).inc();
    api.metrics
        .duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    resp
}

async fn readyz(State(api): State<Shared>) -> Response {
    let n = api.models.len();
    if n == 0 {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no model loaded: nothing to predict with\n",
        )
            .into_response()
    } else {
        format!("ready: {n} model(s)\n").into_response()
    }
}

async fn metrics_text(State(api): State<Shared>) -> Response {
    api.metrics.models.set(api.models.len() as i64);
    api.metrics.jobs_running.set(api.jobs.running() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        api.metrics.encode(),
    )
        .into_response()
}

async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi::document())
}

async fn list_models(State(api): State<Shared>) -> Json<Vec<models::ModelInfo>> {
    Json(api.models.list())
}

async fn predict_handler(
    State(api): State<Shared>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<predict::PredictResponse>, ApiError> {
    let body = body?;
    let models = Arc::clone(&api.models);
    // The semaphore is never closed, so acquiring only waits.
    let slot = Arc::clone(&api.predict_slots).acquire_owned().await;
    let out = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let req: predict::PredictRequest = auth::parse_body(&body)?;
        predict::predict(&models, &req)
    })
    .await??;
    api.metrics.record(&out);
    Ok(Json(out))
}

async fn train_handler(
    State(api): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    // The token first: nothing of the body is read without it.
    api.token.check(&headers)?;
    let body = body?;
    let (jobs, models) = (Arc::clone(&api.jobs), Arc::clone(&api.models));
    let id = tokio::task::spawn_blocking(move || {
        let req: jobs::TrainRequest = auth::parse_body(&body)?;
        jobs::start(&jobs, &models, req)
    })
    .await??;
    let location = format!("/v1/jobs/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location.clone())],
        Json(jobs::Accepted { id, location }),
    )
        .into_response())
}

async fn apply_handler(
    State(api): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<apply::ApplyResponse>, ApiError> {
    api.token.check(&headers)?;
    let body = body?;
    let req: apply::ApplyRequest = auth::parse_body(&body)?;
    apply::check(&req)?;
    let actuator = api.actuator.as_ref().ok_or(ApiError::NoActuator)?;
    let span = tracing::info_span!(
        "apply",
        actuator = actuator.name(),
        decisions = req.decisions.len(),
        dry_run = req.dry_run
    );
    let results =
        tracing::Instrument::instrument(actuator.apply(&req.decisions, req.dry_run), span).await?;
    for r in &results {
        api.metrics.record_apply(r.outcome);
    }
    if let Some(b) = &api.board {
        b.applied(&req.decisions, &results);
    }
    Ok(Json(apply::ApplyResponse {
        actuator: actuator.name().to_string(),
        dry_run: req.dry_run,
        results,
    }))
}

/// The page: one self-contained file (no script, style or font from elsewhere).
const PAGE: &str = include_str!("board.html");

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
            ),
        ],
        PAGE,
    )
        .into_response()
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardQuery {
    model: Option<String>,
}

async fn board_handler(
    State(api): State<Shared>,
    query: Result<axum::extract::Query<BoardQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<board::BoardView>, ApiError> {
    let axum::extract::Query(q) = query.map_err(|e| ApiError::Malformed {
        field: "query".into(),
        reason: e.body_text(),
    })?;
    let board = api.board.clone().ok_or(ApiError::NoBoard)?;
    let models = Arc::clone(&api.models);
    let slot = Arc::clone(&api.predict_slots).acquire_owned().await;
    let view = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        board.view(&models, q.model.as_deref())
    })
    .await??;
    Ok(Json(view))
}

async fn job_handler(
    State(api): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<jobs::Job>, ApiError> {
    let n: u64 = id.parse().map_err(|_| ApiError::Malformed {
        field: "id".into(),
        reason: format!("`{}` is not a job id", graphscale_core::error::quote(&id)),
    })?;
    Ok(Json(api.jobs.get(n)?))
}
