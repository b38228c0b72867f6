//! Training off the decision path.
//!
//! An autoscaler never fits a model inside [`crate::Autoscaler::decide`]: it hands out
//! [`TrainingJob`]s, the control loop runs them beside the decisions, and hands each result back
//! with [`crate::Autoscaler::install`]. `decide` only forecasts with the newest installed model.
//!
//! In the simulator a job's result is installed a modelled training time after it was handed
//! out, in simulated time, so a run stays deterministic for its seed whatever the machine; a
//! real deployment runs jobs on a pool of threads and installs each when it is done.

use std::any::Any;
use std::fmt;

use crate::time::Millis;

/// Identifies a job within the autoscaler that handed it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub u64);

/// What a job produced: the autoscaler that handed it out knows the concrete type.
pub struct Trained(pub Box<dyn Any + Send>);

impl fmt::Debug for Trained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Trained(..)")
    }
}

/// One fit to run off the decision path.
pub struct TrainingJob {
    /// Its id, unique within the autoscaler that handed it out.
    pub id: JobId,
    /// What it trains, for spans and logs (`trend fit of cart`, `hgt`).
    pub what: String,
    /// Training time in simulated time: the delay before a simulated run installs the result.
    pub modelled: Millis,
    /// The fit itself; it owns copies of its data.
    pub work: Box<dyn FnOnce() -> Trained + Send>,
}

impl fmt::Debug for TrainingJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrainingJob")
            .field("id", &self.id)
            .field("what", &self.what)
            .field("modelled", &self.modelled)
            .finish()
    }
}

impl TrainingJob {
    /// A job that runs `work` and boxes its result.
    pub fn new<T: Send + 'static>(
        id: JobId,
        what: impl Into<String>,
        modelled: Millis,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Self {
        TrainingJob {
            id,
            what: what.into(),
            modelled,
            work: Box::new(move || Trained(Box::new(work()))),
        }
    }

    /// Runs the fit on the calling thread.
    pub fn run(self) -> (JobId, Trained) {
        (self.id, (self.work)())
    }
}
