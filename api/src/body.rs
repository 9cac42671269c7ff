//! Request bodies: JSON (whole, with a size limit) or a stream read as a blocking
//! `std::io::Read` (build contexts and image archives, chunked and of any size).

use std::io;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::error::ApiError;

/// The largest JSON body accepted: a container create body is about 2 kB.
pub const JSON_LIMIT: usize = 1 << 20;

/// How many body chunks may wait between the socket and a [`BodyReader`]: memory stays flat
/// whatever the body's size.
const READ_AHEAD_CHUNKS: usize = 8;

/// Reads the whole body, at most `limit` bytes (more is a 413 with docker's JSON).
pub async fn collect<B>(body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

/// The body decoded as JSON of type `T` (at most [`JSON_LIMIT`] bytes).
pub async fn json<T, B>(body: B) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    decode_json(&collect(body, JSON_LIMIT).await?)
}

/// Decodes a JSON body as dockerd words its errors: empty is `invalid JSON: got EOF while
/// reading request body`, a syntax or type error is `invalid JSON: <what and where>`.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid JSON: got EOF while reading request body",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// Like [`decode_json`], but an empty body is `T::default()` (optional bodies such as
/// `POST /containers/{id}/start`'s).
pub fn decode_json_or_default<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    decode_json(bytes)
}

/// A request body as a blocking reader, for an engine operation on a `spawn_blocking`
/// thread. A task on the runtime pulls chunks off the socket into a bounded channel, so at
/// most a few chunks are in memory. Reading it on a runtime thread panics (it blocks).
pub struct BodyReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl BodyReader {
    /// Starts pulling `body`. Must be called within the tokio runtime.
    pub fn new<B>(body: B) -> BodyReader
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (tx, rx) = mpsc::channel(READ_AHEAD_CHUNKS);
        tokio::spawn(async move {
            let mut body = body;
            while let Some(frame) = body.frame().await {
                let item = match frame {
                    Ok(frame) => match frame.into_data() {
                        Ok(data) if data.is_empty() => continue,
                        Ok(data) => Ok(data),
                        Err(_trailers) => continue,
                    },
                    Err(e) => Err(io::Error::other(e)),
                };
                let failed = item.is_err();
                // A reader that stopped reading drops its end: stop pulling.
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        BodyReader {
            chunks: rx,
            current: Bytes::new(),
        }
    }

    /// The body of a [`crate::Call`] as a reader.
    pub fn from_incoming(body: Incoming) -> BodyReader {
        BodyReader::new(body)
    }
}

impl io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use http_body_util::Full;

    use super::*;

    #[derive(Debug, serde::Deserialize, Default)]
    #[allow(dead_code)]
    struct Create {
        #[serde(rename = "Image")]
        image: String,
        #[serde(rename = "Tty", default)]
        tty: bool,
    }

    #[test]
    fn json_errors_are_docker_shaped() {
        let ok: Create = decode_json(br#"{"Image":"busybox","Tty":true}"#).unwrap();
        assert_eq!(ok.image, "busybox");
        let empty = decode_json::<Create>(b" ").unwrap_err();
        assert_eq!(
            empty.message,
            "invalid JSON: got EOF while reading request body"
        );
        let bad = decode_json::<Create>(b"{\"Image\":").unwrap_err();
        assert_eq!(bad.status, 400);
        assert!(bad.message.starts_with("invalid JSON: "), "{}", bad.message);
        let wrong_type = decode_json::<Create>(br#"{"Image":"x","Tty":"yes"}"#).unwrap_err();
        assert!(
            wrong_type.message.contains("invalid type"),
            "{}",
            wrong_type.message
        );
        let none: Create = decode_json_or_default(b"").unwrap();
        assert_eq!(none.image, "");
    }

    #[tokio::test]
    async fn the_limit_holds() {
        let under = collect(Full::new(Bytes::from(vec![b' '; 100])), 100).await;
        assert_eq!(under.unwrap().len(), 100);
        let over = collect(Full::new(Bytes::from(vec![b' '; 101])), 100).await;
        assert_eq!(over.unwrap_err().status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streamed_body_reads_in_order() {
        // 64 chunks through a read-ahead of 8: the producer waits for the reader.
        let (tx, body) = crate::stream::ChannelBody::channel(1);
        tokio::spawn(async move {
            for i in 0..64u8 {
                if tx.send(Bytes::from(vec![i; 1000])).await.is_err() {
                    return;
                }
            }
        });
        let reader = BodyReader::new(body);
        let all = tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            let mut out = Vec::new();
            reader.read_to_end(&mut out).map(|_| out)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(all.len(), 64_000);
        assert!(all
            .chunks(1000)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&b| b == i as u8)));
    }
}
