//! Container records under `<root>/containers/<id>/`: `state.json` (what
//! `kiln ps`, `stop`, `exec` and `rm` read), the log of a detached container,
//! and the container's overlay upper, work and mount-point directories.
//! Records are written atomically (temporary file + rename).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A container's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being set up.
    #[default]
    Created,
    /// Its program runs.
    Running,
    /// It has exited (see `exit_code`).
    Exited,
    /// Its program exited and its restart policy starts it again after a back-off: its
    /// supervisor lives on, `exit_code` is the last run's (docker's `restarting`).
    Restarting,
}

/// What kiln remembers about one container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// Full id (64 hex digits).
    pub id: String,
    /// Name (`--name`, or generated).
    pub name: String,
    /// The image (or rootfs directory) it runs.
    pub image: String,
    /// argv.
    pub command: Vec<String>,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// State.
    pub status: Status,
    /// PID 1 of the container, host view.
    pub pid: Option<i32>,
    /// The process tending the container (kiln itself, or the detached supervisor).
    pub supervisor: Option<i32>,
    /// The supervisor's start time (field 22 of /proc/PID/stat) to detect pid reuse.
    pub supervisor_start: Option<u64>,
    /// Exit code once exited.
    pub exit_code: Option<i32>,
    /// Published ports as `IP:HOST->CONTAINER/PROTO`.
    pub ports: Vec<String>,
    /// Removed when it exits (`--rm`).
    pub auto_remove: bool,
    /// Environment (for `kiln exec`).
    pub env: Vec<String>,
    /// Working directory (for `kiln exec`).
    pub cwd: String,
    /// User (for `kiln exec`).
    pub user: String,
    /// Capabilities kept, by name (for `kiln exec`).
    pub caps: Vec<String>,
    /// Whether seccomp applies (for `kiln exec`).
    pub seccomp: bool,
    /// Whether no_new_privs is on (for `kiln exec`).
    pub no_new_privs: bool,
    /// The signal `kiln stop` sends.
    pub stop_signal: String,
    /// How many times it has been started (each start's supervisor adds one before it
    /// launches the program): waiters and attached readers tell one run from the next by it.
    #[serde(default)]
    pub start_count: u32,
    /// When the last start launched the program, nanoseconds since the epoch.
    #[serde(default)]
    pub started_at: Option<u64>,
    /// When the last run ended, nanoseconds since the epoch.
    #[serde(default)]
    pub finished_at: Option<u64>,
    /// Why the last start failed, when it did.
    #[serde(default)]
    pub error: Option<String>,
    /// Labels (`--label`, compose's project and service), for `ps --filter label=`.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// How many times its restart policy has restarted it since the user last started it
    /// (docker's `RestartCount`).
    #[serde(default)]
    pub restart_count: u32,
}

/// The containers directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// Start time of `pid` in clock ticks since boot, if it exists.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` started at `start` still exists (not a zombie).
pub fn process_alive(pid: i32, start: Option<u64>) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let state = stat[close + 2..].chars().next();
    if state == Some('Z') || state == Some('X') {
        return false;
    }
    start.is_none() || process_start_time(pid) == start
}

