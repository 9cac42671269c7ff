//! A detached container's output, read from its log file.

use std::io::{Read, Seek, Write};
use std::time::Duration;

use super::{from_executor, is_running};
use crate::{Engine, Error, Result};

/// What `logs` reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogsOptions {
    /// Keep copying output as the container writes it, until it has exited.
    pub follow: bool,
}

impl Engine {
    /// Copies a container's output to `out`. A foreground container has no log (its output
    /// went to the terminal): nothing is copied.
    pub fn container_logs(
        &self,
        key: &str,
        options: LogsOptions,
        out: &mut dyn Write,
    ) -> Result<()> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        let path = store.dir(&rec.id).join("log");
        let Ok(mut f) = std::fs::File::open(&path) else {
            return Ok(());
        };
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| Error::io("reading", &path, e))?;
        out.write_all(&buf)?;
        if !options.follow {
            return Ok(());
        }
        loop {
            out.flush()?;
            let alive = store.load(&rec.id).map(|r| is_running(&r)).unwrap_or(false);
            let pos = f.stream_position()?;
            buf.clear();
            f.read_to_end(&mut buf)?;
            out.write_all(&buf)?;
            if !alive && f.stream_position()? == pos {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}
