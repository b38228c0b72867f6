//! What is known about a workload before any metric arrives: its replica bounds and the CPU it
//! needs at the application's nominal peak. Static baselines (peak provisioning) and the bounds
//! of the safety layer come from here, so nothing that runs an autoscaler needs the simulator's
//! app description.

use serde::{Deserialize, Serialize};

/// Static facts of one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadFacts {
    /// Workload (service) name.
    pub name: String,
    /// Fewest replicas the workload may run.
    pub min_replicas: u32,
    /// Most replicas the workload may run (the cluster's cap on `spec.replicas`).
    pub max_replicas: u32,
    /// CPU the workload uses at the application's nominal peak, millicores, when known.
    pub peak_cpu_millicores: Option<f64>,
    /// CPU request of one pod, millicores, when known.
    pub cpu_request_millicores: Option<f64>,
}

impl WorkloadFacts {
    /// Replicas that serve the nominal peak at `utilization` of the CPU request, within the
    /// bounds; `None` when the peak or the request is unknown or not positive.
    pub fn peak_replicas(&self, utilization: f64) -> Option<u32> {
        let peak = self
            .peak_cpu_millicores
            .filter(|p| p.is_finite() && *p >= 0.0)?;
        let req = self
            .cpu_request_millicores
            .filter(|r| r.is_finite() && *r > 0.0)?;
        if !(utilization.is_finite() && utilization > 0.0) {
            return None;
        }
        let n = (peak / (utilization * req)).ceil();
        Some((n.min(f64::from(u32::MAX)) as u32).clamp(self.min_replicas.max(1), self.max_replicas))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_replicas_round_up_within_bounds() {
        let f = WorkloadFacts {
            name: "cart".into(),
            min_replicas: 1,
            max_replicas: 10,
            peak_cpu_millicores: Some(1700.0),
            cpu_request_millicores: Some(500.0),
        };
        // 1700 / (0.8 * 500) = 4.25 -> 5.
        assert_eq!(f.peak_replicas(0.8), Some(5));
        let big = WorkloadFacts {
            peak_cpu_millicores: Some(1e9),
            ..f.clone()
        };
        assert_eq!(big.peak_replicas(0.8), Some(10));
        let unknown = WorkloadFacts {
            cpu_request_millicores: None,
            ..f
        };
        assert_eq!(unknown.peak_replicas(0.8), None);
    }
}
