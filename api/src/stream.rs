//! Docker's streaming responses: the JSON-lines message stream (build, pull, push, load)
//! and the stdcopy multiplexed frames (attach and logs when the container has no TTY).
//!
//! A stream is fed from a channel, so a blocking engine operation on a `spawn_blocking`
//! thread can send into it; each message is one chunk, written to the socket as it comes.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::Body;

/// How many messages may wait for a slow client before the sender blocks.
const STREAM_BUFFER: usize = 64;

/// A response body fed by a channel of chunks; it ends when every sender is dropped.
pub struct ChannelBody {
    chunks: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A sender and the body it feeds, at most `buffer` chunks in flight.
    pub fn channel(buffer: usize) -> (mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, rx) = mpsc::channel(buffer);
        (tx, ChannelBody { chunks: rx })
    }

    /// As the boxed [`Body`] of a response.
    pub fn boxed(self) -> Body {
        BodyExt::boxed(self)
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// `progressDetail` of a status message: bytes done of a total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProgressDetail {
    /// Bytes done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// Bytes in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// `errorDetail` of an error message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    /// The exit code the CLI exits with (a failed RUN's own status); the CLI uses 1 without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The message.
    pub message: String,
}

/// One line of docker's JSON message stream (moby's `jsonmessage.JSONMessage`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JsonMessage {
    /// Text the CLI prints as-is (build output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// A status line (`Pushing`, `Pull complete`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// What the status is about (a short layer digest, a tag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Numbers behind the progress bar.
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    /// The rendered bar, `[==>  ] 1MB/2MB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Structured data (`{"ID":"sha256:..."}` after a build).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
    /// A failure: the stream's last message.
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    /// The failure's message again (older clients read this).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl JsonMessage {
    /// `{"stream": text}`.
    pub fn stream(text: impl Into<String>) -> JsonMessage {
        JsonMessage {
            stream: Some(text.into()),
            ..JsonMessage::default()
        }
    }

    /// `{"status": status, "id": id}` (no id when `None`).
    pub fn status(status: impl Into<String>, id: Option<String>) -> JsonMessage {
        JsonMessage {
            status: Some(status.into()),
            id,
            ..JsonMessage::default()
        }
    }

    /// A status with progress: `progressDetail` and the bar docker draws.
    pub fn progress(
        status: impl Into<String>,
        id: String,
        current: u64,
        total: u64,
    ) -> JsonMessage {
        JsonMessage {
            status: Some(status.into()),
            id: Some(id),
            progress_detail: Some(ProgressDetail {
                current: Some(current),
                total: Some(total),
            }),
            progress: Some(progress_bar(current, total)),
            ..JsonMessage::default()
        }
    }

    /// `{"aux": value}`.
    pub fn aux(value: serde_json::Value) -> JsonMessage {
        JsonMessage {
            aux: Some(value),
            ..JsonMessage::default()
        }
    }

    /// `{"errorDetail":{"code":N,"message":M},"error":M}`.
    pub fn error(code: Option<i32>, message: impl Into<String>) -> JsonMessage {
        let message = message.into();
        JsonMessage {
            error_detail: Some(ErrorDetail {
                code,
                message: message.clone(),
            }),
            error: Some(message),
            ..JsonMessage::default()
        }
    }

    /// The message as one line of JSON, newline included.
    pub fn to_line(&self) -> Bytes {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        line.push(b'\n');
        Bytes::from(line)
    }
}

/// Docker's progress bar: 50 columns, `=` done, `>` the head, then `current/total` in
/// decimal units (`[=====>     ] 1.2MB/2.4MB`).
pub fn progress_bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    if total == 0 {
        return human_bytes(current);
    }
    // u128: current * 50 overflows u64 for sizes above 368 PB.
    let done = (u128::from(current.min(total)) * u128::from(WIDTH) / u128::from(total)) as usize;
    let mut bar = "=".repeat(done);
    if done < WIDTH as usize {
        bar.push('>');
    }
    format!(
        "[{bar:<width$}] {}/{}",
        human_bytes(current),
        human_bytes(total),
        width = WIDTH as usize
    )
}

