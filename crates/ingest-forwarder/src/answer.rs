//! What an answer of the ingest endpoint means for the values sent.

use std::fmt;
use std::time::Duration;

/// The writer's answer to one request, as the forwarder acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// 200: every value was taken.
    Accepted,
    /// 503 or 429: no room now, or shutting down; send the same values again later.
    Busy {
        /// The HTTP status.
        status: u16,
        /// The writer's `Retry-After`, if given.
        retry_after: Option<Duration>,
        /// The writer's reason.
        reason: String,
    },
    /// 413: more values than the writer's buffer or body limit takes at once.
    TooLarge(String),
    /// 400: the item at `index` (0-based in the request) is bad.
    BadItem {
        /// The item.
        index: usize,
        /// The writer's reason.
        reason: String,
    },
    /// No answer: refused connection, time-out, reset.
    Unreachable(String),
    /// Any other status (401, 404, 500, ...): kept and sent again after a pause.
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// The body's error, or the start of the body.
        reason: String,
    },
}

impl Answer {
    /// Reads an HTTP answer; `body` is the JSON body (`{"error": ..., "item": ...}`).
    pub fn from_response(status: u16, retry_after: Option<Duration>, body: &str) -> Answer {
        let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let reason = json
            .as_ref()
            .and_then(|json| json["error"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| body.chars().take(200).collect());
        match status {
            200..=299 => Answer::Accepted,
            503 | 429 => Answer::Busy {
                status,
                retry_after,
                reason,
            },
            413 => Answer::TooLarge(reason),
            400 => {
                // The endpoint names the item at fault; without a number (not its answer) the
                // whole request is at fault.
                let index = json
                    .as_ref()
                    .and_then(|json| json["item"].as_u64())
                    .map_or(usize::MAX, |i| i as usize);
                Answer::BadItem { index, reason }
            }
            _ => Answer::Unexpected { status, reason },
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Accepted => write!(f, "accepted"),
            Answer::Busy { status, reason, .. } => write!(f, "{status}: {reason}"),
            Answer::TooLarge(reason) => write!(f, "413: {reason}"),
            Answer::BadItem { index, reason } => write!(f, "400 (item {index}): {reason}"),
            Answer::Unreachable(error) => write!(f, "no answer: {error}"),
            Answer::Unexpected { status, reason } => write!(f, "{status}: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writers_answers_are_read_as_the_ingest_endpoint_gives_them() {
        assert_eq!(
            Answer::from_response(200, None, r#"{"accepted":3,"displaced":0}"#),
            Answer::Accepted
        );
        assert_eq!(
            Answer::from_response(
                503,
                Some(Duration::from_secs(1)),
                r#"{"error":"no room for 500 values (12 free)"}"#
            ),
            Answer::Busy {
                status: 503,
                retry_after: Some(Duration::from_secs(1)),
                reason: "no room for 500 values (12 free)".into()
            }
        );
        assert!(matches!(
            Answer::from_response(429, None, "slow down"),
            Answer::Busy { status: 429, ref reason, .. } if reason == "slow down"
        ));
        assert_eq!(
            Answer::from_response(413, None, r#"{"error":"too many"}"#),
            Answer::TooLarge("too many".into())
        );
        assert_eq!(
            Answer::from_response(
                400,
                None,
                r#"{"error":"item 4: tag_value: must be a number","item":4,"field":"tag_value"}"#
            ),
            Answer::BadItem {
                index: 4,
                reason: "item 4: tag_value: must be a number".into()
            }
        );
        // "item 2: must be a JSON object" has no field but names its item.
        assert!(matches!(
            Answer::from_response(
                400,
                None,
                r#"{"error":"item 2: must be a JSON object","item":2,"field":null}"#
            ),
            Answer::BadItem { index: 2, .. }
        ));
        assert!(matches!(
            Answer::from_response(400, None, "not JSON"),
            Answer::BadItem { index: usize::MAX, ref reason } if reason == "not JSON"
        ));
        assert!(matches!(
            Answer::from_response(401, None, r#"{"error":"a token is required"}"#),
            Answer::Unexpected { status: 401, .. }
        ));
    }
}
