//! The shipped Prometheus rules and Grafana dashboard (`deploy/`), against the real thing:
//! `promtool check` and `promtool test rules` on the files users get; a real Prometheus
//! scraping real start_buffer_writer and start_all processes through an outage of the
//! embedded SQLite database, with the offline alert firing and resolving; and every PromQL
//! expression of the dashboard run through that Prometheus's query API.
//!
//! Prometheus and promtool come from Debian's `prometheus` package (`.ci/run` installs it).
//! Without them these tests say SKIPPED on stderr and pass, unless REQUIRE_PROMETHEUS=1 (set
//! by CI), which makes them fail.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// `name` on PATH; when missing, None after a loud SKIPPED, or a panic under
/// REQUIRE_PROMETHEUS=1.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        let message = format!(
            "{name} not found (Debian package prometheus): the Prometheus rule and dashboard \
             tests need it"
        );
        if std::env::var("REQUIRE_PROMETHEUS").as_deref() == Ok("1") {
            panic!("REQUIRE_PROMETHEUS=1: {message}");
        }
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("SKIPPED: {message}\n").as_bytes(),
        );
    }
    found
}

fn run_tool(command: &mut Command) -> String {
    let output = command.output().expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

#[test]
fn the_shipped_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = deploy("prometheus");
    let checked =
        run_tool(
            Command::new(&promtool)
                .current_dir(&dir)
                .args(["check", "rules", "alerts.yml"]),
        );
    // promtool counts every rule the file holds: none is silently dropped.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let written = rules
        .lines()
        .filter(|l| l.trim().starts_with("- alert: ") || l.trim().starts_with("- record: "))
        .count();
    assert!(
        checked.contains(&format!("SUCCESS: {written} rules found")),
        "{checked}"
    );
    let tested = run_tool(Command::new(&promtool).current_dir(&dir).args([
        "test",
        "rules",
        "alerts.test.yml",
    ]));
    assert!(tested.contains("SUCCESS"), "{tested}");
    // The example configuration, with the rule file it loads.
    run_tool(
        Command::new(&promtool)
            .current_dir(&dir)
            .args(["check", "config", "prometheus.yml"]),
    );
}

/// Every alert has a severity, a summary and a description, and a unit test that expects it
/// to fire (so a new alert cannot ship untested).
#[test]
fn every_alert_is_documented_and_has_a_unit_test_that_fires_it() {
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy("prometheus/alerts.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    // The list: database offline, backup rows growing, overflow, buffer over 80 %,
    // success rate, latency, polling errors and stalls, backup disk, service down, and more.
    assert!(alerts.len() >= 13, "{alerts:?}");
    for alert in &alerts {
        let start = rules.find(&format!("- alert: {alert}\n")).unwrap();
        let block = &rules[start..];
        let block = &block[..block[1..].find("- alert: ").map_or(block.len(), |i| i + 1)];
        for field in ["severity: ", "summary: ", "description: "] {
            assert!(block.contains(field), "{alert} has no {field}");
        }
        assert!(
            rules[..rules.find("groups:").unwrap()].contains(alert),
            "{alert} is not in the table of thresholds at the top of alerts.yml"
        );
        // An alert_rule_test for it whose expected list is not empty.
        let fires = tests
            .match_indices(&format!("alertname: {alert}\n"))
            .any(|(at, _)| {
                tests[at..]
                    .lines()
                    .nth(1)
                    .is_some_and(|l| l.trim() == "exp_alerts:")
            });
        assert!(
            fires,
            "no unit test in alerts.test.yml expects {alert} to fire"
        );
    }
}

/// The names the rules, their tests and the dashboard read are all exported by a running
/// start_all: renaming a metric breaks this test, not a plant's alerting.
#[test]
fn every_metric_the_deploy_files_read_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Running::spawn(command("start_all", dir.path(), &[]));
    let base = service.base_url();
    eventually("a first poll and write", || {
        let (_, text) = get(&format!("{base}/metrics"));
        text.contains("buffer_oracle_writer_polling_last_poll_age_seconds{")
            && !text.contains("buffer_oracle_writer_writes_total 0\n")
    });
    let (status, text) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200);
    let exported = sample_names(&text);
    for file in [
        "prometheus/alerts.yml",
        "prometheus/alerts.test.yml",
        "grafana/buffer-oracle-writer.json",
    ] {
        let source = std::fs::read_to_string(deploy(file)).unwrap();
        let referenced = referenced_names(&source);
        assert!(referenced.len() > 5, "{file}: {referenced:?}");
        let missing: Vec<&String> = referenced.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{file} reads metrics that /metrics does not export: {missing:?}\n{text}"
        );
    }
    // HELP for every family.
    for name in exported {
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{name} has no HELP line"
        );
    }
}

