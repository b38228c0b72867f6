//! A client of the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/series`). It works against any store that speaks that API: Prometheus, Thanos
//! Query, Grafana Mimir, VictoriaMetrics, Cortex.
//!
//! "No data" is never zero: a series missing from a result, a gap in a range, and a `NaN`
//! value (for example a rate over a window with no samples, 0/0) all come back as `None`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use graphscale_core::error::quote;

use crate::MonitorError;

/// Client settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromConfig {
    /// Base URL, for example `http://127.0.0.1:9090` (a path prefix such as `/prometheus` is kept).
    pub url: String,
    /// Per-request timeout, ms; default 120,000, Prometheus' own default query timeout (2 min):
    /// the client should not give up before the server does.
    pub timeout_ms: u64,
    /// Retries after a connection error, a timeout or a 5xx answer; default 3.
    pub retries: u32,
    /// First backoff between retries, ms, doubled each time; default 200.
    pub backoff_ms: u64,
    /// Largest response accepted, bytes; default 64 MiB.
    pub max_response_bytes: usize,
}

impl Default for PromConfig {
    fn default() -> Self {
        PromConfig {
            url: "http://127.0.0.1:9090".into(),
            timeout_ms: 120_000,
            retries: 3,
            backoff_ms: 200,
            max_response_bytes: 64 << 20,
        }
    }
}

/// One series of an instant query.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value; `None` for NaN.
    pub value: Option<f64>,
}

/// One series of a range query, on the query's step grid.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// One value per grid point; `None` where there is no point or it is NaN.
    pub values: Vec<Option<f64>>,
}

/// A step-aligned time grid in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    /// First point.
    pub start: i64,
    /// Last point (inclusive).
    pub end: i64,
    /// Step, seconds (> 0).
    pub step: i64,
}

/// The latest Unix time (seconds) a query may name.
pub const MAX_UNIX_S: f64 = 1e11;

/// Most points of a [`Grid`]: every series of a `collect` is held on it (a year of 30-s steps
/// is about 1.05 million).
pub const MAX_GRID_POINTS: i64 = 1_100_000;

impl Grid {
    /// The grid aligned to multiples of `step`: `start` rounded down, `end` rounded down; at
    /// most [`MAX_GRID_POINTS`] points.
    pub fn aligned(start: f64, end: f64, step: i64) -> Result<Self, MonitorError> {
        if step <= 0 || !start.is_finite() || !end.is_finite() || end < start {
            return Err(MonitorError::Invalid(format!(
                "a query range needs a step > 0 and start <= end, got start {start}, end {end}, step {step}"
            )));
        }
        // Unix seconds from 1970 to about the year 5138, and a step of at most a year: the
        // alignment below cannot overflow (found by the fuzz test `grids_are_bounded`).
        if !(0.0..=MAX_UNIX_S).contains(&start) || end > MAX_UNIX_S || step > 366 * 86_400 {
            return Err(MonitorError::Invalid(format!(
                "a query range needs Unix seconds in 0..={MAX_UNIX_S} and a step of at most a \
                 year, got start {start}, end {end}, step {step}"
            )));
        }
        let points = (end - start) / step as f64;
        if points >= MAX_GRID_POINTS as f64 {
            return Err(MonitorError::Invalid(format!(
                "a range of {:.0} s at a {step}-s step is {points:.0} points, at most \
                 {MAX_GRID_POINTS}: a shorter range or a longer step",
                end - start
            )));
        }
        let s = (start.floor() as i64).div_euclid(step) * step;
        let e = (end.floor() as i64).div_euclid(step) * step;
        Ok(Grid {
            start: s,
            end: e.max(s),
            step,
        })
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        ((self.end - self.start) / self.step + 1) as usize
    }

