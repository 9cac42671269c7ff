//! The image operations through the engine, on a fresh store: what both faces rely on.

use kiln_engine::images::{ArchiveFormat, ArchiveSource, ImageFilter, RootfsSource};
use kiln_engine::{Engine, Event, Progress};

/// An engine on a fresh root, with a two-file root filesystem imported as `base:1`.
fn engine_with_base() -> (tempfile::TempDir, Engine) {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hostname"), "kiln\n").unwrap();
    std::fs::write(rootfs.join("hello"), vec![7u8; 5000]).unwrap();
    let engine = Engine::new(tmp.path().join("root"));
    engine
        .import_rootfs(
            RootfsSource::Directory(rootfs),
            "base:1",
            Some("seed".into()),
        )
        .unwrap();
    (tmp, engine)
}

#[test]
fn an_imported_image_is_listed_inspected_and_has_one_history_entry() {
    let (_tmp, engine) = engine_with_base();
    let listed = engine
        .list_images(&ImageFilter::default(), &Progress::none())
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].repository.as_str(), listed[0].tag.as_str()),
        ("base", "1")
    );
    assert!(listed[0].size >= 5000, "{}", listed[0].size);

    let inspect = serde_json::to_value(engine.inspect_image("base:1").unwrap()).unwrap();
    assert_eq!(inspect["Id"], listed[0].id.to_string());
    assert_eq!(inspect["RepoTags"][0], "base:1");
    assert_eq!(inspect["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        inspect["Descriptor"]["digest"],
        listed[0].manifest_digest.to_string()
    );

    let history = engine.image_history("base:1").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id.as_ref(), Some(&listed[0].id));
    assert_eq!(history[0].comment, "seed");
    assert!(history[0].size >= 5000);
}

#[test]
fn a_filter_keeps_only_the_names_asked_for() {
    let (_tmp, engine) = engine_with_base();
    engine.tag_image("base:1", "other:2").unwrap();
    let only = |r: &str| {
        engine
            .list_images(&ImageFilter::reference(r), &Progress::none())
            .unwrap()
            .into_iter()
            .map(|i| format!("{}:{}", i.repository, i.tag))
            .collect::<Vec<_>>()
    };
    assert_eq!(only("other"), ["other:2"]);
    assert_eq!(only("base:1"), ["base:1"]);
    assert!(only("nothing").is_empty());
}

#[test]
fn removing_the_last_name_deletes_the_image_and_a_missing_one_is_not_found() {
    let (_tmp, engine) = engine_with_base();
    engine.tag_image("base:1", "again:1").unwrap();
    let first = engine.remove_image("again:1", false, true).unwrap();
    assert_eq!(first.untagged, ["again:1"]);
    assert!(first.deleted.is_none(), "base:1 still names it");
    let last = engine.remove_image("base:1", false, true).unwrap();
    assert!(last.deleted.is_some());
    let err = engine.inspect_image("base:1").unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(engine.check(false).unwrap().is_clean());
}

#[test]
fn a_saved_archive_loads_into_another_store_with_the_same_id() {
    let (tmp, engine) = engine_with_base();
    let id = engine.inspect_image("base:1").unwrap().id;
    for format in [ArchiveFormat::Docker, ArchiveFormat::Oci] {
        let file = tmp.path().join(format!("{format:?}.tar"));
        engine
            .save_images_to(&["base:1".to_string()], format, &file)
            .unwrap();
        let other = Engine::new(tmp.path().join(format!("other-{format:?}")));
        let loaded = other.load_images(ArchiveSource::File(file)).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].id.to_string(), id);
        assert_eq!(other.inspect_image("base:1").unwrap().id, id);
    }
}

