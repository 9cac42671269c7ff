//! Push: blobs first (skipping existing ones, mounting from sibling repositories, in parallel,
//! streamed), the manifest last.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Body, Method, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::client::{api_host, expect_success, push_scope, status_error, Client};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{self, descriptor_digest, descriptor_size, Parsed};
use crate::progress::{report, BlobEvent, ProgressFn};
use crate::reference::Reference;
use crate::sink::BlobSource;

/// Read size when streaming a blob to the registry.
const READ_CHUNK: usize = 256 << 10;

impl Client {
    /// Pushes an image: every blob the manifest names (and, for an index, every child
    /// manifest, read from `source` by digest), then the manifest under the reference's tag
    /// (or digest). Returns the manifest's digest as the registry acknowledged it.
    pub async fn push<S: BlobSource>(
        &self,
        reference: &Reference,
        source: &S,
        manifest_bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest> {
        let (media_type, parsed) = manifest::parse(Some(media_type), manifest_bytes)?;
        match parsed {
            Parsed::Image(image) => {
                let mut blobs = vec![image.config().clone()];
                blobs.extend(image.layers().iter().cloned());
                self.push_blobs(reference, source, &blobs).await?;
            }
            Parsed::Index(index) => {
                for child in index.manifests() {
                    let digest = descriptor_digest(child)?;
                    let bytes = read_all(source, &digest, descriptor_size(child)?).await?;
                    let child_digest = Box::pin(self.push(
                        &reference.with_digest(digest.clone()),
                        source,
                        &bytes,
                        child.media_type().as_ref(),
                    ))
                    .await?;
                    if child_digest != digest {
                        return Err(Error::DigestMismatch {
                            expected: digest,
                            actual: child_digest,
                        });
                    }
                }
            }
        }
        self.put_manifest(reference, manifest_bytes, &media_type)
            .await
    }

    async fn push_blobs<S: BlobSource>(
        &self,
        reference: &Reference,
        source: &S,
        blobs: &[oci_spec::image::Descriptor],
    ) -> Result<()> {
        let mut list = Vec::new();
        for d in blobs {
            let pair = (descriptor_digest(d)?, descriptor_size(d)?);
            if !list.contains(&pair) {
                list.push(pair);
            }
        }
        let concurrency = self.inner.config.concurrency.max(1);
        futures::stream::iter(
            list.iter()
                .map(|(d, s)| self.push_blob(reference, source, d, *s)),
        )
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }

    /// Pushes one blob unless the registry has it; mounts it when a sibling repository has it.
    async fn push_blob<S: BlobSource>(
        &self,
        reference: &Reference,
        source: &S,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        let progress = &self.inner.config.progress;
        let registry = reference.domain();
        let path = reference.path().to_string();
        let repository = format!("{}/{}", api_host(registry), path);
        let scope = push_scope(&path);
        let resp = self
            .send(registry, &scope, |http, base| {
                Ok(http.head(format!("{base}/v2/{path}/blobs/{digest}")))
            })
            .await?;
        if resp.status().is_success() {
            report(progress, digest, BlobEvent::Exists);
            return Ok(());
        }
        if resp.status() != StatusCode::NOT_FOUND {
            expect_success(resp, Method::HEAD, &format!("blob {digest}"), &repository).await?;
        }
        report(progress, digest, BlobEvent::Waiting { total: size });

        let max = self.inner.config.max_attempts.max(1);
        let mut attempt = 1;
        let mut mounts = source.mount_candidates(digest, registry);
        mounts.retain(|from| from != &path);
        loop {
            let result = self
                .upload_once(reference, source, digest, size, &mut mounts)
                .await;
            match result {
                Ok(()) => break,
                Err(e) if e.is_transient() && attempt < max => {
                    attempt += 1;
                    report(
                        progress,
                        digest,
                        BlobEvent::Retrying {
                            attempt,
                            resume_at: 0,
                            reason: e.to_string(),
                        },
                    );
                    self.backoff(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
        report(progress, digest, BlobEvent::Done);
        Ok(())
    }

    /// One upload session: try mounts, else start an upload and send the blob (whole or in chunks).
    async fn upload_once<S: BlobSource>(
        &self,
        reference: &Reference,
        source: &S,
        digest: &Digest,
        size: u64,
        mounts: &mut Vec<String>,
    ) -> Result<()> {
        let progress = &self.inner.config.progress;
        let registry = reference.domain();
        let path = reference.path().to_string();
        let repository = format!("{}/{}", api_host(registry), path);
        let mut location = None;
        while let Some(from) = mounts.first().cloned() {
            let scope = format!("{} repository:{from}:pull", push_scope(&path));
            let resp = self
                .send(registry, &scope, |http, base| {
                    Ok(http
                        .post(format!("{base}/v2/{path}/blobs/uploads/"))
                        .query(&[("mount", digest.as_str()), ("from", from.as_str())])
                        .header(CONTENT_LENGTH, 0))
                })
                .await?;
            // A mount that failed is not tried again in later attempts.
            mounts.remove(0);
            match resp.status() {
                StatusCode::CREATED => {
                    report(progress, digest, BlobEvent::Mounted { from });
                    return Ok(());
                }
                StatusCode::ACCEPTED => {
                    // The registry could not mount and opened an ordinary upload instead.
                    location = Some(upload_location(&resp)?);
                    break;
                }
                _ => {
                    tracing::debug!("mount of {digest} from {from}: {}", resp.status());
                }
            }
        }
        let scope = push_scope(&path);
        let location = match location {
            Some(l) => l,
            None => {
                let resp = self
                    .send(registry, &scope, |http, base| {
                        Ok(http
                            .post(format!("{base}/v2/{path}/blobs/uploads/"))
                            .header(CONTENT_LENGTH, 0))
                    })
                    .await?;
                let resp = expect_success(resp, Method::POST, "upload", &repository).await?;
                upload_location(&resp)?
            }
        };
        let chunked = self.inner.config.chunk_size.filter(|c| *c > 0 && size > *c);
        let done = Arc::new(AtomicU64::new(0));
        let final_location = match chunked {
            None => location,
            Some(chunk) => {
                self.patch_chunks(reference, source, digest, size, chunk, location)
                    .await?
            }
        };
        let put_url = with_digest_param(&final_location, digest);
        let monolithic = chunked.is_none();
        let resp = self
            .send_once(registry, &scope, |http, _base| {
                let req = http.put(put_url.clone());
                if !monolithic {
                    return Ok(req.header(CONTENT_LENGTH, 0));
                }
                done.store(0, Ordering::Relaxed);
                let reader = source.open(digest).map_err(Error::Store)?;
                let body = Body::wrap_stream(progress_stream(
                    reader,
                    digest.clone(),
                    size,
                    done.clone(),
                    progress.clone(),
                ));
                Ok(req
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(body))
            })
            .await?;
        finish_upload(resp, digest).await
    }

    /// Sends the blob in PATCH requests of `chunk` bytes; returns the location for the final PUT.
    async fn patch_chunks<S: BlobSource>(
        &self,
        reference: &Reference,
        source: &S,
        digest: &Digest,
        size: u64,
        chunk: u64,
        mut location: String,
    ) -> Result<String> {
        let progress = &self.inner.config.progress;
        let registry = reference.domain();
        let scope = push_scope(reference.path());
        let mut reader = source.open(digest).map_err(Error::Store)?;
        let mut offset = 0u64;
        while offset < size {
            let len = chunk.min(size - offset);
            // One chunk in memory at a time: a PATCH must be resendable, and memory stays
            // bounded by the chunk size whatever the blob size.
            let mut buf = vec![0u8; len as usize];
            reader
                .read_exact(&mut buf)
                .await
                .map_err(|e| Error::Store(Box::new(e)))?;
            let data = Bytes::from(buf);
            let range = format!("{}-{}", offset, offset + len - 1);
            let url = location.clone();
            let resp = self
                .send_once(registry, &scope, |http, _| {
                    Ok(http
                        .patch(url.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_RANGE, range.clone())
                        .header(CONTENT_LENGTH, len)
                        .body(data.clone()))
                })
                .await?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(status_error(Method::PATCH, &url, resp).await);
            }
            location = upload_location(&resp)?;
            offset += len;
            report(
                progress,
                digest,
                BlobEvent::Transferring {
                    done: offset,
                    total: size,
                },
            );
        }
        Ok(location)
    }

    /// PUTs the manifest; checks the digest the registry answers with.
    async fn put_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest> {
        let registry = reference.domain();
        let path = reference.path().to_string();
        let repository = format!("{}/{}", api_host(registry), path);
        let target = reference.manifest_reference();
        let body = Bytes::copy_from_slice(bytes);
        let resp = self
            .send(registry, &push_scope(&path), |http, base| {
                Ok(http
                    .put(format!("{base}/v2/{path}/manifests/{target}"))
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone()))
            })
            .await?;
        let resp = expect_success(
            resp,
            Method::PUT,
            &format!("manifest {target}"),
            &repository,
        )
        .await?;
        let ours = Digest::sha256_of(bytes);
        if let Some(theirs) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok())
        {
            if theirs != ours {
                return Err(Error::DigestMismatch {
                    expected: ours,
                    actual: theirs,
                });
            }
        }
        Ok(ours)
    }
}

/// The upload URL from a `Location` header, made absolute against the response's URL.
pub(crate) fn upload_location(resp: &Response) -> Result<String> {
    let value = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Invalid {
            what: "upload response".into(),
            message: format!("{}: no Location header", resp.url()),
        })?;
    resp.url()
        .join(value)
        .map(|u| u.to_string())
        .map_err(|e| Error::Invalid {
            what: "upload response".into(),
            message: format!("bad Location {value:?}: {e}"),
        })
}

/// Adds `digest=` to an upload URL, keeping its query (`_state=...`).
pub(crate) fn with_digest_param(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!(
        "{location}{sep}digest={}",
        digest.as_str().replace(':', "%3A")
    )
}

pub(crate) async fn finish_upload(resp: Response, digest: &Digest) -> Result<()> {
    if resp.status() == StatusCode::CREATED || resp.status().is_success() {
        if let Some(theirs) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok())
        {
            if &theirs != digest {
                return Err(Error::DigestMismatch {
                    expected: digest.clone(),
                    actual: theirs,
                });
            }
        }
        return Ok(());
    }
    let url = resp.url().to_string();
    Err(status_error(Method::PUT, &url, resp).await)
}

