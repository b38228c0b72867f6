//! `deploy/` stays true to the code.

#[test]
fn the_crd_in_deploy_is_the_one_the_code_generates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/base/crd.yaml");
    let on_disk = std::fs::read_to_string(path).unwrap();
    let generated = graphscale_operator::crd::crd_yaml().unwrap();
    assert!(
        on_disk.trim_end() == generated.trim_end(),
        "deploy/base/crd.yaml drifted from the code: run `cargo run -- crd > deploy/base/crd.yaml`"
    );
}

#[test]
fn every_workload_kind_the_operator_writes_has_its_verbs_in_the_cluster_role() {
    let rbac = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/base/rbac.yaml"
    ))
    .unwrap();
    for needed in [
        "deployments/scale",
        "statefulsets/scale",
        "pods/resize",
        "predictiveautoscalers/status",
        "horizontalpodautoscalers",
        "scaledobjects",
        "leases",
    ] {
        assert!(
            rbac.contains(&format!("\"{needed}\"")),
            "rbac.yaml lacks {needed}"
        );
    }
    // Nothing the operator never does.
    for never in [
        "\"secrets\"",
        "\"delete\"",
        "\"*\"",
        "\"update\", \"patch\", \"delete\"",
    ] {
        assert!(!rbac.contains(never), "rbac.yaml grants {never}");
    }
}

/// The series names the operator exports, as Prometheus stores them (`_total` for counters,
/// `_bucket`, `_sum` and `_count` for histograms).
fn exported_series() -> std::collections::BTreeSet<String> {
    use graphscale_core::{ClusterSnapshot, Millis, Reason, ScalingDecision, WorkloadObservation};
    use graphscale_operator::metrics::{Kind, Metrics, WorkloadRound};
    // Families without a series are not encoded: give each one.
    let m = Metrics::default();
    m.errors
        .get_or_create(&Kind {
            kind: "forbidden".into(),
        })
        .inc();
    m.outcome("applied");
    let snapshot = ClusterSnapshot {
        time: Millis(0),
        workloads: vec![WorkloadObservation {
            name: "cart".into(),
            spec_replicas: 1,
            pods: Vec::new(),
            rps: Some(1.0),
            latency_p95_ms: Some(10.0),
            error_rate: None,
            backlog: None,
        }],
        edges: Vec::new(),
    };
    let decision = ScalingDecision {
        workload: "cart".into(),
        replicas: 2,
        reasons: vec![Reason::new(
            "forecast.demand",
            "trend: observed 1.0 rps, peak forecast 2.0 over the next 45 s (lead 30 s), q95 2.5, planned 2.5",
        )],
        resources: None,
    };
    m.record_round("shop", 1.0, &snapshot, &[decision], |_| WorkloadRound {
        shadow_hpa: Some(1),
        slo_p95_ms: Some(100.0),
    });
    let text = m.encode();
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut it = rest.split_whitespace();
        let (Some(name), Some(kind)) = (it.next(), it.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        for s in suffixes {
            names.insert(format!("{name}{s}"));
        }
    }
    names
}

/// Every `graphscale_...` and `graphscale:...` name in `text`.
fn named_metrics(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("graphscale") {
        let start = i + at;
        let before = start.checked_sub(1).map(|b| bytes[b]);
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
        {
            end += 1;
        }
        let name = &text[start..end];
        let word_start = !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        if word_start && (name.starts_with("graphscale_") || name.starts_with("graphscale:")) {
            out.insert(name.to_string());
        }
        i = end.max(start + 1);
    }
    out
}

/// The names `deploy/prometheus/rules.yaml` records.
fn recorded_rules(rules: &str) -> std::collections::BTreeSet<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn every_metric_the_rules_and_the_adapter_name_is_one_the_operator_exports() {
    let exported = exported_series();
    assert!(
        exported.contains("graphscale_operator_planned_replicas"),
        "{exported:?}"
    );
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
    let rules = std::fs::read_to_string(format!("{root}/prometheus/rules.yaml")).unwrap();
    let recorded = recorded_rules(&rules);
    assert!(recorded.len() >= 5, "{recorded:?}");
    let adapter = std::fs::read_to_string(format!("{root}/prometheus-adapter/rules.yaml")).unwrap();
    for (file, text) in [
        ("prometheus/rules.yaml", &rules),
        ("prometheus-adapter/rules.yaml", &adapter),
    ] {
        for name in named_metrics(text) {
            // The adapter's own names for the External metrics it serves.
            if file.starts_with("prometheus-adapter") && !name.starts_with("graphscale_operator_") {
                continue;
            }
            assert!(
                exported.contains(&name) || recorded.contains(&name),
                "deploy/{file} names `{name}`, which the operator does not export and no rule records"
            );
        }
    }
}

