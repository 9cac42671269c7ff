//! Starting a container, and the supervisor that tends it while it runs.
//!
//! Every start, from the CLI or the Engine API, launches a **supervisor**: the kiln binary
//! itself, re-executed as `kiln --root ROOT container-supervisor ID` (a fresh single-threaded
//! process, so forking the container there is safe even when the caller is the API service's
//! multi-threaded runtime). The supervisor double-forks away from its caller, builds the
//! runtime spec from the container's settings, starts the program, and reports `ok` or the
//! start error on a pipe (fd 3) to the caller, who returns then. While the program runs the
//! supervisor writes its output to the log (see [`super::log`]), serves its published ports,
//! and listens on `attach.sock` in the container's directory, where an attacher sends the
//! program's standard input (`stdin\n` then the bytes) or a terminal size (`resize H W\n`), as
//! conmon does for podman. While a run lives a thread of it runs the container's healthcheck
//! (see [`super::health`]). When the program exits the restart policy decides (see
//! [`super::restart`]): the supervisor records `restarting`, waits docker's back-off and
//! starts the program again into the same log; otherwise it records the exit code (record
//! and exit file) and, for `--rm`, removes the container.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_executor::spec::{ContainerSpec, MountSpec, NetworkSpec, Rootfs, StdioSpec};
use kiln_executor::state::{ContainerRecord, Status, Store};

use super::health::{Health, HealthMonitor};
use super::lifecycle::{clear_exit_file, write_exit_file};
use super::log::{now_nanos, LogStream, LogWriter};
use super::restart::{user_stop, UserStop};
use super::settings::{ContainerMount, ContainerSettings};
use super::{from_executor, is_running};
use crate::{Engine, Error, Result};

/// The hidden subcommand of the kiln binary that runs [`supervise`].
pub const SUPERVISOR_COMMAND: &str = "container-supervisor";

/// The supervisor's socket in the container's directory.
pub(crate) const ATTACH_SOCKET: &str = "attach.sock";

/// The descriptor on which the supervisor reports the start to its caller.
const REPORT_FD: RawFd = 3;

/// What a start did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// The program was started; its PID 1 as the host sees it.
    Started {
        /// The host pid of the container's first process.
        pid: i32,
    },
    /// It was running already (docker's 304).
    AlreadyRunning,
}

/// A path to `name` inside the directory open as `dir` that fits in a socket address: a
/// container's directory under a long `--root` would not (108 bytes at most).
pub(crate) fn short_path(dir: &OwnedFd, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

/// Opens a directory as an `O_PATH` handle (for [`short_path`]).
pub(crate) fn open_dir_path(dir: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::io("opening", dir, e.into()))?;
    Ok(fd)
}

/// Connects to a running container's supervisor socket.
pub(crate) fn connect_supervisor(dir: &Path) -> Result<UnixStream> {
    let handle = open_dir_path(dir)?;
    let path = short_path(&handle, ATTACH_SOCKET);
    UnixStream::connect(&path).map_err(|e| Error::io("connecting to", dir.join(ATTACH_SOCKET), e))
}

impl Engine {
    /// Starts a created or exited container and returns once its program runs (or with the
    /// reason it could not start: [`Error::Start`] with docker's 126/127 for a program that
    /// cannot be executed).
    pub fn start_container(&self, key: &str) -> Result<StartOutcome> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        if is_running(&rec) {
            return Ok(StartOutcome::AlreadyRunning);
        }
        let dir = store.dir(&rec.id);
        super::restart::clear_user_stop(&dir);
        let (report, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::Internal(format!("creating a pipe: {e}")))?;
        let err_path = dir.join("supervisor.err");
        let err_log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&err_path)
            .map_err(|e| Error::io("opening", &err_path, e))?;
        let program = self.program();
        let mut cmd = std::process::Command::new(&program);
        cmd.arg("--root")
            .arg(self.root())
            .arg(SUPERVISOR_COMMAND)
            .arg(&rec.id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(err_log);
        let w = report_w.as_raw_fd();
        // SAFETY: the closure runs between fork and exec and only calls dup2 and fcntl,
        // which are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(w, REPORT_FD) < 0 || libc::fcntl(REPORT_FD, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io("starting the supervisor", &program, e))?;
        drop(report_w);
        // The supervisor forks itself away at once: this reaps the first process only.
        let _ = child.wait();
        let mut text = String::new();
        File::from(report)
            .read_to_string(&mut text)
            .map_err(|e| Error::Internal(format!("reading the supervisor's report: {e}")))?;
        if let Some(pid) = text.strip_prefix("ok ") {
            return Ok(StartOutcome::Started {
                pid: pid.trim().parse().unwrap_or(0),
            });
        }
        if let Some(rest) = text.strip_prefix("err ") {
            let (code, message) = rest.split_once('\n').unwrap_or((rest, ""));
            return Err(Error::Start {
                code: code.trim().parse().unwrap_or(125),
                message: message.to_string(),
            });
        }
        let detail = std::fs::read_to_string(&err_path).unwrap_or_default();
        Err(Error::Internal(format!(
            "the container's supervisor died before the container started{}",
            detail
                .lines()
                .last()
                .map(|l| format!(": {l}"))
                .unwrap_or_default()
        )))
    }
}

