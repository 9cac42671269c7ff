//! A container's output, read back from its log (`logs`, `logs -f`).

use std::fs::File;

use super::log::{rfc3339_nanos, Follow, LogChunk, LogReader, LogStream};
use super::{from_executor, is_running};
use crate::{Engine, Error, Result};

/// What `logs` reads (docker's flags and the API's query).
#[derive(Debug, Clone, Copy)]
pub struct LogsOptions {
    /// Keep reading as the container writes, until its run ends.
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Only records at or after this time (ns since the epoch).
    pub since: Option<u64>,
    /// Only records before this time (ns since the epoch).
    pub until: Option<u64>,
    /// Prefix each line with its RFC 3339 time, as docker's `-t`.
    pub timestamps: bool,
    /// Include standard output.
    pub stdout: bool,
    /// Include standard error.
    pub stderr: bool,
}

impl Default for LogsOptions {
    fn default() -> LogsOptions {
        LogsOptions {
            follow: false,
            tail: None,
            since: None,
            until: None,
            timestamps: false,
            stdout: true,
            stderr: true,
        }
    }
}

impl Engine {
    /// Hands a container's logged output to `sink`, record by record, in order. Returns
    /// whether the container has a terminal (its output is then all on stdout, unframed).
    pub fn container_logs(
        &self,
        key: &str,
        options: LogsOptions,
        sink: &mut dyn FnMut(LogChunk) -> std::io::Result<()>,
    ) -> Result<bool> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        let dir = store.dir(&rec.id);
        let tty = super::ContainerSettings::load(&dir)
            .map(|s| s.tty)
            .unwrap_or(false);
        let path = dir.join("log");
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(tty),
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        let wanted = |c: &LogChunk| {
            (match c.stream {
                LogStream::Stdout => options.stdout,
                LogStream::Stderr => options.stderr,
            }) && options.since.is_none_or(|s| c.time >= s)
                && options.until.is_none_or(|u| c.time < u)
        };
        let shape = |mut c: LogChunk| {
            if options.timestamps {
                let mut b = rfc3339_nanos(c.time).into_bytes();
                b.push(b' ');
                b.extend_from_slice(&c.bytes);
                c.bytes = b;
            }
            c
        };
        let mut send = |c: LogChunk| -> Result<()> {
            if wanted(&c) {
                sink(shape(c)).map_err(Error::from)?;
            }
            Ok(())
        };
        let follow = (options.follow && is_running(&rec))
            .then(|| Follow::new(store.clone(), &rec.id, rec.start_count));
        let mut reader = LogReader::new(file, None);
        // What is there now, cut to the tail; then, following, what comes.
        let mut past: Vec<LogChunk> = reader
            .read_rest()
            .map_err(|e| Error::io("reading", &path, e))?
            .into_iter()
            .filter(|c| wanted(c))
            .collect();
        if let Some(n) = options.tail {
            let lines_from_end = past
                .iter()
                .rev()
                .scan(0usize, |lines, c| {
                    if c.bytes.ends_with(b"\n") {
                        *lines += 1;
                    }
                    Some(*lines)
                })
                .take_while(|l| *l <= n)
                .count();
            past.drain(..past.len() - lines_from_end);
        }
        for c in past {
            send(c)?;
        }
        if let Some(follow) = follow {
            let mut reader = reader.following(follow);
            while let Some(c) = reader
                .next_chunk()
                .map_err(|e| Error::io("reading", &path, e))?
            {
                send(c)?;
            }
        }
        Ok(tty)
    }
}
