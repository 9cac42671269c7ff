//! Builds from tar streams (`docker build` through the API, `kiln build -`): the store keeps
//! the last context of each project as a mirror, synced in place, and a build from it gives
//! exactly what a build from the same files in a directory gives. Runs as root (COPY mounts
//! an overlay).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kiln_engine::images::RootfsSource;
use kiln_engine::{BuildContext, BuildOptions, Engine, Progress};

fn engine_with_base(tmp: &Path) -> Engine {
    let rootfs = tmp.join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hostname"), "kiln\n").unwrap();
    let engine = Engine::new(tmp.join("root"));
    engine
        .import_rootfs(RootfsSource::Directory(rootfs), "base:1", None)
        .unwrap();
    engine
}

/// A context directory: a Dockerfile that copies everything, and `files`.
fn context(dir: &Path, files: &[(&str, &str)]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM base:1\nCOPY . /ctx/\n").unwrap();
    for (name, data) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    }
}

/// `dir` as the docker CLI sends it: a tar, every entry owned by root.
fn tar_of(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap()
}

/// Builds `ctx` as `tag` and returns the image's layer diff IDs.
fn build(engine: &Engine, ctx: BuildContext, tag: &str) -> Vec<serde_json::Value> {
    let mut opts = BuildOptions::new(ctx);
    opts.tags = vec![tag.into()];
    opts.epoch = Some(0);
    opts.network = "none".into();
    engine.build(opts, &Progress::none()).unwrap();
    let inspect = serde_json::to_value(engine.inspect_image(tag).unwrap()).unwrap();
    inspect["RootFS"]["Layers"].as_array().unwrap().clone()
}

fn archive(bytes: Vec<u8>) -> BuildContext {
    BuildContext::Archive {
        stream: Box::new(std::io::Cursor::new(bytes)),
        from: "a test",
    }
}

#[test]
fn an_archive_context_is_kept_synced_and_builds_what_a_directory_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = engine_with_base(tmp.path());
    let ctx = tmp.path().join("ctx");
    let v1 = [
        ("a/same", "unchanged"),
        ("a/edited", "version 1"),
        ("gone", "x"),
    ];
    context(&ctx, &v1);
    let from_tar = build(&engine, archive(tar_of(&ctx)), "app:1");
    let mirrors = tmp.path().join("root/contexts");
    let slots: Vec<_> = std::fs::read_dir(&mirrors).unwrap().flatten().collect();
    assert_eq!(slots.len(), 1, "one mirror for the project");
    let tree = slots[0].path().join("tree");
    let same_ino = std::fs::metadata(tree.join("a/same")).unwrap().ino();
    assert!(
        slots[0].path().join("statcache.json").exists(),
        "its stat cache is kept beside it"
    );

    // The same files from a directory give the same layers.
    let from_dir = build(&engine, BuildContext::Directory(ctx.clone()), "dir:1");
    assert_eq!(from_tar, from_dir);

    // Edited, one file gone, one new: the mirror follows, and the layers are again a fresh
    // directory build's.
    let v2 = [
        ("a/same", "unchanged"),
        ("a/edited", "version 2"),
        ("new", "y"),
    ];
    context(&ctx, &v2);
    let from_tar2 = build(&engine, archive(tar_of(&ctx)), "app:1");
    assert_ne!(from_tar2, from_tar);
    let from_dir2 = build(&engine, BuildContext::Directory(ctx.clone()), "dir:2");
    assert_eq!(from_tar2, from_dir2);
    assert_eq!(std::fs::read_dir(&mirrors).unwrap().count(), 1);
    assert_eq!(
        std::fs::metadata(tree.join("a/same")).unwrap().ino(),
        same_ino,
        "an unchanged file is not written again"
    );
    assert!(!tree.join("gone").exists());
    assert_eq!(
        std::fs::read_to_string(tree.join("a/edited")).unwrap(),
        "version 2"
    );

    // Another project gets its own mirror; `prune --all` removes them.
    build(&engine, archive(tar_of(&ctx)), "other:1");
    assert_eq!(std::fs::read_dir(&mirrors).unwrap().count(), 2);
    engine.prune(true).unwrap();
    assert_eq!(std::fs::read_dir(&mirrors).unwrap().count(), 0);
}
