//! The API end to end in process (the router, through tower), and once on a real socket on
//! 127.0.0.1: predictions with their plan, training jobs, tokens, errors that name the field,
//! the OpenAPI document against docs/openapi.json, metrics, and mutated bodies.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::body::Body as HttpBody;
use axum::http::{Request, StatusCode};
use graphscale_api::{router, Api, Models, Token};
use graphscale_core::{AppGraph, Edge, GraphSeries, Metric, Node, NodeKind, Relation};
use graphscale_nn::graphmodel::{train, GraphModelConfig, Kind, Prepared};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "0123456789abcdef-test";

/// `a -> b`: b's load is a's one step later; CPU is 5 ms per request on one replica.
fn series(points: usize) -> GraphSeries {
    let g = AppGraph::new(
        "pair",
        vec![
            Node::new("a", NodeKind::Service),
            Node::new("b", NodeKind::Service),
        ],
        vec![Edge::new("a", "b", Relation::Calls, 1.0)],
    )
    .unwrap();
    let a: Vec<f64> = (0..points)
        .map(|t| 50.0 + 30.0 * (t as f64 / 7.0).sin() + (t % 3) as f64)
        .collect();
    let b: Vec<f64> = (0..points)
        .map(|t| if t == 0 { 50.0 } else { a[t - 1] })
        .collect();
    let mut s = GraphSeries::new(g, 0, 15_000, points);
    for (id, v) in [("a", &a), ("b", &b)] {
        let mut m = BTreeMap::new();
        m.insert(Metric::Rps, v.clone());
        m.insert(Metric::CpuMillicores, v.iter().map(|x| 5.0 * x).collect());
        m.insert(Metric::MemoryMib, vec![200.0; points]);
        m.insert(Metric::ReplicasReady, vec![2.0; points]);
        s.nodes.insert(id.into(), m);
    }
    s.edges.push(graphscale_core::series::EdgeSeries {
        src: "a".into(),
        dst: "b".into(),
        relation: Relation::Calls,
        metrics: [(Metric::Rps, a.clone())].into_iter().collect(),
    });
    s
}

fn small() -> GraphModelConfig {
    GraphModelConfig {
        window: 3,
        horizon: 2,
        hidden: 16,
        heads: 2,
        epochs: 3,
        batch: 16,
        ..GraphModelConfig::default()
    }
}

/// A folder with one trained model, `pair.safetensors`, made once per test binary.
fn models_dir() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let s = series(120);
        let p = Prepared::new(&small(), std::slice::from_ref(&s)).unwrap();
        let m = train(Kind::Mlp, &small(), &p, &mut |_| {}).unwrap();
        m.save(&d.path().join("pair.safetensors")).unwrap();
        d
    })
    .path()
    .to_path_buf()
}

