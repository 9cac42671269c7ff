//! Layer apply (unpack): gzip, zstd or plain tar, detected by magic bytes,
//! onto a directory, safely.
//!
//! Every hostile-archive trick is refused with [`Error::UnsafeEntry`]:
//! absolute names and `..` components are rejected as written; each parent
//! directory is reached one component at a time with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
//! RESOLVE_NO_XDEV)` from the root's fd, so an entry can neither climb out nor
//! pass through a symlink (planted before or by an earlier entry of the same
//! archive); files are created with `O_CREAT | O_EXCL | O_NOFOLLOW` relative
//! to that fd; hard links are made with `linkat` between two such fds, so
//! their target is inside the root too. Headers are read raw with size limits
//! (no huge PAX or GNU long-name records), and the decompressed size may not
//! outgrow the compressed size by more than a ratio (zip bombs).
//!
//! On error the target is left half-written: callers unpack into a fresh
//! directory and rename it into place only on success (see `snapshot`).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use super::compress::{decoder, Compression};
use super::fsops::{self, lstat_at, remove_at, set_xattr_at};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, IoContext, Result};

/// How whiteouts are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Into an empty snapshot directory that overlayfs will stack: `.wh.NAME`
    /// becomes a 0/0 character device, `.wh..wh..opq` the
    /// `trusted.overlay.opaque=y` xattr (what overlayfs itself writes).
    Overlay,
    /// Onto the merged tree of the layers below: whiteouts delete.
    Merged,
}

/// Which device nodes an archive may create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePolicy {
    /// None at all (FIFOs are still fine).
    Refuse,
    /// The character devices every container has anyway (null, zero, full,
    /// random, urandom, tty, console, ptmx); a layer holding a disk's block
    /// device or /dev/mem is refused.
    Standard,
    /// Any device (images known to be trusted).
    All,
}

/// Limits and behaviour of [`apply_layer`].
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// How whiteouts are applied.
    pub mode: ApplyMode,
    /// Which device nodes may be created.
    pub devices: DevicePolicy,
    /// Largest PAX or GNU long-name record accepted, in bytes.
    pub max_header: u64,
    /// Largest decompressed/compressed ratio once past `ratio_floor` bytes (0: no limit).
    pub max_ratio: u64,
    /// Decompressed bytes allowed before the ratio is enforced.
    pub ratio_floor: u64,
    /// Set owners from the archive (needs root; otherwise files are the caller's).
    pub same_owner: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            mode: ApplyMode::Overlay,
            devices: DevicePolicy::Standard,
            max_header: 1 << 20,
            max_ratio: 250,
            ratio_floor: 64 << 20,
            same_owner: rustix::process::geteuid().is_root(),
        }
    }
}

/// What an apply saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// sha256 of the uncompressed tar stream (the layer's diff ID).
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
    /// How the input was compressed.
    pub compression: Compression,
    /// Entries applied.
    pub entries: u64,
}

struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Fails the stream once decompressed bytes outgrow compressed ones by too much.
struct RatioGuard<R> {
    inner: R,
    compressed: Arc<AtomicU64>,
    out: u64,
    max_ratio: u64,
    floor: u64,
}

impl<R: Read> Read for RatioGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        if self.max_ratio > 0 && self.out > self.floor {
            let c = self.compressed.load(Ordering::Relaxed).max(1);
            if self.out / c > self.max_ratio {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "decompression bomb: {} bytes out of {} compressed (ratio over {})",
                        self.out, c, self.max_ratio
                    ),
                ));
            }
        }
        Ok(n)
    }
}

