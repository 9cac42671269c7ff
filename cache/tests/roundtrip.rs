//! Layers round-tripped through create and apply: whiteouts, opaque dirs,
//! hard links, xattrs, devices, FIFOs, owners, modes and long names, made by
//! the real overlayfs, checked against the merged view the kernel shows,
//! against kiln's own apply (merged and overlay modes) and against umoci's
//! unpack of the same image (via skopeo).

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use common::{assert_same_tree, have, is_root, sh, tar_names, tree};
use kiln_cache::image::MediaTypes;
use kiln_cache::layer::{
    apply_layer, ApplyMode, ApplyOptions, CompressOptions, Compression, DiffSource, TarOptions,
};
use kiln_cache::transfer::{save_oci, SaveItem};
use kiln_cache::Store;

fn plain() -> CompressOptions {
    CompressOptions {
        compression: Compression::None,
        ..CompressOptions::default()
    }
}

fn set_user_xattr(p: &Path, k: &str, v: &[u8]) {
    rustix::fs::lsetxattr(p, k, v, rustix::fs::XattrFlags::empty()).unwrap();
}

/// The base tree: every kind of entry a layer can hold.
fn make_lower(d: &Path) {
    let long = "l".repeat(120);
    let deep = format!("{}/{}/{}", "d".repeat(90), "e".repeat(90), "f".repeat(90));
    sh(&format!(
        "cd {d}
        mkdir -p a/b keep opq rmdir dev {deep}
        echo one > a/file; echo deep > a/b/deep; echo x > rmdir/x
        echo old1 > opq/old1; echo old2 > opq/old2
        echo s > setuid; chmod 4755 setuid
        echo o > owned; chown 1000:2000 owned; chmod 0640 owned
        : > empty; echo x > xattr; echo long > {long}; echo deep > {deep}/file
        ln -s file a/link; ln -s /etc/passwd abs; ln -s {long} longlink
        echo hl > hl1; ln hl1 a/hl2
        mknod dev/null c 1 3; mkfifo fifo; chmod 0700 keep",
        d = d.display()
    ));
    set_user_xattr(&d.join("xattr"), "user.k", b"v1");
    set_user_xattr(&d.join("a"), "user.dir", b"yes");
}

/// Changes made through a real overlay mount: what the upper dir records.
fn change_merged(m: &Path) {
    sh(&format!(
        "cd {m}
        rm a/file; rm -r rmdir
        rm -r opq; mkdir opq; echo new > opq/new
        echo changed > a/b/deep; ln a/b/deep newhl
        chmod 0750 keep; echo add > keep/added
        ln -s ../a/b/deep keep/rel; mkfifo newfifo; mknod dev/zero c 1 5
        chown 33:33 a/b",
        m = m.display()
    ));
    set_user_xattr(&m.join("xattr"), "user.k", b"v2");
}

struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn overlay_changes_round_trip_through_create_apply_and_umoci() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs as root)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let base = t.path();
    let (lower, upper, work, merged) = (
        base.join("lower"),
        base.join("upper"),
        base.join("work"),
        base.join("merged"),
    );
    for d in [&lower, &upper, &work, &merged] {
        fs::create_dir(d).unwrap();
    }
    make_lower(&lower);
    sh(&format!(
        "mount -t overlay overlay -o lowerdir={},upperdir={},workdir={} {}",
        lower.display(),
        upper.display(),
        work.display(),
        merged.display()
    ));
    let mount = Mount(merged.clone());
    change_merged(&merged);
    let want = tree(&merged);
    let after = base.join("after");
    sh(&format!(
        "cp -a {}/. {}/",
        merged.display(),
        after.display()
    ));
    drop(mount);
    assert_same_tree("cp -a of the merged view", &want, &tree(&after));

    let store = Store::open(&base.join("root")).unwrap();
    let l1 = store
        .create_layer(DiffSource::Tree(&lower), &TarOptions::default(), &plain())
        .unwrap();
    let l2 = store
        .create_layer(
            DiffSource::OverlayUpper(&upper),
            &TarOptions::default(),
            &plain(),
        )
        .unwrap();
    let l2c = store
        .create_layer(
            DiffSource::Compare {
                lower: &lower,
                upper: &after,
            },
            &TarOptions::default(),
            &plain(),
        )
        .unwrap();
    assert_eq!(
        l1.digest, l1.diff_id,
        "uncompressed layers are stored as their tar"
    );

    // The upper dir's overlay markers became OCI whiteouts.
    let names = tar_names(&store.content().path(&l2.digest));
    for w in [
        "a/.wh.file",
        ".wh.rmdir",
        "opq/.wh..wh..opq",
        "opq/new",
        "newhl",
    ] {
        assert!(names.iter().any(|n| n == w), "layer 2 lacks {w}: {names:?}");
    }
    let cnames = tar_names(&store.content().path(&l2c.digest));
    for w in ["a/.wh.file", ".wh.rmdir", "opq/.wh.old1", "opq/new"] {
        assert!(
            cnames.iter().any(|n| n == w),
            "compare layer lacks {w}: {cnames:?}"
        );
    }
    assert!(
        !cnames.iter().any(|n| n == "hl1"),
        "unchanged files are not in a compare layer"
    );

    // kiln's apply, merged mode: base then each kind of diff.
    let opts = ApplyOptions {
        mode: ApplyMode::Merged,
        ..ApplyOptions::default()
    };
    for (what, diff) in [("overlay upper", &l2), ("tree compare", &l2c)] {
        let dir = base.join(format!("apply-{}", diff.diff_id.short()));
        fs::create_dir(&dir).unwrap();
        for l in [&l1, diff] {
            let s = apply_layer(
                fs::File::open(store.content().path(&l.digest)).unwrap(),
                &dir,
                &opts,
            )
            .unwrap();
            assert_eq!(s.diff_id, l.diff_id);
        }
        assert_same_tree(
            &format!("kiln apply of the {what} layer"),
            &want,
            &tree(&dir),
        );
    }

    // An image of the two layers, unpacked as snapshots and stacked by overlayfs.
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [l1.diff_id.to_string(), l2.diff_id.to_string()]},
    }))
    .unwrap();
    let layers = vec![
        (
            l1.digest.clone(),
            l1.size,
            Compression::None.oci_media_type().to_string(),
        ),
        (
            l2.digest.clone(),
            l2.size,
            Compression::None.oci_media_type().to_string(),
        ),
    ];
    store
        .commit_image(Some("rt:1"), &config, &layers, MediaTypes::Oci)
        .unwrap();
    let img = store.image("rt:1").unwrap();
    let layout = store.prepare_rootfs(&img, "rt").unwrap();
    assert_eq!(layout.lowers.len(), 2);
    let view = base.join("view");
    fs::create_dir(&view).unwrap();
    let lowers: Vec<String> = layout
        .lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    sh(&format!(
        "mount -t overlay overlay -o lowerdir={},upperdir={},workdir={} {}",
        lowers.join(":"),
        layout.upper.display(),
        layout.work.display(),
        view.display()
    ));
    let m2 = Mount(view.clone());
    assert_same_tree("overlay of kiln's snapshots", &want, &tree(&view));
    drop(m2);
    store.remove_rootfs("rt").unwrap();

    // umoci's unpack of the same image saved as an OCI archive.
    if !(have("skopeo") && have("umoci")) {
        eprintln!("skopeo/umoci missing (scripts/deps.sh installs them): umoci comparison skipped");
        return;
    }
    let archive = base.join("rt.tar");
    let items = [SaveItem {
        image: img,
        names: vec!["rt:1".into()],
    }];
    save_oci(&store, &items, fs::File::create(&archive).unwrap()).unwrap();
    sh(&format!(
        "cd {b}; skopeo copy -q oci-archive:rt.tar oci:layout:t; umoci unpack --image layout:t bundle >/dev/null",
        b = base.display()
    ));
    assert_same_tree("umoci unpack", &want, &tree(&base.join("bundle/rootfs")));
}

#[test]
fn layers_are_deterministic_and_clamp_mtimes() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), b"data").unwrap();
    fs::write(src.join("z"), b"z").unwrap();
    symlink("d/f", src.join("l")).unwrap();
    fs::set_permissions(src.join("z"), fs::Permissions::from_mode(0o600)).unwrap();
    let store = Store::open(&t.path().join("root")).unwrap();
    let opts = TarOptions {
        source_date_epoch: Some(1_000_000),
    };
    let a = store
        .create_layer(DiffSource::Tree(&src), &opts, &plain())
        .unwrap();
    // Touch everything: with the epoch clamp the bytes do not change.
    sh(&format!("touch {}/d/f {}/z", src.display(), src.display()));
    let b = store
        .create_layer(DiffSource::Tree(&src), &opts, &plain())
        .unwrap();
    assert_eq!(a.diff_id, b.diff_id);
    let mut ar = tar::Archive::new(fs::File::open(store.content().path(&a.digest)).unwrap());
    let mut names = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        assert!(e.header().mtime().unwrap() <= 1_000_000);
        names.push(e.path().unwrap().to_string_lossy().into_owned());
    }
    assert_eq!(names, ["d/", "d/f", "l", "z"]);
    // Same tar whatever the compression; the compressed digest differs and the diff ID does not.
    for c in [Compression::Gzip, Compression::Zstd] {
        let z = store
            .create_layer(
                DiffSource::Tree(&src),
                &opts,
                &CompressOptions {
                    compression: c,
                    level: None,
                    threads: 2,
                },
            )
            .unwrap();
        assert_eq!(z.diff_id, a.diff_id);
        assert_ne!(z.digest, a.digest);
        let dir = t.path().join(format!("out-{c:?}"));
        fs::create_dir(&dir).unwrap();
        let s = apply_layer(
            fs::File::open(store.content().path(&z.digest)).unwrap(),
            &dir,
            &ApplyOptions::default(),
        )
        .unwrap();
        assert_eq!(s.compression, c);
        assert_eq!(s.diff_id, a.diff_id);
        assert_eq!(fs::read(dir.join("d/f")).unwrap(), b"data");
    }
}