fn api(token: Token) -> Arc<Api> {
    Arc::new(Api::new(Models::load_dir(&models_dir()).unwrap(), token))
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    token: Option<&str>,
) -> (StatusCode, Value, String) {
    let mut r = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    let req = r
        .header("content-type", "application/json")
        .body(HttpBody::from(body.map(<[u8]>::to_vec).unwrap_or_default()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

fn predict_body() -> Value {
    json!({
        "model": "pair.safetensors",
        "series": serde_json::to_value(series(20)).unwrap(),
        "services": {"a": {"cpu_request_millicores": 500.0, "max_replicas": 50}},
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn predict_answers_forecasts_and_a_plan_with_reasons() {
    rt().block_on(async {
        let app = router(api(Token::none()));
        let body = serde_json::to_vec(&predict_body()).unwrap();
        let (st, v, text) = call(&app, "POST", "/v1/predict", Some(&body), None).await;
        assert_eq!(st, StatusCode::OK, "{text}");
        assert_eq!(v["model"], "pair.safetensors");
        assert_eq!(v["kind"], "mlp");
        assert_eq!(v["quantile"], 0.9);
        // Two services, two steps each, bands ordered.
        let f = v["forecasts"].as_array().unwrap();
        assert_eq!(f.len(), 4, "{text}");
        for x in f {
            let r = &x["rps"];
            assert!(r["p10"].as_f64().unwrap() <= r["p50"].as_f64().unwrap());
            assert!(r["p50"].as_f64().unwrap() <= r["p90"].as_f64().unwrap());
        }
        let peak_a = f
            .iter()
            .filter(|x| x["service"] == "a")
            .map(|x| x["rps"]["p90"].as_f64().unwrap())
            .fold(0.0, f64::max);
        let plan = v["plan"].as_array().unwrap();
        let a = plan.iter().find(|p| p["service"] == "a").unwrap();
        let b = plan.iter().find(|p| p["service"] == "b").unwrap();
        // a: CPU per request fitted on the series (5 ms), current from replicas_ready, its own
        // p90 peak as demand, replicas planned with the planner's reasons.
        assert!((a["cpu_ms_per_request"].as_f64().unwrap() - 5.0).abs() < 0.05, "{a}");
        assert_eq!(a["current"], 2);
        assert!((a["demand_rps"].as_f64().unwrap() - peak_a).abs() < 1e-9, "{a} vs {peak_a}");
        let reps = a["replicas"].as_u64().unwrap();
        // 90 % of 500 m at 5 ms a request is 90 rps a replica; headroom and staffing add more.
        assert!(reps >= (peak_a / 90.0).ceil() as u64 && reps <= 50, "{a}");
        assert!(!a["reasons"].as_array().unwrap().is_empty(), "{a}");
        // b: no CPU request given, so a forecast and no plan, and the reason says so.
        assert!(b["replicas"].is_null(), "{b}");
        assert_eq!(b["reasons"][0]["rule"], "plan.no_requests", "{b}");
        // The metrics carry what was planned.
        let (_, _, m) = call(&app, "GET", "/metrics", None, None).await;
        assert!(
            m.contains(&format!(
                "graphscale_api_planned_replicas{{model=\"pair.safetensors\",workload=\"a\"}} {reps}"
            )),
            "{m}"
        );
        assert!(m.contains("graphscale_api_requests_total{endpoint=\"/v1/predict\",code=\"200\"} 1"), "{m}");
        assert!(m.contains("graphscale_api_forecast_rps{"), "{m}");
    });
}

#[test]
fn bad_requests_are_4xx_naming_the_field() {
    rt().block_on(async {
        let app = router(api(Token::none()));
        let post = |v: Value| serde_json::to_vec(&v).unwrap();
        let mut cases: Vec<(Vec<u8>, StatusCode, &str, &str)> = vec![
            (b"{".to_vec(), StatusCode::BAD_REQUEST, "body", "EOF"),
            (
                b"[]".to_vec(),
                StatusCode::BAD_REQUEST,
                "body",
                "invalid length 0",
            ),
        ];
        let mut v = predict_body();
        v["bogus"] = json!(1);
        cases.push((
            post(v),
            StatusCode::BAD_REQUEST,
            "bogus",
            "unknown field `bogus`",
        ));
        let mut v = predict_body();
        v["quantile"] = json!("high");
        cases.push((post(v), StatusCode::BAD_REQUEST, "quantile", "invalid type"));
        let mut v = predict_body();
        v["quantile"] = json!(0.7);
        cases.push((
            post(v),
            StatusCode::UNPROCESSABLE_ENTITY,
            "quantile",
            "0.1, 0.5 or 0.9",
        ));
        let mut v = predict_body();
        v["model"] = json!("nope.safetensors");
        cases.push((
            post(v),
            StatusCode::NOT_FOUND,
            "",
            "model `nope.safetensors` not found",
        ));
        let mut v = predict_body();
        v["model"] = json!("../etc/passwd");
        cases.push((
            post(v),
            StatusCode::UNPROCESSABLE_ENTITY,
            "model",
            "not a model name",
        ));
        let mut v = predict_body();
        v["services"]["zzz"] = json!({});
        cases.push((
            post(v),
            StatusCode::UNPROCESSABLE_ENTITY,
            "services.zzz",
            "not a service",
        ));
        let mut v = predict_body();
        v["services"]["a"]["cpu_request_millicores"] = json!(-1);
        cases.push((
            post(v),
            StatusCode::UNPROCESSABLE_ENTITY,
            "services.a.cpu_request_millicores",
            "must be in",
        ));
        let mut v = predict_body();
        v["services"]["a"]["min_replicas"] = json!(60);
        cases.push((
            post(v),
            StatusCode::UNPROCESSABLE_ENTITY,
            "services.a.min_replicas",
            "above max_replicas",
        ));
        let mut v = predict_body();
        v["services"]["a"]["current"] = json!(-3);
        cases.push((
            post(v),
            StatusCode::BAD_REQUEST,
            "services.a.current",
            "invalid value",
        ));
        let mut v = predict_body();
        v["planner"] = json!({"headroom": 9});
        cases.push((
            post(v),
            StatusCode::UNPROCESSABLE_ENTITY,
            "planner",
            "headroom",
        ));
        let mut v = predict_body();
        v["series"]["nodes"]["a"]["rps"][3] = json!("x");
        cases.push((
            post(v),
            StatusCode::BAD_REQUEST,
            "series.nodes",
            "invalid type",
        ));
        let mut v = predict_body();
        v["series"]["len"] = json!(21);
        cases.push((
            post(v),
            StatusCode::UNPROCESSABLE_ENTITY,
            "series",
            "nodes.a",
        ));
        let mut v = predict_body();
        v["series"]["len"] = json!(2);
        for m in v["series"]["nodes"].as_object_mut().unwrap().values_mut() {
            for s in m.as_object_mut().unwrap().values_mut() {
                s.as_array_mut().unwrap().truncate(2);
            }
        }
        v["series"]["edges"][0]["metrics"]["rps"]
            .as_array_mut()
            .unwrap()
            .truncate(2);
        cases.push((
            post(v),
            StatusCode::UNPROCESSABLE_ENTITY,
            "series",
            "reads the last 3",
        ));
        let mut v = predict_body();
        v["series"]["nodes"]["a"]["rps"][19] = Value::Null;
        cases.push((
            post(v),
            StatusCode::UNPROCESSABLE_ENTITY,
            "series",
            "no rps at the newest point",
        ));
        for (body, status, field, needle) in cases {
            let (st, v, text) = call(&app, "POST", "/v1/predict", Some(&body), None).await;
            assert_eq!(st, status, "{needle}: {text}");
            let err = v["error"].as_str().unwrap_or_default();
            assert!(err.contains(needle), "`{needle}` not in {text}");
            if !field.is_empty() {
                let f = v["field"].as_str().unwrap_or_default();
                assert!(f.starts_with(field), "field `{f}` is not `{field}`: {text}");
            }
        }
        let (st, v, _) = call(&app, "GET", "/v1/jobs/abc", None, None).await;
        assert_eq!(
            (st, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("id"))
        );
        let (st, v, _) = call(&app, "GET", "/v1/jobs/99", None, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert!(v["error"].as_str().unwrap().contains("job `99`"));
    });
}

#[test]
fn training_needs_the_token_and_its_job_adds_a_model() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let off = router(Arc::new(Api::new(
            Models::load_dir(dir.path()).unwrap(),
            Token::none(),
        )));
        let body = serde_json::to_vec(&json!({
            "kind": "gat",
            "name": "trained.safetensors",
            "series": [serde_json::to_value(series(80)).unwrap()],
            "config": serde_json::to_value(small()).unwrap(),
        }))
        .unwrap();
        let (st, v, _) = call(&off, "POST", "/v1/train", Some(&body), Some(TOKEN)).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert!(v["error"]
            .as_str()
            .unwrap()
            .contains("no token is configured"));
        let app = router(Arc::new(Api::new(
            Models::load_dir(dir.path()).unwrap(),
            Token::new(TOKEN, "test").unwrap(),
        )));
        let (st, _, _) = call(&app, "POST", "/v1/train", Some(&body), None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        let (st, _, _) = call(
            &app,
            "POST",
            "/v1/train",
            Some(&body),
            Some("0123456789abcdef-nope"),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        let (st, _, _) = call(&app, "GET", "/readyz", None, None).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "no model yet");
        // A bad kind is the answer, not a failed job.
        let bad = String::from_utf8(body.clone())
            .unwrap()
            .replace("\"gat\"", "\"gcn\"");
        let (st, v, _) = call(&app, "POST", "/v1/train", Some(bad.as_bytes()), Some(TOKEN)).await;
        assert_eq!(
            (st, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("kind"))
        );
        let (st, v, text) = call(&app, "POST", "/v1/train", Some(&body), Some(TOKEN)).await;
        assert_eq!(st, StatusCode::ACCEPTED, "{text}");
        let loc = v["location"].as_str().unwrap().to_string();
        let mut job = Value::Null;
        for _ in 0..1200 {
            let (_, j, _) = call(&app, "GET", &loc, None, None).await;
            job = j;
            if job["state"] != "running" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(job["state"], "succeeded", "{job}");
        assert!(
            job["epoch"].as_u64().unwrap() >= 1 && job["epochs"] == 3,
            "{job}"
        );
        assert!(dir.path().join("trained.safetensors").is_file());
        let (_, v, _) = call(&app, "GET", "/v1/models", None, None).await;
        assert_eq!(v[0]["name"], "trained.safetensors");
        assert_eq!(v[0]["services"], json!(["a", "b"]));
        let (st, _, _) = call(&app, "GET", "/readyz", None, None).await;
        assert_eq!(st, StatusCode::OK);
        // The name is taken now.
        let (st, _, _) = call(&app, "POST", "/v1/train", Some(&body), Some(TOKEN)).await;
        assert_eq!(st, StatusCode::CONFLICT);
    });
}

fn simulated(token: Token) -> axum::Router {
    let app = graphscale_sim::topology::builtin("online-boutique").unwrap();
    let sim = graphscale_sim::engine::Simulator::new(app, Default::default(), Vec::new()).unwrap();
    let actuator = Arc::new(graphscale_api::apply::LocalActuator::new("simulator", sim));
    router(Arc::new(
        Api::new(Models::in_memory(), token).with_actuator(actuator),
    ))
}

/// The simulated cluster under 40 rps with a board, after `scrapes` scrapes.
fn watched(token: Token, scrapes: usize) -> axum::Router {
    use graphscale_core::{Clock, MetricSource};
    let app = graphscale_sim::topology::builtin("online-boutique").unwrap();
    let sim =
        graphscale_sim::engine::Simulator::new(app, Default::default(), vec![40.0; 3600]).unwrap();
    let board = Arc::new(graphscale_api::board::Board::new(
        "simulator",
        sim.graph().clone(),
        15_000,
    ));
    let cluster = Arc::new(graphscale_api::apply::LocalActuator::new("simulator", sim));
    cluster.with(|sim| {
        let mut k = 0;
        while k < scrapes {
            sim.step();
            if sim.now().0.is_multiple_of(15_000) {
                board.observe(&sim.graph().clone(), sim.observe().unwrap());
                k += 1;
            }
        }
    });
    router(Arc::new(
        Api::new(Models::load_dir(&models_dir()).unwrap(), token)
            .with_actuator(cluster)
            .with_board(board),
    ))
}

#[test]
fn the_page_and_its_board_show_the_watched_cluster() {
    rt().block_on(async {
        let bare = router(api(Token::none()));
        let resp = bare
            .clone()
            .oneshot(Request::builder().uri("/").body(HttpBody::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
        let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"), "{csp}");
        let page = resp.into_body().collect().await.unwrap().to_bytes();
        let page = String::from_utf8(page.to_vec()).unwrap();
        for id in ["graph", "forecast", "decisions", "applied"] {
            assert!(page.contains(&format!("<section id=\"{id}\"")), "no panel {id}");
        }
        assert!(page.contains("/v1/board"));
        // Not watching a cluster: 503 that says so.
        let (st, v, _) = call(&bare, "GET", "/v1/board", None, None).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert!(v["error"].as_str().unwrap().contains("no cluster is watched"), "{v}");

        let app = watched(Token::new(TOKEN, "t").unwrap(), 6);
        let (st, v, text) = call(&app, "GET", "/v1/board", None, None).await;
        assert_eq!(st, StatusCode::OK, "{text}");
        assert_eq!(v["app"], "online-boutique");
        assert_eq!(v["time_s"], 90.0);
        assert_eq!(v["history"]["rps"]["frontend"].as_array().unwrap().len(), 6);
        let front = v["services"].as_array().unwrap().iter().find(|s| s["name"] == "frontend").unwrap();
        assert!(front["rps"].as_f64().unwrap() > 20.0, "{front}");
        // The served model is of another graph: no forecast, and the note says why.
        assert!(v["forecast"].is_null());
        assert!(v["forecast_note"].as_str().unwrap().contains("pair.safetensors"), "{v}");
        // Applied decisions show with their reasons, newest first.
        let one = apply_body(
            json!([{"workload": "cartservice", "replicas": 4, "reasons": [{"rule": "plan.demand", "detail": "page"}]}]),
            false,
        );
        let (st, _, text) = call(&app, "POST", "/v1/apply", Some(&one), Some(TOKEN)).await;
        assert_eq!(st, StatusCode::OK, "{text}");
        let (_, v, _) = call(&app, "GET", "/v1/board", None, None).await;
        assert_eq!(
            v["applied"][0],
            json!({"at_s": 90.0, "workload": "cartservice", "before": 1, "after": 4, "outcome": "applied", "reasons": ["plan.demand: page"]})
        );
        // Bad queries name the problem.
        let (st, v, _) = call(&app, "GET", "/v1/board?model=nosuch.safetensors", None, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
        assert!(v["error"].as_str().unwrap().contains("nosuch"), "{v}");
        let (st, v, _) = call(&app, "GET", "/v1/board?model=nosuch", None, None).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["field"], "model");
        let (st, v, _) = call(&app, "GET", "/v1/board?bogus=1", None, None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "query");
        assert!(v["error"].as_str().unwrap().contains("bogus"), "{v}");
        let (st, v, _) = call(&app, "GET", "/v1/board?model=../x", None, None).await;
        assert!(st.is_client_error(), "{st} {v}");
    });
}

fn apply_body(decisions: Value, dry_run: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({"decisions": decisions, "dry_run": dry_run})).unwrap()
}

#[test]
fn apply_needs_the_token_and_acts_on_the_simulated_cluster() {
    rt().block_on(async {
        let one = apply_body(json!([{"workload": "cartservice", "replicas": 4}]), false);
        let (st, v, _) = call(&simulated(Token::none()), "POST", "/v1/apply", Some(&one), Some(TOKEN)).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        // No actuator: 503, after the token.
        let bare = router(Arc::new(Api::new(Models::in_memory(), Token::new(TOKEN, "t").unwrap())));
        let (st, v, _) = call(&bare, "POST", "/v1/apply", Some(&one), Some(TOKEN)).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert!(v["error"].as_str().unwrap().contains("no actuator"), "{v}");

        let app = simulated(Token::new(TOKEN, "t").unwrap());
        let (st, _, _) = call(&app, "POST", "/v1/apply", Some(&one), None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        let (st, _, _) = call(&app, "POST", "/v1/apply", Some(&one), Some("0123456789abcdefXX")).await;
        assert_eq!(st, StatusCode::FORBIDDEN);

        // A dry run writes nothing: twice the same answer.
        let dry = apply_body(json!([{"workload": "cartservice", "replicas": 4}]), true);
        for _ in 0..2 {
            let (st, v, text) = call(&app, "POST", "/v1/apply", Some(&dry), Some(TOKEN)).await;
            assert_eq!(st, StatusCode::OK, "{text}");
            assert_eq!(v["actuator"], "simulator");
            assert_eq!(v["dry_run"], true);
            assert_eq!(v["results"][0], json!({"workload": "cartservice", "before": 1, "after": 4, "outcome": "would_apply"}));
        }
        // One unknown workload refuses the whole request: the known one is not applied.
        let mixed = apply_body(
            json!([{"workload": "cartservice", "replicas": 4}, {"workload": "nosuch", "replicas": 2}]),
            false,
        );
        let (st, v, _) = call(&app, "POST", "/v1/apply", Some(&mixed), Some(TOKEN)).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["field"], "decisions[1].workload");
        assert!(v["error"].as_str().unwrap().contains("cartservice"), "names the known ones: {v}");

        let (st, v, text) = call(&app, "POST", "/v1/apply", Some(&one), Some(TOKEN)).await;
        assert_eq!(st, StatusCode::OK, "{text}");
        assert_eq!(v["results"][0], json!({"workload": "cartservice", "before": 1, "after": 4, "outcome": "applied"}));
        let (_, v, _) = call(&app, "POST", "/v1/apply", Some(&one), Some(TOKEN)).await;
        assert_eq!(v["results"][0]["outcome"], "unchanged");
        assert_eq!(v["results"][0]["before"], 4);
        // Above the service's bound (50): the simulator caps it and says so.
        let big = apply_body(
            json!([{"workload": "adservice", "replicas": 70, "reasons": [{"rule": "plan.demand", "detail": "test"}]}]),
            false,
        );
        let (st, v, text) = call(&app, "POST", "/v1/apply", Some(&big), Some(TOKEN)).await;
        assert_eq!(st, StatusCode::OK, "{text}");
        assert_eq!(v["results"][0]["after"], 50);
        assert!(v["results"][0]["detail"].as_str().unwrap().contains("asked 70"), "{v}");
        let (_, _, text) = call(&app, "GET", "/metrics", None, None).await;
        assert!(text.contains(r#"graphscale_api_decisions_total{outcome="applied"} 2"#), "{text}");
        assert!(text.contains(r#"graphscale_api_decisions_total{outcome="would_apply"} 2"#), "{text}");
    });
}

#[test]
fn the_openapi_document_is_the_checked_in_one_and_names_every_route() {
    let doc = graphscale_api::openapi::document();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(
        doc == file,
        "docs/openapi.json is out of date: run `graphscale serve --openapi > docs/openapi.json`"
    );
    rt().block_on(async {
        let app = router(api(Token::none()));
        for r in graphscale_api::ROUTES {
            assert!(
                doc["paths"][r.path][r.method.to_ascii_lowercase()].is_object(),
                "{}",
                r.path
            );
            let (st, _, text) = call(
                &app,
                r.method,
                &r.path.replace("{id}", "1"),
                Some(b"{}"),
                None,
            )
            .await;
            assert!(
                st != StatusCode::METHOD_NOT_ALLOWED
                    && !(st == StatusCode::NOT_FOUND && text.is_empty()),
                "{} {} is not routed: {st}",
                r.method,
                r.path
            );
        }
        let (_, v, _) = call(&app, "GET", "/openapi.json", None, None).await;
        assert_eq!(v, doc);
    });
}

#[test]
fn a_real_server_on_loopback_limits_bodies_and_answers_health() {
    rt().block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = graphscale_monitor::http::ServerLimits {
            max_body_bytes: 64 << 10,
            ..Default::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(graphscale_monitor::http::serve(
            listener,
            router(api(Token::none())),
            limits,
            async {
                let _ = rx.await;
            },
        ));
        let client = reqwest::Client::new();
        let base = format!("http://{addr}");
        let r = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let big = vec![b' '; 100 << 10];
        let r = client
            .post(format!("{base}/v1/predict"))
            .body(big)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["field"], "body", "{v}");
        let r = client
            .post(format!("{base}/v1/predict"))
            .json(&predict_body())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        tx.send(()).unwrap();
        server.await.unwrap();
    });
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// `base` with bytes replaced at `edits` and cut at `cut`.
fn mutate(
    base: &[u8],
    edits: Vec<(prop::sample::Index, u8)>,
    cut: Option<prop::sample::Index>,
) -> Vec<u8> {
    let mut b = base.to_vec();
    for (i, byte) in edits {
        let at = i.index(b.len());
        b[at] = byte;
    }
    if let Some(c) = cut {
        b.truncate(c.index(b.len()));
    }
    b
}

/// A 200 or a 4xx with a JSON error.
fn answered(st: StatusCode, v: &Value, text: &str) -> Result<(), TestCaseError> {
    prop_assert!(st == StatusCode::OK || st.is_client_error(), "{st}: {text}");
    if st.is_client_error() {
        prop_assert!(v["error"].is_string(), "{text}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// A valid prediction body with bytes changed or cut: an answer, 200 or a 4xx with a JSON
    /// error, never a 5xx or a panic.
    #[test]
    fn mutated_predict_bodies_get_an_answer(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        static APP: OnceLock<(tokio::runtime::Runtime, axum::Router, Vec<u8>)> = OnceLock::new();
        let (rt, app, base) = APP.get_or_init(|| {
            (rt(), router(api(Token::none())), serde_json::to_vec(&predict_body()).unwrap())
        });
        let (st, v, text) = rt.block_on(call(app, "POST", "/v1/predict", Some(&mutate(base, edits, cut)), None));
        answered(st, &v, &text)?;
    }

    /// The same for training bodies, with the token: a mutated body never starts a job it
    /// should not, and never gets a 5xx (jobs that start are refused once one runs: 429).
    #[test]
    fn mutated_train_bodies_get_an_answer(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        static APP: OnceLock<(tokio::runtime::Runtime, axum::Router, Vec<u8>)> = OnceLock::new();
        let (rt, app, base) = APP.get_or_init(|| {
            let body = serde_json::to_vec(&json!({
                "kind": "mlp",
                "name": "fuzz.safetensors",
                "series": [serde_json::to_value(series(40)).unwrap()],
                "config": serde_json::to_value(small()).unwrap(),
            })).unwrap();
            let app = router(Arc::new(Api::new(Models::in_memory(), Token::new(TOKEN, "t").unwrap())));
            (rt(), app, body)
        });
        let mut b = base.clone();
        for (i, byte) in edits {
            let at = i.index(b.len());
            b[at] = byte;
        }
        let (st, v, text) = rt.block_on(call(app, "POST", "/v1/train", Some(&b), Some(TOKEN)));
        prop_assert!(st == StatusCode::ACCEPTED || st.is_client_error(), "{st}: {text}");
        if st.is_client_error() {
            prop_assert!(v["error"].is_string(), "{text}");
        }
    }

    /// A valid apply body with bytes changed or cut, with the token: 200 or a 4xx naming the
    /// problem, never a 5xx or a panic.
    #[test]
    fn mutated_apply_bodies_get_an_answer(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        static APP: OnceLock<(tokio::runtime::Runtime, axum::Router, Vec<u8>)> = OnceLock::new();
        let (rt, app, base) = APP.get_or_init(|| {
            let body = apply_body(json!([
                {"workload": "cartservice", "replicas": 3, "reasons": [{"rule": "plan.demand", "detail": "x"}]},
                {"workload": "frontend", "kind": "Deployment", "replicas": 2},
            ]), false);
            (rt(), simulated(Token::new(TOKEN, "t").unwrap()), body)
        });
        let (st, v, text) = rt.block_on(call(app, "POST", "/v1/apply", Some(&mutate(base, edits, cut)), Some(TOKEN)));
        answered(st, &v, &text)?;
    }

    /// Any method, route, body and token, as a scanner sends them: never a 5xx (the 503 of
    /// `/readyz` without models aside; here there is one) and never a panic.
    #[test]
    fn any_request_to_any_route_gets_an_answer(
        method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
        route in prop::sample::select(vec![
            "/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/models", "/v1/predict",
            "/v1/train", "/v1/apply", "/v1/jobs/", "/v1/", "/", "/v1/board", "/v1/board?model=",
        ]),
        suffix in "[a-zA-Z0-9_./-]{0,40}",
        body in proptest::collection::vec(any::<u8>(), 0..512),
        token in proptest::option::of("[ -~]{0,40}"),
    ) {
        static APP: OnceLock<(tokio::runtime::Runtime, axum::Router)> = OnceLock::new();
        let (rt, app) = APP.get_or_init(|| (rt(), watched(Token::new(TOKEN, "t").unwrap(), 4)));
        let path = format!("{route}{suffix}");
        let (st, _, text) = rt.block_on(call(app, method, &path, Some(&body), token.as_deref()));
        prop_assert!(!st.is_server_error(), "{method} {path}: {st}: {text}");
    }
}
