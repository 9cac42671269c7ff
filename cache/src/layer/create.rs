//! Layer creation: a directory tree, an overlay upper dir, or the difference
//! between two trees, written as a deterministic tar.
//!
//! Entries come in bytewise-sorted order per directory (parents before
//! children), owner names are left empty, and with `source_date_epoch` set no
//! mtime is later than it: the same tree gives the same bytes, so the same
//! diff ID. Long names and link targets, big ids and xattrs go in PAX records.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, Stat};

use super::compress::{CompressOptions, Compression, Encoder};
use super::fsops::{
    list_sorted, lstat_at, open_dir, open_dir_at, readlink_at, xattr_at, xattrs_at,
};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};

/// Where a layer's changes come from.
#[derive(Debug, Clone, Copy)]
pub enum DiffSource<'a> {
    /// Every file of a tree (a base layer, `kiln import DIR`).
    Tree(&'a Path),
    /// An overlayfs upper dir: whiteout devices (char 0/0) become `.wh.NAME`
    /// entries, `trusted.overlay.opaque=y` directories get `.wh..wh..opq`.
    OverlayUpper(&'a Path),
    /// What differs in `upper` from `lower` (both whole trees): new and changed
    /// entries, and whiteouts for what `upper` lacks.
    Compare {
        /// The tree before.
        lower: &'a Path,
        /// The tree after.
        upper: &'a Path,
    },
}

/// How to write the tar.
#[derive(Debug, Clone, Copy, Default)]
pub struct TarOptions {
    /// Clamp every mtime to at most this (unix seconds): reproducible layers.
    pub source_date_epoch: Option<i64>,
}

/// What one pass over a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
    /// sha256 of the blob as written (equal to `diff_id` when uncompressed).
    pub digest: Digest,
    /// Bytes of the blob as written.
    pub size: u64,
    /// How the blob is compressed.
    pub compression: Compression,
}

/// Writes the layer for `source` into `out` in one streaming pass, computing
/// the diff ID of the tar and the digest of the compressed bytes on the way.
pub fn write_layer<W: Write>(
    source: DiffSource<'_>,
    tar_opts: &TarOptions,
    compress: &CompressOptions,
    out: W,
) -> Result<(W, LayerInfo)> {
    if compress.compression == Compression::None {
        // The blob is the tar: one hash gives both digests.
        let (out, diff_id, tar_size) =
            write_tar(source, tar_opts, HashingWriter::new(out))?.finish();
        let info = LayerInfo {
            digest: diff_id.clone(),
            size: tar_size,
            diff_id,
            tar_size,
            compression: Compression::None,
        };
        return Ok((out, info));
    }
    let blob = HashingWriter::new(out);
    let enc = Encoder::new(blob, compress).ctx(|| "start compressor".to_string())?;
    let tarw = write_tar(source, tar_opts, HashingWriter::new(enc))?;
    let (enc, diff_id, tar_size) = tarw.finish();
    let blob = enc.finish().ctx(|| "finish compression".to_string())?;
    let (out, digest, size) = blob.finish();
    Ok((
        out,
        LayerInfo {
            diff_id,
            tar_size,
            digest,
            size,
            compression: compress.compression,
        },
    ))
}

/// Writes the tar of `source` into `out`.
fn write_tar<W: Write>(source: DiffSource<'_>, tar_opts: &TarOptions, out: W) -> Result<W> {
    let mut tw = TarWriter::new(out, tar_opts);
    match source {
        DiffSource::Tree(p) => {
            let root = open_dir(p)?;
            tw.walk(root.as_fd(), &mut Vec::new(), false)?;
        }
        DiffSource::OverlayUpper(p) => {
            let root = open_dir(p)?;
            tw.walk(root.as_fd(), &mut Vec::new(), true)?;
        }
        DiffSource::Compare { lower, upper } => {
            let l = open_dir(lower)?;
            let u = open_dir(upper)?;
            tw.compare(Some(l.as_fd()), u.as_fd(), &mut Vec::new())?;
        }
    }
    tw.b.into_inner().ctx(|| "finish tar".to_string())
}

