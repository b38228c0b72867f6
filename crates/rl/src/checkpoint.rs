//! A policy checkpoint: the network's weights as safetensors with a JSON manifest in the header
//! (encoder, network settings, the workload graph, the training settings and progress), written
//! atomically. Loading refuses another file (a graph model, a forecaster), another shape, and
//! weights that are not finite, with the reason.

use std::path::Path;

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use safetensors::tensor::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::env::EnvConfig;
use crate::features::PolicyGraph;
use crate::policy::{Encoder, NetConfig, PolicyNet};
use crate::ppo::PpoConfig;
use crate::RlError;

/// The manifest's `format`.
pub const FORMAT: &str = "graphscale-rl-policy";
/// The manifest's `format_version`.
pub const FORMAT_VERSION: u32 = 1;
/// The header key of the manifest.
const KEY: &str = "rl_policy";

/// What a checkpoint says about its policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The encoder.
    pub encoder: Encoder,
    /// The network's settings.
    pub net: NetConfig,
    /// The app it was trained on.
    pub app: String,
    /// Its workloads and links.
    pub graph: PolicyGraph,
    /// PPO's settings.
    pub ppo: PpoConfig,
    /// The environment's settings.
    pub env: EnvConfig,
    /// Updates made.
    pub updates: usize,
    /// Environment steps seen.
    pub env_steps: u64,
    /// The build that wrote it.
    pub graphscale_version: String,
}

fn ck(path: &Path, why: impl std::fmt::Display) -> RlError {
    RlError::Checkpoint {
        path: path.display().to_string(),
        reason: why.to_string(),
    }
}

/// Writes `net` with `manifest` to `path` atomically; `existing` says whether a file there may
/// be replaced.
pub fn save(
    path: &Path,
    net: &PolicyNet,
    manifest: &Manifest,
    existing: graphscale_fsio::Existing,
) -> Result<(), RlError> {
    let text = serde_json::to_string(manifest).map_err(|e| ck(path, e))?;
    let mut store = SafetensorsStore::from_bytes(None);
    net.save_into(&mut store)
        .map_err(|e| ck(path, format!("{e:?}")))?;
    let bytes = store.get_bytes().map_err(|e| ck(path, format!("{e:?}")))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| ck(path, e))?;
    let meta = [(KEY.to_string(), text)].into_iter().collect();
    let data = safetensors::tensor::serialize(st.tensors(), Some(meta)).map_err(|e| ck(path, e))?;
    graphscale_fsio::write(path, &data, existing).map_err(|e| match e {
        graphscale_fsio::WriteError::Exists { .. } => ck(
            path,
            "exists: pass --force to replace it, or write elsewhere",
        ),
        graphscale_fsio::WriteError::Io { source, .. } => ck(path, source),
    })
}

/// Reads a policy written by [`save`], building the network on `device`.
pub fn load(path: &Path, device: &Device) -> Result<(PolicyNet, Manifest), RlError> {
    let data = graphscale_fsio::read_at_most(path, graphscale_fsio::MAX_CHECKPOINT_BYTES)
        .map_err(|e| ck(path, e))?;
    let (_, meta) = SafeTensors::read_metadata(&data)
        .map_err(|e| ck(path, format!("not a safetensors file: {e}")))?;
    let md = meta.metadata().as_ref();
    let text = md.and_then(|m| m.get(KEY)).ok_or_else(|| {
        if md.is_some_and(|m| m.contains_key("graph_model")) {
            ck(
                path,
                "a graph-model checkpoint, not an RL policy (train one with `graphscale rl train`)",
            )
        } else if md.is_some_and(|m| m.contains_key("manifest")) {
            ck(
                path,
                "a forecaster checkpoint, not an RL policy (train one with `graphscale rl train`)",
            )
        } else {
            ck(
                path,
                "no policy manifest in the header: not a graphscale RL policy",
            )
        }
    })?;
    let raw: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ck(path, format!("manifest: {e}")))?;
    if raw.get("format").and_then(|v| v.as_str()) != Some(FORMAT) {
        return Err(ck(path, format!("manifest format is not `{FORMAT}`")));
    }
    let version = raw
        .get("format_version")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if version != u64::from(FORMAT_VERSION) {
        return Err(ck(
            path,
            format!("format version {version}; this build reads version {FORMAT_VERSION}"),
        ));
    }
    let m: Manifest =
        serde_json::from_value(raw).map_err(|e| ck(path, format!("manifest: {e}")))?;
    m.net.check().map_err(|e| ck(path, e))?;
    let n = m.graph.workloads.len();
    if n > 10_000 {
        return Err(ck(
            path,
            format!("the manifest's graph has {n} workloads, at most 10000"),
        ));
    }
    m.graph.check().map_err(|e| match e {
        RlError::Layout { what } => ck(path, format!("the manifest's graph: {what}")),
        other => ck(path, other),
    })?;
    if let Some(name) = graphscale_nn::graphmodel::non_finite_weight(&data) {
        return Err(ck(path, format!("weight `{name}` holds NaN or infinity")));
    }
    let mut net = PolicyNet::new(m.encoder, n, &m.net, device);
    let mut store = SafetensorsStore::from_bytes(Some(data));
    let applied = net.load_from(&mut store).map_err(|e| {
        ck(
            path,
            format!("weights do not fit the {} policy: {e:?}", m.encoder.name()),
        )
    })?;
    if !applied.missing.is_empty() || !applied.unused.is_empty() || !applied.errors.is_empty() {
        return Err(ck(
            path,
            format!(
                "weights do not fit the {} policy of {n} workloads: missing {:?}, unused {:?}, errors {:?}",
                m.encoder.name(),
                applied.missing,
                applied.unused,
                applied.errors
            ),
        ));
    }
    Ok((net, m))
}
