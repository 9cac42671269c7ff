//! The build context as kiln reads it: one walk that stats every file
//! (hashing only those the stat cache cannot vouch for, in parallel), then
//! digests of exactly the files a COPY or ADD selects.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use kiln_parser::dockerignore::{Matcher, ParentMatch};
use rayon::prelude::*;

use crate::key::CacheKey;
use crate::statcache::{StatCache, StatStamp};

/// What the context filter (`.dockerignore`) says of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The path is part of the context.
    Include,
    /// The path, and for a directory everything under it, is left out.
    Exclude,
    /// The directory is left out, but an exception (`!pattern`) may bring
    /// back something under it, so it is walked.
    ExcludeButDescend,
}

/// The kind of a context entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link, with its target as stored.
    Symlink(PathBuf),
    /// A fifo, socket or device: copied as what it is, never read.
    Special,
}

/// One path of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the context root, `/`-separated, no leading `/`.
    /// Names that are not UTF-8 appear lossily here; the digest uses the real bytes.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Permission and type bits (`st_mode`).
    pub mode: u32,
    /// Size in bytes (files only).
    pub size: u64,
    /// Digest of the entry as it will land: its path, kind, mode, link
    /// target and content; never its mtime or owner.
    pub digest: [u8; 32],
}

/// Counts from one scan, to show how much the stat cache saved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Regular files in the context (after the filter).
    pub files: usize,
    /// Files whose content had to be read.
    pub hashed: usize,
    /// Bytes read to hash them.
    pub bytes_hashed: u64,
}

/// Errors reading the context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// A path could not be listed, stat'ed or read.
    #[error("reading the build context at {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every entry of a context directory that the filter lets in, sorted by walk order.
#[derive(Debug, Clone, Default)]
pub struct ContextIndex {
    entries: Vec<Entry>,
}

struct Pending {
    index: usize,
    abs: PathBuf,
    stamp: StatStamp,
    raw: Vec<u8>,
}

impl ContextIndex {
    /// Walks `root` without following symlinks, leaves out what `ignore`
    /// (the `.dockerignore`) excludes, and digests every entry: files
    /// through `cache` when their stat is unchanged, otherwise read and
    /// hashed on all cores.
    pub fn scan(
        root: &Path,
        ignore: Option<&Matcher>,
        cache: &mut StatCache,
    ) -> Result<(Self, ScanStats), ContextError> {
        let mut entries = Vec::new();
        let mut pending = Vec::new();
        let top = ParentMatch::default();
        walk(root, root, ignore, &top, cache, &mut entries, &mut pending)?;
        let files = entries
            .iter()
            .filter(|e: &&Entry| e.kind == EntryKind::File)
            .count();
        let hashed: Vec<(usize, [u8; 32], Option<StatStamp>)> = pending
            .par_iter()
            .map(|p| {
                let content = hash_file(&p.abs)?;
                // A file that changed while it was read gets no cache entry:
                // the next build reads it again.
                let after = fs::symlink_metadata(&p.abs).map(|m| StatStamp::of(&m)).ok();
                Ok((p.index, content, after.filter(|a| *a == p.stamp)))
            })
            .collect::<Result<_, ContextError>>()?;
        let mut stats = ScanStats {
            files,
            hashed: pending.len(),
            bytes_hashed: 0,
        };
        for ((index, content, stable), p) in hashed.into_iter().zip(pending) {
            let entry = &mut entries[index];
            stats.bytes_hashed += entry.size;
            entry.digest = entry_digest(&p.raw, entry, &content);
            if let Some(stamp) = stable {
                cache.insert(entry.path.clone(), stamp, content);
            }
        }
        let present: std::collections::HashSet<&str> =
            entries.iter().map(|e| e.path.as_str()).collect();
        cache.retain(|p| present.contains(p));
        Ok((ContextIndex { entries }, stats))
    }

    /// All entries, in walk order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The digest of the entries `select` picks: what a COPY of them keys on.
    pub fn digest_where(&self, select: impl Fn(&Entry) -> bool) -> CacheKey {
        let mut h = blake3::Hasher::new();
        h.update(b"kiln.context.selection.v1\0");
        for e in self.entries.iter().filter(|e| select(e)) {
            h.update(&e.digest);
        }
        CacheKey(*h.finalize().as_bytes())
    }

    /// Paths whose digest differs between `earlier` and `self`, or that exist
    /// in only one of them: what `--explain-cache` names as changed files.
    pub fn changed_since(&self, earlier: &ContextIndex) -> Vec<String> {
        use std::collections::HashMap;
        let before: HashMap<&str, &[u8; 32]> = earlier
            .entries
            .iter()
            .map(|e| (e.path.as_str(), &e.digest))
            .collect();
        let now: HashMap<&str, &[u8; 32]> = self
            .entries
            .iter()
            .map(|e| (e.path.as_str(), &e.digest))
            .collect();
        let mut changed: Vec<String> = now
            .iter()
            .filter(|(p, d)| before.get(*p) != Some(*d))
            .map(|(p, _)| p.to_string())
            .chain(
                before
                    .keys()
                    .filter(|p| !now.contains_key(*p))
                    .map(|p| p.to_string()),
            )
            .collect();
        changed.sort();
        changed
    }
}