/// Writes a tar of one entry and, for a directory, of everything below it: the entry `name`
/// of `dir` (a symlink is archived as a link, never followed), or `dir` itself when `name` is
/// `None`, named `as_name` in the archive (docker cp's `GET /containers/{id}/archive`). The
/// walk opens each directory with `O_NOFOLLOW` relative to its parent, so it cannot be led
/// outside the entry by a symlink planted meanwhile.
pub fn write_entry_tar<W: Write>(
    dir: BorrowedFd<'_>,
    name: Option<&[u8]>,
    as_name: &[u8],
    out: W,
) -> Result<W> {
    let mut tw = TarWriter::new(out, &TarOptions::default());
    let what = || String::from_utf8_lossy(as_name).into_owned();
    let below = match name {
        Some(name) => {
            let st = lstat_at(dir, name).ctx(|| format!("stat {}", what()))?;
            tw.entry(dir, name, as_name, &st, false)?;
            if kind(&st) == FileType::Directory {
                Some(open_dir_at(dir, name).ctx(|| format!("open {}", what()))?)
            } else {
                None
            }
        }
        None => {
            let st = rustix::fs::fstat(dir).ctx(|| format!("stat {}", what()))?;
            let mut dir_name = as_name.to_vec();
            dir_name.push(b'/');
            let h = tw.header(&st, tar::EntryType::Directory);
            tw.append(h, &dir_name, None, &[], io::empty())?;
            Some(rustix::io::fcntl_dupfd_cloexec(dir, 0).ctx(|| format!("open {}", what()))?)
        }
    };
    if let Some(sub) = below {
        let mut prefix = as_name.to_vec();
        prefix.push(b'/');
        tw.walk(sub.as_fd(), &mut prefix, false)?;
    }
    tw.b.into_inner().ctx(|| "finish tar".to_string())
}

struct TarWriter<W: Write> {
    b: tar::Builder<W>,
    epoch: Option<i64>,
    links: HashMap<(u64, u64), Vec<u8>>,
}

fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Reads exactly `len` bytes: a file that shrinks while being archived must
/// fail the layer rather than corrupt the tar framing.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Puts `bytes` in a ustar name (`name` + `prefix`) field pair; false when it does not fit.
fn set_ustar_name(h: &mut tar::Header, bytes: &[u8]) -> bool {
    let u = h.as_ustar_mut().expect("ustar header");
    if bytes.len() <= 100 {
        u.name[..bytes.len()].copy_from_slice(bytes);
        return true;
    }
    // Split at a '/' so that prefix <= 155 and name <= 100.
    let start = bytes.len().saturating_sub(101);
    for i in start..bytes.len().min(156) {
        if bytes[i] == b'/' && bytes.len() - i - 1 <= 100 && i <= 155 && i > 0 {
            u.prefix[..i].copy_from_slice(&bytes[..i]);
            u.name[..bytes.len() - i - 1].copy_from_slice(&bytes[i + 1..]);
            return true;
        }
    }
    false
}

impl<W: Write> TarWriter<W> {
    fn new(w: W, opts: &TarOptions) -> Self {
        let mut b = tar::Builder::new(w);
        b.mode(tar::HeaderMode::Complete);
        TarWriter {
            b,
            epoch: opts.source_date_epoch,
            links: HashMap::new(),
        }
    }

    fn mtime(&self, st: &Stat) -> u64 {
        let t = st.st_mtime;
        let t = match self.epoch {
            Some(e) if t > e => e,
            _ => t,
        };
        t.max(0) as u64
    }

    /// Writes a header (with PAX records for what ustar cannot hold) and data.
    fn append(
        &mut self,
        mut h: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        xattrs: &[(String, Vec<u8>)],
        data: impl Read,
    ) -> Result<()> {
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if !set_ustar_name(&mut h, name) {
            pax.push(("path".into(), name.to_vec()));
            let cut = &name[name.len() - 99..];
            h.as_ustar_mut().unwrap().name[..cut.len()].copy_from_slice(cut);
        }
        if let Some(link) = link {
            if link.len() <= 100 {
                h.as_ustar_mut().unwrap().linkname[..link.len()].copy_from_slice(link);
            } else {
                pax.push(("linkpath".into(), link.to_vec()));
            }
        }
        for (k, v) in xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        let what = String::from_utf8_lossy(name).into_owned();
        if !pax.is_empty() {
            self.b
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .ctx(|| format!("write PAX header of {what}"))?;
        }
        h.set_cksum();
        self.b
            .append(&h, data)
            .ctx(|| format!("write tar entry {what}"))
    }