/// Sizes as docker's `units.HumanSize` (decimal, 4 significant digits): `1.024kB`, `5MB`.
pub fn human_bytes(n: u64) -> String {
    kiln_engine::events::human_size(n, 4)
}

/// The sending end of a JSON message stream. `send` is async; `send_blocking` is for a
/// `spawn_blocking` thread. Both return false once the client has gone away.
#[derive(Clone)]
pub struct JsonStream {
    tx: mpsc::Sender<Bytes>,
}

impl JsonStream {
    /// A stream and its `200 application/json` chunked response. Return the response at
    /// once (the client sees headers before the first message) and feed the stream.
    pub fn new() -> (JsonStream, Response<Body>) {
        let (tx, body) = ChannelBody::channel(STREAM_BUFFER);
        let response = Response::builder()
            .status(StatusCode::OK)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(body.boxed())
            .unwrap_or_else(|_| Response::new(crate::empty()));
        (JsonStream { tx }, response)
    }

    /// Sends one message.
    pub async fn send(&self, message: &JsonMessage) -> bool {
        self.tx.send(message.to_line()).await.is_ok()
    }

    /// Whether the client has gone away (the response body was dropped).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Sends one message from a blocking thread. Panics on a runtime thread.
    pub fn send_blocking(&self, message: &JsonMessage) -> bool {
        self.tx.blocking_send(message.to_line()).is_ok()
    }
}

/// How many bytes a [`BodyWriter`] gathers into one chunk.
const PIPE_CHUNK: usize = 256 << 10;
/// How many chunks may wait between a [`BodyWriter`] and the socket.
const PIPE_CHUNKS: usize = 4;

/// The writing end of a streamed response body, for a blocking engine operation (`docker
/// save`'s archive): writes go out in chunks as the client takes them, so memory stays flat.
/// Dropping it ends the body; [`PipeSender::fail`] breaks it off instead, so the client sees
/// a truncated transfer rather than a short archive.
pub struct BodyWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

/// A second sender into a [`PipeBody`]: how the task that owns the writer reports a failure
/// after the writer itself was consumed.
pub struct PipeSender {
    tx: mpsc::Sender<io::Result<Bytes>>,
}

impl PipeSender {
    /// Breaks the body off with `error` (from a blocking thread).
    pub fn fail(self, error: io::Error) {
        let _ = self.tx.blocking_send(Err(error));
    }
}

/// The body a [`BodyWriter`] feeds.
pub struct PipeBody {
    first: Option<Bytes>,
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

/// A writer, a second sender for failures, and the body they feed.
pub fn body_pipe() -> (BodyWriter, PipeSender, PipeBody) {
    let (tx, rx) = mpsc::channel(PIPE_CHUNKS);
    (
        BodyWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(PIPE_CHUNK),
        },
        PipeSender { tx },
        PipeBody { first: None, rx },
    )
}

impl BodyWriter {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(PIPE_CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PIPE_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= PIPE_CHUNK {
            self.send_buffer()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        let _ = self.send_buffer();
    }
}

impl PipeBody {
    /// Waits for the first chunk: `Ok(None)` when the writer ended without writing (the
    /// operation failed before its first byte, or wrote nothing), so a handler can still
    /// answer with an error status.
    pub async fn first_chunk(&mut self) -> io::Result<Option<()>> {
        match self.rx.recv().await {
            Some(Ok(chunk)) => {
                self.first = Some(chunk);
                Ok(Some(()))
            }
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    /// As the boxed [`Body`] of a response.
    pub fn boxed(self) -> Body {
        BodyExt::boxed(self)
    }
}

impl hyper::body::Body for PipeBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }
}

/// Which stream a stdcopy frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StdStream {
    /// Standard input (written back by some clients; rare).
    Stdin = 0,
    /// Standard output.
    Stdout = 1,
    /// Standard error.
    Stderr = 2,
}

/// The 8-byte stdcopy header: the stream byte, three zero bytes, the length big-endian.
pub fn frame_header(stream: StdStream, len: u32) -> [u8; 8] {
    let [a, b, c, d] = len.to_be_bytes();
    [stream as u8, 0, 0, 0, a, b, c, d]
}