/// What `ignore` says of `rel`, decided as BuildKit's context walker does
/// (patternmatcher's `MatchesUsingParentResults` going down the tree, so a
/// directory's verdict is handed to its children), and the verdict to hand
/// to the children of `rel` when it is a directory.
fn decide(
    ignore: Option<&Matcher>,
    rel: &[u8],
    is_dir: bool,
    parent: &ParentMatch,
) -> (Walk, ParentMatch) {
    let Some(m) = ignore else {
        return (Walk::Include, ParentMatch::default());
    };
    let (excluded, info) = m.matches_with_parent(rel, parent);
    let walk = if !excluded {
        Walk::Include
    } else if is_dir && !m.can_skip_excluded_dir(rel) {
        Walk::ExcludeButDescend
    } else {
        Walk::Exclude
    };
    (walk, info)
}

#[allow(clippy::too_many_arguments)]
fn walk(
    root: &Path,
    dir: &Path,
    ignore: Option<&Matcher>,
    parent: &ParentMatch,
    cache: &StatCache,
    entries: &mut Vec<Entry>,
    pending: &mut Vec<Pending>,
) -> Result<(), ContextError> {
    let mut children: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let abs = child.path();
        let rel_os = abs.strip_prefix(root).unwrap_or(&abs);
        let raw = rel_os.as_os_str().as_bytes().to_vec();
        let rel = rel_os.to_string_lossy().into_owned();
        let meta = fs::symlink_metadata(&abs).map_err(io_err(&abs))?;
        let ft = meta.file_type();
        let (walk_it, verdict) = decide(ignore, &raw, ft.is_dir(), parent);
        if walk_it == Walk::Exclude {
            continue;
        }
        if walk_it == Walk::Include {
            let kind = if ft.is_dir() {
                EntryKind::Dir
            } else if ft.is_file() {
                EntryKind::File
            } else if ft.is_symlink() {
                EntryKind::Symlink(fs::read_link(&abs).map_err(io_err(&abs))?)
            } else {
                debug_assert!(
                    ft.is_fifo() || ft.is_socket() || ft.is_block_device() || ft.is_char_device()
                );
                EntryKind::Special
            };
            let mut entry = Entry {
                path: rel.clone(),
                size: if ft.is_file() { meta.size() } else { 0 },
                mode: meta.mode(),
                kind,
                digest: [0; 32],
            };
            if entry.kind == EntryKind::File {
                let stamp = StatStamp::of(&meta);
                match cache.get(&rel, &stamp) {
                    Some(content) => entry.digest = entry_digest(&raw, &entry, &content),
                    None => pending.push(Pending {
                        index: entries.len(),
                        abs: abs.clone(),
                        stamp,
                        raw: raw.clone(),
                    }),
                }
            } else {
                entry.digest = entry_digest(&raw, &entry, &[0; 32]);
            }
            entries.push(entry);
        }
        if ft.is_dir() {
            walk(root, &abs, ignore, &verdict, cache, entries, pending)?;
        }
    }
    Ok(())
}

fn entry_digest(raw_path: &[u8], e: &Entry, content: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&(raw_path.len() as u64).to_le_bytes());
    h.update(raw_path);
    h.update(&e.mode.to_le_bytes());
    if let EntryKind::Symlink(target) = &e.kind {
        let t = target.as_os_str().as_bytes();
        h.update(&(t.len() as u64).to_le_bytes());
        h.update(t);
    }
    h.update(content);
    *h.finalize().as_bytes()
}

