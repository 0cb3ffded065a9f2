//! The real PLC simulators, which neither we nor our drivers' libraries wrote: `virtual-plc`
//! (Mitsubishi MC protocol 3E/4E), `pymodbus` (Modbus TCP) and an `asyncua` OPC UA server,
//! installed on demand into a Python virtualenv under `target/plc-simulators/` and started on
//! free loopback ports.
//!
//! Without Python (with venv support) or the packages, [`simulators`] returns `None` after
//! printing a loud SKIPPED banner, except when `REQUIRE_PLC_SIMULATORS=1` (CI), where it
//! panics: a CI machine that silently skipped these tests would prove nothing.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The packages, pinned so that every machine tests against the same servers.
pub const PACKAGES: &[&str] = &[
    "virtual-plc==0.3.0",
    "pymodbus==3.16.1",
    "pymcprotocol==0.3.0",
    "asyncua==2.1.0",
];

/// The variable that turns a skip into a failure.
pub const REQUIRE: &str = "REQUIRE_PLC_SIMULATORS";

const MODBUS_SERVER: &str = include_str!("modbus_server.py");
const OPCUA_SERVER: &str = include_str!("opcua_server.py");

/// The virtualenv with the simulators installed.
#[derive(Debug)]
pub struct Simulators {
    python: PathBuf,
    dir: PathBuf,
}

static SETUP: OnceLock<Result<Simulators, String>> = OnceLock::new();
static INSTALL: Mutex<()> = Mutex::new(());

/// The simulators, installing them on first use; `None` (after a loud banner naming `test`)
/// when they cannot be had and `REQUIRE_PLC_SIMULATORS` is not `1`.
pub fn simulators(test: &str) -> Option<&'static Simulators> {
    let setup = SETUP.get_or_init(|| {
        let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
        install()
    });
    match setup {
        Ok(simulators) => Some(simulators),
        Err(why) if std::env::var(REQUIRE).as_deref() == Ok("1") => {
            panic!("{REQUIRE}=1 but the PLC simulators are unavailable: {why}")
        }
        Err(why) => {
            // Straight to stderr, not eprintln!: the test harness captures the macros' output
            // of a passing test, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "\n==================== SKIPPED {test} ====================\n\
                 The PLC simulators (virtual-plc, pymodbus, asyncua) are unavailable: {why}\n\
                 Install python3 with venv support (Debian: python3-venv); CI sets {REQUIRE}=1.\n\
                 ==========================================================\n"
            );
            None
        }
    }
}

