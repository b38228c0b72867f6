//! A client of the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/series`). It works against any store that speaks that API: Prometheus, Thanos
//! Query, Grafana Mimir, VictoriaMetrics, Cortex.
//!
//! "No data" is never zero: a series missing from a result, a gap in a range, and a `NaN`
//! value (for example a rate over a window with no samples, 0/0) all come back as `None`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

impl Grid {
    /// The grid aligned to multiples of `step`: `start` rounded down, `end` rounded down.
    pub fn aligned(start: f64, end: f64, step: i64) -> Result<Self, MonitorError> {
        if step <= 0 || !start.is_finite() || !end.is_finite() || end < start {
            return Err(MonitorError::Invalid(format!(
                "a query range needs a step > 0 and start <= end, got start {start}, end {end}, step {step}"
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

#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: Option<serde_json::Value>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

/// The client.
#[derive(Debug, Clone)]
pub struct PromClient {
    cfg: PromConfig,
    http: reqwest::Client,
}

fn parse_value(v: &serde_json::Value, what: &str) -> Result<(f64, Option<f64>), MonitorError> {
    let arr = v.as_array().filter(|a| a.len() == 2).ok_or_else(|| {
        MonitorError::Malformed(format!(
            "{what}: a value must be [time, \"number\"], got {v}"
        ))
    })?;
    let t = arr[0]
        .as_f64()
        .ok_or_else(|| MonitorError::Malformed(format!("{what}: bad timestamp {}", arr[0])))?;
    let s = arr[1]
        .as_str()
        .ok_or_else(|| MonitorError::Malformed(format!("{what}: bad sample value {}", arr[1])))?;
    let x: f64 = match s {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().map_err(|_| {
            MonitorError::Malformed(format!("{what}: sample value `{other}` is not a number"))
        })?,
    };
    Ok((t, (!x.is_nan()).then_some(x)))
}

fn parse_labels(
    v: &serde_json::Value,
    what: &str,
) -> Result<BTreeMap<String, String>, MonitorError> {
    let obj = v.get("metric").and_then(|m| m.as_object()).ok_or_else(|| {
        MonitorError::Malformed(format!("{what}: a result needs a `metric` object"))
    })?;
    obj.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| {
                    MonitorError::Malformed(format!("{what}: label `{k}` is not a string"))
                })
        })
        .collect()
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

    async fn get_once(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<serde_json::Value, MonitorError> {
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
        let env: Result<Envelope, _> = serde_json::from_slice(&body);
        match env {
            Ok(env) if env.status == "success" => env
                .data
                .ok_or_else(|| MonitorError::Malformed(format!("{url}: success without `data`"))),
            Ok(env) if env.status == "error" => {
                let e = MonitorError::Prometheus {
                    url,
                    status: status.as_u16(),
                    error_type: env.error_type.unwrap_or_default(),
                    error: env.error.unwrap_or_default(),
                };
                Err(e)
            }
            _ if !status.is_success() => Err(MonitorError::Http {
                url,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            }),
            Ok(env) => Err(MonitorError::Malformed(format!(
                "{url}: unknown status `{}`",
                env.status
            ))),
            Err(e) => Err(MonitorError::Malformed(format!(
                "{url}: not a Prometheus API response ({e}): {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))),
        }
    }

    /// GET with retries on connection errors, timeouts and 5xx (not on 4xx or bad queries).
    async fn get(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<serde_json::Value, MonitorError> {
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
        let data = self.get("/api/v1/query", &params).await?;
        let what = format!("query `{promql}`");
        let kind = data
            .get("resultType")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let result = data
            .get("result")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        match kind {
            "vector" => result
                .as_array()
                .ok_or_else(|| MonitorError::Malformed(format!("{what}: `result` is not a list")))?
                .iter()
                .map(|r| {
                    let labels = parse_labels(r, &what)?;
                    let (_, value) =
                        parse_value(r.get("value").unwrap_or(&serde_json::Value::Null), &what)?;
                    Ok(Sample { labels, value })
                })
                .collect(),
            "scalar" => {
                let (_, value) = parse_value(&result, &what)?;
                Ok(vec![Sample {
                    labels: BTreeMap::new(),
                    value,
                }])
            }
            other => Err(MonitorError::Malformed(format!(
                "{what}: unexpected result type `{other}`"
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
        let data = self.get("/api/v1/query_range", &params).await?;
        let what = format!("range query `{promql}`");
        if data.get("resultType").and_then(|v| v.as_str()) != Some("matrix") {
            return Err(MonitorError::Malformed(format!(
                "{what}: expected a matrix"
            )));
        }
        let n = grid.len();
        data.get("result")
            .and_then(|r| r.as_array())
            .ok_or_else(|| MonitorError::Malformed(format!("{what}: `result` is not a list")))?
            .iter()
            .map(|r| {
                let labels = parse_labels(r, &what)?;
                let mut values = vec![None; n];
                for v in r
                    .get("values")
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                {
                    let (t, x) = parse_value(v, &what)?;
                    let off = t.round() as i64 - grid.start;
                    if off >= 0 && off % grid.step == 0 && ((off / grid.step) as usize) < n {
                        values[(off / grid.step) as usize] = x;
                    }
                }
                Ok(RangeSeries { labels, values })
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
        let data = self.get("/api/v1/series", &params).await?;
        data.as_array()
            .ok_or_else(|| MonitorError::Malformed(format!("series `{matcher}`: not a list")))?
            .iter()
            .map(|m| {
                m.as_object()
                    .ok_or_else(|| {
                        MonitorError::Malformed(format!("series `{matcher}`: not an object"))
                    })?
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.as_str().unwrap_or_default().to_string())))
                    .collect()
            })
            .collect()
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
    }

    #[test]
    fn values_parse_nan_as_missing_and_reject_garbage() {
        let v = serde_json::json!([1.0, "NaN"]);
        assert_eq!(parse_value(&v, "q").unwrap(), (1.0, None));
        let v = serde_json::json!([1.0, "0"]);
        assert_eq!(parse_value(&v, "q").unwrap(), (1.0, Some(0.0)));
        let v = serde_json::json!([1.0, "+Inf"]);
        assert_eq!(parse_value(&v, "q").unwrap().1, Some(f64::INFINITY));
        assert!(parse_value(&serde_json::json!([1.0, "x"]), "q").is_err());
        assert!(parse_value(&serde_json::json!([1.0]), "q").is_err());
        let r = serde_json::json!({"metric": {"a": "b\"c ü"}, "value": [1, "2"]});
        assert_eq!(parse_labels(&r, "q").unwrap()["a"], "b\"c ü");
    }
}
