//! A cost per scaling action: the predictive autoscaler scales down as soon as the forecast
//! allows, and only when the pods it removes will not be needed again before removing them pays.
//!
//! Removing a pod saves its request for as long as it stays removed. If it is needed again
//! within `T`, the round trip costs its start-up (the new pod holds its request `startup` seconds
//! before it serves) plus the disruption of the removal (drained connections, cold caches),
//! counted as `disruption_s` seconds of the pod's request. A removal pays off when `T` exceeds
//! their sum, the break-even time. So a scale-down to `n` pods is made only when:
//!
//! 1. the plan at the forecast's peak over the lead time **plus the break-even time**, raised by
//!    `down_band`, needs no more than `n` (forward: demand the forecast expects soon keeps its
//!    pods), and
//! 2. every plan of the last `confirm_s` seconds needed no more than `n` (backward: one low
//!    sample of a noisy load is not a trend).
//!
//! Otherwise the count is held at the least count that satisfies both ([`hold_down`]), and the
//! decision says why (`plan.hold_down`). A scale-down must also remove at least
//! `min_down_share` of the pods: a load that ebbs slowly is then followed in a few large steps
//! rather than one pod at a time. Scale-ups are never held here: the SLO comes first; with
//! `min_up_share` they add at least that share of the pods ([`raise_up`], `plan.step_up`), so
//! a ramp takes fewer steps. The safety layer's rules still apply to both directions
//! afterwards. The HPA's stabilisation waits a fixed 300 s after every change of its
//! recommendation instead, and its 10 % tolerance skips small changes (shared/HPA.md).

use std::collections::VecDeque;

use graphscale_core::{Millis, Reason};
use serde::{Deserialize, Serialize};

use crate::PlanError;

/// Settings of the action cost; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChurnConfig {
    /// The disruption of removing a pod, in seconds of its request (connections drained,
    /// caches lost); default 30. With the pods' start-up it makes the break-even time.
    pub disruption_s: f64,
    /// A scale-down needs every plan of this many seconds to allow it; default 60 (four sync
    /// periods; the simulated load's noise is correlated over about 50 s).
    pub confirm_s: f64,
    /// The demand a lower count must serve over the break-even time is raised by this share;
    /// default 0.1 (a load's 2-sigma noise in the built-in scenarios, so noise around a
    /// replica boundary does not flip the count).
    pub down_band: f64,
    /// A scale-down is made only when it removes at least this share of the current pods
    /// (rounded up to whole pods); a smaller one waits for a larger step. Default 0 (any step).
    pub min_down_share: f64,
    /// A scale-up adds at least this share of the current pods (rounded up to whole pods), so a
    /// ramp is met in fewer, larger steps; default 0 (the plan's count).
    pub min_up_share: f64,
    /// Memory-aware holds: with a node shape (GiB of memory per core), a service whose held pod
    /// would cost more than half of a full pod keeps only the quick settings (60 s of plans, any
    /// step). A pod's cost is its share of such a node, the larger of its CPU request and its
    /// memory request over this ratio. A held pod adds its memory request and, with CPU requests
    /// sized to the plan, about the least CPU request (the pods share the demand); without them
    /// its full CPU request. Default none: `confirm_s` and the least steps apply to every
    /// service.
    pub node_gib_per_core: Option<f64>,
}

impl Default for ChurnConfig {
    fn default() -> Self {
        ChurnConfig {
            disruption_s: 30.0,
            confirm_s: 60.0,
            down_band: 0.1,
            min_down_share: 0.0,
            min_up_share: 0.0,
            node_gib_per_core: None,
        }
    }
}

impl ChurnConfig {
    /// The settings of `graphscale`, whose pods' CPU requests follow the plan and whose memory
    /// is resized: a pod kept beyond the plan costs its idle CPU and its (resized) memory, not
    /// a full request, so scale-downs wait for 900 s of plans and a 25 % band and remove at
    /// least half of the pods, and scale-ups add at least half. Chosen by a grid over
    /// `confirm_s`, `min_down_share` and `min_up_share` on seeds 1-5 of issue #17's 20 short
    /// cells (docs/planner.md).
    pub fn for_sized_pods() -> Self {
        ChurnConfig {
            disruption_s: 30.0,
            confirm_s: 900.0,
            down_band: 0.25,
            min_down_share: 0.5,
            min_up_share: 0.5,
            node_gib_per_core: None,
        }
    }

