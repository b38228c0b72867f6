//! The `graphscale` binary end to end: real processes, real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_graphscale"));
    c.env("GRAPHSCALE_GIT_REVISION", "test-rev");
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("graphscale-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `args`, checks that it fails without a panic and says every needle; returns stderr.
fn fails_with(args: &[&str], needles: &[&str]) -> String {
    let o = run(args);
    let e = stderr(&o);
    assert!(!o.status.success(), "{args:?} should fail");
    assert!(!e.contains("panicked"), "{args:?} panicked: {e}");
    for n in needles {
        assert!(e.contains(n), "{args:?}: `{n}` not in: {e}");
    }
    e
}

#[test]
fn eval_end_to_end_on_a_short_scenario() {
    let out = tmp("eval");
    let o = run(&[
        "eval",
        "--apps",
        "event-driven",
        "--scenarios",
        "rush",
        "--autoscalers",
        "hpa,static",
        "--seeds",
        "2-4",
        "--duration",
        "20m",
        "--warmup",
        "5m",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // stderr is no terminal here: a progress line per run instead of the bar.
    let log = stderr(&o);
    assert!(
        log.contains("run 1/6 done after") && log.contains("run 6/6 done after"),
        "{log}"
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("event-driven") && table.contains("static") && table.contains("baseline"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["git_revision"], "test-rev");
    assert_eq!(json["spec"]["seeds"], serde_json::json!([2, 3, 4]));
    assert_eq!(json["runs"].as_array().unwrap().len(), 6);
    assert!(json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["warmup_s"] == 300));
    let summary = json["summary"].as_array().unwrap();
    let stat = summary
        .iter()
        .find(|r| r["autoscaler"] == "static")
        .unwrap();
    let cpu = stat["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "cpu_core_hours")
        .unwrap();
    assert!(cpu["cliffs_delta_vs_baseline"].is_number());
    assert!(cpu["ci_low"].as_f64().unwrap() <= cpu["mean"].as_f64().unwrap());
    // The rush must stress the HPA: some scaling happened.
    let hpa_runs: Vec<_> = json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["autoscaler"] == "hpa")
        .collect();
    assert!(hpa_runs
        .iter()
        .all(|r| r["metrics"]["scaling_actions"].as_f64().unwrap() > 0.0));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<svg")
            && html.contains("test-rev")
            && html.contains("SLO violations vs cost")
    );
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn sim_run_exports_series_in_the_documented_schema() {
    let out = tmp("series");
    let file = out.join("series.json");
    let o = run(&[
        "sim",
        "run",
        "--app",
        "event-driven",
        "--scenario",
        "peak",
        "--duration",
        "5m",
        "--series-out",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&file).unwrap();
    let s = graphscale_core::GraphSeries::from_json(&text, "series.json").unwrap();
    assert_eq!(s.len, 20);
    assert_eq!(s.step_ms, 15_000);
    assert!(s.nodes["gateway"][&graphscale_core::Metric::Rps][10] > 0.0);
    assert!(s.nodes.contains_key("shipment-jobs"));
    assert!(s
        .edges
        .iter()
        .any(|e| e.src == "gateway" && e.dst == "catalog"));
}

#[test]
fn sim_run_exports_series_of_a_random_app() {
    // The app was looked up by its name again (`random-40-1`) and refused.
    let out = tmp("series-random");
    let file = out.join("series.json");
    let o = run(&[
        "sim",
        "run",
        "--app",
        "random:40",
        "--duration",
        "2m",
        "--series-out",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&file).unwrap();
    let s = graphscale_core::GraphSeries::from_json(&text, "series.json").unwrap();
    assert_eq!(s.len, 8);
    assert!(s.nodes.len() >= 40);
}

#[test]
fn topology_show_prints_a_loadable_app() {
    let o = run(&["topology", "show", "online-boutique"]);
    assert!(o.status.success());
    let out = tmp("topo");
    let f = out.join("ob.json");
    std::fs::write(&f, &o.stdout).unwrap();
    // The printed file is itself an app that `eval` accepts by path.
    let o = run(&[
        "sim",
        "run",
        "--app",
        f.to_str().unwrap(),
        "--scenario",
        "off-peak",
        "--duration",
        "120s",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn replaying_a_csv_and_its_errors() {
    let out = tmp("csv");
    let good = out.join("load.csv");
    std::fs::write(&good, "timestamp,requests\n0,10\n60,20\n120,15\n").unwrap();
    let o = run(&[
        "sim",
        "run",
        "--app",
        "event-driven",
        "--scenario",
        good.to_str().unwrap(),
        "--peak-rps",
        "50",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cases: [(&str, &[&str]); 5] = [
        (
            "timestamp,requests\n0,10\n60,abc\n",
            &["line 3", "requests", "not a number"],
        ),
        (
            "timestamp,requests\n0,10\n0,20\n",
            &["line 3", "duplicate timestamp"],
        ),
        (
            "timestamp,requests\n60,10\n0,20\n",
            &["line 3", "must increase"],
        ),
        ("timestamp,requests\n0,10\n60,-5\n", &["line 3", ">= 0"]),
        (
            "timestamp\n0\n60\n",
            &["line 1", "at least a timestamp and a value column"],
        ),
    ];
    for (i, (body, needles)) in cases.iter().enumerate() {
        let f = out.join(format!("bad{i}.csv"));
        std::fs::write(&f, body).unwrap();
        let mut n: Vec<&str> = needles.to_vec();
        let name = f.display().to_string();
        n.push(&name);
        fails_with(
            &[
                "sim",
                "run",
                "--app",
                "event-driven",
                "--scenario",
                f.to_str().unwrap(),
            ],
            &n,
        );
    }
    let e = fails_with(
        &["sim", "run", "--scenario", "/nonexistent/load.csv"],
        &["/nonexistent/load.csv", "No such file"],
    );
    assert_eq!(e.matches("No such file").count(), 1, "the cause once: {e}");
}

#[test]
fn bad_names_and_impossible_configs_fail_clearly() {
    fails_with(
        &["eval", "--apps", "hipster-shop", "--duration", "60s"],
        &["unknown topology `hipster-shop`", "online-boutique"],
    );
    fails_with(
        &["eval", "--scenarios", "tsunami", "--duration", "60s"],
        &["unknown workload `tsunami`", "rush"],
    );
    fails_with(
        &["eval", "--autoscalers", "magic"],
        &["unknown autoscaler `magic`"],
    );
    fails_with(&["eval", "--seeds", "0"], &["need at least one seed"]);
    fails_with(&["eval", "--seeds", "9-6"], &["`9-6`", "A <= B"]);
    fails_with(&["eval", "--seeds", "x"], &["`x` is not a seed count"]);
    fails_with(
        &["eval", "--warmup", "90s", "--duration", "10m"],
        &["warmup_s: must be a whole number of minutes"],
    );
    fails_with(
        &["eval", "--warmup", "10m", "--duration", "10m"],
        &["leaves nothing after the 600 s warm-up"],
    );
    fails_with(
        &["eval", "--slo-ms", "0", "--duration", "60s"],
        &["slo_ms: must be > 0"],
    );
    fails_with(&["eval", "--duration=-3m"], &["duration must be > 0"]);
    let out = tmp("spec");
    let spec = out.join("spec.json");
    std::fs::write(
        &spec,
        r#"{"apps": ["event-driven"], "seeds": [1],
            "autoscalers": [{"kind": "hpa", "name": "hpa", "spec": {"min_replicas": 5, "max_replicas": 2}}]}"#,
    )
    .unwrap();
    fails_with(
        &["eval", "--spec", spec.to_str().unwrap()],
        &["min_replicas 5 > max_replicas 2"],
    );
    std::fs::write(&spec, "{\n  \"apps\": [\"ob\"],\n  \"seeds\": 3\n}").unwrap();
    fails_with(
        &["eval", "--spec", spec.to_str().unwrap()],
        &["spec.json", "line 3"],
    );
    let app = out.join("app.json");
    let mut ob: serde_json::Value =
        serde_json::from_slice(&run(&["topology", "show", "event-driven"]).stdout).unwrap();
    ob["services"][0]["requests"]["cpu_millicores"] = serde_json::json!(0.0);
    std::fs::write(&app, serde_json::to_string(&ob).unwrap()).unwrap();
    fails_with(
        &["eval", "--apps", app.to_str().unwrap()],
        &["app.json", "services[gateway].requests", "zero capacity"],
    );
    fails_with(
        &["calibrate", "--data", "/nonexistent"],
        &["/nonexistent", "not a folder"],
    );
}

/// A one-minute `eval` of event-driven with `seeds` into `out`.
fn short_eval<'a>(out: &'a Path, seeds: &'a str) -> Vec<&'a str> {
    vec![
        "eval",
        "--apps",
        "event-driven",
        "--seeds",
        seeds,
        "--duration",
        "60s",
        "--out",
        out.to_str().unwrap(),
    ]
}

#[test]
fn existing_results_survive_a_failed_run() {
    let out = tmp("keep");
    let o = run(&short_eval(&out, "1"));
    assert!(o.status.success(), "{}", stderr(&o));
    let before = std::fs::read(out.join("results.json")).unwrap();
    fails_with(
        &["eval", "--apps", "nope", "--out", out.to_str().unwrap()],
        &["unknown topology"],
    );
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), before);
    // A second run into the same folder is refused before it runs, naming the file; nothing
    // is replaced.
    let again = short_eval(&out, "2");
    fails_with(&again, &["results.json exists", "--force"]);
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), before);
    // With --force it is replaced.
    let mut forced = again.clone();
    forced.push("--force");
    let o = run(&forced);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(out.join("results.json")).unwrap(), before);
}

/// A symlink planted at the temporary names the writers used (`results.json.tmp`,
/// `M.safetensors.tmp`, `nodes.tmp`) is never followed: the file it points to is untouched and
/// the result is a plain file.
#[cfg(unix)]
#[test]
fn symlinks_at_the_old_temporary_names_are_not_followed() {
    let dir = tmp("symlink");
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    for name in ["results.json.tmp", "report.html.tmp", "results.tmp"] {
        std::os::unix::fs::symlink(&victim, out.join(name)).unwrap();
    }
    let o = run(&short_eval(&out, "1"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let meta = std::fs::symlink_metadata(out.join("results.json")).unwrap();
    assert!(meta.file_type().is_file());

    // A forecaster checkpoint.
    let csv = dir.join("s.csv");
    let rows: String = (0..300)
        .map(|i| format!("{},{}\n", 1_700_000_000 + i * 60, 10 + i % 7))
        .collect();
    std::fs::write(&csv, format!("timestamp,value\n{rows}")).unwrap();
    let model = dir.join("m.safetensors");
    std::os::unix::fs::symlink(&victim, dir.join("m.safetensors.tmp")).unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("m.tmp")).unwrap();
    let fit = [
        "forecast",
        "fit",
        "--csv",
        csv.to_str().unwrap(),
        "--model",
        "ets",
        "--out",
        model.to_str().unwrap(),
    ];
    let o = run(&fit);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let meta = std::fs::symlink_metadata(&model).unwrap();
    assert!(meta.file_type().is_file());
    // And it is not replaced unasked.
    fails_with(&fit, &["m.safetensors exists", "--force"]);
}

#[test]
fn tune_hpa_searches_a_grid_and_writes_what_hpa_tuned_reads() {
    let dir = tmp("tune-hpa");
    let out = dir.join("tuned.json");
    let out_s = out.to_str().unwrap();
    let args = [
        "tune-hpa",
        "--apps",
        "event-driven",
        "--scenarios",
        "rush",
        "--duration",
        "10m",
        "--seeds",
        "1-2",
        "--targets",
        "50,90",
        "--tolerances",
        "0.1",
        "--windows",
        "5m",
        "--scale-up",
        "4/100",
        "--out",
        out_s,
    ];
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("event-driven: 3 candidates")
            && table.contains("hpa[cpu80,tol0.1,down300,up4/100]")
            && table.contains("default hpa")
            && table.contains("chosen"),
        "{table}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(report["command"]
        .as_str()
        .unwrap()
        .starts_with("graphscale tune-hpa --apps event-driven"));
    let knobs = &report["apps"]["event-driven"];
    assert!(knobs["target_percent"].as_u64().is_some(), "{report}");
    assert_eq!(
        report["tunings"][0]["candidates"].as_array().unwrap().len(),
        3
    );
    // Not replaced unasked; bad knobs are named before anything runs.
    fails_with(&args, &["tuned.json", "--force"]);
    let mut bad = args.to_vec();
    bad[16] = "0/100";
    fails_with(&bad, &["--scale-up", "0/100"]);
    let other = dir.join("other.json");
    let mut bad = args.to_vec();
    bad[10] = "0,90";
    bad[18] = other.to_str().unwrap();
    fails_with(&bad, &["target_percent"]);
    assert!(!other.exists());
}

#[test]
fn help_explains_every_subcommand() {
    let o = run(&["--help"]);
    let h = String::from_utf8_lossy(&o.stdout);
    for sub in [
        "demo",
        "eval",
        "sim",
        "topology",
        "calibrate",
        "bench",
        "train",
        "predict",
        "tune-hpa",
    ] {
        assert!(h.contains(sub), "{sub} missing from --help: {h}");
    }
    assert!(Path::new(env!("CARGO_BIN_EXE_graphscale")).exists());
}

#[test]
fn discover_and_collect_give_up_at_their_deadline() {
    // A Prometheus that accepts connections and never answers: each request's own timeout
    // (120 s by default) times three retries would hold `discover` for about 8 minutes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for s in listener.incoming().take(64) {
            match s {
                Ok(s) => open.push(s),
                Err(_) => break,
            }
        }
        open
    });
    let started = std::time::Instant::now();
    fails_with(
        &["discover", "--prometheus", &url, "--deadline", "2s"],
        &[
            "discover: Prometheus did not answer within the deadline of 2 s",
            "--deadline",
        ],
    );
    let out = tmp("collect-deadline");
    fails_with(
        &[
            "collect",
            "--prometheus",
            &url,
            "--deadline",
            "2s",
            "--out",
            out.join("c").to_str().unwrap(),
        ],
        &["collect: Prometheus did not answer within the deadline of 2 s"],
    );
    // Both together well inside one request's default timeout.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(!out.join("c").exists(), "nothing is written on a miss");
    fails_with(
        &["discover", "--prometheus", &url, "--retries", "11"],
        &["--retries", "11"],
    );
    drop(held);
}

#[test]
fn collect_and_discover_fail_clearly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = tmp("collect");
    fails_with(
        &[
            "collect",
            "--prometheus",
            &url,
            "--timeout-ms",
            "200",
            "--out",
            out.to_str().unwrap(),
        ],
        &["unreachable", &format!("127.0.0.1:{port}")],
    );
    fails_with(
        &["collect", "--out", out.to_str().unwrap()],
        &["--prometheus URL is required"],
    );
    fails_with(
        &["discover"],
        &["exactly one of --prometheus URL or --kiali FILE"],
    );
    let cfg = out.join("bad.json");
    std::fs::write(
        &cfg,
        r#"{"templates": {"edge_rps": "sum(rate(istio_requests_total[$win]))"}}"#,
    )
    .unwrap();
    fails_with(
        &[
            "collect",
            "--prometheus",
            &url,
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &["template `edge_rps`", "unknown placeholder `$win`"],
    );
    std::fs::write(&cfg, r#"{"discovery": {"namespace": "x", "bogus": 1}}"#).unwrap();
    fails_with(
        &[
            "collect",
            "--prometheus",
            &url,
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            "x",
        ],
        &["bad.json", "bogus"],
    );
    let kiali = out.join("kiali.json");
    std::fs::write(
        &kiali,
        r#"{"elements": {"nodes": [{"data": {"id": "n1", "nodeType": "serverless"}}]}}"#,
    )
    .unwrap();
    fails_with(
        &["discover", "--kiali", kiali.to_str().unwrap()],
        &["kiali.json", "unknown node type `serverless`"],
    );
    std::fs::write(
        &kiali,
        r#"{"elements": {"nodes": [{"data": {"id": "u", "nodeType": "unknown"}}, {"data": {"id": "a", "nodeType": "workload", "workload": "web"}},
            {"data": {"id": "b", "nodeType": "workload", "workload": "db"}}],
          "edges": [{"data": {"source": "u", "target": "a", "traffic": {"rates": {"http": "5"}}}},
                    {"data": {"source": "a", "target": "b", "traffic": {"rates": {"http": "10"}}}}]}}"#,
    )
    .unwrap();
    let o = run(&["discover", "--kiali", kiali.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["graph"]["edges"][0]["ratio"], 2.0);
    assert_eq!(v["entries"]["web"], 5.0);
}

