//! Faults between the client and a real registry: a proxy drops connections mid-blob,
//! truncates and corrupts responses, delays, and answers 500. Every pull and push either
//! succeeds with verified digests or fails with a clear error, and nothing partial is
//! committed to the sink or visible in the registry.

mod common;

use std::time::Duration;

use common::proxy::{Fault, FaultProxy};
use common::{make_image, tar_layer, test_config, AuthMode, FsStore, Registry, TestImage};
use kiln_registry::{Client, ClientConfig, Error, Platform, Reference};

const MT: &str = "application/vnd.oci.image.manifest.v1+json";
const BIG: usize = 2 << 20;

/// A registry holding one image (a 2 MiB layer and a small one), a proxy in front, and the
/// source store.
struct Setup {
    _reg: Registry,
    proxy: FaultProxy,
    tmp: tempfile::TempDir,
    src: FsStore,
    image: TestImage,
    direct: Reference,
    via_proxy: Reference,
}

impl Setup {
    async fn new(push_first: bool) -> Setup {
        let reg = Registry::start(AuthMode::None).await;
        let proxy = FaultProxy::start(&reg.addr).await;
        let tmp = tempfile::tempdir().unwrap();
        let src = FsStore::new(&tmp.path().join("src"));
        let image = make_image(
            &src,
            &[tar_layer("big", BIG, 21), tar_layer("small", 40_000, 22)],
        );
        let direct = Reference::parse(&format!("{}/acc/f:1", reg.addr)).unwrap();
        let via_proxy = Reference::parse(&format!("{}/acc/f:1", proxy.addr)).unwrap();
        if push_first {
            let client = Client::new(test_config(None)).unwrap();
            client
                .push(&direct, &src, &image.manifest, MT)
                .await
                .unwrap();
        }
        Setup {
            _reg: reg,
            proxy,
            tmp,
            src,
            image,
            direct,
            via_proxy,
        }
    }

    fn big_layer(&self) -> String {
        format!("/blobs/{}", self.image.layers[0])
    }

    /// Pulls through the proxy into a fresh store.
    async fn pull(
        &self,
        config: ClientConfig,
    ) -> (kiln_registry::Result<kiln_registry::PulledImage>, FsStore) {
        let dst = FsStore::new(&self.tmp.path().join(format!("dst-{}", rand_suffix())));
        let client = Client::new(config).unwrap();
        let platform: Platform = "linux/amd64".parse().unwrap();
        let result = client.pull(&self.via_proxy, &platform, &dst).await;
        // Whatever happened: no half-written blob anywhere, and every committed blob verifies.
        assert_eq!(dst.in_progress(), 0, "partial blob left behind");
        dst.verify_all();
        (result, dst)
    }

    fn assert_pulled(
        &self,
        result: kiln_registry::Result<kiln_registry::PulledImage>,
        dst: &FsStore,
    ) {
        let pulled = result.expect("pull succeeds despite the fault");
        assert_eq!(pulled.manifest.digest, self.image.digest);
        let mut want: Vec<String> = self
            .image
            .layers
            .iter()
            .map(|d| d.hex().to_string())
            .collect();
        want.push(self.image.config.hex().to_string());
        want.sort();
        assert_eq!(dst.committed(), want);
    }

    /// Pushes through the proxy.
    async fn push(&self, config: ClientConfig) -> kiln_registry::Result<kiln_registry::Digest> {
        let client = Client::new(config).unwrap();
        client
            .push(&self.via_proxy, &self.src, &self.image.manifest, MT)
            .await
    }

