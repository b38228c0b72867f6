//! The API's own `/metrics`: requests by endpoint and status, their latency, and what the last
//! prediction of each model planned. Labels are bounded: endpoints are the route table's,
//! models at most [`crate::models::MAX_MODELS`], workloads those of a model's graph.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route, as in the route table (`/v1/predict`), or `other`.
    pub endpoint: String,
    /// HTTP status code.
    pub code: u16,
}

/// Labels of a planned workload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkloadLabels {
    /// The model that planned it.
    pub model: String,
    /// The workload (a service of the model's graph).
    pub workload: String,
}

/// Labels of a forecast quantile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuantileLabels {
    /// The model.
    pub model: String,
    /// The workload.
    pub workload: String,
    /// `0.1`, `0.5` or `0.9`.
    pub quantile: String,
}

/// Labels of an applied decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `applied`, `would_apply`, `unchanged`, `disabled` or `conflict`.
    pub outcome: String,
}

/// Every metric of the API.
pub struct ApiMetrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// `graphscale_api_requests_total`.
    pub requests: Family<RequestLabels, Counter>,
    /// `graphscale_api_request_duration_seconds`.
    pub duration: Family<RequestLabels, Histogram>,
    /// `graphscale_api_planned_replicas`.
    pub planned: Family<WorkloadLabels, Gauge>,
    /// `graphscale_api_forecast_rps`, one step ahead.
    pub forecast: Family<QuantileLabels, Gauge<f64, AtomicU64>>,
    /// `graphscale_api_decisions_total`.
    pub decisions: Family<OutcomeLabels, Counter>,
    /// `graphscale_api_models`.
    pub models: Gauge,
    /// `graphscale_api_training_jobs_running`.
    pub jobs_running: Gauge,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("graphscale_api");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0])
        });
        let planned = Family::<WorkloadLabels, Gauge>::default();
        let forecast = Family::<QuantileLabels, Gauge<f64, AtomicU64>>::default();
        let decisions = Family::<OutcomeLabels, Counter>::default();
        let models = Gauge::default();
        let jobs_running = Gauge::default();
        registry.register(
            "requests",
            "HTTP requests answered, by endpoint and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer a request, by endpoint and status",
            duration.clone(),
        );
        registry.register(
            "planned_replicas",
            "Replicas the last prediction planned, by model and workload",
            planned.clone(),
        );
        registry.register(
            "forecast_rps",
            "Requests per second the last prediction forecast one step ahead, by model, workload and quantile",
            forecast.clone(),
        );
        registry.register(
            "decisions",
            "Decisions POST /v1/apply handled, by outcome",
            decisions.clone(),
        );
        registry.register("models", "Models served", models.clone());
        registry.register(
            "training_jobs_running",
            "Training jobs running",
            jobs_running.clone(),
        );
        ApiMetrics {
            registry,
            requests,
            duration,
            planned,
            forecast,
            decisions,
            models,
            jobs_running,
        }
    }
}

impl ApiMetrics {
    /// Records what a prediction planned and forecast.
    pub fn record(&self, p: &crate::predict::PredictResponse) {
        for e in &p.plan {
            if let Some(r) = e.replicas {
                self.planned
                    .get_or_create(&WorkloadLabels {
                        model: p.model.clone(),
                        workload: e.service.clone(),
                    })
                    .set(i64::from(r));
            }
        }
        for f in p.forecasts.iter().filter(|f| f.step == 1) {
            for (q, v) in [("0.1", f.rps.p10), ("0.5", f.rps.p50), ("0.9", f.rps.p90)] {
                self.forecast
                    .get_or_create(&QuantileLabels {
                        model: p.model.clone(),
                        workload: f.service.clone(),
                        quantile: q.into(),
                    })
                    .set(v);
            }
        }
    }

    /// Counts one decision of `/v1/apply`.
    pub fn record_apply(&self, outcome: crate::apply::Outcome) {
        self.decisions
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str().to_string(),
            })
            .inc();
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
