//! What several test files share.

use graphscale_operator::crd::WorkloadKind;
use graphscale_operator::target::Target;

/// The Deployment `cart` with `replicas`, 1..=10, 200m CPU, container `server`.
pub fn cart(replicas: u32) -> Target {
    Target {
        kind: WorkloadKind::Deployment,
        name: "cart".into(),
        replicas,
        min_replicas: 1,
        max_replicas: 10,
        cpu_request_millicores: Some(200.0),
        container: Some("server".into()),
        pod_selector: Some("app=cart".into()),
        disabled: false,
        conflict: None,
    }
}
