//! Runs the real binaries in temp dirs, on ports the OS picks, and talks to them over HTTP.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // each test binary uses a different part
pub use test_support::{eventually, files_in};

/// Set in every test's environment: it must never appear in any output.
pub const PASSWORD: &str = "Pl4nt-S3cret-pw!";

pub fn binary(name: &str) -> PathBuf {
    match name {
        "start_all" => PathBuf::from(env!("CARGO_BIN_EXE_start_all")),
        "start_buffer_writer" => PathBuf::from(env!("CARGO_BIN_EXE_start_buffer_writer")),
        "start_polling_engine" => PathBuf::from(env!("CARGO_BIN_EXE_start_polling_engine")),
        "stop_all" => PathBuf::from(env!("CARGO_BIN_EXE_stop_all")),
        "test_oracle_connection" => PathBuf::from(env!("CARGO_BIN_EXE_test_oracle_connection")),
        "test_high_throughput" => PathBuf::from(env!("CARGO_BIN_EXE_test_high_throughput")),
        "replay_backup" => PathBuf::from(env!("CARGO_BIN_EXE_replay_backup")),
        other => panic!("unknown binary {other}"),
    }
}

/// A command in `dir` with a clean environment: no ORACLE_* from the developer's shell,
/// the test password set, the API on a port the OS chooses.
pub fn command(name: &str, dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary(name));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("API_BIND", "127.0.0.1:0")
        .env("ORACLE_PASSWORD", PASSWORD)
        .env("RUST_LOG", "info");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// How a test asks a running binary to stop.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Interrupt,
    Terminate,
}

/// A running binary whose stderr is collected line by line.
pub struct Running {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Running {
    pub fn spawn(mut command: Command) -> Self {
        command.stderr(Stdio::piped()).stdout(Stdio::piped());
        let mut child = command.spawn().expect("spawn binary");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        for (pipe, sink) in [
            (
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                lines.clone(),
            ),
            (
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                stdout.clone(),
            ),
        ] {
            if let Some(pipe) = pipe {
                std::thread::spawn(move || {
                    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                        sink.lock().unwrap().push(line);
                    }
                });
            }
        }
        Running {
            child,
            lines,
            stdout,
        }
    }

    /// Waits for a log line containing `text`; returns it.
    pub fn wait_for_line(&mut self, text: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "exited ({status}) before logging {text:?}:\n{}",
                    self.output()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no line with {text:?} after 30 s:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The API base URL, read from the start-up log.
    pub fn base_url(&mut self) -> String {
        let line = self.wait_for_line("/api/buffer/metrics");
        let start = line.find("http://").expect("URL in the log");
        let rest = &line[start..];
        let end = rest.find("/api/").expect("path");
        rest[..end].to_owned()
    }

    /// Ctrl+C: SIGINT.
    pub fn interrupt(&self) {
        self.send_signal(Stop::Interrupt);
    }

    /// What `stop_all` and systemd send: SIGTERM.
    pub fn terminate(&self) {
        self.send_signal(Stop::Terminate);
    }

    #[cfg(unix)]
    fn send_signal(&self, stop: Stop) {
        let signal = match stop {
            Stop::Interrupt => libc::SIGINT,
            Stop::Terminate => libc::SIGTERM,
        };
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid_t");
        // SAFETY: kill has no memory effects.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    // These tests are compiled for Windows (CI checks that they build) but run on Linux:
    // sending a console Ctrl+C to one child process needs a console of its own, which the
    // test harness does not give it.
    #[cfg(not(unix))]
    fn send_signal(&self, stop: Stop) {
        panic!("{stop:?} of a child process is not implemented on this platform");
    }

    /// Waits up to `timeout` for the exit; returns its status and how long it took.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the reader threads catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return (status, started.elapsed());
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("still running after {timeout:?}:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// stderr and stdout so far.
    pub fn output(&self) -> String {
        let mut text = self.lines.lock().unwrap().join("\n");
        text.push('\n');
        text.push_str(&self.stdout.lock().unwrap().join("\n"));
        text
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let output = self.output();
        assert!(!output.contains(PASSWORD), "the password leaked:\n{output}");
    }
}

/// Runs a binary to completion; returns (status, stdout + stderr).
pub fn run(command: &mut Command) -> (ExitStatus, String) {
    let output = command.output().expect("run binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!text.contains(PASSWORD), "the password leaked:\n{text}");
    (output.status, text)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

pub fn get(url: &str) -> (u16, String) {
    let mut response = agent().get(url).call().expect("GET");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().expect("body"))
}

pub fn get_json(url: &str) -> serde_json::Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

pub fn post(url: &str, body: &str) -> (u16, String) {
    let mut response = agent()
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .expect("POST");
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .unwrap_or_default();
    (status, text)
}

pub fn count_rows(db: &Path, filter: &str) -> i64 {
    let connection = rusqlite::Connection::open(db).expect("open database");
    connection
        .query_row(
            &format!("SELECT count(*) FROM TAG_VALUES {filter}"),
            [],
            |row| row.get(0),
        )
        .expect("count")
}

/// `count` values as a JSON array body, numbered from `first`.
pub fn ingest_body(first: usize, count: usize) -> String {
    format!("[{}]", ingest_items(first, count).join(","))
}

/// `count` values as JSON objects (one per NDJSON line), numbered from `first`.
pub fn ingest_items(first: usize, count: usize) -> Vec<String> {
    (first..first + count)
        .map(|i| {
            format!(
                r#"{{"timestamp":"2025-11-02T14:{:02}:{:02}.{:06}","plc_code":"PLC{:02}","tag_address":"D{}","tag_value":{}.5}}"#,
                (i / 60_000_000) % 60,
                (i / 1_000_000) % 60,
                i % 1_000_000,
                i % 7,
                100 + i % 13,
                i
            )
        })
        .collect()
}
