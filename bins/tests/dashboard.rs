//! The monitoring dashboard in a real headless Chromium: start start_all, load the page, wait
//! for live data, check the panels show what the JSON API says, and save screenshots (desktop
//! and phone) under target/tmp/ as test artifacts. Without Chromium the test says so loudly
//! and skips, unless REQUIRE_CHROMIUM=1 (set by .ci/run, which installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(name))
                    .find(|candidate| candidate.is_file())
            })
        });
    if found.is_none() {
        let message = "Chromium not found (Debian package chromium): the dashboard test needs it";
        if std::env::var("REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("REQUIRE_CHROMIUM=1: {message}");
        }
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("SKIPPED: {message}\n").as_bytes(),
        );
    }
    found
}

/// Headless Chromium with the flags this closed network needs, on a fresh profile.
fn headless(browser: &Path, profile: &Path, size: &str) -> Command {
    let mut command = Command::new(browser);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        // Let the page's timers run: four seconds of polling.
        "--virtual-time-budget=4000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command.arg(format!("--window-size={size}"));
    command
}

/// The `data-raw` attribute of the element with this id.
fn raw(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let element_end = at + dom[at..].find('>').expect("end of tag");
    let tag = &dom[at..element_end];
    let start = tag
        .find("data-raw=\"")
        .unwrap_or_else(|| panic!("#{id} has no live value: {tag}"))
        + 10;
    tag[start..start + tag[start..].find('"').expect("quote")].to_owned()
}

#[test]
fn the_dashboard_shows_the_api_figures_in_a_real_browser() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut service = Running::spawn(command("start_all", dir.path(), &[]));
    let base = service.base_url();
    service.wait_for_line("Press Ctrl+C to stop all systems.");
    eventually("a first write", || {
        get_json(&format!("{base}/api/buffer/metrics"))["writer"]["total_writes"]
            .as_u64()
            .unwrap_or(0)
            > 0
    });

    let (status, page) = get(&format!("{base}/"));
    assert_eq!(status, 200);
    assert!(
        page.contains("<title>Buffer monitoring"),
        "/ does not lead to the dashboard"
    );
    let (status, script) = get(&format!("{base}/monitoring/assets/uPlot.iife.min.js"));
    assert_eq!(status, 200);
    assert!(script.len() > 40_000);

    let url = format!("{base}/monitoring/buffer");
    let profile = dir.path().join("profile");
    let output = headless(&browser, &profile, "1280,800")
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metrics = get_json(&format!("{base}/api/buffer/metrics"));
    let health = get_json(&format!("{base}/api/buffer/health"));

    // Live: the page polled the API more than once.
    let updates: u32 = dom
        .split("data-updates=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(updates >= 2, "the page did not update: {updates}");
    // Figures that do not move while the service runs match the API exactly.
    assert_eq!(
        raw(&dom, "buffer-max-size"),
        metrics["buffer"]["max_size"].to_string()
    );
    assert_eq!(
        raw(&dom, "buffer-overflow"),
        metrics["buffer"]["overflow_count"].to_string()
    );
    assert_eq!(
        raw(&dom, "buffer-spilled"),
        metrics["buffer"]["spilled_count"].to_string()
    );
    assert_eq!(
        raw(&dom, "writer-failed-writes"),
        metrics["writer"]["failed_writes"].to_string()
    );
    assert_eq!(
        raw(&dom, "backup-file-count"),
        metrics["backup"]["file_count"].to_string()
    );
    assert_eq!(raw(&dom, "writer-success-rate"), "100");
    assert!(dom.contains("100,000"), "max size not formatted for people");
    // Moving figures: the page's are from a moment earlier, so at most the API's now.
    let page_writes: u64 = raw(&dom, "writer-total-writes").parse().unwrap();
    let api_writes = metrics["writer"]["total_writes"].as_u64().unwrap();
    assert!(
        page_writes >= 1 && page_writes <= api_writes,
        "{page_writes} vs {api_writes}"
    );
    // State at a glance, and the polling groups.
    let status = health["status"].as_str().unwrap();
    assert!(
        dom.contains(&format!("data-status=\"{status}\"")),
        "status {status} not shown"
    );
    for group in ["LINE1_PROCESS1", "LINE2_PROCESS2", "MANUAL_TRIGGER"] {
        assert!(
            dom.contains(&format!("data-group=\"{group}\"")),
            "group {group} missing"
        );
    }
    assert!(dom.contains("uplot"), "no chart was drawn");

    // Screenshots for people to look at: a desktop and a phone.
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for (size, name) in [
        ("1280,800", "dashboard-1280x800.png"),
        ("390,844", "dashboard-phone.png"),
    ] {
        let path = artifacts.join(name);
        let _ = std::fs::remove_file(&path);
        let output = headless(&browser, &profile, size)
            .arg(format!("--screenshot={}", path.display()))
            .arg(&url)
            .output()
            .expect("run chromium");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let png = std::fs::read(&path).unwrap_or_default();
        assert!(
            png.len() > 10_000 && png.starts_with(b"\x89PNG"),
            "{name}: {} bytes",
            png.len()
        );
        eprintln!("screenshot saved: {}", path.display());
    }
    service.interrupt();
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
}

