//! The models the API serves: graph models read from the models folder at start, plus those its
//! training jobs add.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use graphscale_nn::graphmodel::GraphModel;
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// Most models one server holds (files in the folder plus trained ones).
pub const MAX_MODELS: usize = 256;

/// Whether `name` is a model name: a file name of plain characters, ending in `.safetensors`.
pub fn is_model_name(name: &str) -> bool {
    name.len() <= 128
        && name.ends_with(".safetensors")
        && name.len() > ".safetensors".len()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// [`is_model_name`], as a 422 naming `field` and the rule.
pub fn check_name(name: &str, field: &str) -> Result<(), ApiError> {
    if is_model_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "`{}` is not a model name: at most 128 characters of letters, digits, `-`, `_` and `.`, ending in `.safetensors`",
                graphscale_core::error::quote(name)
            ),
        ))
    }
}

/// What `GET /v1/models` says of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelInfo {
    /// The name to ask for in `/v1/predict`.
    pub name: String,
    /// The network: `hgt`, `gat`, `stgnn` or `mlp`.
    pub kind: String,
    /// Points of history a prediction reads.
    pub window: usize,
    /// Steps it predicts.
    pub horizon: usize,
    /// Step of its series, seconds.
    pub step_s: f64,
    /// The services of its graph.
    pub services: Vec<String>,
    /// Nodes of its graph (services, queues, topics).
    pub nodes: usize,
    /// Validation loss of the kept weights.
    pub val_loss: f64,
}

/// The services of `m`'s graph, in its order.
pub fn services(m: &GraphModel) -> Vec<String> {
    m.layout
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| m.layout.is_service(*i))
        .map(|(_, n)| n.clone())
        .collect()
}

impl ModelInfo {
    fn of(name: &str, m: &GraphModel) -> Self {
        ModelInfo {
            name: name.to_string(),
            kind: m.kind.name().to_string(),
            window: m.config.window,
            horizon: m.config.horizon,
            step_s: m.step_ms as f64 / 1000.0,
            services: services(m),
            nodes: m.layout.nodes.len(),
            val_loss: m
                .val_loss
                .get(m.best_epoch.saturating_sub(1))
                .copied()
                .unwrap_or(f64::NAN),
        }
    }
}

/// A model that could not be read from the folder at start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The folder cannot be listed.
    #[error("{path}: {source}")]
    Folder {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a usable graph model.
    #[error("{0}")]
    Model(#[from] graphscale_nn::NnError),
    /// More files than [`MAX_MODELS`].
    #[error("{path}: more than {MAX_MODELS} models")]
    TooMany {
        /// The folder.
        path: String,
    },
}

/// The models, by name.
#[derive(Debug, Default)]
pub struct Models {
    dir: Option<PathBuf>,
    by_name: RwLock<BTreeMap<String, Arc<GraphModel>>>,
}

impl Models {
    /// No models, none saved.
    pub fn in_memory() -> Self {
        Models::default()
    }

    /// Every `*.safetensors` graph model in `dir` (one that is not is an error naming it);
    /// trained models are saved there too.
    pub fn load_dir(dir: &Path) -> Result<Self, LoadError> {
        let folder = |source| LoadError::Folder {
            path: dir.display().to_string(),
            source,
        };
        let mut by_name = BTreeMap::new();
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir).map_err(folder)? {
            let e = e.map_err(folder)?;
            let name = e.file_name().to_string_lossy().into_owned();
            if is_model_name(&name) && e.path().is_file() {
                names.push(name);
            }
            if names.len() > MAX_MODELS {
                return Err(LoadError::TooMany {
                    path: dir.display().to_string(),
                });
            }
        }
        names.sort();
        for name in names {
            let m = GraphModel::load(&dir.join(&name))?;
            by_name.insert(name, Arc::new(m));
        }
        Ok(Models {
            dir: Some(dir.to_path_buf()),
            by_name: RwLock::new(by_name),
        })
    }

    /// The model named `name`.
    pub fn get(&self, name: &str) -> Result<Arc<GraphModel>, ApiError> {
        self.read()
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::NotFound {
                what: "model",
                name: graphscale_core::error::quote(name),
            })
    }

    /// Whether `name` is taken.
    pub fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// Every model, by name.
    pub fn list(&self) -> Vec<ModelInfo> {
        self.read()
            .iter()
            .map(|(n, m)| ModelInfo::of(n, m))
            .collect()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a trained model under `name`, saving it to the folder first when there is one
    /// (never replacing a file); refused when the name is taken or the server is full.
    pub fn add(&self, name: &str, m: GraphModel) -> Result<(), ApiError> {
        let mut w = self.by_name.write().unwrap_or_else(|p| p.into_inner());
        if w.contains_key(name) {
            return Err(ApiError::Exists(name.to_string()));
        }
        if w.len() >= MAX_MODELS {
            return Err(ApiError::invalid(
                "name",
                format!("the server holds {MAX_MODELS} models, the most it may"),
            ));
        }
        if let Some(dir) = &self.dir {
            m.save_with(&dir.join(name), graphscale_fsio::Existing::Keep)?;
        }
        w.insert(name.to_string(), Arc::new(m));
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<GraphModel>>> {
        self.by_name.read().unwrap_or_else(|p| p.into_inner())
    }
}