    /// The settings for one service whose pods hold `held` and would hold `full` (CPU
    /// millicores, memory MiB): these, or with `node_gib_per_core` set and a held pod costing
    /// more than half of a full one, the quick holds (the defaults' `confirm_s`, any step).
    pub fn for_pod(&self, held: (f64, f64), full: (f64, f64)) -> ChurnConfig {
        let Some(r) = self.node_gib_per_core.filter(|r| *r > 0.0) else {
            return self.clone();
        };
        // Core-equivalents on a node of `r` GiB per core.
        let cost = |(cpu_mc, mem_mib): (f64, f64)| (cpu_mc / 1000.0).max(mem_mib / 1024.0 / r);
        let (h, f) = (cost(held), cost(full));
        if f > 0.0 && h.is_finite() && h <= 0.5 * f {
            return self.clone();
        }
        let quick = ChurnConfig::default();
        ChurnConfig {
            confirm_s: quick.confirm_s.min(self.confirm_s),
            min_down_share: 0.0,
            min_up_share: 0.0,
            ..self.clone()
        }
    }
}

/// Longest `disruption_s` and `confirm_s` accepted, seconds (one hour).
pub const MAX_CHURN_S: f64 = 3600.0;

impl ChurnConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), PlanError> {
        for (field, v, hi) in [
            ("churn.disruption_s", self.disruption_s, MAX_CHURN_S),
            ("churn.confirm_s", self.confirm_s, MAX_CHURN_S),
            ("churn.down_band", self.down_band, 10.0),
            ("churn.min_down_share", self.min_down_share, 1.0),
            ("churn.min_up_share", self.min_up_share, 10.0),
        ] {
            if !(v.is_finite() && (0.0..=hi).contains(&v)) {
                return Err(PlanError::InvalidConfig {
                    workload: "*".into(),
                    field: field.into(),
                    reason: format!("must be in 0..={hi}, got {v}"),
                });
            }
        }
        if let Some(r) = self.node_gib_per_core {
            if !(r.is_finite() && r > 0.0 && r <= 1024.0) {
                return Err(PlanError::InvalidConfig {
                    workload: "*".into(),
                    field: "churn.node_gib_per_core".into(),
                    reason: format!("must be in (0, 1024] GiB per core, got {r}"),
                });
            }
        }
        Ok(())
    }

    /// The break-even time of removing a pod that starts in `startup_s`, seconds.
    pub fn break_even_s(&self, startup_s: f64) -> f64 {
        startup_s.max(0.0) + self.disruption_s
    }
}

/// The plans of one service over the last `confirm_s` seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanHistory {
    plans: VecDeque<(Millis, u32)>,
}

/// Plans kept at most (an hour at a 1-s sync period bounds the memory).
const MAX_PLANS: usize = 3600;

impl PlanHistory {
    /// Records the plan of `now` and forgets those older than `keep_s`.
    pub fn record(&mut self, now: Millis, plan: u32, keep_s: f64) {
        let keep = Millis::from_secs_f64(keep_s);
        while let Some(&(t, _)) = self.plans.front() {
            if now.saturating_sub(t) > keep || self.plans.len() >= MAX_PLANS {
                self.plans.pop_front();
            } else {
                break;
            }
        }
        self.plans.push_back((now, plan));
    }

    /// The largest plan recorded within `keep_s` of `now`, this one included.
    pub fn max_since(&self, now: Millis, keep_s: f64) -> Option<u32> {
        let keep = Millis::from_secs_f64(keep_s);
        self.plans
            .iter()
            .filter(|(t, _)| now.saturating_sub(*t) <= keep)
            .map(|(_, p)| *p)
            .max()
    }
}

