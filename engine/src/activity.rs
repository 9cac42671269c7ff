//! What happened to containers (created, started, died, killed, stopped, destroyed): docker's
//! system events, kept in `ROOT/events.log` so every kiln process (a CLI, a service, a
//! container's supervisor) adds to one record and `docker events`/compose read it back.
//!
//! One JSON object per line, appended with one `write` on an `O_APPEND` descriptor (lines
//! from concurrent writers never interleave). The log is cut when it passes
//! [`MAX_LOG_BYTES`]: the older half goes to `events.log.1`, replacing the one before.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::containers::log::now_nanos;
use crate::{Engine, Error, Result};

/// The size past which the log is cut.
pub const MAX_LOG_BYTES: u64 = 4 << 20;

/// Who an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The object's id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its name, image, labels and the action's details (`exitCode`, `signal`).
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// One event, in docker's shape (with the pre-1.22 `status`/`id`/`from` fields compose reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemEvent {
    /// `container`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `create`, `start`, `die`, `kill`, `stop`, `destroy`.
    #[serde(rename = "Action")]
    pub action: String,
    /// Who.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// `local`.
    pub scope: String,
    /// Unix seconds.
    pub time: u64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: u64,
    /// The action again (docker's old field).
    pub status: String,
    /// The actor's id again (docker's old field).
    pub id: String,
    /// The image (docker's old field).
    pub from: String,
}

impl SystemEvent {
    /// A container event about `rec`, with `extra` attributes.
    pub fn container(
        rec: &kiln_executor::state::ContainerRecord,
        action: &str,
        extra: &[(&str, String)],
    ) -> SystemEvent {
        let mut attributes = rec.labels.clone();
        attributes.insert("name".into(), rec.name.clone());
        attributes.insert("image".into(), rec.image.clone());
        for (k, v) in extra {
            attributes.insert((*k).into(), v.clone());
        }
        let now = now_nanos();
        SystemEvent {
            kind: "container".into(),
            action: action.into(),
            actor: Actor {
                id: rec.id.clone(),
                attributes,
            },
            scope: "local".into(),
            time: now / 1_000_000_000,
            time_nano: now,
            status: action.into(),
            id: rec.id.clone(),
            from: rec.image.clone(),
        }
    }
}

/// Which events to show (docker's `events` filters and window).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// From this time (ns); `None`: only what happens from now on.
    pub since: Option<u64>,
    /// Up to this time (ns); `None`: keep following.
    pub until: Option<u64>,
    /// `type=`.
    pub kinds: Vec<String>,
    /// `event=` (the action).
    pub actions: Vec<String>,
    /// `container=` (id or name).
    pub containers: Vec<String>,
    /// `label=K` or `label=K=V` (all must match).
    pub labels: Vec<String>,
}

impl EventFilter {
    fn matches(&self, e: &SystemEvent) -> bool {
        let any = |list: &[String], f: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|v| f(v))
        };
        let attr = |k: &str| e.actor.attributes.get(k);
        any(&self.kinds, &|k| k == e.kind)
            && any(&self.actions, &|a| a == e.action)
            && any(&self.containers, &|c| {
                e.actor.id.starts_with(c) || attr("name").is_some_and(|n| n == c)
            })
            && self.labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => attr(k).is_some_and(|x| x == v),
                None => attr(l).is_some(),
            })
            && self.since.is_none_or(|s| e.time_nano >= s)
            && self.until.is_none_or(|u| e.time_nano <= u)
    }
}

fn log_path(root: &Path) -> PathBuf {
    root.join("events.log")
}

/// Appends `event` to the log under `root`. Failing to record is not failing the operation:
/// the error is dropped (the operation's own result is what the user asked for).
pub fn record(root: &Path, event: &SystemEvent) {
    let path = log_path(root);
    let Ok(mut line) = serde_json::to_vec(event) else {
        return;
    };
    line.push(b'\n');
    if let Ok(meta) = std::fs::metadata(&path) {
        if meta.len() > MAX_LOG_BYTES {
            let _ = std::fs::rename(&path, root.join("events.log.1"));
        }
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = f.write_all(&line);
    }
}

