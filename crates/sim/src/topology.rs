//! The built-in applications and the random graph generator.
//!
//! | name | what |
//! |---|---|
//! | `online-boutique` (`ob`) | 10 services, calibrated from real measurements ([`crate::calibrate`]) |
//! | `train-ticket` (`tt`) | Train Ticket services seen in traces, calibrated likewise |
//! | `alibaba` | Alibaba 2022 production call graphs (94-service sample) |
//! | `event-driven` | a shop with a queue and a topic (hand-written, documented below) |
//! | `random:N[:SEED]` | a seeded random layered call graph of N services (1..=10,000) |
//!
//! Any other name is read as a path to an app JSON file.

use graphscale_core::{Edge, Relation, Resources};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::spec::{AppSpec, EntrySpec, ServiceSpec};
use crate::SimError;

const OB: &str = include_str!("../../../data/topologies/online-boutique.json");
const TT: &str = include_str!("../../../data/topologies/train-ticket.json");
const ALIBABA: &str = include_str!("../../../data/topologies/alibaba.json");

/// Names accepted by [`builtin`].
pub const BUILTIN: &str =
    "online-boutique (ob), train-ticket (tt), alibaba, event-driven, random:N[:SEED]";

/// A built-in app by name, or an app JSON file by path.
pub fn builtin(name: &str) -> Result<AppSpec, SimError> {
    match name {
        "online-boutique" | "ob" => AppSpec::from_json(OB, "online-boutique.json (bundled)"),
        "train-ticket" | "tt" => AppSpec::from_json(TT, "train-ticket.json (bundled)"),
        "alibaba" => AppSpec::from_json(ALIBABA, "alibaba.json (bundled)"),
        "event-driven" => Ok(event_driven()),
        other if other.starts_with("random:") => {
            let mut parts = other["random:".len()..].split(':');
            let n = parts.next().and_then(|x| x.parse::<usize>().ok());
            let seed = parts.next().map(|x| x.parse::<u64>().ok());
            match (n, seed) {
                (Some(n), None) => random_app(n, 1),
                (Some(n), Some(Some(s))) => random_app(n, s),
                _ => Err(SimError::UnknownName {
                    what: "topology",
                    name: other.into(),
                    known: BUILTIN.into(),
                }),
            }
        }
        path if path.ends_with(".json") => {
            let text = std::fs::read_to_string(path).map_err(|e| SimError::Io {
                path: path.into(),
                source: e,
            })?;
            AppSpec::from_json(&text, path)
        }
        other => Err(SimError::UnknownName {
            what: "topology",
            name: other.into(),
            known: BUILTIN.into(),
        }),
    }
}

fn svc(name: &str, cpu_ms: f64, base_ms: f64, mem: f64) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        cpu_ms_per_request: cpu_ms,
        base_latency_ms: base_ms,
        memory_base_mib: mem,
        memory_per_inflight_mib: 0.05,
        idle_cpu_millicores: 1.0,
        requests: Resources::new(200.0, 256.0),
        limits: Resources::new(500.0, 512.0),
        startup_s: 30.0,
        initial_replicas: 1,
        max_replicas: 50,
        timeout_ms: 10_000.0,
        parallel_calls: false,
    }
}

/// An event-driven shop (hand-written; the costs are illustrative, not measured; the SLO
/// follows [`AppSpec::default_slo_ms`]):
///
/// ```text
/// gateway -calls-> catalog (x2), orders (x0.3)
/// orders  -calls-> payments, inventory; -publishes-> order-placed (topic)
/// order-placed -> subscribers: notifications, analytics, shipping
/// shipping -produces-> shipment-jobs (queue) -> consumed by shipment-worker
/// ```
pub fn event_driven() -> AppSpec {
    let app = AppSpec {
        name: "event-driven".into(),
        description:
            "An event-driven shop with a topic and a queue; hand-written, costs illustrative".into(),
        slo_ms: 1.0,
        nominal_peak_rps: 400.0,
        services: vec![
            svc("gateway", 0.8, 2.0, 64.0),
            svc("catalog", 1.5, 3.0, 128.0),
            svc("orders", 4.0, 5.0, 192.0),
            svc("payments", 3.0, 20.0, 128.0),
            svc("inventory", 2.0, 4.0, 128.0),
            svc("notifications", 2.5, 10.0, 96.0),
            svc("analytics", 5.0, 2.0, 256.0),
            svc("shipping", 3.0, 5.0, 128.0),
            svc("shipment-worker", 8.0, 15.0, 192.0),
        ],
        queues: vec!["shipment-jobs".into()],
        topics: vec!["order-placed".into()],
        edges: vec![
            Edge::new("gateway", "catalog", Relation::Calls, 2.0),
            Edge::new("gateway", "orders", Relation::Calls, 0.3),
            Edge::new("orders", "payments", Relation::Calls, 1.0),
            Edge::new("orders", "inventory", Relation::Calls, 1.0),
            Edge::new("orders", "order-placed", Relation::Publishes, 1.0),
            Edge::new("notifications", "order-placed", Relation::Subscribes, 1.0),
            Edge::new("analytics", "order-placed", Relation::Subscribes, 1.0),
            Edge::new("shipping", "order-placed", Relation::Subscribes, 1.0),
            Edge::new("shipping", "shipment-jobs", Relation::Produces, 1.0),
            Edge::new("shipment-worker", "shipment-jobs", Relation::Consumes, 1.0),
        ],
        entries: vec![EntrySpec {
            service: "gateway".into(),
            share: 1.0,
        }],
        nodes: vec![],
        cluster_autoscaler: None,
    };
    AppSpec {
        slo_ms: app.default_slo_ms(),
        ..app
    }
}