/// What [`hold_down`] weighs for one service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DownCheck {
    /// Replicas now (`spec.replicas`).
    pub current: u32,
    /// The plan of this decision.
    pub plan: u32,
    /// The plan at the held demand (forecast peak over the lead and the break-even time).
    pub hold_plan: Option<u32>,
    /// The largest plan of the last `confirm_s` seconds.
    pub recent_max: Option<u32>,
    /// The held demand, rps (for the reason).
    pub hold_rps: Option<f64>,
    /// Seconds the held demand looks ahead.
    pub horizon_s: f64,
    /// The break-even time, seconds.
    pub break_even_s: f64,
}

/// The count to set: `plan` when it does not scale down; otherwise the least count, between
/// `plan` and `current`, that the forward and backward tests allow, with the reason when it
/// holds pods the plan would remove.
pub fn hold_down(cfg: &ChurnConfig, c: &DownCheck) -> (u32, Option<Reason>) {
    if c.plan >= c.current {
        return (c.plan, None);
    }
    let forward = c.hold_plan.unwrap_or(c.current);
    let backward = c.recent_max.unwrap_or(c.current);
    let keep = forward.max(backward).clamp(c.plan, c.current);
    // The least step a scale-down may make, whole pods: a smaller one waits.
    let min_step = (cfg.min_down_share * c.current as f64).ceil().max(1.0) as u32;
    if keep < c.current && c.current - keep < min_step {
        let reason = Reason::new(
            "plan.hold_down",
            format!(
                "the plan allows {} of {} replicas but {} are kept: the forecast over the break-even time and the plans of the last {:.0} s allow {keep}, and a scale-down removes at least {min_step} pods ({:.0} % of them; each action has a cost)",
                c.plan,
                c.current,
                c.current,
                cfg.confirm_s,
                cfg.min_down_share * 100.0,
            ),
        );
        return (c.current, Some(reason));
    }
    if keep == c.plan {
        return (c.plan, None);
    }
    let mut why = Vec::new();
    if forward > c.plan {
        match (c.hold_plan, c.hold_rps) {
            (Some(h), Some(rps)) => why.push(format!(
                "the forecast peak over the next {:.0} s, {rps:.1} rps with a {:.0} % band, needs {h}",
                c.horizon_s,
                cfg.down_band * 100.0
            )),
            _ => why.push("there is no forecast to show the lower count suffices".into()),
        }
    }
    if backward > c.plan {
        why.push(format!(
            "the plans of the last {:.0} s needed up to {backward}",
            cfg.confirm_s
        ));
    }
    let reason = Reason::new(
        "plan.hold_down",
        format!(
            "the plan allows {} of {} replicas but {keep} are kept: {} (a pod removed and needed again within the break-even time of {:.0} s, start-up plus {:.0} s of disruption, costs more than it saves)",
            c.plan,
            c.current,
            why.join("; "),
            c.break_even_s,
            cfg.disruption_s
        ),
    );
    (keep, Some(reason))
}

