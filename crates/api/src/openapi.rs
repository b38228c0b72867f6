//! The OpenAPI 3.1 document of the API, built from the route table and the request and response
//! types. `docs/openapi.json` is this document, checked in; a test fails when they differ.

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::apply::{ApplyRequest, ApplyResponse};
use crate::board::BoardView;
use crate::error::ErrorBody;
use crate::jobs::{Accepted, Job, TrainRequest};
use crate::models::ModelInfo;
use crate::predict::{PredictRequest, PredictResponse};
use crate::{Body, ROUTES};

/// The document.
pub fn document() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "#/components/schemas/".into())
        .into_generator();
    fn schema(generator: &mut schemars::SchemaGenerator, b: Body) -> Value {
        match b {
            Body::Text => json!({"type": "string"}),
            Body::Models => generator.subschema_for::<Vec<ModelInfo>>().to_value(),
            Body::PredictRequest => generator.subschema_for::<PredictRequest>().to_value(),
            Body::PredictResponse => generator.subschema_for::<PredictResponse>().to_value(),
            Body::ApplyRequest => generator.subschema_for::<ApplyRequest>().to_value(),
            Body::ApplyResponse => generator.subschema_for::<ApplyResponse>().to_value(),
            Body::TrainRequest => generator.subschema_for::<TrainRequest>().to_value(),
            Body::Accepted => generator.subschema_for::<Accepted>().to_value(),
            Body::Job => generator.subschema_for::<Job>().to_value(),
            Body::Document => json!({"type": "object"}),
            Body::Html => json!({"type": "string"}),
            Body::Board => generator.subschema_for::<BoardView>().to_value(),
        }
    }
    let error = generator.subschema_for::<ErrorBody>().to_value();
    let mut paths = Map::new();
    for r in ROUTES {
        let content = |b: Body, s: Value| {
            let ty = match b {
                Body::Text => "text/plain",
                Body::Html => "text/html",
                _ => "application/json",
            };
            json!({ty: {"schema": s}})
        };
        let mut responses = Map::new();
        responses.insert(
            r.ok.to_string(),
            json!({"description": "success", "content": content(r.response, schema(&mut generator, r.response))}),
        );
        for code in r.errors {
            responses.insert(
                code.to_string(),
                json!({"description": error_text(*code), "content": content(Body::Document, error.clone())}),
            );
        }
        let mut op = json!({
            "operationId": r.operation,
            "summary": r.summary,
            "responses": responses,
        });
        if let Some(b) = r.request {
            op["requestBody"] =
                json!({"required": true, "content": content(b, schema(&mut generator, b))});
        }
        if r.path.contains("{id}") {
            op["parameters"] = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}}]);
        }
        if r.path == "/v1/board" {
            op["parameters"] = json!([{"name": "model", "in": "query", "required": false, "description": "the model of the forecast; default the first served model that fits the graph", "schema": {"type": "string"}}]);
        }
        if r.auth {
            op["security"] = json!([{"bearer": []}]);
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "graphscale API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Predictions with their plan, decisions applied to a cluster, training jobs and models of graphscale's graph models (docs/api.md).",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}

fn error_text(code: u16) -> &'static str {
    match code {
        400 => "the body is not JSON of this shape; `field` names where",
        401 => "no `Authorization: Bearer` header",
        403 => "a wrong token, or no token configured (mutating endpoints off)",
        404 => "no such model or job",
        409 => "a model of that name exists",
        413 => "the body is larger than the server's limit",
        422 => "a value is not acceptable; `field` names it",
        429 => "a training job is running",
        502 => "the actuator failed: the cluster refused the write or could not be reached",
        503 => "not ready, no actuator configured, or no cluster watched",
        _ => "error",
    }
}