    /// Pulls directly (no proxy) and checks the pushed image is complete and verified.
    async fn assert_in_registry(&self) {
        let dst = FsStore::new(&self.tmp.path().join(format!("check-{}", rand_suffix())));
        let client = Client::new(test_config(None)).unwrap();
        let pulled = client
            .pull(&self.direct, &"linux/amd64".parse().unwrap(), &dst)
            .await
            .unwrap();
        assert_eq!(pulled.manifest.digest, self.image.digest);
        assert_eq!(dst.committed().len(), 3);
        dst.verify_all();
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_resumes_a_connection_dropped_mid_blob() {
    let s = Setup::new(true).await;
    s.proxy
        .add("GET", &s.big_layer(), Fault::DropResponseAfter(BIG / 3), 1);
    let (result, dst) = s.pull(test_config(None)).await;
    s.assert_pulled(result, &dst);
    assert_eq!(s.proxy.applied(&Fault::DropResponseAfter(BIG / 3)), 1);
    // Two GETs of the big blob: the broken one and the ranged resume.
    assert_eq!(s.proxy.requests_matching(&s.big_layer()), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_restarts_when_the_registry_ignores_the_range() {
    let s = Setup::new(true).await;
    s.proxy
        .add("GET", &s.big_layer(), Fault::DropResponseAfter(BIG / 2), 1);
    // The resume request loses its Range header: the whole blob comes back with 200.
    s.proxy.add("GET", &s.big_layer(), Fault::StripRange, 1);
    let (result, dst) = s.pull(test_config(None)).await;
    s.assert_pulled(result, &dst);
    assert_eq!(s.proxy.applied(&Fault::StripRange), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_fails_clearly_when_every_attempt_is_cut() {
    let s = Setup::new(true).await;
    s.proxy.add(
        "GET",
        &s.big_layer(),
        Fault::DropResponseAfter(1000),
        usize::MAX,
    );
    let (result, dst) = s.pull(test_config(None)).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert!(
        err.to_string().contains(&s.image.layers[0].to_string()),
        "{err}"
    );
    assert!(!dst
        .committed()
        .contains(&s.image.layers[0].hex().to_string()));
    // Four attempts, as configured.
    assert_eq!(s.proxy.requests_matching(&s.big_layer()), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_retries_500s_then_succeeds() {
    let s = Setup::new(true).await;
    s.proxy.add("GET", &s.big_layer(), Fault::Status500, 2);
    s.proxy.add("GET", "/manifests/", Fault::Status500, 1);
    let (result, dst) = s.pull(test_config(None)).await;
    s.assert_pulled(result, &dst);
    assert_eq!(s.proxy.applied(&Fault::Status500), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_gives_up_on_persistent_500_with_the_registry_message() {
    let s = Setup::new(true).await;
    s.proxy
        .add("GET", "/manifests/", Fault::Status500, usize::MAX);
    let (result, dst) = s.pull(test_config(None)).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, Error::Status { status, .. } if status.as_u16() == 500),
        "{err}"
    );
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(dst.committed().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_survives_a_response_truncated_after_its_headers() {
    let s = Setup::new(true).await;
    s.proxy
        .add("GET", &s.big_layer(), Fault::TruncateAfterHeaders, 1);
    s.proxy
        .add("GET", "/manifests/", Fault::TruncateAfterHeaders, 1);
    let (result, dst) = s.pull(test_config(None)).await;
    s.assert_pulled(result, &dst);
    assert_eq!(s.proxy.applied(&Fault::TruncateAfterHeaders), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_retries_a_stalled_response() {
    let s = Setup::new(true).await;
    let mut config = test_config(None);
    config.read_timeout = Duration::from_millis(500);
    s.proxy.add(
        "GET",
        &s.big_layer(),
        Fault::Delay(Duration::from_millis(1500)),
        1,
    );
    let (result, dst) = s.pull(config).await;
    s.assert_pulled(result, &dst);
    assert_eq!(s.proxy.requests_matching(&s.big_layer()), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_rejects_corrupted_blobs_and_commits_nothing_of_them() {
    let s = Setup::new(true).await;
    s.proxy.add(
        "GET",
        &s.big_layer(),
        Fault::CorruptByte(BIG / 2),
        usize::MAX,
    );
    let (result, dst) = s.pull(test_config(None)).await;
    let err = result.unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { expected, .. } if *expected == s.image.layers[0]),
        "{err}"
    );
    assert!(!dst
        .committed()
        .contains(&s.image.layers[0].hex().to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_rejects_a_corrupted_manifest() {
    let s = Setup::new(true).await;
    s.proxy
        .add("GET", "/manifests/", Fault::CorruptByte(30), usize::MAX);
    let (result, dst) = s.pull(test_config(None)).await;
    let err = result.unwrap_err();
    // The registry announces the digest; the corrupted bytes do not match it.
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(dst.committed().is_empty());
    // By digest too.
    let client = Client::new(test_config(None)).unwrap();
    let err = client
        .fetch_manifest(&s.via_proxy, s.image.digest.as_str())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_retries_an_upload_cut_mid_blob() {
    let s = Setup::new(false).await;
    s.proxy.add(
        "PUT",
        "/blobs/uploads/",
        Fault::DropRequestAfter(BIG / 2),
        1,
    );
    s.proxy.add("PUT", "/manifests/", Fault::Status500, 1);
    let digest = s.push(test_config(None)).await.unwrap();
    assert_eq!(digest, s.image.digest);
    assert_eq!(s.proxy.applied(&Fault::DropRequestAfter(BIG / 2)), 1);
    assert_eq!(s.proxy.applied(&Fault::Status500), 1);
    s.assert_in_registry().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_push_retries_a_failed_patch() {
    let s = Setup::new(false).await;
    let mut config = test_config(None);
    config.chunk_size = Some(512 << 10);
    s.proxy.add(
        "PATCH",
        "/blobs/uploads/",
        Fault::DropRequestAfter(100_000),
        1,
    );
    s.proxy.add("PATCH", "/blobs/uploads/", Fault::Status500, 1);
    let digest = s.push(config).await.unwrap();
    assert_eq!(digest, s.image.digest);
    assert!(
        s.proxy.requests_matching("PATCH") >= 5,
        "the big blob went in chunks"
    );
    s.assert_in_registry().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_that_keeps_failing_leaves_no_manifest() {
    let s = Setup::new(false).await;
    s.proxy.add(
        "PUT",
        "/blobs/uploads/",
        Fault::DropRequestAfter(10_000),
        usize::MAX,
    );
    let err = s.push(test_config(None)).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    // No manifest was pushed: the tag does not exist.
    assert_eq!(s.proxy.requests_matching("PUT /v2/acc/f/manifests/"), 0);
    let client = Client::new(test_config(None)).unwrap();
    let err = client.fetch_manifest(&s.direct, "1").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    // Nor is the cut blob.
    let err = client
        .pull(
            &s.direct.with_digest(s.image.digest.clone()),
            &"linux/amd64".parse().unwrap(),
            &FsStore::new(&s.tmp.path().join("x")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_push_of_unknown_digest_restarts_when_cut() {
    let s = Setup::new(false).await;
    s.proxy.add(
        "PATCH",
        "/blobs/uploads/",
        Fault::DropRequestAfter(BIG / 4),
        1,
    );
    let client = Client::new(test_config(None)).unwrap();
    let opened = std::sync::atomic::AtomicUsize::new(0);
    // The layers go up as streams whose digest the client computes; then the manifest.
    for layer in &s.image.layers {
        let path = s.src.blob_path(layer);
        let (digest, size) = client
            .push_blob_stream(&s.via_proxy, || {
                opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(tokio::fs::File::from_std(std::fs::File::open(&path)?))
            })
            .await
            .unwrap();
        assert_eq!(&digest, layer);
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
    }
    // The big layer was opened twice: the cut attempt and the retry.
    assert_eq!(opened.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert_eq!(s.proxy.applied(&Fault::DropRequestAfter(BIG / 4)), 1);
    s.push(test_config(None)).await.unwrap();
    s.assert_in_registry().await;
}
