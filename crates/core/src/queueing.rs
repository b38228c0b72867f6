//! Quantiles of the time in the system of an M/M/c group, tabulated per replica count.
//!
//! The time in the system is the service time `S ~ Exp(mu)` plus the wait, which is 0 with
//! probability `1 - p` and `Exp(h)` with probability `p`, where `h = c mu - lambda` and `p` is
//! Sakasegawa's wait probability `rho^(sqrt(2(c+1)) - 1)`. So
//! `P(T > t) = (1 - p) e^(-mu t) + p P(S + Exp(h) > t)`, whose quantiles have no closed form
//! ([`sojourn_quantile`] inverts it by bisection). In units of the mean service time `1/mu` they
//! depend only on `c` and `rho`, so a table per `c` over `rho` serves every service; it holds
//! `mu t (1 - rho)`, which stays smooth as `rho` nears 1 where `t` grows like `1/(1 - rho)`,
//! and is read by linear interpolation (within 0.2 % of the bisection, tested). Tables are
//! built on first use, once per process, and shared. The simulator prices its services'
//! latency with them, and the SLO planner's latency model predicts with them.

use std::sync::{Arc, Mutex};

/// The utilisation the latency model is capped at (the M/M/c wait is infinite at 1).
pub const RHO_MAX: f64 = 0.995;
/// Intervals of a table over `0..=RHO_MAX`.
const STEPS: usize = 1024;
/// Replica counts above this are computed by bisection each time, not tabulated.
const MAX_TABULATED: u32 = 4096;
/// `1 - q` for the quantiles q = 0.5, 0.95, 0.99.
pub const TAILS: [f64; 3] = [0.5, 0.05, 0.01];
/// `-ln(1 - q)` for the same quantiles: those of a unit exponential.
pub const NEG_LN_TAILS: [f64; 3] = [
    std::f64::consts::LN_2,
    2.995_732_273_553_991,
    4.605_170_185_988_091,
];

/// One replica count's table: per grid point, `mu t (1 - rho)` for the three quantiles.
#[derive(Debug)]
struct Table {
    points: Box<[[f64; 3]]>,
}

/// Every table built in this process, by replica count.
static TABLES: Mutex<Vec<Option<Arc<Table>>>> = Mutex::new(Vec::new());

/// Handles on the process's shared tables, kept by their user so that a look-up takes no
/// lock (a simulator keeps one; [`sojourn_quantiles`] keeps one per thread).
#[derive(Debug, Default, Clone)]
pub struct SojournTables {
    by_c: Vec<Option<Arc<Table>>>,
}

impl SojournTables {
    /// The p50, p95 and p99 (s) of the time in the system of `c` replicas of rate `mu` at
    /// utilisation `rho` (taken as at most [`RHO_MAX`]), without the base latency; infinite
    /// without a replica or capacity.
    pub fn quantiles(&mut self, c: u32, mu: f64, rho: f64) -> [f64; 3] {
        if c == 0 || !(mu.is_finite() && mu > 0.0) {
            return [f64::INFINITY; 3];
        }
        let rho = if rho > 0.0 { rho.min(RHO_MAX) } else { 0.0 };
        if c > MAX_TABULATED {
            let (h, p) = (c as f64 * mu * (1.0 - rho), wait_probability(c, rho));
            return TAILS.map(|tail| sojourn_quantile(mu, h, p, tail));
        }
        let table = self.table(c);
        let x = (rho / RHO_MAX).clamp(0.0, 1.0) * STEPS as f64;
        let k = (x as usize).min(STEPS - 1);
        let frac = x - k as f64;
        let (a, b) = (table.points[k], table.points[k + 1]);
        let scale = 1.0 / (mu * (1.0 - rho));
        [0, 1, 2].map(|i| (a[i] + frac * (b[i] - a[i])) * scale)
    }

    fn table(&mut self, c: u32) -> &Table {
        let i = c as usize;
        if self.by_c.len() <= i {
            self.by_c.resize(i + 1, None);
        }
        self.by_c[i].get_or_insert_with(|| shared(c))
    }
}

/// [`SojournTables::quantiles`] with this thread's handles.
pub fn sojourn_quantiles(c: u32, mu: f64, rho: f64) -> [f64; 3] {
    thread_local! {
        static HANDLES: std::cell::RefCell<SojournTables> = std::cell::RefCell::default();
    }
    HANDLES.with(|t| t.borrow_mut().quantiles(c, mu, rho))
}

/// The process's table for `c`, built on first use.
fn shared(c: u32) -> Arc<Table> {
    let i = c as usize;
    {
        let tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Some(t)) = tables.get(i) {
            return t.clone();
        }
    }
    // Built outside the lock: two threads may both build one, and either result is the same.
    let built = Arc::new(build(c));
    let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    if tables.len() <= i {
        tables.resize(i + 1, None);
    }
    tables[i].get_or_insert(built).clone()
}

