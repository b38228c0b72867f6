//! The HPA's tunable knobs ([`HpaKnobs`]) and the settings per app that `graphscale tune-hpa`
//! chose by a grid search on seeds 1-5 ([`TunedHpa`], `data/hpa-tuned.json`), which the
//! `hpa-tuned` autoscaler uses on those apps ([`crate::AutoscalerSpec::for_app`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use graphscale_plan::hpa::{
    Behavior, HpaControllerConfig, HpaSpec, MetricTarget, ScalingRules, SelectPolicy,
};
use serde::{Deserialize, Serialize};

use crate::catalogue::{default_hpa_spec, AutoscalerSpec};

/// The knobs a platform team tunes on an HPA: the CPU target, the controller's tolerance, the
/// scale-down stabilisation window and how fast it may scale up. Everything else is the HPA's
/// default (sync period 15 s, scale-down by up to 100 % per 15 s, 1..=50 replicas).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HpaKnobs {
    /// CPU utilisation target, % of the request (1..=100).
    pub target_percent: u32,
    /// `--horizontal-pod-autoscaler-tolerance` (0..1).
    pub tolerance: f64,
    /// `behavior.scaleDown.stabilizationWindowSeconds` (0..=3600).
    pub scale_down_window_s: u64,
    /// Scale-up by up to this many pods per 15 s (the default 4)...
    pub scale_up_pods: u32,
    /// ...or this % of the replicas per 15 s, whichever is more (the default 100).
    pub scale_up_percent: u32,
}

impl HpaKnobs {
    /// The Kubernetes defaults (`hpa`).
    pub const DEFAULT: HpaKnobs = HpaKnobs {
        target_percent: 80,
        tolerance: 0.1,
        scale_down_window_s: 300,
        scale_up_pods: 4,
        scale_up_percent: 100,
    };

    /// The hand-set `hpa-tuned` of earlier releases, still used for apps the grid search has
    /// not tuned (generated apps, app files, the operator).
    pub const HAND_SET: HpaKnobs = HpaKnobs {
        target_percent: 60,
        tolerance: 0.05,
        scale_down_window_s: 60,
        scale_up_pods: 8,
        scale_up_percent: 200,
    };

    /// A short label, also the name of a grid-search candidate: `hpa[cpu60,tol0.05,down60,up8/200]`.
    pub fn label(&self) -> String {
        format!(
            "hpa[cpu{},tol{},down{},up{}/{}]",
            self.target_percent,
            self.tolerance,
            self.scale_down_window_s,
            self.scale_up_pods,
            self.scale_up_percent
        )
    }

    /// The HPA these knobs configure, named `name`.
    pub fn spec(&self, name: &str) -> AutoscalerSpec {
        let mut behavior = Behavior::default();
        behavior.scale_up.policies[0].value = self.scale_up_pods;
        behavior.scale_up.policies[1].value = self.scale_up_percent;
        behavior.scale_down = ScalingRules {
            stabilization_window_s: self.scale_down_window_s,
            select_policy: SelectPolicy::Max,
            policies: behavior.scale_down.policies.clone(),
        };
        AutoscalerSpec::Hpa {
            name: name.into(),
            controller: HpaControllerConfig {
                tolerance: self.tolerance,
                ..HpaControllerConfig::default()
            },
            spec: HpaSpec {
                metrics: vec![MetricTarget::CpuUtilization {
                    target_percent: self.target_percent,
                }],
                behavior,
                ..default_hpa_spec()
            },
        }
    }

    /// Whether every knob is in its range (the names are the fields').
    pub fn check(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.target_percent) {
            return Err(format!(
                "target_percent must be in 1..=100, got {}",
                self.target_percent
            ));
        }
        if !(self.tolerance.is_finite() && (0.0..1.0).contains(&self.tolerance)) {
            return Err(format!(
                "tolerance must be in [0, 1), got {}",
                self.tolerance
            ));
        }
        if self.scale_down_window_s > 3600 {
            return Err(format!(
                "scale_down_window_s must be at most 3600, got {}",
                self.scale_down_window_s
            ));
        }
        if !(1..=1000).contains(&self.scale_up_pods) || !(1..=1000).contains(&self.scale_up_percent)
        {
            return Err(format!(
                "scale_up_pods and scale_up_percent must be in 1..=1000, got {} and {}",
                self.scale_up_pods, self.scale_up_percent
            ));
        }
        Ok(())
    }
}

