//! Helpers shared by the store's integration tests: shell commands and a
//! comparable description of a directory tree.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

/// Runs a shell command, panicking with its output when it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("bash").arg("-ec").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a program is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("bash")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether we are root (tests that chown, mknod or mount need it; CI is root).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// What a tree holds, path by path: type, mode, owner, content hash or link
/// target or device, `user.*` xattrs; plus which paths share an inode.
#[derive(Debug, PartialEq, Eq)]
pub struct Tree {
    pub entries: BTreeMap<String, String>,
    pub hardlinks: BTreeSet<BTreeSet<String>>,
}

pub fn user_xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut buf = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(p, &mut buf[..]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in buf[..n]
        .split(|b| *b == 0)
        .filter(|s| s.starts_with(b"user."))
    {
        let mut v = vec![0u8; 4096];
        if let Ok(m) = rustix::fs::lgetxattr(p, name, &mut v[..]) {
            out.push((String::from_utf8_lossy(name).into_owned(), v[..m].to_vec()));
        }
    }
    out.sort();
    out
}

pub fn tree(root: &Path) -> Tree {
    let mut entries = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), BTreeSet<String>> = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let what = if ft.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("symlink -> {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                let data = std::fs::read(&p).unwrap();
                format!(
                    "file {} {}",
                    data.len(),
                    kiln_cache::Digest::of(&data).short()
                )
            } else if ft.is_char_device() {
                format!(
                    "char {}:{}",
                    rustix::fs::major(m.rdev()),
                    rustix::fs::minor(m.rdev())
                )
            } else if ft.is_block_device() {
                format!(
                    "block {}:{}",
                    rustix::fs::major(m.rdev()),
                    rustix::fs::minor(m.rdev())
                )
            } else if ft.is_fifo() {
                "fifo".to_string()
            } else {
                "other".to_string()
            };
            let mode = if ft.is_symlink() {
                0
            } else {
                m.mode() & 0o7777
            };
            entries.insert(
                rel.clone(),
                format!(
                    "{what} mode={mode:o} owner={}:{} xattrs={:?}",
                    m.uid(),
                    m.gid(),
                    user_xattrs(&p)
                ),
            );
            if !ft.is_dir() && m.nlink() > 1 {
                inodes.entry((m.dev(), m.ino())).or_default().insert(rel);
            }
        }
    }
    let hardlinks = inodes.into_values().filter(|s| s.len() > 1).collect();
    Tree { entries, hardlinks }
}

/// Asserts two trees are equal, showing only the differing paths.
pub fn assert_same_tree(what: &str, want: &Tree, got: &Tree) {
    let mut diffs = Vec::new();
    for (k, v) in &want.entries {
        match got.entries.get(k) {
            None => diffs.push(format!("missing {k}: {v}")),
            Some(g) if g != v => diffs.push(format!("differs {k}:\n   want {v}\n   got  {g}")),
            _ => {}
        }
    }
    for (k, v) in &got.entries {
        if !want.entries.contains_key(k) {
            diffs.push(format!("extra {k}: {v}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: trees differ:\n{}",
        diffs.join("\n")
    );
    assert_eq!(
        want.hardlinks, got.hardlinks,
        "{what}: hard link groups differ"
    );
}

/// Lists the entry names of a (plain or compressed) tar blob.
pub fn tar_names(blob: &Path) -> Vec<String> {
    let f = std::io::BufReader::new(std::fs::File::open(blob).unwrap());
    let (_, r) = kiln_cache::layer::compress::decoder(f).unwrap();
    let mut a = tar::Archive::new(r);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}