impl Engine {
    /// Records a container event.
    pub(crate) fn record_container_event(
        &self,
        rec: &kiln_executor::state::ContainerRecord,
        action: &str,
        extra: &[(&str, String)],
    ) {
        record(self.root(), &SystemEvent::container(rec, action, extra));
    }

    /// Hands the events that pass `filter` to `sink` in order: those logged since
    /// `filter.since`, then, until `filter.until` (or for ever), the new ones as they come.
    /// Stops when `sink` fails (the client went away).
    pub fn events(
        &self,
        filter: &EventFilter,
        sink: &mut dyn FnMut(&SystemEvent) -> std::io::Result<()>,
    ) -> Result<()> {
        let path = log_path(self.root());
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|e| Error::io("opening", &path, e))?;
        let mut input = BufReader::new(file);
        if filter.since.is_none() {
            input
                .seek(SeekFrom::End(0))
                .map_err(|e| Error::io("reading", &path, e))?;
        }
        let watch = crate::containers::watch::DirWatch::new(self.root());
        let mut line = Vec::new();
        loop {
            let n = input
                .read_until(b'\n', &mut line)
                .map_err(|e| Error::io("reading", &path, e))?;
            if n > 0 && line.ends_with(b"\n") {
                if let Ok(event) = serde_json::from_slice::<SystemEvent>(&line) {
                    if filter.until.is_some_and(|u| event.time_nano > u) {
                        return Ok(());
                    }
                    if filter.matches(&event) && sink(&event).is_err() {
                        return Ok(());
                    }
                }
                line.clear();
                continue;
            }
            if filter.until.is_some_and(|u| now_nanos() > u) {
                return Ok(());
            }
            // Nothing new: wait for the log to grow (and check the client is still there).
            watch.wait(Duration::from_millis(500));
            if sink_gone(sink) {
                return Ok(());
            }
        }
    }
}

/// A sink that fails on an empty probe has lost its client. Sinks treat an event with an
/// empty `Type` as a probe and write nothing for it.
fn sink_gone(sink: &mut dyn FnMut(&SystemEvent) -> std::io::Result<()>) -> bool {
    let probe = SystemEvent {
        kind: String::new(),
        action: String::new(),
        actor: Actor::default(),
        scope: String::new(),
        time: 0,
        time_nano: 0,
        status: String::new(),
        id: String::new(),
        from: String::new(),
    };
    sink(&probe).is_err()
}

/// Whether `event` is a liveness probe (see [`Engine::events`]): sinks write nothing for it.
pub fn is_probe(event: &SystemEvent) -> bool {
    event.kind.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, action: &str, label: Option<(&str, &str)>) -> SystemEvent {
        let rec = kiln_executor::state::ContainerRecord {
            id: kiln_executor::state::new_id(),
            name: name.into(),
            image: "busybox".into(),
            command: vec![],
            created: 0,
            status: kiln_executor::state::Status::Created,
            pid: None,
            supervisor: None,
            supervisor_start: None,
            exit_code: None,
            ports: vec![],
            auto_remove: false,
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
            caps: vec![],
            seccomp: true,
            no_new_privs: false,
            stop_signal: String::new(),
            start_count: 0,
            started_at: None,
            finished_at: None,
            error: None,
            labels: label
                .map(|(k, v)| [(k.to_string(), v.to_string())].into_iter().collect())
                .unwrap_or_default(),
            restart_count: 0,
        };
        SystemEvent::container(&rec, action, &[])
    }

    #[test]
    fn recorded_events_come_back_filtered_and_the_window_ends() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(dir.path());
        record(dir.path(), &event("a", "create", Some(("p", "x"))));
        record(dir.path(), &event("b", "start", None));
        record(dir.path(), &event("a", "die", Some(("p", "x"))));
        let mut seen = Vec::new();
        let filter = EventFilter {
            since: Some(0),
            until: Some(now_nanos()),
            labels: vec!["p=x".into()],
            ..EventFilter::default()
        };
        engine
            .events(&filter, &mut |e| {
                if !is_probe(e) {
                    seen.push(format!("{} {}", e.actor.attributes["name"], e.action));
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, ["a create", "a die"]);
    }
}
