//! Pushing a blob whose digest is not known in advance (a layer compressed on the fly): the
//! bytes stream in one PATCH, hashed as they pass, and the final PUT names the digest.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Body, Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::client::{api_host, expect_success, push_scope, status_error, Client};
use crate::digest::{Algorithm, Digest, Verifier};
use crate::error::{Error, Result, StoreError};
use crate::reference::Reference;

/// Read size when streaming.
const READ_CHUNK: usize = 256 << 10;

impl Client {
    /// Uploads the bytes `open` yields into the reference's repository and returns their
    /// sha256 digest and size. `open` is called again for each retry (it restarts the stream,
    /// e.g. re-runs the compressor). Memory stays flat: nothing is buffered beyond one read.
    pub async fn push_blob_stream<R, F>(
        &self,
        reference: &Reference,
        open: F,
    ) -> Result<(Digest, u64)>
    where
        F: Fn() -> std::result::Result<R, StoreError>,
        R: AsyncRead + Send + Unpin + 'static,
    {
        let max = self.inner.config.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.stream_upload_once(reference, &open).await {
                Err(e) if e.is_transient() && attempt < max => {
                    attempt += 1;
                    tracing::debug!("streamed upload: {e}; restarting");
                    self.backoff(attempt).await;
                }
                other => return other,
            }
        }
    }

    async fn stream_upload_once<R, F>(
        &self,
        reference: &Reference,
        open: &F,
    ) -> Result<(Digest, u64)>
    where
        F: Fn() -> std::result::Result<R, StoreError>,
        R: AsyncRead + Send + Unpin + 'static,
    {
        let registry = reference.domain();
        let path = reference.path().to_string();
        let repository = format!("{}/{}", api_host(registry), path);
        let scope = push_scope(&path);
        let resp = self
            .send_once(registry, &scope, |http, base| {
                Ok(http
                    .post(format!("{base}/v2/{path}/blobs/uploads/"))
                    .header(CONTENT_LENGTH, 0))
            })
            .await?;
        let resp = expect_success(resp, Method::POST, "upload", &repository).await?;
        let location = crate::push::upload_location(&resp)?;

        let verifier = Arc::new(Mutex::new(Verifier::new(Algorithm::Sha256)));
        let reader = open().map_err(Error::Store)?;
        let body = hashing_stream(reader, verifier.clone());
        // The body can be sent once only: wrap it so a retry inside `send_once` (there is
        // none, but the closure must be `Fn`) cannot reuse it.
        let body = Mutex::new(Some(Body::wrap_stream(body)));
        let resp = self
            .send_once(registry, &scope, |http, _| {
                let body =
                    body.lock()
                        .expect("body lock")
                        .take()
                        .ok_or_else(|| Error::Invalid {
                            what: "upload".into(),
                            message: "stream already sent".into(),
                        })?;
                Ok(http
                    .patch(location.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body))
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(Method::PATCH, &location, resp).await);
        }
        let location = crate::push::upload_location(&resp)?;
        let (digest, size) = {
            let v = verifier.lock().expect("verifier lock").clone();
            let size = v.bytes();
            (v.finish(), size)
        };
        let put_url = crate::push::with_digest_param(&location, &digest);
        let resp = self
            .send_once(registry, &scope, |http, _| {
                Ok(http.put(put_url.clone()).header(CONTENT_LENGTH, 0))
            })
            .await?;
        crate::push::finish_upload(resp, &digest).await?;
        Ok((digest, size))
    }
}

/// The reader's bytes as a body stream, hashed and counted on the way.
fn hashing_stream<R: AsyncRead + Send + Unpin + 'static>(
    reader: R,
    verifier: Arc<Mutex<Verifier>>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures::stream::try_unfold(reader, move |mut reader| {
        let verifier = verifier.clone();
        async move {
            let mut buf = vec![0u8; READ_CHUNK];
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            verifier.lock().expect("verifier lock").update(&buf);
            Ok(Some((Bytes::from(buf), reader)))
        }
    })
}
