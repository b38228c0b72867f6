//! External load: named scenarios and replay of recorded traces.
//!
//! A [`WorkloadSpec`] turns into a per-second rate curve (requests per second entering the
//! app) for a given duration and seed. The simulator draws Poisson arrivals from that curve, so
//! two seeds differ in noise and in the timing of random events, never in the scenario's shape.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::SimError;
use graphscale_core::error::quote;

/// The WorldCup98 tournament day shipped with graphscale (1998-06-30, UTC, per minute).
pub const WORLDCUP98_DAY_CSV: &str =
    include_str!("../../../data/worldcup98/worldcup98-1998-06-30.csv");

/// A load scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkloadSpec {
    /// Steady low load with 5 % noise.
    OffPeak {
        /// Mean rate, rps.
        rps: f64,
    },
    /// Steady high load with 5 % noise.
    Peak {
        /// Mean rate, rps.
        rps: f64,
    },
    /// A flash crowd: from `base_rps` to `factor` times it in `ramp_s` seconds, held, then
    /// decaying. The start is jittered by up to +/- 60 s per seed.
    Rush {
        /// Rate before and long after the rush, rps.
        base_rps: f64,
        /// Peak multiple of the base (5-10 in the literature's flash crowds).
        factor: f64,
        /// When the rush starts, s.
        start_s: f64,
        /// Ramp duration, s (< 60 for a flash crowd).
        ramp_s: f64,
        /// How long the peak holds, s.
        hold_s: f64,
        /// Time constant of the exponential decay back to base, s.
        decay_s: f64,
    },
    /// Irregular load: two sinusoids of incommensurate periods with random phases, plus an
    /// AR(1) noise of 10 %.
    Fluctuating {
        /// Mean rate, rps.
        mean_rps: f64,
        /// Relative amplitude of the main wave, 0..1.
        amplitude: f64,
        /// Period of the main wave, s.
        period_s: f64,
    },
    /// A day-night cycle: a raised cosine between `min_rps` and `max_rps`.
    Diurnal {
        /// Night-time rate, rps.
        min_rps: f64,
        /// Day-time rate, rps.
        max_rps: f64,
        /// Cycle length, s.
        period_s: f64,
    },
    /// Replay of a recorded series, linearly interpolated and scaled so its maximum within the
    /// replayed range is `peak_rps`.
    Replay {
        /// CSV file; `None` means the bundled WorldCup98 day.
        path: Option<String>,
        /// Timestamp column (unix seconds or RFC 3339 UTC); default the first column.
        time_col: Option<String>,
        /// Value column; default the last column.
        value_col: Option<String>,
        /// Scaled maximum, rps.
        peak_rps: f64,
        /// Time compression: 60 replays one recorded minute per simulated second; default 1.
        speedup: Option<f64>,
    },
}

impl WorkloadSpec {
    /// The named scenarios, sized for an app whose peak load is `peak` rps.
    ///
    /// | name | shape |
    /// |---|---|
    /// | `off-peak` | steady at 20 % of peak |
    /// | `peak` | steady at peak |
    /// | `rush` | 1/8 of peak, then 8x in 45 s at 10 min, held 10 min, decay 5 min |
    /// | `short-rush` | 1/8 of peak, then 6x in 45 s at 3 min, held 3 min, decay 1 min (the cluster demo) |
    /// | `fluctuating` | mean 55 % of peak, +/- 40 % over 20 min, second wave, noise |
    /// | `diurnal` | 10 % to 100 % of peak over 24 h |
    /// | `worldcup98` | the bundled 1998-06-30 WorldCup98 day, max scaled to peak |
    pub fn named(name: &str, peak: f64) -> Result<Self, SimError> {
        Ok(match name {
            "off-peak" | "offpeak" => WorkloadSpec::OffPeak { rps: 0.2 * peak },
            "peak" => WorkloadSpec::Peak { rps: peak },
            "rush" => WorkloadSpec::Rush {
                base_rps: peak / 8.0,
                factor: 8.0,
                start_s: 600.0,
                ramp_s: 45.0,
                hold_s: 600.0,
                decay_s: 300.0,
            },
            "short-rush" => WorkloadSpec::Rush {
                base_rps: peak / 8.0,
                factor: 6.0,
                start_s: 180.0,
                ramp_s: 45.0,
                hold_s: 180.0,
                decay_s: 60.0,
            },
            "fluctuating" => WorkloadSpec::Fluctuating {
                mean_rps: 0.55 * peak,
                amplitude: 0.4,
                period_s: 1200.0,
            },
            "diurnal" => WorkloadSpec::Diurnal {
                min_rps: 0.1 * peak,
                max_rps: peak,
                period_s: 86_400.0,
            },
            "worldcup98" | "wc98" => WorkloadSpec::Replay {
                path: None,
                time_col: None,
                value_col: None,
                peak_rps: peak,
                speedup: None,
            },
            other => {
                return Err(SimError::UnknownName {
                    what: "workload",
                    name: other.to_string(),
                    known: "off-peak, peak, rush, short-rush, fluctuating, diurnal, worldcup98"
                        .into(),
                })
            }
        })
    }

