//! The engine: one thread per polling group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use tag_model::{Quality, TagValue};

use crate::config::{GroupConfig, HandshakeAnswer, Mode, PlcConfig, PollingConfig, TagConfig};
use crate::driver::{
    DriverError, LinkState, PlcDriver, ReadPlan, Sample, SampleSink, SubscriptionRequest,
};
use crate::exception::ExceptionFilter;

/// Receives the values of each poll: one call per poll, all with the poll's timestamp.
///
/// Any `Fn(Vec<TagValue>) + Send + Sync` closure is a consumer, so the engine needs nothing
/// from the buffer it feeds.
pub trait Consumer: Send + Sync {
    /// Takes the values of one poll.
    fn consume(&self, values: Vec<TagValue>);
}

impl<F: Fn(Vec<TagValue>) + Send + Sync> Consumer for F {
    fn consume(&self, values: Vec<TagValue>) {
        self(values)
    }
}

/// Makes the driver for a PLC; replace it to plug in real drivers.
pub type DriverFactory = dyn Fn(&PlcConfig) -> Box<dyn PlcDriver> + Send + Sync;

/// Reconnect backoff after a failed read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineOptions {
    /// First wait before reconnecting.
    pub reconnect_min: Duration,
    /// Longest wait between reconnect attempts.
    pub reconnect_max: Duration,
    /// The clock of each poll's timestamp (TIMESTAMP_ZONE): UTC, or this machine's local
    /// wall-clock time.
    pub timestamp_zone: tag_model::TimestampZone,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
            timestamp_zone: tag_model::TimestampZone::Utc,
        }
    }
}

/// A trigger that could not be delivered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    /// No group has this name.
    #[error("no polling group is named {0:?}")]
    UnknownGroup(String),
    /// The group polls on a schedule.
    #[error("polling group {0:?} is FIXED; only HANDSHAKE groups are triggered")]
    NotHandshake(String),
    /// The engine is stopping.
    #[error("the polling engine is stopping")]
    Stopped,
}

/// What a group is doing, for `/api/polling/status`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GroupStatus {
    /// Group name.
    pub name: String,
    /// `FIXED`, `HANDSHAKE` or `SUBSCRIPTION`.
    pub mode: &'static str,
    /// Interval of a FIXED group; publishing interval of a SUBSCRIPTION group.
    pub interval_ms: Option<u64>,
    /// The PLC polled.
    pub plc_code: String,
    /// Addresses per poll.
    pub tag_count: usize,
    /// Requests sent per poll, after request planning merged the addresses.
    pub requests_per_poll: usize,
    /// Values not pushed because they stayed inside their deadband (report by exception).
    pub suppressed: u64,
    /// Reads of the PLC-side trigger (HANDSHAKE groups with `trigger`).
    pub trigger_reads: u64,
    /// Whether the group's thread is running.
    pub running: bool,
    /// Whether the driver is connected.
    pub connected: bool,
    /// Polls done; for a SUBSCRIPTION group, notification batches and keep-alives received
    /// from the server.
    pub polls: u64,
    /// Values a SUBSCRIPTION group received (each notification is one value).
    pub notifications: u64,
    /// Polls with a failed read (the values were stored as BAD).
    pub errors: u64,
    /// Deadlines of a FIXED group missed because a poll ran long (skipped, not caught up).
    pub overruns: u64,
    /// Triggers waiting to be polled (HANDSHAKE).
    pub pending_triggers: u64,
    /// Start of the last poll, UTC, ISO 8601 (SUBSCRIPTION: when the server was last heard).
    pub last_poll_time: Option<String>,
    /// How long the last poll took.
    pub last_poll_duration_ms: Option<f64>,
    /// The last read error, if the last poll failed.
    pub last_error: Option<String>,
}

struct Group {
    config: GroupConfig,
    plan: ReadPlan,
    trigger_plan: Option<ReadPlan>,
    state: Mutex<GroupState>,
    triggered: Condvar,
}

