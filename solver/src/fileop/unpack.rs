//! ADD of a local tar archive (plain, gzip, bzip2, xz or zstd, told by
//! magic bytes): unpacked into the destination directory, which acts as
//! the root of every entry, as BuildKit's chrooted untar: `..` and
//! absolute names stay inside it, symlinks on the way resolve inside it,
//! hard links can only point inside it.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;

use rustix::fs::{
    chownat, fchmod, fchown, linkat, mkdirat, mknodat, symlinkat, AtFlags, FileType, Mode, OFlags,
};

use super::mirror::{Mirror, Reuse, Wanted};
use super::owner::Ids;
use super::root::{
    clean, file_type, gid_of, set_times_at, set_times_fd, show, uid_of, DirSpec, Root,
};
use super::{open_nofollow, remove_all_at, ErrorKind, FileOpError};

const A: &str = "add";

/// Reads a file from offset 0 with `pread`, so that readers sharing one
/// open file (a probe on a thread, then the real extraction) never move
/// each other's offset.
struct FromStart {
    file: File,
    pos: u64,
}

impl Read for FromStart {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A decompressing reader for `file` from its start, chosen by its first
/// bytes.
fn decoder(file: File) -> io::Result<Box<dyn Read>> {
    let mut magic = [0u8; 6];
    let n = file.read_at(&mut magic, 0)?;
    decoder_for(&magic[..n], FromStart { file, pos: 0 })
}

/// A decompressing reader over `input`, chosen by `magic`, its first bytes
/// (gzip, bzip2, xz, zstd, or none).
pub(crate) fn decoder_for<R: Read + Send + 'static>(
    magic: &[u8],
    input: R,
) -> io::Result<Box<dyn Read>> {
    let m = magic;
    let r: Box<dyn Read> = if m.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(input)))
    } else if m.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(BufReader::new(input)))
    } else if m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(XzReader::new(input))
    } else if m.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(input)?)
    } else {
        Box::new(input)
    };
    // A tar that stops where its last entry's data does is whole to Go's reader (and so to
    // docker, whose CLI sends such build contexts): read it the same way.
    Ok(Box::new(super::UnterminatedTar::new(r)))
}

/// Whether `magic`, the first bytes of a stream, start a compressed stream
/// kiln can read.
pub(crate) fn is_compressed(magic: &[u8]) -> bool {
    [
        &[0x1f, 0x8b][..],
        b"BZh",
        &[0xfd, b'7', b'z', b'X', b'Z', 0],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ]
    .iter()
    .any(|m| magic.starts_with(m))
}

/// lzma-rs decodes into a writer; this runs it on a thread and hands the
/// output over a pipe-like channel so the tar reader can stream it with
/// flat memory.
struct XzReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

struct ChanWriter(std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>);

impl io::Write for ChanWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0
            .send(Ok(b.to_vec()))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl XzReader {
    fn new<R: Read + Send + 'static>(file: R) -> XzReader {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        std::thread::spawn(move || {
            let mut input = BufReader::new(file);
            let mut out = io::BufWriter::with_capacity(64 * 1024, ChanWriter(tx.clone()));
            let r = lzma_rs::xz_decompress(&mut input, &mut out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
                .and_then(|()| io::Write::flush(&mut out));
            if let Err(e) = r {
                let _ = tx.send(Err(e));
            }
        });
        XzReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for XzReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.buf = chunk?;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Whether `file` is a tar archive (possibly compressed): its first
/// header reads, as BuildKit's `isArchivePath` (an empty or unknown file
/// is copied as is).
pub(crate) fn is_archive(file: &File) -> io::Result<bool> {
    let probe = file.try_clone()?;
    let ok = match decoder(probe) {
        Ok(r) => {
            let mut ar = tar::Archive::new(r);
            let first = ar.entries().ok().and_then(|mut e| e.next());
            matches!(first, Some(Ok(_)))
        }
        Err(_) => false,
    };
    Ok(ok)
}

