//! Pull: resolve a reference to a manifest, then stream and verify its blobs into a sink.

use futures::{StreamExt, TryStreamExt};
use reqwest::header::{ACCEPT, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::{Method, StatusCode};

use crate::client::{api_host, expect_success, pull_scope, read_limited, Client};
use crate::digest::{Digest, Verifier};
use crate::error::{Error, Result};
use crate::manifest::{
    self, descriptor_digest, descriptor_size, ManifestBytes, Parsed, Platform,
    ACCEPTED_MANIFEST_TYPES, MAX_MANIFEST_SIZE,
};
use crate::progress::{report, BlobEvent};
use crate::reference::Reference;
use crate::sink::{BlobSink, BlobWriter};

/// One blob of a pulled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type (`application/vnd.oci.image.layer.v1.tar+gzip`, ...).
    pub media_type: String,
}

/// What a pull produced. The config and layers are committed to the sink; the manifests are
/// handed back for the store to keep under the image's name.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The reference pinned to the manifest's digest.
    pub reference: Reference,
    /// The index or manifest list the tag pointed at, if it was one.
    pub index: Option<ManifestBytes>,
    /// The image manifest for the chosen platform.
    pub manifest: ManifestBytes,
    /// The image config blob (also committed to the sink).
    pub config: BlobInfo,
    /// The config's JSON.
    pub config_bytes: Vec<u8>,
    /// The layers in order.
    pub layers: Vec<BlobInfo>,
}