/// The supervisor's body (`kiln container-supervisor ID`); never returns to the caller's
/// main. Must be called before kiln starts any thread.
pub fn supervise(root: &Path, id: &str) -> ! {
    // A session of its own, and not the caller's child: the caller reaps the first process
    // and goes on; the supervisor outlives it (a `kiln run -d`, a service that exits idle).
    let _ = nix::unistd::setsid();
    // SAFETY: kiln has started no thread yet (the caller's contract), so the child may do
    // anything after fork.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {}
        // SAFETY: _exit in the parent of the double fork, whose only job is done.
        Ok(nix::unistd::ForkResult::Parent { .. }) => unsafe { libc::_exit(0) },
        Err(_) => {}
    }
    // SAFETY: fd 3 is the report pipe the starter set up for this process alone.
    let mut report = unsafe { File::from_raw_fd(REPORT_FD) };
    let code = match Supervisor::prepare(root, id) {
        Ok(s) => s.run(report),
        Err(e) => {
            let _ = write!(report, "err 125\n{}", e.display_chain());
            1
        }
    };
    std::process::exit(code)
}

/// What attachers reach of the current run: its input, and its pty master (-1: none).
struct RunIo {
    stdin: Arc<Mutex<Option<File>>>,
    master: Arc<AtomicI32>,
}

/// One start of one container.
struct Supervisor {
    root: PathBuf,
    store: Store,
    dir: PathBuf,
    rec: ContainerRecord,
    settings: ContainerSettings,
    listener: UnixListener,
    /// Whether attachers are being served (from the first run on).
    serving: bool,
}