/// A backup file waiting to be loaded: the page says `degraded`, gives the reason, and shows
/// the backup count in red.
#[test]
fn the_dashboard_shows_a_degraded_state_and_red_counts() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("backup")).unwrap();
    std::fs::write(
        dir.path().join("backup/backup_20251102_143052.csv"),
        "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time\n\
         2025-11-02T14:30:45.123456,PLC01,D100,1234.5,GOOD,2025-11-02T14:30:52.789012\n",
    )
    .unwrap();
    let mut service = Running::spawn(command(
        "start_buffer_writer",
        dir.path(),
        &[("BACKUP_AUTO_REPLAY", "false")],
    ));
    let base = service.base_url();
    let (status, health) = get(&format!("{base}/api/buffer/health"));
    assert_eq!(status, 503, "{health}");
    let profile = dir.path().join("profile");
    let output = headless(&browser, &profile, "1280,800")
        .arg("--dump-dom")
        .arg(format!("{base}/monitoring/buffer"))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(dom.contains("data-status=\"degraded\""), "not degraded");
    assert!(
        dom.contains("wait to be loaded into the database"),
        "no reason shown"
    );
    let at = dom.find("id=\"backup-file-count\"").expect("backup count");
    let tag = &dom[dom[..at].rfind('<').unwrap()..at + dom[at..].find('>').unwrap()];
    assert!(tag.contains("alert"), "backup count not red: {tag}");
    assert_eq!(raw(&dom, "backup-file-count"), "1");
    service.interrupt();
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
}

/// Conflicting duplicates: the page counts them in red and health says why it is degraded.
#[test]
fn the_dashboard_shows_conflicting_rows_in_red() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &[]));
    let base = service.base_url();
    let reading = |value: u32| {
        format!(
            r#"{{"timestamp":"2025-11-02T14:30:45.123456","plc_code":"PLC01","tag_address":"D100","tag_value":{value}}}"#
        )
    };
    let body = format!("[{},{},{}]", reading(1), reading(2), reading(99));
    let (status, reply) = post(&format!("{base}/api/buffer/ingest"), &body);
    assert_eq!(status, 200, "{reply}");
    eventually("two conflicts", || {
        get_json(&format!("{base}/api/buffer/metrics"))["accounting"]["conflicts"] == 2
    });
    let profile = dir.path().join("profile");
    let output = headless(&browser, &profile, "1280,800")
        .arg("--dump-dom")
        .arg(format!("{base}/monitoring/buffer"))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(raw(&dom, "backup-conflicts"), "2");
    let at = dom
        .find("id=\"backup-conflicts\"")
        .expect("conflicts count");
    let tag = &dom[dom[..at].rfind('<').unwrap()..at + dom[at..].find('>').unwrap()];
    assert!(tag.contains("alert"), "conflicts not red: {tag}");
    assert!(dom.contains(">2 in 1 file<"), "count and file not shown");
    assert!(dom.contains("data-status=\"degraded\""), "not degraded");
    assert!(
        dom.contains("kept in conflicts_*.csv files"),
        "no reason shown"
    );
    service.interrupt();
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
}