/// The count to set on a scale-up: the plan, or `min_up_share` of the current pods more when
/// that is larger, with the reason. Never below the plan.
pub fn raise_up(cfg: &ChurnConfig, current: u32, plan: u32) -> (u32, Option<Reason>) {
    if plan <= current || cfg.min_up_share <= 0.0 {
        return (plan, None);
    }
    let step = (cfg.min_up_share * current as f64).ceil() as u32;
    let to = current.saturating_add(step);
    if to <= plan {
        return (plan, None);
    }
    let why = format!(
        "the plan needs {plan} of {current} replicas; {to} are set: a scale-up adds at least {:.0} % of the pods, so a ramp takes fewer steps",
        cfg.min_up_share * 100.0
    );
    (to, Some(Reason::new("plan.step_up", why)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(current: u32, plan: u32, hold: Option<u32>, recent: Option<u32>) -> DownCheck {
        DownCheck {
            current,
            plan,
            hold_plan: hold,
            recent_max: recent,
            hold_rps: Some(100.0),
            horizon_s: 105.0,
            break_even_s: 60.0,
        }
    }

    #[test]
    fn scale_ups_and_allowed_scale_downs_pass() {
        let c = ChurnConfig::default();
        assert_eq!(hold_down(&c, &check(3, 5, Some(2), Some(2))), (5, None));
        assert_eq!(hold_down(&c, &check(5, 2, Some(2), Some(2))), (2, None));
        assert_eq!(hold_down(&c, &check(5, 5, None, None)), (5, None));
    }

    #[test]
    fn a_forecast_rise_within_the_break_even_time_holds_the_pods() {
        let c = ChurnConfig::default();
        let (n, why) = hold_down(&c, &check(6, 2, Some(4), Some(2)));
        assert_eq!(n, 4);
        let why = why.unwrap();
        assert_eq!(why.rule, "plan.hold_down");
        assert!(why.detail.contains("needs 4"), "{}", why.detail);
        assert!(why.detail.contains("105 s"), "{}", why.detail);
    }

    #[test]
    fn a_recent_higher_plan_holds_the_pods_and_never_above_current() {
        let c = ChurnConfig::default();
        let (n, why) = hold_down(&c, &check(6, 2, Some(2), Some(9)));
        assert_eq!(n, 6, "never above the current count");
        assert!(why.unwrap().detail.contains("last 60 s"));
        // No forecast: hold at the current count.
        assert_eq!(hold_down(&c, &check(6, 2, None, Some(2))).0, 6);
    }

    #[test]
    fn a_scale_down_smaller_than_the_least_step_waits() {
        let c = ChurnConfig {
            min_down_share: 0.3,
            ..ChurnConfig::default()
        };
        // 10 -> 8 removes 2 of the 3 pods a step must remove: held at 10.
        let (n, why) = hold_down(&c, &check(10, 8, Some(8), Some(8)));
        assert_eq!(n, 10);
        let why = why.unwrap();
        assert_eq!(why.rule, "plan.hold_down");
        assert!(why.detail.contains("at least 3 pods"), "{}", why.detail);
        // 10 -> 7 is a large enough step; so is 2 -> 1 (ceil(0.6) = 1 pod).
        assert_eq!(hold_down(&c, &check(10, 7, Some(7), Some(7))), (7, None));
        assert_eq!(hold_down(&c, &check(2, 1, Some(1), Some(1))), (1, None));
        // The forward test keeps 9, one pod fewer: too small a step, held at 10.
        assert_eq!(hold_down(&c, &check(10, 5, Some(9), Some(5))).0, 10);
        // Without the share any step is made.
        let any = ChurnConfig::default();
        assert_eq!(hold_down(&any, &check(10, 8, Some(9), Some(8))).0, 9);
    }

    #[test]
    fn a_scale_up_adds_at_least_the_least_step_and_never_less_than_the_plan() {
        let c = ChurnConfig {
            min_up_share: 0.5,
            ..ChurnConfig::default()
        };
        let (n, why) = raise_up(&c, 10, 11);
        assert_eq!(n, 15);
        let why = why.unwrap();
        assert_eq!(why.rule, "plan.step_up");
        assert!(why.detail.contains("needs 11 of 10"), "{}", why.detail);
        assert_eq!(raise_up(&c, 10, 16), (16, None));
        assert_eq!(raise_up(&c, 0, 2), (2, None));
        assert_eq!(raise_up(&c, 1, 2), (2, None));
        assert_eq!(raise_up(&c, 4, 4), (4, None));
        assert_eq!(raise_up(&ChurnConfig::default(), 10, 11), (11, None));
    }

    #[test]
    fn memory_heavy_pods_keep_the_quick_holds_when_asked() {
        let long = ChurnConfig::for_sized_pods();
        // Without a node shape every pod gets the long holds.
        assert_eq!(long.for_pod((50.0, 550.0), (200.0, 550.0)), long);
        let aware = ChurnConfig {
            node_gib_per_core: Some(4.0),
            ..long.clone()
        };
        // A small pod sized to 50 m of 200 m costs a quarter of a full one: long holds.
        assert_eq!(aware.for_pod((50.0, 48.0), (200.0, 48.0)), aware);
        // A Java pod's 550 MiB is 0.13 cores of a 4 GiB-per-core node: held, it still costs
        // 0.13 of a full pod's 0.2, so the quick holds.
        let q = aware.for_pod((50.0, 550.0), (200.0, 550.0));
        assert_eq!(q.confirm_s, 60.0);
        assert_eq!((q.min_down_share, q.min_up_share), (0.0, 0.0));
        assert_eq!(q.down_band, aware.down_band);
        // No full pod to compare with, or a bad shape: the quick holds, never a panic.
        assert_eq!(aware.for_pod((50.0, 48.0), (0.0, 0.0)).confirm_s, 60.0);
        assert_eq!(
            aware
                .for_pod((f64::INFINITY, 48.0), (200.0, 48.0))
                .confirm_s,
            60.0
        );
    }

    #[test]
    fn the_history_keeps_the_window_and_is_bounded() {
        let mut h = PlanHistory::default();
        h.record(Millis::from_secs(0), 9, 60.0);
        h.record(Millis::from_secs(30), 3, 60.0);
        assert_eq!(h.max_since(Millis::from_secs(30), 60.0), Some(9));
        h.record(Millis::from_secs(75), 2, 60.0);
        assert_eq!(h.max_since(Millis::from_secs(75), 60.0), Some(3));
        for t in 0..10_000u64 {
            h.record(Millis(t), 1, MAX_CHURN_S);
        }
        assert!(h.plans.len() <= MAX_PLANS);
    }

    #[test]
    fn bad_settings_are_named() {
        for c in [
            ChurnConfig {
                disruption_s: -1.0,
                ..ChurnConfig::default()
            },
            ChurnConfig {
                confirm_s: f64::NAN,
                ..ChurnConfig::default()
            },
            ChurnConfig {
                down_band: 11.0,
                ..ChurnConfig::default()
            },
            ChurnConfig {
                min_down_share: 1.5,
                ..ChurnConfig::default()
            },
            ChurnConfig {
                min_up_share: -0.1,
                ..ChurnConfig::default()
            },
            ChurnConfig {
                node_gib_per_core: Some(0.0),
                ..ChurnConfig::default()
            },
        ] {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("churn."), "{e}");
        }
        ChurnConfig::default().validate().unwrap();
        assert_eq!(ChurnConfig::default().break_even_s(30.0), 60.0);
    }

    proptest! {
        #[test]
        fn the_count_is_between_the_plan_and_the_current_count_on_a_scale_down(
            current in 0u32..100,
            plan in 0u32..100,
            hold in proptest::option::of(0u32..200),
            recent in proptest::option::of(0u32..200),
        ) {
            let c = ChurnConfig::default();
            let (n, why) = hold_down(&c, &check(current, plan, hold, recent));
            if plan >= current {
                prop_assert_eq!(n, plan);
            } else {
                prop_assert!(n >= plan && n <= current);
                prop_assert_eq!(why.is_some(), n != plan);
            }
        }

        #[test]
        fn a_scale_down_is_none_or_at_least_the_least_step(
            current in 0u32..100,
            plan in 0u32..100,
            hold in proptest::option::of(0u32..200),
            recent in proptest::option::of(0u32..200),
            share in 0.0f64..=1.0,
        ) {
            let c = ChurnConfig { min_down_share: share, ..ChurnConfig::default() };
            let (n, _) = hold_down(&c, &check(current, plan, hold, recent));
            if plan < current {
                prop_assert!(n >= plan && n <= current);
                let step = ((share * current as f64).ceil() as u32).max(1);
                prop_assert!(n == current || current - n >= step);
            }
        }

        #[test]
        fn a_scale_up_is_at_least_the_plan_and_bounded(
            current in 0u32..1000,
            plan in 0u32..1000,
            share in 0.0f64..=10.0,
        ) {
            let c = ChurnConfig { min_up_share: share, ..ChurnConfig::default() };
            let (n, why) = raise_up(&c, current, plan);
            prop_assert!(n >= plan);
            prop_assert!(n <= plan.max(current + (share * current as f64).ceil() as u32));
            prop_assert_eq!(why.is_some(), n != plan);
        }
    }
}
