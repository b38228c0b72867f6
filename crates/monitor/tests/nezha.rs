//! Import of the Nezha per-pod metrics (shared/data/microservices-ob-tt) and its bad input.

use std::path::Path;

use graphscale_core::Metric;
use graphscale_monitor::nezha;

#[test]
fn online_boutique_imports_with_its_corrupt_column_reported() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/microservices-ob-tt/ob");
    if !dir.exists() {
        eprintln!("skipping: {} not present", dir.display());
        return;
    }
    let (series, report) = nezha::read(&dir).unwrap();
    assert_eq!(series.len(), 2);
    let (s0, s1) = (&series[0], &series[1]);
    assert_eq!(s0.graph.services().count(), 10);
    assert_eq!((s0.step_ms, s0.len, s1.len), (60_000, 1209, 721));
    // The frontend serves about 8 requests/s (README) on one pod.
    let rps = &s0.nodes["frontend"][&Metric::Rps];
    let known: Vec<f64> = rps.iter().copied().filter(|v| v.is_finite()).collect();
    let mean = known.iter().sum::<f64>() / known.len() as f64;
    assert!(
        known.len() > 1100 && (4.0..15.0).contains(&mean),
        "{} {mean}",
        known.len()
    );
    assert_eq!(s0.nodes["frontend"][&Metric::ReplicasReady][10], 1.0);
    // adservice's timestamps on 2022-08-22 are 200,000,000 s late: every row is reported and
    // none is placed.
    let line = report
        .lines()
        .into_iter()
        .find(|l| l.contains("adservice"))
        .expect("the corrupt adservice rows are reported");
    assert!(
        line.contains("1209 rows") && line.contains("ob-2022-08-22"),
        "{line}"
    );
    assert!(s0
        .nodes
        .get("adservice")
        .is_none_or(|m| m[&Metric::Rps].iter().all(|v| v.is_nan())));
    assert!(s1.nodes["adservice"][&Metric::Rps]
        .iter()
        .any(|v| v.is_finite()));
    // Trace call counts become edge RPS where the traces cover a minute.
    assert!(s1
        .edges
        .iter()
        .any(|e| e.src == "frontend" && e.metrics[&Metric::Rps].iter().any(|v| v.is_finite())));
}

#[test]
fn bad_files_are_named() {
    let dir = std::env::temp_dir().join(format!("gs-nezha-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("segments.csv"),
        "segment,kind,start_utc,end_utc,minutes\ns1,x,2022-08-22 03:51:19,tomorrow,3\n",
    )
    .unwrap();
    let e = nezha::read(&dir).unwrap_err().to_string();
    assert!(
        e.contains("segments.csv") && e.contains("line 2") && e.contains("end_utc"),
        "{e}"
    );
    std::fs::write(
        dir.join("segments.csv"),
        "segment,kind,start_utc,end_utc,minutes\ns1,x,2022-08-22 03:51:19,2022-08-22 04:00:19,9\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("pod_metrics_1min.csv"),
        "segment,timestamp,service\n",
    )
    .unwrap();
    let e = nezha::read(&dir).unwrap_err().to_string();
    assert!(
        e.contains("pod_metrics_1min.csv") && e.contains("missing column `pod`"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
