//! The content store: blobs by sha256 under `ROOT/blobs/sha256/<hex>`.
//!
//! A blob is written to a temp file in `ROOT/ingest/` (same file system),
//! fsynced, checked against the digest and size it was promised to have, then
//! renamed into place and the directory fsynced. Readers therefore see a blob
//! whole or not at all. Two writers of the same digest both write their own
//! temp file and both rename: the content is identical, so whichever rename
//! lands last changes nothing a reader can see.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;

/// The blob directory and its ingest area.
#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    /// Opens (creating when missing) the content store under `root`.
    pub fn open(root: &Path) -> Result<ContentStore> {
        let blobs = root.join("blobs/sha256");
        let ingest = root.join("ingest");
        for d in [&blobs, &ingest] {
            fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
        }
        Ok(ContentStore { blobs, ingest })
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The blob's size, if present.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        match fs::metadata(self.path(digest)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(Error::io(format!("stat blob {digest}"), e)),
        }
    }

    /// Opens the blob for streaming reads.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        match File::open(self.path(digest)) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(Error::io(format!("open blob {digest}"), e)),
        }
    }

    /// Reads a small blob (a manifest, a config) whole, refusing more than
    /// `limit` bytes, and checks its digest on the way.
    pub fn read_bytes(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let f = self.open_blob(digest)?;
        let mut bytes = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut bytes)
            .ctx(|| format!("read blob {digest}"))?;
        if bytes.len() as u64 > limit {
            return Err(Error::Format(format!(
                "blob {digest} is larger than {limit} bytes"
            )));
        }
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("blob {}", self.path(digest).display()),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Starts writing a new blob whose digest is computed on the way.
    pub fn writer(&self) -> Result<BlobWriter> {
        self.new_writer(true)
    }

    /// Starts writing a new blob whose digest the caller computes from the very
    /// bytes it writes (a layer's diff ID, hashed while the tar is made), and
    /// hands to [`BlobWriter::commit_prehashed`]: sha256 runs once, not twice.
    pub(crate) fn writer_prehashed(&self) -> Result<BlobWriter> {
        self.new_writer(false)
    }

    fn new_writer(&self, hash: bool) -> Result<BlobWriter> {
        let tmp = self.ingest.join(fsutil::temp_name("blob"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .ctx(|| format!("create {}", tmp.display()))?;
        Ok(BlobWriter {
            file: Some(file),
            tmp,
            hasher: hash.then(Hasher::new),
            len: 0,
            store: self.clone(),
            written_back: 0,
        })
    }

    /// Streams `reader` into a blob; when `expected` is given the content must
    /// have that digest (and size, when given) or nothing is stored.
    pub fn put_reader<R: Read>(
        &self,
        mut reader: R,
        expected: Option<(&Digest, Option<u64>)>,
    ) -> Result<(Digest, u64)> {
        if let Some((d, Some(size))) = expected {
            if self.size(d).ok() == Some(size) {
                // Already stored: the caller's stream is not needed.
                self.touch(d);
                return Ok((d.clone(), size));
            }
        }
        let mut w = self.writer()?;
        io::copy(&mut reader, &mut w).ctx(|| "stream into the content store".to_string())?;
        w.commit(expected)
    }

    /// Stores a small blob held in memory.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if self.size(&digest).ok() == Some(bytes.len() as u64) {
            self.touch(&digest);
            return Ok(digest);
        }
        let mut w = self.writer()?;
        w.write_all(bytes).ctx(|| "write blob".to_string())?;
        w.commit(Some((&digest, Some(bytes.len() as u64))))?;
        Ok(digest)
    }

    /// Marks a blob as just used: garbage collection spares blobs touched
    /// since the oldest live lease was taken (a writer that found its blob
    /// already present relies on this).
    pub fn touch(&self, digest: &Digest) {
        let now = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_NOW,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_NOW,
            },
        };
        let _ = rustix::fs::utimensat(
            rustix::fs::CWD,
            self.path(digest),
            &now,
            rustix::fs::AtFlags::empty(),
        );
    }

    /// Every blob digest present, sorted. Names that are not digests are skipped.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.blobs).ctx(|| format!("read {}", self.blobs.display()))? {
            let e = e.ctx(|| format!("read {}", self.blobs.display()))?;
            if let Some(d) = e
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes a blob (a missing one is fine).
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        match fs::remove_file(self.path(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("delete blob {digest}"), e)),
        }
    }

    /// Re-hashes a blob and says whether its content matches its name.
    pub fn verify(&self, digest: &Digest) -> Result<bool> {
        let f = self.open_blob(digest)?;
        let (actual, _) = crate::digest::digest_reader(io::BufReader::with_capacity(1 << 20, f))
            .ctx(|| format!("read blob {digest}"))?;
        Ok(&actual == digest)
    }

    /// Temp files left in the ingest area by writers that are gone (crashed or
    /// killed); garbage collection removes them.
    pub fn stale_ingests(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.ingest).ctx(|| format!("read {}", self.ingest.display()))? {
            let e = e.ctx(|| format!("read {}", self.ingest.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            match fsutil::temp_name_pid(&name) {
                Some(pid) if fsutil::pid_alive(pid) => {}
                _ => out.push(e.path()),
            }
        }
        Ok(out)
    }

    /// The ingest directory (temp files on the blobs' file system).
    pub fn ingest_dir(&self) -> &Path {
        &self.ingest
    }
}

