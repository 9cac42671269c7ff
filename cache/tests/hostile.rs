//! The hostile-archive corpus (testdata/store/hostile): every archive is
//! refused, by `kiln import`'s path (target untouched: nothing named, no
//! snapshot, no blob, no temp dir left) and by a direct apply onto a tree,
//! and nothing outside the target changes.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kiln_cache::layer::{apply_layer, ApplyMode, ApplyOptions};
use kiln_cache::transfer::{import_rootfs_tar, ImportOptions};
use kiln_cache::{Digest, Store};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/store/hostile")
}

/// Everything observable of a tree: path -> (type, size, content digest, nlink, mode).
fn state(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                Digest::of(&fs::read(&p).unwrap()).to_string()
            } else if m.file_type().is_symlink() {
                fs::read_link(&p).unwrap().display().to_string()
            } else {
                String::new()
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.insert(
                p.display().to_string(),
                format!(
                    "{:?} {} {} {:o} {content}",
                    m.file_type(),
                    m.len(),
                    m.nlink(),
                    m.mode()
                ),
            );
        }
    }
    out
}

/// Host paths the corpus aims at.
fn host_state() -> Vec<String> {
    let mut v = Vec::new();
    for base in ["/tmp", "/", "/etc"] {
        for n in [
            "kiln-hostile-escape",
            "kiln-hostile-abs",
            "kiln-hostile-absdir",
            "kiln-hostile-symlink",
        ] {
            v.push(format!("{base}/{n}: {}", Path::new(base).join(n).exists()));
        }
    }
    let passwd = fs::metadata("/etc/passwd").unwrap();
    v.push(format!(
        "passwd {} {}",
        passwd.nlink(),
        Digest::of(&fs::read("/etc/passwd").unwrap())
    ));
    v
}

fn dir_is_empty(p: &Path) -> bool {
    fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn every_hostile_archive_is_refused_and_changes_nothing() {
    let mut names: Vec<PathBuf> = fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(names.len() >= 30, "the corpus has {} archives", names.len());
    let host_before = host_state();
    let mut report = Vec::new();
    for archive in &names {
        let name = archive.file_name().unwrap().to_string_lossy().into_owned();
        let started = std::time::Instant::now();
        let sandbox = tempfile::tempdir().unwrap();
        // The target sits deep inside the sandbox so that relative escapes land in it.
        let target = sandbox.path().join("a/b/c/d/e/target");
        fs::create_dir_all(&target).unwrap();
        fs::write(target.join("existing"), b"keep").unwrap();
        fs::write(sandbox.path().join("kiln-hostile-victim"), b"keep").unwrap();
        fs::write(sandbox.path().join("a/b/c/d/kiln-accept-victim"), b"keep").unwrap();
        let before = state(sandbox.path());

        // 1. The import path: unpack to a temp snapshot, rename only on success.
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        // Bombs are caught after 4 MiB and at ratio 20 here instead of 64 MiB
        // and 250 (the same check, tightened so the debug-build test is fast).
        let limits = ApplyOptions {
            ratio_floor: 4 << 20,
            max_ratio: 20,
            ..ApplyOptions::default()
        };
        let iopts = ImportOptions {
            limits: Some(limits),
            ..ImportOptions::default()
        };
        let err = import_rootfs_tar(
            &store,
            fs::File::open(archive).unwrap(),
            "hostile:x",
            "-",
            &iopts,
        )
        .expect_err(&format!("{name}: import must fail"));
        assert!(
            store.images().unwrap().is_empty(),
            "{name}: a name was recorded"
        );
        assert!(
            dir_is_empty(&root.path().join("snapshots")),
            "{name}: snapshot dir left behind"
        );
        assert!(
            dir_is_empty(&root.path().join("ingest")),
            "{name}: ingest file left behind"
        );
        assert!(
            store.content().list().unwrap().is_empty(),
            "{name}: a blob was stored"
        );

        // 2. A direct apply onto an existing tree (both modes).
        for mode in [ApplyMode::Merged, ApplyMode::Overlay] {
            let opts = ApplyOptions { mode, ..limits };
            let r = apply_layer(fs::File::open(archive).unwrap(), &target, &opts);
            assert!(r.is_err(), "{name}: apply ({mode:?}) must fail");
        }
        let after = state(sandbox.path());
        let outside = |s: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            s.iter()
                .filter(|(k, _)| {
                    // The target itself may gain a link count; only what is beyond it matters.
                    **k != target.display().to_string()
                        && !k.starts_with(&format!("{}/", target.display()))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        assert_eq!(
            outside(&before),
            outside(&after),
            "{name}: something outside the target changed"
        );
        assert_eq!(
            before.get(&target.join("existing").display().to_string()),
            after.get(&target.join("existing").display().to_string()),
            "{name}: the existing file in the target changed"
        );
        report.push(format!("{name} ({:?}): {err}", started.elapsed()));
    }
    assert_eq!(host_before, host_state(), "a host path changed");
    eprintln!("{}", report.join("\n"));
}

#[test]
fn the_corpus_regenerates_byte_for_byte() {
    if !(common::have("python3") && common::have("zstd")) {
        eprintln!("python3/zstd missing (scripts/deps.sh installs them): skipped");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let script = corpus().join("../gen_hostile.py");
    common::sh(&format!(
        "python3 {} {} >/dev/null",
        script.display(),
        out.path().display()
    ));
    let mut want: Vec<String> = fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    want.sort();
    let mut got: Vec<String> = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(want, got);
    for n in want {
        assert!(
            fs::read(corpus().join(&n)).unwrap() == fs::read(out.path().join(&n)).unwrap(),
            "{n} differs when regenerated"
        );
    }
}