/// Every query of a Grafana dashboard: its panels' targets and its query variables.
fn dashboard_queries(dash: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push(e.to_string());
            }
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            if let Some(q) = v["query"].as_str() {
                out.push(q.to_string());
            }
        }
    }
    out
}

#[test]
fn every_query_of_the_dashboard_names_a_metric_graphscale_exports() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
    let text = std::fs::read_to_string(format!("{root}/grafana/graphscale.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rules = std::fs::read_to_string(format!("{root}/prometheus/rules.yaml")).unwrap();
    let mut known = recorded_rules(&rules);
    known.extend(exported_series());
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 8, "{} panels", panels.len());
    for p in panels {
        let targets = p["targets"].as_array().map_or(0, |t| t.len());
        assert!(targets > 0, "panel `{}` has no query", p["title"]);
    }
    let queries = dashboard_queries(&dash);
    assert!(queries.len() >= 10, "{queries:?}");
    for q in &queries {
        let names = named_metrics(q);
        assert!(
            !names.is_empty(),
            "the query `{q}` names no graphscale metric"
        );
        for name in names {
            assert!(
                known.contains(&name),
                "the dashboard's query `{q}` names `{name}`, which graphscale does not export and no rule records"
            );
        }
    }
}

fn yaml(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(format!(
        "{}/../../deploy/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

#[test]
fn the_keda_examples_reach_the_operators_scaler_and_ask_what_it_serves() {
    // The Service's keda port, and the operator started with --keda-listen on it.
    let svc = yaml("base/service.yaml");
    let port = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "keda")
        .expect("the Service has a keda port")["port"]
        .as_u64()
        .unwrap();
    let dep = yaml("base/deployment.yaml");
    let args: Vec<String> =
        serde_json::from_value(dep["spec"]["template"]["spec"]["containers"][0]["args"].clone())
            .unwrap();
    let at = args.iter().position(|a| a == "--keda-listen").unwrap();
    assert!(args[at + 1].ends_with(&format!(":{port}")), "{args:?}");
    let address = format!(
        "{}.{}.svc:{port}",
        svc["metadata"]["name"].as_str().unwrap(),
        svc["metadata"]["namespace"].as_str().unwrap()
    );
    for file in ["keda/scaledobject.yaml", "keda/scaledobject-max-cpu.yaml"] {
        let so = yaml(file);
        let spec = &so["spec"];
        assert!(
            spec["fallback"]["replicas"].as_u64().is_some(),
            "{file}: fallback"
        );
        let triggers = spec["triggers"].as_array().unwrap();
        let ours: Vec<_> = triggers
            .iter()
            .filter(|t| t["type"] == "external")
            .collect();
        assert_eq!(ours.len(), 1, "{file}");
        let t = ours[0];
        assert_eq!(t["metricType"], "AverageValue", "{file}: fallback needs it");
        assert_eq!(t["metadata"]["scalerAddress"], address.as_str(), "{file}");
        // What KEDA sends (every trigger metadata key) is a request the scaler accepts.
        let meta: std::collections::HashMap<String, String> =
            serde_json::from_value(t["metadata"].clone()).unwrap();
        let r = graphscale_keda::generated::ScaledObjectRef {
            name: so["metadata"]["name"].as_str().unwrap().into(),
            namespace: so["metadata"]["namespace"].as_str().unwrap().into(),
            scaler_metadata: meta,
        };
        let asked = graphscale_keda::scaler::asked(Some(&r)).unwrap();
        assert_eq!(
            asked.workload,
            spec["scaleTargetRef"]["name"].as_str().unwrap(),
            "{file}: the plan asked for is the scale target's"
        );
        if let Some(m) = spec["advanced"]["scalingModifiers"].as_object() {
            let formula = m["formula"].as_str().unwrap();
            for t in triggers {
                let name = t["name"].as_str().unwrap();
                assert!(formula.contains(name), "{file}: {formula} lacks {name}");
            }
            assert_eq!(m["target"], "1");
            assert_eq!(m["metricType"], "AverageValue");
        }
    }
}
