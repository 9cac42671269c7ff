//! COPY and ADD: sources matched in their root, copied (or unpacked) onto
//! the destination root, with fsutil's `copy` semantics as BuildKit's
//! Dockerfile frontend configures it (directory contents, follow a named
//! symlink, create the destination, wildcards).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use kiln_parser::dockerignore::{Matcher, ParentMatch};
use rayon::prelude::*;
use rustix::fs::{
    chmodat, chownat, fchmod, fchown, linkat, mkdirat, mknodat, readlinkat, statat, symlinkat,
    unlinkat, AtFlags, FileType, Mode, OFlags, Stat,
};
use rustix::io::Errno;

use super::chmod::Chmod;
use super::gomatch::{go_match, has_wildcards};
use super::owner::Ids;
use super::root::{
    clean, file_type, gid_of, set_times_at, set_times_fd, show, uid_of, Comps, DirSpec, Root,
};
use super::{open_nofollow, unpack, ErrorKind, FileOpEnv, FileOpError, Ownership};
use crate::op::CopyAction;

/// Who owns the copies.
#[derive(Debug, Clone, Copy)]
enum FileOwner {
    Fixed(Ids),
    Keep,
}

/// A `--parents` pattern: only paths it matches (or below them) are copied.
struct Include {
    matcher: Matcher,
    comps: Comps,
}

impl Include {
    /// Whether something below directory `rel` could still match, so the
    /// walk need not read every directory of a whole root filesystem.
    fn could_match_below(&self, rel: &[u8]) -> bool {
        if self.comps.iter().any(|c| c.as_slice() == b"**") {
            return true;
        }
        let dir: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
        if dir.len() >= self.comps.len() {
            return false;
        }
        dir.iter()
            .zip(&self.comps)
            .all(|(d, p)| go_match(p, d).unwrap_or(true))
    }
}

/// A source after wildcard expansion.
struct Matched {
    comps: Comps,
    display: String,
    include: Option<Include>,
}

/// A directory on the way down the destination: `dest` is `None` while it
/// is not created yet (a `--parents` or excluded directory whose children
/// may not be copied at all).
struct Level {
    dest: Option<Arc<OwnedFd>>,
    src: Arc<OwnedFd>,
    name: Vec<u8>,
    st: Stat,
    created: bool,
}

#[derive(Default, Clone)]
struct Parents {
    ignore: ParentMatch,
    exclude: ParentMatch,
    include: ParentMatch,
}

struct Copier<'a> {
    action: &'static str,
    owner: FileOwner,
    chmod: Option<Chmod>,
    epoch: Option<i64>,
    exclude: Option<Matcher>,
    ignore: Option<&'a Matcher>,
    include: Option<Include>,
    inodes: HashMap<(u64, u64), (Arc<OwnedFd>, Vec<u8>)>,
    /// Plain files waiting to be copied, by directory (see [`Copier::flush`]).
    pending: Vec<PendingDir>,
    pending_files: usize,
    /// Directories whose metadata is set once their pending files are in.
    deferred: Vec<DeferredDir>,
}

/// The plain files of one source directory, to copy into one destination directory.
struct PendingDir {
    src: Arc<OwnedFd>,
    dest: Arc<OwnedFd>,
    files: Vec<PendingFile>,
}

/// A plain file to copy: its name, stat and path below the copied source.
type PendingFile = (Vec<u8>, Stat, Vec<u8>);

/// A created directory whose owner, mode and times wait for its files.
struct DeferredDir {
    src: Arc<OwnedFd>,
    dest: Arc<OwnedFd>,
    st: Stat,
    rel: Vec<u8>,
}

/// A flush starts when this many files wait...
const FLUSH_FILES: usize = 4096;
/// ...or this many directories (each holds two open descriptors while it waits).
const FLUSH_DIRS: usize = 128;
/// Files of one directory handed to a worker at a time.
const FILES_PER_TASK: usize = 64;

fn is_errno(e: &io::Error, errno: Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

fn join_rel(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        return name.to_vec();
    }
    let mut v = Vec::with_capacity(rel.len() + 1 + name.len());
    v.extend_from_slice(rel);
    v.push(b'/');
    v.extend_from_slice(name);
    v
}

