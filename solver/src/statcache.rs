//! A stat cache for the build context: (path, size, mtime, inode, ctime) ->
//! content hash, kept under `--root` between builds, so a warm rebuild of a
//! big context only stats its files instead of reading them (FACTS.md: that
//! is what makes BuildKit's warm d-copy 10x faster than buildah's).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a file's stat said when its content was hashed. If any of it differs
/// now, the file is read again. ctime is in the set because `touch -m` with a
/// chosen mtime, or a same-size rewrite inside one mtime tick, still moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatStamp {
    /// Device id.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
}

impl StatStamp {
    /// The stamp of a file's metadata (from `symlink_metadata`).
    pub fn of(meta: &fs::Metadata) -> Self {
        StatStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        }
    }
}

/// Content hashes of the files of one context directory, by relative path.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StatCache {
    entries: HashMap<String, (StatStamp, [u8; 32])>,
    #[serde(skip)]
    dirty: bool,
}

impl StatCache {
    /// Loads the cache stored at `file`; a missing or unreadable cache is an
    /// empty one (it only ever saves work, so losing it is harmless).
    pub fn load(file: &Path) -> Self {
        fs::read(file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// The stored hash of `rel`, if the file still has the stamp it had.
    pub fn get(&self, rel: &str, stamp: &StatStamp) -> Option<[u8; 32]> {
        match self.entries.get(rel) {
            Some((s, hash)) if s == stamp => Some(*hash),
            _ => None,
        }
    }

    /// Records the hash of `rel` read while it had `stamp`.
    pub fn insert(&mut self, rel: String, stamp: StatStamp, hash: [u8; 32]) {
        self.entries.insert(rel, (stamp, hash));
        self.dirty = true;
    }

    /// Drops entries for paths not in `keep` (files deleted from the context).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let before = self.entries.len();
        self.entries.retain(|k, _| keep(k));
        self.dirty |= self.entries.len() != before;
    }

    /// Writes the cache to `file` atomically (temp file, fsync, rename) when
    /// it changed. Readers see the old cache or the new one, never a mix.
    pub fn save(&mut self, file: &Path) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let dir = file.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let tmp: PathBuf = dir.join(format!(
            ".{}.{}.tmp",
            file.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("statcache"),
            std::process::id()
        ));
        let mut out = fs::File::create(&tmp)?;
        out.write_all(&serde_json::to_vec(self).map_err(io::Error::other)?)?;
        out.sync_all()?;
        fs::rename(&tmp, file)?;
        self.dirty = false;
        Ok(())
    }

    /// The content hash of every cached file, by relative path.
    pub fn hashes(&self) -> HashMap<String, [u8; 32]> {
        self.entries
            .iter()
            .map(|(k, (_, h))| (k.clone(), *h))
            .collect()
    }

    /// Number of cached files.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The file under `state_dir` that holds the stat cache of `context` (one per
/// context directory, named by a hash of its absolute path).
pub fn cache_file_for(state_dir: &Path, context: &Path) -> PathBuf {
    let abs = fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
    let name = blake3::hash(abs.as_os_str().as_encoded_bytes()).to_hex();
    state_dir.join(format!("{}.json", &name[..32]))
}
