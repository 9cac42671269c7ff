//! A container's end: stop (its stop signal, then SIGKILL), kill, wait and remove.

use std::time::{Duration, Instant};

use kiln_executor::state::{process_alive, ContainerRecord, Status, Store};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::config::parse_signal;
use super::from_executor;
use crate::{Engine, Error, Result};

/// Whether the record's container still runs (its supervisor is alive and has not recorded
/// an exit).
pub fn is_running(rec: &ContainerRecord) -> bool {
    rec.status != Status::Exited
        && rec
            .supervisor
            .is_some_and(|p| process_alive(p, rec.supervisor_start))
}

/// Waits until the container has exited or is gone (or `timeout` passes); true when it has.
pub fn wait_exited(store: &Store, id: &str, timeout: Duration) -> bool {
    let start = Instant::now();
    loop {
        match store.load(id) {
            Err(_) => return true,
            Ok(r) if !is_running(&r) => return true,
            Ok(_) => {}
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn send(pid: Option<i32>, sig: Signal) {
    if let Some(p) = pid {
        // A process that has just exited is not an error: it is what stop wants.
        let _ = nix::sys::signal::kill(Pid::from_raw(p), sig);
    }
}

impl Engine {
    /// Finds a container by name, id or unique id prefix ([`Error::NotFound`] when none).
    pub fn find_container(&self, key: &str) -> Result<ContainerRecord> {
        self.containers()?.find(key).map_err(from_executor)
    }

    /// Stops a container: its stop signal (the image's StopSignal, else SIGTERM), then SIGKILL
    /// once `timeout` has passed. A container that is not running is left as it is.
    pub fn stop_container(&self, key: &str, timeout: Duration) -> Result<()> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        if is_running(&rec) {
            send(
                rec.pid,
                parse_signal(&rec.stop_signal).unwrap_or(Signal::SIGTERM),
            );
            if !wait_exited(&store, &rec.id, timeout) {
                send(rec.pid, Signal::SIGKILL);
                wait_exited(&store, &rec.id, Duration::from_secs(10));
            }
        }
        Ok(())
    }

    /// Sends `signal` (a name or number, see [`parse_signal`]) to a running container's first
    /// process; a container that is not running is an [`Error::Conflict`].
    pub fn kill_container(&self, key: &str, signal: Signal) -> Result<()> {
        let rec = self.find_container(key)?;
        if !is_running(&rec) {
            return Err(Error::Conflict(format!("container {key} is not running")));
        }
        send(rec.pid, signal);
        Ok(())
    }

    /// Waits until a container has exited (or `timeout` passes) and returns its record then;
    /// `None` when it was removed meanwhile (`--rm`).
    pub fn wait_container(&self, key: &str, timeout: Duration) -> Result<Option<ContainerRecord>> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        if !wait_exited(&store, &rec.id, timeout) {
            return Err(Error::Internal(format!(
                "container {key} still runs after {}s",
                timeout.as_secs()
            )));
        }
        Ok(store.load(&rec.id).ok())
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
        store.remove(&rec.id).map_err(from_executor)
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
