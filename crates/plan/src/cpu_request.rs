//! CPU requests sized together with the replica plan (`cpu_requests` in a predictive
//! autoscaler's config; docs/planner.md, "CPU requests sized with the plan").
//!
//! A pod's CPU request is what the scheduler books and what the cluster pays for; its limit is
//! what it may use. The horizontal plan sizes replicas on a fixed **reference request** (the
//! largest request seen on the workload's pods, the template's until this module lowers it), so
//! the replica count never depends on the request this module sets: that is the conflict the
//! Kubernetes docs warn of when an HPA and a VPA both act on CPU, and a joint plan does not have
//! it. Once the replicas are decided, each pod's request is sized to the CPU one replica is
//! planned to use at the planned demand, at `target_utilization` of the request, never above
//! the reference and never below `min_millicores`. Limits are kept (the VPA's
//! `controlledValues: RequestsOnly`), so a replica serves as fast as before; under node
//! contention a pod is guaranteed its (smaller) request, and the simulator models that.
//!
//! When the safety layer falls back to the HPA rule, the request goes back to the reference:
//! the HPA's utilisation is usage over request, and the rule was tuned on the reference.

use serde::{Deserialize, Serialize};

use crate::PlanError;

/// Settings of the joint CPU request sizing; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CpuRequestConfig {
    /// Share of its request a pod is sized to use at the planned demand; default 0.8 (the
    /// HPA's default CPU target).
    pub target_utilization: f64,
    /// A lower request is set only when the needed one is at least this share below the
    /// current one; default 0.15.
    pub down_band: f64,
    /// A higher request is set (at once) only when the needed one is more than this share
    /// above the current one, so the pods may run a little over `target_utilization` of their
    /// request rather than be resized for every rise of a few millicores; default 0.05.
    pub up_band: f64,
    /// No lower request within this many seconds of the last change, seconds; default 60 (a
    /// load that dips and comes back within a minute keeps its request; 300 s, the HPA's
    /// scale-down window, cost 7 points of the CPU saved, docs/benchmarks.md).
    pub down_delay_s: f64,
    /// A change sets the request this share above the needed one, so that the next small rise
    /// of the demand needs no resize; default 0 (0.1 cost 3-4 points of the CPU saved for a
    /// few fewer resizes than the down delay alone, docs/benchmarks.md).
    pub up_headroom: f64,
    /// Smallest request, millicores; default 25 (the VPA recommender's
    /// `--pod-recommendation-min-cpu-millicores`).
    pub min_millicores: f64,
}

impl Default for CpuRequestConfig {
    fn default() -> Self {
        CpuRequestConfig {
            target_utilization: 0.8,
            down_band: 0.15,
            up_band: 0.05,
            up_headroom: 0.0,
            down_delay_s: 60.0,
            min_millicores: 25.0,
        }
    }
}

impl CpuRequestConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), PlanError> {
        let bad = |field: &str, reason: String| {
            Err(PlanError::InvalidConfig {
                workload: "*".into(),
                field: format!("cpu_requests.{field}"),
                reason,
            })
        };
        let t = self.target_utilization;
        if !(t.is_finite() && t > 0.0 && t <= 1.0) {
            return bad("target_utilization", format!("must be in (0, 1], got {t}"));
        }
        let b = self.down_band;
        if !(b.is_finite() && (0.0..1.0).contains(&b)) {
            return bad("down_band", format!("must be in [0, 1), got {b}"));
        }
        let u = self.up_band;
        if !(u.is_finite() && (0.0..=1.0).contains(&u)) {
            return bad("up_band", format!("must be in [0, 1], got {u}"));
        }
        let h = self.up_headroom;
        if !(h.is_finite() && (0.0..=1.0).contains(&h)) {
            return bad("up_headroom", format!("must be in [0, 1], got {h}"));
        }
        let d = self.down_delay_s;
        if !(d.is_finite() && (0.0..=86_400.0).contains(&d)) {
            return bad("down_delay_s", format!("must be in [0, 86400], got {d}"));
        }
        let m = self.min_millicores;
        if !(m.is_finite() && m > 0.0 && m <= 1_000_000.0) {
            return bad(
                "min_millicores",
                format!("must be in (0, 1000000], got {m}"),
            );
        }
        Ok(())
    }
}

/// What one workload's request is sized from, in millicores and requests/s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuNeed {
    /// The request the replicas were planned on (the largest request seen).
    pub reference_mc: f64,
    /// The pods' request now.
    pub current_mc: f64,
    /// Idle CPU of one replica (the learned CPU model).
    pub idle_mc: f64,
    /// CPU per request (the learned CPU model).
    pub cpu_ms_per_request: f64,
    /// The demand the plan provisions this workload for.
    pub demand_rps: f64,
    /// Mean CPU of the ready pods past their start-up, now; `None` without a sample.
    pub used_per_pod_mc: Option<f64>,
}

