//! The safety layer: every planned replica count passes through [`guard`] before it is
//! written. It falls back to the reactive HPA rule when the model is unhealthy, never scales
//! down on missing data, gates on forecast confidence, applies hysteresis, per-direction
//! cooldowns, a maximum step and the bounds, and says which rule fired.
//!
//! The order of the rules is fixed (see [`guard`]) and documented in `docs/planner.md`.

use graphscale_core::{Millis, Reason, ScalingDecision};
use serde::{Deserialize, Serialize};

use crate::PlanError;

/// Safety settings; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SafetyConfig {
    /// Lower bound on replicas; default 1.
    pub min_replicas: u32,
    /// Upper bound on replicas; default 50.
    pub max_replicas: u32,
    /// Hysteresis: scale up only when the plan exceeds the current count by more than this
    /// share of it; default 0.0 (any increase).
    pub up_threshold: f64,
    /// Hysteresis: scale down only when the plan is below the current count by at least this
    /// share of it; default 0.1.
    pub down_threshold: f64,
    /// No scale-up within this many seconds of the last scale-up; default 0.
    pub cooldown_up_s: f64,
    /// No scale-down within this many seconds of the last scaling in either direction;
    /// default 60.
    pub cooldown_down_s: f64,
    /// Largest scale-up per decision as a factor of the current count; default 3.
    pub max_up_factor: f64,
    /// Scale-up may always add at least this many pods; default 4.
    pub min_up_pods: u32,
    /// Largest scale-down per decision as a share of the current count; default 0.5.
    pub max_down_share: f64,
    /// Confidence gate: when the forecast interval is wider than this share of the point
    /// forecast, do not scale down; default 1.0.
    pub max_relative_width: f64,
    /// Fall back to the HPA rule when the recent relative forecast error exceeds this;
    /// default 0.5.
    pub max_recent_error: f64,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            min_replicas: 1,
            max_replicas: 50,
            up_threshold: 0.0,
            down_threshold: 0.1,
            cooldown_up_s: 0.0,
            cooldown_down_s: 60.0,
            max_up_factor: 3.0,
            min_up_pods: 4,
            max_down_share: 0.5,
            max_relative_width: 1.0,
            max_recent_error: 0.5,
        }
    }
}

impl SafetyConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), PlanError> {
        let bad = |field: &str, reason: String| {
            Err(PlanError::InvalidConfig {
                workload: "*".into(),
                field: format!("safety.{field}"),
                reason,
            })
        };
        if self.min_replicas > self.max_replicas {
            return bad(
                "min_replicas",
                format!("min {} > max {}", self.min_replicas, self.max_replicas),
            );
        }
        for (f, v, lo, hi) in [
            ("up_threshold", self.up_threshold, 0.0, 10.0),
            ("down_threshold", self.down_threshold, 0.0, 1.0),
            ("cooldown_up_s", self.cooldown_up_s, 0.0, 86_400.0),
            ("cooldown_down_s", self.cooldown_down_s, 0.0, 86_400.0),
            ("max_up_factor", self.max_up_factor, 1.0, 1000.0),
            ("max_down_share", self.max_down_share, 0.0, 1.0),
            ("max_relative_width", self.max_relative_width, 0.0, 1e9),
            ("max_recent_error", self.max_recent_error, 0.0, 1e9),
        ] {
            if !(v.is_finite() && (lo..=hi).contains(&v)) {
                return bad(f, format!("must be in {lo}..={hi}, got {v}"));
            }
        }
        Ok(())
    }
}

/// Scale events the cooldowns read; one per workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SafetyState {
    /// Last scale-up.
    pub last_up: Option<Millis>,
    /// Last scale-down.
    pub last_down: Option<Millis>,
    /// Last CPU request change ([`crate::cpu_request`]).
    pub last_cpu_resize: Option<Millis>,
}