#[derive(Default)]
struct GroupState {
    running: bool,
    connected: bool,
    polls: u64,
    notifications: u64,
    errors: u64,
    overruns: u64,
    pending_triggers: u64,
    suppressed: u64,
    trigger_reads: u64,
    last_poll_time: Option<NaiveDateTime>,
    last_poll_duration: Option<Duration>,
    last_error: Option<String>,
}

struct Shared {
    groups: Vec<Group>,
    stopping: AtomicBool,
    /// Set when `stop` returns: a read that outlived the stop (an abandoned thread) must not
    /// hand values to a consumer that has moved on. Consumers hold the read side.
    closed: RwLock<bool>,
    /// Whether each group's thread is still running (set false by the thread as its last
    /// act), and a wake-up for `stop` when one ends. `JoinHandle::is_finished` would race:
    /// it turns true only after the thread's own teardown.
    live: Mutex<Vec<bool>>,
    ended: Condvar,
    consumer: Arc<dyn Consumer>,
    options: EngineOptions,
}

/// How long [`PollingEngine::stop`] waits for group threads before abandoning them.
pub const STOP_GRACE: Duration = Duration::from_millis(500);

/// What [`PollingEngine::stop_within`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StopOutcome {
    /// Groups whose threads ended in time.
    pub stopped: usize,
    /// Groups whose threads were still inside a driver call at the deadline: they are left
    /// to end on their own (detached), and whatever they read afterwards is discarded.
    pub abandoned: Vec<String>,
}

impl Group {
    fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Triggers and status from other threads (the HTTP API) while the engine runs.
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<Shared>,
}

impl EngineHandle {
    /// Asks a HANDSHAKE group for one poll.
    pub fn trigger(&self, group: &str) -> Result<(), TriggerError> {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return Err(TriggerError::Stopped);
        }
        let found = self
            .shared
            .groups
            .iter()
            .find(|g| g.config.name == group)
            .ok_or_else(|| TriggerError::UnknownGroup(group.to_owned()))?;
        if found.config.mode != Mode::Handshake {
            return Err(TriggerError::NotHandshake(group.to_owned()));
        }
        found.lock().pending_triggers += 1;
        found.triggered.notify_all();
        Ok(())
    }

    /// Every group's status, in configuration order.
    pub fn status(&self) -> Vec<GroupStatus> {
        self.shared.groups.iter().map(status_of).collect()
    }
}

fn status_of(group: &Group) -> GroupStatus {
    let state = group.lock();
    let config = &group.config;
    GroupStatus {
        name: config.name.clone(),
        mode: config.mode.name(),
        interval_ms: match config.mode {
            Mode::Fixed { interval } => Some(interval.as_millis() as u64),
            Mode::Subscription {
                publishing_interval,
                ..
            } => Some(publishing_interval.as_millis() as u64),
            Mode::Handshake => None,
        },
        plc_code: config.plc_code.to_string(),
        tag_count: config.tags.len(),
        requests_per_poll: group.plan.requests(),
        suppressed: state.suppressed,
        trigger_reads: state.trigger_reads,
        running: state.running,
        connected: state.connected,
        polls: state.polls,
        notifications: state.notifications,
        errors: state.errors,
        overruns: state.overruns,
        pending_triggers: state.pending_triggers,
        last_poll_time: state
            .last_poll_time
            .map(|t| tag_model::format_timestamp(t).to_string()),
        last_poll_duration_ms: state.last_poll_duration.map(|d| d.as_secs_f64() * 1000.0),
        last_error: state.last_error.clone(),
    }
}

