//! A fixed log-linear latency histogram in microseconds: exact below 16 µs, then eight bins
//! per power of two (at most 6.25 % from the true value at the bin's midpoint), up to
//! 2^32 µs (71 minutes); longer latencies share the last bin.

/// Values below this are counted exactly.
const LINEAR: u64 = 16;
const SUB_BITS: u32 = 3;
const SUBS: u64 = 1 << SUB_BITS;
/// Highest power of two with bins of its own.
const MAX_EXP: u32 = 31;
/// Number of bins.
pub(crate) const BINS: usize = LINEAR as usize + (MAX_EXP as usize - 3) * SUBS as usize;

/// The bin that counts a latency of `micros`.
pub(crate) fn bin_of(micros: u64) -> usize {
    if micros < LINEAR {
        return micros as usize;
    }
    let exp = 63 - micros.leading_zeros();
    if exp > MAX_EXP {
        return BINS - 1;
    }
    let sub = (micros >> (exp - SUB_BITS)) & (SUBS - 1);
    LINEAR as usize + (exp as usize - 4) * SUBS as usize + sub as usize
}

/// The smallest and one past the largest value counted in `bin`.
pub(crate) fn bin_range(bin: usize) -> (u64, u64) {
    if bin < LINEAR as usize {
        return (bin as u64, bin as u64 + 1);
    }
    let offset = (bin - LINEAR as usize) as u64;
    let exp = offset / SUBS + 4;
    let sub = offset % SUBS;
    let width = 1u64 << (exp - u64::from(SUB_BITS));
    let low = (1u64 << exp) + sub * width;
    (low, low + width)
}

/// The value reported for the `quantile` (0..=1) of a histogram holding `total` values:
/// the midpoint of the bin where the rank falls, never above the exact `max`, which is also
/// the answer for the top rank.
pub(crate) fn quantile(hist: &[u64; BINS], total: u64, quantile: f64, max: u64) -> u64 {
    if total == 0 {
        return 0;
    }
    let rank = ((quantile * total as f64).ceil() as u64).clamp(1, total);
    if rank == total {
        return max;
    }
    let mut seen = 0;
    for (bin, &count) in hist.iter().enumerate() {
        seen += count;
        if seen >= rank {
            let (low, high) = bin_range(bin);
            return ((low + high - 1) / 2).min(max);
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_contiguous_and_cover_every_value() {
        let mut expected_low = 0;
        for bin in 0..BINS {
            let (low, high) = bin_range(bin);
            assert_eq!(low, expected_low, "bin {bin}");
            assert!(high > low);
            assert_eq!(bin_of(low), bin);
            assert_eq!(bin_of(high - 1), bin);
            expected_low = high;
        }
        assert_eq!(expected_low, 1 << (MAX_EXP + 1));
        assert_eq!(bin_of(u64::MAX), BINS - 1);
    }

    #[test]
    fn midpoints_are_within_a_sixteenth_of_any_value_in_the_bin() {
        for bin in LINEAR as usize..BINS {
            let (low, high) = bin_range(bin);
            let mid = (low + high - 1) / 2;
            for value in [low, high - 1] {
                let error = (mid as f64 - value as f64).abs() / value as f64;
                assert!(error <= 0.0625, "bin {bin}: {value} vs {mid}");
            }
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut hist = [0u64; BINS];
        // 1..=1000 µs, one each.
        for micros in 1..=1000 {
            hist[bin_of(micros)] += 1;
        }
        for (q, exact) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = quantile(&hist, 1000, q, 1000) as f64;
            assert!((got - exact).abs() / exact < 0.07, "q{q}: {got}");
        }
        assert_eq!(quantile(&hist, 1000, 1.0, 1000), 1000);
        assert_eq!(quantile(&[0; BINS], 0, 0.5, 0), 0);
    }
}