impl Client {
    /// Fetches a manifest or index by tag or digest, verifying its digest.
    pub async fn fetch_manifest(
        &self,
        reference: &Reference,
        tag_or_digest: &str,
    ) -> Result<ManifestBytes> {
        // One loop retries everything transient: the request, a 5xx, a body cut short.
        let max = self.inner.config.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.fetch_manifest_once(reference, tag_or_digest).await {
                Err(e) if e.is_transient() && attempt < max => {
                    attempt += 1;
                    tracing::debug!("manifest {tag_or_digest}: {e}; retrying");
                    self.backoff(attempt).await;
                }
                other => return other,
            }
        }
    }

    async fn fetch_manifest_once(
        &self,
        reference: &Reference,
        tag_or_digest: &str,
    ) -> Result<ManifestBytes> {
        let registry = reference.domain();
        let path = reference.path().to_string();
        let repository = format!("{}/{}", api_host(registry), path);
        let resp = self
            .send_once(registry, &pull_scope(&path), |http, base| {
                let mut req = http.get(format!("{base}/v2/{path}/manifests/{tag_or_digest}"));
                for t in ACCEPTED_MANIFEST_TYPES {
                    req = req.header(ACCEPT, t);
                }
                Ok(req)
            })
            .await?;
        let resp = expect_success(
            resp,
            Method::GET,
            &format!("manifest {tag_or_digest}"),
            &repository,
        )
        .await?;
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok());
        let url = resp.url().to_string();
        let bytes = read_limited(resp, MAX_MANIFEST_SIZE, &url).await?;
        // Never trust: the bytes must hash to the digest asked for, else to the one announced.
        let expected = Digest::parse(tag_or_digest).ok().or(header_digest);
        let actual = match &expected {
            Some(e) => {
                let mut v = Verifier::new(e.algorithm());
                v.update(&bytes);
                v.finish()
            }
            None => Digest::sha256_of(&bytes),
        };
        if let Some(expected) = expected {
            if expected != actual {
                return Err(Error::DigestMismatch { expected, actual });
            }
        }
        let (media_type, _) = manifest::parse(content_type.as_deref(), &bytes)?;
        Ok(ManifestBytes {
            digest: actual,
            media_type,
            bytes,
        })
    }

    /// Pulls `reference` for `platform`: resolves the tag, picks the platform from an index,
    /// streams the config and layers into `sink` (skipping blobs it has, several at once,
    /// verifying each before it is committed) and returns the manifests.
    pub async fn pull<S: BlobSink>(
        &self,
        reference: &Reference,
        platform: &Platform,
        sink: &S,
    ) -> Result<PulledImage> {
        let top = self
            .fetch_manifest(reference, &reference.manifest_reference())
            .await?;
        let (index, manifest_bytes) = if manifest::is_index(&top.media_type) {
            let (_, Parsed::Index(idx)) = manifest::parse(Some(&top.media_type), &top.bytes)?
            else {
                unreachable!("is_index checked the media type")
            };
            let chosen = manifest::select_platform(&idx, platform).ok_or_else(|| {
                Error::NoMatchingPlatform {
                    reference: reference.to_string(),
                    wanted: platform.to_string(),
                    available: manifest::list_platforms(&idx),
                }
            })?;
            let digest = descriptor_digest(chosen)?;
            let child = self.fetch_manifest(reference, digest.as_str()).await?;
            if manifest::is_index(&child.media_type) {
                return Err(Error::Invalid {
                    what: "index".into(),
                    message: format!("{digest} is an index inside an index"),
                });
            }
            (Some(top), child)
        } else {
            (None, top)
        };
        let (_, parsed) = manifest::parse(Some(&manifest_bytes.media_type), &manifest_bytes.bytes)?;
        let Parsed::Image(image) = parsed else {
            unreachable!("media type is an image manifest")
        };
        let info = |d: &oci_spec::image::Descriptor| -> Result<BlobInfo> {
            Ok(BlobInfo {
                digest: descriptor_digest(d)?,
                size: descriptor_size(d)?,
                media_type: d.media_type().to_string(),
            })
        };
        let config = info(image.config())?;
        let layers = image
            .layers()
            .iter()
            .map(info)
            .collect::<Result<Vec<_>>>()?;

        // The config is small and its bytes are returned: fetch it into memory, verified.
        let config_bytes = self.fetch_small_blob(reference, &config).await?;
        if !sink.contains(&config.digest).map_err(Error::Store)? {
            let mut w = sink
                .begin(&config.digest, config.size)
                .map_err(Error::Store)?;
            w.write(&config_bytes).map_err(Error::Store)?;
            w.commit().map_err(Error::Store)?;
        }

        sink.record_source(
            &config.digest,
            &format!("{}/{}", reference.domain(), reference.path()),
        );
        // A layer listed twice is fetched once.
        let mut unique: Vec<&BlobInfo> = Vec::new();
        for l in &layers {
            if !unique.iter().any(|u| u.digest == l.digest) {
                unique.push(l);
            }
        }
        let concurrency = self.inner.config.concurrency.max(1);
        futures::stream::iter(
            unique
                .into_iter()
                .map(|l| self.fetch_blob(reference, l, sink)),
        )
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;

        Ok(PulledImage {
            reference: reference.with_digest(manifest_bytes.digest.clone()),
            index,
            manifest: manifest_bytes,
            config,
            config_bytes,
            layers,
        })
    }

    /// Fetches a small blob (a config) into memory, verified.
    async fn fetch_small_blob(&self, reference: &Reference, blob: &BlobInfo) -> Result<Vec<u8>> {
        if blob.size > MAX_MANIFEST_SIZE as u64 * 4 {
            return Err(Error::Invalid {
                what: "config".into(),
                message: format!("{} is {} bytes", blob.digest, blob.size),
            });
        }
        let mut buf = Vec::with_capacity(blob.size as usize);
        self.download(reference, blob, &mut VecWriter(&mut buf), false)
            .await?;
        Ok(buf)
    }

    /// Streams one blob of the reference's repository into the sink unless it has it, and
    /// commits it only once verified (for cache manifests and other non-image content).
    pub async fn fetch_blob<S: BlobSink>(
        &self,
        reference: &Reference,
        blob: &BlobInfo,
        sink: &S,
    ) -> Result<()> {
        let progress = &self.inner.config.progress;
        let repository = format!("{}/{}", reference.domain(), reference.path());
        if sink.contains(&blob.digest).map_err(Error::Store)? {
            report(progress, &blob.digest, BlobEvent::Exists);
            return Ok(());
        }
        report(
            progress,
            &blob.digest,
            BlobEvent::Waiting { total: blob.size },
        );
        let mut writer = sink.begin(&blob.digest, blob.size).map_err(Error::Store)?;
        // On error `writer` is dropped uncommitted, which discards it.
        self.download(reference, blob, &mut writer, true).await?;
        writer.commit().map_err(Error::Store)?;
        sink.record_source(&blob.digest, &repository);
        report(progress, &blob.digest, BlobEvent::Done);
        Ok(())
    }

    /// Downloads a blob into `writer`, verifying size and digest; resumes a broken transfer
    /// with a range request (or restarts when the registry ignores ranges).
    async fn download<W: BlobWriter>(
        &self,
        reference: &Reference,
        blob: &BlobInfo,
        writer: &mut W,
        with_progress: bool,
    ) -> Result<()> {
        let registry = reference.domain();
        let path = reference.path().to_string();
        let repository = format!("{}/{}", api_host(registry), path);
        let progress = if with_progress {
            &self.inner.config.progress
        } else {
            &None
        };
        let max = self.inner.config.max_attempts.max(1);
        let digest = &blob.digest;
        let mut verifier = Verifier::new(digest.algorithm());
        let mut attempt = 1;
        loop {
            let start = verifier.bytes();
            let outcome: Result<()> = async {
                let resp = self
                    .send_once(registry, &pull_scope(&path), |http, base| {
                        let mut req = http.get(format!("{base}/v2/{path}/blobs/{digest}"));
                        if start > 0 {
                            req = req.header(RANGE, format!("bytes={start}-"));
                        }
                        Ok(req)
                    })
                    .await?;
                let resp =
                    expect_success(resp, Method::GET, &format!("blob {digest}"), &repository)
                        .await?;
                if start > 0 {
                    let resumed = resp.status() == StatusCode::PARTIAL_CONTENT
                        && resp
                            .headers()
                            .get(CONTENT_RANGE)
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|v| v.starts_with(&format!("bytes {start}-")));
                    if !resumed {
                        // The registry sent the whole blob again: start over.
                        writer.restart().map_err(Error::Store)?;
                        verifier = Verifier::new(digest.algorithm());
                    }
                }
                let url = resp.url().to_string();
                let mut stream = resp.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|source| Error::Transport {
                        url: url.clone(),
                        error: source,
                    })?;
                    if verifier.bytes() + chunk.len() as u64 > blob.size {
                        return Err(Error::SizeMismatch {
                            digest: digest.clone(),
                            expected: blob.size,
                            actual: verifier.bytes() + chunk.len() as u64,
                        });
                    }
                    verifier.update(&chunk);
                    writer.write(&chunk).map_err(Error::Store)?;
                    report(
                        progress,
                        digest,
                        BlobEvent::Transferring {
                            done: verifier.bytes(),
                            total: blob.size,
                        },
                    );
                }
                Ok(())
            }
            .await;
            match outcome {
                Ok(()) => break,
                Err(e) if e.is_transient() && attempt < max => {
                    attempt += 1;
                    report(
                        progress,
                        digest,
                        BlobEvent::Retrying {
                            attempt,
                            resume_at: verifier.bytes(),
                            reason: e.to_string(),
                        },
                    );
                    tracing::debug!("{digest}: {e}; retrying from byte {}", verifier.bytes());
                    self.backoff(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
        if verifier.bytes() != blob.size {
            return Err(Error::SizeMismatch {
                digest: digest.clone(),
                expected: blob.size,
                actual: verifier.bytes(),
            });
        }
        let actual = verifier.finish();
        if &actual != digest {
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// A writer into memory, for small blobs.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl BlobWriter for VecWriter<'_> {
    fn write(&mut self, chunk: &[u8]) -> std::result::Result<(), crate::error::StoreError> {
        self.0.extend_from_slice(chunk);
        Ok(())
    }
    fn restart(&mut self) -> std::result::Result<(), crate::error::StoreError> {
        self.0.clear();
        Ok(())
    }
    fn commit(self) -> std::result::Result<(), crate::error::StoreError> {
        Ok(())
    }
}
