//! Where the writer takes values from: the in-memory ring buffer (the spec's design) or the
//! durable log (BUFFER_DURABILITY=disk).

use std::sync::Arc;
use std::time::Duration;

use durable_log::{Claim, DurableLog, TagValueCodec};
use ringbuf_core::{RingBuffer, Wait};
use tag_model::TagValue;

/// The durable log of tag values.
pub type TagLog = DurableLog<TagValueCodec>;

/// The writer's source of values.
#[derive(Clone)]
pub enum Intake {
    /// A bounded ring buffer: a full buffer displaces its oldest value (counted as
    /// overflow); values in it, and batches being written, are lost if the process dies.
    Memory(Arc<RingBuffer<TagValue>>),
    /// A durable log: values are on disk before they are handed out, a batch is settled in
    /// the log only once written, backed up or rejected, and what is unsettled at a crash is
    /// handed out again at the next start.
    Durable(Arc<TagLog>),
}

impl From<Arc<RingBuffer<TagValue>>> for Intake {
    fn from(buffer: Arc<RingBuffer<TagValue>>) -> Self {
        Intake::Memory(buffer)
    }
}

impl From<Arc<TagLog>> for Intake {
    fn from(log: Arc<TagLog>) -> Self {
        Intake::Durable(log)
    }
}

impl Intake {
    /// The ring buffer, in memory mode.
    pub fn ring(&self) -> Option<&Arc<RingBuffer<TagValue>>> {
        match self {
            Intake::Memory(buffer) => Some(buffer),
            Intake::Durable(_) => None,
        }
    }

    /// The durable log, in disk mode.
    pub fn log(&self) -> Option<&Arc<TagLog>> {
        match self {
            Intake::Memory(_) => None,
            Intake::Durable(log) => Some(log),
        }
    }

    pub(crate) fn wait_for(&self, threshold: usize, timeout: Duration) -> Wait {
        match self {
            Intake::Memory(buffer) => buffer.wait_for(threshold, timeout),
            Intake::Durable(log) => match log.wait_for(threshold, timeout) {
                durable_log::Wait::Ready => Wait::Ready,
                durable_log::Wait::TimedOut => Wait::TimedOut,
                durable_log::Wait::Closed => Wait::Closed,
            },
        }
    }

    /// Drains up to `max` values; in disk mode also their claim, to settle once they are.
    pub(crate) fn drain_into(&self, out: &mut Vec<TagValue>, max: usize) -> (usize, Option<Claim>) {
        match self {
            Intake::Memory(buffer) => (buffer.drain_into(out, max), None),
            Intake::Durable(log) => {
                let before = out.len();
                let claim = log.drain_into(out, max);
                (out.len() - before, claim)
            }
        }
    }

    /// Values waiting to be drained.
    pub fn len(&self) -> usize {
        match self {
            Intake::Memory(buffer) => buffer.len(),
            Intake::Durable(log) => {
                let stats = log.stats();
                usize::try_from(stats.pending + stats.unread).unwrap_or(usize::MAX)
            }
        }
    }

    /// Whether nothing waits to be drained.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values displaced (by a full buffer, or by the log's byte cap).
    pub fn overflow_count(&self) -> u64 {
        match self {
            Intake::Memory(buffer) => buffer.overflow_count(),
            Intake::Durable(log) => log.stats().overflow,
        }
    }

    pub(crate) fn close(&self) {
        match self {
            Intake::Memory(buffer) => buffer.close(),
            Intake::Durable(log) => log.close_appends(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Intake::Memory(buffer) => buffer.is_closed(),
            Intake::Durable(log) => log.is_closed(),
        }
    }

    pub(crate) fn settle(&self, claim: Claim) {
        if let Intake::Durable(log) = self {
            log.settle(claim);
        }
    }
}