fn read_names(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let n = entry?.file_name().to_bytes().to_vec();
        if n != b"." && n != b".." {
            names.push(n);
        }
    }
    // Lexical order, as Go's walkers: which of several hard links is
    // copied first, and which duplicate wins, must not depend on readdir.
    names.sort();
    Ok(names)
}

/// Runs one COPY or ADD.
pub(crate) fn run(env: &FileOpEnv, dest: &Root, act: &CopyAction) -> Result<(), FileOpError> {
    let a: &'static str = if act.unpack_archives { "add" } else { "copy" };
    let src_def = env
        .inputs
        .get(act.input)
        .ok_or_else(|| FileOpError::new(a, "", ErrorKind::UnknownInput(act.input)))?;
    let src = Root::open(src_def.root)
        .map_err(|e| FileOpError::io(a, src_def.root.display().to_string(), e))?;
    let chown = super::resolve_owner(dest, act.owner.as_ref(), a)?;
    let owner = match (chown, src_def.ownership) {
        (Some(ids), _) => FileOwner::Fixed(ids),
        (None, Ownership::Reset) => FileOwner::Fixed(Ids { uid: 0, gid: 0 }),
        (None, Ownership::Keep) => FileOwner::Keep,
    };
    let chmod = act
        .mode
        .as_deref()
        .map(Chmod::parse)
        .transpose()
        .map_err(|e| FileOpError::new(a, "", e.into()))?;
    let exclude = if act.exclude.is_empty() {
        None
    } else {
        Some(
            Matcher::from_patterns(&act.exclude)
                .map_err(|e| FileOpError::new(a, "", ErrorKind::BadExclude(e.to_string())))?,
        )
    };
    let spec = DirSpec {
        mode: Chmod::created_dir_mode(chmod.as_ref()),
        owner: chown.map(|i| (i.uid, i.gid)),
        time: env.epoch,
    };
    let mut copier = Copier {
        action: a,
        owner,
        chmod,
        epoch: env.epoch,
        exclude,
        ignore: src_def.ignore,
        include: None,
        inodes: HashMap::new(),
        pending: Vec::new(),
        pending_files: 0,
        deferred: Vec::new(),
    };

    let mut matched = Vec::new();
    for s in &act.sources {
        if act.parents {
            copier.expand_parents(&src, s, &mut matched)?;
        } else {
            copier.expand(&src, s, &mut matched)?;
        }
    }

    let dest_comps = clean(act.dest.as_bytes());
    let dest_is_dir = act.dest.is_empty()
        || act.dest.ends_with('/')
        || act.dest.ends_with("/.")
        || act.dest == ".";
    if matched.len() > 1 && !dest_is_dir && dest.open_dir(&dest_comps).is_err() {
        return Err(FileOpError::new(
            a,
            act.dest.clone(),
            ErrorKind::NeedDirDest,
        ));
    }

    let mut created = Vec::new();
    for m in matched {
        copier.include = m.include;
        let m = Matched { include: None, ..m };
        copier.copy_one(
            &src,
            dest,
            &m,
            &dest_comps,
            dest_is_dir,
            act.follow_symlinks,
            act.unpack_archives,
            &spec,
            &mut created,
        )?;
        // Every source is complete before the next: two sources may fill one directory.
        copier.flush()?;
    }
    // Creating children changed the times of the parents made above.
    if let Some(t) = env.epoch {
        for fd in created.iter().rev() {
            set_times_fd(fd, (t, 0), (t, 0))
                .map_err(|e| FileOpError::io(a, act.dest.clone(), e))?;
        }
    }
    Ok(())
}

