#![doc = include_str!("../README.md")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The superuser password of every throwaway cluster (host connections need it).
pub const PASSWORD: &str = "throwaway-pg-pw";

/// A PostgreSQL server of the test's own, in a temp dir.
pub struct PgCluster {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
    running: Mutex<bool>,
    _dir: tempfile::TempDir,
}

/// Where `pg_ctl` and `initdb` are: on the PATH, else Debian's versioned folders.
fn find_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("pg_ctl").is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or(55_432)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PgCluster {
    /// Creates and starts a cluster. Without the server binaries: a loud message and `None`,
    /// or a panic when `REQUIRE_PG=1`.
    pub fn start() -> Option<PgCluster> {
        let Some(bin) = find_bin() else {
            let message = "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: \
                           install Debian's postgresql package";
            if std::env::var("REQUIRE_PG").as_deref() == Ok("1") {
                panic!("REQUIRE_PG=1: {message}");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir for the cluster");
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("socket");
        let log = dir.path().join("postgres.log");
        let pwfile = dir.path().join("pwfile");
        std::fs::create_dir(&data).expect("data dir");
        std::fs::create_dir(&socket_dir).expect("socket dir");
        std::fs::write(&pwfile, PASSWORD).expect("password file");
        let as_postgres_user = is_root();
        if as_postgres_user {
            // PostgreSQL refuses to run as root: hand the folders to the postgres user.
            let status = Command::new("chmod")
                .arg("755")
                .arg(dir.path())
                .status()
                .expect("chmod");
            assert!(status.success());
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown to postgres failed");
        }
        let cluster = PgCluster {
            bin,
            data,
            log,
            socket_dir,
            port: free_port(),
            as_postgres_user,
            running: Mutex::new(false),
            _dir: dir,
        };
        let output = cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                cluster.data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth-local=trust".as_ref(),
                "--auth-host=scram-sha-256".as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
                "--no-sync".as_ref(),
            ],
        );
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.start_again();
        Some(cluster)
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Output {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// The connection URL (superuser, password, database `postgres`).
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=50",
            self.port,
            self.socket_dir.display()
        );
        let output = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                self.data.as_os_str(),
                "-l".as_ref(),
                self.log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "start".as_ref(),
            ],
        );
        assert!(
            output.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// Stops the server with a fast shutdown (open sessions are ended), as an outage.
    pub fn stop(&self) {
        self.stop_with("fast");
    }

    fn stop_with(&self, mode: &str) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if !*running {
            return;
        }
        let output = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                self.data.as_os_str(),
                "-m".as_ref(),
                mode.as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
        if output.status.success() {
            *running = false;
        } else {
            let _ = writeln!(
                std::io::stderr(),
                "pg_ctl stop failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// The server log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop_with("immediate");
    }
}
