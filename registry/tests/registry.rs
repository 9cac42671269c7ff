//! Pull and push against a real registry (Debian's docker-registry 2.8) on 127.0.0.1, plain,
//! with htpasswd basic auth and with token auth; images checked with skopeo.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::{
    docker_config_with, make_image, tar_layer, test_config, AuthMode, FsStore, Registry, PASSWORD,
    USER,
};
use kiln_registry::auth::{CredentialStore, DockerConfig, RegistryAuth};
use kiln_registry::{BlobEvent, Client, Digest, Error, Platform, Reference};
use oci_spec::image::{DescriptorBuilder, ImageIndexBuilder, MediaType, PlatformBuilder};

fn reference(addr: &str, repo: &str) -> Reference {
    Reference::parse(&format!("{addr}/{repo}")).unwrap()
}

fn linux_amd64() -> Platform {
    "linux/amd64".parse().unwrap()
}

type Events = Arc<Mutex<Vec<(Digest, BlobEvent)>>>;

fn recording(mut config: kiln_registry::ClientConfig) -> (kiln_registry::ClientConfig, Events) {
    let events: Events = Arc::default();
    let e = events.clone();
    config.progress = Some(Arc::new(move |d: &Digest, ev: &BlobEvent| {
        e.lock().unwrap().push((d.clone(), ev.clone()))
    }));
    (config, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_round_trip_verifies_and_skips_existing() {
    let reg = Registry::start(AuthMode::None).await;
    let tmp = tempfile::tempdir().unwrap();
    let src = FsStore::new(&tmp.path().join("src"));
    let image = make_image(
        &src,
        &[tar_layer("a", 300_000, 1), tar_layer("b", 1_200_000, 2)],
    );
    let (config, events) = recording(test_config(None));
    let client = Client::new(config).unwrap();
    let r = reference(&reg.addr, "acc/app:1");
    let pushed = client
        .push(
            &r,
            &src,
            &image.manifest,
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
        .unwrap();
    assert_eq!(pushed, image.digest);

    let dst = FsStore::new(&tmp.path().join("dst"));
    let pulled = client.pull(&r, &linux_amd64(), &dst).await.unwrap();
    assert_eq!(pulled.manifest.digest, image.digest);
    assert_eq!(pulled.manifest.bytes, image.manifest);
    assert_eq!(pulled.config.digest, image.config);
    assert_eq!(
        pulled
            .layers
            .iter()
            .map(|l| l.digest.clone())
            .collect::<Vec<_>>(),
        image.layers
    );
    assert!(pulled.index.is_none());
    assert_eq!(pulled.reference.digest(), Some(&image.digest));
    assert_eq!(
        Digest::sha256_of(&pulled.config_bytes),
        image.config,
        "config bytes returned verified"
    );
    dst.verify_all();
    assert_eq!(dst.committed().len(), 3);
    assert_eq!(dst.in_progress(), 0);

    // Again: every blob exists on both sides, nothing moves.
    events.lock().unwrap().clear();
    client.pull(&r, &linux_amd64(), &dst).await.unwrap();
    client
        .push(
            &r,
            &src,
            &image.manifest,
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
        .unwrap();
    let ev = events.lock().unwrap().clone();
    assert!(
        ev.iter().all(|(_, e)| matches!(e, BlobEvent::Exists)),
        "{ev:?}"
    );
    // pull: 2 layers exist; push: config + 2 layers exist.
    assert_eq!(ev.len(), 5);

    // resolve: the tag's digest without moving the manifest; a missing tag is NotFound.
    assert_eq!(client.resolve(&r).await.unwrap(), image.digest);
    let err = client
        .resolve(&reference(&reg.addr, "acc/app:nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    // Pull by digest works too, and a missing tag is a clear NotFound.
    let by_digest = r.with_digest(image.digest.clone());
    let again = client.pull(&by_digest, &linux_amd64(), &dst).await.unwrap();
    assert_eq!(again.manifest.digest, image.digest);
    let err = client
        .pull(&reference(&reg.addr, "acc/missing:1"), &linux_amd64(), &dst)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("manifest 1 not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_pull_picks_the_platform_and_chunked_push_and_mount_work() {
    let reg = Registry::start(AuthMode::None).await;
    let tmp = tempfile::tempdir().unwrap();
    let src = FsStore::new(&tmp.path().join("src"));
    let amd = make_image(&src, &[tar_layer("amd", 200_000, 3)]);
    let arm = make_image(&src, &[tar_layer("arm", 250_000, 4)]);
    let entry = |img: &common::TestImage, arch: &str| {
        DescriptorBuilder::default()
            .media_type(MediaType::ImageManifest)
            .digest(
                img.digest
                    .as_str()
                    .parse::<oci_spec::image::Digest>()
                    .unwrap(),
            )
            .size(img.manifest.len() as u64)
            .platform(
                PlatformBuilder::default()
                    .os("linux")
                    .architecture(arch)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![entry(&arm, "arm64"), entry(&amd, "amd64")])
        .build()
        .unwrap();
    let index_bytes = serde_json::to_vec(&index).unwrap();
    let index_digest = src.put(&index_bytes);

    // Chunked uploads: every blob above 64 KiB goes in PATCHes.
    let mut config = test_config(None);
    config.chunk_size = Some(64 << 10);
    let (config, events) = recording(config);
    let client = Client::new(config).unwrap();
    let r = reference(&reg.addr, "acc/multi:1");
    let pushed = client
        .push(
            &r,
            &src,
            &index_bytes,
            "application/vnd.oci.image.index.v1+json",
        )
        .await
        .unwrap();
    assert_eq!(pushed, index_digest);

    for (platform, img) in [("linux/amd64", &amd), ("linux/arm64", &arm)] {
        let dst = FsStore::new(&tmp.path().join(platform.replace('/', "-")));
        let pulled = client
            .pull(&r, &platform.parse().unwrap(), &dst)
            .await
            .unwrap();
        assert_eq!(pulled.index.as_ref().unwrap().digest, index_digest);
        assert_eq!(pulled.manifest.digest, img.digest, "{platform}");
        assert_eq!(pulled.layers[0].digest, img.layers[0]);
        dst.verify_all();
    }
    let err = client
        .pull(&r, &"linux/s390x".parse().unwrap(), &src)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NoMatchingPlatform { ref available, .. } if available.contains("linux/arm64")),
        "{err}"
    );

    // Cross-repository mount: a store that pulled from acc/multi pushes to acc/other.
    let dst = FsStore::new(&tmp.path().join("mount"));
    let pulled = client.pull(&r, &linux_amd64(), &dst).await.unwrap();
    events.lock().unwrap().clear();
    let other = reference(&reg.addr, "acc/other:1");
    client
        .push(
            &other,
            &dst,
            &pulled.manifest.bytes,
            &pulled.manifest.media_type,
        )
        .await
        .unwrap();
    let ev = events.lock().unwrap().clone();
    assert!(
        ev.iter().any(|(d, e)| d == &amd.layers[0]
            && matches!(e, BlobEvent::Mounted { from } if from == "acc/multi")),
        "{ev:?}"
    );
    let check = FsStore::new(&tmp.path().join("check"));
    let p = client.pull(&other, &linux_amd64(), &check).await.unwrap();
    assert_eq!(p.manifest.digest, amd.digest);
    check.verify_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_sees_our_push_and_we_pull_skopeos_push() {
    let reg = Registry::start(AuthMode::None).await;
    let tmp = tempfile::tempdir().unwrap();
    let src = FsStore::new(&tmp.path().join("src"));
    let image = make_image(&src, &[tar_layer("hello", 100_000, 5)]);
    let client = Client::new(test_config(None)).unwrap();
    let r = reference(&reg.addr, "acc/bb:1");
    client
        .push(
            &r,
            &src,
            &image.manifest,
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
        .unwrap();
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}/acc/bb:1", reg.addr))
        .output()
        .expect("skopeo is installed (scripts/deps.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["Digest"], image.digest.as_str());
    assert_eq!(info["Layers"][0], image.layers[0].as_str());
    assert_eq!(info["Os"], "linux");

    // An OCI layout written here, copied by skopeo into the registry, pulled by kiln.
    let layout = tmp.path().join("layout");
    let lay = FsStore::new(&layout);
    let other = make_image(
        &lay,
        &[tar_layer("x", 50_000, 6), tar_layer("y", 70_000, 7)],
    );
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": other.digest.as_str(),
                "size": other.manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": "v1"}
            }]
        })
        .to_string(),
    )
    .unwrap();
    std::fs::remove_dir(layout.join("tmp")).unwrap();
    let out = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(format!("docker://{}/acc/skopeo:1", reg.addr))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // skopeo compresses the layers on the way: compare with what the registry holds.
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/acc/skopeo:1", reg.addr))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let dst = FsStore::new(&tmp.path().join("dst"));
    let pulled = client
        .pull(&reference(&reg.addr, "acc/skopeo:1"), &linux_amd64(), &dst)
        .await
        .unwrap();
    assert_eq!(pulled.manifest.bytes, raw.stdout);
    assert_eq!(pulled.manifest.digest, Digest::sha256_of(&raw.stdout));
    let layers: Vec<String> = pulled.layers.iter().map(|l| l.digest.to_string()).collect();
    let theirs: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(layers, theirs);
    assert_eq!(layers.len(), 2);
    assert_eq!(pulled.config.digest.as_str(), manifest["config"]["digest"]);
    dst.verify_all();

    // The same image as a Docker schema 2 manifest (skopeo --format v2s2).
    let out = Command::new("skopeo")
        .args(["copy", "--format", "v2s2", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(format!("docker://{}/acc/skopeo-v2s2:1", reg.addr))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dst = FsStore::new(&tmp.path().join("dst-v2s2"));
    let pulled = client
        .pull(
            &reference(&reg.addr, "acc/skopeo-v2s2:1"),
            &linux_amd64(),
            &dst,
        )
        .await
        .unwrap();
    assert_eq!(
        pulled.manifest.media_type,
        kiln_registry::manifest::DOCKER_MANIFEST
    );
    assert_eq!(
        pulled.config.media_type,
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(pulled.layers.len(), 2);
    dst.verify_all();
    assert_eq!(dst.committed().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_basic_auth() {
    let reg = Registry::start(AuthMode::Htpasswd).await;
    let tmp = tempfile::tempdir().unwrap();
    let src = FsStore::new(&tmp.path().join("src"));
    let image = make_image(&src, &[tar_layer("a", 10_000, 8)]);
    let r = reference(&reg.addr, "acc/bb:1");
    let mt = "application/vnd.oci.image.manifest.v1+json";

    // No credentials: a clear authentication error.
    let anonymous = Client::new(test_config(None)).unwrap();
    let err = anonymous
        .push(&r, &src, &image.manifest, mt)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&reg.addr), "{err}");

    // login: a wrong password is refused in dockerd's words, the right one accepted.
    let err = anonymous
        .login(&reg.addr, &RegistryAuth::basic(USER, "wrong"))
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
            reg.addr
        )
    );
    anonymous
        .login(&reg.addr, &RegistryAuth::basic(USER, PASSWORD))
        .await
        .unwrap();
    // Given as docker's `auth` field (base64 of user:password) they work too.
    let as_auth = RegistryAuth {
        auth: base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}")),
        ..RegistryAuth::default()
    };
    anonymous.login(&reg.addr, &as_auth).await.unwrap();
    let none = anonymous
        .login(&reg.addr, &RegistryAuth::default())
        .await
        .unwrap_err();
    assert!(none.is_unauthorized(), "{none}");

    // Credentials stored as docker stores them are used.
    let cfg_path = tmp.path().join("docker").join("config.json");
    let mut cfg = DockerConfig::load(&cfg_path).unwrap();
    cfg.store(
        &reg.addr,
        &kiln_registry::auth::Credentials {
            username: USER.into(),
            password: PASSWORD.into(),
        },
    )
    .unwrap();
    let client = Client::new(test_config(Some(cfg_path))).unwrap();
    assert_eq!(
        client.push(&r, &src, &image.manifest, mt).await.unwrap(),
        image.digest
    );
    let dst = FsStore::new(&tmp.path().join("dst"));
    let pulled = client.pull(&r, &linux_amd64(), &dst).await.unwrap();
    assert_eq!(pulled.manifest.digest, image.digest);
    dst.verify_all();

    // Wrong stored credentials: the error says so.
    let bad = docker_config_with(tmp.path(), &reg.addr, USER, "nope");
    let client = Client::new(test_config(Some(bad.clone()))).unwrap();
    let err = client.pull(&r, &linux_amd64(), &dst).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");

    // Credentials given in memory (the Engine API's X-Registry-Auth) are used instead of the
    // files, which are not read at all; a registry they do not name is anonymous.
    let given = |auths: Vec<(String, RegistryAuth)>| {
        let mut config = test_config(Some(bad.clone()));
        config.credentials = CredentialStore::given(auths);
        Client::new(config).unwrap()
    };
    let right = RegistryAuth::basic(USER, PASSWORD);
    let client = given(vec![(format!("http://{}/v2/", reg.addr), right.clone())]);
    let r2 = reference(&reg.addr, "acc/given:1");
    assert_eq!(
        client.push(&r2, &src, &image.manifest, mt).await.unwrap(),
        image.digest
    );
    let dst2 = FsStore::new(&tmp.path().join("dst2"));
    client.pull(&r2, &linux_amd64(), &dst2).await.unwrap();
    let elsewhere = given(vec![("other.example:5000".into(), right)]);
    let err = elsewhere
        .pull(&r2, &linux_amd64(), &dst2)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    let wrong = given(vec![(reg.addr.clone(), RegistryAuth::basic(USER, "nope"))]);
    let err = wrong.pull(&r2, &linux_amd64(), &dst2).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains("nope"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_with_cached_tokens() {
    let reg = Registry::start(AuthMode::Token).await;
    let ts = reg.token_server.as_ref().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = FsStore::new(&tmp.path().join("src"));
    let image = make_image(
        &src,
        &[
            tar_layer("a", 20_000, 9),
            tar_layer("b", 30_000, 10),
            tar_layer("c", 5_000, 11),
        ],
    );
    let r = reference(&reg.addr, "acc/tok:1");
    let mt = "application/vnd.oci.image.manifest.v1+json";

    let anonymous = Client::new(test_config(None)).unwrap();
    let err = anonymous
        .push(&r, &src, &image.manifest, mt)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    let err = anonymous
        .login(&reg.addr, &RegistryAuth::basic(USER, "wrong"))
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    assert!(
        err.to_string().contains("incorrect username or password"),
        "{err}"
    );
    anonymous
        .login(&reg.addr, &RegistryAuth::basic(USER, PASSWORD))
        .await
        .unwrap();

    let cfg = docker_config_with(tmp.path(), &reg.addr, USER, PASSWORD);
    let client = Client::new(test_config(Some(cfg))).unwrap();
    let before = ts.requests.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        client.push(&r, &src, &image.manifest, mt).await.unwrap(),
        image.digest
    );
    let dst = FsStore::new(&tmp.path().join("dst"));
    let pulled = client.pull(&r, &linux_amd64(), &dst).await.unwrap();
    assert_eq!(pulled.manifest.digest, image.digest);
    dst.verify_all();
    let used = ts.requests.load(std::sync::atomic::Ordering::Relaxed) - before;
    // One token per scope (push, then pull), not one per request or per blob.
    assert_eq!(used, 2, "token requests");

    // An identity token in docker's config is exchanged with the OAuth2 refresh grant.
    let path = tmp.path().join("identity.json");
    let write = |token: &str| {
        let json =
            serde_json::json!({"auths": {reg.addr.as_str(): {"auth": "", "identitytoken": token}}});
        std::fs::write(&path, json.to_string()).unwrap();
    };
    write(common::IDENTITY_TOKEN);
    let client = Client::new(test_config(Some(path.clone()))).unwrap();
    assert_eq!(client.resolve(&r).await.unwrap(), image.digest);
    write("stale");
    let client = Client::new(test_config(Some(path.clone()))).unwrap();
    let err = client.resolve(&r).await.unwrap_err();
    assert!(err.to_string().contains("invalid refresh token"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_registry_needs_tls_verify_false_or_the_insecure_list() {
    let reg = Registry::start_tls().await;
    let tmp = tempfile::tempdir().unwrap();
    let src = FsStore::new(&tmp.path().join("src"));
    let image = make_image(&src, &[tar_layer("t", 30_000, 12)]);
    let r = reference(&reg.addr, "acc/tls:1");
    let mt = "application/vnd.oci.image.manifest.v1+json";

    // Loopback without being marked insecure: plain HTTP, which a TLS server refuses clearly.
    let plain = Client::new(test_config(None)).unwrap();
    let err = plain.resolve(&r).await.unwrap_err();
    assert!(err.to_string().contains("HTTPS"), "{err}");

    // --tls-verify=false: HTTPS without verifying the self-signed certificate.
    let mut config = test_config(None);
    config.tls_verify = false;
    let client = Client::new(config).unwrap();
    assert_eq!(
        client.push(&r, &src, &image.manifest, mt).await.unwrap(),
        image.digest
    );

    // The insecure-registries list of the registries file does the same.
    let file = tmp.path().join("registries.json");
    std::fs::write(
        &file,
        format!(r#"{{"insecure-registries":["{}"]}}"#, reg.addr),
    )
    .unwrap();
    let mut config = test_config(None);
    config.load_registries_file(&file).unwrap();
    let client = Client::new(config).unwrap();
    let dst = FsStore::new(&tmp.path().join("dst"));
    let pulled = client.pull(&r, &linux_amd64(), &dst).await.unwrap();
    assert_eq!(pulled.manifest.digest, image.digest);
    dst.verify_all();

    // And --tls-verify=false against a plain-HTTP registry falls back to HTTP.
    let plain_reg = Registry::start(AuthMode::None).await;
    let mut config = test_config(None);
    config.tls_verify = false;
    let client = Client::new(config).unwrap();
    let r = reference(&plain_reg.addr, "acc/tls:1");
    assert_eq!(
        client.push(&r, &src, &image.manifest, mt).await.unwrap(),
        image.digest
    );
}