impl Copier<'_> {
    fn err(&self, path: &[u8], e: impl Into<io::Error>) -> FileOpError {
        FileOpError::io(self.action, String::from_utf8_lossy(path).into_owned(), e)
    }

    fn ignored(&self, comps: &[Vec<u8>], is_dir: bool) -> bool {
        let Some(ig) = self.ignore else { return false };
        if comps.is_empty() {
            return false;
        }
        let p = comps.join(&b'/');
        // An excluded directory with re-included children is still there.
        ig.matches(&p) && (!is_dir || ig.can_skip_excluded_dir(&p))
    }

    fn expand(&self, src: &Root, s: &str, out: &mut Vec<Matched>) -> Result<(), FileOpError> {
        let comps = clean(s.as_bytes());
        let Some(i) = comps.iter().position(|c| has_wildcards(c)) else {
            out.push(Matched {
                comps,
                display: s.to_string(),
                include: None,
            });
            return Ok(());
        };
        let (prefix, rest) = comps.split_at(i);
        let prefix = &src
            .resolve(prefix, true)
            .map_err(|e| self.err(s.as_bytes(), e))?[..];
        for p in rest {
            go_match(p, b"")
                .map_err(|_| FileOpError::new(self.action, s, ErrorKind::BadPattern))?;
        }
        let mut found = Vec::new();
        match src.open_dir(prefix) {
            Ok(base) => self
                .walk_wild(&base, prefix.to_vec(), rest, &mut found)
                .map_err(|e| self.err(s.as_bytes(), e))?,
            Err(e) if is_errno(&e, Errno::NOENT) || is_errno(&e, Errno::NOTDIR) => {}
            Err(e) => return Err(self.err(s.as_bytes(), e)),
        }
        let before = out.len();
        for (c, is_dir) in found {
            if self.ignored(&c, is_dir) {
                continue;
            }
            if let Some(ex) = &self.exclude {
                if ex.matches(c.join(&b'/')) {
                    continue;
                }
            }
            out.push(Matched {
                display: show(&c),
                comps: c,
                include: None,
            });
        }
        if out.len() == before {
            return Err(FileOpError::new(self.action, s, ErrorKind::NoMatch));
        }
        Ok(())
    }

    /// Matches `rest` (one pattern per level) below `dir`, as fsutil's
    /// `ResolveWildcards`: a symlink is matched but never descended into.
    fn walk_wild(
        &self,
        dir: &OwnedFd,
        at: Comps,
        rest: &[Vec<u8>],
        out: &mut Vec<(Comps, bool)>,
    ) -> io::Result<()> {
        for n in read_names(dir)? {
            if !go_match(&rest[0], &n).unwrap_or(false) {
                continue;
            }
            let st = statat(dir, n.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
            let is_dir = file_type(&st) == FileType::Directory;
            let mut p = at.clone();
            p.push(n.clone());
            if rest.len() == 1 {
                out.push((p, is_dir));
            } else if is_dir {
                let sub = open_nofollow(dir, &n, OFlags::RDONLY | OFlags::DIRECTORY)?;
                self.walk_wild(&sub, p, &rest[1..], out)?;
            }
        }
        Ok(())
    }

    /// `--parents`: the source is split at an optional `/./` pivot into
    /// the directory copied from and the pattern of what is kept below it
    /// (with its parent directories), as BuildKit's frontend does.
    fn expand_parents(
        &self,
        src: &Root,
        s: &str,
        out: &mut Vec<Matched>,
    ) -> Result<(), FileOpError> {
        let (base, pattern) = match s.find("/./") {
            Some(i) => (&s[..i], &s[i + 3..]),
            None => ("/", s),
        };
        let base_comps = src
            .resolve(&clean(base.as_bytes()), true)
            .map_err(|e| self.err(s.as_bytes(), e))?;
        let pat_comps = clean(pattern.as_bytes());
        if !has_wildcards(base.as_bytes()) && !has_wildcards(pattern.as_bytes()) {
            let mut full = base_comps.clone();
            full.extend(pat_comps.iter().cloned());
            let exists = src
                .leaf(&full, false, None)
                .and_then(|l| l.lstat())
                .map(|st| st.is_some())
                .unwrap_or(false);
            if !exists || self.ignored(&full, false) {
                return Err(FileOpError::new(self.action, s, ErrorKind::NotFound));
            }
        }
        let include = if pat_comps.is_empty() {
            None
        } else {
            let p = pat_comps.join(&b'/');
            Some(Include {
                matcher: Matcher::from_patterns([p]).map_err(|e| {
                    FileOpError::new(self.action, s, ErrorKind::BadExclude(e.to_string()))
                })?,
                comps: pat_comps,
            })
        };
        out.push(Matched {
            comps: base_comps,
            display: s.to_string(),
            include,
        });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_one(
        &mut self,
        src: &Root,
        dest: &Root,
        m: &Matched,
        dest_comps: &[Vec<u8>],
        dest_is_dir: bool,
        follow: bool,
        unpack_archives: bool,
        spec: &DirSpec,
        created: &mut Vec<OwnedFd>,
    ) -> Result<(), FileOpError> {
        let a = self.action;
        let not_found = || FileOpError::new(a, m.display.clone(), ErrorKind::NotFound);
        // Judge and open the real path: a symlink in the context must not
        // reach what .dockerignore hides.
        let real = match src.resolve(&m.comps, follow) {
            Ok(r) => r,
            Err(e) => return Err(self.err(m.display.as_bytes(), e)),
        };
        let leaf = match src.leaf(&real, follow, None) {
            Ok(l) => l,
            Err(e) if is_errno(&e, Errno::NOENT) || is_errno(&e, Errno::NOTDIR) => {
                return Err(not_found())
            }
            Err(e) => return Err(self.err(m.display.as_bytes(), e)),
        };
        let st = leaf
            .lstat()
            .map_err(|e| self.err(m.display.as_bytes(), e))?
            .ok_or_else(not_found)?;
        let ftype = file_type(&st);
        let src_is_dir = ftype == FileType::Directory;
        if self.ignored(&real, src_is_dir) {
            return Err(not_found());
        }
        let dshow = show(dest_comps);
        let derr = |e: io::Error| FileOpError::io(a, dshow.clone(), e);

        if unpack_archives && ftype == FileType::RegularFile {
            if let Some(name) = &leaf.name {
                let fd = open_nofollow(&leaf.dir, name, OFlags::RDONLY)
                    .map_err(|e| self.err(m.display.as_bytes(), e))?;
                let file = File::from(fd);
                if unpack::is_archive(&file).map_err(|e| self.err(m.display.as_bytes(), e))? {
                    // BuildKit makes the unpack directory 0755 whatever --chmod says.
                    let unpack_spec = DirSpec {
                        mode: 0o755,
                        ..*spec
                    };
                    let dfd = dest
                        .ensure_dir(dest_comps, &unpack_spec, created)
                        .map_err(derr)?;
                    let chown = match self.owner {
                        FileOwner::Fixed(ids) if spec.owner.is_some() => Some(ids),
                        _ => None,
                    };
                    return unpack::extract(Root::from_fd(dfd), file, chown, &m.display);
                }
            }
        }

        // fsutil's Copy: make the destination's parent (or the destination
        // itself when it ends in `/`), then decide where the source lands.
        let ensure = if !dest_is_dir && !dest_comps.is_empty() {
            &dest_comps[..dest_comps.len() - 1]
        } else {
            dest_comps
        };
        dest.ensure_dir(ensure, spec, created).map_err(derr)?;
        // The destination is followed inside the root even through a dangling
        // symlink, whose target's parents are created (fsutil's RootPath then
        // MkdirAll of the target's directory).
        let dleaf = dest
            .leaf(dest_comps, true, Some((spec, &mut *created)))
            .map_err(derr)?;
        let dst = dleaf.lstat().map_err(derr)?;
        let dest_dir_exists = dst.as_ref().map(file_type) == Some(FileType::Directory);

        if src_is_dir {
            let dfd = match (&dst, &dleaf.name) {
                (None, _) => dest.ensure_dir(dest_comps, spec, created).map_err(derr)?,
                (Some(_), _) if !dest_dir_exists => {
                    return Err(FileOpError::new(a, dshow, ErrorKind::NotADirectory))
                }
                (Some(_), Some(name)) => {
                    open_nofollow(&dleaf.dir, name, OFlags::RDONLY | OFlags::DIRECTORY)
                        .map_err(derr)?
                }
                (Some(_), None) => dleaf.dir,
            };
            let sfd = match &leaf.name {
                Some(name) => open_nofollow(&leaf.dir, name, OFlags::RDONLY | OFlags::DIRECTORY)
                    .map_err(|e| self.err(m.display.as_bytes(), e))?,
                None => leaf.dir,
            };
            let dfd = Arc::new(dfd);
            let sfd = Arc::new(sfd);
            let mut stack = vec![Level {
                dest: Some(dfd.clone()),
                src: sfd.clone(),
                name: Vec::new(),
                st,
                created: false,
            }];
            let ctx = real.join(&b'/');
            self.walk(&sfd, b"", &ctx, &mut stack, &Parents::default())?;
            self.flush()?;
            // The destination directory keeps its mode and owner but takes
            // the source directory's times (fsutil's restoreFileTimestamp).
            self.set_times(dfd.as_fd(), None, &st).map_err(derr)?;
            return Ok(());
        }

        let Some(src_name) = &leaf.name else {
            return Err(not_found());
        };
        let (tdir, tname) = if dest_dir_exists {
            let dir = match &dleaf.name {
                Some(name) => open_nofollow(&dleaf.dir, name, OFlags::RDONLY | OFlags::DIRECTORY)
                    .map_err(derr)?,
                None => dleaf.dir,
            };
            let base = m.comps.last().cloned().unwrap_or_else(|| src_name.clone());
            (dir, base)
        } else {
            match dleaf.name {
                Some(name) => (dleaf.dir, name),
                None => return Err(FileOpError::new(a, dshow, ErrorKind::IsADirectory)),
            }
        };
        let tdir = Arc::new(tdir);
        let sdir = Arc::new(leaf.dir);
        let mut stack = Vec::new();
        let ctx = real.join(&b'/');
        self.copy_entry(
            &sdir,
            src_name,
            &st,
            &tdir,
            &tname,
            &ctx,
            &ctx,
            &Parents::default(),
            &mut stack,
        )
    }

    /// Copies the children of `sdir` into the directory at the top of
    /// `stack`. `rel` is the path below the copied source (for `--exclude`
    /// and `--parents`), `ctx` the path below the source root (for
    /// .dockerignore).
    fn walk(
        &mut self,
        sdir: &Arc<OwnedFd>,
        rel: &[u8],
        ctx: &[u8],
        stack: &mut Vec<Level>,
        parents: &Parents,
    ) -> Result<(), FileOpError> {
        let names = read_names(sdir).map_err(|e| self.err(rel, e))?;
        let mut files: Vec<PendingFile> = Vec::new();
        let mut batch_dest: Option<Arc<OwnedFd>> = None;
        for n in names {
            let crel = join_rel(rel, &n);
            let cctx = join_rel(ctx, &n);
            let mut child = Parents::default();
            let mut ignored = false;
            if let Some(ig) = self.ignore {
                (ignored, child.ignore) = ig.matches_with_parent(&cctx, &parents.ignore);
            }
            let mut excluded = false;
            if let Some(ex) = &self.exclude {
                (excluded, child.exclude) = ex.matches_with_parent(&crel, &parents.exclude);
            }
            let mut included = true;
            if let Some(inc) = &self.include {
                (included, child.include) =
                    inc.matcher.matches_with_parent(&crel, &parents.include);
            }
            let st = statat(sdir, n.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.err(&crel, e))?;
            let is_dir = file_type(&st) == FileType::Directory;
            if ignored || excluded || !included {
                if !is_dir {
                    continue;
                }
                if ignored && self.ignore.is_some_and(|m| m.can_skip_excluded_dir(&cctx)) {
                    continue;
                }
                if excluded
                    && self
                        .exclude
                        .as_ref()
                        .is_some_and(|m| m.can_skip_excluded_dir(&crel))
                {
                    continue;
                }
                if !included
                    && !self
                        .include
                        .as_ref()
                        .is_some_and(|i| i.could_match_below(&crel))
                {
                    continue;
                }
                // Walk it; create it only if something below is copied.
                let sub = open_nofollow(sdir, &n, OFlags::RDONLY | OFlags::DIRECTORY)
                    .map_err(|e| self.err(&crel, e))?;
                let sub = Arc::new(sub);
                stack.push(Level {
                    dest: None,
                    src: sub.clone(),
                    name: n.clone(),
                    st,
                    created: false,
                });
                self.walk(&sub, &crel, &cctx, stack, &child)?;
                let level = stack.pop().expect("pushed above");
                if let (Some(d), true) = (level.dest, level.created) {
                    self.defer_finish(d, level.src, level.st, crel)?;
                }
                continue;
            }
            self.materialize(stack, &crel)?;
            let pdest = stack
                .last()
                .and_then(|l| l.dest.clone())
                .expect("materialized");
            if file_type(&st) == FileType::RegularFile && st.st_nlink == 1 {
                self.ensure_empty_target(&pdest, &n, &crel)?;
                files.push((n, st, crel));
                batch_dest = Some(pdest);
                continue;
            }
            self.copy_entry(sdir, &n, &st, &pdest, &n, &crel, &cctx, &child, stack)?;
        }
        if let Some(dest) = batch_dest {
            self.pending_files += files.len();
            self.pending.push(PendingDir {
                src: sdir.clone(),
                dest,
                files,
            });
            if self.pending_files >= FLUSH_FILES || self.pending.len() >= FLUSH_DIRS {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Sets a created directory's metadata after its pending files are in (a file created
    /// in it later would change its times).
    fn defer_finish(
        &mut self,
        dest: Arc<OwnedFd>,
        src: Arc<OwnedFd>,
        st: Stat,
        rel: Vec<u8>,
    ) -> Result<(), FileOpError> {
        self.deferred.push(DeferredDir { src, dest, st, rel });
        if self.deferred.len() >= FLUSH_DIRS {
            self.flush()?;
        }
        Ok(())
    }

    /// Copies the pending plain files, then sets the deferred directories' metadata
    /// (children before parents, as they were deferred).
    ///
    /// Files are copied on the rayon pool, each task a run of files of one directory, the
    /// directories interleaved: creating files takes the directory's lock, so two workers in
    /// one directory wait on each other, and on ext4 without a journal an inode allocation
    /// can take long with it held (see `cache::fsutil::mark_top_dir`). Directories apart, the
    /// workers create in parallel: the lab's d-bigcontext build (20,000 files in 100
    /// directories) right after a prune went from 12.7-14.5 s to 8.2-9.0 s (bench/RESULTS.md).
    fn flush(&mut self) -> Result<(), FileOpError> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_files = 0;
        let mut chunks: Vec<_> = pending
            .iter()
            .map(|d| d.files.chunks(FILES_PER_TASK))
            .collect();
        let mut tasks = Vec::new();
        loop {
            let before = tasks.len();
            for (d, c) in pending.iter().zip(chunks.iter_mut()) {
                if let Some(files) = c.next() {
                    tasks.push((d, files));
                }
            }
            if tasks.len() == before {
                break;
            }
        }
        let this = &*self;
        tasks.par_iter().try_for_each(|(d, files)| {
            files.iter().try_for_each(|(n, st, crel)| {
                this.copy_file(&d.src, n, st, &d.dest, n)
                    .map_err(|e| this.err(crel, e))
            })
        })?;
        drop(tasks);
        drop(pending);
        for d in std::mem::take(&mut self.deferred) {
            self.finish(d.dest.as_fd(), Some(d.src.as_fd()), &d.st, true)
                .map_err(|e| self.err(&d.rel, e))?;
        }
        Ok(())
    }

    /// Creates the directories of `stack` not created yet (fsutil's
    /// delayed `createParentDirs`).
    fn materialize(&mut self, stack: &mut [Level], rel: &[u8]) -> Result<(), FileOpError> {
        for i in 0..stack.len() {
            if stack[i].dest.is_some() {
                continue;
            }
            let parent = stack[i - 1].dest.clone().expect("created in order");
            let name = stack[i].name.clone();
            let mode = stack[i].st.st_mode & 0o7777;
            let existing = match statat(&*parent, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Some(st),
                Err(Errno::NOENT) => None,
                Err(e) => return Err(self.err(rel, e)),
            };
            match existing {
                Some(st) if file_type(&st) != FileType::Directory => {
                    return Err(FileOpError::new(
                        self.action,
                        String::from_utf8_lossy(rel).into_owned(),
                        ErrorKind::NotADirectory,
                    ))
                }
                Some(_) => {}
                None => {
                    mkdirat(&*parent, name.as_slice(), Mode::from_raw_mode(0o700))
                        .map_err(|e| self.err(rel, e))?;
                    stack[i].created = true;
                }
            }
            let fd = open_nofollow(&*parent, &name, OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(|e| self.err(rel, e))?;
            if !stack[i].created {
                // An existing directory takes the source's mode (fsutil's
                // copyDirectoryOnly with overwriteTargetMetadata).
                fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| self.err(rel, e))?;
            }
            stack[i].dest = Some(Arc::new(fd));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_entry(
        &mut self,
        sdir: &Arc<OwnedFd>,
        name: &[u8],
        st: &Stat,
        pdest: &Arc<OwnedFd>,
        dname: &[u8],
        rel: &[u8],
        ctx: &[u8],
        parents: &Parents,
        stack: &mut Vec<Level>,
    ) -> Result<(), FileOpError> {
        let err = |e: io::Error| self.err(rel, e);
        let ftype = file_type(st);
        match ftype {
            FileType::Directory => {
                match statat(&**pdest, dname, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(d) if file_type(&d) == FileType::Directory => {}
                    Ok(_) => {
                        return Err(FileOpError::new(
                            self.action,
                            String::from_utf8_lossy(rel).into_owned(),
                            ErrorKind::NotADirectory,
                        ))
                    }
                    Err(Errno::NOENT) => mkdirat(&**pdest, dname, Mode::from_raw_mode(0o700))
                        .map_err(|e| err(e.into()))?,
                    Err(e) => return Err(err(e.into())),
                }
                let dfd = Arc::new(
                    open_nofollow(&**pdest, dname, OFlags::RDONLY | OFlags::DIRECTORY)
                        .map_err(err)?,
                );
                let sfd = Arc::new(
                    open_nofollow(&**sdir, name, OFlags::RDONLY | OFlags::DIRECTORY)
                        .map_err(err)?,
                );
                stack.push(Level {
                    dest: Some(dfd.clone()),
                    src: sfd.clone(),
                    name: dname.to_vec(),
                    st: *st,
                    created: true,
                });
                let r = self.walk(&sfd, rel, ctx, stack, parents);
                stack.pop();
                r?;
                self.defer_finish(dfd, sfd, *st, rel.to_vec())
            }
            FileType::RegularFile => {
                self.ensure_empty_target(pdest, dname, rel)?;
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some((d, n)) = self.inodes.get(&key) {
                        linkat(&**d, n.as_slice(), &**pdest, dname, AtFlags::empty())
                            .map_err(|e| err(e.into()))?;
                        return Ok(());
                    }
                }
                self.copy_file(sdir, name, st, pdest, dname).map_err(err)?;
                if st.st_nlink > 1 {
                    self.inodes.insert(key, (pdest.clone(), dname.to_vec()));
                }
                Ok(())
            }
            FileType::Symlink => {
                self.ensure_empty_target(pdest, dname, rel)?;
                let target = readlinkat(&**sdir, name, Vec::new()).map_err(|e| err(e.into()))?;
                symlinkat(target.as_c_str(), &**pdest, dname).map_err(|e| err(e.into()))?;
                let (uid, gid) = self.ids(st);
                chownat(
                    &**pdest,
                    dname,
                    Some(uid_of(uid)),
                    Some(gid_of(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| err(e.into()))?;
                self.set_times(pdest.as_fd(), Some(dname), st).map_err(err)
            }
            FileType::Fifo
            | FileType::CharacterDevice
            | FileType::BlockDevice
            | FileType::Socket => {
                self.ensure_empty_target(pdest, dname, rel)?;
                mknodat(
                    &**pdest,
                    dname,
                    ftype,
                    Mode::from_raw_mode(0o600),
                    st.st_rdev,
                )
                .map_err(|e| err(e.into()))?;
                let (uid, gid) = self.ids(st);
                chownat(
                    &**pdest,
                    dname,
                    Some(uid_of(uid)),
                    Some(gid_of(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| err(e.into()))?;
                // Just created by us in a directory we hold: not a symlink.
                chmodat(
                    &**pdest,
                    dname,
                    Mode::from_raw_mode(self.mode(st, false)),
                    AtFlags::empty(),
                )
                .map_err(|e| err(e.into()))?;
                self.set_times(pdest.as_fd(), Some(dname), st).map_err(err)
            }
            FileType::Unknown => Ok(()),
        }
    }

    /// Copies the data and metadata of a regular file to a new
    /// `pdest/dname`. Only reads `self`: runs on several threads.
    fn copy_file(
        &self,
        sdir: &OwnedFd,
        name: &[u8],
        st: &Stat,
        pdest: &OwnedFd,
        dname: &[u8],
    ) -> io::Result<()> {
        let sf = open_nofollow(sdir, name, OFlags::RDONLY)?;
        let df = open_nofollow(pdest, dname, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL)?;
        let mut sfile = File::from(sf);
        let mut dfile = File::from(df);
        // std uses copy_file_range for file to file on Linux.
        io::copy(&mut sfile, &mut dfile)?;
        self.finish(dfile.as_fd(), Some(sfile.as_fd()), st, false)
    }

    /// fsutil's `ensureEmptyFileTarget`: a file replaces a file or a
    /// symlink (never written through), never a directory.
    fn ensure_empty_target(
        &self,
        pdest: &Arc<OwnedFd>,
        dname: &[u8],
        rel: &[u8],
    ) -> Result<(), FileOpError> {
        match statat(&**pdest, dname, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if file_type(&st) == FileType::Directory => Err(FileOpError::new(
                self.action,
                String::from_utf8_lossy(rel).into_owned(),
                ErrorKind::IsADirectory,
            )),
            Ok(_) => unlinkat(&**pdest, dname, AtFlags::empty()).map_err(|e| self.err(rel, e)),
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(self.err(rel, e)),
        }
    }

    fn ids(&self, st: &Stat) -> (u32, u32) {
        match self.owner {
            FileOwner::Fixed(i) => (i.uid, i.gid),
            FileOwner::Keep => (st.st_uid, st.st_gid),
        }
    }

    fn mode(&self, st: &Stat, is_dir: bool) -> u32 {
        let m = st.st_mode & 0o7777;
        match &self.chmod {
            Some(c) => c.apply(m, is_dir),
            None => m,
        }
    }

    /// fsutil's `copyFileInfo` on an open file: owner, then mode (a chown
    /// clears set-id bits), then xattrs (a chown drops capabilities), then
    /// times.
    fn finish(
        &self,
        fd: BorrowedFd,
        src: Option<BorrowedFd>,
        st: &Stat,
        is_dir: bool,
    ) -> io::Result<()> {
        let (uid, gid) = self.ids(st);
        fchown(fd, Some(uid_of(uid)), Some(gid_of(gid)))?;
        fchmod(fd, Mode::from_raw_mode(self.mode(st, is_dir)))?;
        if let Some(src) = src {
            copy_xattrs(src, fd);
        }
        self.set_times(fd, None, st)
    }

    fn set_times(&self, fd: BorrowedFd, name: Option<&[u8]>, st: &Stat) -> io::Result<()> {
        let (at, mt) = match self.epoch {
            Some(t) => ((t, 0), (t, 0)),
            None => (
                (st.st_atime, st.st_atime_nsec as i64),
                (st.st_mtime, st.st_mtime_nsec as i64),
            ),
        };
        match name {
            Some(n) => set_times_at(fd, n, at, mt),
            None => set_times_fd(fd, at, mt),
        }
    }
}

/// Copies extended attributes, best effort as BuildKit (which logs and
/// goes on): the destination filesystem may not support them.
fn copy_xattrs(src: BorrowedFd, dst: BorrowedFd) {
    // Most files have none or a few: a small buffer on the stack first.
    let mut small = [0u8; 1024];
    let mut big = Vec::new();
    let names: &[u8] = match rustix::fs::flistxattr(src, &mut small[..]) {
        Ok(0) => return,
        Ok(n) => &small[..n],
        Err(Errno::RANGE) => {
            big.resize(64 * 1024, 0);
            match rustix::fs::flistxattr(src, &mut big[..]) {
                Ok(n) => &big[..n],
                Err(_) => return,
            }
        }
        Err(_) => return,
    };
    let mut value = vec![0u8; 64 * 1024];
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if let Ok(len) = rustix::fs::fgetxattr(src, name, &mut value[..]) {
            let _ =
                rustix::fs::fsetxattr(dst, name, &value[..len], rustix::fs::XattrFlags::empty());
        }
    }
}
