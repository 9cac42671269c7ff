//! The store end to end: names, tags, removal, leases against GC, the cache
//! index, check and repair, and images written by other tools (skopeo)
//! loading and unpacking to the same tree.

mod common;

use std::fs;

use common::{assert_same_tree, have, sh, tree};
use kiln_cache::gc::{check, prune, PruneOptions};
use kiln_cache::layer::{CompressOptions, Compression, DiffSource, TarOptions};
use kiln_cache::metadata::CacheRecord;
use kiln_cache::transfer::{
    import_rootfs_dir, load, save_docker, save_oci, ImportOptions, SaveItem,
};
use kiln_cache::{Digest, Error, Store};

fn rootfs(dir: &std::path::Path) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::write(dir.join("bin/tool"), vec![7u8; 100_000]).unwrap();
    fs::write(dir.join("etc/conf"), b"a=1\n").unwrap();
    std::os::unix::fs::symlink("tool", dir.join("bin/alias")).unwrap();
}

#[test]
fn names_tags_and_removal_behave_like_docker() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    rootfs(&src);
    let store = Store::open(&t.path().join("root")).unwrap();
    let (_, id) = import_rootfs_dir(
        &store,
        &src,
        "docker.io/library/app",
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(store.image("app").unwrap().id, id);
    assert_eq!(store.image("app:latest").unwrap().id, id);
    assert_eq!(store.image(&id.short()[..6]).unwrap().id, id);
    assert_eq!(
        store.image(&id.to_string()).unwrap().names,
        vec!["app:latest".to_string()]
    );
    store.tag("app", "other/app:2").unwrap();
    assert!(matches!(store.image("nope"), Err(Error::ImageNotFound(_))));
    assert!(matches!(
        store.tag("app", "Bad:Name"),
        Err(Error::InvalidReference(..))
    ));
    // Removing by ID with two names needs force; by name it just untags.
    assert!(matches!(
        store.remove_image(id.short(), false),
        Err(Error::Conflict(_))
    ));
    let (names, deleted) = store.remove_image("other/app:2", false).unwrap();
    assert_eq!((names, deleted), (vec!["other/app:2".to_string()], None));
    let (_, deleted) = store.remove_image("app", false).unwrap();
    assert_eq!(deleted, Some(id));
    let r = prune(&store, PruneOptions::default()).unwrap();
    assert!(r.blobs >= 3, "{r:?}");
    assert!(store.content().list().unwrap().is_empty());
    assert!(check(&store, false).unwrap().is_clean());
}

#[test]
fn leases_and_cache_records_keep_blobs_from_gc() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    rootfs(&src);
    let store = Store::open(&t.path().join("root")).unwrap();
    let plain = CompressOptions {
        compression: Compression::None,
        ..CompressOptions::default()
    };
    {
        let lease = store.lease("build-1").unwrap();
        let l = store
            .create_layer(DiffSource::Tree(&src), &TarOptions::default(), &plain)
            .unwrap();
        lease.add(std::slice::from_ref(&l.digest), &[]).unwrap();
        prune(&store, PruneOptions { all: true }).unwrap();
        assert!(
            store.content().contains(&l.digest),
            "a leased blob was collected"
        );
        store
            .cache_put(
                "key-1",
                &CacheRecord {
                    blobs: vec![l.digest.clone()],
                    snapshots: vec![],
                    value: serde_json::json!({"layer": l.digest.to_string()}),
                    created: 0,
                    last_used: 0,
                },
            )
            .unwrap();
        assert!(
            store
                .cache_put(
                    "key-2",
                    &CacheRecord {
                        blobs: vec![Digest::of(b"absent")],
                        snapshots: vec![],
                        value: serde_json::Value::Null,
                        created: 0,
                        last_used: 0,
                    }
                )
                .is_err(),
            "a record pointing at a missing blob is refused"
        );
    }
    let rec = store.cache_get("key-1").unwrap().unwrap();
    prune(&store, PruneOptions::default()).unwrap();
    assert!(
        store.content().contains(&rec.blobs[0]),
        "the cache record keeps its blob"
    );
    let r = prune(&store, PruneOptions { all: true }).unwrap();
    assert_eq!(r.cache_records, 1);
    assert!(!store.content().contains(&rec.blobs[0]));
}

