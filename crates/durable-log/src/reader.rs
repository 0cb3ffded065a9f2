//! Handing values out in order, settling them in any order, and the byte cap.
//!
//! One cursor reads synced records in id order under the reader lock and hands out claims:
//! contiguous id ranges. Writer threads settle claims whenever they finish, in any order;
//! the ledger keeps the settled ids as a floor plus the few ranges above it, and a segment is
//! deleted once the floor has passed its last id.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::codec::Codec;
use crate::options::{Claim, Corruption, CorruptionKind, Wait};
use crate::record::RecordKind;
use crate::segment::{segment_name, Cursor, Step, SEGMENT_HEADER_LEN};
use crate::state::{lock, Counters, Inner, ReaderState};
use crate::writer::now_micros;

impl<C: Codec> Inner<C> {
    pub(crate) fn wait_for(&self, threshold: usize, timeout: Duration) -> Wait {
        let deadline = Instant::now() + timeout;
        let mut guard = lock(&self.ready);
        loop {
            let unread = Counters::get(&self.counters.unread);
            if unread >= threshold as u64 {
                return Wait::Ready;
            }
            if self.closed.load(Ordering::SeqCst)
                && Counters::get(&self.counters.pending) == 0
                && unread == 0
            {
                return Wait::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Wait::TimedOut;
            }
            guard = self
                .ready_changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    pub(crate) fn drain_into(&self, out: &mut Vec<C::Item>, max: usize) -> Option<Claim> {
        if max == 0 {
            return None;
        }
        let mut reader = lock(&self.reader);
        let start = reader.claimed_upto;
        let mut taken = 0;
        let mut last = None;
        let mut oldest_micros = None;
        while taken < max {
            if let Some((id, item)) = reader.decoded.pop_front() {
                out.push(item);
                last = Some(id);
                oldest_micros.get_or_insert(reader.decoded_micros);
                taken += 1;
                continue;
            }
            if !self.read_next(&mut reader) {
                break;
            }
        }
        let end = last? + 1;
        reader.claimed_upto = end;
        Counters::sub(&self.counters.unread, taken as u64);
        Counters::add(&self.counters.in_flight, taken as u64);
        lock(&self.ledger)
            .claims
            .insert(start, (end, oldest_micros.unwrap_or_else(now_micros)));
        Some(Claim {
            start,
            end,
            count: taken,
        })
    }

    pub(crate) fn settle(&self, claim: Claim) {
        let mut ledger = lock(&self.ledger);
        ledger.claims.remove(&claim.start);
        ledger.settled.insert(claim.start..claim.end);
        ledger.dirty = true;
        drop(ledger);
        Counters::sub(&self.counters.in_flight, claim.count as u64);
        Counters::add(&self.counters.settled, claim.count as u64);
    }

    /// Ids found missing or unreadable after open: settled, and counted as lost if they were
    /// not settled already.
    fn lose(&self, range: std::ops::Range<u64>) -> u64 {
        if range.start >= range.end {
            return 0;
        }
        let mut ledger = lock(&self.ledger);
        let lost = (range.end - range.start) - ledger.settled.count_in(range.clone());
        ledger.settled.insert(range);
        drop(ledger);
        Counters::sub(&self.counters.unread, lost);
        Counters::add(&self.counters.lost_to_damage, lost);
        lost
    }

    /// Reads records until at least one value is decoded; `false` when nothing more is
    /// readable now.
    fn read_next(&self, reader: &mut ReaderState<C::Item>) -> bool {
        loop {
            let current = {
                let table = lock(&self.table);
                match (reader.segment, reader.cursor.is_some()) {
                    (Some(number), true) => table
                        .get(number)
                        .map(|info| (info.number, info.readable_len, info.finished, info.end_id)),
                    _ => None,
                }
            };
            let Some((number, limit, finished, end_id)) = current else {
                // Not reading a segment (or it was displaced): open the next one.
                reader.cursor = None;
                let next = {
                    let table = lock(&self.table);
                    table
                        .segments
                        .iter()
                        .find(|info| reader.segment.is_none_or(|done| info.number > done))
                        .map(|info| (info.number, info.finished, info.end_id))
                };
                let Some((number, finished, end_id)) = next else {
                    return false;
                };
                match self.fs.open_read(&self.segment_path(number)) {
                    Ok(file) => {
                        reader.segment = Some(number);
                        reader.cursor = Some(Cursor::new(file, SEGMENT_HEADER_LEN as u64));
                        reader.read_error_logged = false;
                    }
                    Err(error) if finished => {
                        self.report_damage(Corruption {
                            segment: number,
                            offset: 0,
                            len: 0,
                            kind: CorruptionKind::Unreadable(error.to_string()),
                        });
                        reader.segment = Some(number);
                        let from = reader.read_upto;
                        self.lose(from..end_id);
                        reader.read_upto = reader.read_upto.max(end_id);
                    }
                    Err(error) => {
                        self.log_read_error(reader, number, &error);
                        return false;
                    }
                }
                continue;
            };
            let Some(cursor) = reader.cursor.as_mut() else {
                continue;
            };
            let step = match cursor.next(limit, finished) {
                Ok(step) => step,
                Err(error) if finished => {
                    let offset = cursor.offset();
                    self.report_damage(Corruption {
                        segment: number,
                        offset,
                        len: limit.saturating_sub(offset),
                        kind: CorruptionKind::Unreadable(error.to_string()),
                    });
                    reader.cursor = None;
                    let from = reader.read_upto;
                    self.lose(from..end_id);
                    reader.read_upto = reader.read_upto.max(end_id);
                    continue;
                }
                Err(error) => {
                    self.log_read_error(reader, number, &error);
                    return false;
                }
            };
            match step {
                Step::End if finished => {
                    reader.cursor = None;
                    let from = reader.read_upto;
                    self.lose(from..end_id);
                    reader.read_upto = reader.read_upto.max(end_id);
                }
                Step::End => return false,
                Step::Damaged {
                    offset,
                    len,
                    error,
                    header,
                } => {
                    let kind = match error {
                        crate::record::RecordError::BadPayloadChecksum { .. } => {
                            CorruptionKind::BadChecksum
                        }
                        _ => CorruptionKind::BadHeader,
                    };
                    self.report_damage(Corruption {
                        segment: number,
                        offset,
                        len,
                        kind,
                    });
                    reader.damaged_since_record = true;
                    // An intact header says which values were lost.
                    if let Some(header) = header.filter(|h| h.kind == RecordKind::Values) {
                        let end = header.end_id();
                        if end > reader.read_upto {
                            let from = header.first_id.max(reader.read_upto);
                            let gap = reader.read_upto..from;
                            self.lose(gap);
                            self.lose(from..end);
                            reader.read_upto = end;
                            reader.damaged_since_record = false;
                        }
                    }
                }
                Step::TornTail { offset, len } => {
                    reader.damaged_since_record = true;
                    self.report_damage(Corruption {
                        segment: number,
                        offset,
                        len,
                        kind: CorruptionKind::TornTail,
                    });
                }
                Step::Record {
                    offset,
                    header,
                    payload,
                } => {
                    if header.kind != RecordKind::Values {
                        continue;
                    }
                    let first = header.first_id;
                    let end = header.end_id();
                    if end <= reader.read_upto {
                        // A second copy (written again after a failed sync).
                        continue;
                    }
                    let from = first.max(reader.read_upto);
                    let (all_settled, some_settled) = {
                        let ledger = lock(&self.ledger);
                        let settled = ledger.settled.count_in(from..end);
                        (settled == end - from, settled > 0)
                    };
                    let decoded = if all_settled {
                        None
                    } else {
                        reader.scratch.clear();
                        let count = header.count as usize;
                        Some(
                            self.codec
                                .decode(payload, count, &mut reader.scratch)
                                .and_then(|()| {
                                    if reader.scratch.len() == count {
                                        Ok(())
                                    } else {
                                        Err(crate::codec::DecodeError(format!(
                                            "{} values decoded, {count} expected",
                                            reader.scratch.len()
                                        )))
                                    }
                                }),
                        )
                    };
                    if first > reader.read_upto {
                        let gap = reader.read_upto..first;
                        let lost = self.lose(gap);
                        if lost > 0 && !reader.damaged_since_record {
                            self.report_damage(Corruption {
                                segment: number,
                                offset,
                                len: 0,
                                kind: CorruptionKind::MissingValues { values: lost },
                            });
                        }
                    }
                    reader.read_upto = end;
                    reader.damaged_since_record = false;
                    reader.last_micros = Some(header.appended_at_micros);
                    match decoded {
                        None => {}
                        Some(Err(error)) => {
                            reader.scratch.clear();
                            self.report_damage(Corruption {
                                segment: number,
                                offset,
                                len: header.record_len() as u64,
                                kind: CorruptionKind::Undecodable(error.0),
                            });
                            self.lose(from..end);
                        }
                        Some(Ok(())) => {
                            let ledger = some_settled.then(|| lock(&self.ledger));
                            let ReaderState {
                                scratch, decoded, ..
                            } = &mut *reader;
                            for (id, item) in (first..).zip(scratch.drain(..)) {
                                let skip = id < from
                                    || ledger
                                        .as_ref()
                                        .is_some_and(|ledger| ledger.settled.contains(id));
                                if !skip {
                                    decoded.push_back((id, item));
                                }
                            }
                            drop(ledger);
                            reader.decoded_micros = header.appended_at_micros;
                            if !reader.decoded.is_empty() {
                                return true;
                            }
                        }
                    }
                }
            }
        }
    }

    fn log_read_error(
        &self,
        reader: &mut ReaderState<C::Item>,
        number: u64,
        error: &std::io::Error,
    ) {
        if !reader.read_error_logged {
            reader.read_error_logged = true;
            log::error!(
                "Durable log: cannot read segment {}: {error}; trying again",
                segment_name(number)
            );
        }
    }

    /// Drops the oldest segment to stay under the byte cap: its values not yet handed out
    /// count as overflow. Values already handed out stay with their writer.
    pub(crate) fn displace(&self, number: u64) {
        let mut reader = lock(&self.reader);
        let mut ledger = lock(&self.ledger);
        let info = {
            let mut table = lock(&self.table);
            let Some(position) = table.segments.iter().position(|info| info.number == number)
            else {
                return;
            };
            let Some(info) = table.segments.remove(position) else {
                return;
            };
            table.total_bytes = table.total_bytes.saturating_sub(info.file_len);
            info
        };
        if reader.segment == Some(number) || reader.segment.is_none() {
            reader.cursor = None;
            reader.decoded.clear();
            reader.segment = Some(number);
        }
        // Every id below the oldest segment's end that is not claimed is in it.
        let from = reader.claimed_upto;
        let to = info.end_id;
        let lost = if to > from {
            (to - from) - ledger.settled.count_in(from..to)
        } else {
            0
        };
        if to > from {
            ledger.settled.insert(from..to);
            reader.claimed_upto = to;
        }
        reader.read_upto = reader.read_upto.max(to);
        drop(ledger);
        drop(reader);
        Counters::sub(&self.counters.unread, lost);
        Counters::add(&self.counters.overflow, lost);
        let path = self.segment_path(number);
        if let Err(error) = self.fs.remove(&path) {
            log::error!(
                "Durable log: cannot delete displaced segment {}: {error}",
                path.display()
            );
        }
        log::warn!(
            "Durable log reached its cap of {} bytes: displaced the oldest segment {} with {lost} \
             value(s) not yet written (counted as overflow)",
            self.options.max_bytes,
            segment_name(number)
        );
    }

    /// When the oldest value not yet settled was appended (microseconds since 1970).
    pub(crate) fn oldest_unsettled_micros(&self) -> Option<i64> {
        let reader = lock(&self.reader);
        let ledger = lock(&self.ledger);
        let claimed = ledger.claims.values().map(|(_, micros)| *micros).min();
        let unread = if !reader.decoded.is_empty() {
            Some(reader.decoded_micros)
        } else if Counters::get(&self.counters.unread) > 0 {
            reader.last_micros.or_else(|| {
                lock(&self.table)
                    .segments
                    .iter()
                    .find_map(|info| info.first_micros)
            })
        } else {
            None
        };
        match (claimed, unread) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
