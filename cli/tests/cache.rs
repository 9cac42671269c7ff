//! The build cache shared through a registry or a directory (`kiln build --cache-to`,
//! `--cache-from`): machine 1 builds and exports; machine 2 (a fresh root, the context copied
//! to another directory) imports and runs nothing, producing the same image. Needs root,
//! busybox-static, docker-registry (scripts/deps.sh).

mod common;

use std::path::{Path, PathBuf};

use common::{Machine, Registry};

impl Machine {
    /// `kiln build --progress=plain ARGS -t app:1 --metadata-file M CONTEXT`: the progress
    /// output and the metadata.
    fn build(&self, context: &Path, args: &[&str]) -> (String, serde_json::Value) {
        let meta = self.root.path().join("meta.json");
        let out = self
            .cmd()
            .args([
                "build",
                "--progress=plain",
                "--network",
                "none",
                "-t",
                "app:1",
            ])
            .arg("--metadata-file")
            .arg(&meta)
            .args(args)
            .arg(context)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build {args:?} failed:\n{err}");
        let meta = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
        (err, meta)
    }

    /// busybox:latest from the shared rootfs, at a fixed time so every machine has the same
    /// base image (as machines pulling one base image from a registry do).
    fn import_busybox(&self, name: &str) {
        self.import_busybox_at(name, "1700000000");
    }

    /// The same base filesystem, imported as an image of another time (another image ID).
    fn import_busybox_at(&self, name: &str, epoch: &str) {
        let mut kiln = self.cmd();
        kiln.env("SOURCE_DATE_EPOCH", epoch);
        common::import_busybox(kiln, name);
    }
}

/// Each RUN prints `out-42-NAME`: a string the Dockerfile itself does not contain, so it
/// appears in the progress output only when the step ran.
fn dockerfile(base: &str) -> String {
    format!(
        "FROM {base} AS builder\n\
         RUN echo out-$((40+2))-builder && echo built > /artifact\n\
         FROM {base}\n\
         RUN echo out-$((40+2))-one && echo one > /one\n\
         COPY app.txt /app.txt\n\
         RUN echo out-$((40+2))-two && cat /app.txt > /two\n\
         COPY --from=builder /artifact /artifact\n\
         RUN echo out-$((40+2))-three && cat /one /two /artifact > /out\n\
         CMD [\"cat\", \"/out\"]\n"
    )
}
/// Steps of that Dockerfile (RUN and COPY), and those of the final stage.
const STEPS: usize = 6;
const FINAL_STEPS: usize = 5;

fn context(base: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("kiln-cache-ctx")
        .tempdir()
        .unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile(base)).unwrap();
    std::fs::write(dir.path().join("app.txt"), "app v1\n").unwrap();
    dir
}