/// One frame, header and payload (a payload over 4 GiB is split into several frames).
pub fn encode_frames(stream: StdStream, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    // Writing to a Vec cannot fail.
    let _ = write_frames(&mut out, stream, payload);
    out
}

/// Writes `payload` as stdcopy frames; an empty payload writes nothing (an empty frame
/// would read as end of stream to some clients).
pub fn write_frames(out: &mut impl Write, stream: StdStream, payload: &[u8]) -> io::Result<()> {
    for chunk in payload.chunks(u32::MAX as usize) {
        out.write_all(&frame_header(stream, chunk.len() as u32))?;
        out.write_all(chunk)?;
    }
    Ok(())
}

/// A `Write` that frames everything written to it as one stdcopy stream: give the engine
/// a `FrameWriter` for stdout and one for stderr over the same (shared) output.
pub struct FrameWriter<W: Write> {
    out: W,
    stream: StdStream,
}

impl<W: Write> FrameWriter<W> {
    /// Frames writes as `stream` into `out`.
    pub fn new(out: W, stream: StdStream) -> FrameWriter<W> {
        FrameWriter { out, stream }
    }

    /// The output back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Write for FrameWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // One write is one frame: a header without its whole payload would desync the client.
        write_frames(&mut self.out, self.stream, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_stdcopy() {
        assert_eq!(
            encode_frames(StdStream::Stdout, b"hi\n"),
            b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
        );
        assert_eq!(
            encode_frames(StdStream::Stderr, b"err\n"),
            b"\x02\x00\x00\x00\x00\x00\x00\x04err\n"
        );
        assert!(encode_frames(StdStream::Stdout, b"").is_empty());
        assert_eq!(
            frame_header(StdStream::Stdout, 0x0102_0304),
            [1, 0, 0, 0, 1, 2, 3, 4]
        );
        let mut out = FrameWriter::new(Vec::new(), StdStream::Stderr);
        out.write_all(b"a").unwrap();
        out.write_all(b"bc").unwrap();
        assert_eq!(
            out.into_inner(),
            b"\x02\x00\x00\x00\x00\x00\x00\x01a\x02\x00\x00\x00\x00\x00\x00\x02bc"
        );
    }

    #[test]
    fn messages_are_docker_shaped() {
        assert_eq!(
            JsonMessage::stream("Step 1/2 : FROM x\n").to_line(),
            "{\"stream\":\"Step 1/2 : FROM x\\n\"}\n"
        );
        assert_eq!(
            JsonMessage::error(Some(7), "boom").to_line(),
            "{\"errorDetail\":{\"code\":7,\"message\":\"boom\"},\"error\":\"boom\"}\n"
        );
        assert_eq!(
            JsonMessage::aux(serde_json::json!({"ID": "sha256:ab"})).to_line(),
            "{\"aux\":{\"ID\":\"sha256:ab\"}}\n"
        );
        let p = JsonMessage::progress("Pushing", "abc".into(), 512, 1024);
        let v: serde_json::Value = serde_json::from_slice(&p.to_line()).unwrap();
        assert_eq!(v["progressDetail"]["current"], 512);
        assert_eq!(v["progressDetail"]["total"], 1024);
        assert_eq!(v["id"], "abc");
        assert!(v["progress"].as_str().unwrap().ends_with("] 512B/1.024kB"));
    }

    #[test]
    fn sizes_and_bars() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1024), "1.024kB");
        assert_eq!(human_bytes(5_000_000), "5MB");
        assert_eq!(human_bytes(1_234_567), "1.235MB");
        let bar = progress_bar(1, 2);
        assert!(bar.starts_with("[=========================>"), "{bar}");
        assert_eq!(bar.len(), 52 + " 1B/2B".len());
        assert!(progress_bar(2, 2).starts_with(&format!("[{}]", "=".repeat(50))));
    }

    #[tokio::test]
    async fn a_stream_delivers_lines_in_order() {
        let (tx, response) = JsonStream::new();
        assert_eq!(response.headers()["content-type"], "application/json");
        tokio::spawn(async move {
            tx.send(&JsonMessage::stream("a")).await;
            tx.send(&JsonMessage::stream("b")).await;
        });
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"{\"stream\":\"a\"}\n{\"stream\":\"b\"}\n");
    }
}
