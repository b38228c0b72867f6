//! The plan board: the last plan of every workload, as the operator's rounds publish it, and
//! what the scaler may answer from it. A plan older than its `stale_after`, or one the round
//! could not forecast for, is refused (an error for KEDA, so that its `fallback` acts), never
//! answered as a number and never as "inactive".

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use graphscale_core::Millis;
use tokio::sync::watch;

use crate::KedaError;

/// Most plans the board keeps: 5 PredictiveAutoscalers at their most targets (the operator's
/// `MAX_TARGETS`, 2,000), as its metrics keep. A plan beyond it is not published (and the
/// publisher is told).
pub const MAX_PLANS: usize = 10_000;

/// Longest reason a refusal quotes, characters.
pub const MAX_REASON_CHARS: usize = 300;

/// The rules of a decision's reasons that say the plan does not come from a forecast: the
/// safety layer handed it to the HPA rule or held, or the forecast failed. KEDA is told, so its
/// `fallback` (or, in the `scalingModifiers` recipe, the CPU trigger) decides.
pub const FAILED_FORECAST_RULES: &[&str] = &[
    "safety.fallback_hpa",
    "safety.hold",
    "forecast.failed",
    "forecast.not_finite",
    "plan.no_forecast",
];

/// One workload's plan, as a round published it.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The PredictiveAutoscaler that planned it.
    pub autoscaler: String,
    /// The replicas planned.
    pub replicas: u32,
    /// When the round decided.
    pub decided_at: Millis,
    /// Age after which the plan is stale (a few sync periods).
    pub stale_after: Millis,
    /// Why this plan is not a forecast's, when it is not (see [`FAILED_FORECAST_RULES`]).
    pub failure: Option<String>,
}

/// (namespace, workload).
type Key = (String, String);

/// The current time, injected (tests move it by hand).
pub type ClockFn = Arc<dyn Fn() -> Millis + Send + Sync>;

/// The plans, shared by the operator (writer) and the scaler (reader).
pub struct PlanBoard {
    plans: RwLock<HashMap<Key, Plan>>,
    changed: watch::Sender<u64>,
    clock: ClockFn,
}

impl std::fmt::Debug for PlanBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanBoard")
            .field("plans", &self.len())
            .finish()
    }
}

