//! Metadata: image names, the build-cache index, snapshot records and leases in
//! one redb database, `ROOT/meta.redb`.
//!
//! redb gives ACID transactions with a crash-safe commit, so a killed writer
//! leaves either the old or the new state, never half a record. redb lets one
//! process hold a database open at a time, so every transaction opens it under
//! a `flock` on `ROOT/lock` (exclusive for writers, shared for readers) and
//! closes it afterwards: many readers at once, one writer, and a long build
//! never holds the store for its whole run.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};

const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
const CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("cache");
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");

/// Which table a record lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Image name -> [`ImageRecord`].
    Images,
    /// Cache key -> [`CacheRecord`].
    Cache,
    /// Snapshot chain ID (hex) -> [`SnapshotRecord`].
    Snapshots,
    /// Lease ID -> [`Lease`].
    Leases,
}

impl Table {
    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Table::Images => IMAGES,
            Table::Cache => CACHE,
            Table::Snapshots => SNAPSHOTS,
            Table::Leases => LEASES,
        }
    }
}

/// A name pointing at an image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The normalized name, `repo:tag` (docker's familiar form).
    pub name: String,
    /// The manifest blob.
    pub manifest: Digest,
    /// The manifest's media type (OCI or docker schema 2).
    pub media_type: String,
    /// The config blob; its digest is the image ID.
    pub config: Digest,
    /// When the name was set (unix seconds).
    pub tagged_at: i64,
}

/// A build-cache result: what a cache key resolved to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// Blobs the result needs (kept alive by GC while the record exists).
    pub blobs: Vec<Digest>,
    /// Snapshots (chain IDs) the result needs.
    pub snapshots: Vec<Digest>,
    /// The solver's own description of the result (opaque to the store).
    pub value: serde_json::Value,
    /// When it was recorded (unix seconds).
    pub created: i64,
    /// When it was last used (unix seconds), for pruning by age.
    pub last_used: i64,
}

/// An unpacked layer on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The chain ID of the layer stack ending with this layer.
    pub chain_id: Digest,
    /// The chain ID of the stack below, if any.
    pub parent: Option<Digest>,
    /// The layer's diff ID (sha256 of its uncompressed tar).
    pub diff_id: Digest,
    /// Bytes used on disk (apparent size of the files).
    pub size: u64,
    /// When it was unpacked (unix seconds).
    pub created: i64,
}

/// Resources a running build or container holds; GC never removes them while
/// the process that took the lease lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Lease {
    /// The lease's ID.
    pub id: String,
    /// The process that holds it.
    pub pid: u32,
    /// That process's start time (clock ticks after boot), so a reused pid does not count.
    pub pid_start: u64,
    /// When it was taken (unix seconds).
    pub created: i64,
    /// Blobs held.
    pub blobs: Vec<Digest>,
    /// Snapshots held.
    pub snapshots: Vec<Digest>,
    /// Prepared rootfs directories (by ID) held.
    pub rootfs: Vec<String>,
}

impl Lease {
    /// Whether the process that took the lease still runs.
    pub fn holder_alive(&self) -> bool {
        proc_start_time(self.pid) == Some(self.pid_start)
    }
}

/// The start time of a process in clock ticks after boot (field 22 of /proc/PID/stat).
pub fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parens: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The metadata database under a store root.
#[derive(Clone)]
pub struct Metadata {
    db_path: PathBuf,
    lock_path: PathBuf,
    db: Arc<Mutex<Option<Arc<redb::Database>>>>,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metadata")
            .field("db_path", &self.db_path)
            .finish_non_exhaustive()
    }
}

/// The open databases of this process, by path. redb's multi-process mode locks byte ranges of
/// the file; one handle per file and process keeps those locks from meeting each other.
static OPEN_DATABASES: Mutex<Vec<(PathBuf, Weak<redb::Database>)>> = Mutex::new(Vec::new());

/// Read access to every table inside one transaction.
pub trait Reader {
    /// The raw bytes stored under `key`.
    fn get_raw(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>>;
    /// Every key and value of a table, in key order.
    fn all_raw(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>>;

    /// The record under `key`, decoded.
    fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>>
    where
        Self: Sized,
    {
        self.get_raw(table, key)?
            .map(|b| serde_json::from_slice(&b).map_err(Error::from))
            .transpose()
    }
    /// Every record of a table, decoded, in key order.
    fn all<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>>
    where
        Self: Sized,
    {
        self.all_raw(table)?
            .into_iter()
            .map(|(k, v)| Ok((k, serde_json::from_slice(&v)?)))
            .collect()
    }
}

struct ReadTx<'a> {
    tx: redb::ReadTransaction,
    path: &'a Path,
}

impl Reader for ReadTx<'_> {
    fn get_raw(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>> {
        let t = match self.tx.open_table(table.def()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_err(self.path, e)),
        };
        Ok(t.get(key)
            .map_err(|e| db_err(self.path, e))?
            .map(|v| v.value().to_vec()))
    }
    fn all_raw(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>> {
        let t = match self.tx.open_table(table.def()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db_err(self.path, e)),
        };
        collect(t.iter().map_err(|e| db_err(self.path, e))?, self.path)
    }
}

