//! A throwaway PostgreSQL cluster for the tests: `initdb` in a temp dir, the server on a
//! loopback port (and a socket in the same dir), run as an unprivileged user when the tests
//! run as root (CI does, and PostgreSQL refuses root), stopped and removed on drop — the
//! whole process group, so a failing test leaves no server behind.
//!
//! Debian's `postgresql-15` puts its programs in `/usr/lib/postgresql/15/bin`, off `PATH`;
//! `CIVIC_PG_BIN` names another folder. Nothing here is a mock: the engine under test talks
//! to a real server over the real protocol.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's PostgreSQL 15 keeps `initdb`, `postgres` and `pg_isready`.
pub const DEBIAN_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// How long a cluster may take to accept connections before the harness gives up: a guard
/// against a server that never comes up, not a bound any test depends on.
const START_WITHIN: Duration = Duration::from_secs(120);

/// A running PostgreSQL cluster, removed on drop.
pub struct Postgres {
    /// The server's port on 127.0.0.1.
    pub port: u16,
    /// The database superuser (trust authentication on loopback only).
    pub user: String,
    server: Child,
    dir: tempfile::TempDir,
}

/// The shared cluster, for the exit handler to stop.
static CLEANUP: std::sync::atomic::AtomicPtr<Postgres> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// The uid and gid the cluster runs as: ours, or `nobody`'s when we are root.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    // SAFETY: getpwnam returns a pointer to static storage or null; it is read at once.
    let pw = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root and there is no `nobody` user to run PostgreSQL as"
    );
    // SAFETY: pw is non-null and points to a valid passwd record.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// The folder holding PostgreSQL's programs (`CIVIC_PG_BIN`, else Debian's).
pub fn bin_dir() -> PathBuf {
    std::env::var_os("CIVIC_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEBIAN_PG_BIN))
}

fn command(bin: &Path, program: &str, owner: Option<(u32, u32)>) -> Command {
    let path = bin.join(program);
    assert!(
        path.exists(),
        "{} not found: install Debian's postgresql-15 (apt-get install postgresql-15), or set \
         CIVIC_PG_BIN to the folder holding initdb and postgres",
        path.display()
    );
    let mut cmd = Command::new(path);
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn chown_to(path: &Path, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("cannot hand {} to uid {uid}: {e}", path.display()));
    }
}

/// Starts `postgres` on the cluster in `dir`, its log appended to `dir/server.log`.
fn spawn_server(bin: &Path, owner: Option<(u32, u32)>, dir: &Path, port: u16) -> Child {
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("server.log"))
        .expect("the server log");
    command(bin, "postgres", owner)
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .arg("-k")
        .arg(dir)
        .args(server_options())
        .current_dir(dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("postgres starts")
}