    /// The duration the scenario is made for: 24 h for `diurnal` and the WorldCup98 day,
    /// the recorded span (divided by the speedup) for other replays, else 1 h.
    pub fn natural_duration_s(&self) -> Result<u64, SimError> {
        Ok(match self {
            WorkloadSpec::Diurnal { period_s, .. } => period_s.round() as u64,
            WorkloadSpec::Replay { .. } => {
                let (t, _) = self.replay_points()?;
                let speed = self.speedup();
                let span = t.last().copied().unwrap_or(0.0) - t.first().copied().unwrap_or(0.0);
                ((span + 60.0) / speed).round().max(1.0) as u64
            }
            _ => 3600,
        })
    }

    fn speedup(&self) -> f64 {
        match self {
            WorkloadSpec::Replay { speedup, .. } => speedup.unwrap_or(1.0),
            _ => 1.0,
        }
    }

    fn validate(&self) -> Result<(), SimError> {
        let bad = |field: &str, v: f64| {
            Err(SimError::InvalidSpec {
                field: format!("workload.{field}"),
                reason: format!("must be finite and > 0, got {v}"),
            })
        };
        let pos = |v: f64| v.is_finite() && v > 0.0;
        match self {
            WorkloadSpec::OffPeak { rps } | WorkloadSpec::Peak { rps } if !pos(*rps) => {
                bad("rps", *rps)
            }
            WorkloadSpec::Rush {
                base_rps,
                factor,
                ramp_s,
                decay_s,
                ..
            } => {
                if !pos(*base_rps) {
                    bad("base_rps", *base_rps)
                } else if !(factor.is_finite() && *factor >= 1.0) {
                    bad("factor", *factor)
                } else if !pos(*ramp_s) {
                    bad("ramp_s", *ramp_s)
                } else if !pos(*decay_s) {
                    bad("decay_s", *decay_s)
                } else {
                    Ok(())
                }
            }
            WorkloadSpec::Fluctuating {
                mean_rps,
                period_s,
                amplitude,
                ..
            } => {
                if !pos(*mean_rps) {
                    bad("mean_rps", *mean_rps)
                } else if !pos(*period_s) {
                    bad("period_s", *period_s)
                } else if !(0.0..1.0).contains(amplitude) {
                    bad("amplitude (0..1)", *amplitude)
                } else {
                    Ok(())
                }
            }
            WorkloadSpec::Diurnal {
                min_rps,
                max_rps,
                period_s,
            } => {
                if !(pos(*max_rps) && min_rps.is_finite() && *min_rps >= 0.0 && min_rps <= max_rps)
                {
                    Err(SimError::InvalidSpec {
                        field: "workload.min_rps".into(),
                        reason: format!("need 0 <= min_rps <= max_rps and max_rps > 0, got {min_rps} and {max_rps}"),
                    })
                } else if !pos(*period_s) {
                    bad("period_s", *period_s)
                } else {
                    Ok(())
                }
            }
            WorkloadSpec::Replay {
                peak_rps, speedup, ..
            } => {
                if !pos(*peak_rps) {
                    bad("peak_rps", *peak_rps)
                } else if let Some(s) = speedup.filter(|s| !pos(*s)) {
                    bad("speedup", s)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    fn replay_points(&self) -> Result<(Vec<f64>, Vec<f64>), SimError> {
        let WorkloadSpec::Replay {
            path,
            time_col,
            value_col,
            ..
        } = self
        else {
            return Ok((vec![], vec![]));
        };
        let (text, name) = match path {
            None => (
                WORLDCUP98_DAY_CSV.to_string(),
                "worldcup98-1998-06-30.csv (bundled)".to_string(),
            ),
            Some(p) => (
                std::fs::read_to_string(p).map_err(|e| SimError::Io {
                    path: p.clone(),
                    source: e,
                })?,
                p.clone(),
            ),
        };
        parse_series_csv(&text, &name, time_col.as_deref(), value_col.as_deref())
    }

    /// The rate curve, one value (rps) per simulated second, for `duration_s` seconds.
    pub fn rates(&self, duration_s: u64, seed: u64) -> Result<Vec<f64>, SimError> {
        self.validate()?;
        let n = duration_s as usize;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005e_ed0f_10ad);
        let mut ar = Ar1::new(0.98);
        let mut out = Vec::with_capacity(n);
        match self {
            WorkloadSpec::OffPeak { rps } | WorkloadSpec::Peak { rps } => {
                for _ in 0..n {
                    out.push(rps * (1.0 + 0.05 * ar.next(&mut rng)).max(0.0));
                }
            }
            WorkloadSpec::Rush {
                base_rps,
                factor,
                start_s,
                ramp_s,
                hold_s,
                decay_s,
            } => {
                let start = start_s + rng.random_range(-60.0..=60.0);
                let top = base_rps * factor;
                for i in 0..n {
                    let t = i as f64;
                    let level = if t < start {
                        *base_rps
                    } else if t < start + ramp_s {
                        base_rps + (top - base_rps) * (t - start) / ramp_s
                    } else if t < start + ramp_s + hold_s {
                        top
                    } else {
                        base_rps
                            + (top - base_rps) * (-(t - start - ramp_s - hold_s) / decay_s).exp()
                    };
                    out.push(level * (1.0 + 0.05 * ar.next(&mut rng)).max(0.0));
                }
            }
            WorkloadSpec::Fluctuating {
                mean_rps,
                amplitude,
                period_s,
            } => {
                let p1 = rng.random_range(0.0..std::f64::consts::TAU);
                let p2 = rng.random_range(0.0..std::f64::consts::TAU);
                for i in 0..n {
                    let t = i as f64;
                    let wave = amplitude * (std::f64::consts::TAU * t / period_s + p1).sin()
                        + 0.5
                            * amplitude
                            * (std::f64::consts::TAU * t / (period_s / 3.7) + p2).sin();
                    out.push((mean_rps * (1.0 + wave + 0.1 * ar.next(&mut rng))).max(0.0));
                }
            }
            WorkloadSpec::Diurnal {
                min_rps,
                max_rps,
                period_s,
            } => {
                for i in 0..n {
                    let phase = std::f64::consts::TAU * i as f64 / period_s;
                    let level = min_rps + (max_rps - min_rps) * 0.5 * (1.0 - phase.cos());
                    out.push(level * (1.0 + 0.05 * ar.next(&mut rng)).max(0.0));
                }
            }
            WorkloadSpec::Replay { peak_rps, .. } => {
                let (t, v) = self.replay_points()?;
                let speed = self.speedup();
                let max = v.iter().cloned().fold(0.0, f64::max);
                if max <= 0.0 {
                    return Err(SimError::InvalidSpec {
                        field: "workload.replay".into(),
                        reason: "the replayed series is all zero".into(),
                    });
                }
                let scale = peak_rps / max;
                let t0 = t[0];
                let mut j = 0;
                for i in 0..n {
                    let x = t0 + i as f64 * speed;
                    while j + 1 < t.len() && t[j + 1] <= x {
                        j += 1;
                    }
                    let y = if j + 1 < t.len() {
                        let f = (x - t[j]) / (t[j + 1] - t[j]);
                        v[j] + (v[j + 1] - v[j]) * f
                    } else {
                        v[j]
                    };
                    out.push(y * scale);
                }
            }
        }
        Ok(out)
    }
}

/// Unit-variance AR(1) noise.
struct Ar1 {
    phi: f64,
    x: f64,
}

impl Ar1 {
    fn new(phi: f64) -> Self {
        Ar1 { phi, x: 0.0 }
    }
    fn next(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        let e: f64 = StandardNormal.sample(rng);
        self.x = self.phi * self.x + (1.0 - self.phi * self.phi).sqrt() * e;
        self.x
    }
}

/// Parses a `timestamp,value` series from CSV text. Values are per-step counts or rates; they
/// are rescaled later, so only their shape matters. Errors name the file, line and field.
pub fn parse_series_csv(
    text: &str,
    name: &str,
    time_col: Option<&str>,
    value_col: Option<&str>,
) -> Result<(Vec<f64>, Vec<f64>), SimError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let err = |line: u64, field: &str, message: String| SimError::Csv {
        file: name.to_string(),
        line,
        field: field.to_string(),
        message,
    };
    let headers = rdr
        .headers()
        .map_err(|e| err(1, "header", e.to_string()))?
        .clone();
    if headers.len() < 2 {
        return Err(err(
            1,
            "header",
            "need at least a timestamp and a value column".into(),
        ));
    }
    let find = |want: Option<&str>, default: usize| -> Result<(usize, String), SimError> {
        match want {
            None => Ok((default, headers[default].to_string())),
            Some(c) => headers
                .iter()
                .position(|h| h == c)
                .map(|i| (i, c.to_string()))
                .ok_or_else(|| {
                    err(
                        1,
                        c,
                        format!(
                            "missing column `{c}` (columns: {})",
                            headers.iter().collect::<Vec<_>>().join(", ")
                        ),
                    )
                }),
        }
    };
    let (ti, tname) = find(time_col, 0)?;
    let (vi, vname) = find(value_col, headers.len() - 1)?;
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            err(line, "record", e.to_string())
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let tf = rec
            .get(ti)
            .ok_or_else(|| err(line, &tname, "missing field".into()))?
            .trim();
        let vf = rec
            .get(vi)
            .ok_or_else(|| err(line, &vname, "missing field".into()))?
            .trim();
        let t = parse_time(tf).ok_or_else(|| {
            err(
                line,
                &tname,
                format!(
                    "`{}` is not a unix timestamp or an RFC 3339 UTC time",
                    quote(tf)
                ),
            )
        })?;
        let v: f64 = vf
            .parse()
            .map_err(|_| err(line, &vname, format!("`{}` is not a number", quote(vf))))?;
        if !v.is_finite() || v < 0.0 {
            return Err(err(
                line,
                &vname,
                format!("value must be finite and >= 0, got {}", quote(vf)),
            ));
        }
        if let Some(&prev) = ts.last() {
            if t == prev {
                return Err(err(
                    line,
                    &tname,
                    format!("duplicate timestamp `{}`", quote(tf)),
                ));
            }
            if t < prev {
                return Err(err(
                    line,
                    &tname,
                    format!("timestamps must increase: `{tf}` comes after a later one"),
                ));
            }
        }
        ts.push(t);
        vs.push(v);
    }
    if ts.len() < 2 {
        return Err(err(
            1,
            "records",
            format!("need at least 2 data rows, found {}", ts.len()),
        ));
    }
    Ok((ts, vs))
}

/// Unix seconds, or `YYYY-MM-DDTHH:MM:SSZ` / `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn parse_time(s: &str) -> Option<f64> {
    if let Ok(v) = s.parse::<f64>() {
        return v.is_finite().then_some(v);
    }
    let b = s.trim_end_matches('Z').as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(&b[r]).ok()?.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    // Feb 31 or Apr 31 is no date: refused here, never moved into the next month.
    if !(1..=12).contains(&mo) || !(1..=month_days).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + se) as f64)
}