    fn header(&self, st: &Stat, ty: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(ty);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid as u64);
        h.set_gid(st.st_gid as u64);
        h.set_mtime(self.mtime(st));
        h.set_size(0);
        h
    }

    /// One entry for `name` (in `dir`) at archive path `rel`.
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        rel: &[u8],
        st: &Stat,
        overlay: bool,
    ) -> Result<()> {
        let what = || String::from_utf8_lossy(rel).into_owned();
        let mut xattrs = xattrs_at(dir, name).ctx(|| format!("list xattrs of {}", what()))?;
        // overlayfs's own bookkeeping is never layer content.
        xattrs.retain(|(k, _)| !k.starts_with("trusted.overlay."));
        if overlay && xattr_at(dir, name, "trusted.overlay.redirect").is_some() {
            return Err(Error::Archive {
                what: what(),
                message: "overlay redirect_dir entries are not supported".into(),
            });
        }
        let ft = kind(st);
        if ft != FileType::Directory && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                let h = self.header(st, tar::EntryType::Link);
                return self.append(h, rel, Some(&first), &[], io::empty());
            }
            self.links.insert(key, rel.to_vec());
        }
        match ft {
            FileType::Directory => {
                let mut name = rel.to_vec();
                name.push(b'/');
                let h = self.header(st, tar::EntryType::Directory);
                self.append(h, &name, None, &xattrs, io::empty())
            }
            FileType::RegularFile => {
                let mut h = self.header(st, tar::EntryType::Regular);
                h.set_size(st.st_size as u64);
                let fd = rustix::fs::openat(
                    dir,
                    OsStr::from_bytes(name),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ctx(|| format!("open {}", what()))?;
                let data = Exact {
                    inner: File::from(fd),
                    left: st.st_size as u64,
                };
                self.append(h, rel, None, &xattrs, data)
            }
            FileType::Symlink => {
                let target = readlink_at(dir, name).ctx(|| format!("readlink {}", what()))?;
                let h = self.header(st, tar::EntryType::Symlink);
                self.append(h, rel, Some(&target), &xattrs, io::empty())
            }
            FileType::CharacterDevice | FileType::BlockDevice => {
                let ty = if ft == FileType::CharacterDevice {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                let mut h = self.header(st, ty);
                let dev = st.st_rdev;
                h.set_device_major(rustix::fs::major(dev)).ctx(what)?;
                h.set_device_minor(rustix::fs::minor(dev)).ctx(what)?;
                self.append(h, rel, None, &xattrs, io::empty())
            }
            FileType::Fifo => {
                let h = self.header(st, tar::EntryType::Fifo);
                self.append(h, rel, None, &xattrs, io::empty())
            }
            // Sockets cannot be archived (tar has no type for them); docker skips them too.
            _ => Ok(()),
        }
    }

    fn whiteout(&mut self, prefix: &[u8], name: &[u8], st: Option<&Stat>) -> Result<()> {
        let mut rel = prefix.to_vec();
        rel.extend_from_slice(b".wh.");
        rel.extend_from_slice(name);
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_mtime(st.map(|s| self.mtime(s)).unwrap_or(0));
        self.append(h, &rel, None, &[], io::empty())
    }

    /// Every entry under `dir`, sorted; `overlay` turns overlayfs whiteouts
    /// and opaque markers into OCI ones.
    fn walk(&mut self, dir: BorrowedFd<'_>, prefix: &mut Vec<u8>, overlay: bool) -> Result<()> {
        let names = list_sorted(dir).ctx(|| format!("list {}", String::from_utf8_lossy(prefix)))?;
        for name in names {
            let st =
                lstat_at(dir, &name).ctx(|| format!("stat {}", String::from_utf8_lossy(&name)))?;
            if overlay && kind(&st) == FileType::CharacterDevice && st.st_rdev == 0 {
                self.whiteout(prefix, &name, Some(&st))?;
                continue;
            }
            let len = prefix.len();
            prefix.extend_from_slice(&name);
            self.entry(dir, &name, prefix, &st, overlay)?;
            if kind(&st) == FileType::Directory {
                let sub = open_dir_at(dir, &name)
                    .ctx(|| format!("open {}", String::from_utf8_lossy(prefix)))?;
                prefix.push(b'/');
                if overlay
                    && xattr_at(dir, &name, "trusted.overlay.opaque").as_deref() == Some(b"y")
                {
                    self.whiteout(prefix, b".wh..opq", Some(&st))?;
                }
                self.walk(sub.as_fd(), prefix, overlay)?;
            }
            prefix.truncate(len);
        }
        Ok(())
    }

    /// What `upper` has that `lower` has not or has otherwise; whiteouts for the reverse.
    fn compare(
        &mut self,
        lower: Option<BorrowedFd<'_>>,
        upper: BorrowedFd<'_>,
        prefix: &mut Vec<u8>,
    ) -> Result<()> {
        let unames =
            list_sorted(upper).ctx(|| format!("list {}", String::from_utf8_lossy(prefix)))?;
        if let Some(lower) = lower {
            let lnames =
                list_sorted(lower).ctx(|| format!("list {}", String::from_utf8_lossy(prefix)))?;
            let present: HashSet<&[u8]> = unames.iter().map(|n| n.as_slice()).collect();
            for n in lnames.iter().filter(|n| !present.contains(n.as_slice())) {
                self.whiteout(prefix, n, None)?;
            }
        }
        for name in unames {
            let st = lstat_at(upper, &name)
                .ctx(|| format!("stat {}", String::from_utf8_lossy(&name)))?;
            let old = lower.and_then(|l| lstat_at(l, &name).ok());
            let len = prefix.len();
            prefix.extend_from_slice(&name);
            let changed = match &old {
                None => true,
                Some(o) => differs(lower.unwrap(), upper, &name, o, &st),
            };
            if changed {
                self.entry(upper, &name, prefix, &st, false)?;
            }
            if kind(&st) == FileType::Directory {
                let sub = open_dir_at(upper, &name)
                    .ctx(|| format!("open {}", String::from_utf8_lossy(prefix)))?;
                let lsub = match (&old, lower) {
                    (Some(o), Some(l)) if kind(o) == FileType::Directory => Some(
                        open_dir_at(l, &name)
                            .ctx(|| format!("open {}", String::from_utf8_lossy(prefix)))?,
                    ),
                    _ => None,
                };
                prefix.push(b'/');
                self.compare(
                    lsub.as_ref().map(|f: &OwnedFd| f.as_fd()),
                    sub.as_fd(),
                    prefix,
                )?;
            }
            prefix.truncate(len);
        }
        Ok(())
    }
}

/// Whether an entry changed between two trees, judged as docker does by type,
/// mode, owner, size, mtime, device, link target and xattrs (not content: a
/// rewrite with the same size and mtime is not seen, exactly as in docker).
fn differs(l: BorrowedFd<'_>, u: BorrowedFd<'_>, name: &[u8], a: &Stat, b: &Stat) -> bool {
    if a.st_mode != b.st_mode
        || a.st_uid != b.st_uid
        || a.st_gid != b.st_gid
        || a.st_rdev != b.st_rdev
        || (kind(a) != FileType::Directory
            && (a.st_size != b.st_size
                || a.st_mtime != b.st_mtime
                || a.st_mtime_nsec != b.st_mtime_nsec))
    {
        return true;
    }
    if kind(a) == FileType::Symlink && readlink_at(l, name).ok() != readlink_at(u, name).ok() {
        return true;
    }
    xattrs_at(l, name).ok() != xattrs_at(u, name).ok()
}