/// Polls every configured group on its own thread and hands the values to a consumer.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use polling_engine::{PollingConfig, PollingEngine};
///
/// let config = PollingConfig::from_toml(r#"
///     [[plc]]
///     plc_code = "PLC01"
///     driver = "simulated"
///     [[group]]
///     name = "BUTTON"
///     mode = "HANDSHAKE"
///     plc_code = "PLC01"
///     tags = ["D100", "D101"]
/// "#, "inline").unwrap();
/// let received = Arc::new(Mutex::new(Vec::new()));
/// let sink = received.clone();
/// let engine = PollingEngine::new(&config, Arc::new(move |values| sink.lock().unwrap().extend(values)));
/// engine.start().unwrap();
/// engine.handle().trigger("BUTTON").unwrap();
/// while received.lock().unwrap().len() < 2 { std::thread::sleep(std::time::Duration::from_millis(5)); }
/// assert_eq!(engine.stop(), 1);
/// ```
pub struct PollingEngine {
    shared: Arc<Shared>,
    drivers: Mutex<Vec<Option<Box<dyn PlcDriver>>>>,
    threads: Mutex<Vec<(usize, JoinHandle<()>)>>,
}

impl PollingEngine {
    /// An engine with the built-in drivers, not yet polling.
    pub fn new(config: &PollingConfig, consumer: Arc<dyn Consumer>) -> Self {
        Self::with_options(config, consumer, EngineOptions::default())
    }

    /// An engine with the built-in drivers and these options, not yet polling.
    pub fn with_options(
        config: &PollingConfig,
        consumer: Arc<dyn Consumer>,
        options: EngineOptions,
    ) -> Self {
        Self::with_drivers(config, consumer, options, &builtin_driver)
    }

