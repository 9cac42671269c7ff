//! A container's end: stop (its stop signal, then SIGKILL), kill, wait and remove.

use std::io::{Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use kiln_executor::state::{process_alive, ContainerRecord, Status, Store};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::config::parse_signal;
use super::from_executor;
use super::restart::{mark_user_stop, UserStop};
use super::supervisor::StartOutcome;
use super::watch::DirWatch;
use crate::{Engine, Error, Result};

/// Whether the record's container still runs (its supervisor is alive and has not recorded
/// an exit).
pub fn is_running(rec: &ContainerRecord) -> bool {
    rec.status != Status::Exited
        && rec
            .supervisor
            .is_some_and(|p| process_alive(p, rec.supervisor_start))
}

/// Whether the container waits to be restarted by its policy: its last run has ended, as
/// docker's waiters see it (dockerd wakes them at each exit that leads to a restart).
fn restarting(rec: &ContainerRecord) -> bool {
    rec.status == Status::Restarting
}

/// The file in a container's directory holding its last exit code, written in place (never
/// replaced) by the supervisor before it records the exit or removes the container. A waiter
/// opens it before the container can go away, so it still reads the code through its open
/// descriptor after a `--rm` removal has deleted the directory: that is how
/// `wait?condition=removed` and `kiln run --rm` learn the exit code of a container that is gone.
pub(crate) const EXIT_FILE: &str = "exitcode";

/// Empties the exit file in place at a start (see [`EXIT_FILE`]).
pub(crate) fn clear_exit_file(dir: &Path) {
    if let Ok(f) = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(EXIT_FILE))
    {
        let _ = f.set_len(0);
    }
}

/// Writes `code` into the exit file in place (see [`EXIT_FILE`]).
pub(crate) fn write_exit_file(dir: &Path, code: i32) {
    if let Ok(f) = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(EXIT_FILE))
    {
        let text = format!("{code}\n");
        let _ = f.set_len(0);
        let _ = f.write_all_at(text.as_bytes(), 0);
    }
}

/// Waits until the container has exited or is gone (or `timeout` passes); true when it has.
pub fn wait_exited(store: &Store, id: &str, timeout: Duration) -> bool {
    let start = Instant::now();
    let watch = DirWatch::new(&store.dir(id));
    loop {
        match store.load(id) {
            Err(_) => return true,
            Ok(r) if !is_running(&r) => return true,
            Ok(_) => {}
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return false;
        }
        watch.wait(left.min(Duration::from_millis(200)));
    }
}

/// What a wait waits for (docker's `wait?condition=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitCondition {
    /// The container is not running: at once for one that is not (docker's default).
    #[default]
    NotRunning,
    /// The end of the next run: the current one, or the next start's.
    NextExit,
    /// The container is removed (`--rm`, or someone's `rm`).
    Removed,
}

/// How a waited-for run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOutcome {
    /// The exit code.
    pub exit_code: i32,
    /// Why the start failed, when it did.
    pub error: Option<String>,
}

/// A wait that began when it was made: a client that sends `wait` before `start` (as
/// `docker run` does) waits for the run that start begins.
pub struct ExitWatch {
    store: Store,
    id: String,
    condition: WaitCondition,
    run: u32,
    exit_file: Option<std::fs::File>,
    watch: DirWatch,
}

impl ExitWatch {
    /// Whether the condition holds now; the outcome when it does.
    pub fn poll(&mut self) -> Option<WaitOutcome> {
        let rec = self.store.load(&self.id).ok();
        let done = match (&rec, self.condition) {
            (None, _) => true,
            (Some(_), WaitCondition::Removed) => false,
            (Some(r), WaitCondition::NotRunning) => !is_running(r) || restarting(r),
            (Some(r), WaitCondition::NextExit) => {
                r.start_count > self.run
                    || (r.start_count == self.run && (!is_running(r) || restarting(r)))
            }
        };
        if !done {
            return None;
        }
        Some(match rec {
            Some(r) if r.status == Status::Exited || restarting(&r) => WaitOutcome {
                exit_code: r.exit_code.unwrap_or(0),
                error: r.error,
            },
            // Not running but not recorded as exited: the supervisor is between writing the
            // exit file and the record, or died there. The exit file, emptied at each start,
            // has the code then; empty, the supervisor died before its program ended and took
            // it along (the next `cleanup_stale` records the same 137).
            Some(r) => WaitOutcome {
                exit_code: self.read_exit_file().unwrap_or(if r.supervisor.is_some() {
                    137
                } else {
                    0
                }),
                error: r.error,
            },
            None => WaitOutcome {
                exit_code: self.removed_exit_code(),
                error: None,
            },
        })
    }

