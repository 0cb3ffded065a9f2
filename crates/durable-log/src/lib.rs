#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod codec;
pub mod io;
mod ledger;
mod log;
mod options;
mod reader;
pub mod record;
mod recovery;
pub mod segment;
mod state;
mod tag_codec;
mod writer;

pub use codec::{BytesCodec, Codec, DecodeError};
pub use log::DurableLog;
pub use options::{
    AppendError, Appended, Claim, Corruption, CorruptionKind, LogOptions, LogStats, OpenError,
    Recovery, SyncError, SyncTicket, Wait, MAX_SYNC_INTERVAL, MIN_MAX_BYTES,
};
pub use segment::segment_name;
pub use tag_codec::TagValueCodec;