fn install() -> Result<Simulators, String> {
    let dir = crate::target_dir().join("plc-simulators");
    let venv = dir.join("venv");
    let python = venv.join(if cfg!(windows) {
        "Scripts/python.exe"
    } else {
        "bin/python"
    });
    let marker = venv.join("installed.txt");
    let wanted = PACKAGES.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && python.exists()
    {
        return finish(python, dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Another test process may be installing: wait for it, then use its work.
    let _lock = InstallLock::take(&dir.join("install.lock"))?;
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && python.exists()
    {
        return finish(python, dir);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let base = ["python3", "python"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .ok_or("no python3 on PATH")?;
    run(
        Command::new(base).args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    )?;
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--disable-pip-version-check", "-q"])
        .args(PACKAGES);
    run(&mut pip, "pip install")?;
    std::fs::write(&marker, wanted)
        .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    finish(python, dir)
}

/// A lock file held while one process installs; a lock older than ten minutes is stale (its
/// process died) and is taken over.
struct InstallLock(PathBuf);

impl InstallLock {
    fn take(path: &Path) -> Result<InstallLock, String> {
        let started = Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(_) => return Ok(InstallLock(path.to_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(600));
                    if stale {
                        let _ = std::fs::remove_file(path);
                    } else if started.elapsed() > Duration::from_secs(900) {
                        return Err(format!("{} is held by another install", path.display()));
                    } else {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
                Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
            }
        }
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn finish(python: PathBuf, dir: PathBuf) -> Result<Simulators, String> {
    for (name, text) in [
        ("modbus_server.py", MODBUS_SERVER),
        ("opcua_server.py", OPCUA_SERVER),
    ] {
        let script = dir.join(name);
        std::fs::write(&script, text)
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    }
    Ok(Simulators { python, dir })
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    Err(format!(
        "{what} failed ({}): {}",
        output.status,
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    ))
}

/// A running simulator; killed when dropped.
pub struct Simulator {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    stdin: Mutex<Option<ChildStdin>>,
    next_command: AtomicU64,
    files: tempfile_dir::TempDir,
}

impl Simulator {
    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Its scratch folder (removed when it is dropped).
    pub fn dir(&self) -> &Path {
        self.files.path()
    }

    /// Sends one command (a JSON object's members, without braces, e.g. `"op": "bench"`) on
    /// its standard input and returns the JSON it answers. For simulators started with a
    /// command channel ([`Simulators::opcua`]).
    pub fn command(&self, members: &str) -> String {
        let id = self.next_command.fetch_add(1, Ordering::SeqCst);
        {
            let mut stdin = self.stdin.lock().unwrap_or_else(|p| p.into_inner());
            let pipe = stdin
                .as_mut()
                .expect("this simulator was started without a command channel");
            writeln!(pipe, "{{\"id\": {id}, {members}}}")
                .and_then(|()| pipe.flush())
                .expect("send a command to the simulator");
        }
        let prefix = format!("reply {id} ");
        let started = Instant::now();
        loop {
            if let Some(reply) = self
                .log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
            {
                assert!(
                    !reply.contains("\"error\""),
                    "the simulator refused {members}: {reply}"
                );
                return reply;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the simulator did not answer {members} within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Freezes it with SIGSTOP (a peer that hangs: its connections stay open and the kernel
    /// still accepts new ones, but nothing is answered). Unix only; [`Simulator::resume`]
    /// thaws it, dropping it kills it either way.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Thaws a [`Simulator::pause`]d simulator (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -{name} {} failed", self.child.id());
    }

    /// Kills it (a PLC that dies mid-run).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Simulators {
    /// Starts `virtual-plc` (profile Q, 3E binary) seeded with `seed` (its JSON memory
    /// snapshot: `{"D": {"100": [1, 2]}, "M": {"0": [1, 0]}}`) and an optional fault plan.
    pub fn virtual_plc(&self, seed: &str, fault_plan: Option<&str>) -> Simulator {
        let files = tempfile_dir::TempDir::new(&self.dir);
        let seed_path = files.path().join("seed.json");
        std::fs::write(&seed_path, seed).expect("write the seed");
        let mut command = Command::new(&self.python);
        command
            .args([
                "-m",
                "virtual_plc",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--init",
            ])
            .arg(&seed_path);
        if let Some(plan) = fault_plan {
            let plan_path = files.path().join("faults.json");
            std::fs::write(&plan_path, plan).expect("write the fault plan");
            command.arg("--fault-plan").arg(&plan_path);
        }
        spawn(command, files)
    }

    /// Starts a pymodbus TCP server (unit 1; 1000 of each table) seeded with `seed`:
    /// `{"hr": {"0": 11}, "ir": {...}, "co": {"3": true}, "di": {...}}`.
    pub fn pymodbus(&self, seed: &str) -> Simulator {
        self.pymodbus_on(seed, 0)
    }

    /// [`pymodbus`](Self::pymodbus) on a given port (0: a free one), e.g. to restart a
    /// killed server where its clients expect it.
    pub fn pymodbus_on(&self, seed: &str, port: u16) -> Simulator {
        let files = tempfile_dir::TempDir::new(&self.dir);
        let seed_path = files.path().join("seed.json");
        std::fs::write(&seed_path, seed).expect("write the seed");
        let mut command = Command::new(&self.python);
        command
            .arg(self.dir.join("modbus_server.py"))
            .arg(&seed_path)
            .arg(port.to_string());
        spawn(command, files)
    }

    /// Starts the asyncua OPC UA server (`opcua_server.py`, address space in its header) on
    /// `port` (0: a free one), with `args` (`--secure DIR`, `--user NAME --password SECRET`,
    /// `--bench N`). Values are changed with [`Simulator::command`]:
    /// `"op": "set", "node": "Double", "value": 2.5, "status": "Good", "source": "<ISO time>"`.
    pub fn opcua(&self, port: u16, args: &[&str]) -> Simulator {
        let files = tempfile_dir::TempDir::new(&self.dir);
        let port = if port == 0 { free_port() } else { port };
        let mut command = Command::new(&self.python);
        command
            .arg(self.dir.join("opcua_server.py"))
            .arg(port.to_string())
            .args(args);
        spawn_with(command, files, true)
    }

    /// The virtualenv's python (for a pymcprotocol client script, say).
    pub fn python(&self) -> &Path {
        &self.python
    }
}

/// A loopback port nobody listens on now (asyncua advertises its endpoint URL with the port,
/// so it cannot bind port 0 itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts `command` and waits for its "listening on 127.0.0.1:PORT" line.
fn spawn(command: Command, files: tempfile_dir::TempDir) -> Simulator {
    spawn_with(command, files, false)
}

/// [`spawn`], with its standard input as a command channel when `commands`.
fn spawn_with(mut command: Command, files: tempfile_dir::TempDir, commands: bool) -> Simulator {
    command
        .stdin(if commands {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start the simulator");
    let stdin = child.stdin.take();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    for pipe in [
        stdout.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        stderr.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
    }
    let started = Instant::now();
    let port = loop {
        let found = log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find_map(|line| {
                let rest = line.split("listening on 127.0.0.1:").nth(1)?;
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u16>().ok()
            });
        if let Some(port) = found {
            break port;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the simulator exited ({status}) before listening:\n{}",
                log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
            );
        }
        // asyncua builds its whole standard address space at start: ~3 s alone, much
        // longer on a loaded two-core machine.
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the simulator did not listen within 180 s:\n{}",
            log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Simulator {
        child,
        port,
        log,
        stdin: Mutex::new(stdin),
        next_command: AtomicU64::new(1),
        files,
    }
}

/// A directory removed on drop (to keep this crate free of dependencies).
mod tempfile_dir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    pub struct TempDir(PathBuf);

    static NEXT: AtomicU32 = AtomicU32::new(0);

    impl TempDir {
        pub fn new(parent: &Path) -> TempDir {
            let n = NEXT.fetch_add(1, Ordering::SeqCst);
            let path = parent.join(format!("run-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).expect("create a simulator folder");
            TempDir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