/// A fresh random 64-hex-digit id.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Store {
    /// Opens (creating) `<root>/containers`.
    pub fn open(root: &Path) -> Result<Store> {
        let dir = root.join("containers");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Store { dir })
    }

    /// The directory of container `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Writes a record atomically.
    pub fn save(&self, rec: &ContainerRecord) -> Result<()> {
        let d = self.dir(&rec.id);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        let tmp = d.join("state.json.tmp");
        let text = serde_json::to_vec_pretty(rec).map_err(|e| Error::State {
            path: tmp.clone(),
            detail: e.to_string(),
        })?;
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, d.join("state.json")).map_err(|e| Error::io(d.join("state.json"), e))
    }

    /// Reads the record of `id`.
    pub fn load(&self, id: &str) -> Result<ContainerRecord> {
        let p = self.dir(id).join("state.json");
        let text = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        serde_json::from_slice(&text).map_err(|e| Error::State {
            path: p,
            detail: e.to_string(),
        })
    }

    /// Every readable record, newest first.
    pub fn list(&self) -> Vec<ContainerRecord> {
        let mut out: Vec<ContainerRecord> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| self.load(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.created));
        out
    }

    /// Finds a container by name, full id or unique id prefix.
    pub fn find(&self, key: &str) -> Result<ContainerRecord> {
        let all = self.list();
        if let Some(r) = all.iter().find(|r| r.name == key || r.id == key) {
            return Ok(r.clone());
        }
        let matches: Vec<_> = all
            .iter()
            .filter(|r| !key.is_empty() && r.id.starts_with(key))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NotFound(format!("no such container: {key}"))),
            _ => Err(Error::Invalid {
                what: "container id",
                detail: format!("{key} matches several containers"),
            }),
        }
    }

    /// Deletes a container's directory and cgroups. Its namespaces are gone
    /// with its processes, so no mount can be under the directory; removal
    /// still refuses to cross into another filesystem.
    pub fn remove(&self, id: &str) -> Result<()> {
        crate::cgroups::Cgroups::existing(id).remove();
        let d = self.dir(id);
        remove_tree_one_fs(&d).map_err(|e| Error::io(&d, e))
    }

    /// Moves a container's directory out of `containers/` at once (one
    /// rename) and returns where it went, for the caller to delete off the
    /// critical path (`--rm` must not make `kiln run` wait for the disk).
    /// Leftovers in `trash/` are deleted by the next stale-state cleanup.
    pub fn discard(&self, id: &str) -> Result<PathBuf> {
        crate::cgroups::Cgroups::existing(id).remove();
        let trash = self.dir.with_file_name("trash");
        std::fs::create_dir_all(&trash).map_err(|e| Error::io(&trash, e))?;
        let to = trash.join(format!("{id}.{}", std::process::id()));
        std::fs::rename(self.dir(id), &to).map_err(|e| Error::io(self.dir(id), e))?;
        Ok(to)
    }

    /// Stale-state cleanup: a running record whose supervisor is gone (kiln
    /// was killed) becomes exited, or is removed when it was `--rm`. Returns
    /// the ids cleaned.
    pub fn cleanup_stale(&self) -> Vec<String> {
        let mut cleaned = Vec::new();
        // Directories a `--rm` moved aside and whose deleter died.
        if let Ok(entries) = std::fs::read_dir(self.dir.with_file_name("trash")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let owner = name.rsplit('.').next().and_then(|p| p.parse::<i32>().ok());
                if !owner.is_some_and(|p| process_alive(p, None)) {
                    let _ = remove_tree_one_fs(&e.path());
                }
            }
        }
        for mut rec in self.list() {
            if rec.status == Status::Exited {
                continue;
            }
            // Created and never started: nothing tends it, nothing to clean.
            let Some(supervisor) = rec.supervisor else {
                continue;
            };
            if process_alive(supervisor, rec.supervisor_start) {
                continue;
            }
            crate::cgroups::Cgroups::existing(&rec.id).remove();
            if rec.auto_remove {
                let _ = self.remove(&rec.id);
            } else {
                rec.status = Status::Exited;
                rec.exit_code = rec.exit_code.or(Some(137));
                rec.pid = None;
                let _ = self.save(&rec);
            }
            cleaned.push(rec.id);
        }
        cleaned
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `rm -rf --one-file-system`: never descends into another mount (a mount
/// left behind would otherwise take its source along).
pub fn remove_tree_one_fs(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    fn walk(p: &Path, dev: u64) -> std::io::Result<()> {
        let m = std::fs::symlink_metadata(p)?;
        if m.is_dir() {
            if m.dev() != dev {
                return Err(std::io::Error::other(format!(
                    "{} is on another filesystem",
                    p.display()
                )));
            }
            for e in std::fs::read_dir(p)? {
                walk(&e?.path(), dev)?;
            }
            std::fs::remove_dir(p)
        } else {
            std::fs::remove_file(p)
        }
    }
    walk(path, top.dev())
}
