//! Report by exception: a polled value is pushed when it moved past its deadband since the
//! last pushed value, when its quality changed, or when its heartbeat is due.

use std::time::Instant;

use tag_model::Quality;

use crate::config::{Report, TagConfig};

/// The last pushed value of each tag of one group (owned by the group's thread).
pub(crate) struct ExceptionFilter {
    tags: Vec<(Report, Option<Pushed>)>,
}

#[derive(Clone, Copy)]
struct Pushed {
    value: Option<f64>,
    quality: Quality,
    at: Instant,
}

impl ExceptionFilter {
    pub(crate) fn new(tags: &[TagConfig]) -> Self {
        ExceptionFilter {
            tags: tags.iter().map(|t| (t.report, None)).collect(),
        }
    }

    /// Whether tag `index`'s new reading is pushed; remembers it when it is.
    pub(crate) fn passes(
        &mut self,
        index: usize,
        value: Option<f64>,
        quality: Quality,
        now: Instant,
    ) -> bool {
        let Some((report, last)) = self.tags.get_mut(index) else {
            return true;
        };
        if !report.is_active() {
            return true;
        }
        let push = match *last {
            None => true,
            Some(previous) => {
                previous.quality != quality
                    || report
                        .heartbeat
                        .is_some_and(|beat| now.duration_since(previous.at) >= beat)
                    || moved(report, previous.value, value)
            }
        };
        if push {
            *last = Some(Pushed {
                value,
                quality,
                at: now,
            });
        }
        push
    }
}

/// Whether `value` moved past the deadband from `previous` (with no deadband: any change).
fn moved(report: &Report, previous: Option<f64>, value: Option<f64>) -> bool {
    match (previous, value) {
        (Some(before), Some(now)) => {
            let change = (now - before).abs();
            if let Some(band) = report.deadband {
                change > band
            } else if let Some(pct) = report.deadband_pct {
                change > before.abs() * pct / 100.0
            } else {
                change > 0.0
            }
        }
        (None, None) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn filter(report: Report) -> ExceptionFilter {
        ExceptionFilter {
            tags: vec![(report, None)],
        }
    }

    #[test]
    fn off_by_default_every_reading_passes() {
        let mut f = filter(Report::default());
        let now = Instant::now();
        assert!((0..5).all(|_| f.passes(0, Some(1.0), Quality::Good, now)));
    }

    #[test]
    fn an_absolute_deadband_compares_with_the_last_pushed_value() {
        let mut f = filter(Report {
            deadband: Some(0.5),
            ..Report::default()
        });
        let t = Instant::now();
        let pushed: Vec<bool> = [10.0, 10.3, 10.5, 10.6, 10.2, 11.0]
            .into_iter()
            .map(|v| f.passes(0, Some(v), Quality::Good, t))
            .collect();
        // 10.6 is 0.6 from 10.0; 10.2 is 0.4 from 10.6 (drift does not accumulate past the
        // pushed value); 11.0 is 0.4 from 10.6... then not pushed.
        assert_eq!(pushed, [true, false, false, true, false, false]);
    }

    #[test]
    fn percent_deadband_quality_changes_and_heartbeat() {
        let mut f = filter(Report {
            deadband_pct: Some(10.0),
            heartbeat: Some(Duration::from_secs(60)),
            ..Report::default()
        });
        let t = Instant::now();
        assert!(f.passes(0, Some(100.0), Quality::Good, t));
        assert!(!f.passes(0, Some(109.0), Quality::Good, t));
        assert!(f.passes(0, Some(111.0), Quality::Good, t));
        assert!(f.passes(0, None, Quality::Bad, t), "quality changed");
        assert!(!f.passes(0, None, Quality::Bad, t), "still BAD");
        assert!(f.passes(0, Some(111.0), Quality::Good, t), "GOOD again");
        assert!(!f.passes(0, Some(111.0), Quality::Good, t + Duration::from_secs(59)));
        assert!(f.passes(0, Some(111.0), Quality::Good, t + Duration::from_secs(60)));
    }
}