    /// Whether the grid has no points (never, for a valid grid).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The API's answer, typed: `data` is parsed straight into what the caller wants (no JSON tree
/// of the whole answer is built, and nothing of it is copied).
#[derive(Deserialize)]
struct Envelope<T> {
    status: String,
    #[serde(default = "Option::default")]
    data: Option<T>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

/// The status alone, to report an error answer whose `data` does not parse.
#[derive(Deserialize)]
struct Status {
    status: String,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

/// `data` of a query: the result and its type.
#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum QueryData {
    Vector(Vec<RawInstant>),
    Matrix(Vec<RawRange>),
    Scalar(RawPoint),
    String(serde::de::IgnoredAny),
}

impl QueryData {
    fn kind(&self) -> &'static str {
        match self {
            QueryData::Vector(_) => "vector",
            QueryData::Matrix(_) => "matrix",
            QueryData::Scalar(_) => "scalar",
            QueryData::String(_) => "string",
        }
    }
}

/// One series of an instant vector.
#[derive(Deserialize)]
struct RawInstant {
    metric: BTreeMap<String, String>,
    value: RawPoint,
}

/// One series of a matrix.
#[derive(Deserialize)]
struct RawRange {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<RawPoint>,
}

/// `[time, "value"]`.
#[derive(Deserialize)]
struct RawPoint(f64, String);

/// The time and value of a point; `None` for NaN.
fn parse_value(p: &RawPoint, what: &str) -> Result<(f64, Option<f64>), MonitorError> {
    let x: f64 = match p.1.as_str() {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().map_err(|_| {
            MonitorError::Malformed(format!(
                "{what}: sample value `{}` is not a number",
                quote(other)
            ))
        })?,
    };
    Ok((p.0, (!x.is_nan()).then_some(x)))
}

/// The client.
#[derive(Debug, Clone)]
pub struct PromClient {
    cfg: PromConfig,
    http: reqwest::Client,
}

impl PromClient {
    /// A client; checks the URL.
    pub fn new(cfg: PromConfig) -> Result<Self, MonitorError> {
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            return Err(MonitorError::Invalid(format!(
                "Prometheus URL `{}` must start with http:// or https://",
                cfg.url
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms.max(1)))
            .build()
            .map_err(|e| MonitorError::Invalid(format!("HTTP client: {e}")))?;
        Ok(PromClient { cfg, http })
    }

    /// The settings.
    pub fn config(&self) -> &PromConfig {
        &self.cfg
    }

    fn transport_error(&self, url: &str, e: reqwest::Error) -> MonitorError {
        if e.is_timeout() {
            MonitorError::Timeout {
                url: url.to_string(),
                after_ms: self.cfg.timeout_ms,
            }
        } else {
            MonitorError::Unreachable {
                url: url.to_string(),
                reason: e.to_string(),
            }
        }
    }

    async fn get_once<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<T, MonitorError> {
        let url = format!("{}{}", self.cfg.url.trim_end_matches('/'), path);
        let resp = self
            .http
            .get(&url)
            .query(params)
            .send()
            .await
            .map_err(|e| self.transport_error(&url, e))?;
        let status = resp.status();
        if let Some(len) = resp.content_length() {
            if len as usize > self.cfg.max_response_bytes {
                return Err(MonitorError::TooLarge {
                    url,
                    limit: self.cfg.max_response_bytes,
                });
            }
        }
        let mut resp = resp;
        let mut body = Vec::new();
        loop {
            let chunk = resp
                .chunk()
                .await
                .map_err(|e| self.transport_error(&url, e))?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > self.cfg.max_response_bytes {
                return Err(MonitorError::TooLarge {
                    url,
                    limit: self.cfg.max_response_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        // Prometheus answers errors with a JSON envelope and 400/422/503; other 5xx may not be JSON.
        let snippet =
            |body: &[u8]| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        let prom_error = |url: String, error_type: Option<String>, error: Option<String>| {
            MonitorError::Prometheus {
                url,
                status: status.as_u16(),
                error_type: error_type.unwrap_or_default(),
                error: error.unwrap_or_default(),
            }
        };
        let env = match serde_json::from_slice::<Envelope<T>>(&body) {
            Ok(env) => env,
            // An error answer whose `data` is not a success's, another server, or garbage.
            Err(e) => {
                return Err(match serde_json::from_slice::<Status>(&body) {
                    Ok(st) if st.status == "error" => prom_error(url, st.error_type, st.error),
                    _ if !status.is_success() => MonitorError::Http {
                        url,
                        status: status.as_u16(),
                        body: snippet(&body),
                    },
                    _ => MonitorError::Malformed(format!(
                        "{url}: not a Prometheus API response ({e}): {}",
                        snippet(&body)
                    )),
                })
            }
        };
        match env.status.as_str() {
            "success" => env
                .data
                .ok_or_else(|| MonitorError::Malformed(format!("{url}: success without `data`"))),
            "error" => Err(prom_error(url, env.error_type, env.error)),
            _ if !status.is_success() => Err(MonitorError::Http {
                url,
                status: status.as_u16(),
                body: snippet(&body),
            }),
            other => Err(MonitorError::Malformed(format!(
                "{url}: unknown status `{}`",
                quote(other)
            ))),
        }
    }

    /// GET with retries on connection errors, timeouts and 5xx (not on 4xx or bad queries).
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<T, MonitorError> {
        let mut attempt = 0;
        loop {
            match self.get_once(path, params).await {
                Err(e) if e.is_transient() && attempt < self.cfg.retries => {
                    let wait = self.cfg.backoff_ms.saturating_mul(1 << attempt.min(16));
                    tracing::warn!(error = %e, attempt, wait_ms = wait, "Prometheus request failed; retrying");
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// An instant query at `time` (Unix seconds; `None` = now).
    pub async fn query(
        &self,
        promql: &str,
        time: Option<f64>,
    ) -> Result<Vec<Sample>, MonitorError> {
        let mut params = vec![("query", promql.to_string())];
        if let Some(t) = time {
            params.push(("time", format!("{t:.3}")));
        }
        let data: QueryData = self.get("/api/v1/query", &params).await?;
        let what = format!("query `{}`", quote(promql));
        match data {
            QueryData::Vector(result) => result
                .into_iter()
                .map(|r| {
                    let (_, value) = parse_value(&r.value, &what)?;
                    Ok(Sample {
                        labels: r.metric,
                        value,
                    })
                })
                .collect(),
            QueryData::Scalar(p) => {
                let (_, value) = parse_value(&p, &what)?;
                Ok(vec![Sample {
                    labels: BTreeMap::new(),
                    value,
                }])
            }
            other => Err(MonitorError::Malformed(format!(
                "{what}: unexpected result type `{}`",
                other.kind()
            ))),
        }
    }

    /// A range query on `grid`; every series is returned on the grid, gaps as `None`.
    pub async fn query_range(
        &self,
        promql: &str,
        grid: Grid,
    ) -> Result<Vec<RangeSeries>, MonitorError> {
        let params = [
            ("query", promql.to_string()),
            ("start", grid.start.to_string()),
            ("end", grid.end.to_string()),
            ("step", grid.step.to_string()),
        ];
        let data: QueryData = self.get("/api/v1/query_range", &params).await?;
        let what = format!("range query `{}`", quote(promql));
        let QueryData::Matrix(result) = data else {
            return Err(MonitorError::Malformed(format!(
                "{what}: expected a matrix, got a {}",
                data.kind()
            )));
        };
        let n = grid.len();
        result
            .into_iter()
            .map(|r| {
                let mut values = vec![None; n];
                for p in &r.values {
                    let (t, x) = parse_value(p, &what)?;
                    let off = t.round() as i64 - grid.start;
                    if off >= 0 && off % grid.step == 0 && ((off / grid.step) as usize) < n {
                        values[(off / grid.step) as usize] = x;
                    }
                }
                Ok(RangeSeries {
                    labels: r.metric,
                    values,
                })
            })
            .collect()
    }

    /// Label sets of the series matching `matcher` between `start` and `end` (Unix seconds).
    pub async fn series(
        &self,
        matcher: &str,
        start: f64,
        end: f64,
    ) -> Result<Vec<BTreeMap<String, String>>, MonitorError> {
        let params = [
            ("match[]", matcher.to_string()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end:.3}")),
        ];
        // Label values are strings; anything else is refused by the parse, naming the URL.
        self.get::<Vec<BTreeMap<String, String>>>("/api/v1/series", &params)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_align_to_the_step() {
        let g = Grid::aligned(1007.5, 1100.0, 15).unwrap();
        assert_eq!((g.start, g.end, g.len()), (1005, 1095, 7));
        assert!(Grid::aligned(10.0, 5.0, 15).is_err());
        assert!(Grid::aligned(0.0, 5.0, 0).is_err());
        // `collect --range 100000d --step 1s`: refused with the limit, not allocated.
        let e = Grid::aligned(0.0, 8.64e9, 1).unwrap_err().to_string();
        assert!(e.contains("at most 1100000"), "{e}");
        assert!(Grid::aligned(0.0, 1e300, 15).is_err());
        // The fuzzer's find: a start far before 1970 overflowed the alignment.
        assert!(Grid::aligned(-9.34415161742921e18, 0.0, 8494683288573).is_err());
    }

    proptest::proptest! {
        /// Arbitrary and mutated answers parse or fail, never panic; an accepted value is a
        /// sample or a clear error.
        #[test]
        fn answers_never_panic(
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 0..6),
        ) {
            let base = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1.5,"2"]},{"metric":{},"value":[1,"NaN"]}]}}"#;
            let mut b = base.to_vec();
            for (i, byte) in edits {
                let at = i.index(b.len());
                b[at] = byte;
            }
            if let Ok(env) = serde_json::from_slice::<Envelope<QueryData>>(&b) {
                if let Some(QueryData::Vector(v)) = env.data {
                    for r in v {
                        let _ = parse_value(&r.value, "q");
                    }
                }
            }
        }

        /// Any range and step: a bounded grid or an error.
        #[test]
        fn grids_are_bounded(start in proptest::num::f64::ANY, end in proptest::num::f64::ANY, step in proptest::prelude::any::<i64>()) {
            if let Ok(g) = Grid::aligned(start, end, step) {
                proptest::prop_assert!(g.len() as i64 <= MAX_GRID_POINTS + 1);
            }
        }
    }

    #[test]
    fn values_parse_nan_as_missing_and_reject_garbage() {
        let p = |v: serde_json::Value| serde_json::from_value::<RawPoint>(v);
        let v = p(serde_json::json!([1.0, "NaN"])).unwrap();
        assert_eq!(parse_value(&v, "q").unwrap(), (1.0, None));
        let v = p(serde_json::json!([1.0, "0"])).unwrap();
        assert_eq!(parse_value(&v, "q").unwrap(), (1.0, Some(0.0)));
        let v = p(serde_json::json!([1.0, "+Inf"])).unwrap();
        assert_eq!(parse_value(&v, "q").unwrap().1, Some(f64::INFINITY));
        let long = "x".repeat(10_000);
        let e = parse_value(&p(serde_json::json!([1.0, long])).unwrap(), "q")
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200, "the error quotes a short prefix: {e}");
        assert!(p(serde_json::json!([1.0])).is_err());
        assert!(p(serde_json::json!([1.0, 2.0])).is_err());
        let r: RawInstant = serde_json::from_value(
            serde_json::json!({"metric": {"a": "b\"c ü"}, "value": [1, "2"]}),
        )
        .unwrap();
        assert_eq!(r.metric["a"], "b\"c ü");
        let d: QueryData = serde_json::from_value(serde_json::json!(
            {"resultType": "string", "result": [1, "x"]}))
        .unwrap();
        assert_eq!(d.kind(), "string");
        assert!(serde_json::from_value::<RawInstant>(
            serde_json::json!({"metric": {"a": 1}, "value": [1, "2"]})
        )
        .is_err());
    }
}