/// Sample names (not families) in a text exposition.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l[..l.find(['{', ' ']).unwrap_or(l.len())].to_owned())
        .collect()
}

/// Every `buffer_oracle_writer_*` name in `source` (recording rules, with a colon, are not).
fn referenced_names(source: &str) -> BTreeSet<String> {
    let prefix = "buffer_oracle_writer_";
    source
        .match_indices(prefix)
        .map(|(at, _)| {
            let rest = &source[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .filter(|name| name.len() > prefix.len())
        .collect()
}

#[test]
fn the_grafana_dashboard_imports_anywhere() {
    let text = std::fs::read_to_string(deploy("grafana/buffer-oracle-writer.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("valid JSON");
    assert!(
        dashboard["id"].is_null(),
        "an exported id ties it to one Grafana"
    );
    assert!(
        dashboard["__inputs"].is_null(),
        "the data source is a variable"
    );
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable");
    assert_eq!(datasource["name"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    assert!(
        !text.contains("\"uid\": \"P"),
        "a hard-coded data source uid"
    );
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: id reused"
        );
        let grid = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_u64().unwrap());
        assert!(x + w <= 24, "{title} is wider than the dashboard");
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "{title} overlaps another panel");
        }
        if panel["type"] == "row" {
            continue;
        }
        assert!(
            !panel["description"].as_str().unwrap_or("").is_empty(),
            "{title}: no description"
        );
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        let refs: BTreeSet<&str> = targets
            .iter()
            .map(|t| t["refId"].as_str().unwrap())
            .collect();
        assert_eq!(refs.len(), targets.len(), "{title}: a refId twice");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            let expr = target["expr"].as_str().unwrap();
            assert!(
                expr.contains("job=~\"$job\", instance=~\"$instance\""),
                "{title}: {expr} ignores the job and instance variables"
            );
        }
    }
    // The built-in dashboard's panels are all here (its figures, by metric).
    for name in [
        "buffer_size",
        "buffer_capacity",
        "buffer_utilization_ratio",
        "buffer_overflow_total",
        "writes_total",
        "write_failures_total",
        "rows_written_total",
        "write_batch_rows_avg",
        "write_latency_avg_seconds",
        "write_latency_p99_seconds",
        "backup_files",
        "backup_bytes",
        "backup_pending_rows",
        "rejected_files",
        "quarantine_files",
        "rows_spilled_total",
        "backup_lines_quarantined_total",
        "conflict_files",
        "database_online",
        "health_status",
        "polling_polls_total",
        "polling_errors_total",
        "polling_overruns_total",
        "polling_last_poll_age_seconds",
        "polling_group_info",
        "polling_suppressed_total",
    ] {
        assert!(
            text.contains(&format!("buffer_oracle_writer_{name}{{")),
            "the dashboard does not show {name}"
        );
    }
}

/// The dashboard's queries, with Grafana's variables filled in as Grafana would for "All".
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("grafana/buffer-oracle-writer.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let filled = expr
                .replace("$__rate_interval", "30s")
                .replace("$__interval", "5s")
                .replace("$__range", "5m")
                .replace("$job", ".+")
                .replace("$instance", ".+");
            assert!(!filled.contains('$'), "unknown variable in {expr}");
            let title = panel["title"].as_str().unwrap().to_owned();
            queries.push((title, filled));
        }
    }
    queries
}