fn hash_file(path: &Path) -> Result<[u8; 32], ContextError> {
    let mut h = blake3::Hasher::new();
    // mmap + rayon splits one big file across cores; small files are read.
    h.update_mmap_rayon(path).map_err(io_err(path))?;
    Ok(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "kiln-context-test-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::SeqCst)
    }

    fn scan(dir: &Path, cache: &mut StatCache) -> (ContextIndex, ScanStats) {
        ContextIndex::scan(dir, None, cache).unwrap()
    }

    #[test]
    fn a_warm_scan_reads_no_file() {
        let dir = tempdir();
        fs::create_dir(dir.join("src")).unwrap();
        fs::write(dir.join("src/a.rs"), "fn a() {}").unwrap();
        fs::write(dir.join("b.txt"), "b").unwrap();
        let mut cache = StatCache::default();
        let (cold, stats) = scan(&dir, &mut cache);
        assert_eq!((stats.files, stats.hashed), (2, 2));
        let (warm, stats) = scan(&dir, &mut cache);
        assert_eq!((stats.files, stats.hashed), (2, 0));
        assert_eq!(cold.entries(), warm.entries());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_cache_survives_a_restart_and_notices_a_rewrite() {
        let dir = tempdir();
        let state = tempdir();
        fs::write(dir.join("f"), "one").unwrap();
        let file = crate::statcache::cache_file_for(&state, &dir);
        let mut cache = StatCache::default();
        let (first, _) = scan(&dir, &mut cache);
        cache.save(&file).unwrap();
        let mut reloaded = StatCache::load(&file);
        assert_eq!(reloaded.len(), 1);
        let (_, stats) = scan(&dir, &mut reloaded);
        assert_eq!(stats.hashed, 0);
        // Same size, and the mtime put back: ctime still gives the rewrite away.
        let mtime = fs::metadata(dir.join("f")).unwrap().modified().unwrap();
        fs::write(dir.join("f"), "two").unwrap();
        fs::File::options()
            .write(true)
            .open(dir.join("f"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let (second, stats) = scan(&dir, &mut reloaded);
        assert_eq!(stats.hashed, 1);
        assert_eq!(second.changed_since(&first), vec!["f".to_string()]);
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(state).unwrap();
    }

    #[test]
    fn touch_keeps_the_digest_and_chmod_or_content_changes_it() {
        let dir = tempdir();
        fs::write(dir.join("f"), "x").unwrap();
        let mut cache = StatCache::default();
        let digest = |c: &mut StatCache| scan(&dir, c).0.digest_where(|_| true);
        let d0 = digest(&mut cache);
        fs::File::options()
            .write(true)
            .open(dir.join("f"))
            .unwrap()
            .set_modified(std::time::SystemTime::now())
            .unwrap();
        assert_eq!(digest(&mut cache), d0, "touch keeps the cache");
        fs::set_permissions(dir.join("f"), fs::Permissions::from_mode(0o755)).unwrap();
        let d1 = digest(&mut cache);
        assert_ne!(d1, d0, "mode is part of what lands");
        fs::write(dir.join("f"), "y").unwrap();
        assert_ne!(digest(&mut cache), d1, "content too");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn selections_only_see_their_own_files() {
        let dir = tempdir();
        fs::write(dir.join("a"), "a").unwrap();
        fs::write(dir.join("b"), "b").unwrap();
        let mut cache = StatCache::default();
        let only_a = |c: &mut StatCache| scan(&dir, c).0.digest_where(|e| e.path == "a");
        let before = only_a(&mut cache);
        fs::write(dir.join("b"), "changed").unwrap();
        assert_eq!(only_a(&mut cache), before);
        fs::write(dir.join("a"), "changed").unwrap();
        assert_ne!(only_a(&mut cache), before);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dockerignore_is_decided_going_down_the_tree_as_buildkit_walks() {
        // With `a/b` then `!a`, patternmatcher's parent-results walk (what
        // BuildKit sends) excludes a/b: `!a` did not apply at `a`, which
        // was not excluded then, and is not re-checked below it. The
        // one-path decision (`Matcher::matches`) would keep a/b/c.
        let dir = tempdir();
        fs::create_dir_all(dir.join("a/b")).unwrap();
        fs::write(dir.join("a/b/c"), "c").unwrap();
        fs::write(dir.join("a/x"), "x").unwrap();
        let ignore = Matcher::from_patterns(["a/b", "!a"]).unwrap();
        assert!(!ignore.matches("a/b/c"), "the two decisions differ here");
        let (index, _) =
            ContextIndex::scan(&dir, Some(&ignore), &mut StatCache::default()).unwrap();
        let paths: Vec<_> = index.entries().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "a/x"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn symlinks_are_recorded_not_followed_and_excluded_dirs_not_walked() {
        let dir = tempdir();
        std::os::unix::fs::symlink("/etc", dir.join("etc-link")).unwrap();
        fs::create_dir(dir.join("node_modules")).unwrap();
        fs::write(dir.join("node_modules/big"), "x").unwrap();
        fs::create_dir(dir.join("keep")).unwrap();
        fs::write(dir.join("keep/yes"), "y").unwrap();
        fs::write(dir.join("keep/no"), "n").unwrap();
        let ignore = Matcher::from_patterns(["node_modules", "keep", "!keep/yes"]).unwrap();
        let (index, _) =
            ContextIndex::scan(&dir, Some(&ignore), &mut StatCache::default()).unwrap();
        let paths: Vec<_> = index.entries().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["etc-link", "keep/yes"]);
        assert_eq!(index.entries()[0].kind, EntryKind::Symlink("/etc".into()));
        fs::remove_dir_all(dir).unwrap();
    }
}