#[test]
fn check_finds_damage_and_repair_leaves_a_consistent_store() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    rootfs(&src);
    let store = Store::open(&t.path().join("root")).unwrap();
    import_rootfs_dir(&store, &src, "a:1", &ImportOptions::default()).unwrap();
    import_rootfs_dir(&store, &src.join("etc"), "b:1", &ImportOptions::default()).unwrap();
    assert!(check(&store, false).unwrap().is_clean());
    let layer = store.image("a:1").unwrap().layers().unwrap()[0].0.clone();
    let p = store.content().path(&layer);
    let mut bytes = fs::read(&p).unwrap();
    bytes[600] ^= 1;
    fs::write(&p, bytes).unwrap();
    let r = check(&store, false).unwrap();
    assert!(!r.is_clean());
    assert!(
        r.errors.iter().any(|e| e.contains(&layer.to_string())),
        "{:?}",
        r.errors
    );
    let r = check(&store, true).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert!(
        store.image("a:1").is_err(),
        "the broken image's name is dropped"
    );
    assert!(store.image("b:1").is_ok(), "the intact image stays");
    assert!(check(&store, false).unwrap().is_clean());
}

#[test]
fn archives_round_trip_and_foreign_ones_unpack_to_the_same_tree() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    rootfs(&src);
    let store = Store::open(&t.path().join("root")).unwrap();
    import_rootfs_dir(&store, &src, "app:1", &ImportOptions::default()).unwrap();
    let img = store.image("app:1").unwrap();
    let items = [SaveItem {
        image: img.clone(),
        names: vec!["app:1".into()],
    }];
    let oci = t.path().join("oci.tar");
    let dock = t.path().join("docker.tar");
    save_oci(&store, &items, fs::File::create(&oci).unwrap()).unwrap();
    save_docker(&store, &items, fs::File::create(&dock).unwrap()).unwrap();
    for a in [&oci, &dock] {
        let other = Store::open(
            &t.path()
                .join(format!("root-{}", a.file_stem().unwrap().to_string_lossy())),
        )
        .unwrap();
        let loaded = load(&other, fs::File::open(a).unwrap()).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].0.as_deref(), Some("app:1"));
        assert_eq!(loaded[0].2, img.id, "the image ID survives the round trip");
        let got = other.image("app:1").unwrap();
        let dirs = other.unpack(&got).unwrap();
        assert_same_tree("unpacked after load", &tree(&src), &tree(&dirs[0]));
    }
    if !have("skopeo") {
        eprintln!("skopeo missing (scripts/deps.sh installs it): foreign archives skipped");
        return;
    }
    // skopeo rewrites the archive its own way (gzip layers in OCI, its own docker-archive).
    sh(&format!(
        "cd {d}; skopeo copy -q --dest-compress oci-archive:oci.tar oci:layout:x; \
         skopeo copy -q oci:layout:x docker-archive:foreign.tar:foreign/img:9",
        d = t.path().display()
    ));
    let other = Store::open(&t.path().join("root-foreign")).unwrap();
    load(
        &other,
        fs::File::open(t.path().join("foreign.tar")).unwrap(),
    )
    .unwrap();
    let got = other.image("foreign/img:9").unwrap();
    assert_eq!(got.diff_ids, img.diff_ids);
    let dirs = other.unpack(&got).unwrap();
    assert_same_tree("skopeo docker-archive", &tree(&src), &tree(&dirs[0]));
    let layout = kiln_cache::transfer::load_oci_dir(&other, &t.path().join("layout")).unwrap();
    assert_eq!(layout.len(), 1);
    let gz = other.load_image(&layout[0].1, vec![]).unwrap();
    assert!(
        gz.layers().unwrap()[0].2.ends_with("gzip"),
        "skopeo compressed the layer"
    );
    let root2 = t.path().join("root-gz");
    let s2 = Store::open(&root2).unwrap();
    kiln_cache::transfer::load_oci_dir(&s2, &t.path().join("layout")).unwrap();
    let gimg = s2.load_image(&layout[0].1, vec![]).unwrap();
    let dirs = s2.unpack(&gimg).unwrap();
    assert_same_tree("skopeo gzip OCI layout", &tree(&src), &tree(&dirs[0]));
}