#[test]
fn forecast_backtest_end_to_end_and_bad_input() {
    let out = tmp("forecast");
    // Three days of a daily wave with noise-free structure, per minute.
    let mut csv = String::from("ts,requests\n");
    for i in 0..(3 * 1440) {
        let v = 1000.0 + 500.0 * (std::f64::consts::TAU * i as f64 / 1440.0).sin() + (i % 7) as f64;
        csv.push_str(&format!("{},{v}\n", 1_000_000_020 + 60 * i));
    }
    let f = out.join("load.csv");
    std::fs::write(&f, &csv).unwrap();
    let o = run(&[
        "forecast",
        "backtest",
        "--csv",
        f.to_str().unwrap(),
        "--step",
        "5m",
        "--agg",
        "sum",
        "--horizon",
        "5m,15m",
        "--window",
        "1d",
        "--every",
        "30m",
        "--season",
        "288",
        "--models",
        "persistence,seasonal-naive",
        "--calibration",
        "20",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("backtest.json")).unwrap()).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let mase = |m: usize, h: usize| results[m]["scores"][h]["mase"].as_f64().unwrap();
    // On a clean daily wave the seasonal naive forecast beats persistence.
    assert!(mase(1, 1) < mase(0, 1), "{} vs {}", mase(1, 1), mase(0, 1));
    assert!(std::fs::read_to_string(out.join("backtest.html"))
        .unwrap()
        .contains("<svg"));
    let bad = |args: &[&str], needles: &[&str]| {
        let mut a = vec![
            "forecast",
            "backtest",
            "--csv",
            f.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(args);
        fails_with(&a, needles);
    };
    bad(
        &["--horizon", "7m", "--step", "5m"],
        &["--horizon", "multiple of --step"],
    );
    bad(&["--models", "prophet9"], &["prophet9", "unknown model"]);
    bad(&["--window", "30d"], &["needs at least"]);
    bad(&["--from", "tomorrow"], &["--from `tomorrow`"]);
    bad(&["--level", "1.5"], &["--level must be in (0, 1)"]);
    let short = out.join("short.csv");
    std::fs::write(&short, "ts,requests\n1,1\n").unwrap();
    fails_with(
        &[
            "forecast",
            "backtest",
            "--csv",
            short.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &["short.csv", "at least 2 data rows"],
    );
}

#[test]
fn forecast_fit_then_predict_and_bad_checkpoints() {
    let out = tmp("fit");
    let mut csv = String::from("ts,rps\n");
    for i in 0..600 {
        csv.push_str(&format!(
            "{},{}\n",
            1_000_000_000 + 60 * i,
            50.0 + (i % 24) as f64
        ));
    }
    let f = out.join("s.csv");
    std::fs::write(&f, &csv).unwrap();
    let ck = out.join("m.safetensors");
    let o = run(&[
        "forecast",
        "fit",
        "--csv",
        f.to_str().unwrap(),
        "--model",
        "seasonal-naive",
        "--season",
        "24",
        "--max-horizon",
        "5m",
        "--out",
        ck.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[
        "forecast",
        "predict",
        "--model",
        ck.to_str().unwrap(),
        "--horizon",
        "3m",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The series ends at i = 599 (599 % 24 = 23): the next three values repeat i % 24 = 0, 1, 2.
    // Buckets are labelled by their start: 1e9 is not a multiple of 60, so the grid starts at
    // 999,999,960 and the first forecast is for 600 steps later.
    assert_eq!(rows[0]["unix"], 999_999_960.0 + 60.0 * 600.0);
    assert_eq!(rows[0]["point"], 50.0);
    assert_eq!(rows[2]["point"], 52.0);
    assert_eq!(
        rows[1]["q0.5"], 51.0,
        "a perfect seasonal fit has zero calibration error"
    );
    fails_with(
        &[
            "forecast",
            "predict",
            "--model",
            ck.to_str().unwrap(),
            "--horizon",
            "10m",
        ],
        &["calibrated for up to 5 steps"],
    );
    let manifest = std::fs::read_to_string(out.join("m.safetensors.json")).unwrap();
    assert!(manifest.contains("\"kind\": \"seasonal-naive\""));
    std::fs::write(&ck, b"garbage").unwrap();
    fails_with(
        &["forecast", "predict", "--model", ck.to_str().unwrap()],
        &["m.safetensors", "not a safetensors file"],
    );
    fails_with(
        &[
            "forecast",
            "fit",
            "--csv",
            f.to_str().unwrap(),
            "--model",
            "arima",
            "--out",
            ck.to_str().unwrap(),
        ],
        &["arima", "unknown model"],
    );
}

#[test]
fn neural_models_fit_predict_and_backtest_from_the_command_line() {
    let out = tmp("nn");
    let mut csv = String::from("ts,rps\n");
    for i in 0..700 {
        let v = 100.0 + 30.0 * (std::f64::consts::TAU * i as f64 / 24.0).sin() + (i % 5) as f64;
        csv.push_str(&format!("{},{v}\n", 1_000_000_020 + 60 * i));
    }
    let f = out.join("s.csv");
    std::fs::write(&f, &csv).unwrap();
    let cfg = out.join("nn.json");
    std::fs::write(&cfg, r#"{"window": 24, "hidden": 8, "epochs": 4}"#).unwrap();
    let ck = out.join("lstm.safetensors");
    let fit = |model: &str, cfg_path: &str| {
        run(&[
            "forecast",
            "fit",
            "--csv",
            f.to_str().unwrap(),
            "--model",
            model,
            "--season",
            "24",
            "--max-horizon",
            "5m",
            "--nn-config",
            cfg_path,
            "--out",
            ck.to_str().unwrap(),
        ])
    };
    let o = fit("lstm", cfg.to_str().unwrap());
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("lstm.safetensors.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["kind"], "lstm");
    assert_eq!(manifest["hyper"]["window"], 24);
    assert_eq!(manifest["hyper"]["max_horizon"], 5);
    assert!(manifest["training"]["best_epoch"].as_u64().unwrap() >= 1);
    let o = run(&[
        "forecast",
        "predict",
        "--model",
        ck.to_str().unwrap(),
        "--horizon",
        "5m",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 5);
    for r in rows.as_array().unwrap() {
        let (lo, p, hi) = (
            r["q0.05"].as_f64().unwrap(),
            r["point"].as_f64().unwrap(),
            r["q0.95"].as_f64().unwrap(),
        );
        assert!(lo <= p && p <= hi && p > 40.0 && p < 160.0, "{r}");
    }
    // Settings with an unknown field are refused by name; nothing is overwritten.
    let before = std::fs::read(&ck).unwrap();
    std::fs::write(&cfg, r#"{"window": 24, "hiden": 8}"#).unwrap();
    let o = fit("gru", cfg.to_str().unwrap());
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("nn.json") && e.contains("hiden"), "{e}");
    assert_eq!(std::fs::read(&ck).unwrap(), before);
    // A backtest with a network trained every 4 origins, beside persistence.
    std::fs::write(&cfg, r#"{"window": 24, "hidden": 8, "epochs": 3}"#).unwrap();
    let o = run(&[
        "forecast",
        "backtest",
        "--csv",
        f.to_str().unwrap(),
        "--step",
        "1m",
        "--horizon",
        "1m,3m",
        "--window",
        "6h",
        "--every",
        "3m",
        "--season",
        "24",
        "--models",
        "persistence,gru",
        "--refit-every",
        "4",
        "--nn-config",
        cfg.to_str().unwrap(),
        "--calibration",
        "20",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("backtest.json")).unwrap()).unwrap();
    assert_eq!(v["config"]["refit_every"], 4);
    let gru = &v["results"][1];
    assert_eq!(gru["model"], "gru");
    assert_eq!(gru["failures"], 0, "{gru}");
    assert!(gru["scores"][0]["n"].as_u64().unwrap() > 50);
}

#[test]
fn graph_model_train_then_predict_and_bad_input() {
    let out = tmp("graph-model");
    let ck = out.join("gat.safetensors");
    let ck_s = ck.to_str().unwrap();
    let o = run(&[
        "train",
        "--model",
        "gat",
        "--data",
        "sim:event-driven:fluctuating:1:1800",
        "--epochs",
        "2",
        "--out",
        ck_s,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("persistence") && text.contains("held-out test range"),
        "{text}"
    );
    // A snapshot recorded separately (another seed), read back from its JSON export.
    let snap = out.join("snap.json");
    let o = run(&[
        "sim",
        "run",
        "--app",
        "event-driven",
        "--scenario",
        "fluctuating",
        "--duration",
        "300",
        "--seed",
        "9",
        "--series-out",
        snap.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[
        "predict",
        "--model",
        ck_s,
        "--snapshot",
        snap.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let preds: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let preds = preds.as_array().unwrap();
    // 4 steps ahead for each of the event-driven app's 9 services (not its queue and topic).
    assert_eq!(preds.len(), 4 * 9, "{preds:?}");
    assert!(preds.iter().all(|p| p["replicas"].as_u64().unwrap() >= 1
        && p["rps"][0].as_f64().unwrap() <= p["rps"][2].as_f64().unwrap()));
    // A snapshot of another app, an unknown model name, a checkpoint that is not a graph model.
    fails_with(
        &[
            "predict",
            "--model",
            ck_s,
            "--snapshot",
            "sim:online-boutique:rush:1:300",
        ],
        &["unknown node id"],
    );
    fails_with(
        &[
            "train",
            "--model",
            "gcn",
            "--data",
            "sim:event-driven:rush:1:600",
        ],
        &["unknown graph model `gcn`"],
    );
    let junk = out.join("junk.safetensors");
    std::fs::write(&junk, b"{}").unwrap();
    fails_with(
        &[
            "predict",
            "--model",
            junk.to_str().unwrap(),
            "--snapshot",
            snap.to_str().unwrap(),
        ],
        &["junk.safetensors", "not a safetensors file"],
    );
    fails_with(
        &["train", "--model", "hgt", "--data", "sim:event-driven:nope"],
        &["unknown workload `nope`"],
    );
    std::fs::remove_dir_all(&out).ok();
}

/// One HTTP/1.0 GET on loopback; the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.lines().next().unwrap_or_default().to_string();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

#[test]
fn serve_runs_the_api_on_loopback_and_refuses_bad_setup() {
    use std::io::BufRead;
    let dir = tmp("api");
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "short\n").unwrap();
    fails_with(
        &["serve", "--token-file", token.to_str().unwrap()],
        &["--token-file", "at least 16 characters"],
    );
    std::fs::write(models.join("junk.safetensors"), b"not a model").unwrap();
    fails_with(
        &["serve", "--models-dir", models.to_str().unwrap()],
        &["--models-dir", "junk.safetensors", "not a safetensors file"],
    );
    std::fs::remove_file(models.join("junk.safetensors")).unwrap();
    fails_with(&["serve", "--listen", "nonsense"], &["--listen nonsense"]);
    fails_with(
        &["serve", "--sim-app", "nosuch"],
        &["--sim-app nosuch", "nosuch"],
    );
    fails_with(
        &["serve", "--sim-scenario", "nosuch"],
        &["--sim-scenario nosuch", "nosuch"],
    );
    fails_with(
        &["serve", "--sim-speed", "0"],
        &["--sim-speed must be in (0, 10000]"],
    );
    fails_with(&["serve", "--sim-speed", "NaN"], &["--sim-speed"]);
    let mut child = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--models-dir"])
        .arg(&models)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let (st, body) = http_get(&addr, "/healthz");
    assert!(st.contains("200"), "{st}");
    assert_eq!(body, "ok\n");
    let (st, _) = http_get(&addr, "/readyz");
    assert!(st.contains("503"), "no model: not ready: {st}");
    let (st, body) = http_get(&addr, "/openapi.json");
    assert!(
        st.contains("200") && body.contains("\"/v1/predict\""),
        "{st}"
    );
    // The page and its board: the simulated cluster, live.
    let (st, body) = http_get(&addr, "/");
    assert!(
        st.contains("200") && body.contains("<section id=\"graph\""),
        "{st}"
    );
    let (st, body) = http_get(&addr, "/v1/board");
    assert!(
        st.contains("200") && body.contains("\"app\":\"online-boutique\""),
        "{st} {body}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // --openapi prints the checked-in document.
    let o = run(&["serve", "--openapi"]);
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let file: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/openapi.json")).unwrap();
    assert_eq!(printed, file);
}

#[test]
fn bench_keda_answers_every_request_and_refuses_bad_flags() {
    let o = run(&[
        "bench",
        "keda",
        "--workloads",
        "10",
        "--requests",
        "200",
        "--concurrency",
        "1,4",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("| 1 |") || l.starts_with("| 4 |"))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    let o = run(&["bench", "keda", "--concurrency", "0"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--concurrency"));
}

#[test]
fn bench_quick_runs_every_benchmark_and_prints_its_table() {
    let o = run(&["bench", "--quick"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    // Each benchmark's table header, then at least one row of it under the header line.
    for (bench, header, rows) in [
        ("sim", "| app | services | simulated | mode |", 2),
        ("decide", "| app | services | autoscaler | rounds |", 1),
        ("forecast", "| model | season | points |", 4),
        ("nn", "| network | train step", 3),
        ("hgt", "| app | nodes | edges | forward, ms |", 3),
        ("keda", "| in flight |", 2),
        ("graph-models", "model        target", 12),
        ("rl", "| app | what | threads |", 4),
    ] {
        let section = out
            .split(&format!("## bench {bench} (quick"))
            .nth(1)
            .unwrap_or_else(|| panic!("no section for {bench}: {out}"));
        let section = section.split("\n## bench ").next().unwrap_or_default();
        // A Markdown table: header, rule, rows; graph-models prints a plain one: header, rows.
        let markdown = header.starts_with('|');
        let table: Vec<&str> = section
            .lines()
            .skip_while(|l| !l.starts_with(header))
            .take_while(|l| {
                if markdown {
                    l.starts_with('|')
                } else {
                    !l.trim().is_empty()
                }
            })
            .collect();
        let skip = if markdown { 2 } else { 1 };
        assert!(
            table.len() >= skip + rows,
            "{bench}: expected a table `{header}` with {rows} rows:\n{section}"
        );
        // Every cell of every row is filled in.
        for row in &table[skip..] {
            let cells = if markdown {
                row.trim_matches('|').split('|').count()
            } else {
                row.split_whitespace().count()
            };
            assert!(cells >= 3, "{bench}: {row}");
            assert!(
                !row.contains("||") && !row.contains("| |"),
                "{bench}: {row}"
            );
        }
    }
    assert!(out.contains("every benchmark ran"), "{out}");
    // Neither a benchmark nor --quick: a clear error, no panic.
    let o = run(&["bench", "--quick", "sim"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}

/// The shipped ONNX model (models/onnx, made by make_wc98_mlp.py).
#[cfg(feature = "onnx")]
fn onnx_model() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/onnx/wc98-mlp.onnx");
    format!("onnx:{}", p.display())
}

#[cfg(feature = "onnx")]
#[test]
fn onnx_models_run_in_backtests_checkpoints_and_the_simulator() {
    let out = tmp("onnx");
    let model = onnx_model();
    let mut csv = String::from("ts,requests\n");
    for i in 0..(2 * 1440) {
        let v = 20_000.0 + 8_000.0 * (std::f64::consts::TAU * i as f64 / 1440.0).sin();
        csv.push_str(&format!("{},{v}\n", 1_000_000_020 + 60 * i));
    }
    let f = out.join("load.csv");
    std::fs::write(&f, &csv).unwrap();
    let f = f.to_str().unwrap();
    let models = format!("persistence,{model}");
    let o = run(&[
        "forecast",
        "backtest",
        "--csv",
        f,
        "--horizon",
        "1m,15m",
        "--window",
        "1d",
        "--every",
        "1h",
        "--season",
        "1440",
        "--models",
        &models,
        "--calibration",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("backtest.json")).unwrap()).unwrap();
    let onnx = &v["results"][1];
    assert_eq!(onnx["model"], model.as_str());
    assert_eq!(onnx["failures"], 0);
    let scores = onnx["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 2);
    for s in scores {
        let mae = s["mae"].as_f64().unwrap();
        // A smooth wave of amplitude 8,000: a working forecaster is far from that error.
        assert!(mae.is_finite() && mae < 2_000.0, "{s}");
        assert!(s["n"].as_u64().unwrap() > 10, "{s}");
    }
    // A checkpoint records the model's name and reloads its file.
    let ck = out.join("onnx.safetensors");
    let o = run(&[
        "forecast",
        "fit",
        "--csv",
        f,
        "--model",
        &model,
        "--out",
        ck.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[
        "forecast",
        "predict",
        "--model",
        ck.to_str().unwrap(),
        "--horizon",
        "10m",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("0.95") && !text.contains("NaN"), "{text}");
    // An autoscaler of the model, on the simulator.
    let scaler = format!("pred-{model}");
    let o = run(&[
        "sim",
        "run",
        "--app",
        "online-boutique",
        "--scenario",
        "rush",
        "--duration",
        "10m",
        "--autoscaler",
        &scaler,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        shown.contains(&scaler) && shown.contains("cpu_core_hours"),
        "{shown}"
    );
    // A missing file, named wherever it is used.
    let gone = out.join("gone.onnx");
    let gone = gone.to_str().unwrap();
    fails_with(
        &[
            "forecast",
            "backtest",
            "--csv",
            f,
            "--models",
            &format!("onnx:{gone}"),
        ],
        &["gone.onnx", "cannot read"],
    );
    fails_with(
        &[
            "sim",
            "run",
            "--duration",
            "1m",
            "--autoscaler",
            &format!("graph-onnx:{gone}"),
        ],
        &["gone.onnx", "cannot read"],
    );
}

#[test]
fn eval_replays_a_csv_for_each_app_and_records_the_built_revision_anywhere() {
    let out = tmp("eval-csv");
    let trace = out.join("trace.csv");
    let rows: String = (0..30)
        .map(|i| format!("{},{}\n", 1_700_000_000 + 60 * i, 100 + 40 * (i % 5)))
        .collect();
    std::fs::write(&trace, format!("ts,requests\n{rows}")).unwrap();
    let results = out.join("results");
    // Outside the checkout and without the override: the revision comes from the build.
    let o = Command::new(env!("CARGO_BIN_EXE_graphscale"))
        .env_remove("GRAPHSCALE_GIT_REVISION")
        .current_dir(&out)
        .args([
            "eval",
            "--apps",
            "online-boutique,event-driven",
            "--scenarios",
            trace.to_str().unwrap(),
            "--autoscalers",
            "hpa",
            "--seeds",
            "1",
            "--duration",
            "3m",
            "--out",
            results.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("warning: with 1 seed per cell Cliff's delta"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("results.json")).unwrap())
            .unwrap();
    let rev = json["git_revision"].as_str().unwrap();
    assert_eq!(rev, env!("GRAPHSCALE_BUILD_REVISION"));
    if Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.git")
        .exists()
    {
        // A commit, marked `-dirty` when built from code or data that differ from it.
        let hash = rev.strip_suffix("-dirty").unwrap_or(rev);
        assert!(
            hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{rev}"
        );
    }
    // Each app's replay is scaled to its own nominal peak: the same trace, different loads.
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let reqs: Vec<f64> = runs
        .iter()
        .map(|r| r["metrics"]["requests"].as_f64().unwrap())
        .collect();
    assert!(
        reqs.iter().all(|r| *r > 0.0) && reqs[0] != reqs[1],
        "{reqs:?}"
    );
    // At half of each app's peak: about half the requests, same seed.
    let half = out.join("half");
    let o = run(&[
        "eval",
        "--apps",
        "online-boutique",
        "--scenarios",
        trace.to_str().unwrap(),
        "--peak-share",
        "0.5",
        "--autoscalers",
        "hpa",
        "--seeds",
        "1",
        "--duration",
        "3m",
        "--out",
        half.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(half.join("results.json")).unwrap()).unwrap();
    let r = json["runs"][0]["metrics"]["requests"].as_f64().unwrap() / reqs[0];
    assert!((0.45..0.55).contains(&r), "{r}");
    assert_eq!(json["spec"]["scenarios"][0]["peak_share"], 0.5);
    for bad in ["0", "NaN", "101", "1e400"] {
        fails_with(
            &[
                "eval",
                "--scenarios",
                "rush",
                "--peak-share",
                bad,
                "--autoscalers",
                "hpa",
                "--seeds",
                "1",
                "--duration",
                "3m",
                "--out",
                out.join("bad").to_str().unwrap(),
            ],
            &["peak_share", "is not in (0, 100]"],
        );
    }
    // A missing trace is named.
    fails_with(
        &[
            "eval",
            "--scenarios",
            "/no/such/trace.csv",
            "--autoscalers",
            "hpa",
            "--seeds",
            "1",
            "--duration",
            "3m",
            "--out",
            out.join("r2").to_str().unwrap(),
        ],
        &["/no/such/trace.csv"],
    );
}

#[test]
fn rl_train_resume_eval_and_the_policy_in_eval_behind_the_safety_layer() {
    let d = tmp("rl");
    let out = d.join("p.safetensors");
    let cfg = d.join("c.json");
    std::fs::write(
        &cfg,
        r#"{"ppo": {"rollout_steps": 4, "minibatch": 8, "epochs": 1}, "env": {"episode_s": 120}}"#,
    )
    .unwrap();
    let o = run(&[
        "rl",
        "train",
        "--encoder",
        "gcn",
        "--updates",
        "2",
        "--envs",
        "2",
        "--checkpoint-every",
        "1",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = d.join("p.safetensors.curve.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.starts_with("update,env_steps,"));
    assert!(std::fs::read_to_string(d.join("p.safetensors.curve.svg"))
        .unwrap()
        .contains("<svg"));
    // The checkpoint is not replaced unasked.
    fails_with(
        &[
            "rl",
            "train",
            "--updates",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
        &["exists", "--force"],
    );
    // Resumed: the update count and the curve go on.
    let more = d.join("q.safetensors");
    let o = run(&[
        "rl",
        "train",
        "--updates",
        "1",
        "--envs",
        "2",
        "--resume",
        out.to_str().unwrap(),
        "--out",
        more.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("3 updates"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let text = std::fs::read_to_string(d.join("q.safetensors.curve.csv")).unwrap();
    let updates: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(updates, ["1", "2", "3"]);
    // A damaged optimiser state is refused with its file named.
    std::fs::write(d.join("q.safetensors.optim"), b"junk").unwrap();
    fails_with(
        &[
            "rl",
            "train",
            "--updates",
            "1",
            "--envs",
            "2",
            "--resume",
            more.to_str().unwrap(),
            "--out",
            d.join("r2.safetensors").to_str().unwrap(),
        ],
        &["q.safetensors.optim", "optimiser state"],
    );
    // rl eval prints a row per scenario.
    let o = run(&[
        "rl",
        "eval",
        "--policy",
        more.to_str().unwrap(),
        "--scenarios",
        "peak,rush",
        "--seeds",
        "2",
        "--duration",
        "300s",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("gcn policy") && s.contains("\npeak ") && s.contains("\nrush "),
        "{s}"
    );
    // The policy as an autoscaler in `graphscale eval`, beside the HPA.
    let name = format!("rl-gcn:{}", more.display());
    let o = run(&[
        "eval",
        "--apps",
        "online-boutique",
        "--scenarios",
        "rush",
        "--duration",
        "600s",
        "--seeds",
        "2",
        "--autoscalers",
        &format!("hpa,{name}"),
        "--out",
        d.join("ev").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&name));
    // Bad input: the wrong encoder, another file, another app, a bad setting.
    fails_with(
        &[
            "eval",
            "--apps",
            "online-boutique",
            "--scenarios",
            "rush",
            "--duration",
            "600s",
            "--seeds",
            "1",
            "--autoscalers",
            &format!("rl-gat:{}", more.display()),
            "--out",
            d.join("ev2").to_str().unwrap(),
        ],
        &["holds a gcn policy", "gat"],
    );
    fails_with(
        &[
            "eval",
            "--apps",
            "train-ticket",
            "--scenarios",
            "rush",
            "--duration",
            "600s",
            "--seeds",
            "1",
            "--autoscalers",
            &name,
            "--out",
            d.join("ev3").to_str().unwrap(),
        ],
        &["trained on app `online-boutique`"],
    );
    fails_with(
        &["rl", "eval", "--policy", cfg.to_str().unwrap()],
        &["c.json", "not a safetensors file"],
    );
    std::fs::write(&cfg, r#"{"ppo": {"clip": 2}}"#).unwrap();
    fails_with(
        &[
            "rl",
            "train",
            "--updates",
            "1",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            d.join("r.safetensors").to_str().unwrap(),
        ],
        &["ppo.clip"],
    );
    std::fs::write(&cfg, r#"{"ppo": {"clipp": 0.2}}"#).unwrap();
    fails_with(
        &[
            "rl",
            "train",
            "--updates",
            "1",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            d.join("r.safetensors").to_str().unwrap(),
        ],
        &["c.json", "clipp"],
    );
    fails_with(
        &[
            "rl",
            "train",
            "--encoder",
            "transformer",
            "--out",
            d.join("r.safetensors").to_str().unwrap(),
        ],
        &["transformer", "gat, gcn, mlp"],
    );
}