/// A seeded random application of `n` services: layers of growing width, each non-entry
/// service called by one to three services of earlier layers (preferring popular ones), call
/// ratios 0.2..1, CPU 0.5..5 ms per request. About 1 % of services (at least one) are entries.
/// The peak and SLO follow the calibration rules of [`crate::calibrate`] approximately:
/// the busiest service needs about 10 replicas at peak.
pub fn random_app(n: usize, seed: u64) -> Result<AppSpec, SimError> {
    if !(1..=10_000).contains(&n) {
        return Err(SimError::InvalidSpec {
            field: "topology.random".into(),
            reason: format!("service count must be in 1..=10000, got {n}"),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let entries = (n / 100).max(1);
    let mut services = Vec::with_capacity(n);
    for i in 0..n {
        let cpu = (rng.random_range(0.5f64..5.0) * 100.0).round() / 100.0;
        let base = (rng.random_range(0.5f64..5.0) * 10.0).round() / 10.0;
        services.push(svc(
            &format!("svc-{i:05}"),
            cpu,
            base,
            rng.random_range(32.0f64..256.0).round(),
        ));
    }
    let mut edges = Vec::new();
    let mut popularity = vec![1.0f64; n];
    let mut depth = vec![0usize; n];
    let mut visits = vec![0.0f64; n];
    for (e, v) in visits.iter_mut().enumerate().take(entries) {
        *v = 1.0 / entries as f64;
        let _ = e;
    }
    for i in entries..n {
        let k = rng.random_range(1..=3usize).min(i);
        let mut callers: Vec<usize> = Vec::with_capacity(k);
        while callers.len() < k {
            // Preferential attachment over earlier services, biased to shallow callers.
            let total: f64 = popularity[..i].iter().sum();
            let mut x = rng.random_range(0.0..total);
            let mut pick = 0;
            for (j, p) in popularity[..i].iter().enumerate() {
                if x < *p {
                    pick = j;
                    break;
                }
                x -= p;
            }
            if !callers.contains(&pick) {
                callers.push(pick);
            }
        }
        for c in callers {
            let ratio = (rng.random_range(0.2f64..1.0) * 100.0).round() / 100.0;
            edges.push(Edge::new(
                &services[c].name,
                &services[i].name,
                Relation::Calls,
                ratio,
            ));
            popularity[c] += 1.0;
            depth[i] = depth[i].max(depth[c] + 1);
            visits[i] += visits[c] * ratio;
        }
        popularity[i] = 1.0 / (1.0 + depth[i] as f64);
    }
    let busiest = services
        .iter()
        .zip(&visits)
        .map(|(s, v)| s.cpu_ms_per_request * v)
        .fold(0.0, f64::max);
    let peak = ((10.0 * 0.8 * 200.0 / busiest) / 10.0).ceil() * 10.0;
    let app = AppSpec {
        name: format!("random-{n}-{seed}"),
        description: format!("seeded random layered call graph, {n} services, seed {seed}"),
        slo_ms: 1.0,
        nominal_peak_rps: peak,
        services,
        queues: vec![],
        topics: vec![],
        edges,
        entries: vec![],
        nodes: vec![],
        cluster_autoscaler: None,
    };
    let app = AppSpec {
        slo_ms: app.default_slo_ms(),
        ..app
    };
    app.validate()?;
    Ok(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load_and_unknown_names_fail() {
        for name in [
            "ob",
            "tt",
            "alibaba",
            "event-driven",
            "random:50",
            "random:20:7",
        ] {
            let app = builtin(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!app.services.is_empty());
        }
        let e = builtin("hipster").unwrap_err().to_string();
        assert!(
            e.contains("unknown topology `hipster`") && e.contains("online-boutique"),
            "{e}"
        );
        assert!(builtin("random:0").is_err());
        assert!(builtin("random:x").is_err());
        assert!(builtin("/nonexistent/app.json")
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/app.json"));
    }

    #[test]
    fn random_graph_is_deterministic_and_sized() {
        let a = random_app(500, 3).unwrap();
        let b = random_app(500, 3).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.services.len(), 500);
        assert_ne!(a, random_app(500, 4).unwrap());
        assert!(random_app(10_000, 1).is_ok());
        assert!(random_app(10_001, 1).is_err());
    }
}
