//! The status of a PredictiveAutoscaler from what a round saw and did. Pure: no I/O.

use std::collections::BTreeMap;

use graphscale_core::{Millis, ScalingDecision};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::actuator::Outcome;
use crate::crd::{ForecastStatus, WorkloadStatus};
use crate::target::Target;

/// RFC 3339 of a Unix-millisecond time.
pub fn rfc3339(t: Millis) -> String {
    Timestamp::from_millisecond(t.0 as i64)
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

/// A condition, keeping the previous transition time when its status did not change.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    let mut message = message.into();
    if message.len() > 2000 {
        let mut cut = 2000;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: last,
    }
}

/// The forecast a decision carries in its `forecast.demand` reason (the planner writes it:
/// "MODEL: observed X rps, peak forecast Y over the next H s (lead L s), qQ U, planned P").
pub fn forecast_of(d: &ScalingDecision, age_seconds: f64) -> Option<ForecastStatus> {
    let r = d.reasons.iter().find(|r| r.rule == "forecast.demand")?;
    let text = &r.detail;
    let (model, rest) = text.split_once(": observed ")?;
    let num = |s: &str| -> Option<f64> {
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(s.len());
        s[..end].parse().ok()
    };
    let observed = num(rest)?;
    let peak = num(rest.split_once("peak forecast ")?.1)?;
    let horizon = num(rest.split_once("over the next ")?.1)?;
    let after_q = rest.split_once(", q")?.1;
    let quantile = num(after_q)? / 100.0;
    let upper = num(after_q.split_once(' ')?.1)?;
    Some(ForecastStatus {
        model: model.to_string(),
        observed_rps: observed,
        peak_rps: peak,
        upper_rps: upper,
        quantile,
        horizon_seconds: horizon,
        age_seconds,
    })
}

/// Characters of reasons each of `n` workloads keeps in the status (400,000 in all, 200 to
/// 4,000 each).
pub fn reason_budget(n: usize) -> usize {
    (400_000 / n.max(1)).clamp(200, 4000)
}

/// One workload's status.
#[allow(clippy::too_many_arguments)]
pub fn workload_status(
    t: &Target,
    d: Option<&ScalingDecision>,
    outcome: Option<&Outcome>,
    shadow: Option<u32>,
    p95_ms: Option<f64>,
    slo_p95_ms: Option<f64>,
    decided: Millis,
    age_seconds: f64,
    reason_budget: usize,
) -> WorkloadStatus {
    let mut reasons: Vec<String> = d
        .map(|d| {
            d.reasons
                .iter()
                .map(|r| format!("{}: {}", r.rule, r.detail))
                .collect()
        })
        .unwrap_or_default();
    match outcome {
        Some(Outcome::Conflict(o)) => reasons.push(format!("operator.conflict: {o} scales it")),
        Some(Outcome::Disabled) => reasons.push("operator.disabled: kill switch set".into()),
        _ => {}
    }
    // The whole status must stay well under etcd's 1.5 MiB object limit: with many workloads
    // each keeps fewer characters of reasons (whole reasons, at least the first, cut at 200).
    let mut used = 0;
    let mut kept = Vec::new();
    for (i, mut r) in reasons.into_iter().enumerate() {
        if i > 0 && used + r.len() > reason_budget {
            break;
        }
        if r.len() > 200.max(reason_budget) {
            let mut cut = 200.max(reason_budget);
            while !r.is_char_boundary(cut) {
                cut -= 1;
            }
            r.truncate(cut);
        }
        used += r.len();
        kept.push(r);
    }
    let reasons = kept;
    WorkloadStatus {
        kind: t.kind,
        name: t.name.clone(),
        current_replicas: t.replicas,
        desired_replicas: d.map_or(t.replicas, |d| d.replicas),
        applied: outcome == Some(&Outcome::Applied),
        reasons,
        forecast: d.and_then(|d| forecast_of(d, age_seconds)),
        hpa_shadow_replicas: shadow,
        p95_ms: p95_ms.filter(|v| v.is_finite()),
        slo_met: match (p95_ms, slo_p95_ms) {
            (Some(v), Some(s)) if v.is_finite() => Some(v <= s),
            _ => None,
        },
        decided_at: Some(rfc3339(decided)),
    }
}