    fn read_exit_file(&mut self) -> Option<i32> {
        let mut text = String::new();
        let f = self.exit_file.as_mut()?;
        f.seek(std::io::SeekFrom::Start(0)).ok()?;
        f.read_to_string(&mut text).ok()?;
        text.trim().parse().ok()
    }

    fn removed_exit_code(&mut self) -> i32 {
        self.read_exit_file().unwrap_or(0)
    }

    /// Blocks until the condition holds (or `timeout` passes: `None`).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Option<WaitOutcome> {
        let start = Instant::now();
        loop {
            if let Some(out) = self.poll() {
                return Some(out);
            }
            let step = Duration::from_millis(200);
            let step = match timeout {
                Some(t) => {
                    let left = t.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        return None;
                    }
                    left.min(step)
                }
                None => step,
            };
            self.watch.wait(step);
        }
    }
}

fn send(pid: Option<i32>, sig: Signal) {
    if let Some(p) = pid {
        // A process that has just exited is not an error: it is what stop wants.
        let _ = nix::sys::signal::kill(Pid::from_raw(p), sig);
    }
}

/// Sends `sig` to the container's program, and to the program of any run its restart
/// policy started meanwhile, until the container has exited or `timeout` passes; true when
/// it has exited.
fn signal_until_exited(store: &Store, id: &str, sig: Signal, timeout: Duration) -> bool {
    let start = Instant::now();
    let watch = DirWatch::new(&store.dir(id));
    let mut signalled = None;
    loop {
        match store.load(id) {
            Err(_) => return true,
            Ok(r) if !is_running(&r) => return true,
            Ok(r) => {
                if r.pid.is_some() && r.pid != signalled {
                    send(r.pid, sig);
                    signalled = r.pid;
                }
            }
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return false;
        }
        watch.wait(left.min(Duration::from_millis(100)));
    }
}

impl Engine {
    /// Finds a container by name, id or unique id prefix ([`Error::NotFound`] when none).
    pub fn find_container(&self, key: &str) -> Result<ContainerRecord> {
        self.containers()?.find(key).map_err(from_executor)
    }

