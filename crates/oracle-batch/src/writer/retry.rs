//! The retry loop: a failed batch is tried again after BASE, 2*BASE, 4*BASE ... and then
//! saved to backup; and the held batch (neither database nor disk took it), tried again on a
//! backoff to 30 s.

use std::sync::Arc;
use std::time::Duration;

use rolling_metrics::Outcome;
use tag_model::TagValue;

use super::accounting::Counters;
use super::offline::last_resort_save;
use super::worker::Worker;
use super::WriterConfig;

/// The longest wait between two tries of a batch that neither the database nor the backup
/// directory would take.
const HELD_RETRY_CAP: Duration = Duration::from_secs(30);

/// The wait before the next try of the held batch: from the retry base delay (at least
/// 0.1 s), doubling to [`HELD_RETRY_CAP`].
pub(super) struct HeldBackoff {
    first: Duration,
    next: Duration,
}

impl HeldBackoff {
    pub(super) fn new(config: &WriterConfig) -> Self {
        let first = config.retry_base_delay.max(Duration::from_millis(100));
        HeldBackoff { first, next: first }
    }
}

impl Worker {
    /// One more try of the held batch; on failure waits (shutdown cuts the wait short) or,
    /// when shutting down, backs it up as a last resort.
    pub(super) fn settle_held(&mut self, backoff: &mut HeldBackoff) {
        let shared = Arc::clone(&self.shared);
        if self.retry_held() {
            backoff.next = backoff.first;
            self.settle_claims();
        } else if shared.stopping.is_set() {
            // Shutting down: one more try was made just now; back up or give up.
            self.give_up_held();
        } else {
            shared.clock.sleep(backoff.next, &shared.stopping);
            backoff.next = (backoff.next * 2).min(HELD_RETRY_CAP);
        }
    }

    /// Writes `batch`, retrying transient failures; falls back to backup. Leaves `batch`
    /// empty unless it had to be held.
    pub(super) fn write_with_retries(&mut self, batch: &mut Vec<TagValue>) {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let attempts = config.retry_max + 1;
        let kind = self.sink.kind();
        // Open from the first failure until the batch is settled: meanwhile this thread
        // drains nothing, so the spill thread keeps the buffer below its high-water mark.
        let mut retry_window = None;
        for attempt in 1..=attempts {
            if attempt > 1 && shared.past_deadline() {
                log::warn!("Shutting down: no time to retry, saving the batch to CSV backup");
                break;
            }
            // Healthy batches stay quiet: a first attempt is announced at info only when it
            // fails (just before its error line, as the spec's log shows it) or when the
            // writer is recovering from a failure.
            let announced = attempt > 1 || self.recovering;
            if announced {
                log::info!("Batch write attempt {attempt}/{attempts}...");
            } else {
                log::debug!("Batch write attempt {attempt}/{attempts}...");
            }
            let started = shared.now();
            let result = self.write_once(batch);
            let latency = shared.now().saturating_sub(started);
            match result {
                Ok(report) => {
                    shared
                        .metrics
                        .record(batch.len(), latency, Outcome::Success);
                    self.settle_report(batch, report, latency);
                    self.recovering = false;
                    batch.clear();
                    return;
                }
                Err(error) => {
                    shared
                        .metrics
                        .record(batch.len(), latency, Outcome::Failure);
                    Counters::add(&shared.counters.failed_attempts, 1);
                    self.recovering = true;
                    if !announced {
                        log::info!("Batch write attempt {attempt}/{attempts}...");
                    }
                    log::error!("{kind} write failed (attempt {attempt}/{attempts}): {error}");
                    if !error.is_transient() {
                        log::error!(
                            "{kind} set-up error, not retrying: {}. Fix the configuration; \
                             saving the batch to CSV backup meanwhile",
                            self.sink.describe()
                        );
                        shared.go_offline(&error);
                        break;
                    }
                    if attempt == attempts {
                        log::error!(
                            "All {} retries exhausted, saving to CSV backup",
                            config.retry_max
                        );
                        shared.go_offline(&error);
                        break;
                    }
                    let delay = config.retry_base_delay * 2u32.pow(attempt - 1);
                    if shared
                        .deadline()
                        .is_some_and(|deadline| shared.now() + delay > deadline)
                    {
                        log::warn!(
                            "Shutting down: no time to retry, saving the batch to CSV backup"
                        );
                        break;
                    }
                    log::info!("Retrying in {:.1} seconds...", delay.as_secs_f64());
                    retry_window.get_or_insert_with(|| shared.spill.open());
                    shared.clock.sleep(delay, &shared.stopping);
                }
            }
        }
        self.save_to_backup(batch);
    }

    /// One more try of the held batch: database first, then backup. True when settled.
    fn retry_held(&mut self) -> bool {
        let mut held = std::mem::take(&mut self.held);
        let started = self.shared.now();
        match self.write_once(&held) {
            Ok(report) => {
                let latency = self.shared.now().saturating_sub(started);
                self.shared
                    .metrics
                    .record(held.len(), latency, Outcome::Success);
                self.settle_report(&held, report, latency);
                true
            }
            Err(error) => {
                Counters::add(&self.shared.counters.failed_attempts, 1);
                log::debug!("Held batch still not written: {error}");
                self.save_to_backup(&mut held);
                self.held.is_empty()
            }
        }
    }

    fn give_up_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        last_resort_save(&self.shared, &held);
    }
}
