//! `kiln push`, `kiln pull`, `kiln build --push` and FROM pulled on demand, against a real
//! registry (Debian's docker-registry on 127.0.0.1, started here), checked with skopeo.
//! Needs root (kiln run), busybox-static, docker-registry and skopeo: scripts/deps.sh.

mod common;

use std::process::Command;

use common::{Machine, Registry};

impl Machine {
    /// busybox from the shared rootfs, imported from its directory.
    fn import_busybox(&self, name: &str) {
        self.ok(&["import", common::rootfs().to_str().unwrap(), name]);
    }
}

fn skopeo_inspect(reference: &str, raw: bool) -> serde_json::Value {
    let mut c = Command::new("skopeo");
    c.args(["inspect", "--tls-verify=false"]);
    if raw {
        c.arg("--raw");
    }
    let out = c
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo (scripts/deps.sh)");
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

#[test]
fn push_gzips_stored_layers_and_skopeo_reads_the_image() {
    let reg = Registry::start();
    let k = Machine::new();
    let name = format!("{}/t/bb:1", reg.addr);
    k.import_busybox(&name);
    let out = k.run(&["push", &name]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(": Pushed"), "{err}");
    let manifest = skopeo_inspect(&name, true);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    // The digest line names what the registry stores.
    let digest = skopeo_inspect(&name, false)["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&format!("1: digest: {digest} size: ")),
        "{err}"
    );
    // The config (and so the diff IDs) is the stored one.
    let local: serde_json::Value = serde_json::from_str(&k.ok(&["inspect", &name])).unwrap();
    let id = local[0]["Id"].as_str().unwrap();
    assert_eq!(manifest["config"]["digest"], id);

    // A second push sends no layer: the gzip digest is remembered and the registry has it.
    let again = k.run(&["push", &name]);
    let again_err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{again_err}");
    assert!(again_err.contains(": Layer already exists"), "{again_err}");
    assert!(!again_err.contains(": Pushed"), "{again_err}");
    assert!(
        again_err.contains(&format!("1: digest: {digest} size: ")),
        "{again_err}"
    );
    // A wrong remembered digest (another zlib, say) costs one more compression, never a
    // broken image, and is found at once, not after the retries a network failure gets:
    // whether the fresh gzip is shorter or longer than the remembered size.
    let memo_dir = k.root.path().join("push-gzip");
    for (n, size) in [(1, 100_000_000u64), (2, 1234)] {
        for e in std::fs::read_dir(&memo_dir).unwrap() {
            let bogus = format!("sha256:{} {size}\n", "ab".repeat(32));
            std::fs::write(e.unwrap().path(), bogus).unwrap();
        }
        let other = format!("{}/t/other{n}:1", reg.addr);
        k.ok(&["tag", &name, &other]);
        let out = k.run(&["push", &other]);
        let out_err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{out_err}");
        assert!(
            out_err.contains("compressing every layer again"),
            "{out_err}"
        );
        assert!(!out_err.contains("Retrying"), "{out_err}");
        assert_eq!(skopeo_inspect(&other, false)["Digest"], digest.as_str());
    }

    // -q prints the name only; a missing image fails clearly.
    assert_eq!(k.ok(&["push", "-q", &name]).trim(), name);
    let missing = k.run(&["push", &format!("{}/t/none:1", reg.addr)]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist locally"));
}

#[test]
fn pulls_an_image_skopeo_pushed_and_fails_clearly_on_bad_input() {
    let reg = Registry::start();
    let k = Machine::new();
    k.import_busybox("src:1");
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("src.tar");
    let archive = archive.to_str().unwrap();
    k.ok(&["save", "--format", "oci", "-o", archive, "src:1"]);
    let name = format!("{}/t/foreign:1", reg.addr);
    let out = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", "--dest-compress"])
        .arg(format!("oci-archive:{archive}"))
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let fresh = Machine::new();
    let out = fresh.run(&["pull", &name]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Pulling from t/foreign"), "{err}");
    assert!(err.contains(": Pull complete"), "{err}");
    assert!(err.contains("Status: Downloaded newer image"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), name);
    let images = fresh.ok(&["images"]);
    assert!(
        images.contains(&format!("{}/t/foreign", reg.addr)),
        "{images}"
    );
    // A second pull finds everything present.
    let again = fresh.run(&["pull", &name]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("Image is up to date"));
    assert_eq!(fresh.ok(&["pull", "-q", &name]).trim(), name);
    // `kiln system check` finds the store clean.
    fresh.ok(&["system", "check"]);

    let bad = fresh.run(&["pull", "Not//A:Valid:Ref"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid reference format"));
    let missing = fresh.run(&["pull", &format!("{}/t/missing:1", reg.addr)]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

#[test]
fn build_push_prune_pull_run_round_trip_and_from_pulls_on_demand() {
    let reg = Registry::start();
    let k = Machine::new();
    let base = format!("{}/t/base:1", reg.addr);
    k.import_busybox(&base);
    k.ok(&["push", &base]);

    // FROM pulls into an empty root; --push sends the result.
    let builder = Machine::new();
    let ctx = context(&format!(
        "FROM {base}\nRUN echo built > /b\nCMD [\"cat\", \"/b\"]\n"
    ));
    let app = format!("{}/t/app:2", reg.addr);
    let out = builder.run(&[
        "build",
        "--progress=plain",
        "-t",
        &app,
        "--push",
        ctx.path().to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The base layer came from t/base of the same registry: it is mounted, not uploaded.
    assert!(err.contains(": Mounted from t/base"), "{err}");
    assert!(err.contains("2: digest: sha256:"), "{err}");
    let manifest = skopeo_inspect(&app, true);
    for layer in manifest["layers"].as_array().unwrap() {
        assert!(
            layer["mediaType"].as_str().unwrap().ends_with("+gzip"),
            "{manifest}"
        );
    }
    // --pull re-resolves the base from the registry (it is there, so the build works).
    builder.ok(&[
        "build",
        "--pull",
        "--progress=plain",
        "-t",
        "again:1",
        ctx.path().to_str().unwrap(),
    ]);

    builder.ok(&["rmi", "-f", &app, &base, "again:1"]);
    builder.ok(&["system", "prune", "-a", "-f"]);
    assert!(builder.run(&["run", "--rm", &app]).status.code() != Some(0));
    builder.ok(&["pull", &app]);
    assert_eq!(builder.ok(&["run", "--rm", &app]).trim(), "built");
}

#[test]
fn a_pull_that_fails_midway_leaves_no_name_and_no_partial_blob() {
    let reg = Registry::start();
    let k = Machine::new();
    let name = format!("{}/t/broken:1", reg.addr);
    k.import_busybox(&name);
    k.ok(&["push", &name]);
    // Remove the layer's data from the registry's storage: the manifest and config are
    // served, the layer is not.
    let manifest = skopeo_inspect(&name, true);
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let hex = layer.strip_prefix("sha256:").unwrap();
    let data = reg
        .dir
        .path()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    std::fs::remove_file(&data).unwrap();

    let fresh = Machine::new();
    let out = fresh.run(&["pull", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!fresh.ok(&["images"]).contains("t/broken"));
    let blobs = fresh.root.path().join("blobs/sha256");
    assert!(!blobs.join(hex).exists());
    let ingest = fresh.root.path().join("ingest");
    assert_eq!(std::fs::read_dir(ingest).unwrap().count(), 0);
    fresh.ok(&["system", "check"]);
}
