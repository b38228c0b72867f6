//! `GetResourceReplicas`: the HPA's proposal for a resource metric (CPU or memory utilisation)
//! from its pods' usage and requests, tallied per pod name as the Go code's maps do, in
//! buffers kept between reconciles.

use graphscale_core::{Millis, PodObservation, PodPhase, WorkloadObservation};

use super::Hpa;

impl Hpa {
    /// `GetResourceReplicas`: (proposal, utilisation percent).
    pub(super) fn resource_replicas(
        &mut self,
        now: Millis,
        w: &WorkloadObservation,
        cpu: bool,
        target_percent: u32,
    ) -> Result<(u32, i64), String> {
        let what = if cpu { "cpu" } else { "memory" };
        if w.pods.is_empty() {
            return Err(format!("{what}: no pods match the selector"));
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let found = self.tally_pods(now, w, cpu, target_percent, &mut scratch);
        self.scratch = scratch;
        found
    }

    /// The body of [`Hpa::resource_replicas`] over reused buffers.
    fn tally_pods(
        &self,
        now: Millis,
        w: &WorkloadObservation,
        cpu: bool,
        target_percent: u32,
        scratch: &mut Scratch,
    ) -> Result<(u32, i64), String> {
        let what = if cpu { "cpu" } else { "memory" };
        let current = w.spec_replicas;
        // (request, usage) per pod name, integer milli-units as the metrics API reports; the Go
        // code keeps two maps keyed by pod name, so a later pod of the same name replaces an
        // earlier one's entries. `key[i]` is pod i's tally: pods of one name share one.
        let Scratch {
            order,
            key,
            tallies,
            unready,
            missing,
        } = scratch;
        let names = name_keys(&w.pods, order, key);
        tallies.clear();
        tallies.resize(names, Tally::default());
        unready.clear();
        missing.clear();
        let mut ready_count = 0u32;
        for (p, &k) in w.pods.iter().zip(key.iter()) {
            let req = if cpu {
                p.requests.cpu_millicores
            } else {
                p.requests.memory_mib
            };
            if !(req.is_finite() && req > 0.0) {
                return Err(format!("{what}: missing request on pod {}", p.name));
            }
            tallies[k].request = req.round() as i64;
            if p.deleting || p.phase == PodPhase::Failed {
                continue; // ignored
            }
            if p.phase == PodPhase::Pending {
                unready.push(k);
                continue;
            }
            let value = if cpu {
                p.cpu.map(|s| s.millicores)
            } else {
                p.memory_mib
            };
            let Some(value) = value.filter(|v| v.is_finite()) else {
                missing.push(k);
                continue;
            };
            if cpu && self.cpu_unready(now, p) {
                unready.push(k);
                continue;
            }
            tallies[k].metric = Some(value.round() as i64);
            ready_count += 1;
        }
        if tallies.iter().all(|t| t.metric.is_none()) {
            return Err(format!(
                "{what}: did not receive metrics for targeted pods (pods might be unready)"
            ));
        }
        let (ratio, util) = utilization_ratio(tallies, target_percent)
            .ok_or_else(|| format!("{what}: no metrics matched known pods"))?;
        let tol = self.config.tolerance;
        let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && missing.is_empty() {
            if (1.0 - ratio).abs() <= tol {
                return Ok((current, util));
            }
            return Ok(((ratio * ready_count as f64).ceil() as u32, util));
        }
        if !missing.is_empty() {
            if ratio < 1.0 {
                for &k in missing.iter() {
                    tallies[k].metric = Some(tallies[k].request);
                }
            } else if ratio > 1.0 {
                for &k in missing.iter() {
                    tallies[k].metric = Some(0);
                }
            }
        }
        if scale_up_with_unready {
            for &k in unready.iter() {
                tallies[k].metric = Some(0);
            }
        }
        let (new_ratio, _) = utilization_ratio(tallies, target_percent)
            .ok_or_else(|| format!("{what}: no metrics matched known pods"))?;
        if (1.0 - new_ratio).abs() <= tol
            || (ratio < 1.0 && new_ratio > 1.0)
            || (ratio > 1.0 && new_ratio < 1.0)
        {
            return Ok((current, util));
        }
        let counted = tallies.iter().filter(|t| t.metric.is_some()).count();
        let new_replicas = (new_ratio * counted as f64).ceil() as u32;
        if (new_ratio < 1.0 && new_replicas > current)
            || (new_ratio > 1.0 && new_replicas < current)
        {
            return Ok((current, util));
        }
        Ok((new_replicas, util))
    }
}

/// `GetResourceUtilizationRatio`: integer utilisation percent (truncated, as the controller
/// computes it) and its ratio to the target.
fn utilization_ratio(tallies: &[Tally], target: u32) -> Option<(f64, i64)> {
    let (mut total, mut req) = (0i64, 0i64);
    for t in tallies {
        if let Some(v) = t.metric {
            total += v;
            req += t.request;
        }
    }
    if req == 0 {
        return None;
    }
    let util = total * 100 / req;
    Some((util as f64 / target as f64, util))
}

/// One pod name's request and usage (integer milli-units), as the Go code's two maps hold them.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    request: i64,
    metric: Option<i64>,
}