/// The request to set for `replicas` pods, with why; `None` keeps the current one.
/// `fallback`: the HPA rule decided, so the request returns to the reference.
/// `since_change_s`: seconds since the last change of the request (`None`: none yet).
pub fn size(
    cfg: &CpuRequestConfig,
    need: &CpuNeed,
    replicas: u32,
    fallback: bool,
    since_change_s: Option<f64>,
) -> Option<(f64, String)> {
    let (reference, current) = (need.reference_mc, need.current_mc);
    if !(reference.is_finite() && reference > 0.0 && current.is_finite() && current > 0.0) {
        return None;
    }
    if fallback {
        return (current < reference).then(|| {
            (
                reference,
                format!(
                    "the HPA rule decides on the reference request: CPU request {current:.0} m -> {reference:.0} m"
                ),
            )
        });
    }
    let planned = need.idle_mc + need.cpu_ms_per_request * need.demand_rps / replicas.max(1) as f64;
    let used = need
        .used_per_pod_mc
        .filter(|u| u.is_finite())
        .unwrap_or(0.0);
    if !planned.is_finite() {
        return None;
    }
    let per_pod = planned.max(used).max(0.0);
    let floor = cfg.min_millicores.min(reference);
    let needed = (per_pod / cfg.target_utilization).clamp(floor, reference);
    // Whole millicores, rounded up (less a hair, so that 100 x 1.1 is 110).
    let set = (needed * (1.0 + cfg.up_headroom) - 1e-9)
        .ceil()
        .clamp(floor, reference);
    let why = |dir: &str| {
        format!(
            "CPU request {current:.0} m -> {set:.0} m ({dir}): a replica of {replicas} is planned to use {planned:.0} m at {:.1} rps (uses {used:.0} m now), {needed:.0} m at {:.0} % of its request, plus {:.0} %; limit kept, replicas planned on the reference request {reference:.0} m",
            need.demand_rps,
            cfg.target_utilization * 100.0,
            cfg.up_headroom * 100.0
        )
    };
    if needed > current * (1.0 + cfg.up_band) + 0.5 {
        Some((set, why("up")))
    } else if set < current * (1.0 - cfg.down_band)
        && since_change_s.is_none_or(|s| s >= cfg.down_delay_s)
    {
        Some((set, why("down")))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(current: f64, demand: f64, used: Option<f64>) -> CpuNeed {
        CpuNeed {
            reference_mc: 200.0,
            current_mc: current,
            idle_mc: 10.0,
            cpu_ms_per_request: 20.0,
            demand_rps: demand,
            used_per_pod_mc: used,
        }
    }

    #[test]
    fn the_request_follows_the_planned_use_per_replica_within_its_bounds() {
        let cfg = CpuRequestConfig {
            up_band: 0.0,
            up_headroom: 0.1,
            down_delay_s: 300.0,
            ..CpuRequestConfig::default()
        };
        // 2 replicas at 4 rps: 10 + 20 x 2 = 50 m each, / 0.8 = 62.5 m, + 10 % -> 69 m.
        let (to, why) = size(&cfg, &need(200.0, 4.0, Some(40.0)), 2, false, None).unwrap();
        assert_eq!(to, 69.0);
        assert!(why.contains("200 m -> 69 m (down)"), "{why}");
        // What the pods use now wins when it is more.
        let (to, _) = size(&cfg, &need(200.0, 4.0, Some(80.0)), 2, false, None).unwrap();
        assert_eq!(to, 110.0);
        // Never above the reference, never below the minimum.
        let (to, why) = size(&cfg, &need(100.0, 40.0, None), 2, false, None).unwrap();
        assert_eq!(to, 200.0, "{why}");
        let (to, _) = size(&cfg, &need(200.0, 0.0, Some(0.0)), 1, false, None).unwrap();
        assert_eq!(to, 28.0);
        // Raises at once (to the needed 62.5 m plus the headroom), lowers only past the band.
        assert_eq!(
            size(&cfg, &need(61.0, 4.0, None), 2, false, None)
                .unwrap()
                .0,
            69.0
        );
        assert!(size(&cfg, &need(62.0, 4.0, None), 2, false, None).is_none());
        assert!(size(&cfg, &need(80.0, 4.0, None), 2, false, None).is_none());
        assert_eq!(
            size(&cfg, &need(82.0, 4.0, None), 2, false, None)
                .unwrap()
                .0,
            69.0
        );
        // Not lowered within the delay of the last change; raised at once.
        assert!(size(&cfg, &need(200.0, 4.0, None), 2, false, Some(299.0)).is_none());
        assert!(size(&cfg, &need(200.0, 4.0, None), 2, false, Some(300.0)).is_some());
        assert!(size(&cfg, &need(50.0, 4.0, None), 2, false, Some(1.0)).is_some());
        // More replicas, less per pod.
        let (to, _) = size(&cfg, &need(200.0, 4.0, None), 4, false, None).unwrap();
        assert_eq!(to, 42.0);
    }

    #[test]
    fn the_fallback_restores_the_reference_and_bad_input_changes_nothing() {
        let cfg = CpuRequestConfig::default();
        let (to, why) = size(&cfg, &need(60.0, 4.0, None), 2, true, None).unwrap();
        assert_eq!(to, 200.0);
        assert!(why.contains("HPA rule"), "{why}");
        assert!(size(&cfg, &need(200.0, 4.0, None), 2, true, None).is_none());
        assert!(size(&cfg, &need(f64::NAN, 4.0, None), 2, false, None).is_none());
        assert!(size(&cfg, &need(200.0, f64::INFINITY, None), 2, false, None).is_none());
        let mut n = need(200.0, 4.0, None);
        n.reference_mc = 0.0;
        assert!(size(&cfg, &n, 2, false, None).is_none());
        // Zero replicas count as one.
        assert!(size(&cfg, &need(200.0, 4.0, None), 0, false, None).is_some());
    }

    #[test]
    fn bad_settings_are_named() {
        for (cfg, field) in [
            (
                CpuRequestConfig {
                    target_utilization: 1.5,
                    ..Default::default()
                },
                "cpu_requests.target_utilization",
            ),
            (
                CpuRequestConfig {
                    down_band: -0.1,
                    ..Default::default()
                },
                "cpu_requests.down_band",
            ),
            (
                CpuRequestConfig {
                    min_millicores: f64::NAN,
                    ..Default::default()
                },
                "cpu_requests.min_millicores",
            ),
        ] {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        CpuRequestConfig::default().validate().unwrap();
    }
}