fn collect<'a>(
    iter: impl Iterator<
        Item = std::result::Result<
            (
                redb::AccessGuard<'a, &'static str>,
                redb::AccessGuard<'a, &'static [u8]>,
            ),
            redb::StorageError,
        >,
    >,
    path: &Path,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for item in iter {
        let (k, v) = item.map_err(|e| db_err(path, e))?;
        out.push((k.value().to_string(), v.value().to_vec()));
    }
    Ok(out)
}

/// Write access inside one transaction; nothing is visible to others until
/// the closure given to [`Metadata::write`] returns `Ok`.
pub struct Writer<'a> {
    tx: redb::WriteTransaction,
    path: &'a Path,
}

impl Reader for Writer<'_> {
    fn get_raw(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>> {
        let t = self
            .tx
            .open_table(table.def())
            .map_err(|e| db_err(self.path, e))?;
        let v = t
            .get(key)
            .map_err(|e| db_err(self.path, e))?
            .map(|v| v.value().to_vec());
        Ok(v)
    }
    fn all_raw(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>> {
        let t = self
            .tx
            .open_table(table.def())
            .map_err(|e| db_err(self.path, e))?;
        let out = collect(t.iter().map_err(|e| db_err(self.path, e))?, self.path);
        out
    }
}

impl Writer<'_> {
    /// Stores `value` under `key`, replacing what was there.
    pub fn put<T: Serialize>(&mut self, table: Table, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        let mut t = self
            .tx
            .open_table(table.def())
            .map_err(|e| db_err(self.path, e))?;
        t.insert(key, bytes.as_slice())
            .map_err(|e| db_err(self.path, e))?;
        Ok(())
    }
    /// Removes `key`; says whether it was there.
    pub fn remove(&mut self, table: Table, key: &str) -> Result<bool> {
        let mut t = self
            .tx
            .open_table(table.def())
            .map_err(|e| db_err(self.path, e))?;
        let was = t.remove(key).map_err(|e| db_err(self.path, e))?.is_some();
        Ok(was)
    }
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> Error {
    Error::Database {
        path: path.to_path_buf(),
        message: e.into().to_string(),
    }
}

/// A held `flock` on the store; released on drop (closing the file releases it).
pub struct LockGuard {
    _file: File,
}

impl Metadata {
    /// Opens the database under `root`, creating it and its tables when missing.
    pub fn open(root: &Path) -> Result<Metadata> {
        let meta = Metadata {
            db_path: root.join("meta.redb"),
            lock_path: root.join("lock"),
            db: Arc::default(),
        };
        if !meta.db_path.exists() {
            meta.write(|_| Ok(()))?;
        }
        Ok(meta)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.db_path
    }

    /// This process's handle on the database, opened on first use and kept: opening a redb
    /// file costs four fsyncs (it marks the file in use, and clean again on close), which per
    /// transaction were most of a build step's time. `MultiWriter` lets every kiln process keep
    /// its handle while others read and write; redb serialises their write transactions.
    fn database(&self) -> Result<Arc<redb::Database>> {
        let mut mine = self.db.lock().expect("metadata handle lock");
        if let Some(db) = mine.as_ref() {
            return Ok(db.clone());
        }
        let mut open = OPEN_DATABASES.lock().expect("open databases lock");
        open.retain(|(_, w)| w.strong_count() > 0);
        let shared = open
            .iter()
            .find(|(p, _)| *p == self.db_path)
            .and_then(|(_, w)| w.upgrade());
        let db = match shared {
            Some(db) => db,
            None => {
                let db = Arc::new(
                    redb::Builder::new()
                        .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
                        .create(&self.db_path)
                        .map_err(|e| db_err(&self.db_path, e))?,
                );
                open.push((self.db_path.clone(), Arc::downgrade(&db)));
                db
            }
        };
        *mine = Some(db.clone());
        Ok(db)
    }

    fn lock(&self, exclusive: bool) -> Result<LockGuard> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&self.lock_path)
            .ctx(|| format!("open lock file {}", self.lock_path.display()))?;
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        rustix::fs::flock(&file, op).ctx(|| format!("lock {}", self.lock_path.display()))?;
        Ok(LockGuard { _file: file })
    }

    /// [`Metadata::read`] for a caller already holding [`Metadata::exclusive`].
    pub fn read_locked<T>(
        &self,
        _lock: &LockGuard,
        f: impl FnOnce(&dyn ReaderDyn) -> Result<T>,
    ) -> Result<T> {
        let db = self.database()?;
        let tx = db.begin_read().map_err(|e| db_err(&self.db_path, e))?;
        f(&ReadTx {
            tx,
            path: &self.db_path,
        })
    }

    /// Runs `f` in a read transaction (shared lock: other readers may run at once).
    pub fn read<T>(&self, f: impl FnOnce(&dyn ReaderDyn) -> Result<T>) -> Result<T> {
        let lock = self.lock(false)?;
        self.read_locked(&lock, f)
    }

    /// Takes the writer's lock for longer than one transaction (garbage
    /// collection deletes files under it after committing).
    pub fn exclusive(&self) -> Result<LockGuard> {
        self.lock(true)
    }

    /// Runs `f` in a write transaction (exclusive lock) and commits when it
    /// returns `Ok`; on `Err` nothing changes.
    pub fn write<T>(&self, f: impl FnOnce(&mut Writer) -> Result<T>) -> Result<T> {
        let lock = self.lock(true)?;
        self.write_locked(&lock, f)
    }

    /// [`Metadata::write`] for a caller already holding [`Metadata::exclusive`].
    pub fn write_locked<T>(
        &self,
        _lock: &LockGuard,
        f: impl FnOnce(&mut Writer) -> Result<T>,
    ) -> Result<T> {
        let db = self.database()?;
        let tx = db.begin_write().map_err(|e| db_err(&self.db_path, e))?;
        let mut w = Writer {
            tx,
            path: &self.db_path,
        };
        for t in [Table::Images, Table::Cache, Table::Snapshots, Table::Leases] {
            w.tx.open_table(t.def())
                .map_err(|e| db_err(&self.db_path, e))?;
        }
        let out = f(&mut w)?;
        w.tx.commit().map_err(|e| db_err(&self.db_path, e))?;
        Ok(out)
    }
}