/// A Prometheus server on a free loopback port, with its own config and data in a temp dir.
struct Prometheus {
    process: Running,
    base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(binary: &Path, targets: &[&str], rules: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files: [rules.yml]\n\
                 scrape_configs:\n  - job_name: buffer_oracle_writer\n    static_configs:\n\
                 \x20     - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        // The OS picks a free port; Prometheus binds it a moment later. If another process
        // took it meanwhile, Prometheus exits and we try another.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut command = Command::new(binary);
            command.current_dir(dir.path()).args([
                "--config.file=prometheus.yml".to_owned(),
                "--storage.tsdb.path=data".to_owned(),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--log.level=warn".to_owned(),
            ]);
            let mut process = Running::spawn(command);
            let base = format!("http://127.0.0.1:{port}");
            let started = Instant::now();
            loop {
                if ready(&format!("{base}/-/ready")) {
                    return Prometheus {
                        process,
                        base,
                        _dir: dir,
                    };
                }
                if process.child.try_wait().unwrap().is_some() {
                    let log = process.output();
                    assert!(
                        log.contains("address already in use"),
                        "Prometheus exited:\n{log}"
                    );
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "Prometheus not ready after 60 s:\n{}",
                    process.output()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("no free port for Prometheus after 5 tries");
    }

    fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = agent.get(format!("{}{path}", self.base));
        for (key, value) in params {
            request = request.query(*key, *value);
        }
        let mut response = request.call().expect("Prometheus API");
        let body = response.body_mut().read_to_string().unwrap();
        let reply: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            reply["status"],
            "success",
            "{path} {params:?}: {body}\n{}",
            self.process.output()
        );
        reply["data"].clone()
    }

    /// The instant query's result vector.
    fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api("/api/v1/query", &[("query", expr)]);
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of the one series `expr` gives, if there is one.
    fn value(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr);
        assert!(result.len() <= 1, "{expr}: {result:?}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Pending and firing alerts named `name` for `instance`.
    fn alerts(&self, name: &str, instance: &str) -> Vec<Value> {
        let data = self.api("/api/v1/alerts", &[]);
        data["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["alertname"] == name && a["labels"]["instance"] == instance)
            .cloned()
            .collect()
    }
}

fn ready(url: &str) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    agent
        .get(url)
        .call()
        .is_ok_and(|r| r.status().as_u16() == 200)
}

/// Waits up to `limit` for `condition`, checking every 250 ms.
fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
    started.elapsed()
}

