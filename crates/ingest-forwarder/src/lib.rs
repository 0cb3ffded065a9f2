#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod answer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringbuf_core::{RingBuffer, Wait};
use tag_model::TagValue;

pub use answer::Answer;

/// Default local queue: 10,000 values (a few seconds of a busy plant; about 1 MiB).
pub const DEFAULT_QUEUE_MAX: usize = 10_000;
/// Default largest request: 1,000 values (about 120 KB of JSON).
pub const DEFAULT_BATCH_MAX: usize = 1_000;
/// The spec's retry delays (1 s, 2 s, 4 s); the last one repeats until the writer answers.
pub const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];
/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Problems with the writer are logged at most this often.
pub const PROBLEM_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Where and how to forward.
#[derive(Clone, Debug)]
pub struct ForwarderConfig {
    /// The ingest endpoint, e.g. `http://127.0.0.1:8000/api/buffer/ingest`.
    pub url: String,
    /// The most values held locally while the writer cannot take them.
    pub queue_max: usize,
    /// The most values per request.
    pub batch_max: usize,
    /// Delays between attempts; the last repeats.
    pub retry_delays: Vec<Duration>,
    /// Time limit of one request.
    pub request_timeout: Duration,
}

impl ForwarderConfig {
    /// The defaults, forwarding to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        ForwarderConfig {
            url: url.into(),
            queue_max: DEFAULT_QUEUE_MAX,
            batch_max: DEFAULT_BATCH_MAX,
            retry_delays: RETRY_DELAYS.to_vec(),
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// Why the forwarder cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwarderError {
    /// `queue_max` or `batch_max` is 0, or no retry delay is given.
    #[error("{0}")]
    Config(&'static str),
    /// The sender thread could not be started.
    #[error("cannot start the sender thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Where the pushed values are. Read live they may be a moment apart; after
/// [`Forwarder::shutdown`] they are exact and [`balanced`](Counts::balanced).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Values taken by [`Pusher::push`].
    pub pushed: u64,
    /// Values the writer accepted (answered 200).
    pub forwarded: u64,
    /// Values the writer refused as bad (400 naming the item, or one value answered 413).
    pub refused: u64,
    /// Values displaced from the full local queue.
    pub overflow: u64,
    /// Values waiting in the local queue, or (after shutdown) handed back unsent.
    pub queued: u64,
    /// Values the sender holds for the current request.
    pub in_flight: u64,
}

impl Counts {
    /// Whether every pushed value is forwarded, refused, overflowed, queued or in flight.
    pub fn balanced(&self) -> bool {
        self.pushed == self.forwarded + self.refused + self.overflow + self.queued + self.in_flight
    }
}

/// What [`Forwarder::shutdown`] leaves.
#[derive(Debug)]
pub struct ShutdownOutcome {
    /// The final counts; `queued` is the number of values in `unsent`.
    pub counts: Counts,
    /// Values not forwarded before the grace ran out, oldest first: the caller saves them.
    pub unsent: Vec<TagValue>,
}

struct Shared {
    config: ForwarderConfig,
    queue: RingBuffer<TagValue>,
    pushed: AtomicU64,
    forwarded: AtomicU64,
    refused: AtomicU64,
    in_flight: AtomicU64,
    /// Set by shutdown: the sender stops at this instant.
    deadline: Mutex<Option<Instant>>,
    wake: Condvar,
}

impl Shared {
    fn counts(&self) -> Counts {
        Counts {
            pushed: self.pushed.load(Ordering::SeqCst),
            forwarded: self.forwarded.load(Ordering::SeqCst),
            refused: self.refused.load(Ordering::SeqCst),
            overflow: self.queue.overflow_count(),
            queued: self.queue.len() as u64,
            in_flight: self.in_flight.load(Ordering::SeqCst),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps `delay`; returns false once shutdown's deadline has passed. Shutdown beginning
    /// ends the pause at once, so the held values get one more attempt.
    fn pause(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        let mut deadline = self.deadline.lock().unwrap_or_else(PoisonError::into_inner);
        let shutting_down = deadline.is_some();
        loop {
            if !shutting_down && deadline.is_some() {
                return true;
            }
            let now = Instant::now();
            let end = deadline.map_or(until, |d| d.min(until));
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            if now >= end {
                return true;
            }
            deadline = self
                .wake
                .wait_timeout(deadline, end - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Takes values for the forwarder from any thread (a polling engine's consumer).
#[derive(Clone)]
pub struct Pusher {
    shared: Arc<Shared>,
}

impl Pusher {
    /// Queues `values` without blocking; a full queue displaces its oldest values (counted
    /// as overflow). After shutdown has begun the values are handed back.
    pub fn push(&self, values: Vec<TagValue>) -> Result<(), Vec<TagValue>> {
        let count = values.len() as u64;
        // Counted first, so a live reading never shows a value forwarded before it was pushed.
        self.shared.pushed.fetch_add(count, Ordering::SeqCst);
        match self.shared.queue.push_batch(values) {
            Ok(_) => Ok(()),
            Err(closed) => {
                self.shared.pushed.fetch_sub(count, Ordering::SeqCst);
                Err(closed.into_inner())
            }
        }
    }
}

/// A running forwarder: a local queue and the thread that posts it to the writer.
pub struct Forwarder {
    shared: Arc<Shared>,
    sender: JoinHandle<Vec<TagValue>>,
}

impl Forwarder {
    /// Starts the sender thread (`forwarder`).
    pub fn start(config: ForwarderConfig) -> Result<Forwarder, ForwarderError> {
        if config.batch_max == 0 {
            return Err(ForwarderError::Config("batch_max must be at least 1"));
        }
        if config.retry_delays.is_empty() {
            return Err(ForwarderError::Config("at least one retry delay is needed"));
        }
        let queue = RingBuffer::new(config.queue_max)
            .map_err(|_| ForwarderError::Config("queue_max must be at least 1"))?;
        queue.set_overflow_note(
            "This is the polling engine's local queue, which holds values while the writer \
             cannot take them: start the writer, or raise --queue-max",
        );
        let shared = Arc::new(Shared {
            config,
            queue,
            pushed: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            deadline: Mutex::new(None),
            wake: Condvar::new(),
        });
        let sender = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("forwarder".into())
                .spawn(move || Sender::new(shared).run())?
        };
        Ok(Forwarder { shared, sender })
    }

    /// A handle that queues values.
    pub fn pusher(&self) -> Pusher {
        Pusher {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Queues values (see [`Pusher::push`]).
    pub fn push(&self, values: Vec<TagValue>) {
        if let Err(late) = self.pusher().push(values) {
            log::warn!("{} values arrived after shutdown began", late.len());
        }
    }

    /// The counts now.
    pub fn counts(&self) -> Counts {
        self.shared.counts()
    }

    /// Refuses further pushes and keeps forwarding for at most `grace`; hands back what was
    /// not forwarded by then.
    pub fn shutdown(self, grace: Duration) -> ShutdownOutcome {
        self.shared.queue.close();
        {
            let mut deadline = self
                .shared
                .deadline
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *deadline = Some(Instant::now() + grace);
            self.shared.wake.notify_all();
        }
        let mut unsent = match self.sender.join() {
            Ok(unsent) => unsent,
            Err(_) => {
                log::error!("The forwarder thread panicked; its current request is unsent");
                Vec::new()
            }
        };
        self.shared.queue.drain_into(&mut unsent, usize::MAX);
        self.shared.in_flight.store(0, Ordering::SeqCst);
        let mut counts = self.shared.counts();
        counts.queued = unsent.len() as u64;
        ShutdownOutcome { counts, unsent }
    }
}

/// The sender thread's state.
struct Sender {
    shared: Arc<Shared>,
    agent: ureq::Agent,
    /// Values taken from the queue and not yet answered for, oldest first.
    held: Vec<TagValue>,
    /// Values per request now (halved on 413, doubled back after each success).
    limit: usize,
    /// Failed attempts in a row.
    failures: usize,
    /// When the current run of failures began.
    trouble_since: Option<Instant>,
    last_problem_log: Option<Instant>,
}

impl Sender {
    fn new(shared: Arc<Shared>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(shared.config.request_timeout))
            .build()
            .into();
        let limit = shared.config.batch_max;
        Sender {
            shared,
            agent,
            held: Vec::new(),
            limit,
            failures: 0,
            trouble_since: None,
            last_problem_log: None,
        }
    }

    /// Forwards until shutdown's deadline or until the closed queue is empty; returns the
    /// values it still holds.
    fn run(mut self) -> Vec<TagValue> {
        loop {
            if self.held.is_empty() {
                match self.shared.queue.wait_for(1, Duration::from_millis(200)) {
                    Wait::Ready => {}
                    Wait::Closed => return self.held,
                    _ => continue,
                }
                let batch_max = self.shared.config.batch_max;
                self.shared.queue.drain_into(&mut self.held, batch_max);
                self.shared
                    .in_flight
                    .store(self.held.len() as u64, Ordering::SeqCst);
                continue;
            }
            let deadline = self.shared.deadline();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return self.held;
            }
            let count = self.held.len().min(self.limit);
            let answer = self.send(count, deadline);
            if !self.act_on(answer, count) {
                return self.held;
            }
        }
    }

    fn send(&self, count: usize, deadline: Option<Instant>) -> Answer {
        let body = match serde_json::to_vec(&self.held[..count]) {
            Ok(body) => body,
            Err(error) => return Answer::Unreachable(format!("cannot encode the values: {error}")),
        };
        let mut timeout = self.shared.config.request_timeout;
        if let Some(deadline) = deadline {
            timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
        }
        let request = self
            .agent
            .post(&self.shared.config.url)
            .header("content-type", "application/json")
            .config()
            .timeout_global(Some(timeout.max(Duration::from_millis(1))))
            .build();
        match request.send(&body[..]) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let text = response
                    .body_mut()
                    .with_config()
                    .limit(64 * 1024)
                    .read_to_string()
                    .unwrap_or_default();
                Answer::from_response(status, retry_after, &text)
            }
            Err(error) => Answer::Unreachable(error.to_string()),
        }
    }

    /// Settles what `answer` says about the first `count` held values; returns false when
    /// shutdown's deadline passed during a pause.
    fn act_on(&mut self, answer: Answer, count: usize) -> bool {
        let shared = Arc::clone(&self.shared);
        let url = &shared.config.url;
        match answer {
            Answer::Accepted => {
                self.held.drain(..count);
                shared.forwarded.fetch_add(count as u64, Ordering::SeqCst);
                shared
                    .in_flight
                    .store(self.held.len() as u64, Ordering::SeqCst);
                if let Some(since) = self.trouble_since.take() {
                    log::info!(
                        "Writer at {url} takes values again after {:.1} s; forwarding {} held \
                         and queued values",
                        since.elapsed().as_secs_f64(),
                        self.held.len() + shared.queue.len()
                    );
                }
                self.failures = 0;
                self.limit = (self.limit.saturating_mul(2)).min(shared.config.batch_max);
                true
            }
            Answer::TooLarge(reason) if count > 1 => {
                self.limit = count / 2;
                log::warn!(
                    "Writer at {url} refused {count} values as too large ({reason}); sending \
                     {} at a time",
                    self.limit
                );
                true
            }
            Answer::TooLarge(reason) => {
                self.refuse(0, &reason);
                true
            }
            Answer::BadItem { index, reason } if index < count => {
                self.refuse(index, &reason);
                true
            }
            Answer::BadItem { reason, .. } => {
                // A whole-body error from our own encoding: sending again cannot help.
                for _ in 0..count {
                    self.refuse(0, &reason);
                }
                true
            }
            Answer::Unreachable(error) if shared.deadline().is_some() => {
                // Shutting down and nobody listens: waiting out the grace cannot help, and
                // the caller saves the values now.
                log::warn!("Writer unreachable at {url} at shutdown: {error}");
                false
            }
            Answer::Busy { .. } | Answer::Unreachable(_) | Answer::Unexpected { .. } => {
                let step = self.failures.min(shared.config.retry_delays.len() - 1);
                let mut delay = shared.config.retry_delays[step];
                if let Answer::Busy {
                    retry_after: Some(asked),
                    ..
                } = &answer
                {
                    delay = delay.max((*asked).min(Duration::from_secs(60)));
                }
                self.failures += 1;
                self.trouble_since.get_or_insert_with(Instant::now);
                let now = Instant::now();
                if self
                    .last_problem_log
                    .is_none_or(|last| now.duration_since(last) >= PROBLEM_LOG_INTERVAL)
                {
                    self.last_problem_log = Some(now);
                    let waiting = self.held.len() + shared.queue.len();
                    let queue_max = shared.config.queue_max;
                    let retry = delay.as_secs_f64();
                    match &answer {
                        Answer::Unreachable(error) => log::warn!(
                            "Writer unreachable at {url}: {error}; {waiting} values held \
                             locally (queue max {queue_max}), retrying in {retry:.1} seconds"
                        ),
                        Answer::Busy { status, reason, .. } => log::warn!(
                            "Writer at {url} cannot take values now ({status}: {reason}); \
                             {waiting} values held locally, retrying in {retry:.1} seconds"
                        ),
                        other => log::warn!(
                            "Writer at {url} answered {other}; {waiting} values held locally, \
                             retrying in {retry:.1} seconds"
                        ),
                    }
                }
                self.shared.pause(delay)
            }
        }
    }

    fn refuse(&mut self, index: usize, reason: &str) {
        let value = self.held.remove(index);
        self.shared.refused.fetch_add(1, Ordering::SeqCst);
        self.shared
            .in_flight
            .store(self.held.len() as u64, Ordering::SeqCst);
        log::error!(
            "Writer at {} refused a value, not sent again: {reason}: {value:?}",
            self.shared.config.url
        );
    }
}