/// Applies the layer read from `reader` onto the directory `target`.
pub fn apply_layer<R: Read + Send>(
    reader: R,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats> {
    let root = fsops::open_dir(target)?;
    let compressed = Arc::new(AtomicU64::new(0));
    let counted = BufReader::with_capacity(
        1 << 20,
        Counting {
            inner: reader,
            count: compressed.clone(),
        },
    );
    let (compression, plain) = decoder(counted).map_err(|e| archive_err(target, e))?;
    let guarded = RatioGuard {
        inner: plain,
        compressed,
        out: 0,
        max_ratio: opts.max_ratio,
        floor: opts.ratio_floor,
    };
    // Decompression and hashing run on their own thread, a few 1 MiB chunks
    // ahead of the thread that parses entries and writes files.
    let mut ap = Applier {
        root,
        opts: *opts,
        created: HashSet::new(),
        dir_times: Vec::new(),
        parent_cache: None,
        entries: 0,
    };
    let (result, hashed) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
        let producer = scope.spawn(move || {
            let mut src = guarded;
            let mut h = Hasher::new();
            loop {
                let mut buf = vec![0u8; 1 << 20];
                match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        h.update(&buf);
                        if tx.send(Ok(buf)).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            }
            h
        });
        let mut chunks = ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        };
        let result = (|| {
            {
                let mut archive = tar::Archive::new(&mut chunks);
                ap.run(&mut archive, target)?;
            }
            // The end-of-archive blocks and any padding after them are part of the diff ID.
            io::copy(&mut chunks, &mut io::sink()).map_err(|e| archive_err(target, e))?;
            ap.finish_dirs()
        })();
        drop(chunks);
        (result, producer.join())
    });
    result?;
    let hashed = hashed.map_err(|_| Error::Archive {
        what: format!("layer for {}", target.display()),
        message: "the decompression thread panicked".into(),
    })?;
    let tar_size = hashed.len();
    Ok(ApplyStats {
        diff_id: hashed.finish(),
        tar_size,
        compression,
        entries: ap.entries,
    })
}

/// The reading end of the decompression thread's chunks.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.cur = chunk?;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn archive_err(target: &Path, e: io::Error) -> Error {
    Error::Archive {
        what: format!("layer for {}", target.display()),
        message: e.to_string(),
    }
}

/// A PAX or GNU record read ahead of the entry it describes.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    xattrs: Vec<(String, Vec<u8>)>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<(i64, u32)>,
}

/// Parses PAX records (`LEN KEY=VALUE\n`), by hand: the tar crate only parses
/// them when it also reads them unbounded, which a hostile header exploits.
fn parse_pax(data: &[u8], p: &mut Pending) -> std::result::Result<(), String> {
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or("PAX record without length")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("PAX record with a bad length")?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err("PAX record length out of range".into());
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|b| *b == b'=')
            .ok_or("PAX record without '='")?;
        let (k, v) = (&rec[..eq], &rec[eq + 1..]);
        let num = |v: &[u8]| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        };
        match k {
            b"path" => p.path = Some(v.to_vec()),
            b"linkpath" => p.link = Some(v.to_vec()),
            b"size" => p.size = Some(num(v).ok_or("bad PAX size")?),
            b"uid" => p.uid = Some(num(v).ok_or("bad PAX uid")?),
            b"gid" => p.gid = Some(num(v).ok_or("bad PAX gid")?),
            b"mtime" => {
                let s = std::str::from_utf8(v).map_err(|_| "bad PAX mtime")?;
                let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
                let sec: i64 = sec.parse().map_err(|_| "bad PAX mtime")?;
                let mut ns = 0u32;
                for (i, c) in frac.bytes().take(9).enumerate() {
                    if !c.is_ascii_digit() {
                        return Err("bad PAX mtime".into());
                    }
                    ns += (c - b'0') as u32 * 10u32.pow(8 - i as u32);
                }
                p.mtime = Some((sec, ns));
            }
            _ => {
                if let Some(x) = k.strip_prefix(b"SCHILY.xattr.") {
                    p.xattrs
                        .push((String::from_utf8_lossy(x).into_owned(), v.to_vec()));
                }
            }
        }
        rest = &rest[len..];
    }
    Ok(())
}