fn build(c: u32) -> Table {
    let points = (0..=STEPS)
        .map(|k| {
            let rho = RHO_MAX * k as f64 / STEPS as f64;
            let (h, p) = (c as f64 * (1.0 - rho), wait_probability(c, rho));
            TAILS.map(|tail| sojourn_quantile(1.0, h, p, tail) * (1.0 - rho))
        })
        .collect();
    Table { points }
}

/// Sakasegawa's probability that a request waits, `rho^(sqrt(2(c+1)) - 1)` (exact for one
/// replica, where it is `rho`).
pub fn wait_probability(c: u32, rho: f64) -> f64 {
    if rho > 0.0 {
        ln_wait_probability(c, rho).exp().min(1.0)
    } else {
        0.0
    }
}

/// The logarithm of [`wait_probability`] before it is capped at 1, for `rho > 0`: one
/// logarithm of `rho`, no `pow`.
pub fn ln_wait_probability(c: u32, rho: f64) -> f64 {
    ((2.0 * (c as f64 + 1.0)).sqrt() - 1.0) * rho.ln()
}

/// The `1 - tail` quantile (s) of the time in the system: service `Exp(mu)` plus a wait that
/// is `Exp(h)` with probability `p` and 0 otherwise, by bisection. For one replica
/// (`p = rho`) this is M/M/1's `Exp(mu - lambda)`. Infinite without capacity.
pub fn sojourn_quantile(mu: f64, h: f64, p: f64, tail: f64) -> f64 {
    if !(mu > 0.0 && h > 0.0 && mu.is_finite() && h.is_finite()) {
        return f64::INFINITY;
    }
    // P(S + Exp(h) > t): hypoexponential, or Erlang-2 when the rates meet.
    let hypo = |t: f64| {
        if (h - mu).abs() <= 1e-9 * mu {
            (-mu * t).exp() * (1.0 + mu * t)
        } else {
            (h * (-mu * t).exp() - mu * (-h * t).exp()) / (h - mu)
        }
    };
    let survival = |t: f64| (1.0 - p) * (-mu * t).exp() + p * hypo(t);
    // Bracket the quantile: from the sum of the two parts' quantiles, doubled until the
    // survival is below the tail (it falls to 0, so this ends).
    let mut hi = -f64::ln(tail) * (1.0 / mu + 1.0 / h);
    for _ in 0..64 {
        if survival(hi) <= tail {
            break;
        }
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if survival(mid) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_replica_is_mm1s_exponential() {
        let mu = 500.0 / 72.87;
        for lambda in [0.5, 2.5, 5.0, 6.5] {
            let exact = 20f64.ln() / (mu - lambda);
            let got = sojourn_quantile(mu, mu - lambda, lambda / mu, 0.05);
            assert!(
                (got - exact).abs() < 1e-9 * exact,
                "{lambda}: {got} vs {exact}"
            );
            let table = SojournTables::default().quantiles(1, mu, lambda / mu)[1];
            assert!(
                (table - exact).abs() < 1e-9 * exact,
                "{lambda}: {table} vs {exact}"
            );
        }
    }

    #[test]
    fn the_tables_are_within_0_2_percent_of_the_bisection() {
        let mut tables = SojournTables::default();
        let mut worst = 0.0f64;
        for c in [1u32, 2, 3, 5, 8, 13, 40, 200] {
            for j in 0..997 {
                // Off the grid, up to the cap.
                let rho = RHO_MAX * (j as f64 + 0.37) / 997.0;
                let mu = 3.7;
                let got = tables.quantiles(c, mu, rho);
                let h = c as f64 * mu * (1.0 - rho);
                let p = wait_probability(c, rho);
                for (i, tail) in TAILS.iter().enumerate() {
                    let exact = sojourn_quantile(mu, h, p, *tail);
                    worst = worst.max((got[i] - exact).abs() / exact);
                }
            }
        }
        assert!(worst < 2e-3, "largest relative error {worst}");
    }

    #[test]
    fn more_replicas_or_load_never_shorten_the_wait_wrongly() {
        // At a fixed offered load, more replicas give shorter quantiles; at fixed replicas,
        // more load gives longer ones.
        let mut tables = SojournTables::default();
        let mu = 10.0;
        let lambda = 15.0;
        let mut last = [f64::INFINITY; 3];
        for c in 2..20u32 {
            let q = tables.quantiles(c, mu, lambda / (c as f64 * mu));
            assert!((0..3).all(|i| q[i] <= last[i] && q[i] > 0.0), "{c}: {q:?}");
            last = q;
        }
        let mut last = [0.0; 3];
        for k in 0..100 {
            let q = tables.quantiles(4, mu, RHO_MAX * k as f64 / 100.0);
            assert!((0..3).all(|i| q[i] >= last[i]), "{k}: {q:?}");
            last = q;
        }
    }

    #[test]
    fn beyond_the_tables_the_bisection_answers() {
        let mut tables = SojournTables::default();
        let q = tables.quantiles(MAX_TABULATED + 1, 2.0, 0.5);
        assert!((q[0] - 2f64.ln() / 2.0).abs() < 1e-6, "{q:?}");
        assert!(tables.by_c.is_empty());
    }
}
