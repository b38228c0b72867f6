//! Checkpoints: safetensors weights with a JSON manifest (graph, normalisation, settings).

use super::*;

/// The manifest in a checkpoint's header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The network.
    pub kind: Kind,
    /// Settings.
    pub config: GraphModelConfig,
    /// The graph it was trained on.
    pub graph: AppGraph,
    /// Normalisation.
    pub norm: Normalisation,
    /// Step of the training series, ms.
    pub step_ms: u64,
    /// Validation loss per epoch.
    pub val_loss: Vec<f64>,
    /// Epoch of the kept weights.
    pub best_epoch: usize,
    /// The build that wrote it.
    pub graphscale_version: String,
}

pub(crate) fn ck_err(path: &Path, why: impl std::fmt::Display) -> NnError {
    NnError::Checkpoint {
        path: path.display().to_string(),
        reason: why.to_string(),
    }
}

impl GraphModel {
    /// Writes the model to `path` atomically (a temporary file, then a rename), replacing what
    /// is there ([`GraphModel::save_with`]).
    pub fn save(&self, path: &Path) -> Result<(), NnError> {
        self.save_with(path, graphscale_fsio::Existing::Replace)
    }

    /// Writes the model to `path` atomically and symlink-safely; `existing` says whether a
    /// file already there may be replaced.
    pub fn save_with(
        &self,
        path: &Path,
        existing: graphscale_fsio::Existing,
    ) -> Result<(), NnError> {
        let manifest = Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            kind: self.kind,
            config: self.config.clone(),
            graph: self.graph.clone(),
            norm: self.norm.clone(),
            step_ms: self.step_ms,
            val_loss: self.val_loss.clone(),
            best_epoch: self.best_epoch,
            graphscale_version: env!("CARGO_PKG_VERSION").into(),
        };
        let text = serde_json::to_string(&manifest).map_err(|e| ck_err(path, e))?;
        let mut store = SafetensorsStore::from_bytes(None);
        self.net
            .save_into(&mut store)
            .map_err(|e| ck_err(path, format!("{e:?}")))?;
        let bytes = store
            .get_bytes()
            .map_err(|e| ck_err(path, format!("{e:?}")))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| ck_err(path, e))?;
        let views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
        let meta = [("graph_model".to_string(), text)].into_iter().collect();
        let data =
            safetensors::tensor::serialize(views, Some(meta)).map_err(|e| ck_err(path, e))?;
        graphscale_fsio::write(path, &data, existing).map_err(|e| match e {
            graphscale_fsio::WriteError::Exists { .. } => ck_err(
                path,
                "exists: pass --force to replace it, or write elsewhere",
            ),
            graphscale_fsio::WriteError::Io { source, .. } => ck_err(path, source),
        })
    }

    /// Reads a model written by [`GraphModel::save`]; another file (a forecaster checkpoint, a
    /// network of another shape) is refused with the reason.
    pub fn load(path: &Path) -> Result<Self, NnError> {
        let data = graphscale_fsio::read_at_most(path, graphscale_fsio::MAX_CHECKPOINT_BYTES)
            .map_err(|e| ck_err(path, e))?;
        let (_, meta) = SafeTensors::read_metadata(&data)
            .map_err(|e| ck_err(path, format!("not a safetensors file: {e}")))?;
        let md = meta.metadata().as_ref();
        let text = md.and_then(|m| m.get("graph_model")).ok_or_else(|| {
            if md.is_some_and(|m| m.contains_key("manifest")) {
                ck_err(path, "a forecaster checkpoint, not a graph model (train one with `graphscale train`)")
            } else {
                ck_err(path, "no graph-model manifest in the header: not a graphscale graph model")
            }
        })?;
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ck_err(path, format!("manifest: {e}")))?;
        if raw.get("format").and_then(|v| v.as_str()) != Some(FORMAT) {
            return Err(ck_err(path, format!("manifest format is not `{FORMAT}`")));
        }
        let version = raw
            .get("format_version")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if version != u64::from(FORMAT_VERSION) {
            return Err(ck_err(
                path,
                format!("format version {version}; this build reads version {FORMAT_VERSION}"),
            ));
        }
        let m: Manifest =
            serde_json::from_value(raw).map_err(|e| ck_err(path, format!("manifest: {e}")))?;
        m.config.check().map_err(|e| ck_err(path, e))?;
        let layout = Layout::of(&m.graph);
        if m.norm.node.len() != layout.nodes.len() || m.norm.edge.len() != layout.edges.len() {
            return Err(ck_err(path, "the normalisation does not match the graph"));
        }
        non_finite_weight(&data).map_or(Ok(()), |name| {
            Err(ck_err(
                path,
                format!("weight `{name}` holds NaN or infinity: the model cannot forecast"),
            ))
        })?;
        let device = Device::flex();
        let mut net = GraphNet::new(m.kind, &m.config, &layout, &device);
        let mut store = SafetensorsStore::from_bytes(Some(data));
        let applied = net.load_from(&mut store).map_err(|e| {
            ck_err(
                path,
                format!("weights do not fit the {} network: {e:?}", m.kind.name()),
            )
        })?;
        if !applied.missing.is_empty() || !applied.unused.is_empty() || !applied.errors.is_empty() {
            return Err(ck_err(
                path,
                format!(
                    "weights do not fit the {} network: missing {:?}, unused {:?}, errors {:?}",
                    m.kind.name(),
                    applied.missing,
                    applied.unused,
                    applied.errors
                ),
            ));
        }
        Ok(GraphModel {
            kind: m.kind,
            config: m.config,
            graph: m.graph,
            layout,
            norm: m.norm,
            step_ms: m.step_ms,
            net,
            val_loss: m.val_loss,
            best_epoch: m.best_epoch,
            host: std::sync::OnceLock::new(),
        })
    }

    /// Prepares `series` with this model's normalisation (for scoring held-out data).
    pub fn prepare(&self, series: &[GraphSeries]) -> Result<Prepared, NnError> {
        let data = series
            .iter()
            .map(|s| {
                self.layout.check(&s.graph)?;
                self.norm.tensorise(&self.layout, s)
            })
            .collect::<Result<_, _>>()?;
        Ok(Prepared {
            graph: self.graph.clone(),
            layout: self.layout.clone(),
            norm: self.norm.clone(),
            data,
            step_ms: self.step_ms,
        })
    }
}

/// The first floating-point tensor of a safetensors file that holds NaN or infinity (every
/// checkpoint loader refuses such a file: graph models here, RL policies in the rl crate).
pub fn non_finite_weight(data: &[u8]) -> Option<String> {
    let st = SafeTensors::deserialize(data).ok()?;
    st.tensors().into_iter().find_map(|(name, t)| {
        let bytes = t.data();
        let bad = match t.dtype() {
            safetensors::Dtype::F32 => bytes
                .chunks_exact(4)
                .any(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite()),
            safetensors::Dtype::F64 => bytes.chunks_exact(8).any(|b| {
                !f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]).is_finite()
            }),
            _ => false,
        };
        bad.then_some(name)
    })
}