/// The wall clock, for the operator.
pub fn wall_clock() -> Millis {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl PlanBoard {
    /// An empty board on `clock`.
    pub fn new(clock: ClockFn) -> Self {
        PlanBoard {
            plans: RwLock::new(HashMap::new()),
            changed: watch::channel(0).0,
            clock,
        }
    }

    /// An empty board on the wall clock.
    pub fn on_wall_clock() -> Self {
        Self::new(Arc::new(wall_clock))
    }

    /// The current time of the board's clock.
    pub fn now(&self) -> Millis {
        (self.clock)()
    }

    /// Plans held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no plan is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Key, Plan>> {
        self.plans.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, Plan>> {
        self.plans.write().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that sees every change of the board (for the streams).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Publishes the plans of one round in `namespace`, by workload. Returns the workloads not
    /// published because the board is full ([`MAX_PLANS`]).
    pub fn publish(
        &self,
        namespace: &str,
        plans: impl IntoIterator<Item = (String, Plan)>,
    ) -> Vec<String> {
        let mut full = Vec::new();
        {
            let mut m = self.write();
            for (workload, plan) in plans {
                let key = (namespace.to_string(), workload);
                if m.len() >= MAX_PLANS && !m.contains_key(&key) {
                    full.push(key.1);
                    continue;
                }
                m.insert(key, plan);
            }
        }
        self.bump();
        full
    }

    /// Replaces every plan of `autoscaler` in `namespace` with `plans` (its latest status), at
    /// once. Returns the workloads left out because the board is full.
    pub fn replace(
        &self,
        namespace: &str,
        autoscaler: &str,
        plans: impl IntoIterator<Item = (String, Plan)>,
    ) -> Vec<String> {
        let mut full = Vec::new();
        {
            let mut m = self.write();
            m.retain(|(ns, _), p| !(ns == namespace && p.autoscaler == autoscaler));
            for (workload, plan) in plans {
                if m.len() >= MAX_PLANS {
                    full.push(workload);
                    continue;
                }
                m.insert((namespace.to_string(), workload), plan);
            }
        }
        self.bump();
        full
    }

    /// Keeps only the plans of the autoscalers `keep(namespace, autoscaler)` accepts (after a
    /// relist: the others were deleted meanwhile).
    pub fn retain_autoscalers(&self, keep: impl Fn(&str, &str) -> bool) {
        self.write().retain(|(ns, _), p| keep(ns, &p.autoscaler));
        self.bump();
    }

    /// Marks every plan of `autoscaler` in `namespace` failed (its round could not run): they
    /// are refused until the next round publishes.
    pub fn fail(&self, namespace: &str, autoscaler: &str, why: &str) {
        {
            let mut m = self.write();
            for ((ns, _), p) in m.iter_mut() {
                if ns == namespace && p.autoscaler == autoscaler {
                    p.failure = Some(short(why));
                }
            }
        }
        self.bump();
    }

    /// Removes the plans of `autoscaler` in `namespace`: all of them, or only `workloads`.
    pub fn forget(&self, namespace: &str, autoscaler: &str, workloads: Option<&[String]>) {
        {
            let mut m = self.write();
            m.retain(|(ns, w), p| {
                !(ns == namespace
                    && p.autoscaler == autoscaler
                    && workloads.is_none_or(|ws| ws.contains(w)))
            });
        }
        self.bump();
    }

    /// The plan of `workload` in `namespace`, if it may be answered now: known, planned by
    /// `autoscaler` when one is named, fresh and from a forecast.
    pub fn lookup(
        &self,
        namespace: &str,
        workload: &str,
        autoscaler: Option<&str>,
    ) -> Result<Plan, KedaError> {
        let key = (namespace.to_string(), workload.to_string());
        let plan = self.read().get(&key).cloned();
        let Some(plan) = plan else {
            return Err(KedaError::NoPlan {
                namespace: namespace.to_string(),
                workload: workload.to_string(),
            });
        };
        if let Some(a) = autoscaler {
            if a != plan.autoscaler {
                return Err(KedaError::OtherAutoscaler {
                    namespace: namespace.to_string(),
                    workload: workload.to_string(),
                    asked: a.to_string(),
                    planner: plan.autoscaler,
                });
            }
        }
        let age = self.now().saturating_sub(plan.decided_at);
        if age > plan.stale_after {
            return Err(KedaError::Stale {
                namespace: namespace.to_string(),
                workload: workload.to_string(),
                age_s: age.as_secs_f64(),
                limit_s: plan.stale_after.as_secs_f64(),
            });
        }
        if let Some(why) = &plan.failure {
            return Err(KedaError::NoForecast {
                namespace: namespace.to_string(),
                workload: workload.to_string(),
                why: why.clone(),
            });
        }
        Ok(plan)
    }
}

/// Why a decision is not a forecast's: the detail of its first reason in
/// [`FAILED_FORECAST_RULES`], shortened; `None` for a forecast's plan.
pub fn failure_of(reasons: &[graphscale_core::Reason]) -> Option<String> {
    reasons
        .iter()
        .find(|r| FAILED_FORECAST_RULES.contains(&r.rule.as_str()))
        .map(|r| short(&format!("{}: {}", r.rule, r.detail)))
}

/// `s` cut to [`MAX_REASON_CHARS`] characters.
pub fn short(s: &str) -> String {
    match s.char_indices().nth(MAX_REASON_CHARS) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn board() -> (PlanBoard, Arc<AtomicU64>) {
        let t = Arc::new(AtomicU64::new(100_000));
        let c = t.clone();
        (
            PlanBoard::new(Arc::new(move || Millis(c.load(Ordering::Relaxed)))),
            t,
        )
    }

    fn plan(replicas: u32, at: u64) -> Plan {
        Plan {
            autoscaler: "shop".into(),
            replicas,
            decided_at: Millis(at),
            stale_after: Millis(45_000),
            failure: None,
        }
    }

    #[test]
    fn a_fresh_plan_is_answered_and_a_stale_one_refused() {
        let (b, t) = board();
        b.publish("default", [("cart".to_string(), plan(4, 100_000))]);
        assert_eq!(b.lookup("default", "cart", None).unwrap().replicas, 4);
        assert_eq!(
            b.lookup("default", "cart", Some("shop")).unwrap().replicas,
            4
        );
        t.store(145_000, Ordering::Relaxed);
        assert!(
            b.lookup("default", "cart", None).is_ok(),
            "45 s is the limit"
        );
        t.store(145_001, Ordering::Relaxed);
        let e = b.lookup("default", "cart", None).unwrap_err().to_string();
        assert!(
            e.contains("45.0 s old") && e.contains("default/cart"),
            "{e}"
        );
    }

    #[test]
    fn unknown_other_failed_and_forgotten_plans_are_refused_by_name() {
        let (b, _) = board();
        b.publish(
            "default",
            [
                ("cart".to_string(), plan(4, 100_000)),
                ("ads".to_string(), plan(2, 100_000)),
            ],
        );
        let e = b.lookup("default", "nope", None).unwrap_err().to_string();
        assert!(e.contains("no plan for default/nope"), "{e}");
        let e = b.lookup("other", "cart", None).unwrap_err().to_string();
        assert!(e.contains("other/cart"), "{e}");
        let e = b
            .lookup("default", "cart", Some("web"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("planned by shop, not web"), "{e}");
        b.fail("default", "shop", "metrics: Prometheus did not answer");
        let e = b.lookup("default", "cart", None).unwrap_err().to_string();
        assert!(e.contains("Prometheus did not answer"), "{e}");
        b.publish("default", [("cart".to_string(), plan(5, 100_000))]);
        assert_eq!(b.lookup("default", "cart", None).unwrap().replicas, 5);
        b.forget("default", "shop", Some(&["ads".to_string()]));
        assert!(b.lookup("default", "ads", None).is_err());
        assert!(b.lookup("default", "cart", None).is_ok());
        b.forget("default", "shop", None);
        assert!(b.is_empty());
        // A status replaces all of its autoscaler's plans and no other's.
        b.publish("default", [("cart".to_string(), plan(4, 100_000))]);
        b.publish(
            "default",
            [(
                "web".to_string(),
                Plan {
                    autoscaler: "front".into(),
                    ..plan(1, 100_000)
                },
            )],
        );
        b.replace("default", "shop", [("ads".to_string(), plan(2, 100_000))]);
        assert!(b.lookup("default", "cart", None).is_err());
        assert_eq!(b.lookup("default", "ads", None).unwrap().replicas, 2);
        assert!(b.lookup("default", "web", None).is_ok());
        b.retain_autoscalers(|_, a| a == "front");
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_plan_from_the_fallback_is_refused_with_its_reason() {
        use graphscale_core::Reason;
        let why = failure_of(&[
            Reason::new("hpa.cpu", "x"),
            Reason::new(
                "safety.fallback_hpa",
                "no plan: the reactive HPA rule decides",
            ),
        ]);
        assert_eq!(
            why.as_deref(),
            Some("safety.fallback_hpa: no plan: the reactive HPA rule decides")
        );
        assert_eq!(failure_of(&[Reason::new("forecast.demand", "ok")]), None);
        let (b, _) = board();
        b.publish(
            "default",
            [(
                "cart".to_string(),
                Plan {
                    failure: why,
                    ..plan(3, 100_000)
                },
            )],
        );
        let e = b.lookup("default", "cart", None).unwrap_err().to_string();
        assert!(e.contains("fallback_hpa"), "{e}");
        assert!(short(&"x".repeat(10_000)).len() < 400);
    }

    #[test]
    fn the_board_is_bounded() {
        let (b, _) = board();
        let full = b.publish(
            "default",
            (0..MAX_PLANS + 3).map(|i| (format!("w{i}"), plan(1, 100_000))),
        );
        assert_eq!(b.len(), MAX_PLANS);
        assert_eq!(full.len(), 3);
        // A known workload is still updated.
        b.publish("default", [("w0".to_string(), plan(7, 100_000))]);
        assert_eq!(b.lookup("default", "w0", None).unwrap().replicas, 7);
    }
}