impl Supervisor {
    fn prepare(root: &Path, id: &str) -> Result<Supervisor> {
        let store = Store::open(root).map_err(from_executor)?;
        let rec = store.load(id).map_err(from_executor)?;
        let dir = store.dir(id);
        let settings = ContainerSettings::load(&dir)?;
        let handle = open_dir_path(&dir)?;
        let sock = short_path(&handle, ATTACH_SOCKET);
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock)
            .map_err(|e| Error::io("listening on", dir.join(ATTACH_SOCKET), e))?;
        Ok(Supervisor {
            root: root.to_path_buf(),
            store,
            dir,
            rec,
            settings,
            listener,
            serving: false,
        })
    }

    fn spec(&self) -> Result<ContainerSpec> {
        let s = &self.settings;
        let rootfs = Rootfs::Overlay {
            lowers: s.lowers.clone(),
            upper: self.dir.join("upper"),
            work: self.dir.join("work"),
        };
        let mut spec = ContainerSpec::new(
            self.rec.id.clone(),
            rootfs,
            s.args.clone(),
            self.dir.clone(),
        );
        spec.process.set_env(Some(s.env.clone()));
        spec.process.set_cwd(PathBuf::from(&s.cwd));
        let mut user = oci_spec::runtime::User::default();
        user.set_username(Some(s.user.clone()));
        user.set_additional_gids(Some(s.group_add.clone()));
        spec.process.set_user(user);
        spec.process.set_terminal(Some(s.tty));
        spec.process
            .set_no_new_privileges(Some(s.no_new_privileges));
        spec.process.set_rlimits(if s.rlimits.is_empty() {
            None
        } else {
            Some(s.rlimits.clone())
        });
        spec.seccomp = s.seccomp;
        spec.capabilities = s
            .capabilities
            .iter()
            .filter_map(|n| kiln_executor::caps::parse_name(n).ok().flatten())
            .collect();
        if !s.hostname.is_empty() {
            spec.hostname = s.hostname.clone();
        }
        spec.readonly_rootfs = s.read_only;
        spec.init = s.init;
        spec.mounts = s
            .mounts
            .iter()
            .map(|m| match m.clone() {
                ContainerMount::Bind {
                    source,
                    destination,
                    readonly,
                    ..
                } => MountSpec::Bind {
                    source,
                    destination,
                    readonly,
                },
                ContainerMount::Tmpfs { destination, size } => {
                    MountSpec::Tmpfs { destination, size }
                }
                ContainerMount::Cache {
                    source,
                    destination,
                    sharing,
                    readonly,
                } => MountSpec::Cache {
                    source,
                    destination,
                    sharing,
                    readonly,
                },
            })
            .collect();
        spec.network = NetworkSpec {
            mode: s.network,
            ports: s.ports.clone(),
            extra_hosts: s.extra_hosts.clone(),
            dns: s.dns.clone(),
            ..Default::default()
        };
        spec.resources = s.resources.clone();
        Ok(spec)
    }

    /// Starts the program, reports, tends it until it exits, and starts it again while its
    /// restart policy says so; returns the process's exit code.
    fn run(mut self, report: File) -> i32 {
        clear_exit_file(&self.dir);
        // A user's start begins the count again (docker's `ResetRestartManager`).
        self.rec.restart_count = 0;
        // One log for every run: `logs` shows each attempt's lines, as docker's does.
        let log = LogWriter::open(&self.dir.join("log"))
            .ok()
            .map(|l| Arc::new(Mutex::new(l)));
        let io = RunIo {
            stdin: Arc::new(Mutex::new(None)),
            master: Arc::new(AtomicI32::new(-1)),
        };
        let mut report = Some(report);
        let mut backoff = super::restart::Backoff::default();
        loop {
            let Some((code, ran)) = self.run_once(&mut report, log.as_ref(), &io) else {
                return 0;
            };
            let stop = user_stop(&self.dir);
            let again = stop != Some(UserStop::Cancel)
                && self.settings.restart_policy.should_restart(
                    code,
                    self.rec.restart_count,
                    stop.is_some(),
                );
            if !again || !self.still_ours() {
                self.finish(code);
                return 0;
            }
            self.restarting(code);
            if !self.back_off(backoff.next(ran)) {
                self.stopped_while_restarting(code);
                return 0;
            }
        }
    }

    /// One run: the program started (reported to the caller on the first), logged, checked
    /// for health, waited for. Returns its exit code and how long it ran, or `None` when it
    /// could not start (recorded then).
    fn run_once(
        &mut self,
        report: &mut Option<File>,
        log: Option<&Arc<Mutex<LogWriter>>>,
        io: &RunIo,
    ) -> Option<(i32, Duration)> {
        let fail = |report: &mut Option<File>, message: &str| {
            if let Some(mut r) = report.take() {
                let _ = write!(r, "err 125\n{message}");
            }
        };
        let mut spec = match self.spec() {
            Ok(s) => s,
            Err(e) => {
                fail(report, &e.display_chain());
                self.rec.error = Some(e.display_chain());
                self.finish(125);
                return None;
            }
        };
        let tty = self.settings.tty;
        // Standard streams: pipes kiln reads into the log, or the pty the executor makes.
        let mut readers: Vec<(LogStream, File)> = Vec::new();
        let mut stdin_writer: Option<File> = None;
        if !tty {
            for stream in [LogStream::Stdout, LogStream::Stderr] {
                let Ok((r, w)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
                    fail(report, "creating a pipe");
                    self.finish(125);
                    return None;
                };
                readers.push((stream, File::from(r)));
                match stream {
                    LogStream::Stdout => spec.stdout = StdioSpec::Fd(w),
                    LogStream::Stderr => spec.stderr = StdioSpec::Fd(w),
                }
            }
            spec.stdin = if self.settings.open_stdin {
                match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
                    Ok((r, w)) => {
                        stdin_writer = Some(File::from(w));
                        StdioSpec::Fd(r)
                    }
                    Err(_) => StdioSpec::Null,
                }
            } else {
                StdioSpec::Null
            };
        } else {
            spec.stdin = StdioSpec::Null;
            spec.stdout = StdioSpec::Null;
            spec.stderr = StdioSpec::Null;
        }

        let me = std::process::id() as i32;
        self.rec.supervisor = Some(me);
        self.rec.supervisor_start = kiln_executor::state::process_start_time(me);
        self.rec.start_count += 1;
        self.rec.status = Status::Created;
        self.rec.pid = None;
        if report.is_some() {
            self.rec.exit_code = None;
        }
        self.rec.error = None;
        if self.store.save(&self.rec).is_err() {
            fail(report, "saving the container's record");
            return None;
        }

        if let Err(e) = crate::networks::attach::join_all(
            &self.root,
            &self.rec,
            &self.settings,
            &mut spec.network,
        ) {
            let message = e.display_chain();
            fail(report, &message);
            self.rec.error = Some(message);
            self.finish(125);
            return None;
        }
        let running = match kiln_executor::launch::start(spec) {
            Ok(r) => r,
            Err(e) => {
                let code = match &e {
                    kiln_executor::Error::Exec { code, .. } => *code,
                    _ => 125,
                };
                let message = e.to_string();
                self.rec.error = Some(message.clone());
                self.finish(code);
                if let Some(mut r) = report.take() {
                    let _ = write!(r, "err {code}\n{message}");
                }
                return None;
            }
        };
        let started = Instant::now();
        self.rec.status = Status::Running;
        self.rec.pid = Some(running.pid);
        crate::networks::attach::record_netns(&self.root, &self.rec.id, running.pid);
        self.rec.started_at = Some(now_nanos());
        self.rec.ports = running
            .ports
            .as_ref()
            .map(|p| super::port_strings(&p.bound))
            .unwrap_or_default();
        let _ = self.store.save(&self.rec);
        // The health state of this run, reset before anyone hears of the start: `inspect`
        // right after `run -d` says `starting`.
        let check = self.settings.healthcheck.clone();
        let check_cmd = check.as_ref().and_then(|c| c.command());
        if check_cmd.is_some() {
            let _ = Health::reset(&self.dir).save(&self.dir);
        }
        self.event("start", &[]);
        if let Some(mut r) = report.take() {
            let _ = write!(r, "ok {}", running.pid);
            // The caller reads to EOF: dropping our end closes it.
        }

        let mut pumps = Vec::new();
        if let Some(master) = running.pty_master.as_ref() {
            if let Ok(dup) = master.try_clone() {
                stdin_writer = if self.settings.open_stdin {
                    master.try_clone().ok().map(File::from)
                } else {
                    None
                };
                readers.push((LogStream::Stdout, File::from(dup)));
            }
        }
        if let Ok(mut s) = io.stdin.lock() {
            *s = stdin_writer;
        }
        io.master.store(
            running.pty_master.as_ref().map_or(-1, |m| m.as_raw_fd()),
            Ordering::SeqCst,
        );
        if !self.serving {
            // Only now: an attacher that connected before the start (docker run's order)
            // waits in the socket's backlog until the run's input is there to take its bytes.
            self.serving = true;
            self.serve_attachers(io);
        }
        for (stream, mut from) in readers {
            let Some(log) = log.cloned() else { continue };
            pumps.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 32 * 1024];
                // A pty reads EIO once every holder of its other end has closed it.
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut l) = log.lock() {
                        let _ = l.write(stream, &buf[..n]);
                    }
                }
            }));
        }
        let monitor = match (check, check_cmd) {
            (Some(check), Some(cmd)) => Some(self.start_health_monitor(check, cmd, started)),
            _ => None,
        };

        let code = running.wait().unwrap_or(125);
        let ran = started.elapsed();
        io.master.store(-1, Ordering::SeqCst);
        if let Ok(mut s) = io.stdin.lock() {
            *s = None;
        }
        // Every process of the container is gone with its PID 1, and with them the pipes'
        // write ends: the pumps finish once they have logged the last bytes.
        for p in pumps {
            let _ = p.join();
        }
        if let Some((stop, thread)) = monitor {
            drop(stop);
            let _ = thread.join();
            // dockerd's monitor leaves a stopped container `unhealthy`.
            if let Some(mut h) = Health::load(&self.dir) {
                h.status = super::health::UNHEALTHY.into();
                let _ = h.save(&self.dir);
            }
        }
        Some((code, ran))
    }

    /// Accepts attachers on the supervisor's socket for the rest of its life, each on a
    /// thread of its own, handing them the current run's input and terminal.
    fn serve_attachers(&self, io: &RunIo) {
        let Ok(listener) = self.listener.try_clone() else {
            return;
        };
        let (stdin, master) = (io.stdin.clone(), io.master.clone());
        let stdin_once = self.settings.stdin_once;
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (stdin, master) = (stdin.clone(), master.clone());
                std::thread::spawn(move || serve_attacher(conn, &stdin, stdin_once, &master));
            }
        });
    }

    /// Starts the healthcheck loop of this run on a thread of its own (each check's exec is
    /// tied to the thread that made it); dropping the sender stops it.
    fn start_health_monitor(
        &self,
        check: super::health::Healthcheck,
        cmd: Vec<String>,
        started: Instant,
    ) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (stop_tx, stop_rx) = std::sync::mpsc::channel();
        let (root, dir, rec) = (self.root.clone(), self.dir.clone(), self.rec.clone());
        let thread = std::thread::spawn(move || {
            let engine = Engine::new(&root);
            let event_root = root.clone();
            let event_rec = rec.clone();
            let monitor = HealthMonitor {
                id: rec.id.clone(),
                dir,
                check,
                cmd,
                started,
                on_change: Box::new(move |status| {
                    crate::activity::record(
                        &event_root,
                        &crate::activity::SystemEvent::container(
                            &event_rec,
                            &format!("health_status: {status}"),
                            &[],
                        ),
                    );
                }),
            };
            monitor.run(&engine, &stop_rx);
        });
        (stop_tx, thread)
    }

    /// Whether the record on disk is still this supervisor's run (not removed, not started
    /// by someone else).
    fn still_ours(&self) -> bool {
        self.store
            .load(&self.rec.id)
            .is_ok_and(|r| r.start_count == self.rec.start_count)
    }

    /// Records a run that ended and is to be started again: docker's `restarting` state,
    /// with the run's exit code, and its `die` event.
    fn restarting(&mut self, code: i32) {
        write_exit_file(&self.dir, code);
        self.event("die", &[("exitCode", code.to_string())]);
        self.rec.restart_count += 1;
        self.rec.status = Status::Restarting;
        self.rec.exit_code = Some(code);
        self.rec.pid = None;
        self.rec.ports.clear();
        self.rec.finished_at = Some(now_nanos());
        let _ = self.store.save(&self.rec);
    }

    /// Waits out the back-off; false when a user's stop (or a removal) ends the wait.
    fn back_off(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            if user_stop(&self.dir) == Some(UserStop::Cancel) || !self.still_ours() {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// A stop during the back-off: the container is exited with its last run's code (its
    /// `die` was recorded when that run ended).
    fn stopped_while_restarting(&mut self, code: i32) {
        let _ = std::fs::remove_file(self.dir.join(ATTACH_SOCKET));
        if !self.still_ours() {
            return;
        }
        self.rec.status = Status::Exited;
        self.rec.exit_code = Some(code);
        let _ = self.store.save(&self.rec);
    }

    /// Records the end of this run: the exit file, then the record (or the removal for
    /// `--rm`). A container removed meanwhile (`rm -f`) is left gone.
    fn finish(&mut self, code: i32) {
        crate::networks::attach::leave_all(&self.root, &self.rec.id);
        let _ = std::fs::remove_file(self.dir.join(ATTACH_SOCKET));
        write_exit_file(&self.dir, code);
        let Ok(current) = self.store.load(&self.rec.id) else {
            return;
        };
        if current.start_count != self.rec.start_count {
            return;
        }
        self.event("die", &[("exitCode", code.to_string())]);
        if self.rec.auto_remove {
            if let Ok(trash) = self.store.discard(&self.rec.id) {
                let _ = kiln_executor::state::remove_tree_one_fs(&trash);
            }
            self.event("destroy", &[]);
            return;
        }
        self.rec.status = Status::Exited;
        self.rec.exit_code = Some(code);
        self.rec.pid = None;
        self.rec.finished_at = Some(now_nanos());
        let _ = self.store.save(&self.rec);
    }
}

impl Supervisor {
    fn event(&self, action: &str, extra: &[(&str, String)]) {
        crate::activity::record(
            &self.root,
            &crate::activity::SystemEvent::container(&self.rec, action, extra),
        );
    }
}

/// One connection to the supervisor's socket: `stdin\n` then bytes for the program's
/// standard input, or `resize ROWS COLS\n`.
fn serve_attacher(
    mut conn: UnixStream,
    stdin: &Mutex<Option<File>>,
    stdin_once: bool,
    master: &AtomicI32,
) {
    let master = Some(master.load(Ordering::SeqCst)).filter(|fd| *fd >= 0);
    let mut header = Vec::new();
    let mut byte = [0u8; 1];
    while header.len() < 64 {
        match conn.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => header.push(byte[0]),
            _ => return,
        }
    }
    let header = String::from_utf8_lossy(&header).into_owned();
    let mut words = header.split_whitespace();
    match words.next() {
        Some("resize") => {
            let rows = words.next().and_then(|w| w.parse().ok());
            let cols = words.next().and_then(|w| w.parse().ok());
            if let (Some(fd), Some(rows), Some(cols)) = (master, rows, cols) {
                kiln_executor::pty::set_size(fd, rows, cols);
            }
            let _ = conn.write_all(b"ok\n");
        }
        Some("stdin") => {
            let Ok(mut guard) = stdin.lock() else { return };
            let Some(to) = guard.as_mut() else { return };
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            if stdin_once {
                // The program sees end of input (a pty's copy stays: closing it would
                // hang the terminal up; EOF there is the user's ^D).
                if master.is_none() {
                    *guard = None;
                }
            }
        }
        _ => {}
    }
}