/// A blob being written. Dropped without [`BlobWriter::commit`], its temp file goes.
pub struct BlobWriter {
    file: Option<File>,
    tmp: PathBuf,
    /// None when the caller supplies the digest (`writer_prehashed`).
    hasher: Option<Hasher>,
    len: u64,
    store: ContentStore,
    /// Bytes already handed to the disk's writeback (see [`WRITEBACK_CHUNK`]).
    written_back: u64,
}

/// Every this many bytes, the writer asks the kernel to start writing them to disk. Without it
/// a big layer sits in the page cache until the commit's fsync, which then waits for all of it
/// (0.8 s for the 534 MB c-biglayer layer); started early, the disk works while the tar is
/// still being made, and the fsync finds little left to do.
const WRITEBACK_CHUNK: u64 = 8 << 20;

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes the blob visible: fsync, check the digest (and size) against
    /// `expected` when given, rename into place, fsync the directory.
    pub fn commit(mut self, expected: Option<(&Digest, Option<u64>)>) -> Result<(Digest, u64)> {
        self.sync()?;
        let size = self.len;
        let digest = self
            .hasher
            .take()
            .expect("commit_prehashed is for writer_prehashed")
            .finish();
        if let Some((want, want_size)) = expected {
            if &digest != want {
                return Err(Error::DigestMismatch {
                    what: "blob".into(),
                    expected: want.clone(),
                    actual: digest,
                });
            }
            if let Some(want_size) = want_size {
                if want_size != size {
                    return Err(Error::SizeMismatch {
                        what: format!("blob {digest}"),
                        expected: want_size,
                        actual: size,
                    });
                }
            }
        }
        self.publish(digest, size)
    }

    /// [`BlobWriter::commit`] for a [`ContentStore::writer_prehashed`] blob:
    /// `digest` is the caller's sha256 of exactly the bytes it wrote.
    pub(crate) fn commit_prehashed(mut self, digest: Digest, size: u64) -> Result<(Digest, u64)> {
        debug_assert!(self.hasher.is_none());
        self.sync()?;
        if size != self.len {
            return Err(Error::SizeMismatch {
                what: format!("blob {digest}"),
                expected: size,
                actual: self.len,
            });
        }
        self.publish(digest, size)
    }

    fn sync(&mut self) -> Result<()> {
        let mut file = self.file.take().expect("commit once");
        file.flush()
            .ctx(|| format!("write {}", self.tmp.display()))?;
        file.sync_all()
            .ctx(|| format!("fsync {}", self.tmp.display()))
    }

    fn publish(self, digest: Digest, size: u64) -> Result<(Digest, u64)> {
        let dest = self.store.path(&digest);
        fs::rename(&self.tmp, &dest)
            .ctx(|| format!("rename {} to {}", self.tmp.display(), dest.display()))?;
        fsutil::fsync_dir(&self.store.blobs)?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self.file.as_mut().expect("not committed");
        let n = file.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.len += n as u64;
        let len = self.len;
        if len - self.written_back >= WRITEBACK_CHUNK {
            use std::os::fd::AsRawFd;
            // SAFETY: the fd is this writer's open file; SYNC_FILE_RANGE_WRITE only starts
            // writeback of the range and touches no memory of ours. A failure changes nothing
            // that the commit's fsync does not still guarantee, so it is ignored.
            unsafe {
                libc::sync_file_range(
                    file.as_raw_fd(),
                    self.written_back as libc::off64_t,
                    (len - self.written_back) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.written_back = len;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // After a successful commit the temp name no longer exists; this only
        // cleans up abandoned or failed writes.
        let _ = fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_then_read_back_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let d = cs.put_bytes(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(cs.read_bytes(&d, 100).unwrap(), b"hello");
        assert!(cs.verify(&d).unwrap());
        assert_eq!(cs.list().unwrap(), vec![d.clone()]);
        fs::write(cs.path(&d), b"jello").unwrap();
        assert!(!cs.verify(&d).unwrap());
        assert!(matches!(
            cs.read_bytes(&d, 100),
            Err(Error::DigestMismatch { .. })
        ));
    }

    #[test]
    fn wrong_digest_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let want = Digest::of(b"other");
        let err = cs
            .put_reader(&b"data"[..], Some((&want, None)))
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(cs.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(cs.ingest_dir()).unwrap().count(), 0);
    }

    #[test]
    fn concurrent_writers_of_one_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let data = vec![42u8; 4 << 20];
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| cs.put_reader(&data[..], None).unwrap());
            }
        });
        let d = Digest::of(&data);
        assert_eq!(cs.list().unwrap(), vec![d.clone()]);
        assert!(cs.verify(&d).unwrap());
        assert_eq!(fs::read_dir(cs.ingest_dir()).unwrap().count(), 0);
    }
}
