//! Memory stays flat in the blob size: a 32 MiB layer pushed and pulled through a real
//! registry raises the process's peak RSS by far less than its size. Alone in its own test
//! binary so that no other test's allocations blur the measurement.

mod common;

use std::io::Write;

use common::{test_config, AuthMode, FsStore, Registry};
use kiln_registry::{Client, Digest};
use oci_spec::image::{
    DescriptorBuilder, ImageConfigurationBuilder, ImageManifestBuilder, MediaType, RootFsBuilder,
};
use sha2::Digest as _;

const SIZE: usize = 32 << 20;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_of_a_big_layer_keep_memory_flat() {
    let reg = Registry::start(AuthMode::None).await;
    let tmp = tempfile::tempdir().unwrap();
    let src = FsStore::new(&tmp.path().join("src"));

    // The layer is written to disk in 1 MiB pieces, never held whole.
    let staging = tmp.path().join("layer");
    let mut file = std::fs::File::create(&staging).unwrap();
    let mut hasher = sha2::Sha256::new();
    for i in 0..(SIZE >> 20) {
        let piece = common::noise(1 << 20, i as u64 + 100);
        hasher.update(&piece);
        file.write_all(&piece).unwrap();
    }
    drop(file);
    let layer = Digest::parse(&format!("sha256:{}", hex::encode(hasher.finalize()))).unwrap();
    std::fs::rename(&staging, src.blob_path(&layer)).unwrap();

    let config = ImageConfigurationBuilder::default()
        .architecture("amd64")
        .os("linux")
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![layer.to_string()])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = src.put(&config_bytes);
    let desc = |mt, d: &Digest, size: usize| {
        DescriptorBuilder::default()
            .media_type(mt)
            .digest(d.as_str().parse::<oci_spec::image::Digest>().unwrap())
            .size(size as u64)
            .build()
            .unwrap()
    };
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(desc(
            MediaType::ImageConfig,
            &config_digest,
            config_bytes.len(),
        ))
        .layers(vec![desc(MediaType::ImageLayer, &layer, SIZE)])
        .build()
        .unwrap();
    let manifest = serde_json::to_vec(&manifest).unwrap();

    let client = Client::new(test_config(None)).unwrap();
    let r = kiln_registry::Reference::parse(&format!("{}/acc/big:1", reg.addr)).unwrap();
    let before = peak_rss_kib();
    client
        .push(
            &r,
            &src,
            &manifest,
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
        .unwrap();
    let dst = FsStore::new(&tmp.path().join("dst"));
    let pulled = client
        .pull(&r, &"linux/amd64".parse().unwrap(), &dst)
        .await
        .unwrap();
    let growth_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    eprintln!("peak RSS growth: {growth_mib} MiB");
    assert_eq!(pulled.layers[0].digest, layer);
    dst.verify_all();
    assert!(
        growth_mib < 16,
        "peak RSS grew by {growth_mib} MiB moving a {} MiB layer",
        SIZE >> 20
    );
}
