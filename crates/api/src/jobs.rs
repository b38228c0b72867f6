//! `POST /v1/train` and `GET /v1/jobs/{id}`: graph models trained off the request path, one
//! job at a time, with their progress.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use graphscale_core::GraphSeries;
use graphscale_nn::graphmodel::{train, GraphModelConfig, Kind, Prepared};
use serde::{Deserialize, Serialize};

use crate::models::{check_name, Models};
use crate::ApiError;

/// Training jobs running at once (a job uses the cores it gets; more would only queue).
pub const MAX_RUNNING: usize = 1;
/// Finished jobs kept for `GET /v1/jobs/{id}`; the oldest is forgotten first.
pub const MAX_KEPT: usize = 100;
/// Series one training request may carry.
pub const MAX_SERIES: usize = 64;

/// A training request.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    /// The network: `hgt`, `gat`, `stgnn`, or the edge-blind `mlp`.
    pub kind: String,
    /// Name of the new model, `NAME.safetensors`; it must not exist.
    pub name: String,
    /// Training series (`GraphSeries`, version 1, docs/schema.md), one or more, on one graph.
    #[schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")]
    pub series: Vec<GraphSeries>,
    /// Settings (docs/graph-models.md); default the defaults.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub config: Option<GraphModelConfig>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Training.
    Running,
    /// Trained; the model is served under the job's name.
    Succeeded,
    /// Failed; `error` says why.
    Failed,
}

/// A job as `GET /v1/jobs/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Job {
    /// Its id.
    pub id: u64,
    /// Where it is.
    pub state: JobState,
    /// The network.
    pub kind: String,
    /// The model it makes.
    pub model: String,
    /// Epochs done.
    pub epoch: usize,
    /// Epochs at most (training stops early when validation stops improving).
    pub epochs: usize,
    /// Training loss of the last epoch.
    pub train_loss: Option<f64>,
    /// Validation loss of the last epoch.
    pub val_loss: Option<f64>,
    /// Best validation loss so far.
    pub best_val_loss: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The answer to `POST /v1/train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Accepted {
    /// The job's id.
    pub id: u64,
    /// Where to follow it.
    pub location: String,
}

/// Every job, by id.
#[derive(Debug, Default)]
pub struct Jobs {
    inner: Mutex<JobsInner>,
}

#[derive(Debug, Default)]
struct JobsInner {
    next: u64,
    jobs: BTreeMap<u64, Job>,
}

impl JobsInner {
    fn running(&self) -> usize {
        self.jobs
            .values()
            .filter(|j| j.state == JobState::Running)
            .count()
    }
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, JobsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The job `id`.
    pub fn get(&self, id: u64) -> Result<Job, ApiError> {
        self.lock()
            .jobs
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound {
                what: "job",
                name: id.to_string(),
            })
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.lock().running()
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Job)) {
        if let Some(j) = self.lock().jobs.get_mut(&id) {
            f(j);
        }
    }
}

/// Checks `req` and starts its job on a thread of its own; returns the job's id. Every check
/// that can fail on the request runs here, so its error is the answer (a 4xx), not a failed job.
pub fn start(jobs: &Arc<Jobs>, models: &Arc<Models>, req: TrainRequest) -> Result<u64, ApiError> {
    let kind = Kind::parse(&req.kind).map_err(|e| ApiError::invalid("kind", e.to_string()))?;
    check_name(&req.name, "name")?;
    if models.contains(&req.name) {
        return Err(ApiError::Exists(req.name));
    }
    if req.series.is_empty() || req.series.len() > MAX_SERIES {
        return Err(ApiError::invalid(
            "series",
            format!("give 1..={MAX_SERIES} series, got {}", req.series.len()),
        ));
    }
    for (i, s) in req.series.iter().enumerate() {
        s.validate()
            .map_err(|e| ApiError::invalid(format!("series[{i}]"), e.to_string()))?;
    }
    let cfg = req.config.clone().unwrap_or_default();
    cfg.check()
        .map_err(|e| ApiError::invalid("config", e.to_string()))?;
    let prepared =
        Prepared::new(&cfg, &req.series).map_err(|e| ApiError::invalid("series", e.to_string()))?;
    let id = {
        let mut g = jobs.lock();
        let running = g.running();
        if running >= MAX_RUNNING {
            return Err(ApiError::Busy(running));
        }
        g.next += 1;
        let id = g.next;
        g.jobs.insert(
            id,
            Job {
                id,
                state: JobState::Running,
                kind: kind.name().to_string(),
                model: req.name.clone(),
                epoch: 0,
                epochs: cfg.epochs,
                train_loss: None,
                val_loss: None,
                best_val_loss: None,
                error: None,
            },
        );
        // Forget the oldest finished jobs beyond the limit.
        while g.jobs.len() > MAX_KEPT {
            let Some(old) = g
                .jobs
                .values()
                .find(|j| j.state != JobState::Running)
                .map(|j| j.id)
            else {
                break;
            };
            g.jobs.remove(&old);
        }
        id
    };
    let (jobs, models) = (Arc::clone(jobs), Arc::clone(models));
    let name = req.name;
    std::thread::Builder::new()
        .name(format!("train-{id}"))
        .spawn(move || {
            let span = tracing::info_span!("train_job", id, model = %name);
            let _e = span.enter();
            let result = train(kind, &cfg, &prepared, &mut |r| {
                jobs.update(id, |j| {
                    j.epoch = r.epoch;
                    j.train_loss = Some(r.train_loss);
                    j.val_loss = Some(r.val_loss);
                    if r.best {
                        j.best_val_loss = Some(r.val_loss);
                    }
                })
            })
            .map_err(ApiError::from)
            .and_then(|m| models.add(&name, m));
            jobs.update(id, |j| match result {
                Ok(()) => j.state = JobState::Succeeded,
                Err(e) => {
                    tracing::warn!(error = %e, "training job failed");
                    j.state = JobState::Failed;
                    j.error = Some(e.to_string());
                }
            });
        })
        .map_err(ApiError::Thread)?;
    Ok(id)
}
