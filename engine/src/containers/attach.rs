//! Attaching to a container: its output from now on (read from the log as the supervisor
//! writes it), and its standard input and terminal size through the supervisor's socket.
//! The CLI's foreground `run`/`start -a` and the Engine API's hijacked `attach` are this.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use kiln_executor::state::Store;

use super::log::{Follow, LogReader};
use super::supervisor::connect_supervisor;
use super::watch::DirWatch;
use super::{from_executor, is_running};
use crate::{Engine, Error, Result};

/// An attachment to one run of a container.
pub struct Attachment {
    /// The run's output from the moment of attaching, until the run ends.
    pub output: LogReader,
    /// Whether the container has a terminal (raw output, no stream split).
    pub tty: bool,
    /// The way to the run's standard input.
    pub stdin: StdinConnector,
}

/// Connects an attacher to one run's standard input.
#[derive(Clone)]
pub struct StdinConnector {
    /// Whether its standard input is open to attachers.
    pub open_stdin: bool,
    store: Store,
    id: String,
    run: u32,
}

impl StdinConnector {
    /// Connects to the run's standard input, waiting for the run to start; `None` when the
    /// run ended first or its input is closed. Write the bytes, then `shutdown(Write)` at the
    /// end of input.
    pub fn connect(&self) -> Result<Option<UnixStream>> {
        if !self.open_stdin {
            return Ok(None);
        }
        let dir = self.store.dir(&self.id);
        let watch = DirWatch::new(&dir);
        loop {
            match self.store.load(&self.id) {
                Err(_) => return Ok(None),
                Ok(r) if r.start_count > self.run => return Ok(None),
                Ok(r) if r.start_count == self.run && r.pid.is_some() => break,
                Ok(r) if r.start_count == self.run && !is_running(&r) => return Ok(None),
                Ok(_) => {}
            }
            watch.wait(Duration::from_millis(200));
        }
        let mut conn = match connect_supervisor(&dir) {
            Ok(c) => c,
            // It has exited meanwhile: nothing reads its input any more.
            Err(_) => return Ok(None),
        };
        conn.write_all(b"stdin\n")
            .map_err(|e| Error::io("writing to", dir.join("attach.sock"), e))?;
        Ok(Some(conn))
    }
}

impl Engine {
    /// Attaches to a container: to its current run if it runs, else to its next one (a
    /// client attaches before it starts the container, as `docker run` does).
    pub fn attach_container(&self, key: &str) -> Result<Attachment> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        let dir = store.dir(&rec.id);
        let settings = super::ContainerSettings::load(&dir)?;
        let run = if is_running(&rec) {
            rec.start_count
        } else {
            rec.start_count + 1
        };
        let log = dir.join("log");
        let output = LogReader::open_at_end(&log, Some(Follow::new(store.clone(), &rec.id, run)))
            .map_err(|e| Error::io("opening", &log, e))?;
        Ok(Attachment {
            output,
            tty: settings.tty,
            stdin: StdinConnector {
                open_stdin: settings.open_stdin,
                store,
                id: rec.id,
                run,
            },
        })
    }

    /// Sets the size of a running container's terminal.
    pub fn resize_container_tty(&self, key: &str, rows: u16, cols: u16) -> Result<()> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        if !is_running(&rec) {
            return Err(Error::Conflict(format!("container {key} is not running")));
        }
        let dir = store.dir(&rec.id);
        let mut conn = connect_supervisor(&dir)?;
        conn.write_all(format!("resize {rows} {cols}\n").as_bytes())
            .map_err(|e| Error::io("writing to", dir.join("attach.sock"), e))?;
        let _ = conn.shutdown(std::net::Shutdown::Write);
        // Wait for the supervisor's answer, so the size is set when this returns.
        let mut answer = [0u8; 3];
        let _ = std::io::Read::read(&mut conn, &mut answer);
        Ok(())
    }
}
