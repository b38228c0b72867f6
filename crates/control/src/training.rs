//! Where training jobs run: beside the decisions, never inside them.
//!
//! [`SimulatedTraining`] runs a job when it is handed out and installs its result after the
//! job's modelled training time in simulated time, so a simulated run is deterministic for its
//! seed whatever the machine. [`ThreadTraining`] runs jobs on a small pool of threads and
//! installs each result at the first round after it finished: what a real deployment does.

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use graphscale_core::{JobId, Millis, Trained, TrainingJob};

/// Runs training jobs off the decision path.
pub trait TrainingRunner: Send {
    /// Takes the jobs handed out at `now`.
    fn submit(&mut self, now: Millis, jobs: Vec<TrainingJob>);
    /// The results ready at `now`, in a fixed order (ready time, then submission).
    fn ready(&mut self, now: Millis) -> Vec<(JobId, Trained)>;
    /// Jobs submitted and not yet handed back.
    fn pending(&self) -> usize;
    /// Waits until every submitted job is done and hands back all results, whatever their
    /// modelled time (for shutdown, tests and benchmarks).
    fn wait(&mut self) -> Vec<(JobId, Trained)>;
}

/// Jobs run at once, their results held back by their modelled training time.
#[derive(Debug, Default)]
pub struct SimulatedTraining {
    /// (ready at, submission order) -> result.
    held: BTreeMap<(Millis, u64), (JobId, Trained)>,
    submitted: u64,
}

impl TrainingRunner for SimulatedTraining {
    fn submit(&mut self, now: Millis, jobs: Vec<TrainingJob>) {
        for job in jobs {
            let span = tracing::debug_span!("train", what = %job.what, modelled = %job.modelled);
            let _e = span.enter();
            let at = now + job.modelled;
            let (id, trained) = job.run();
            self.submitted += 1;
            self.held.insert((at, self.submitted), (id, trained));
        }
    }

    fn ready(&mut self, now: Millis) -> Vec<(JobId, Trained)> {
        let later = self.held.split_off(&(Millis(now.0.saturating_add(1)), 0));
        std::mem::replace(&mut self.held, later)
            .into_values()
            .collect()
    }

    fn pending(&self) -> usize {
        self.held.len()
    }

    fn wait(&mut self) -> Vec<(JobId, Trained)> {
        std::mem::take(&mut self.held).into_values().collect()
    }
}

/// Jobs run on a pool of threads; a result is installed at the first round after it is done.
pub struct ThreadTraining {
    jobs: Option<Sender<TrainingJob>>,
    done: Receiver<(JobId, Trained)>,
    pending: usize,
}

impl std::fmt::Debug for ThreadTraining {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadTraining")
            .field("pending", &self.pending)
            .finish()
    }
}

impl ThreadTraining {
    /// A pool of `threads` (at least 1) training threads.
    pub fn new(threads: usize) -> Self {
        let (tx, rx) = channel::<TrainingJob>();
        let (done_tx, done) = channel();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let done_tx = done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("graphscale-train-{i}"))
                .spawn(move || loop {
                    let job = {
                        let guard = rx.lock().unwrap_or_else(|e| e.into_inner());
                        guard.recv()
                    };
                    let Ok(job) = job else { break };
                    let span = tracing::debug_span!("train", what = %job.what);
                    let _e = span.enter();
                    if done_tx.send(job.run()).is_err() {
                        break;
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a training thread");
            }
        }
        ThreadTraining {
            jobs: Some(tx),
            done,
            pending: 0,
        }
    }

    /// Waits until every submitted job has finished and returns their results (for tests and
    /// shutdown).
    pub fn drain(&mut self) -> Vec<(JobId, Trained)> {
        let mut out = Vec::new();
        while self.pending > 0 {
            match self.done.recv() {
                Ok(r) => {
                    self.pending -= 1;
                    out.push(r);
                }
                Err(_) => break,
            }
        }
        out
    }
}

impl TrainingRunner for ThreadTraining {
    fn submit(&mut self, _now: Millis, jobs: Vec<TrainingJob>) {
        for job in jobs {
            match self.jobs.as_ref().map(|tx| tx.send(job)) {
                Some(Ok(())) => self.pending += 1,
                _ => tracing::warn!("the training pool is gone: job dropped"),
            }
        }
    }

    fn ready(&mut self, _now: Millis) -> Vec<(JobId, Trained)> {
        let out: Vec<_> = self.done.try_iter().collect();
        self.pending -= out.len().min(self.pending);
        out
    }

    fn pending(&self) -> usize {
        self.pending
    }

    fn wait(&mut self) -> Vec<(JobId, Trained)> {
        self.drain()
    }
}

impl Drop for ThreadTraining {
    fn drop(&mut self) {
        // Closing the channel ends every thread after its current job.
        self.jobs.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64, modelled_s: u64) -> TrainingJob {
        TrainingJob::new(
            JobId(id),
            format!("job {id}"),
            Millis::from_secs(modelled_s),
            move || id * 10,
        )
    }

    fn ids(v: &[(JobId, Trained)]) -> Vec<u64> {
        v.iter().map(|(j, _)| j.0).collect()
    }

    #[test]
    fn simulated_results_wait_for_their_modelled_time() {
        let mut t = SimulatedTraining::default();
        t.submit(
            Millis::from_secs(10),
            vec![job(1, 20), job(2, 0), job(3, 5)],
        );
        assert_eq!(t.pending(), 3);
        assert_eq!(ids(&t.ready(Millis::from_secs(10))), vec![2]);
        assert!(t.ready(Millis::from_secs(14)).is_empty());
        let r = t.ready(Millis::from_secs(30));
        assert_eq!(ids(&r), vec![3, 1]);
        assert_eq!(*r[1].1 .0.downcast_ref::<u64>().unwrap(), 10);
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn threads_run_jobs_and_hand_back_every_result() {
        let mut t = ThreadTraining::new(2);
        t.submit(Millis::ZERO, (1..=5).map(|i| job(i, 0)).collect());
        let mut got = ids(&t.ready(Millis::ZERO));
        got.extend(ids(&t.drain()));
        got.sort_unstable();
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
        assert_eq!(t.pending(), 0);
    }
}