    /// An engine whose drivers come from `factory` (one per group).
    pub fn with_drivers(
        config: &PollingConfig,
        consumer: Arc<dyn Consumer>,
        options: EngineOptions,
        factory: &DriverFactory,
    ) -> Self {
        let mut drivers = Vec::new();
        let mut groups = Vec::new();
        for group in &config.groups {
            let plc = config.plcs.iter().find(|p| p.plc_code == group.plc_code);
            drivers.push(plc.map(factory));
            // Planned once here, not per poll.
            let (plan, trigger_plan) = match plc {
                Some(plc) => (
                    plc.driver.plan(&group.addresses()),
                    group
                        .handshake
                        .as_ref()
                        .map(|h| plc.driver.plan(std::slice::from_ref(&h.trigger))),
                ),
                None => (ReadPlan::new(0, ()), None),
            };
            groups.push(Group {
                config: group.clone(),
                plan,
                trigger_plan,
                state: Mutex::new(GroupState::default()),
                triggered: Condvar::new(),
            });
        }
        PollingEngine {
            shared: Arc::new(Shared {
                groups,
                stopping: AtomicBool::new(false),
                closed: RwLock::new(false),
                live: Mutex::new(vec![false; config.groups.len()]),
                ended: Condvar::new(),
                consumer,
                options,
            }),
            drivers: Mutex::new(drivers),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.shared.groups.len()
    }

    /// Starts one thread per group; logs `Started polling group: NAME (FIXED, 1000ms)`.
    pub fn start(&self) -> std::io::Result<()> {
        let drivers =
            std::mem::take(&mut *self.drivers.lock().unwrap_or_else(PoisonError::into_inner));
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        for (index, driver) in drivers.into_iter().enumerate() {
            let Some(driver) = driver else { continue };
            let shared = Arc::clone(&self.shared);
            let group = &shared.groups[index];
            group.lock().running = true;
            match group.config.mode {
                Mode::Fixed { interval } => log::info!(
                    "Started polling group: {} (FIXED, {}ms)",
                    group.config.name,
                    interval.as_millis()
                ),
                Mode::Handshake => {
                    log::info!("Started polling group: {} (HANDSHAKE)", group.config.name)
                }
                Mode::Subscription {
                    publishing_interval,
                    sampling_interval,
                } => log::info!(
                    "Started polling group: {} (SUBSCRIPTION, publishing {}ms, sampling {}ms)",
                    group.config.name,
                    publishing_interval.as_millis(),
                    sampling_interval.as_millis()
                ),
            }
            let name = format!("poll-{}", group.config.name);
            self.shared.lock_live()[index] = true;
            let spawned = std::thread::Builder::new().name(name).spawn(move || {
                run_group(&shared, index, driver);
                shared.lock_live()[index] = false;
                shared.ended.notify_all();
            });
            match spawned {
                Ok(handle) => threads.push((index, handle)),
                Err(error) => {
                    self.shared.lock_live()[index] = false;
                    self.shared.groups[index].lock().running = false;
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// A handle for triggers and status.
    pub fn handle(&self) -> EngineHandle {
        EngineHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops every group within [`STOP_GRACE`] and returns how many were running (see
    /// [`stop_within`](Self::stop_within)).
    pub fn stop(&self) -> usize {
        let outcome = self.stop_within(STOP_GRACE);
        outcome.stopped + outcome.abandoned.len()
    }

    /// Stops every group, waiting at most `grace` for their threads. A thread still inside a
    /// driver call at the deadline (a PLC that never answers) is abandoned: shutdown never
    /// waits on a PLC. Logs a warning per abandoned group.
    pub fn stop_within(&self, grace: Duration) -> StopOutcome {
        let deadline = Instant::now() + grace;
        self.shared.stopping.store(true, Ordering::SeqCst);
        for group in &self.shared.groups {
            let _state = group.lock();
            group.triggered.notify_all();
        }
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        let live = {
            let mut live = self.shared.lock_live();
            while live.iter().any(|&running| running) {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                live = self
                    .shared
                    .ended
                    .wait_timeout(live, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            live.clone()
        };
        *self
            .shared
            .closed
            .write()
            .unwrap_or_else(PoisonError::into_inner) = true;
        let mut outcome = StopOutcome::default();
        for (index, thread) in threads {
            if !live[index] {
                if thread.join().is_err() {
                    log::error!("A polling thread panicked");
                }
                outcome.stopped += 1;
            } else {
                let name = self.shared.groups[index].config.name.clone();
                log::warn!(
                    "Polling group {name} is still waiting for its PLC after {:.1} s; its \
                     thread is abandoned and whatever it reads is discarded",
                    grace.as_secs_f64()
                );
                outcome.abandoned.push(name);
                // Dropping the handle detaches the thread.
            }
        }
        outcome
    }
}

impl Shared {
    fn lock_live(&self) -> MutexGuard<'_, Vec<bool>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for PollingEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

fn builtin_driver(plc: &PlcConfig) -> Box<dyn PlcDriver> {
    plc.driver.open(&plc.plc_code)
}

/// A group's poller: its driver and connection state.
struct Poller<'a> {
    shared: &'a Shared,
    group: &'a Group,
    driver: Box<dyn PlcDriver>,
    connected: bool,
    next_connect: Instant,
    backoff: Duration,
    /// Why the link went down or the last connect failed (shown with "not connected" until a
    /// connect succeeds).
    connect_error: Option<String>,
    filter: ExceptionFilter,
}

fn run_group(shared: &Arc<Shared>, index: usize, driver: Box<dyn PlcDriver>) {
    let group = &shared.groups[index];
    let mut poller = Poller {
        shared,
        group,
        driver,
        connected: false,
        next_connect: Instant::now(),
        backoff: shared.options.reconnect_min,
        connect_error: None,
        filter: ExceptionFilter::new(&group.config.tags),
    };
    match group.config.mode {
        Mode::Fixed { interval } => run_fixed(&mut poller, interval),
        Mode::Handshake => run_handshake(&mut poller),
        Mode::Subscription {
            publishing_interval,
            sampling_interval,
        } => {
            let request = SubscriptionRequest {
                publishing_interval,
                sampling_interval,
                deadbands: group
                    .config
                    .tags
                    .iter()
                    .map(|t| t.report.deadband.map(|band| band / t.scale.abs()))
                    .collect(),
            };
            run_subscription(&mut poller, &request, subscription_sink(shared, index));
        }
    }
    poller.driver.disconnect();
    let mut state = group.lock();
    state.running = false;
    state.connected = false;
}

/// Polls on absolute deadlines start + k * interval: no drift; a deadline already past when a
/// poll ends is skipped and counted as an overrun, never caught up in a burst.
fn run_fixed(poller: &mut Poller<'_>, interval: Duration) {
    let group = poller.group;
    let start = Instant::now();
    let mut tick: u32 = 0;
    loop {
        let deadline = start + interval * tick;
        {
            let mut state = group.lock();
            loop {
                if poller.shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                state = group
                    .triggered
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        poller.poll();
        tick = tick.saturating_add(1);
        let next = start + interval * tick;
        let now = Instant::now();
        if now > next {
            let missed = ((now - next).as_nanos() / interval.as_nanos()) as u32 + 1;
            group.lock().overruns += u64::from(missed);
            tick = tick.saturating_add(missed);
        }
    }
}

/// How often a SUBSCRIPTION group checks its driver's link (and the stop flag).
const LINK_CHECK: Duration = Duration::from_millis(200);

/// A SUBSCRIPTION group: connect and subscribe; the driver's notifications go straight to the
/// consumer (see [`subscription_sink`]); this thread only watches the link. A lost link is
/// marked by one BAD value per tag at the time of the loss, then reconnected and subscribed
/// again with the engine's backoff.
fn run_subscription(poller: &mut Poller<'_>, request: &SubscriptionRequest, sink: SampleSink) {
    let group = poller.group;
    let mut subscribed = false;
    // One BAD value per tag marks each outage (not one per reconnect attempt).
    let mut outage_marked = false;
    loop {
        {
            let state = group.lock();
            if poller.shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            let _ = group
                .triggered
                .wait_timeout(state, LINK_CHECK)
                .unwrap_or_else(PoisonError::into_inner);
            if poller.shared.stopping.load(Ordering::SeqCst) {
                return;
            }
        }
        if subscribed {
            if let LinkState::Lost(reason) = poller.driver.link() {
                subscribed = false;
                poller.disconnect(&reason);
                poller.note_link(Some(reason));
                poller.mark_outage();
                outage_marked = true;
            }
            continue;
        }
        if !poller.ensure_connected() {
            if !outage_marked {
                poller.mark_outage();
                outage_marked = true;
            }
            let error = match &poller.connect_error {
                Some(why) => format!("not connected: {why}"),
                None => "not connected".to_owned(),
            };
            poller.note_link(Some(error));
            continue;
        }
        match poller
            .driver
            .subscribe(&group.plan, request, Arc::clone(&sink))
        {
            Ok(()) => {
                subscribed = true;
                outage_marked = false;
                log::info!(
                    "{}: subscribed to {} tags of PLC {}",
                    group.config.name,
                    group.config.tags.len(),
                    group.config.plc_code
                );
                poller.note_link(None);
            }
            Err(error) => {
                let text = format!("subscribing failed: {error}");
                poller.disconnect(&text);
                poller.note_link(Some(text));
                if !outage_marked {
                    poller.mark_outage();
                    outage_marked = true;
                }
            }
        }
    }
}

/// The stored value and quality of one sample of `tag`: scaled; BAD without a finite value.
fn stored(tag: &TagConfig, sample: &Sample) -> (Option<f64>, Quality) {
    match sample.value {
        Some(raw) if sample.quality != Quality::Bad => {
            let value = raw * tag.scale + tag.offset;
            if value.is_finite() {
                (Some(value), sample.quality)
            } else {
                (None, Quality::Bad)
            }
        }
        _ => (None, Quality::Bad),
    }
}

/// Where a SUBSCRIPTION group's driver delivers: each sample becomes one value, stamped with
/// its own time (the poll's, i.e. now, when the driver gives none). Called on the driver's
/// threads; values that arrive after [`PollingEngine::stop`] returned are discarded.
fn subscription_sink(shared: &Arc<Shared>, index: usize) -> SampleSink {
    let shared = Arc::clone(shared);
    Arc::new(move |samples: Vec<(usize, Sample)>| {
        let group = &shared.groups[index];
        let config = &group.config;
        let now = shared.options.timestamp_zone.now();
        let mut values = Vec::with_capacity(samples.len());
        for (at, sample) in &samples {
            let Some(tag) = config.tags.get(*at) else {
                continue;
            };
            let (value, quality) = stored(tag, sample);
            match TagValue::new(
                sample.timestamp.unwrap_or(now),
                Arc::clone(&config.plc_code),
                Arc::clone(tag.address.text()),
                value,
                quality,
            ) {
                Ok(value) => values.push(value),
                Err(error) => log::error!("{}: {error}", config.name),
            }
        }
        let received = values.len() as u64;
        {
            let closed = shared.closed.read().unwrap_or_else(PoisonError::into_inner);
            if *closed {
                return;
            }
            if !values.is_empty() {
                shared.consumer.consume(values);
            }
        }
        let mut state = group.lock();
        state.polls += 1;
        state.notifications += received;
        state.last_poll_time = Some(now);
    })
}

fn run_handshake(poller: &mut Poller<'_>) {
    let group = poller.group;
    let trigger_poll = group.config.handshake.as_ref().map(|h| h.trigger_poll);
    let start = Instant::now();
    let mut tick: u32 = 1;
    // The trigger as last read: a read happens on a rising edge only, so a trigger that
    // stays set does not re-read in a loop. Unknown (None) until read once; a trigger found
    // already set at start counts as a rising edge (the PLC is waiting for us).
    let mut trigger_was_set: Option<bool> = None;
    loop {
        let mut api_trigger = false;
        {
            let mut state = group.lock();
            loop {
                if poller.shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                if state.pending_triggers > 0 {
                    state.pending_triggers -= 1;
                    api_trigger = true;
                    break;
                }
                match trigger_poll {
                    None => {
                        state = group
                            .triggered
                            .wait(state)
                            .unwrap_or_else(PoisonError::into_inner)
                    }
                    Some(every) => {
                        let deadline = start + every * tick;
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        state = group
                            .triggered
                            .wait_timeout(state, deadline - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                }
            }
        }
        if api_trigger {
            poller.poll();
            continue;
        }
        // Time to read the PLC's trigger; the next read is one period later, never a burst.
        if let Some(every) = trigger_poll {
            let elapsed = start.elapsed();
            tick = (elapsed.as_nanos() / every.as_nanos()) as u32 + 1;
        }
        let Some(set) = poller.read_trigger() else {
            trigger_was_set = None;
            continue;
        };
        let rising = set && trigger_was_set != Some(true);
        let falling = !set && trigger_was_set == Some(true);
        trigger_was_set = Some(set);
        if rising {
            // Having reset the trigger ourselves, the PLC's next set is a new rising edge
            // even if no read in between saw it at 0.
            if poller.poll() && poller.answer_trigger() {
                trigger_was_set = Some(false);
            }
        } else if falling {
            poller.clear_ack();
        }
    }
}

impl Poller<'_> {
    /// Connects when not connected and the backoff allows it; whether connected.
    fn ensure_connected(&mut self) -> bool {
        let config = &self.group.config;
        if !self.connected && Instant::now() >= self.next_connect {
            match self.driver.connect() {
                Ok(()) => {
                    if self.backoff > self.shared.options.reconnect_min {
                        log::info!("{}: PLC {} connected again", config.name, config.plc_code);
                    }
                    self.connected = true;
                    self.backoff = self.shared.options.reconnect_min;
                    self.connect_error = None;
                }
                Err(error) => self.schedule_reconnect(&error.to_string()),
            }
        }
        self.connected
    }

    /// Reads the handshake trigger: Some(set) or None when the read failed.
    fn read_trigger(&mut self) -> Option<bool> {
        let plan = self.group.trigger_plan.as_ref()?;
        if !self.ensure_connected() {
            return None;
        }
        {
            let mut state = self.group.lock();
            state.trigger_reads += 1;
            state.connected = true;
        }
        let result = self.driver.read(plan);
        match result {
            Ok(values) => match values.first() {
                Some(Ok(value)) => Some(*value != 0.0),
                Some(Err(error)) => {
                    self.note_failure(error);
                    None
                }
                None => {
                    self.disconnect("the driver answered no value for the trigger");
                    None
                }
            },
            Err(error) => {
                self.note_failure(&error);
                None
            }
        }
    }

    /// After a read on a rising trigger: writes the ack, or resets the trigger; whether the
    /// trigger was reset.
    fn answer_trigger(&mut self) -> bool {
        let Some(handshake) = &self.group.config.handshake else {
            return false;
        };
        let (address, value, resets) = match &handshake.answer {
            HandshakeAnswer::Ack(ack) => (ack.clone(), 1.0, false),
            HandshakeAnswer::ResetTrigger => (handshake.trigger.clone(), 0.0, true),
            HandshakeAnswer::None => return false,
        };
        match self.driver.write(&address, value) {
            Ok(()) => resets,
            Err(error) => {
                self.note_failure(&error);
                false
            }
        }
    }

    /// The PLC reset its trigger: the ack goes back to 0, ready for the next cycle.
    fn clear_ack(&mut self) {
        let Some(handshake) = &self.group.config.handshake else {
            return;
        };
        if let HandshakeAnswer::Ack(ack) = &handshake.answer {
            let ack = ack.clone();
            if let Err(error) = self.driver.write(&ack, 0.0) {
                self.note_failure(&error);
            }
        }
    }

    /// A SUBSCRIPTION group's link state in its status. The link is checked every
    /// [`LINK_CHECK`]; an error counts when it starts or changes, not at every check.
    fn note_link(&mut self, error: Option<String>) {
        let mut state = self.group.lock();
        if error.is_some() && state.last_error != error {
            state.errors += 1;
        }
        state.connected = self.connected && error.is_none();
        state.last_error = error;
    }

    /// One BAD value per tag, now: the outage is visible in the stored data.
    fn mark_outage(&mut self) {
        let config = &self.group.config;
        let now = self.shared.options.timestamp_zone.now();
        let values: Vec<TagValue> = config
            .tags
            .iter()
            .filter_map(|tag| {
                TagValue::new(
                    now,
                    Arc::clone(&config.plc_code),
                    Arc::clone(tag.address.text()),
                    None,
                    Quality::Bad,
                )
                .ok()
            })
            .collect();
        let closed = self
            .shared
            .closed
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if !*closed && !values.is_empty() {
            self.shared.consumer.consume(values);
        }
    }

    /// A failed trigger read or handshake write: logged, counted, and a reconnect when the
    /// connection is the problem.
    fn note_failure(&mut self, error: &DriverError) {
        let text = error.to_string();
        {
            let mut state = self.group.lock();
            state.errors += 1;
            state.last_error = Some(text.clone());
        }
        if error.needs_reconnect() {
            if self.connected {
                self.disconnect(&text);
            }
        } else {
            log::warn!(
                "{}: PLC {} refused a handshake request: {text}",
                self.group.config.name,
                self.group.config.plc_code
            );
        }
    }

    /// One poll of the group's tags; whether every value was read.
    fn poll(&mut self) -> bool {
        let group = self.group;
        let config = &group.config;
        let timestamp = self.shared.options.timestamp_zone.now();
        let started = Instant::now();
        let read = if self.ensure_connected() {
            self.driver.read_samples(&group.plan)
        } else {
            Err(DriverError::new(match &self.connect_error {
                Some(why) => format!("PLC {} not connected: {why}", config.plc_code),
                None => format!("PLC {} not connected", config.plc_code),
            }))
        };
        let previous = group.lock().last_error.clone();
        let (results, failure) = match read {
            Ok(results) if results.len() == config.tags.len() => {
                let failure = results.iter().zip(&config.tags).find_map(|(r, tag)| {
                    r.as_ref()
                        .err()
                        .map(|e| format!("{}: {e}", tag.address.text()))
                });
                // Logged when it starts or changes, not on every poll.
                if let Some(text) = failure.as_ref().filter(|&f| previous.as_ref() != Some(f)) {
                    let bad = results.iter().filter(|r| r.is_err()).count();
                    log::warn!(
                        "{}: PLC {} refused part of the read ({bad} of {} tags stored as BAD): \
                         {text}",
                        config.name,
                        config.plc_code,
                        results.len()
                    );
                }
                (results, failure)
            }
            Ok(results) => {
                let error = format!(
                    "the driver answered {} values for {} addresses",
                    results.len(),
                    config.tags.len()
                );
                self.disconnect(&error);
                (Vec::new(), Some(error))
            }
            Err(error) => {
                let text = error.to_string();
                if !error.needs_reconnect() {
                    if previous.as_ref() != Some(&text) {
                        log::warn!(
                            "{}: PLC {} refused the read: {text}; values are stored as BAD",
                            config.name,
                            config.plc_code
                        );
                    }
                } else if self.connected {
                    self.disconnect(&text);
                }
                (Vec::new(), Some(text))
            }
        };
        let now = Instant::now();
        let mut values = Vec::with_capacity(config.tags.len());
        let mut suppressed = 0u64;
        for (index, tag) in config.tags.iter().enumerate() {
            let (value, quality, measured) = match results.get(index) {
                Some(Ok(sample)) => {
                    let (value, quality) = stored(tag, sample);
                    (value, quality, sample.timestamp)
                }
                _ => (None, Quality::Bad, None),
            };
            if !self.filter.passes(index, value, quality, now) {
                suppressed += 1;
                continue;
            }
            match TagValue::new(
                measured.unwrap_or(timestamp),
                Arc::clone(&config.plc_code),
                Arc::clone(tag.address.text()),
                value,
                quality,
            ) {
                Ok(value) => values.push(value),
                // Codes and addresses were validated with the configuration.
                Err(error) => log::error!("{}: {error}", config.name),
            }
        }
        let complete = failure.is_none();
        {
            let closed = self
                .shared
                .closed
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if *closed {
                log::warn!(
                    "{}: {} values read after the engine stopped are discarded",
                    config.name,
                    values.len()
                );
                return complete;
            }
            if !values.is_empty() {
                self.shared.consumer.consume(values);
            }
        }
        let mut state = self.group.lock();
        state.polls += 1;
        state.suppressed += suppressed;
        state.connected = self.connected;
        if failure.is_some() {
            state.errors += 1;
        }
        state.last_error = failure;
        state.last_poll_time = Some(timestamp);
        state.last_poll_duration = Some(started.elapsed());
        complete
    }

    fn disconnect(&mut self, error: &str) {
        self.driver.disconnect();
        self.connected = false;
        self.group.lock().connected = false;
        self.schedule_reconnect(error);
    }

    fn schedule_reconnect(&mut self, error: &str) {
        let config = &self.group.config;
        log::warn!(
            "{}: PLC {} read failed: {error}; values are stored as BAD, reconnecting in {:.1} s",
            config.name,
            config.plc_code,
            self.backoff.as_secs_f64()
        );
        self.next_connect = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.shared.options.reconnect_max);
        self.connect_error = Some(error.to_owned());
    }
}