#[test]
fn an_unreadable_image_is_skipped_with_a_warning() {
    let (_tmp, engine) = engine_with_base();
    let store = engine.store().unwrap();
    let img = store.image("base:1").unwrap();
    // Lose the config blob: the name stays, the image cannot be read.
    std::fs::remove_file(store.content().path(&img.id)).unwrap();
    let warnings = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let w = std::sync::Arc::clone(&warnings);
    let progress = Progress::new(move |e| {
        if let Event::Warning(m) = e {
            w.lock().unwrap().push(m);
        }
    });
    let listed = engine
        .list_images(&ImageFilter::default(), &progress)
        .unwrap();
    assert!(listed.is_empty());
    let warnings = warnings.lock().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with("image base:1: "), "{warnings:?}");
}

#[test]
fn labels_and_creation_times_filter_the_listing() {
    let (tmp, engine) = engine_with_base();
    // An older, labelled image: built from scratch at a fixed epoch.
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nLABEL kind=old\n").unwrap();
    let mut opts = kiln_engine::BuildOptions::new(kiln_engine::BuildContext::Directory(ctx));
    opts.tags = vec!["old:1".into()];
    opts.epoch = Some(1_000_000_000);
    engine.build(opts, &Progress::none()).unwrap();

    let names = |filter: ImageFilter| -> Vec<String> {
        let mut names: Vec<String> = engine
            .list_images(&filter, &Progress::none())
            .unwrap()
            .into_iter()
            .map(|i| format!("{}:{}", i.repository, i.tag))
            .collect();
        names.sort();
        names
    };
    let parse = |pairs: &[(&str, &str)]| ImageFilter::parse(pairs.iter().copied()).unwrap();
    assert_eq!(names(parse(&[("label", "kind=old")])), ["old:1"]);
    assert_eq!(names(parse(&[("label", "kind")])), ["old:1"]);
    assert!(names(parse(&[("label", "kind=new")])).is_empty());
    assert_eq!(names(parse(&[("since", "old:1")])), ["base:1"]);
    assert_eq!(names(parse(&[("before", "base:1")])), ["old:1"]);
    assert!(names(parse(&[("dangling", "true")])).is_empty());
    assert_eq!(names(parse(&[("dangling", "false")])), ["base:1", "old:1"]);
    assert_eq!(names(parse(&[("reference", "ol*")])), ["old:1"]);
    let missing = engine
        .list_images(&parse(&[("before", "nothing:1")]), &Progress::none())
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");

    // One entry per ID, with every name it has.
    engine.tag_image("old:1", "old:2").unwrap();
    let entries = engine
        .list_image_entries(&ImageFilter::default(), &Progress::none())
        .unwrap();
    assert_eq!(entries.len(), 2);
    let old = entries
        .iter()
        .find(|e| e.labels.contains_key("kind"))
        .unwrap();
    assert_eq!(old.repo_tags.len(), 2);
    assert_eq!(old.created, 1_000_000_000);
    assert!(entries[0].created > entries[1].created, "newest first");
}

#[test]
fn an_image_a_container_uses_is_kept_without_force() {
    let (_tmp, engine) = engine_with_base();
    let record = kiln_executor::state::ContainerRecord {
        id: "c0ffee".repeat(10) + "c0ff",
        name: "user".into(),
        image: "base:1".into(),
        command: vec!["true".into()],
        status: kiln_executor::state::Status::Exited,
        exit_code: Some(0),
        cwd: "/".into(),
        seccomp: true,
        stop_signal: "SIGTERM".into(),
        start_count: 1,
        ..Default::default()
    };
    engine.containers().unwrap().save(&record).unwrap();
    let err = engine.remove_image("base:1", false, true).unwrap_err();
    assert!(matches!(err, kiln_engine::Error::Conflict(_)), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to remove repository reference \"base:1\" (must force) - \
             container c0ffeec0ffee is using its referenced image {}",
            engine.image("base:1").unwrap().id.short()
        )
    );
    // Another name can go: the image stays.
    engine.tag_image("base:1", "other:1").unwrap();
    assert!(engine.remove_image("other:1", false, true).is_ok());
    let forced = engine.remove_image("base:1", true, true).unwrap();
    assert!(forced.deleted.is_some());
}