/// A blob's bytes as a body stream, counting progress.
fn progress_stream<R: AsyncRead + Send + Unpin + 'static>(
    reader: R,
    digest: Digest,
    total: u64,
    done: Arc<AtomicU64>,
    progress: Option<ProgressFn>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures::stream::try_unfold(reader, move |mut reader| {
        let digest = digest.clone();
        let done = done.clone();
        let progress = progress.clone();
        async move {
            let mut buf = vec![0u8; READ_CHUNK];
            let n = reader.read(&mut buf).await?;
            let sent = done.load(Ordering::Relaxed);
            // A source that does not give the size it announced will not on a retry either
            // (a remembered gzip digest another compressor made): InvalidData, which
            // `Error::is_transient` does not retry, instead of the server's "early end".
            if n == 0 && sent < total {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the source of {digest} ended after {sent} of its {total} bytes"),
                ));
            }
            if sent + n as u64 > total {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the source of {digest} holds more than its {total} bytes"),
                ));
            }
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            let now = done.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            report(
                &progress,
                &digest,
                BlobEvent::Transferring { done: now, total },
            );
            Ok(Some((Bytes::from(buf), reader)))
        }
    })
}

/// Reads a small blob (a child manifest) whole, checking its size.
async fn read_all<S: BlobSource>(source: &S, digest: &Digest, size: u64) -> Result<Vec<u8>> {
    if size > manifest::MAX_MANIFEST_SIZE as u64 {
        return Err(Error::Invalid {
            what: "manifest".into(),
            message: format!("{digest} is {size} bytes"),
        });
    }
    let mut reader = source.open(digest).map_err(Error::Store)?;
    let mut buf = Vec::new();
    reader
        .read_to_end(&mut buf)
        .await
        .map_err(|e| Error::Store(Box::new(e)))?;
    let actual = Digest::sha256_of(&buf);
    if &actual != digest {
        return Err(Error::DigestMismatch {
            expected: digest.clone(),
            actual,
        });
    }
    Ok(buf)
}
