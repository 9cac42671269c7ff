//! A container's output log, `ROOT/containers/ID/log`, in the CRI logging format that
//! kubelet, CRI-O and containerd write: one record per line,
//! `TIMESTAMP STREAM TAG CONTENT`, where TIMESTAMP is RFC 3339 UTC with nanoseconds, STREAM is
//! `stdout` or `stderr` and TAG is `F` (a full line; its newline is not stored) or `P` (a
//! partial line: the program's write ended without a newline, the next record continues it).
//!
//! Why this format and not raw bytes: `docker logs` keeps stdout and stderr apart, `--tail`
//! counts lines, `--since`/`--until`/`-t` need each line's time; and it is text a user can
//! read with `cat`, in a shape other tools already parse.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use kiln_executor::state::Store;

use super::watch::DirWatch;

/// Which of the program's output streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output (and all of a terminal's output).
    Stdout,
    /// Standard error.
    Stderr,
}

impl LogStream {
    fn name(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One record of the log: a line (with its newline) or the part of one a write ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// The stream it was written to.
    pub stream: LogStream,
    /// When kiln read it, nanoseconds since the epoch.
    pub time: u64,
    /// The bytes, with the newline for a full line.
    pub bytes: Vec<u8>,
}

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `2026-12-03T13:05:33.123456789Z`: docker's and CRI's timestamp for `time` (ns since the epoch).
pub fn rfc3339_nanos(time: u64) -> String {
    let secs = kiln_cache::image::rfc3339((time / 1_000_000_000) as i64);
    // rfc3339 ends in `Z`: the fraction goes before it.
    format!(
        "{}.{:09}Z",
        secs.trim_end_matches('Z'),
        time % 1_000_000_000
    )
}

/// Parses an RFC 3339 UTC timestamp (with or without a fraction) to ns since the epoch.
pub fn parse_rfc3339_nanos(text: &str) -> Option<u64> {
    let secs = kiln_cache::image::parse_rfc3339(text)?;
    let nanos = match text.find('.') {
        Some(dot) => {
            let digits: String = text[dot + 1..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            let padded = format!("{digits:0<9}");
            padded.get(..9)?.parse::<u64>().ok()?
        }
        None => 0,
    };
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos)
}

/// Appends records to a log.
pub struct LogWriter {
    out: File,
}

impl LogWriter {
    /// Opens `path` for appending (creating it).
    pub fn open(path: &Path) -> io::Result<LogWriter> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogWriter { out })
    }

    /// Records what the program wrote to `stream`: one record per line, a `P` record for a
    /// trailing part without a newline. One `write` per call, so records from the two
    /// streams' threads never interleave inside a line.
    pub fn write(&mut self, stream: LogStream, data: &[u8]) -> io::Result<()> {
        let stamp = rfc3339_nanos(now_nanos());
        let mut text = Vec::with_capacity(data.len() + 48);
        for piece in data.split_inclusive(|b| *b == b'\n') {
            let (body, tag) = match piece.strip_suffix(b"\n") {
                Some(line) => (line, 'F'),
                None => (piece, 'P'),
            };
            text.extend_from_slice(stamp.as_bytes());
            write!(text, " {} {tag} ", stream.name())?;
            text.extend_from_slice(body);
            text.push(b'\n');
        }
        self.out.write_all(&text)
    }
}

/// Parses one record (without its newline).
pub fn parse_record(line: &[u8]) -> Option<LogChunk> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = parse_rfc3339_nanos(std::str::from_utf8(fields.next()?).ok()?)?;
    let stream = match fields.next()? {
        b"stdout" => LogStream::Stdout,
        b"stderr" => LogStream::Stderr,
        _ => return None,
    };
    let tag = fields.next()?;
    let mut bytes = fields.next().unwrap_or_default().to_vec();
    if tag == b"F" {
        bytes.push(b'\n');
    }
    Some(LogChunk {
        stream,
        time,
        bytes,
    })
}

/// Reads a log's records in order; with a [`Follow`] it waits for more until the run it
/// follows has ended.
pub struct LogReader {
    input: BufReader<File>,
    line: Vec<u8>,
    follow: Option<Follow>,
    /// Set once the followed run ended: what is left is read, then the reader stops.
    draining: bool,
}

/// What a following reader waits for: run number `run` of container `id` to end.
pub struct Follow {
    /// The containers' records.
    pub store: Store,
    /// The container.
    pub id: String,
    /// The run (a `start_count`) whose end stops the reader.
    pub run: u32,
    watch: DirWatch,
}