/// Counts of outcomes, for metrics.
pub fn outcome_label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Applied => "applied",
        Outcome::Unchanged => "unchanged",
        Outcome::Recommended => "recommended",
        Outcome::Disabled => "disabled",
        Outcome::Conflict(_) => "conflict",
        Outcome::NotTarget => "not_target",
    }
}

/// Decisions by workload.
pub fn by_workload(ds: &[ScalingDecision]) -> BTreeMap<&str, &ScalingDecision> {
    ds.iter().map(|d| (d.workload.as_str(), d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphscale_core::Reason;

    #[test]
    fn the_forecast_is_read_back_from_the_planners_reason() {
        let d = ScalingDecision {
            workload: "cart".into(),
            replicas: 3,
            reasons: vec![Reason::new(
                "forecast.demand",
                "trend: observed 41.5 rps, peak forecast 52.0 over the next 45 s (lead 30 s), q95 55.3, planned 55.3",
            )],
            resources: None,
        };
        let f = forecast_of(&d, 2.0).unwrap();
        assert_eq!(f.model, "trend");
        assert_eq!(f.observed_rps, 41.5);
        assert_eq!(f.peak_rps, 52.0);
        assert_eq!(f.horizon_seconds, 45.0);
        assert_eq!(f.quantile, 0.95);
        assert_eq!(f.upper_rps, 55.3);
        let none = ScalingDecision {
            reasons: vec![Reason::new("hpa.cpu", "x")],
            ..d
        };
        assert!(forecast_of(&none, 0.0).is_none());
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_it_holds() {
        let c = condition(&[], "Ready", true, "RoundRan", "ok", Some(2));
        let again = condition(
            std::slice::from_ref(&c),
            "Ready",
            true,
            "RoundRan",
            "ok",
            Some(3),
        );
        assert_eq!(c.last_transition_time, again.last_transition_time);
        assert_eq!(again.observed_generation, Some(3));
        let flipped = condition(&[c], "Ready", false, "Failed", "x", Some(3));
        assert_eq!(flipped.status, "False");
    }

    #[test]
    fn the_status_of_two_thousand_workloads_fits_an_object() {
        let t = Target {
            kind: crate::crd::WorkloadKind::Deployment,
            name: "service-with-a-long-name-0000".into(),
            replicas: 3,
            min_replicas: 1,
            max_replicas: 50,
            cpu_request_millicores: Some(100.0),
            container: None,
            pod_selector: None,
            disabled: false,
            conflict: None,
        };
        let d = ScalingDecision {
            workload: t.name.clone(),
            replicas: 4,
            reasons: (0..20)
                .map(|i| Reason::new(format!("rule.{i}"), "x".repeat(300)))
                .collect(),
            resources: None,
        };
        let n = crate::target::MAX_TARGETS;
        let one = workload_status(
            &t,
            Some(&d),
            None,
            Some(3),
            Some(80.0),
            Some(100.0),
            Millis(0),
            1.0,
            reason_budget(n),
        );
        assert!(!one.reasons.is_empty());
        let bytes = serde_json::to_vec(&vec![one; n]).unwrap().len();
        assert!(bytes < 1_000_000, "{bytes} bytes for {n} workloads");
        // A few workloads keep every reason.
        let few = workload_status(
            &t,
            Some(&d),
            None,
            None,
            None,
            None,
            Millis(0),
            0.0,
            reason_budget(3),
        );
        assert_eq!(
            few.reasons.len(),
            12,
            "4,000 characters of 308-character reasons"
        );
    }
}