/// The shipped rule file with only the `for:` durations changed, to one second: the test
/// cannot wait the 5 minutes of the offline alert. Every expression is the shipped one.
fn rules_with_short_for(shipped: &str) -> String {
    let mut changed = 0;
    let lines: Vec<String> = shipped
        .lines()
        .map(|line| {
            let indent = line.len() - line.trim_start().len();
            if line.trim_start().starts_with("for: ") {
                changed += 1;
                format!("{}for: 1s", &line[..indent])
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(changed >= 10, "only {changed} `for:` lines in alerts.yml");
    lines.join("\n") + "\n"
}

/// The README's failure drill against a real Prometheus with the shipped rules: the SQLite
/// database is locked (BEGIN EXCLUSIVE) while values keep arriving, the writer goes offline
/// with the default retry delays, the offline alert fires; the lock ends, the backlog is
/// replayed, the alert resolves, nothing is lost. Meanwhile every dashboard query runs.
#[test]
fn a_real_prometheus_fires_the_offline_alert_during_an_outage_and_resolves_it() {
    let Some(binary) = tool("prometheus") else {
        return;
    };
    let started = Instant::now();
    let writer_dir = tempfile::tempdir().unwrap();
    let mut writer = Running::spawn(command("start_buffer_writer", writer_dir.path(), &[]));
    let writer_base = writer.base_url();
    let writer_instance = writer_base.trim_start_matches("http://").to_owned();
    // start_all too, so that the dashboard's polling-group queries have groups to show.
    let all_dir = tempfile::tempdir().unwrap();
    let mut all = Running::spawn(command("start_all", all_dir.path(), &[]));
    let all_instance = all.base_url().trim_start_matches("http://").to_owned();

    let shipped = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let prometheus = Prometheus::start(
        &binary,
        &[&writer_instance, &all_instance],
        &rules_with_short_for(&shipped),
    );
    let ready_after = started.elapsed();
    wait_until("both targets scraped", Duration::from_secs(60), || {
        let up = prometheus.query("up == 1");
        [&writer_instance, &all_instance]
            .iter()
            .all(|i| up.iter().any(|s| s["metric"]["instance"] == i.as_str()))
    });

    // Values arrive all along: 20 every 100 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let stop = Arc::clone(&stop);
        let url = format!("{writer_base}/api/buffer/ingest");
        std::thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(Ordering::SeqCst) {
                let (status, body) = post(&url, &ingest_body(sent, 20));
                assert_eq!(status, 200, "{body}");
                sent += 20;
                std::thread::sleep(Duration::from_millis(100));
            }
            sent
        })
    };
    let online = format!("buffer_oracle_writer_database_online{{instance=\"{writer_instance}\"}}");
    wait_until("rows written and seen", Duration::from_secs(30), || {
        prometheus.value(&format!(
            "buffer_oracle_writer_rows_written_total{{instance=\"{writer_instance}\"}}"
        )) > Some(0.0)
    });
    assert_eq!(prometheus.value(&online), Some(1.0));
    let offline_alert = "BufferOracleWriterDatabaseOffline";
    assert!(prometheus
        .alerts(offline_alert, &writer_instance)
        .is_empty());

    // The outage: another program holds SQLite's write lock.
    let lock = rusqlite::Connection::open(writer_dir.path().join("data/tag_values.db")).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let outage = Instant::now();
    writer.wait_for_line("Retrying in 1.0 seconds...");
    let to_firing = wait_until("the offline alert firing", Duration::from_secs(120), || {
        prometheus
            .alerts(offline_alert, &writer_instance)
            .iter()
            .any(|a| a["state"] == "firing")
    });
    let firing = prometheus.alerts(offline_alert, &writer_instance);
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0]["labels"]["severity"], "warning");
    assert_eq!(firing[0]["labels"]["job"], "buffer_oracle_writer");
    assert_eq!(
        firing[0]["annotations"]["summary"],
        format!("buffer-oracle-writer on {writer_instance}: database offline")
    );
    assert_eq!(prometheus.value(&online), Some(0.0));
    let metrics = get_json(&format!("{writer_base}/api/buffer/metrics"));
    assert_eq!(metrics["offline"]["online"], false, "{metrics}");
    // While offline, values go to backup: Prometheus sees the rows pending.
    wait_until("backup rows pending", Duration::from_secs(30), || {
        prometheus.value(&format!(
            "buffer_oracle_writer_backup_pending_rows{{instance=\"{writer_instance}\"}}"
        )) > Some(0.0)
    });
    // Nothing lost, the service up, start_all unaffected.
    for quiet in [
        "BufferOracleWriterBufferOverflow",
        "BufferOracleWriterDown",
        "BufferOracleWriterBackupFailing",
        "BufferOracleWriterUnhealthy",
    ] {
        for instance in [&writer_instance, &all_instance] {
            let alerts = prometheus.alerts(quiet, instance);
            assert!(alerts.is_empty(), "{quiet} on {instance}: {alerts:?}");
        }
    }
    assert!(prometheus.alerts(offline_alert, &all_instance).is_empty());

    // The outage ends.
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let outage_length = outage.elapsed();
    let to_resolved = wait_until(
        "the offline alert resolved",
        Duration::from_secs(120),
        || {
            prometheus
                .alerts(offline_alert, &writer_instance)
                .is_empty()
        },
    );
    assert_eq!(prometheus.value(&online), Some(1.0));

    // Every dashboard query parses and returns series (with the backlog replayed, so that
    // the replay figures exist too).
    wait_until("the backlog replayed", Duration::from_secs(60), || {
        get_json(&format!("{writer_base}/api/buffer/metrics"))["backup"]["pending_rows"] == 0
    });
    let queries = dashboard_queries();
    assert!(queries.len() > 40, "{}", queries.len());
    let mut empty = Vec::new();
    for (panel, expr) in &queries {
        if prometheus.query(expr).is_empty() {
            empty.push(format!("{panel}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries that return nothing:\n{}",
        empty.join("\n")
    );
    // The variables' queries (label_values) find both services.
    let instances = prometheus.api(
        "/api/v1/label/instance/values",
        &[("match[]", "buffer_oracle_writer_build_info{job=~\".+\"}")],
    );
    for instance in [&writer_instance, &all_instance] {
        assert!(
            instances
                .as_array()
                .unwrap()
                .contains(&Value::from(instance.as_str())),
            "{instances}"
        );
    }

    // Stop the values; once the writer is idle Prometheus shows the API's figures, and every
    // value accepted is in the table.
    stop.store(true, Ordering::SeqCst);
    let sent = feeder.join().unwrap() as u64;
    let database = writer_dir.path().join("data/tag_values.db");
    wait_until("all rows stored", Duration::from_secs(60), || {
        count_rows(&database, "") as u64 == sent
    });
    wait_until("the writer idle", Duration::from_secs(30), || {
        let metrics = get_json(&format!("{writer_base}/api/buffer/metrics"));
        metrics["accounting"]["buffered"] == 0 && metrics["accounting"]["in_flight"] == 0
    });
    let metrics = get_json(&format!("{writer_base}/api/buffer/metrics"));
    assert_eq!(metrics["accounting"]["accepted"], sent, "{metrics}");
    assert_eq!(metrics["accounting"]["overflow"], 0, "{metrics}");
    assert_eq!(metrics["accounting"]["balanced"], true, "{metrics}");
    for (metric, figure) in [
        ("values_accepted_total", &metrics["accounting"]["accepted"]),
        ("rows_backed_up_total", &metrics["accounting"]["backed_up"]),
        ("writes_total", &metrics["writer"]["total_writes"]),
        ("write_failures_total", &metrics["writer"]["failed_writes"]),
        (
            "backup_replayed_rows_total",
            &metrics["offline"]["replayed_rows"],
        ),
    ] {
        let expr = format!("buffer_oracle_writer_{metric}{{instance=\"{writer_instance}\"}}");
        let expected = figure.as_f64().unwrap();
        wait_until(
            &format!("{metric} = {expected}"),
            Duration::from_secs(10),
            || prometheus.value(&expr) == Some(expected),
        );
    }
    assert!(metrics["accounting"]["backed_up"].as_u64().unwrap() > 0);

    // The naming lint of the official tool, on the text format it reads (OpenMetrics names
    // a counter's family without `_total`; the 0.0.4 text format with it).
    if let Some(promtool) = tool("promtool") {
        let (_, text) = get(&format!("http://{all_instance}/metrics"));
        let mut lint = Command::new(promtool);
        lint.args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = lint.spawn().unwrap();
        let legacy = to_text_format(&text);
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), legacy.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "promtool check metrics:\n{}{}\n{legacy}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    eprintln!(
        "prometheus test: Prometheus ready after {ready_after:?}; offline alert firing \
         {to_firing:?} after the lock; outage {outage_length:?}; resolved {to_resolved:?} \
         after the lock ended; {} dashboard queries; {:?} in all",
        queries.len(),
        started.elapsed()
    );
    for service in [&writer, &all] {
        service.interrupt();
    }
    assert!(writer.wait_exit(Duration::from_secs(10)).0.success());
    assert!(all.wait_exit(Duration::from_secs(10)).0.success());
}

/// OpenMetrics text as the Prometheus 0.0.4 text format: counter families named with their
/// `_total`, no `# EOF`.
fn to_text_format(openmetrics: &str) -> String {
    let counters: BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::new();
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let name = &rest[..rest.find(' ')?];
            counters
                .contains(name)
                .then(|| format!("{tag}{name}_total{}", &rest[name.len()..]))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}