/// Unpacks `file` into `root` (the destination directory). `chown`
/// overrides the owners recorded in the archive.
pub(crate) fn extract(
    root: Root,
    file: File,
    chown: Option<Ids>,
    display: &str,
) -> Result<(), FileOpError> {
    let bad = |e: io::Error| FileOpError::new(A, display, ErrorKind::Archive(e.to_string()));
    extract_from(
        root,
        decoder(file).map_err(bad)?,
        chown,
        display,
        false,
        None,
    )
}

/// Unpacks the (already decompressed) tar stream `input` into `root`, as
/// [`extract`] does. With `no_overwrite_dir_non_dir` an entry that would replace a
/// directory with a non-directory (or the reverse) fails instead (docker cp's
/// `noOverwriteDirNonDir`). With `mirror`, `root` holds an earlier unpack to bring up to
/// date: unchanged regular files are kept (see [`Mirror`]) and every path is recorded.
pub(crate) fn extract_from(
    root: Root,
    input: Box<dyn Read>,
    chown: Option<Ids>,
    display: &str,
    no_overwrite_dir_non_dir: bool,
    mut mirror: Option<&mut Mirror>,
) -> Result<(), FileOpError> {
    let bad = |e: io::Error| FileOpError::new(A, display, ErrorKind::Archive(e.to_string()));
    let mut ar = tar::Archive::new(input);
    // Parents missing from the archive are made as go-archive makes them:
    // 0755, owned by root even under --chown.
    let spec = DirSpec {
        mode: 0o755,
        owner: None,
        time: None,
    };
    let mut created = Vec::new();
    let mut dirs: Vec<(OwnedFd, i64)> = Vec::new();
    for entry in ar.entries().map_err(bad)? {
        let mut e = entry.map_err(bad)?;
        let comps = clean(&e.path_bytes());
        if comps.is_empty() {
            continue;
        }
        let at = show(&comps);
        let err = |e: io::Error| FileOpError::io(A, format!("{display}: {at}"), e);

        // Owned: the entry is read (mutably) while its header's fields are still wanted.
        let h = e.header().clone();
        let kind = h.entry_type();
        // Go's tar reader reads an empty numeric field as 0; so does kiln.
        let mode = h.mode().unwrap_or(0) & 0o7777;
        let (uid, gid) = match chown {
            Some(i) => (i.uid, i.gid),
            None => (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32),
        };
        let mtime = h.mtime().unwrap_or(0) as i64;
        let leaf = root
            .leaf(&comps, false, Some((&spec, &mut created)))
            .map_err(err)?;
        let Some(name) = leaf.name.as_deref() else {
            continue;
        };
        if let Some(m) = mirror.as_deref_mut() {
            m.see(leaf.dir.as_fd(), name).map_err(err)?;
        }
        let existing = leaf.lstat().map_err(err)?;
        let keep_dir =
            existing.is_some_and(|st| file_type(&st) == FileType::Directory && kind.is_dir());
        if let (true, Some(st)) = (no_overwrite_dir_non_dir, existing) {
            let was_dir = file_type(&st) == FileType::Directory;
            if was_dir != kind.is_dir() {
                let what = if was_dir {
                    "cannot overwrite directory with non-directory"
                } else {
                    "cannot overwrite non-directory with directory"
                };
                return Err(FileOpError::new(
                    A,
                    format!("{display}: {at}"),
                    ErrorKind::Archive(what.into()),
                ));
            }
        }
        let owner = (Some(uid_of(uid)), Some(gid_of(gid)));
        let plain = matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous);
        if let (Some(m), true) = (mirror.as_deref_mut(), plain && !has_xattrs(&mut e)) {
            let want = Wanted {
                size: h.size().unwrap_or(0),
                mode,
                uid,
                gid,
                mtime,
            };
            match m
                .reuse_file(leaf.dir.as_fd(), name, existing.as_ref(), &want, &mut e)
                .map_err(err)?
            {
                Reuse::Kept => continue,
                Reuse::Replaced(f) => {
                    fchown(&f, owner.0, owner.1).map_err(|e| err(e.into()))?;
                    fchmod(&f, Mode::from_raw_mode(mode)).map_err(|e| err(e.into()))?;
                    set_times_fd(&f, (mtime, 0), (mtime, 0)).map_err(err)?;
                    continue;
                }
                Reuse::No => {}
            }
        }
        if existing.is_some() && !keep_dir {
            remove_all_at(&leaf.dir, name).map_err(err)?;
        }
        match kind {
            tar::EntryType::Directory => {
                if !keep_dir {
                    mkdirat(&leaf.dir, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| err(e.into()))?;
                }
                let fd = open_nofollow(&leaf.dir, name, OFlags::RDONLY | OFlags::DIRECTORY)
                    .map_err(err)?;
                fchown(&fd, owner.0, owner.1).map_err(|e| err(e.into()))?;
                fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| err(e.into()))?;
                set_xattrs(&mut e, &fd);
                dirs.push((fd, mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = open_nofollow(
                    &leaf.dir,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
                )
                .map_err(err)?;
                let mut f = File::from(fd);
                io::copy(&mut e, &mut f).map_err(err)?;
                if let Some(m) = mirror.as_deref_mut() {
                    m.wrote();
                }
                fchown(&f, owner.0, owner.1).map_err(|e| err(e.into()))?;
                fchmod(&f, Mode::from_raw_mode(mode)).map_err(|e| err(e.into()))?;
                set_xattrs(&mut e, f.as_fd());
                set_times_fd(&f, (mtime, 0), (mtime, 0)).map_err(err)?;
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| bad(io::Error::other("symlink without target")))?
                    .into_owned();
                symlinkat(target.as_slice(), &leaf.dir, name).map_err(|e| err(e.into()))?;
                chownat(&leaf.dir, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| err(e.into()))?;
                set_times_at(&leaf.dir, name, (mtime, 0), (mtime, 0)).map_err(err)?;
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| bad(io::Error::other("hard link without target")))?
                    .into_owned();
                // The target is resolved inside the destination, never
                // following its last component: a link to `../../etc/shadow`
                // can only reach the destination's own `etc/shadow`.
                let tleaf = root.leaf(&clean(&target), false, None).map_err(err)?;
                let Some(tname) = tleaf.name.as_deref() else {
                    return Err(err(rustix::io::Errno::PERM.into()));
                };
                linkat(&tleaf.dir, tname, &leaf.dir, name, AtFlags::empty())
                    .map_err(|e| err(e.into()))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                mknodat(
                    &leaf.dir,
                    name,
                    ft,
                    Mode::from_raw_mode(mode),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(|e| err(e.into()))?;
                chownat(&leaf.dir, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| err(e.into()))?;
                set_times_at(&leaf.dir, name, (mtime, 0), (mtime, 0)).map_err(err)?;
            }
            // Metadata entries are consumed by the tar reader; sparse
            // and other exotic types are skipped, as go-archive does.
            _ => {}
        }
    }
    // What a mirror holds that the stream does not name goes before the directories get
    // their times: removing it changes them.
    if let Some(m) = mirror {
        m.sweep(&root).map_err(|e| FileOpError::io(A, display, e))?;
    }
    // Children changed the directories' times: set them last, deepest first.
    for (fd, mtime) in dirs.iter().rev() {
        set_times_fd(fd, (*mtime, 0), (*mtime, 0)).map_err(|e| FileOpError::io(A, display, e))?;
    }
    Ok(())
}

/// Whether the entry carries PAX `SCHILY.xattr.*` records (a mirror never reuses such a
/// file: comparing xattrs is not worth it for the contexts that have them).
fn has_xattrs<R: Read>(e: &mut tar::Entry<R>) -> bool {
    let Ok(Some(exts)) = e.pax_extensions() else {
        return false;
    };
    exts.flatten()
        .any(|x| x.key_bytes().starts_with(b"SCHILY.xattr."))
}

/// PAX `SCHILY.xattr.*` records, set best effort.
fn set_xattrs<R: Read>(e: &mut tar::Entry<R>, fd: impl AsFd) {
    let Ok(Some(exts)) = e.pax_extensions() else {
        return;
    };
    for ext in exts.flatten() {
        if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
            let _ = rustix::fs::fsetxattr(
                fd.as_fd(),
                name,
                ext.value_bytes(),
                rustix::fs::XattrFlags::empty(),
            );
        }
    }
}
