//! `cp`, `top` and `stats` through the engine on a created (never started) container: its
//! file systems reached through a private mount, hostile paths kept inside its root.

use std::io::Read;

use kiln_engine::containers::{ArchiveOptions, CreateOptions};
use kiln_engine::images::RootfsSource;
use kiln_engine::Engine;

/// An engine with an image holding `/etc/hostname` and a symlink `/etc/up -> ../..`, and a
/// created container of it; the host directory `outside`, which nothing may reach.
fn created() -> (tempfile::TempDir, Engine, String, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hostname"), "kiln\n").unwrap();
    std::os::unix::fs::symlink("../..", rootfs.join("etc/up")).unwrap();
    std::os::unix::fs::symlink(&outside, rootfs.join("out")).unwrap();
    let engine = Engine::new(tmp.path().join("root"));
    engine
        .import_rootfs(RootfsSource::Directory(rootfs), "files:1", None)
        .unwrap();
    let created = engine
        .create_container(&CreateOptions {
            image: "files:1".into(),
            cmd: vec!["true".into()],
            ..CreateOptions::default()
        })
        .unwrap();
    (tmp, engine, created.id, outside)
}

fn names_of(tar_bytes: &[u8]) -> Vec<String> {
    let mut names: Vec<String> = tar::Archive::new(tar_bytes)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    names
}

fn archive(engine: &Engine, id: &str, path: &str) -> kiln_engine::Result<Vec<u8>> {
    engine.container_archive(id, path, &ArchiveOptions::default(), |_| Ok(Vec::new()))
}

#[test]
fn a_stopped_containers_paths_are_stated_archived_and_extracted_into() {
    let (_tmp, engine, id, outside) = created();
    let stat = engine.container_path_stat(&id, "/etc/hostname").unwrap();
    assert_eq!(
        (stat.name.as_str(), stat.size, stat.is_dir()),
        ("hostname", 5, false)
    );
    assert!(engine.container_path_stat(&id, "/etc").unwrap().is_dir());
    // a symlink's target, resolved inside the root: `../..` stops at `/`
    let up = engine.container_path_stat(&id, "/etc/up").unwrap();
    assert!(up.is_symlink());
    assert_eq!(up.link_target, "/");
    let missing = engine.container_path_stat(&id, "/nope").unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    // a link to a host directory leads to the container's own (missing) path of that name
    let through = engine.container_path_stat(&id, "/out/").unwrap_err();
    assert!(through.is_not_found(), "{through}");

    assert_eq!(
        names_of(&archive(&engine, &id, "/etc").unwrap()),
        ["etc/", "etc/hostname", "etc/up"]
    );
    let renamed = engine
        .container_archive(
            &id,
            "/etc/hostname",
            &ArchiveOptions {
                rename: Some("name".into()),
                ..ArchiveOptions::default()
            },
            |_| Ok(Vec::new()),
        )
        .unwrap();
    assert_eq!(names_of(&renamed), ["name"]);

    // extraction: `..` names and symlinks on the way stay inside the container
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..11].copy_from_slice(b"../../climb");
    h.set_size(3);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append(&h, &b"abc"[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    engine
        .extract_to_container(&id, "/etc", std::io::Cursor::new(bytes), false)
        .unwrap();
    // through the image's absolute symlink `/out` to the host's directory: its container twin
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, "out/planted", &b"x"[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    engine
        .extract_to_container(&id, "/", std::io::Cursor::new(bytes), false)
        .unwrap();
    let twin = format!("{}/planted", outside.display());
    assert_eq!(engine.container_path_stat(&id, &twin).unwrap().size, 1);
    let mut climbed = String::new();
    tar::Archive::new(&archive(&engine, &id, "/etc/climb").unwrap()[..])
        .entries()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .read_to_string(&mut climbed)
        .unwrap();
    assert_eq!(climbed, "abc");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    // a missing directory is a 404, a file is no extraction point
    let e = engine
        .extract_to_container(&id, "/nope", std::io::empty(), false)
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(engine
        .extract_to_container(&id, "/etc/hostname", std::io::empty(), false)
        .is_err());
    // noOverwriteDirNonDir: a file over the directory /etc fails
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, "etc", &b"x"[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    let e = engine
        .extract_to_container(&id, "/", std::io::Cursor::new(bytes), true)
        .unwrap_err();
    assert!(e.to_string().contains("cannot overwrite directory"), "{e}");
    assert!(engine.container_path_stat(&id, "/etc").unwrap().is_dir());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("cp-root"), "{mounts}");
}

#[test]
fn top_wants_a_running_container_and_stats_of_a_stopped_one_are_zero() {
    let (_tmp, engine, id, _) = created();
    let e = engine.container_top(&id, "").unwrap_err();
    assert!(matches!(e, kiln_engine::Error::Conflict(_)), "{e}");
    let report = engine.container_stats_once(&id, false).unwrap();
    assert_eq!(report.id, id);
    assert_eq!(report.pids_stats.current, 0);
    assert_eq!(report.memory_stats.usage, 0);
    assert!(report.name.starts_with('/'));
}