/// Splits an archive name into safe components, or says why it is unsafe.
fn components(raw: &[u8]) -> Result<Vec<Vec<u8>>> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    if raw.first() == Some(&b'/') {
        return Err(Error::unsafe_entry(shown(), "absolute path"));
    }
    if raw.len() > 4096 {
        return Err(Error::unsafe_entry(shown(), "name longer than PATH_MAX"));
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::unsafe_entry(
                    shown(),
                    "'..' component would leave the root",
                ))
            }
            c if c.contains(&0) => return Err(Error::unsafe_entry(shown(), "NUL in name")),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn is_dir(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

struct Applier {
    root: OwnedFd,
    opts: ApplyOptions,
    /// Paths this layer created (an opaque marker in merged mode keeps them).
    created: HashSet<Vec<u8>>,
    /// Directory mtimes, set last (creating children changes them).
    dir_times: Vec<(Vec<Vec<u8>>, Timestamps)>,
    /// The last parent directory reached, kept while entries stay in it.
    parent_cache: Option<(Vec<Vec<u8>>, OwnedFd)>,
    entries: u64,
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

impl Applier {
    fn run<R: Read>(&mut self, archive: &mut tar::Archive<R>, target: &Path) -> Result<()> {
        let mut pending = Pending::default();
        let entries = archive
            .entries()
            .map_err(|e| archive_err(target, e))?
            .raw(true);
        for entry in entries {
            let mut entry = entry.map_err(|e| archive_err(target, e))?;
            let ty = entry.header().entry_type();
            let hsize = entry
                .header()
                .entry_size()
                .map_err(|e| archive_err(target, e))?;
            match ty {
                tar::EntryType::XHeader
                | tar::EntryType::XGlobalHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink => {
                    if hsize > self.opts.max_header {
                        return Err(Error::Archive {
                            what: format!("layer for {}", target.display()),
                            message: format!(
                                "{} bytes of extended header, over the {} byte limit",
                                hsize, self.opts.max_header
                            ),
                        });
                    }
                    let mut data = Vec::with_capacity(hsize as usize);
                    (&mut entry)
                        .take(hsize)
                        .read_to_end(&mut data)
                        .map_err(|e| archive_err(target, e))?;
                    match ty {
                        tar::EntryType::XHeader => {
                            parse_pax(&data, &mut pending).map_err(|m| Error::Archive {
                                what: format!("layer for {}", target.display()),
                                message: m,
                            })?
                        }
                        tar::EntryType::GNULongName => {
                            pending.path =
                                Some(data.split(|b| *b == 0).next().unwrap_or_default().to_vec())
                        }
                        tar::EntryType::GNULongLink => {
                            pending.link =
                                Some(data.split(|b| *b == 0).next().unwrap_or_default().to_vec())
                        }
                        // Global records apply to everything after them; none kiln uses matter.
                        _ => {}
                    }
                    continue;
                }
                _ => {}
            }
            let p = std::mem::take(&mut pending);
            if let Some(s) = p.size {
                if s != hsize {
                    return Err(Error::Archive {
                        what: format!("layer for {}", target.display()),
                        message: "PAX size differs from the header size (unsupported)".into(),
                    });
                }
            }
            let name = p
                .path
                .clone()
                .unwrap_or_else(|| entry.header().path_bytes().into_owned());
            let link = p
                .link
                .clone()
                .or_else(|| entry.header().link_name_bytes().map(|l| l.into_owned()));
            self.apply_entry(&mut entry, ty, &name, link.as_deref(), &p)?;
            self.entries += 1;
        }
        Ok(())
    }

    /// Opens the directory `comps` (relative to the root) one component at a
    /// time, creating missing ones (0755) when `create`, refusing symlinks.
    fn open_parent(&mut self, comps: &[Vec<u8>], create: bool, shown: &[u8]) -> Result<OwnedFd> {
        if let Some((p, fd)) = &self.parent_cache {
            if p.as_slice() == comps {
                return fd.try_clone().ctx(|| "dup directory fd".to_string());
            }
        }
        let shown_s = || String::from_utf8_lossy(shown).into_owned();
        let mut cur = self.root.try_clone().ctx(|| "dup root fd".to_string())?;
        for (i, c) in comps.iter().enumerate() {
            let open = |dir: &OwnedFd| {
                rustix::fs::openat2(
                    dir,
                    OsStr::from_bytes(c),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    RESOLVE,
                )
            };
            let next = match open(&cur) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    rustix::fs::mkdirat(&cur, OsStr::from_bytes(c), Mode::from_raw_mode(0o755))
                        .ctx(|| format!("create parent directories of {}", shown_s()))?;
                    self.created.insert(comps[..=i].join(&b'/'));
                    open(&cur).ctx(|| format!("open parent of {}", shown_s()))?
                }
                Err(Errno::NOENT) => {
                    return Err(Error::unsafe_entry(
                        shown_s(),
                        format!(
                            "{:?} does not exist in the layer",
                            String::from_utf8_lossy(&comps[..=i].join(&b'/'))
                        ),
                    ))
                }
                Err(Errno::LOOP) | Err(Errno::XDEV) => {
                    return Err(Error::unsafe_entry(
                        shown_s(),
                        format!(
                            "parent {:?} is a symlink",
                            String::from_utf8_lossy(&comps[..=i].join(&b'/'))
                        ),
                    ))
                }
                Err(Errno::NOTDIR) => {
                    return Err(Error::unsafe_entry(
                        shown_s(),
                        format!(
                            "parent {:?} is not a directory",
                            String::from_utf8_lossy(&comps[..=i].join(&b'/'))
                        ),
                    ))
                }
                Err(e) => return Err(Error::io(format!("open parent of {}", shown_s()), e.into())),
            };
            cur = next;
        }
        self.parent_cache = Some((
            comps.to_vec(),
            cur.try_clone().ctx(|| "dup directory fd".to_string())?,
        ));
        Ok(cur)
    }

    /// Forgets cached parents that `comps` may replace.
    fn invalidate(&mut self, comps: &[Vec<u8>]) {
        if let Some((p, _)) = &self.parent_cache {
            if p.starts_with(comps) {
                self.parent_cache = None;
            }
        }
    }

    fn apply_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        ty: tar::EntryType,
        raw_name: &[u8],
        link: Option<&[u8]>,
        p: &Pending,
    ) -> Result<()> {
        let shown = || String::from_utf8_lossy(raw_name).into_owned();
        let comps = components(raw_name)?;
        let Some((base, parent_comps)) = comps.split_last() else {
            // The root itself ("./"): its metadata is the snapshot's, not the layer's.
            return Ok(());
        };
        let h = entry.header();
        let mode = h
            .mode()
            .map_err(|e| Error::unsafe_entry(shown(), e.to_string()))?
            & 0o7777;
        let uid = p.uid.or_else(|| h.uid().ok()).unwrap_or(0);
        let gid = p.gid.or_else(|| h.gid().ok()).unwrap_or(0);
        let mtime = p
            .mtime
            .unwrap_or_else(|| (h.mtime().unwrap_or(0) as i64, 0));

        // Whiteouts.
        if let Some(hidden) = base.strip_prefix(b".wh.") {
            let dir = self.open_parent(parent_comps, true, raw_name)?;
            if hidden == b".wh..opq" {
                return self.opaque(dir.as_fd(), parent_comps, raw_name);
            }
            if hidden.starts_with(b".wh.") {
                // Other aufs metadata (.wh..wh.plnk and the like) carries nothing for OCI.
                return Ok(());
            }
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(Error::unsafe_entry(shown(), "whiteout of an invalid name"));
            }
            let mut hidden_path = parent_comps.to_vec();
            hidden_path.push(hidden.to_vec());
            self.invalidate(&hidden_path);
            return match self.opts.mode {
                ApplyMode::Merged => {
                    remove_at(dir.as_fd(), hidden).ctx(|| format!("apply whiteout {}", shown()))
                }
                ApplyMode::Overlay => {
                    if lstat_at(dir.as_fd(), hidden).is_ok() {
                        // Created by this very layer: a whiteout only hides lower layers.
                        return Ok(());
                    }
                    rustix::fs::mknodat(
                        &dir,
                        OsStr::from_bytes(hidden),
                        FileType::CharacterDevice,
                        Mode::empty(),
                        rustix::fs::makedev(0, 0),
                    )
                    .ctx(|| format!("create overlay whiteout for {}", shown()))
                }
            };
        }

        let dir = self.open_parent(parent_comps, true, raw_name)?;
        let d = dir.as_fd();
        let name = OsStr::from_bytes(base);
        let existing = lstat_at(d, base).ok();
        let full = comps.join(&b'/');

        // Anything but a directory landing on a directory replaces it; a
        // directory on a directory merges.
        let keep_dir = ty == tar::EntryType::Directory && existing.as_ref().is_some_and(is_dir);
        if existing.is_some() && !keep_dir {
            self.invalidate(&comps);
            remove_at(d, base).ctx(|| format!("replace {}", shown()))?;
        }
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: mtime.0,
                tv_nsec: mtime.1 as _,
            },
            last_modification: Timespec {
                tv_sec: mtime.0,
                tv_nsec: mtime.1 as _,
            },
        };
        match ty {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    d,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .ctx(|| format!("create {}", shown()))?;
                let mut f = File::from(fd);
                io::copy(entry, &mut f).ctx(|| format!("write {}", shown()))?;
                self.set_owner(d, base, uid, gid, &shown)?;
                rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))
                    .ctx(|| format!("chmod {}", shown()))?;
                self.set_xattrs(d, base, &p.xattrs, &shown)?;
                rustix::fs::futimens(&f, &times).ctx(|| format!("set times of {}", shown()))?;
            }
            tar::EntryType::Directory => {
                if !keep_dir {
                    rustix::fs::mkdirat(d, name, Mode::from_raw_mode(0o700))
                        .ctx(|| format!("mkdir {}", shown()))?;
                }
                self.set_owner(d, base, uid, gid, &shown)?;
                rustix::fs::chmodat(d, name, Mode::from_raw_mode(mode), AtFlags::empty())
                    .ctx(|| format!("chmod {}", shown()))?;
                self.set_xattrs(d, base, &p.xattrs, &shown)?;
                self.dir_times.push((comps.clone(), times));
            }
            tar::EntryType::Symlink => {
                let target =
                    link.ok_or_else(|| Error::unsafe_entry(shown(), "symlink without a target"))?;
                if target.is_empty() || target.contains(&0) {
                    return Err(Error::unsafe_entry(
                        shown(),
                        "empty or NUL-holding symlink target",
                    ));
                }
                // The target is stored, never followed: it may point anywhere,
                // as /etc/localtime does; no later entry may pass through it.
                rustix::fs::symlinkat(OsStr::from_bytes(target), d, name)
                    .ctx(|| format!("symlink {}", shown()))?;
                self.set_owner(d, base, uid, gid, &shown)?;
                self.set_xattrs(d, base, &p.xattrs, &shown)?;
                rustix::fs::utimensat(d, name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .ctx(|| format!("set times of {}", shown()))?;
            }
            tar::EntryType::Link => {
                let target =
                    link.ok_or_else(|| Error::unsafe_entry(shown(), "hard link without a target"))?;
                let tcomps = components(target)
                    .map_err(|e| Error::unsafe_entry(shown(), format!("hard link target: {e}")))?;
                let Some((tbase, tparent)) = tcomps.split_last() else {
                    return Err(Error::unsafe_entry(shown(), "hard link to the root"));
                };
                let tdir = self.open_parent(tparent, false, raw_name)?;
                let tst = lstat_at(tdir.as_fd(), tbase).map_err(|_| {
                    Error::unsafe_entry(
                        shown(),
                        format!(
                            "hard link target {:?} is not in the layer",
                            String::from_utf8_lossy(target)
                        ),
                    )
                })?;
                if is_dir(&tst) {
                    return Err(Error::unsafe_entry(shown(), "hard link to a directory"));
                }
                // flags 0: the link is to the entry itself, even when it is a symlink.
                rustix::fs::linkat(&tdir, OsStr::from_bytes(tbase), d, name, AtFlags::empty())
                    .ctx(|| format!("hard link {}", shown()))?;
                self.parent_cache = None;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, major, minor) = match ty {
                    tar::EntryType::Fifo => (FileType::Fifo, 0, 0),
                    _ => {
                        let major = h.device_major().ok().flatten().unwrap_or(0);
                        let minor = h.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if ty == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        self.check_device(ft, major, minor, &shown)?;
                        (ft, major, minor)
                    }
                };
                rustix::fs::mknodat(
                    d,
                    name,
                    ft,
                    Mode::from_raw_mode(mode & 0o777),
                    rustix::fs::makedev(major, minor),
                )
                .ctx(|| format!("mknod {}", shown()))?;
                self.set_owner(d, base, uid, gid, &shown)?;
                rustix::fs::chmodat(d, name, Mode::from_raw_mode(mode), AtFlags::empty())
                    .ctx(|| format!("chmod {}", shown()))?;
                self.set_xattrs(d, base, &p.xattrs, &shown)?;
                rustix::fs::utimensat(d, name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .ctx(|| format!("set times of {}", shown()))?;
            }
            other => {
                return Err(Error::unsafe_entry(
                    shown(),
                    format!("unsupported entry type {other:?}"),
                ));
            }
        }
        self.created.insert(full);
        Ok(())
    }

    fn check_device(
        &self,
        ft: FileType,
        major: u32,
        minor: u32,
        shown: &dyn Fn() -> String,
    ) -> Result<()> {
        let standard = ft == FileType::CharacterDevice
            && matches!((major, minor), (1, 3 | 5 | 7 | 8 | 9) | (5, 0..=2));
        let ok = match self.opts.devices {
            DevicePolicy::All => true,
            DevicePolicy::Standard => standard,
            DevicePolicy::Refuse => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::unsafe_entry(
                shown(),
                format!("device node {major}:{minor} is not allowed in a layer"),
            ))
        }
    }

    fn set_owner(
        &self,
        d: BorrowedFd<'_>,
        base: &[u8],
        uid: u64,
        gid: u64,
        shown: &dyn Fn() -> String,
    ) -> Result<()> {
        if !self.opts.same_owner {
            return Ok(());
        }
        let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
            return Err(Error::unsafe_entry(shown(), "owner id out of range"));
        };
        rustix::fs::chownat(
            d,
            OsStr::from_bytes(base),
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("chown {}", shown()))
    }

    fn set_xattrs(
        &self,
        d: BorrowedFd<'_>,
        base: &[u8],
        xattrs: &[(String, Vec<u8>)],
        shown: &dyn Fn() -> String,
    ) -> Result<()> {
        for (k, v) in xattrs {
            // overlayfs bookkeeping in a layer could forge whiteouts or redirects.
            if k.starts_with("trusted.overlay.") {
                continue;
            }
            match set_xattr_at(d, base, k, v) {
                Ok(()) => {}
                // user.* on a symlink or device is not allowed by Linux; docker skips those too.
                Err(Errno::PERM) | Err(Errno::NOTSUP) => {
                    tracing::debug!("xattr {k} not set on {}", shown());
                }
                Err(e) => return Err(Error::io(format!("set xattr {k} on {}", shown()), e.into())),
            }
        }
        Ok(())
    }

    fn opaque(&mut self, dir: BorrowedFd<'_>, comps: &[Vec<u8>], raw: &[u8]) -> Result<()> {
        let shown = || String::from_utf8_lossy(raw).into_owned();
        match self.opts.mode {
            ApplyMode::Overlay => {
                if comps.is_empty() {
                    // The root of a snapshot cannot be opaque; everything below is this layer's.
                    return Ok(());
                }
                let (base, parent) = comps.split_last().unwrap();
                let pdir = self.open_parent(parent, false, raw)?;
                set_xattr_at(pdir.as_fd(), base, "trusted.overlay.opaque", b"y")
                    .ctx(|| format!("mark {} opaque", shown()))
            }
            ApplyMode::Merged => {
                // Hide what lower layers put here; keep what this layer already added.
                let rd = if comps.is_empty() {
                    self.root.try_clone().ctx(|| "dup root".to_string())?
                } else {
                    let (base, parent) = comps.split_last().unwrap();
                    let pdir = self.open_parent(parent, false, raw)?;
                    fsops::open_dir_at(pdir.as_fd(), base).ctx(|| format!("open {}", shown()))?
                };
                let _ = dir;
                let rd = if comps.is_empty() {
                    fsops::open_dir(Path::new(&format!(
                        "/proc/self/fd/{}",
                        std::os::fd::AsRawFd::as_raw_fd(&rd)
                    )))?
                } else {
                    rd
                };
                for n in fsops::list_sorted(rd.as_fd()).ctx(|| format!("list {}", shown()))? {
                    let mut p = comps.to_vec();
                    p.push(n.clone());
                    if !self.created.contains(&p.join(&b'/')) {
                        self.invalidate(&p);
                        remove_at(rd.as_fd(), &n)
                            .ctx(|| format!("apply opaque marker {}", shown()))?;
                    }
                }
                Ok(())
            }
        }
    }

    fn finish_dirs(&mut self) -> Result<()> {
        self.parent_cache = None;
        let dirs = std::mem::take(&mut self.dir_times);
        for (comps, times) in dirs.iter().rev() {
            let (base, parent) = comps.split_last().unwrap();
            // A later entry may have replaced the directory; then there is nothing to set.
            let Ok(pdir) = self.open_parent(parent, false, base) else {
                continue;
            };
            let _ = rustix::fs::utimensat(
                &pdir,
                OsStr::from_bytes(base),
                times,
                AtFlags::SYMLINK_NOFOLLOW,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_reject_escapes() {
        assert!(components(b"/etc/passwd").is_err());
        assert!(components(b"a/../../b").is_err());
        assert!(components(b"..").is_err());
        assert_eq!(
            components(b"./a//b/").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert!(components(b"./").unwrap().is_empty());
    }

    #[test]
    fn pax_records_parse_and_bad_ones_fail() {
        let mut p = Pending::default();
        parse_pax(b"12 path=abc\n20 SCHILY.xattr.a=b\n", &mut p).unwrap();
        assert_eq!(p.path.as_deref(), Some(&b"abc"[..]));
        assert_eq!(p.xattrs, vec![("a".to_string(), b"b".to_vec())]);
        for bad in [
            &b"99 path=abc\n"[..],
            b"x path=a\n",
            b"5 pa\n",
            b"9 pathabc\n",
        ] {
            assert!(
                parse_pax(bad, &mut Pending::default()).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