/// Object-safe view of [`Reader`] handed to read closures.
pub trait ReaderDyn {
    /// The raw bytes stored under `key`.
    fn raw(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>>;
    /// Every key and value of a table.
    fn raw_all(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>>;
}

impl<R: Reader> ReaderDyn for R {
    fn raw(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>> {
        self.get_raw(table, key)
    }
    fn raw_all(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>> {
        self.all_raw(table)
    }
}

impl dyn ReaderDyn + '_ {
    /// The record under `key`, decoded.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        self.raw(table, key)?
            .map(|b| serde_json::from_slice(&b).map_err(Error::from))
            .transpose()
    }
    /// Every record of a table, decoded, in key order.
    pub fn all<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>> {
        self.raw_all(table)?
            .into_iter()
            .map(|(k, v)| Ok((k, serde_json::from_slice(&v)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_and_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metadata::open(dir.path()).unwrap();
        let rec = ImageRecord {
            name: "a:1".into(),
            manifest: Digest::of(b"m"),
            media_type: "x".into(),
            config: Digest::of(b"c"),
            tagged_at: 1,
        };
        m.write(|w| w.put(Table::Images, "a:1", &rec)).unwrap();
        let err = m
            .write(|w| {
                w.remove(Table::Images, "a:1")?;
                Err::<(), _>(Error::Conflict("abort".into()))
            })
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)));
        let got: Option<ImageRecord> = m.read(|r| r.get(Table::Images, "a:1")).unwrap();
        assert_eq!(got, Some(rec));
        let all: Vec<(String, ImageRecord)> = m.read(|r| r.all(Table::Images)).unwrap();
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn readers_run_together_writers_wait() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metadata::open(dir.path()).unwrap();
        std::thread::scope(|s| {
            for i in 0..4 {
                let m = m.clone();
                s.spawn(move || {
                    for j in 0..10 {
                        let k = format!("{i}-{j}");
                        m.write(|w| w.put(Table::Cache, &k, &serde_json::json!(j)))
                            .unwrap();
                        let v: Option<serde_json::Value> =
                            m.read(|r| r.get(Table::Cache, &k)).unwrap();
                        assert_eq!(v, Some(serde_json::json!(j)));
                    }
                });
            }
        });
        let n = m.read(|r| Ok(r.raw_all(Table::Cache)?.len())).unwrap();
        assert_eq!(n, 40);
    }
}
