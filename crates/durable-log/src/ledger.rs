//! Which value ids are settled, when batches settle out of order on several writer threads.
//!
//! Ids are handed out in order, so the settled ids are almost always one prefix `..floor`
//! plus a few ranges above it (batches that finished before an older one). The set stores
//! exactly that: memory grows with the number of batches in flight, not with the log.

use std::collections::BTreeMap;
use std::ops::Range;

/// A set of settled ids: everything below `floor`, plus disjoint, non-adjacent ranges above.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SettledSet {
    floor: u64,
    /// start -> end; every start > floor, and no range touches another or the floor.
    ranges: BTreeMap<u64, u64>,
}

impl SettledSet {
    /// A set where every id below `floor` is settled.
    pub(crate) fn new(floor: u64) -> Self {
        SettledSet {
            floor,
            ranges: BTreeMap::new(),
        }
    }

    /// Every id below this is settled.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// Ranges kept above the floor (for the memory bound).
    pub(crate) fn fragments(&self) -> usize {
        self.ranges.len()
    }

    /// The ranges above the floor, in order.
    pub(crate) fn ranges(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.ranges.iter().map(|(&start, &end)| start..end)
    }

    /// Marks `range` settled (overlaps with what is already settled are fine).
    pub(crate) fn insert(&mut self, range: Range<u64>) {
        let mut start = range.start.max(self.floor);
        let mut end = range.end;
        if start >= end {
            return;
        }
        // Merge with a range that starts before and reaches `start`.
        if let Some((&before_start, &before_end)) = self.ranges.range(..=start).next_back() {
            if before_end >= start {
                start = before_start;
                end = end.max(before_end);
                self.ranges.remove(&before_start);
            }
        }
        // Swallow ranges that start inside [start, end].
        while let Some((&next_start, &next_end)) = self.ranges.range(start..).next() {
            if next_start > end {
                break;
            }
            end = end.max(next_end);
            self.ranges.remove(&next_start);
        }
        if start <= self.floor {
            self.floor = end;
            // The floor may now touch the next range.
            while let Some((&next_start, &next_end)) = self.ranges.iter().next() {
                if next_start > self.floor {
                    break;
                }
                self.floor = self.floor.max(next_end);
                self.ranges.remove(&next_start);
            }
        } else {
            self.ranges.insert(start, end);
        }
    }

    /// Whether `id` is settled.
    pub(crate) fn contains(&self, id: u64) -> bool {
        if id < self.floor {
            return true;
        }
        self.ranges
            .range(..=id)
            .next_back()
            .is_some_and(|(_, &end)| id < end)
    }

    /// How many ids of `range` are settled.
    pub(crate) fn count_in(&self, range: Range<u64>) -> u64 {
        if range.start >= range.end {
            return 0;
        }
        let mut count = self.floor.min(range.end).saturating_sub(range.start);
        let from = range.start.max(self.floor);
        if from >= range.end {
            return count;
        }
        // A range that starts before `from` may reach into it.
        if let Some((_, &end)) = self.ranges.range(..from).next_back() {
            count += end.min(range.end).saturating_sub(from);
        }
        for (&start, &end) in self.ranges.range(from..range.end) {
            count += end.min(range.end) - start;
        }
        count
    }

    /// Whether every id of `range` is settled.
    #[cfg(test)]
    pub(crate) fn covers(&self, range: Range<u64>) -> bool {
        self.count_in(range.clone()) == range.end.saturating_sub(range.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn out_of_order_batches_advance_the_floor_once_the_gap_closes() {
        let mut set = SettledSet::new(0);
        set.insert(500..1000);
        set.insert(1500..2000);
        assert_eq!(set.floor(), 0);
        assert_eq!(set.fragments(), 2);
        set.insert(0..500);
        assert_eq!(set.floor(), 1000);
        set.insert(1000..1500);
        assert_eq!(set.floor(), 2000);
        assert_eq!(set.fragments(), 0);
    }

    #[test]
    fn counts_and_contains() {
        let mut set = SettledSet::new(10);
        set.insert(20..30);
        set.insert(40..45);
        assert!(set.contains(9) && !set.contains(10) && set.contains(20) && !set.contains(30));
        assert_eq!(set.count_in(0..50), 10 + 10 + 5);
        assert_eq!(set.count_in(25..42), 5 + 2);
        assert_eq!(set.count_in(30..40), 0);
        assert!(set.covers(20..30) && !set.covers(19..30));
        assert!(set.covers(5..5));
    }

    /// Random inserts against a plain set of ids.
    #[test]
    fn matches_a_plain_set() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            let mut set = SettledSet::new(0);
            let mut model = BTreeSet::new();
            for _ in 0..30 {
                let start = rng.u64(0..200);
                let len = rng.u64(0..20);
                set.insert(start..start + len);
                model.extend(start..start + len);
                let floor = (0..).find(|id| !model.contains(id)).unwrap();
                assert_eq!(set.floor(), floor);
                for _ in 0..10 {
                    let a = rng.u64(0..230);
                    let b = a + rng.u64(0..40);
                    let expected = (a..b).filter(|id| model.contains(id)).count() as u64;
                    assert_eq!(set.count_in(a..b), expected, "{a}..{b} in {set:?}");
                    assert_eq!(set.contains(a), model.contains(&a));
                }
            }
            // Disjoint and non-adjacent.
            let mut last_end = set.floor();
            for (&start, &end) in &set.ranges {
                assert!(start > last_end && end > start, "{set:?}");
                last_end = end;
            }
        }
    }
}