/// How trustworthy the model's input and output are right now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// A metric the plan needs is missing (no rate, no CPU sample).
    pub missing: Option<String>,
    /// The newest metric is older than allowed.
    pub stale: Option<String>,
    /// Recent relative forecast error (mean absolute), if measured.
    pub recent_error: Option<f64>,
}

/// What the planner proposes for one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Planned replicas, `None` when the planner could not plan.
    pub replicas: Option<u32>,
    /// Width of the forecast interval as a share of the point forecast.
    pub relative_width: Option<f64>,
    /// The planner's reasons.
    pub reasons: Vec<Reason>,
    /// What the reactive HPA rule would set, with its reason: the fallback.
    pub hpa_rule: Option<(u32, String)>,
}

/// Runs the rules, in order: (1) fallback to `hpa_rule` when the model is unhealthy or the
/// plan is missing or not finite; (2) no scale-down on missing data; (3) the confidence gate;
/// (4) hysteresis; (5) cooldowns; (6) the maximum step; (7) bounds. Records the scale event in
/// `state` when the count changes.
pub fn guard(
    cfg: &SafetyConfig,
    state: &mut SafetyState,
    now: Millis,
    workload: &str,
    current: u32,
    proposal: Proposal,
    health: &Health,
) -> ScalingDecision {
    let hpa_rule = proposal.hpa_rule;
    let mut reasons = proposal.reasons;
    let mut unhealthy = Vec::new();
    if let Some(m) = &health.missing {
        unhealthy.push(format!("missing metrics: {m}"));
    }
    if let Some(s) = &health.stale {
        unhealthy.push(format!("stale metrics: {s}"));
    }
    if let Some(e) = health.recent_error {
        if !e.is_finite() || e > cfg.max_recent_error {
            unhealthy.push(format!(
                "recent forecast error {:.0} % > {:.0} %",
                e * 100.0,
                cfg.max_recent_error * 100.0
            ));
        }
    }
    if proposal.replicas.is_none() {
        unhealthy.push("no plan".into());
    }
    // 1. Fallback.
    let mut target = match (proposal.replicas, unhealthy.is_empty()) {
        (Some(r), true) => r,
        _ => match hpa_rule {
            Some((r, why)) => {
                reasons.push(Reason::new(
                    "safety.fallback_hpa",
                    format!(
                        "{}: the reactive HPA rule decides ({why})",
                        unhealthy.join("; ")
                    ),
                ));
                r
            }
            None => {
                reasons.push(Reason::new(
                    "safety.hold",
                    format!("{}, and no HPA rule either: hold", unhealthy.join("; ")),
                ));
                current
            }
        },
    };
    // 2. Never scale down on missing data.
    if health.missing.is_some() && target < current {
        reasons.push(Reason::new(
            "safety.no_scale_down_on_missing_data",
            format!("{target} < {current} with metrics missing: hold"),
        ));
        target = current;
    }
    // 3. Confidence gate.
    if let Some(w) = proposal.relative_width {
        if (!w.is_finite() || w > cfg.max_relative_width) && target < current {
            reasons.push(Reason::new(
                "safety.confidence_gate",
                format!(
                    "interval width {:.0} % of the forecast > {:.0} %: no scale-down",
                    w * 100.0,
                    cfg.max_relative_width * 100.0
                ),
            ));
            target = current;
        }
    }
    // 4. Hysteresis.
    if target > current && (target - current) as f64 <= cfg.up_threshold * current as f64 {
        reasons.push(Reason::new(
            "safety.hysteresis",
            format!(
                "{current} -> {target} is within the {:.0} % up threshold: hold",
                cfg.up_threshold * 100.0
            ),
        ));
        target = current;
    }
    if target < current && ((current - target) as f64) < cfg.down_threshold * current as f64 {
        reasons.push(Reason::new(
            "safety.hysteresis",
            format!(
                "{current} -> {target} is within the {:.0} % down threshold: hold",
                cfg.down_threshold * 100.0
            ),
        ));
        target = current;
    }
    // 5. Cooldowns.
    let since = |t: Option<Millis>| t.map(|t| now.saturating_sub(t).as_secs_f64());
    if target > current {
        if let Some(s) = since(state.last_up).filter(|s| *s < cfg.cooldown_up_s) {
            reasons.push(Reason::new(
                "safety.cooldown_up",
                format!(
                    "last scale-up {s:.0} s ago < {:.0} s: hold",
                    cfg.cooldown_up_s
                ),
            ));
            target = current;
        }
    } else if target < current {
        let last = match (state.last_up, state.last_down) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(s) = since(last).filter(|s| *s < cfg.cooldown_down_s) {
            reasons.push(Reason::new(
                "safety.cooldown_down",
                format!(
                    "last scaling {s:.0} s ago < {:.0} s: no scale-down",
                    cfg.cooldown_down_s
                ),
            ));
            target = current;
        }
    }
    // 6. Maximum step.
    let up_limit = ((current as f64 * cfg.max_up_factor).floor() as u32)
        .max(current.saturating_add(cfg.min_up_pods));
    if target > up_limit {
        reasons.push(Reason::new(
            "safety.max_step_up",
            format!("{current} -> {target} exceeds the step limit: {up_limit}"),
        ));
        target = up_limit;
    }
    let down_limit =
        current.saturating_sub(((current as f64 * cfg.max_down_share).ceil() as u32).max(1));
    if target < down_limit {
        reasons.push(Reason::new(
            "safety.max_step_down",
            format!("{current} -> {target} exceeds the step limit: {down_limit}"),
        ));
        target = down_limit;
    }
    // 7. Bounds.
    let bounded = target.clamp(cfg.min_replicas, cfg.max_replicas);
    if bounded != target {
        reasons.push(Reason::new(
            "safety.bounds",
            format!(
                "{target} outside [{}, {}]: {bounded}",
                cfg.min_replicas, cfg.max_replicas
            ),
        ));
        target = bounded;
    }
    if target > current {
        state.last_up = Some(now);
    } else if target < current {
        state.last_down = Some(now);
    }
    ScalingDecision {
        workload: workload.to_string(),
        replicas: target,
        reasons,
        resources: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(r: u32) -> Proposal {
        Proposal {
            replicas: Some(r),
            relative_width: Some(0.2),
            reasons: vec![],
            hpa_rule: Some((7, "cpu 90 %".into())),
        }
    }

    fn run(
        cfg: &SafetyConfig,
        st: &mut SafetyState,
        t: u64,
        cur: u32,
        p: Proposal,
        h: &Health,
    ) -> ScalingDecision {
        guard(cfg, st, Millis::from_secs(t), "w", cur, p, h)
    }

    fn fired(d: &ScalingDecision, rule: &str) -> bool {
        d.reasons.iter().any(|r| r.rule == rule)
    }

    #[test]
    fn each_rule_fires_on_its_own() {
        let c = SafetyConfig {
            down_threshold: 0.15,
            cooldown_down_s: 120.0,
            ..SafetyConfig::default()
        };
        let h = Health::default();
        // Fallback on a bad model.
        let sick = Health {
            recent_error: Some(0.9),
            ..Health::default()
        };
        let d = run(&c, &mut SafetyState::default(), 1000, 5, ok(2), &sick);
        assert_eq!(d.replicas, 7);
        assert!(fired(&d, "safety.fallback_hpa"));
        // No plan and no HPA rule: hold.
        let d = guard(
            &c,
            &mut SafetyState::default(),
            Millis(0),
            "w",
            5,
            Proposal {
                replicas: None,
                relative_width: None,
                reasons: vec![],
                hpa_rule: None,
            },
            &h,
        );
        assert_eq!(d.replicas, 5);
        assert!(fired(&d, "safety.hold"));
        // Missing data: the HPA rule may scale up but nothing scales down.
        let missing = Health {
            missing: Some("rps".into()),
            ..Health::default()
        };
        let mut p = ok(2);
        p.hpa_rule = Some((3, "x".into()));
        let d = guard(
            &c,
            &mut SafetyState::default(),
            Millis(0),
            "w",
            9,
            p,
            &missing,
        );
        assert_eq!(d.replicas, 9);
        assert!(fired(&d, "safety.no_scale_down_on_missing_data"));
        // Confidence gate.
        let mut wide = ok(2);
        wide.relative_width = Some(3.0);
        let d = run(&c, &mut SafetyState::default(), 1000, 5, wide, &h);
        assert_eq!(d.replicas, 5);
        assert!(fired(&d, "safety.confidence_gate"));
        // Hysteresis: 10 -> 9 is 10 % < 15 %.
        let d = run(&c, &mut SafetyState::default(), 1000, 10, ok(9), &h);
        assert_eq!(d.replicas, 10);
        assert!(fired(&d, "safety.hysteresis"));
        // Cooldown after a scale-up.
        let mut st = SafetyState::default();
        assert_eq!(run(&c, &mut st, 1000, 2, ok(4), &h).replicas, 4);
        let d = run(&c, &mut st, 1060, 4, ok(1), &h);
        assert_eq!(d.replicas, 4);
        assert!(fired(&d, "safety.cooldown_down"));
        let d = run(&c, &mut st, 1121, 4, ok(1), &h);
        assert_eq!(d.replicas, 2, "after the cooldown, down by at most half");
        assert!(fired(&d, "safety.max_step_down"));
        // Step up: 2 -> max(6, 2 + 4) = 6.
        let d = run(&c, &mut SafetyState::default(), 1000, 2, ok(40), &h);
        assert_eq!(d.replicas, 6);
        assert!(fired(&d, "safety.max_step_up"));
        // Bounds.
        let d = run(&c, &mut SafetyState::default(), 1000, 50, ok(60), &h);
        assert_eq!(d.replicas, 50);
        assert!(fired(&d, "safety.bounds"));
    }

    proptest! {
        #[test]
        fn invariants_hold(
            current in 1u32..60,
            plan in proptest::option::of(0u32..500),
            width in proptest::option::of(0.0f64..5.0),
            err in proptest::option::of(0.0f64..2.0),
            missing in any::<bool>(),
            hpa in 0u32..500,
            last_up in proptest::option::of(0u64..2000),
            last_down in proptest::option::of(0u64..2000),
            now in 0u64..2000,
        ) {
            let c = SafetyConfig::default();
            let mut st = SafetyState {
                last_up: last_up.filter(|t| *t <= now).map(Millis::from_secs),
                last_down: last_down.filter(|t| *t <= now).map(Millis::from_secs),
                last_cpu_resize: None,
            };
            let before = st.clone();
            let h = Health {
                missing: missing.then(|| "rps".to_string()),
                stale: None,
                recent_error: err,
            };
            let p = Proposal { replicas: plan, relative_width: width, reasons: vec![], hpa_rule: Some((hpa, "rule".into())) };
            let d = guard(&c, &mut st, Millis::from_secs(now), "w", current, p, &h);
            prop_assert!(d.replicas >= c.min_replicas && d.replicas <= c.max_replicas);
            if current <= c.max_replicas {
                let up_limit = ((current as f64 * c.max_up_factor) as u32).max(current + c.min_up_pods);
                prop_assert!(d.replicas <= up_limit.max(c.min_replicas));
                prop_assert!(d.replicas as f64 >= current as f64 * (1.0 - c.max_down_share) - 1.0);
            }
            if missing {
                prop_assert!(d.replicas >= current.min(c.max_replicas));
            }
            let last = match (before.last_up, before.last_down) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(l) = last {
                if Millis::from_secs(now).saturating_sub(l).as_secs_f64() < c.cooldown_down_s && current <= c.max_replicas {
                    prop_assert!(d.replicas >= current);
                }
            }
            prop_assert!(!d.reasons.is_empty() || d.replicas == current || plan.is_some());
        }
    }
}