/// What `graphscale tune-hpa` chose: the knobs per app, with the command, revision and rule that
/// chose them (its report has more fields, which this ignores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TunedHpa {
    /// The command that produced it.
    pub command: String,
    /// The git revision of the binary that produced it.
    pub git_revision: String,
    /// How a candidate was chosen, in words.
    pub rule: String,
    /// The chosen knobs per app name.
    pub apps: BTreeMap<String, HpaKnobs>,
}

/// The grid search's result shipped with graphscale (`data/hpa-tuned.json`).
const SHIPPED: &str = include_str!("../../../data/hpa-tuned.json");

/// The shipped table; `None` if it does not parse or has a knob out of range (a unit test keeps
/// it valid).
pub fn shipped() -> Option<&'static TunedHpa> {
    static TABLE: OnceLock<Option<TunedHpa>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            serde_json::from_str::<TunedHpa>(SHIPPED)
                .ok()
                .filter(|t| t.apps.values().all(|k| k.check().is_ok()))
        })
        .as_ref()
}

/// The shipped knobs of `app`, if the grid search tuned it.
pub fn knobs_for(app: &str) -> Option<HpaKnobs> {
    shipped().and_then(|t| t.apps.get(app).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_names_built_in_apps() {
        let t = serde_json::from_str::<TunedHpa>(SHIPPED).expect("data/hpa-tuned.json parses");
        for app in [
            "online-boutique",
            "train-ticket",
            "alibaba",
            "event-driven",
            "random-100-1",
        ] {
            assert!(t.apps.contains_key(app), "{app} not tuned");
        }
        for (app, k) in &t.apps {
            k.check().unwrap_or_else(|e| panic!("{app}: {e}"));
        }
        assert!(t.command.contains("tune-hpa"), "{}", t.command);
        assert_eq!(shipped(), Some(&t));
    }

    #[test]
    fn knobs_make_the_hpa_they_name() {
        let AutoscalerSpec::Hpa {
            controller, spec, ..
        } = HpaKnobs::DEFAULT.spec("x")
        else {
            panic!("not an HPA")
        };
        assert_eq!(controller, HpaControllerConfig::default());
        assert_eq!(spec, default_hpa_spec());
        let AutoscalerSpec::Hpa {
            controller, spec, ..
        } = HpaKnobs::HAND_SET.spec("x")
        else {
            panic!("not an HPA")
        };
        assert_eq!(controller.tolerance, 0.05);
        assert_eq!(spec.behavior.scale_down.stabilization_window_s, 60);
        assert_eq!(spec.behavior.scale_up.policies[0].value, 8);
        assert_eq!(spec.behavior.scale_up.policies[1].value, 200);
        assert_eq!(
            spec.metrics,
            vec![MetricTarget::CpuUtilization { target_percent: 60 }]
        );
        assert_eq!(
            HpaKnobs::HAND_SET.label(),
            "hpa[cpu60,tol0.05,down60,up8/200]"
        );
    }

    #[test]
    fn knobs_out_of_range_are_named() {
        let bad = [
            (
                HpaKnobs {
                    target_percent: 0,
                    ..HpaKnobs::DEFAULT
                },
                "target_percent",
            ),
            (
                HpaKnobs {
                    tolerance: f64::NAN,
                    ..HpaKnobs::DEFAULT
                },
                "tolerance",
            ),
            (
                HpaKnobs {
                    tolerance: 1.0,
                    ..HpaKnobs::DEFAULT
                },
                "tolerance",
            ),
            (
                HpaKnobs {
                    scale_down_window_s: 3601,
                    ..HpaKnobs::DEFAULT
                },
                "scale_down_window_s",
            ),
            (
                HpaKnobs {
                    scale_up_pods: 0,
                    ..HpaKnobs::DEFAULT
                },
                "scale_up_pods",
            ),
        ];
        for (k, field) in bad {
            let e = k.check().unwrap_err();
            assert!(e.contains(field), "{e}");
        }
        assert!(HpaKnobs::DEFAULT.check().is_ok() && HpaKnobs::HAND_SET.check().is_ok());
    }
}