/// The same context, copied to another directory (another machine's checkout).
fn copy_of(ctx: &Path) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("kiln-cache-ctx-copy")
        .tempdir()
        .unwrap();
    for f in ["Dockerfile", "app.txt"] {
        std::fs::copy(ctx.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn ran(progress: &str) -> Vec<&str> {
    let mut names: Vec<&str> = progress
        .lines()
        .filter_map(|l| l.split("out-42-").nth(1))
        .map(str::trim)
        .collect();
    names.sort();
    names
}

fn cached(progress: &str) -> usize {
    progress.lines().filter(|l| l.ends_with(" CACHED")).count()
}

/// The cache manifest digest an export reported.
fn cache_manifest(progress: &str) -> String {
    let line = progress
        .lines()
        .find(|l| l.starts_with("exporting cache to "))
        .unwrap_or_else(|| panic!("no cache export in:\n{progress}"));
    line.split(" manifest ").nth(1).unwrap().to_string()
}

fn digests(meta: &serde_json::Value) -> (String, String) {
    (
        meta["containerimage.digest"].as_str().unwrap().to_string(),
        meta["containerimage.config.digest"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

/// The cache config tagged `latest` in an OCI layout written by `--cache-to type=local`.
fn layout_config(dir: &Path) -> (serde_json::Value, serde_json::Value) {
    let read = |digest: &str| -> serde_json::Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    let manifest = read(entry["digest"].as_str().unwrap());
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.kiln.cache.config.v1+json"
    );
    let config = read(manifest["config"]["digest"].as_str().unwrap());
    (manifest, config)
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in [dir.to_path_buf(), dir.join("blobs/sha256")] {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().contains("tmp") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_registry_cache_lets_a_fresh_machine_build_without_running_a_step() {
    let reg = Registry::start();
    // The base image both machines pull from the registry, as FROM does on demand.
    let seed = Machine::new();
    let base = format!("{}/t/base:1", reg.addr);
    seed.import_busybox(&base);
    seed.ok(&["push", &base]);

    let ctx1 = context(&base);
    let cache = format!("type=registry,ref={}/t/cache:1,mode=max", reg.addr);
    let m1 = Machine::new();
    let (out1, meta1) = m1.build(ctx1.path(), &["--cache-to", &cache]);
    assert_eq!(
        ran(&out1),
        ["builder", "one", "three", "two"],
        "machine 1 runs everything:\n{out1}"
    );
    assert!(out1.contains("exporting cache to registry"), "{out1}");

    // Machine 2: a fresh root, the context in another directory, the buildx shorthand.
    let ctx2 = copy_of(ctx1.path());
    let m2 = Machine::new();
    let bare = format!("{}/t/cache:1", reg.addr);
    let (out2, meta2) = m2.build(ctx2.path(), &["--cache-from", &bare]);
    assert!(ran(&out2).is_empty(), "no RUN step ran:\n{out2}");
    assert_eq!(cached(&out2), STEPS, "every step is CACHED:\n{out2}");
    assert_eq!(
        digests(&meta2),
        digests(&meta1),
        "the same image, byte for byte"
    );
    assert_eq!(
        m2.ok(&["run", "--rm", "app:1"]),
        "one\napp v1\nbuilt\n",
        "the image runs"
    );

    // Machine 2 exporting what it imported (the usual CI pattern: --cache-from and --cache-to
    // the same ref) writes the very same cache manifest, uploading nothing new.
    let (out_again, _) = m2.build(ctx2.path(), &["--cache-from", &bare, "--cache-to", &cache]);
    assert!(ran(&out_again).is_empty(), "{out_again}");
    assert_eq!(cache_manifest(&out_again), cache_manifest(&out1));

    // A cache that does not exist is a warning (a first build), as in buildx.
    let missing = format!("type=registry,ref={}/t/nothing:1", reg.addr);
    let (out3, _) = m2.build(ctx2.path(), &["--cache-from", &missing]);
    assert!(out3.contains("WARNING: --cache-from registry"), "{out3}");
    assert!(out3.contains("not found"), "{out3}");
    // What was imported and fetched is now in machine 2's own cache.
    assert!(ran(&out3).is_empty(), "{out3}");
    assert_eq!(cached(&out3), STEPS, "{out3}");
    m2.ok(&["system", "check"]);

    // Bad specs fail before anything is built, naming the problem.
    for (spec, says) in [
        ("type=inline", "type=inline is not supported"),
        ("type=s4,ref=x", "unknown cache type"),
        ("type=registry,mode=max", "ref= is missing"),
        (
            "type=registry,ref=x,colour=red",
            "unknown attribute \"colour\"",
        ),
    ] {
        let out = m2.run(&["build", "--cache-to", spec, ctx2.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{spec}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{spec}: {err}");
    }
}

#[test]
fn a_local_cache_min_holds_the_final_chain_max_every_step_and_edits_rerun_their_steps() {
    let m1 = Machine::new();
    m1.import_busybox("busybox:latest");
    let ctx1 = context("busybox:latest");
    let dirs = tempfile::Builder::new()
        .prefix("kiln-cache-dirs")
        .tempdir()
        .unwrap();
    let max = dirs.path().join("max");
    let min = dirs.path().join("min");
    let (out1, meta1) = m1.build(
        ctx1.path(),
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max", max.display()),
            "--cache-to",
            &format!("type=local,dest={}", min.display()),
        ],
    );
    assert_eq!(ran(&out1).len(), 4, "{out1}");

    // max: every step; min: only the final image's chain (not the builder stage's RUN).
    let (max_manifest, max_config) = layout_config(&max);
    let (_, min_config) = layout_config(&min);
    assert_eq!(max_config["records"].as_array().unwrap().len(), STEPS);
    assert_eq!(min_config["records"].as_array().unwrap().len(), FINAL_STEPS);
    let layers = max_config["layers"].as_array().unwrap();
    assert_eq!(
        max_manifest["layers"].as_array().unwrap().len(),
        layers.len()
    );
    for l in layers {
        assert_eq!(
            l["blob"]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
    }
    assert!(leftovers(&max).is_empty(), "{:?}", leftovers(&max));

    // With min, the builder stage is not cached: building it runs its RUN.
    let m2 = Machine::new();
    m2.import_busybox("busybox:latest");
    let ctx2 = copy_of(ctx1.path());
    let min_from = format!("type=local,src={}", min.display());
    let (out2, _) = m2.build(
        ctx2.path(),
        &["--cache-from", &min_from, "--target", "builder"],
    );
    assert_eq!(ran(&out2), ["builder"], "{out2}");

    // With max, a fresh machine runs nothing and makes the same image.
    let m3 = Machine::new();
    m3.import_busybox("busybox:latest");
    let max_from = format!("type=local,src={}", max.display());
    let (out3, meta3) = m3.build(ctx2.path(), &["--cache-from", &max_from]);
    assert!(ran(&out3).is_empty(), "{out3}");
    assert_eq!(cached(&out3), STEPS, "{out3}");
    assert_eq!(digests(&meta3), digests(&meta1));
    assert_eq!(m3.ok(&["run", "--rm", "app:1"]), "one\napp v1\nbuilt\n");
    // Layers are fetched only when needed: the builder stage's own layer (in max, not in
    // min) was never needed, since the final image's steps were all hits.
    let used = |config: &serde_json::Value| -> Vec<String> {
        config["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["stored"]["digest"].as_str().unwrap().to_string())
            .collect()
    };
    let in_min = used(&min_config);
    let only_builder: Vec<String> = used(&max_config)
        .into_iter()
        .filter(|d| !in_min.contains(d))
        .collect();
    assert_eq!(only_builder.len(), 1, "{max_config}");
    let stored = |m: &Machine, d: &str| {
        m.root
            .path()
            .join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
            .exists()
    };
    assert!(
        !stored(&m3, &only_builder[0]),
        "the builder's layer was fetched"
    );
    assert!(
        in_min.iter().all(|d| stored(&m3, d)),
        "the image's layers are there"
    );

    // An edited context file reruns exactly the steps that depend on it. Machine 4's base
    // is the same filesystem imported at another time (another image ID): keys depend on
    // the layers, so the cache still applies.
    let m4 = Machine::new();
    m4.import_busybox_at("busybox:latest", "1600000000");
    let ctx4 = copy_of(ctx1.path());
    std::fs::write(ctx4.path().join("app.txt"), "app v2\n").unwrap();
    let (out4, meta4) = m4.build(ctx4.path(), &["--cache-from", &max_from]);
    assert_eq!(ran(&out4), ["three", "two"], "{out4}");
    assert_eq!(cached(&out4), 2, "RUN one and the builder's RUN:\n{out4}");
    assert_ne!(digests(&meta4), digests(&meta1));
    assert_eq!(m4.ok(&["run", "--rm", "app:1"]), "one\napp v2\nbuilt\n");
    m4.ok(&["system", "check"]);
}

#[test]
fn secrets_used_by_a_step_never_reach_the_cache() {
    let m = Machine::new();
    m.import_busybox("busybox:latest");
    let ctx = tempfile::Builder::new()
        .prefix("kiln-cache-secret")
        .tempdir()
        .unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox:latest\n\
         RUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /len\n",
    )
    .unwrap();
    let secret = "s3cr3t-value-that-must-not-leak";
    let file = ctx.path().join("tok.txt");
    std::fs::write(&file, secret).unwrap();
    let dest = ctx.path().join("cache");
    m.build(
        ctx.path(),
        &[
            "--secret",
            &format!("id=tok,src={}", file.display()),
            "--cache-to",
            &format!("type=local,dest={},mode=max", dest.display()),
        ],
    );
    let (_, config) = layout_config(&dest);
    assert_eq!(config["records"].as_array().unwrap().len(), 1);
    // Every blob of the cache, unpacked when gzip: none holds the secret.
    let mut blobs = 0;
    for e in std::fs::read_dir(dest.join("blobs/sha256")).unwrap() {
        let raw = std::fs::read(e.unwrap().path()).unwrap();
        let mut plain = Vec::new();
        if raw.starts_with(&[0x1f, 0x8b]) {
            use std::io::Read;
            flate2::read::MultiGzDecoder::new(&raw[..])
                .read_to_end(&mut plain)
                .unwrap();
        } else {
            plain = raw;
        }
        let found = plain.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "a cache blob holds the secret");
        blobs += 1;
    }
    assert!(blobs >= 4, "manifest, config and two layers at least");
    // The step did read it (31 bytes).
    assert_eq!(m.ok(&["run", "--rm", "app:1", "cat", "/len"]).trim(), "31");
}

#[test]
fn a_damaged_cache_blob_fails_the_build_clearly_and_leaves_the_store_clean() {
    let m1 = Machine::new();
    m1.import_busybox("busybox:latest");
    let ctx = context("busybox:latest");
    let dir = tempfile::Builder::new()
        .prefix("kiln-cache-damaged")
        .tempdir()
        .unwrap();
    let dest = dir.path().join("c");
    m1.build(
        ctx.path(),
        &["--cache-to", &format!("type=local,dest={}", dest.display())],
    );
    // Flip bytes inside every gzip layer of the layout.
    let (_, config) = layout_config(&dest);
    for l in config["layers"].as_array().unwrap() {
        let hex = l["blob"]["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        let path = dest.join("blobs/sha256").join(hex);
        let mut bytes = std::fs::read(&path).unwrap();
        for b in &mut bytes[20..40] {
            *b ^= 0x5a;
        }
        std::fs::write(&path, bytes).unwrap();
    }
    let m2 = Machine::new();
    m2.import_busybox("busybox:latest");
    let out = m2
        .cmd()
        .args([
            "build",
            "--progress=plain",
            "--network",
            "none",
            "-t",
            "app:1",
        ])
        .arg("--cache-from")
        .arg(format!("type=local,src={}", dest.display()))
        .arg(ctx.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("from the imported build cache"),
        "the error names the cache:\n{err}"
    );
    assert!(m2.ok(&["images"]).lines().all(|l| !l.starts_with("app ")));
    m2.ok(&["system", "check"]);
}