/// Checks that a path exists before it is parsed, for a clearer error.
pub fn check_readable(path: &Path) -> Result<(), SimError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| SimError::Io {
            path: path.display().to_string(),
            source: e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_unix() {
        assert_eq!(parse_time("1998-04-30T21:30:00Z"), Some(893_971_800.0));
        assert_eq!(parse_time("1998-06-30 00:00:00"), Some(899_164_800.0));
        assert_eq!(parse_time("yesterday"), None);
        // No day past the month's end: Feb 31 is refused, not read as March 3.
        for bad in [
            "2026-02-31T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert!(parse_time("2024-02-29T00:00:00Z").is_some());
        assert!(parse_time("2000-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn csv_errors_name_file_line_and_field() {
        let e = parse_series_csv("t,v\n1,2\n2,x\n", "f.csv", None, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f.csv") && e.contains("line 3") && e.contains("`v`")
                || e.contains("field v"),
            "{e}"
        );
        let e = parse_series_csv("t,v\n1,2\n1,3\n", "f.csv", None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate") && e.contains("line 3"), "{e}");
        let e = parse_series_csv("t,v\n2,2\n1,3\n", "f.csv", None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must increase"), "{e}");
        let e = parse_series_csv("t,v\n1,-2\n2,3\n", "f.csv", None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(">= 0") && e.contains("line 2"), "{e}");
        let e = parse_series_csv("t,v\n1,2\n2,3\n", "f.csv", None, Some("requests"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing column `requests`"), "{e}");
        let e = parse_series_csv("t,v\n1,2\n2\n", "f.csv", None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.csv") && e.contains("line 3"), "{e}");
    }

    #[test]
    fn rush_reaches_its_factor_quickly() {
        let w = WorkloadSpec::named("rush", 800.0).unwrap();
        let r = w.rates(3600, 1).unwrap();
        let base: f64 = r[..400].iter().sum::<f64>() / 400.0;
        let top = r.iter().cloned().fold(0.0, f64::max);
        assert!((base - 100.0).abs() < 10.0, "{base}");
        assert!(top > 7.0 * base && top < 10.0 * base, "{top} vs {base}");
        // From base to 5x in under a minute.
        let first_5x = r.iter().position(|&x| x > 5.0 * base).unwrap();
        let last_base = r[..first_5x].iter().rposition(|&x| x < 1.3 * base).unwrap();
        assert!(first_5x - last_base < 60, "{last_base}..{first_5x}");
    }

    #[test]
    fn bundled_worldcup_day_replays_at_its_peak() {
        let w = WorkloadSpec::named("worldcup98", 500.0).unwrap();
        assert_eq!(w.natural_duration_s().unwrap(), 86_400);
        let r = w.rates(86_400, 0).unwrap();
        let max = r.iter().cloned().fold(0.0, f64::max);
        assert!((max - 500.0).abs() < 1e-6, "{max}");
        assert!(r.iter().all(|x| *x >= 0.0));
    }

    #[test]
    fn same_seed_same_curve_and_unknown_names_fail() {
        let w = WorkloadSpec::named("fluctuating", 100.0).unwrap();
        assert_eq!(w.rates(600, 7).unwrap(), w.rates(600, 7).unwrap());
        assert_ne!(w.rates(600, 7).unwrap(), w.rates(600, 8).unwrap());
        let e = WorkloadSpec::named("spiky", 1.0).unwrap_err().to_string();
        assert!(e.contains("spiky") && e.contains("rush"), "{e}");
    }
}
