//! `docker import --change` through the engine: the changes end up in the image's config.

use kiln_engine::images::RootfsSource;
use kiln_engine::Engine;

#[test]
fn changes_set_the_config_of_the_imported_image() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("hello"), "hi\n").unwrap();
    let engine = Engine::new(tmp.path().join("root"));
    let changes = [
        r#"CMD ["cat", "/hello"]"#.to_string(),
        "ENV A=1 B=two".to_string(),
        "WORKDIR /srv".to_string(),
        "LABEL k=v".to_string(),
    ];
    let id = engine
        .import_rootfs_with_changes(
            RootfsSource::Directory(rootfs.clone()),
            "acc/changed:1",
            Some("with changes".into()),
            &changes,
        )
        .unwrap();
    let image = engine.store().unwrap().image("acc/changed:1").unwrap();
    assert_eq!(image.id, id);
    let config: serde_json::Value = serde_json::from_slice(&image.config_raw).unwrap();
    let c = &config["config"];
    assert_eq!(c["Cmd"], serde_json::json!(["cat", "/hello"]));
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"A=1") && env.contains(&"B=two"), "{env:?}");
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["Labels"]["k"], "v");
    // WORKDIR makes its directory, as in a Dockerfile: one small layer over the import's
    // (dockerd's import sets the field only). The rest add none.
    assert_eq!(image.diff_ids.len(), 2);
    assert!(String::from_utf8_lossy(&image.config_raw).contains("with changes"));

    // A change that is not a config instruction is refused before anything is imported.
    let err = engine
        .import_rootfs_with_changes(
            RootfsSource::Directory(rootfs),
            "acc/refused:1",
            None,
            &["RUN touch /x".to_string()],
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "RUN is not a valid change command");
    assert!(engine.store().unwrap().image("acc/refused:1").is_err());
}