impl Follow {
    /// Follows run `run` of container `id`.
    pub fn new(store: Store, id: &str, run: u32) -> Follow {
        let watch = DirWatch::new(&store.dir(id));
        Follow {
            store,
            id: id.to_string(),
            run,
            watch,
        }
    }

    /// Whether the followed run is over: the container is gone, a later run began, or this
    /// run's supervisor has recorded the exit (or died).
    pub fn ended(&self) -> bool {
        match self.store.load(&self.id) {
            Err(_) => true,
            // A run that waits for its restart has ended too (dockerd closes its logger).
            Ok(r) => {
                r.start_count > self.run
                    || (r.start_count == self.run
                        && (!super::is_running(&r)
                            || r.status == kiln_executor::state::Status::Restarting))
            }
        }
    }
}

impl LogReader {
    /// Reads `file` from where its offset is.
    pub fn new(file: File, follow: Option<Follow>) -> LogReader {
        LogReader {
            input: BufReader::with_capacity(64 * 1024, file),
            line: Vec::new(),
            follow,
            draining: false,
        }
    }

    /// Opens a log at its end (only what is written from now on is read).
    pub fn open_at_end(path: &Path, follow: Option<Follow>) -> io::Result<LogReader> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        file.seek(SeekFrom::End(0))?;
        Ok(LogReader::new(file, follow))
    }

    /// The next record; `None` at the end (of the file, or of the followed run).
    pub fn next_chunk(&mut self) -> io::Result<Option<LogChunk>> {
        loop {
            // A line is only complete with its newline: the writer may be mid-record.
            let n = self.input.read_until(b'\n', &mut self.line)?;
            if n > 0 && self.line.ends_with(b"\n") {
                self.line.pop();
                let chunk = parse_record(&self.line);
                self.line.clear();
                match chunk {
                    Some(c) => return Ok(Some(c)),
                    None => continue,
                }
            }
            let Some(follow) = &self.follow else {
                return Ok(None);
            };
            if self.draining {
                return Ok(None);
            }
            if follow.ended() {
                // The supervisor has written everything before it recorded the end.
                self.draining = true;
                continue;
            }
            follow.watch.wait(Duration::from_millis(200));
        }
    }

    /// Reads every complete record there is now (for `--tail`, which needs the end before
    /// the start); a record the writer is still writing stays for [`LogReader::next_chunk`].
    pub fn read_rest(&mut self) -> io::Result<Vec<LogChunk>> {
        let mut rest = std::mem::take(&mut self.line);
        self.input.read_to_end(&mut rest)?;
        let whole = rest
            .iter()
            .rposition(|b| *b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(0);
        self.line = rest.split_off(whole);
        Ok(rest
            .split(|b| *b == b'\n')
            .filter_map(parse_record)
            .collect())
    }

    /// The same reader, from where it is, following a run from now on.
    pub fn following(mut self, follow: Follow) -> LogReader {
        self.follow = Some(follow);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_partial_lines_and_streams_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::open(&path).unwrap();
        w.write(LogStream::Stdout, b"one\ntwo\npart").unwrap();
        w.write(LogStream::Stderr, b"err line\n").unwrap();
        w.write(LogStream::Stdout, b"ial\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[2].ends_with(" stdout P part"), "{}", lines[2]);
        assert!(lines[3].ends_with(" stderr F err line"), "{}", lines[3]);
        let mut r = LogReader::new(File::open(&path).unwrap(), None);
        let chunks = r.read_rest().unwrap();
        let out: Vec<u8> = chunks
            .iter()
            .filter(|c| c.stream == LogStream::Stdout)
            .flat_map(|c| c.bytes.clone())
            .collect();
        assert_eq!(out, b"one\ntwo\npartial\n");
        let err: Vec<u8> = chunks
            .iter()
            .filter(|c| c.stream == LogStream::Stderr)
            .flat_map(|c| c.bytes.clone())
            .collect();
        assert_eq!(err, b"err line\n");
    }

    #[test]
    fn timestamps_round_trip() {
        let t = 1_796_303_133_123_456_789;
        let text = rfc3339_nanos(t);
        assert_eq!(text, "2026-12-03T13:05:33.123456789Z");
        assert_eq!(parse_rfc3339_nanos(&text), Some(t));
        assert_eq!(
            parse_rfc3339_nanos("2026-12-03T13:05:33Z"),
            Some(1_796_303_133_000_000_000)
        );
        assert_eq!(parse_record(b"garbage"), None);
    }
}
