//! The forwarder against a scripted ingest endpoint on 127.0.0.1: each answer of the writer
//! acted on as documented, with the default retry delays.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingest_forwarder::{Forwarder, ForwarderConfig};
use tag_model::{Quality, TagValue};

/// One request as the fake writer saw it.
struct Seen {
    at: Instant,
    values: Vec<serde_json::Value>,
}

/// Answers requests with `script` in turn (status, extra header, body), then 200 forever.
fn fake_writer(script: Vec<(u16, &'static str, &'static str)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/api/buffer/ingest",
        listener.local_addr().unwrap()
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            // One request per connection is enough: ureq reuses it or opens another.
            loop {
                let mut length = None;
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse::<usize>().ok();
                        }
                    }
                }
                let mut body = vec![0; length.unwrap_or(0)];
                reader.read_exact(&mut body).unwrap();
                let values: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
                let count = values.len();
                log.lock().unwrap().push(Seen {
                    at: Instant::now(),
                    values,
                });
                let (status, header, answer) = script.next().unwrap_or((200, "", ""));
                let answer = if status == 200 {
                    format!(r#"{{"accepted":{count},"displaced":0}}"#)
                } else {
                    answer.to_owned()
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{header}\
                     content-length: {}\r\n\r\n{answer}",
                    answer.len()
                );
                if stream.write_all(reply.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (url, seen)
}

fn values(count: usize) -> Vec<TagValue> {
    let now = chrono::Utc::now().naive_utc();
    (0..count)
        .map(|i| TagValue::new(now, "PLC01", format!("D{i}"), Some(i as f64), Quality::Good))
        .collect::<Result<_, _>>()
        .unwrap()
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "waited for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn busy_too_large_and_bad_item_answers_are_retried_split_and_refused() {
    let (url, seen) = fake_writer(vec![
        (
            503,
            "retry-after: 1\r\n",
            r#"{"error":"no room for 8 values (0 free)"}"#,
        ),
        (429, "", r#"{"error":"too many requests"}"#),
        (
            413,
            "",
            r#"{"error":"8 values are more than the buffer holds (4)"}"#,
        ),
        (
            400,
            "",
            r#"{"error":"item 1: tag_value: must be a number","item":1,"field":"tag_value"}"#,
        ),
    ]);
    let forwarder = Forwarder::start(ForwarderConfig::new(url)).unwrap();
    forwarder.push(values(8));
    wait_until("everything answered", || {
        let counts = forwarder.counts();
        counts.forwarded + counts.refused == 8
    });
    let outcome = forwarder.shutdown(Duration::from_secs(1));
    let counts = outcome.counts;
    assert_eq!(
        (counts.forwarded, counts.refused, counts.overflow),
        (7, 1, 0)
    );
    assert!(outcome.unsent.is_empty());
    assert!(counts.balanced(), "{counts:?}");

    let seen = seen.lock().unwrap();
    let sizes: Vec<usize> = seen.iter().map(|s| s.values.len()).collect();
    // 8 (503), 8 after 1 s (429), 8 after 2 s (413), 4 at once (400 on item 1: D1 refused),
    // 4 at once (200; the batch grows back after it), then the last 3.
    assert_eq!(sizes, [8, 8, 8, 4, 4, 3], "{sizes:?}");
    let gap = |i: usize| seen[i].at.duration_since(seen[i - 1].at);
    assert!(gap(1) >= Duration::from_millis(950), "{:?}", gap(1));
    assert!(gap(2) >= Duration::from_millis(1950), "{:?}", gap(2));
    assert!(gap(3) < Duration::from_millis(900), "{:?}", gap(3));
    let tags: Vec<&str> = seen[4..]
        .iter()
        .flat_map(|s| s.values.iter().map(|v| v["tag_address"].as_str().unwrap()))
        .collect();
    assert_eq!(tags, ["D0", "D2", "D3", "D4", "D5", "D6", "D7"]);
}

#[test]
fn a_full_local_queue_displaces_its_oldest_values_and_counts_them() {
    // Nothing listens on the port: every attempt fails, the queue of 5 fills.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let forwarder = Forwarder::start(ForwarderConfig {
        queue_max: 5,
        batch_max: 2,
        ..ForwarderConfig::new(format!("http://127.0.0.1:{port}/api/buffer/ingest"))
    })
    .unwrap();
    forwarder.push(values(2));
    wait_until("the first batch held by the sender", || {
        forwarder.counts().in_flight == 2
    });
    forwarder.push(values(9));
    let counts = forwarder.counts();
    assert_eq!((counts.pushed, counts.queued, counts.overflow), (11, 5, 4));
    let outcome = forwarder.shutdown(Duration::from_secs(2));
    assert_eq!(outcome.unsent.len(), 7);
    assert_eq!(outcome.counts.queued, 7);
    assert!(outcome.counts.balanced(), "{:?}", outcome.counts);
    // The oldest of the second push were displaced: D4..D8 remain behind D0, D1.
    let tags: Vec<&str> = outcome.unsent.iter().map(|v| v.tag_address()).collect();
    assert_eq!(tags, ["D0", "D1", "D4", "D5", "D6", "D7", "D8"]);
}
