//! A PredictiveAutoscaler's spec as the control loop's settings: the autoscaler of the
//! catalogue with the spec's overrides, and the Prometheus source. Pure: no I/O.

use std::path::{Path, PathBuf};

use graphscale_control::AutoscalerSpec;
use graphscale_core::{Edge, Relation};
use graphscale_monitor::discovery::DiscoveryConfig;
use graphscale_monitor::prom::{PromClient, PromConfig};
use graphscale_monitor::source::PromSource;
use graphscale_monitor::templates::Templates;
use graphscale_plan::churn::ChurnConfig;
use graphscale_plan::cpu_request::CpuRequestConfig;
use graphscale_plan::vertical::VerticalUpdate;

use graphscale_core::error::quote;

use crate::crd::{GraphSource, PredictiveAutoscalerSpec, Vertical};
use crate::OperatorError;

/// Timeout of one Prometheus query from the operator, ms: a round must not wait minutes.
pub const PROM_TIMEOUT_MS: u64 = 10_000;

fn invalid(field: &str, reason: impl Into<String>) -> OperatorError {
    OperatorError::InvalidSpec {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The checkpoint `spec` names, as a path under `models_dir`: a relative path of plain
/// components (no `..`, no root), so a PredictiveAutoscaler cannot make the operator read a
/// file outside that folder.
pub fn checkpoint_path(
    spec: &PredictiveAutoscalerSpec,
    models_dir: &Path,
) -> Result<Option<PathBuf>, OperatorError> {
    let Some(name) = &spec.checkpoint else {
        return Ok(None);
    };
    under_models("checkpoint", name, models_dir).map(Some)
}

/// `name` as a path under `models_dir`, refused (as `field`) unless it is a relative path of
/// plain components.
fn under_models(field: &str, name: &str, models_dir: &Path) -> Result<PathBuf, OperatorError> {
    let rel = Path::new(name);
    let plain = rel
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if name.is_empty() || name.len() > 255 || !plain {
        return Err(invalid(
            field,
            format!(
                "`{}` is not a relative path of plain names under the models folder",
                quote(name)
            ),
        ));
    }
    Ok(models_dir.join(rel))
}

/// The autoscaler `spec` asks for, with its overrides (a checkpoint is looked for under
/// `models_dir`); and the overrides that do not apply to that kind of autoscaler (reported in
/// the Ready condition, not an error).
pub fn autoscaler(
    spec: &PredictiveAutoscalerSpec,
    models_dir: &Path,
) -> Result<(AutoscalerSpec, Vec<String>), OperatorError> {
    let mut a = AutoscalerSpec::named(&spec.autoscaler)
        .map_err(|e| invalid("autoscaler", e.to_string()))?;
    // A learned policy's or an ONNX model's file, like a checkpoint, is read from the models
    // folder only.
    match &mut a {
        AutoscalerSpec::Rl { checkpoint, .. } => {
            let name = checkpoint.to_string_lossy().into_owned();
            *checkpoint = under_models("autoscaler", &name, models_dir)?;
        }
        AutoscalerSpec::Predictive { model, .. } => {
            if let Some(path) = model.strip_prefix("onnx:").map(str::to_string) {
                let p = under_models("autoscaler", &path, models_dir)?;
                *model = format!("onnx:{}", p.display());
            }
        }
        _ => {}
    }
    let mut ignored = Vec::new();
    if let (Some(min), Some(max)) = (spec.min_replicas, spec.max_replicas) {
        if min > max {
            return Err(invalid("minReplicas", format!("{min} > maxReplicas {max}")));
        }
    }
    if let Some(s) = &spec.slo {
        if !(s.p95_ms.is_finite() && s.p95_ms > 0.0) {
            return Err(invalid(
                "slo.p95Ms",
                format!("must be > 0, got {}", s.p95_ms),
            ));
        }
    }
    for (i, w) in spec.targets.workloads.iter().enumerate() {
        if let (Some(min), Some(max)) = (w.min_replicas, w.max_replicas) {
            if min > max {
                return Err(invalid(
                    &format!("targets.workloads[{i}].minReplicas"),
                    format!("{min} > maxReplicas {max}"),
                ));
            }
        }
    }
    let ck = checkpoint_path(spec, models_dir)?;
    if ck.is_some() && !a.reads_checkpoint() {
        return Err(invalid(
            "checkpoint",
            format!(
                "`{}` does not read a checkpoint: use graph-hgt, graph-gat, graph-stgnn or graph-mlp",
                spec.autoscaler
            ),
        ));
    }
    match &mut a {
        AutoscalerSpec::Predictive {
            config, checkpoint, ..
        } => {
            *checkpoint = ck;
            if let Some(s) = spec.sync_period_seconds {
                config.sync_period_s = u64::from(s);
            }
            if let Some(h) = spec.horizon_seconds {
                config.lead_time_s = Some(f64::from(h));
            }
            if let Some(h) = spec.headroom {
                if !(h.is_finite() && (0.0..=4.0).contains(&h)) {
                    return Err(invalid("headroom", format!("must be in 0..=4, got {h}")));
                }
                config.planner.headroom = h;
            }
            if let Some(c) = &spec.cooldowns {
                if let Some(s) = c.scale_up_seconds {
                    config.safety.cooldown_up_s = f64::from(s);
                }
                if let Some(s) = c.scale_down_seconds {
                    config.safety.cooldown_down_s = f64::from(s);
                }
            }
            if let Some(b) = &spec.budgets {
                config.planner.cpu_budget_cores = b.cpu_cores;
                config.planner.memory_budget_gib = b.memory_gib;
            }
            // Memory is resized only where the operator applies it (`graphscale` resizes it
            // by default).
            config.vertical.update = if spec.vertical.memory() {
                VerticalUpdate::Memory
            } else {
                VerticalUpdate::Off
            };
            // CPU requests are sized only where the operator applies them. Without them a pod
            // held beyond the plan costs its full request, so `graphscale`'s long holds give way
            // to the quicker default ones (`graphscale-replicas`'s).
            if !spec.vertical.cpu() {
                config.cpu_requests = None;
                if config.churn == Some(ChurnConfig::for_sized_pods()) {
                    config.churn = Some(ChurnConfig::default());
                }
            } else if config.cpu_requests.is_none() {
                config.cpu_requests = Some(CpuRequestConfig::default());
            }
            if let Some(r) = spec.node_gib_per_core {
                if !(r.is_finite() && r > 0.0 && r <= 1024.0) {
                    return Err(invalid(
                        "nodeGiBPerCore",
                        format!("must be in (0, 1024], got {r}"),
                    ));
                }
                match config.churn.as_mut() {
                    Some(c) => c.node_gib_per_core = Some(r),
                    None => ignored.push(format!(
                        "nodeGiBPerCore does not apply to `{}` (it has no cost per scaling action)",
                        spec.autoscaler
                    )),
                }
            }
        }
        AutoscalerSpec::Hpa {
            controller,
            spec: hpa,
            ..
        } => {
            if let Some(s) = spec.sync_period_seconds {
                controller.sync_period_s = u64::from(s);
            }
            if let Some(m) = spec.min_replicas {
                hpa.min_replicas = m.max(1);
            }
            if let Some(m) = spec.max_replicas {
                hpa.max_replicas = m;
            }
            if let Some(c) = &spec.cooldowns {
                if let Some(s) = c.scale_down_seconds {
                    hpa.behavior.scale_down.stabilization_window_s = u64::from(s);
                }
            }
            note_unused(
                spec,
                &mut ignored,
                &[
                    "horizonSeconds",
                    "headroom",
                    "budgets",
                    "vertical",
                    "nodeGiBPerCore",
                ],
            );
        }
        AutoscalerSpec::Static { .. } | AutoscalerSpec::Phpa { .. } | AutoscalerSpec::Rl { .. } => {
            note_unused(
                spec,
                &mut ignored,
                &[
                    "horizonSeconds",
                    "headroom",
                    "cooldowns",
                    "budgets",
                    "vertical",
                    "syncPeriodSeconds",
                    "nodeGiBPerCore",
                ],
            );
        }
    }
    // The SLO planner (`graph-slo`) plans for the resource's latency SLO.
    if let Some(s) = &spec.slo {
        if s.p95_ms > graphscale_plan::slo::MAX_SLO_MS {
            return Err(invalid(
                "slo.p95Ms",
                format!(
                    "must be at most {} ms, got {}",
                    graphscale_plan::slo::MAX_SLO_MS,
                    s.p95_ms
                ),
            ));
        }
        a = a.with_default_slo(s.p95_ms);
    }
    Ok((a, ignored))
}

fn note_unused(spec: &PredictiveAutoscalerSpec, out: &mut Vec<String>, fields: &[&str]) {
    for f in fields {
        let set = match *f {
            "horizonSeconds" => spec.horizon_seconds.is_some(),
            "headroom" => spec.headroom.is_some(),
            "cooldowns" => spec.cooldowns.is_some(),
            "budgets" => spec.budgets.is_some(),
            "vertical" => spec.vertical != Vertical::Off,
            "syncPeriodSeconds" => spec.sync_period_seconds.is_some(),
            "nodeGiBPerCore" => spec.node_gib_per_core.is_some(),
            _ => false,
        };
        if set {
            out.push(format!("{f} does not apply to `{}`", spec.autoscaler));
        }
    }
}

/// The default templates with the spec's overrides; an unknown name or a template that does
/// not validate names its field.
pub fn templates(
    spec: &PredictiveAutoscalerSpec,
    namespace: &str,
) -> Result<Templates, OperatorError> {
    let mut t = Templates::default();
    if !spec.prometheus.templates.is_empty() {
        let mut v =
            serde_json::to_value(&t).map_err(|e| invalid("prometheus.templates", e.to_string()))?;
        for (k, q) in &spec.prometheus.templates {
            let field = format!("prometheus.templates.{k}");
            match v.get_mut(k) {
                Some(slot @ serde_json::Value::String(_)) => {
                    *slot = serde_json::Value::String(q.clone())
                }
                Some(_) => {
                    return Err(invalid(
                        &field,
                        "not a string template (nodes cannot be overridden here)",
                    ))
                }
                None => {
                    return Err(invalid(
                        &field,
                        "no such template (docs/monitor.md lists them)",
                    ))
                }
            }
        }
        t = serde_json::from_value(v)
            .map_err(|e| invalid("prometheus.templates", e.to_string()))?;
    }
    t.validate(namespace)
        .map_err(|e| invalid("prometheus.templates", e.to_string()))?;
    Ok(t)
}

/// The Prometheus source of `spec` in `namespace`.
pub fn prom_source(
    spec: &PredictiveAutoscalerSpec,
    namespace: &str,
) -> Result<PromSource, OperatorError> {
    let url = &spec.prometheus.url;
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2048 {
        return Err(invalid(
            "prometheus.url",
            format!("`{url}` is not an http(s) URL"),
        ));
    }
    let client = PromClient::new(PromConfig {
        url: url.clone(),
        timeout_ms: PROM_TIMEOUT_MS,
        retries: 1,
        ..PromConfig::default()
    })
    .map_err(|e| invalid("prometheus.url", e.to_string()))?;
    let discovery = DiscoveryConfig {
        namespace: namespace.to_string(),
        edges: if spec.graph.source == GraphSource::Telemetry {
            spec.graph
                .edges
                .iter()
                .map(|e| Edge::new(&e.from, &e.to, Relation::Calls, 1.0))
                .collect()
        } else {
            Vec::new()
        },
        ..DiscoveryConfig::default()
    };
    Ok(PromSource::new(
        client,
        templates(spec, namespace)?,
        discovery,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Targets;

    fn spec(json: serde_json::Value) -> PredictiveAutoscalerSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn overrides_reach_the_predictive_config() {
        let s = spec(serde_json::json!({
            "targets": {"workloads": [{"name": "cart"}]},
            "autoscaler": "graph-trend",
            "horizonSeconds": 90, "headroom": 0.3,
            "cooldowns": {"scaleDownSeconds": 120},
            "budgets": {"cpuCores": 8.0, "memoryGiB": 16.0},
            "vertical": "memory", "syncPeriodSeconds": 30
        }));
        let (a, ignored) = autoscaler(&s, Path::new("/models")).unwrap();
        assert!(ignored.is_empty());
        let AutoscalerSpec::Predictive { config, .. } = a else {
            panic!("not predictive")
        };
        assert_eq!(config.lead_time_s, Some(90.0));
        assert_eq!(config.planner.headroom, 0.3);
        assert_eq!(config.safety.cooldown_down_s, 120.0);
        assert_eq!(config.planner.cpu_budget_cores, Some(8.0));
        assert_eq!(config.planner.memory_budget_gib, Some(16.0));
        assert_eq!(config.vertical.update, VerticalUpdate::Memory);
        assert_eq!(config.cpu_requests, None);
        assert_eq!(config.sync_period_s, 30);
        assert_eq!(config.planner.slo, None);
        // CPU requests are sized with the plan only with `vertical: cpu` or `all` (the operator
        // applies them then), whatever the autoscaler.
        for (auto, v, cpu, memory) in [
            ("graphscale", "off", false, false),
            ("graphscale", "memory", false, true),
            ("graph-trend", "cpu", true, false),
            ("graphscale", "all", true, true),
        ] {
            let s = spec(serde_json::json!({
                "targets": {"workloads": [{"name": "cart"}]},
                "autoscaler": auto, "vertical": v
            }));
            let (a, _) = autoscaler(&s, Path::new("/models")).unwrap();
            let AutoscalerSpec::Predictive { config, .. } = a else {
                panic!("not predictive")
            };
            assert_eq!(config.cpu_requests.is_some(), cpu, "{auto} {v}");
            assert_eq!(config.vertical.update == VerticalUpdate::Memory, memory);
            // `graphscale`'s long holds only where its pods' requests are sized.
            if auto == "graphscale" {
                let sized = Some(ChurnConfig::for_sized_pods());
                assert_eq!(config.churn == sized, cpu, "{auto} {v}");
                assert!(config.churn.is_some());
            }
        }
        // Memory-aware holds reach the action cost; an autoscaler without one says so.
        for (auto, applied) in [("graphscale", true), ("graph-slo", false), ("hpa", false)] {
            let s = spec(serde_json::json!({
                "targets": {"workloads": [{"name": "cart"}]},
                "autoscaler": auto, "vertical": "all", "nodeGiBPerCore": 4.0
            }));
            let (a, ignored) = autoscaler(&s, Path::new("/models")).unwrap();
            if let AutoscalerSpec::Predictive { config, .. } = a {
                assert_eq!(
                    config.churn.and_then(|c| c.node_gib_per_core),
                    applied.then_some(4.0)
                );
            }
            assert_eq!(
                ignored.iter().any(|x| x.starts_with("nodeGiBPerCore")),
                !applied,
                "{auto}: {ignored:?}"
            );
        }
        let s = spec(serde_json::json!({
            "targets": {"workloads": [{"name": "cart"}]},
            "autoscaler": "graphscale", "nodeGiBPerCore": -1.0
        }));
        let e = autoscaler(&s, Path::new("/models"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nodeGiBPerCore"), "{e}");
        // The resource's SLO reaches the SLO planner.
        let s = spec(serde_json::json!({
            "targets": {"workloads": [{"name": "cart"}]},
            "autoscaler": "graph-slo", "slo": {"p95Ms": 300.0}
        }));
        let (a, _) = autoscaler(&s, Path::new("/models")).unwrap();
        let AutoscalerSpec::Predictive { config, .. } = a else {
            panic!("not predictive")
        };
        assert_eq!(config.planner.slo.unwrap().slo_ms, Some(300.0));
        let s = spec(serde_json::json!({
            "targets": {"workloads": [{"name": "cart"}]},
            "autoscaler": "graph-slo", "slo": {"p95Ms": 1e12}
        }));
        let e = autoscaler(&s, Path::new("/models"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("spec.slo.p95Ms: "), "{e}");
    }

    #[test]
    fn bad_fields_are_named() {
        let base = PredictiveAutoscalerSpec {
            targets: Targets::default(),
            mode: Default::default(),
            autoscaler: "graph-trend".into(),
            horizon_seconds: None,
            slo: None,
            min_replicas: None,
            max_replicas: None,
            headroom: None,
            cooldowns: None,
            budgets: None,
            vertical: Vertical::Off,
            node_gib_per_core: None,
            prometheus: Default::default(),
            graph: Default::default(),
            take_over: false,
            sync_period_seconds: None,
            checkpoint: None,
        };
        let e = |s: &PredictiveAutoscalerSpec| {
            autoscaler(s, Path::new("/models")).unwrap_err().to_string()
        };
        let mut s = base.clone();
        s.autoscaler = "hpa2".into();
        assert!(e(&s).starts_with("spec.autoscaler: "), "{}", e(&s));
        let mut s = base.clone();
        s.min_replicas = Some(5);
        s.max_replicas = Some(2);
        assert!(e(&s).starts_with("spec.minReplicas: "), "{}", e(&s));
        let mut s = base.clone();
        s.headroom = Some(f64::NAN);
        assert!(e(&s).starts_with("spec.headroom: "), "{}", e(&s));
        let mut s = base.clone();
        s.prometheus
            .templates
            .insert("deploymentz".into(), "up".into());
        let t = templates(&s, "shop").unwrap_err().to_string();
        assert!(
            t.starts_with("spec.prometheus.templates.deploymentz: "),
            "{t}"
        );
        let mut s = base.clone();
        s.prometheus.templates.insert("nodes".into(), "up".into());
        assert!(templates(&s, "shop").is_err());
        let mut s = base.clone();
        s.prometheus.url = "ftp://x".into();
        let p = prom_source(&s, "shop").unwrap_err().to_string();
        assert!(p.starts_with("spec.prometheus.url: "), "{p}");
        // A checkpoint outside the models folder, or for an autoscaler that reads none.
        for bad in ["/etc/passwd", "../secrets/x", "a/../../b", ""] {
            let mut s = base.clone();
            s.autoscaler = "graph-hgt".into();
            s.checkpoint = Some(bad.into());
            assert!(e(&s).starts_with("spec.checkpoint: "), "{bad}: {}", e(&s));
        }
        // A learned policy's and an ONNX model's file: under the models folder only.
        for bad in [
            "rl-gat:/etc/passwd",
            "rl-mlp:../x",
            "graph-onnx:/tmp/m.onnx",
            "pred-onnx:a/../../b",
        ] {
            let mut s = base.clone();
            s.autoscaler = bad.into();
            assert!(e(&s).starts_with("spec.autoscaler: "), "{bad}: {}", e(&s));
        }
        let mut s = base.clone();
        s.autoscaler = "rl-gat:ob/gat.safetensors".into();
        let (a, _) = autoscaler(&s, Path::new("/models")).unwrap();
        let AutoscalerSpec::Rl { checkpoint, .. } = a else {
            panic!("not rl")
        };
        assert_eq!(checkpoint, Path::new("/models/ob/gat.safetensors"));
        s.autoscaler = "graph-onnx:m.onnx".into();
        let (a, _) = autoscaler(&s, Path::new("/models")).unwrap();
        let AutoscalerSpec::Predictive { model, .. } = a else {
            panic!("not predictive")
        };
        assert_eq!(model, "onnx:/models/m.onnx");
        let mut s = base.clone();
        s.checkpoint = Some("hgt.safetensors".into());
        assert!(
            e(&s).starts_with("spec.checkpoint: `graph-trend` does not read a checkpoint"),
            "{}",
            e(&s)
        );
        s.autoscaler = "graph-hgt".into();
        let (a, _) = autoscaler(&s, Path::new("/models")).unwrap();
        let AutoscalerSpec::Predictive { checkpoint, .. } = a else {
            panic!("not predictive")
        };
        assert_eq!(
            checkpoint.as_deref(),
            Some(Path::new("/models/hgt.safetensors"))
        );
        let mut s = base;
        s.autoscaler = "hpa".into();
        s.headroom = Some(0.2);
        let (_, ignored) = autoscaler(&s, Path::new("/models")).unwrap();
        assert_eq!(
            ignored,
            vec!["headroom does not apply to `hpa`".to_string()]
        );
    }
}