    /// Stops a container: its stop signal (the image's StopSignal, else SIGTERM), then SIGKILL
    /// once `timeout` has passed (the container's `--stop-timeout`, else docker's 10 s, when
    /// `None`). A container that is not running is left as it is.
    pub fn stop_container(&self, key: &str, timeout: Option<Duration>) -> Result<()> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        let timeout = timeout.unwrap_or_else(|| {
            let secs = super::ContainerSettings::load(&store.dir(&rec.id))
                .ok()
                .and_then(|s| s.stop_timeout)
                .unwrap_or(10);
            Duration::from_secs(secs)
        });
        if is_running(&rec) {
            // Before the signal: the supervisor must know this end is the user's, and a
            // container waiting to restart ends without a signal.
            mark_user_stop(&store.dir(&rec.id), UserStop::Cancel);
            let stop_signal = parse_signal(&rec.stop_signal).unwrap_or(Signal::SIGTERM);
            if !signal_until_exited(&store, &rec.id, stop_signal, timeout) {
                signal_until_exited(&store, &rec.id, Signal::SIGKILL, Duration::from_secs(10));
            }
            self.record_container_event(&rec, "stop", &[]);
        }
        Ok(())
    }

    /// Sends `signal` (a name or number, see [`parse_signal`]) to a running container's first
    /// process; a container that is not running is an [`Error::Conflict`].
    pub fn kill_container(&self, key: &str, signal: Signal) -> Result<()> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        if !is_running(&rec) {
            return Err(Error::Conflict(format!("container {key} is not running")));
        }
        // dockerd's `killWithSignal`: any kill by the user marks the container stopped by
        // its user, and ends its restarts unless it has a stop signal of its own and this
        // is neither that nor SIGKILL (kiln records SIGTERM when none was set: the same
        // rule then).
        let ends_restarts = match parse_signal(&rec.stop_signal) {
            Ok(s) if s != Signal::SIGTERM && signal != Signal::SIGKILL => s == signal,
            _ => true,
        };
        mark_user_stop(
            &store.dir(&rec.id),
            if ends_restarts {
                UserStop::Cancel
            } else {
                UserStop::Manual
            },
        );
        send(rec.pid, signal);
        self.record_container_event(&rec, "kill", &[("signal", (signal as i32).to_string())]);
        Ok(())
    }

    /// Begins a wait on a container (see [`ExitWatch`]).
    pub fn watch_exit(&self, key: &str, condition: WaitCondition) -> Result<ExitWatch> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        let dir = store.dir(&rec.id);
        let run = if is_running(&rec) {
            rec.start_count
        } else {
            rec.start_count + 1
        };
        Ok(ExitWatch {
            exit_file: std::fs::File::open(dir.join(EXIT_FILE)).ok(),
            watch: DirWatch::new(&dir),
            id: rec.id,
            store,
            condition,
            run,
        })
    }

    /// Waits for `condition` on a container (forever when `timeout` is `None`).
    pub fn wait_container(
        &self,
        key: &str,
        condition: WaitCondition,
        timeout: Option<Duration>,
    ) -> Result<WaitOutcome> {
        self.watch_exit(key, condition)?
            .wait(timeout)
            .ok_or_else(|| Error::Internal(format!("container {key} still runs")))
    }

    /// Stops a container (see [`Engine::stop_container`]) and starts it again.
    pub fn restart_container(&self, key: &str, timeout: Option<Duration>) -> Result<StartOutcome> {
        self.stop_container(key, timeout)?;
        self.start_container(key)
    }

    /// Removes every container that is not running; returns their ids.
    pub fn prune_containers(&self) -> Result<Vec<String>> {
        let store = self.containers()?;
        store.cleanup_stale();
        let mut removed = Vec::new();
        for rec in store.list() {
            if !is_running(&rec) && store.remove(&rec.id).is_ok() {
                removed.push(rec.id);
            }
        }
        Ok(removed)
    }

    /// Removes a container: its record, upper layer and cgroups. A running container is an
    /// [`Error::Conflict`] unless `force`, which kills it first and waits for its supervisor
    /// (and so its published ports) to be gone.
    pub fn remove_container(&self, key: &str, force: bool) -> Result<()> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        if is_running(&rec) {
            if !force {
                return Err(Error::Conflict(format!(
                    "container {key} is running: stop it first or use rm -f"
                )));
            }
            mark_user_stop(&store.dir(&rec.id), UserStop::Cancel);
            send(rec.pid, Signal::SIGKILL);
            if !wait_exited(&store, &rec.id, Duration::from_secs(5)) {
                // The supervisor hangs: killing it takes the container (PDEATHSIG) and its ports along.
                send(rec.supervisor, Signal::SIGKILL);
                wait_exited(&store, &rec.id, Duration::from_secs(5));
            }
            // The supervisor exits right after recording the exit; its
            // listening sockets (published ports) close with it.
            if let Some(s) = rec.supervisor {
                for _ in 0..250 {
                    if !process_alive(s, rec.supervisor_start) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        store.remove(&rec.id).map_err(from_executor)?;
        self.record_container_event(&rec, "destroy", &[]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, supervisor: Option<i32>) -> ContainerRecord {
        let me = std::process::id() as i32;
        ContainerRecord {
            id: kiln_executor::state::new_id(),
            name: name.into(),
            image: "busybox".into(),
            command: vec!["true".into()],
            created: kiln_executor::state::now(),
            status: Status::Running,
            pid: None,
            supervisor,
            supervisor_start: supervisor.and_then(|_| kiln_executor::state::process_start_time(me)),
            exit_code: None,
            ports: Vec::new(),
            auto_remove: false,
            env: Vec::new(),
            cwd: "/".into(),
            user: String::new(),
            caps: Vec::new(),
            seccomp: true,
            no_new_privs: false,
            stop_signal: String::new(),
            start_count: 1,
            started_at: None,
            finished_at: None,
            error: None,
            labels: Default::default(),
            restart_count: 0,
        }
    }

    #[test]
    fn removing_a_running_container_needs_force() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(dir.path());
        let store = engine.containers().unwrap();
        // This test process stands in for a live supervisor.
        let rec = record("live", Some(std::process::id() as i32));
        store.save(&rec).unwrap();
        let e = engine.remove_container("live", false).unwrap_err();
        assert!(matches!(e.kind(), Error::Conflict(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "container live is running: stop it first or use rm -f"
        );
        let mut done = rec;
        done.status = Status::Exited;
        store.save(&done).unwrap();
        engine.remove_container("live", false).unwrap();
        let e = engine.remove_container("live", false).unwrap_err();
        assert!(matches!(e.kind(), Error::NotFound(_)), "{e}");
        assert_eq!(e.to_string(), "no such container: live");
    }

    #[test]
    fn killing_a_stopped_container_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(dir.path());
        engine
            .containers()
            .unwrap()
            .save(&record("gone", None))
            .unwrap();
        let e = engine.kill_container("gone", Signal::SIGKILL).unwrap_err();
        assert!(matches!(e.kind(), Error::Conflict(_)), "{e}");
        assert_eq!(e.to_string(), "container gone is not running");
    }
}