/// Reused buffers of [`Hpa::resource_replicas`]: pod order, name keys, tallies, and the
/// tallies of unready and of missing pods.
#[derive(Debug, Clone, Default)]
pub(super) struct Scratch {
    order: Vec<usize>,
    key: Vec<usize>,
    tallies: Vec<Tally>,
    unready: Vec<usize>,
    missing: Vec<usize>,
}

/// Fills `key` so that `key[i]` in `0..n` numbers pod `i`'s name, equal names sharing a
/// number, and returns `n`. Without a map: one sort of the pods' indices (a workload's pods are
/// few), in `order`. Any total order puts equal names side by side; this one compares lengths,
/// then bytes from the end, where the names of one workload's pods differ (they share the
/// workload's name and template hash as a prefix).
fn name_keys(pods: &[PodObservation], order: &mut Vec<usize>, key: &mut Vec<usize>) -> usize {
    order.clear();
    order.extend(0..pods.len());
    order.sort_unstable_by(|&a, &b| {
        let (a, b) = (pods[a].name.as_bytes(), pods[b].name.as_bytes());
        a.len()
            .cmp(&b.len())
            .then_with(|| a.iter().rev().cmp(b.iter().rev()))
    });
    key.clear();
    key.resize(pods.len(), 0);
    let mut n = 0;
    for (j, &i) in order.iter().enumerate() {
        if j > 0 && pods[order[j - 1]].name != pods[i].name {
            n += 1;
        }
        key[i] = n;
    }
    if pods.is_empty() {
        0
    } else {
        n + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpa::{Behavior, HpaControllerConfig, HpaSpec, MetricTarget};
    use graphscale_core::CpuSample;
    use proptest::prelude::*;

    fn pods(names: &[String]) -> Vec<PodObservation> {
        names
            .iter()
            .map(|n| PodObservation {
                name: n.as_str().into(),
                phase: PodPhase::Running,
                deleting: false,
                start_time: None,
                ready: Some(true),
                ready_transition: None,
                cpu: None,
                memory_mib: None,
                requests: Default::default(),
                limits: Default::default(),
            })
            .collect()
    }

    /// `GetResourceReplicas` as the Go code writes it, with two maps keyed by pod name: the
    /// reference that [`Hpa::resource_replicas`]'s tallies must match.
    fn go_maps(h: &Hpa, now: Millis, w: &WorkloadObservation, target: u32) -> Option<(u32, i64)> {
        use std::collections::BTreeMap as M;
        let ratio_of = |m: &M<&str, i64>, r: &M<&str, i64>| {
            let (mut t, mut q) = (0, 0);
            for (k, v) in m {
                if let Some(x) = r.get(k) {
                    t += v;
                    q += x;
                }
            }
            (q != 0)
                .then(|| (t * 100 / q) as f64 / target as f64)
                .map(|ratio| (ratio, t * 100 / q))
        };
        let (mut metrics, mut requests) = (M::new(), M::new());
        let (mut unready, mut missing, mut ready) = (Vec::new(), Vec::new(), 0u32);
        for p in &w.pods {
            let req = p.requests.cpu_millicores;
            if !(req.is_finite() && req > 0.0) {
                return None;
            }
            requests.insert(&*p.name, req.round() as i64);
            if p.deleting || p.phase == PodPhase::Failed {
                continue;
            }
            let value = p.cpu.map(|c| c.millicores).filter(|v| v.is_finite());
            if p.phase == PodPhase::Pending {
                unready.push(&*p.name);
            } else if value.is_none() {
                missing.push(&*p.name);
            } else if h.cpu_unready(now, p) {
                unready.push(&*p.name);
            } else {
                metrics.insert(&*p.name, value?.round() as i64);
                ready += 1;
            }
        }
        if metrics.is_empty() {
            return None;
        }
        let (ratio, util) = ratio_of(&metrics, &requests)?;
        let current = w.spec_replicas;
        let up_unready = !unready.is_empty() && ratio > 1.0;
        if !up_unready && missing.is_empty() {
            if (1.0 - ratio).abs() <= h.config.tolerance {
                return Some((current, util));
            }
            return Some(((ratio * ready as f64).ceil() as u32, util));
        }
        for m in &missing {
            if ratio < 1.0 {
                metrics.insert(m, requests[m]);
            } else if ratio > 1.0 {
                metrics.insert(m, 0);
            }
        }
        if up_unready {
            for u in &unready {
                metrics.insert(u, 0);
            }
        }
        let (new_ratio, _) = ratio_of(&metrics, &requests)?;
        if (1.0 - new_ratio).abs() <= h.config.tolerance
            || (ratio < 1.0 && new_ratio > 1.0)
            || (ratio > 1.0 && new_ratio < 1.0)
        {
            return Some((current, util));
        }
        let n = (new_ratio * metrics.len() as f64).ceil() as u32;
        if (new_ratio < 1.0 && n > current) || (new_ratio > 1.0 && n < current) {
            return Some((current, util));
        }
        Some((n, util))
    }

    /// A pod from generated parts: name, phase, deleting, CPU sample, readiness, request.
    type PodParts = (usize, u8, bool, Option<f64>, Option<bool>, u64, f64);

    proptest! {
        /// The tallies give what the Go code's maps give, for pods of repeated names, missing
        /// or non-finite samples, pending, failed, deleted and unready pods.
        #[test]
        fn tallies_match_the_go_maps(
            parts in proptest::collection::vec(
                (0usize..4, 0u8..6, proptest::bool::weighted(0.1),
                 proptest::option::weighted(0.85, prop_oneof![9 => 0.0f64..3000.0, 1 => Just(f64::NAN)]),
                 proptest::option::weighted(0.9, proptest::bool::weighted(0.8)),
                 0u64..200, prop_oneof![9 => 100.0f64..2000.0, 1 => Just(0.4)]),
                1..10),
            spec in 1u32..12,
            target in 20u32..120,
        ) {
            let parts: Vec<PodParts> = parts;
            let now = Millis::from_secs(1_000);
            let mut w = WorkloadObservation {
                name: "w".into(),
                spec_replicas: spec,
                pods: Vec::new(),
                rps: None,
                latency_p95_ms: None,
                error_rate: None,
                backlog: None,
            };
            for &(n, phase, deleting, cpu, ready, age_s, req) in &parts {
                let mut p = pods(&[format!("pod-{n}")]).remove(0);
                p.phase = match phase {
                    0 => PodPhase::Pending,
                    1 => PodPhase::Failed,
                    _ => PodPhase::Running,
                };
                p.deleting = deleting;
                p.cpu = cpu.map(|m| CpuSample {
                    millicores: m,
                    timestamp: now,
                    window: Millis::from_secs(15),
                });
                p.ready = ready;
                p.start_time = Some(Millis::from_secs(1_000 - age_s));
                p.ready_transition = Some(Millis::from_secs(1_000 - age_s / 2));
                p.requests.cpu_millicores = req;
                w.pods.push(p);
            }
            let spec = HpaSpec {
                min_replicas: 1,
                max_replicas: 100,
                metrics: vec![MetricTarget::CpuUtilization { target_percent: target }],
                behavior: Behavior::default(),
            };
            let mut h = Hpa::new(HpaControllerConfig::default(), spec);
            let want = go_maps(&h, now, &w, target);
            let got = h.resource_replicas(now, &w, true, target).ok();
            prop_assert_eq!(got, want);
        }

        /// Two pods share a key exactly when they share a name, and the keys are `0..n` for
        /// `n` distinct names.
        #[test]
        fn name_keys_number_names(names in proptest::collection::vec("[ab]{0,3}", 0..12)) {
            let pods = pods(&names);
            let (mut order, mut key) = (Vec::new(), Vec::new());
            let n = name_keys(&pods, &mut order, &mut key);
            let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
            prop_assert_eq!(n, distinct.len());
            prop_assert_eq!(key.len(), names.len());
            for i in 0..names.len() {
                prop_assert!(key[i] < n);
                for j in 0..names.len() {
                    prop_assert_eq!(key[i] == key[j], names[i] == names[j]);
                }
            }
        }
    }
}