#[test]
fn a_prepared_rootfs_becomes_the_next_snapshot_without_unpacking() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    rootfs(&src);
    let store = Store::open(&t.path().join("root")).unwrap();
    import_rootfs_dir(&store, &src, "base:1", &ImportOptions::default()).unwrap();
    let base = store.image("base:1").unwrap();
    let layout = store.prepare_rootfs(&base, "step-1").unwrap();
    assert!(
        store.prepare_rootfs(&base, "step-1").is_err(),
        "an ID is prepared once"
    );
    assert!(store.prepare_rootfs(&base, "../escape").is_err());
    if layout.copied {
        eprintln!("no overlayfs: commit path not exercised");
        return;
    }
    assert_eq!(layout.lowers.len(), 1);
    assert_eq!(
        fs::read(layout.lowers[0].join("etc/conf")).unwrap(),
        b"a=1\n"
    );
    // What a RUN step would leave in the upper dir.
    fs::write(layout.upper.join("new"), b"made by a step").unwrap();
    let plain = CompressOptions {
        compression: Compression::None,
        ..CompressOptions::default()
    };
    let l = store
        .create_layer(
            DiffSource::OverlayUpper(&layout.upper),
            &TarOptions::default(),
            &plain,
        )
        .unwrap();
    let chain = store
        .commit_rootfs("step-1", &base.diff_ids, &l.diff_id)
        .unwrap();
    assert!(!layout.upper.exists(), "the rootfs is gone once committed");
    assert_eq!(
        fs::read(store.snapshots().fs_dir(&chain).join("new")).unwrap(),
        b"made by a step"
    );
    // An image of base + that layer needs no unpacking: the snapshot is there.
    let mut cfg: serde_json::Value = serde_json::from_slice(&base.config_raw).unwrap();
    cfg["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(l.diff_id.to_string().into());
    let mut layers = base.layers().unwrap();
    layers.push((
        l.digest.clone(),
        l.size,
        Compression::None.oci_media_type().to_string(),
    ));
    store
        .commit_image(
            Some("step:1"),
            &serde_json::to_vec(&cfg).unwrap(),
            &layers,
            kiln_cache::image::MediaTypes::Oci,
        )
        .unwrap();
    let dirs = store.unpack(&store.image("step:1").unwrap()).unwrap();
    assert_eq!(dirs[1], store.snapshots().fs_dir(&chain));
    assert!(check(&store, false).unwrap().is_clean());
}

#[test]
fn podman_saved_archives_load_and_unpack_to_the_same_tree() {
    if !have("podman") {
        eprintln!("podman missing: skipped (the acceptance script installs it)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    rootfs(&src);
    let store = Store::open(&t.path().join("root")).unwrap();
    import_rootfs_dir(&store, &src, "app:1", &ImportOptions::default()).unwrap();
    let items = [SaveItem {
        image: store.image("app:1").unwrap(),
        names: vec!["app:1".into()],
    }];
    save_docker(
        &store,
        &items,
        fs::File::create(t.path().join("kiln.tar")).unwrap(),
    )
    .unwrap();
    // A private podman store (vfs: no mounts), so nothing of the host's podman is touched.
    sh(&format!(
        "cd {d}; P='podman --root {d}/p/root --runroot {d}/p/run --storage-driver vfs'; \
         $P load -q -i kiln.tar >/dev/null; \
         $P save -q --format docker-archive -o p-docker.tar localhost/app:1; \
         $P save -q --format oci-archive -o p-oci.tar localhost/app:1; \
         $P rmi -a -f >/dev/null",
        d = t.path().display()
    ));
    for a in ["p-docker.tar", "p-oci.tar"] {
        let other = Store::open(&t.path().join(format!("root-{a}"))).unwrap();
        let loaded = load(&other, fs::File::open(t.path().join(a)).unwrap()).unwrap();
        assert_eq!(loaded.len(), 1, "{a}");
        let img = other.load_image(&loaded[0].1, vec![]).unwrap();
        let dirs = other.unpack(&img).unwrap();
        assert_same_tree(
            &format!("podman save --format {a}"),
            &tree(&src),
            &tree(&dirs[0]),
        );
        assert!(check(&other, false).unwrap().is_clean());
    }
}