/// Extra `postgres` options for diagnosis, from `CIVIC_PG_OPTIONS` (space-separated, as
/// `-c shared_preload_libraries=pg_stat_statements`); none by default.
fn server_options() -> Vec<String> {
    std::env::var("CIVIC_PG_OPTIONS")
        .map(|o| o.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Postgres {
    /// Makes a cluster and starts it; returns once it accepts connections.
    pub fn start() -> Postgres {
        // A port taken between choosing and binding makes the server exit: try again.
        for _ in 0..5 {
            match Self::try_start() {
                Ok(pg) => return pg,
                Err(log) if log.contains("could not bind") || log.contains("in use") => {}
                Err(log) => panic!("PostgreSQL did not start: {log}"),
            }
        }
        panic!("PostgreSQL found no free port in five tries");
    }

    fn try_start() -> Result<Postgres, String> {
        let bin = bin_dir();
        let owner = run_as();
        let dir = tempfile::Builder::new()
            .prefix("civic-pg-")
            .tempdir()
            .expect("a temp dir for the cluster");
        chown_to(dir.path(), owner);
        let data = dir.path().join("data");
        let user = "civic".to_owned();
        let out = command(&bin, "initdb", owner)
            .arg("-D")
            .arg(&data)
            .args(["-U", &user, "--auth=trust", "-E", "UTF8", "--locale=C"])
            .current_dir(dir.path())
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log_path = dir.path().join("server.log");
        std::fs::File::create(&log_path).unwrap();
        chown_to(&log_path, owner);
        let server = spawn_server(&bin, owner, dir.path(), port);
        let mut pg = Postgres {
            port,
            user,
            server,
            dir,
        };
        if pg.wait_ready(&bin) {
            Ok(pg)
        } else {
            Err(pg.log())
        }
    }

    /// Starts the server again on the same folder and port after [`Postgres::stop_immediately`]
    /// (crash recovery runs as it would after a lost machine); returns once it accepts
    /// connections.
    pub fn restart(&mut self) {
        let _ = self.server.wait();
        self.server = spawn_server(&bin_dir(), run_as(), self.dir.path(), self.port);
        assert!(
            self.wait_ready(&bin_dir()),
            "PostgreSQL did not restart: {}",
            self.log()
        );
    }

    /// Waits until the server accepts connections; false if it exited first.
    fn wait_ready(&mut self, bin: &Path) -> bool {
        let started = Instant::now();
        loop {
            if self.server.try_wait().ok().flatten().is_some() {
                return false;
            }
            let ready = command(bin, "pg_isready", None)
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return true;
            }
            assert!(
                started.elapsed() < START_WITHIN,
                "PostgreSQL did not accept connections within {} s: {}",
                START_WITHIN.as_secs(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The connection string of database `db` (`postgres` exists from the start).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{db}?sslmode=disable",
            self.user, self.port
        )
    }

    /// Creates an empty database with a name never used before in this cluster and
    /// returns its connection string.
    pub fn fresh_database(&self) -> String {
        self.fresh_database_with(&[])
    }

    /// [`Postgres::fresh_database`] with more `createdb` options (a collation, say).
    pub fn fresh_database_with(&self, options: &[&str]) -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "civic_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let out = command(&bin_dir(), "createdb", None)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                &self.user,
            ])
            .args(options)
            .arg(&name)
            .output()
            .expect("createdb runs");
        assert!(
            out.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(&name)
    }

    /// One cluster for the whole test binary, started on first use and stopped (process
    /// group killed, folder removed) when the binary exits, whether its tests passed or
    /// failed: the test harness ends with `exit`, which runs `atexit` handlers.
    pub fn shared() -> &'static Postgres {
        static SHARED: std::sync::OnceLock<&'static Postgres> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            let pg: &'static mut Postgres = Box::leak(Box::new(Postgres::start()));
            let ptr: *mut Postgres = pg;
            CLEANUP.store(ptr, std::sync::atomic::Ordering::SeqCst);
            extern "C" fn stop_shared() {
                let ptr = CLEANUP.swap(std::ptr::null_mut(), std::sync::atomic::Ordering::SeqCst);
                if !ptr.is_null() {
                    // SAFETY: the pointer came from Box::leak above and is taken once (swap);
                    // nothing uses the cluster after exit began.
                    drop(unsafe { Box::from_raw(ptr) });
                }
            }
            // SAFETY: registering a plain extern "C" function with no arguments.
            unsafe {
                libc::atexit(stop_shared);
            }
            // SAFETY: the cluster lives until exit; the handler runs only then.
            unsafe { &*ptr }
        })
    }

    /// Stops the server at once, as a crash or a lost machine would (`pg_ctl -m immediate`).
    pub fn stop_immediately(&self) {
        let out = command(&bin_dir(), "pg_ctl", run_as())
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.server.id()
    }

    /// The cluster's folder (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn stop(&mut self) {
        let group = self.server.id() as libc::pid_t;
        // SIGQUIT is PostgreSQL's immediate shutdown; the group takes its backends too.
        // SAFETY: kill(2) with a negative pid signals that process group only.
        unsafe {
            libc::kill(-group, libc::SIGQUIT);
        }
        let waited = Instant::now();
        while self.server.try_wait().ok().flatten().is_none() {
            if waited.elapsed() > Duration::from_secs(10) {
                // SAFETY: as above.
                unsafe {
                    libc::kill(-group, libc::SIGKILL);
                }
                let _ = self.server.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Backends that outlived the postmaster for a moment.
        // SAFETY: as above; the group may be empty by now (ESRCH is fine).
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
