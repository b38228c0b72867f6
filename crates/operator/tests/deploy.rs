//! `deploy/` stays true to the code.

#[test]
fn the_crd_in_deploy_is_the_one_the_code_generates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/base/crd.yaml");
    let on_disk = std::fs::read_to_string(path).unwrap();
    let generated = graphscale_operator::crd::crd_yaml().unwrap();
    assert!(
        on_disk.trim_end() == generated.trim_end(),
        "deploy/base/crd.yaml drifted from the code: run `cargo run -- crd > deploy/base/crd.yaml`"
    );
}

#[test]
fn every_workload_kind_the_operator_writes_has_its_verbs_in_the_cluster_role() {
    let rbac = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/base/rbac.yaml"
    ))
    .unwrap();
    for needed in [
        "deployments/scale",
        "statefulsets/scale",
        "pods/resize",
        "predictiveautoscalers/status",
        "horizontalpodautoscalers",
        "scaledobjects",
        "leases",
    ] {
        assert!(
            rbac.contains(&format!("\"{needed}\"")),
            "rbac.yaml lacks {needed}"
        );
    }
    // Nothing the operator never does.
    for never in [
        "\"secrets\"",
        "\"delete\"",
        "\"*\"",
        "\"update\", \"patch\", \"delete\"",
    ] {
        assert!(!rbac.contains(never), "rbac.yaml grants {never}");
    }
}
