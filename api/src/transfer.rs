//! docker's pull and push progress messages, shaped from the engine's events in one place
//! (pull, push, and the pulls a build makes), and the streamed answer of a transfer.
//!
//! A pull says `Pulling from library/busybox` (id: the tag), then per layer (id: 12 hex
//! digits) `Pulling fs layer`, `Downloading` with `progressDetail` and the bar, `Download
//! complete`, `Pull complete` (or `Already exists`), then `Digest: sha256:...` and
//! `Status: Downloaded newer image for busybox:latest` (or `Image is up to date for`). A push
//! says `The push refers to repository [host/repo]`, per layer `Preparing`, `Pushing`,
//! `Pushed` (or `Layer already exists`, `Mounted from repo`), then `TAG: digest: sha256:...
//! size: N` and `{"progressDetail":{},"aux":{"Tag","Digest","Size"}}`.

use std::sync::{Arc, Mutex};

use kiln_engine::events::short_digest;
use kiln_engine::{Event, LayerStatus, Progress, Transfer};
use tokio::sync::oneshot;

use crate::error::{chain_message, ApiError};
use crate::router::HandlerResult;
use crate::stream::{JsonMessage, JsonStream, ProgressDetail};

/// Turns the engine's transfer events into docker's messages, in order.
#[derive(Debug, Default)]
pub struct TransferMessages {
    /// `Pulling from`, held until the pull gets past its manifest: a pull that fails before
    /// (no such image) has said nothing, so it can still be an HTTP error, as with dockerd.
    pending_pull: Option<JsonMessage>,
    /// Layers whose last word is said (`Mounted from`, `Layer already exists`): the client's
    /// `Done` that follows says nothing more, as with docker.
    settled: std::collections::HashSet<String>,
    /// Layers a push has said something of: each starts with `Preparing`, as with docker,
    /// also those the engine compresses first (which it reports from `Compressing` on).
    prepared: std::collections::HashSet<String>,
}

impl TransferMessages {
    /// A shaper with nothing said yet.
    pub fn new() -> TransferMessages {
        TransferMessages::default()
    }

    /// The messages `event` makes (none for events docker's streams have no word for).
    pub fn messages(&mut self, event: &Event) -> Vec<JsonMessage> {
        if let Event::PullStarted {
            reference,
            repository,
        } = event
        {
            self.pending_pull = Some(JsonMessage::status(
                format!("Pulling from {repository}"),
                Some(reference.clone()),
            ));
            return Vec::new();
        }
        let mut out: Vec<JsonMessage> = Vec::new();
        let says_something = matches!(
            event,
            Event::Layer { .. } | Event::PullFinished { .. } | Event::PushStarted { .. }
        );
        if says_something {
            out.extend(self.pending_pull.take());
        }
        match event {
            Event::PullFinished {
                digest,
                name,
                up_to_date,
            } => {
                out.push(JsonMessage::status(format!("Digest: {digest}"), None));
                let status = if *up_to_date {
                    format!("Status: Image is up to date for {name}")
                } else {
                    format!("Status: Downloaded newer image for {name}")
                };
                out.push(JsonMessage::status(status, None));
            }
            Event::PushStarted { repository } => out.push(JsonMessage::status(
                format!("The push refers to repository [{repository}]"),
                None,
            )),
            Event::PushFinished { tag, digest, size } => {
                out.push(JsonMessage::status(
                    format!("{tag}: digest: {digest} size: {size}"),
                    None,
                ));
                // What the SDKs and `docker push` read the result from.
                out.push(JsonMessage {
                    progress_detail: Some(ProgressDetail::default()),
                    ..JsonMessage::aux(serde_json::json!({
                        "Tag": tag,
                        "Digest": digest,
                        "Size": size,
                    }))
                });
            }
            Event::Layer {
                transfer,
                digest,
                status,
            } => match status {
                _ if *transfer == Transfer::Push
                    && self.prepared.insert(digest.clone())
                    && *status != LayerStatus::Queued =>
                {
                    out.extend(layer_messages(
                        Transfer::Push,
                        short_digest(digest),
                        &LayerStatus::Queued,
                    ));
                    out.extend(self.messages(event));
                }
                LayerStatus::Exists | LayerStatus::Mounted { .. } => {
                    self.settled.insert(digest.clone());
                    out.extend(layer_messages(*transfer, short_digest(digest), status));
                }
                LayerStatus::Done if self.settled.contains(digest) => {}
                _ => out.extend(layer_messages(*transfer, short_digest(digest), status)),
            },
            _ => {}
        }
        out
    }
}

/// One layer's messages, in docker's words.
pub fn layer_messages(transfer: Transfer, id: &str, status: &LayerStatus) -> Vec<JsonMessage> {
    // docker sends an empty `progressDetail` with every layer status.
    let plain = |text: &str| JsonMessage {
        progress_detail: Some(ProgressDetail::default()),
        ..JsonMessage::status(text, Some(id.to_string()))
    };
    match (transfer, status) {
        (_, LayerStatus::Retrying { attempt, reason }) => {
            vec![plain(&format!("Retrying (attempt {attempt}): {reason}"))]
        }
        (Transfer::Pull, LayerStatus::Queued) => vec![plain("Pulling fs layer")],
        (Transfer::Pull, LayerStatus::Exists) => vec![plain("Already exists")],
        (Transfer::Pull, LayerStatus::Transferring { done, total }) => {
            vec![JsonMessage::progress(
                "Downloading",
                id.to_string(),
                *done,
                *total,
            )]
        }
        // Verified and committed: docker's download and its extraction both end here (kiln
        // unpacks a layer when a container first needs it).
        (Transfer::Pull, LayerStatus::Done) => {
            vec![plain("Download complete"), plain("Pull complete")]
        }
        (Transfer::Pull, LayerStatus::Mounted { .. } | LayerStatus::Compressing) => Vec::new(),
        (Transfer::Push, LayerStatus::Queued) => vec![plain("Preparing")],
        (Transfer::Push, LayerStatus::Compressing) => vec![plain("Pushing")],
        (Transfer::Push, LayerStatus::Exists) => vec![plain("Layer already exists")],
        (Transfer::Push, LayerStatus::Mounted { from }) => {
            vec![plain(&format!("Mounted from {from}"))]
        }
        (Transfer::Push, LayerStatus::Transferring { done, total }) => {
            vec![JsonMessage::progress(
                "Pushing",
                id.to_string(),
                *done,
                *total,
            )]
        }
        (Transfer::Push, LayerStatus::Done) => vec![plain("Pushed")],
    }
}

/// The sender that releases the response, until it has.
type Start = Arc<Mutex<Option<oneshot::Sender<Result<(), ApiError>>>>>;

/// Sends a message, first letting the response go if it has not yet.
fn say(stream: &JsonStream, start: &Start, message: &JsonMessage) {
    release(start, Ok(()));
    // A client that went away stops listening; the operation still finishes.
    let _ = stream.send_blocking(message);
}

/// Answers the request (at most once): `Ok` with the stream, or with this error.
fn release(start: &Start, answer: Result<(), ApiError>) -> bool {
    let sender = start.lock().ok().and_then(|mut s| s.take());
    match sender {
        Some(tx) => {
            let _ = tx.send(answer);
            true
        }
        None => false,
    }
}

/// How many messages may wait for the forwarding thread before an event blocks.
const FORWARD_BUFFER: usize = 64;

/// Runs a transfer on a blocking thread, its events as docker's messages on a JSON stream,
/// and `done`'s messages after it. The response (200 and the stream) goes out with the first
/// message; an operation that fails before saying anything is answered with the error's
/// status (a missing image is a 404, as dockerd answers), and one that fails later ends the
/// stream with docker's in-stream error.
///
/// Events arrive on whatever thread the engine sends them from, including the worker
/// threads of the private runtime a pull or push runs its registry client on, where
/// [`JsonStream::send_blocking`] must not be called; so they go through a plain channel to
/// a thread of their own that writes the stream, in order.
pub async fn stream_transfer<T, W, D>(work: W, done: D) -> HandlerResult
where
    T: Send + 'static,
    W: FnOnce(&Progress) -> Result<T, kiln_engine::Error> + Send + 'static,
    D: FnOnce(T) -> Vec<JsonMessage> + Send + 'static,
{
    let (stream, response) = JsonStream::new();
    let (tx, rx) = oneshot::channel();
    let start: Start = Arc::new(Mutex::new(Some(tx)));
    let thread_start = Arc::clone(&start);
    let task = tokio::task::spawn_blocking(move || {
        let start = thread_start;
        // A message to send, or `None` once the operation returned.
        let (forward, forwarded) =
            std::sync::mpsc::sync_channel::<Option<JsonMessage>>(FORWARD_BUFFER);
        let writer = {
            let (stream, start) = (stream.clone(), Arc::clone(&start));
            std::thread::Builder::new()
                .name("kiln-api-transfer".into())
                .spawn(move || {
                    while let Ok(Some(message)) = forwarded.recv() {
                        say(&stream, &start, &message);
                    }
                })
        };
        let writer = match writer {
            Ok(w) => w,
            Err(e) => {
                release(
                    &start,
                    Err(ApiError::internal(format!("starting a thread: {e}"))),
                );
                return;
            }
        };
        let shaper = Mutex::new(TransferMessages::new());
        let progress = {
            let forward = forward.clone();
            Progress::new(move |event| {
                let messages = match shaper.lock() {
                    Ok(mut shaper) => shaper.messages(&event),
                    Err(_) => return,
                };
                for message in messages {
                    // The writer only stops at the `None` sent after the operation.
                    let _ = forward.send(Some(message));
                }
            })
        };
        let result = work(&progress).map(done);
        let _ = forward.send(None);
        // Every message of the operation is on the stream before its end.
        let _ = writer.join();
        match result {
            Ok(messages) => {
                for message in &messages {
                    say(&stream, &start, message);
                }
                release(&start, Ok(()));
            }
            Err(e) => {
                let message = chain_message(&e);
                if !release(&start, Err(ApiError::from(e))) {
                    let _ = stream.send_blocking(&JsonMessage::error(None, message));
                }
            }
        }
    });
    match rx.await {
        Ok(Ok(())) => Ok(response),
        Ok(Err(e)) => Err(e),
        // The operation panicked before answering.
        Err(_) => Err(ApiError::internal(match task.await {
            Err(e) => format!("the transfer failed: {e}"),
            Ok(()) => "the transfer ended without an answer".to_string(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(messages: &[JsonMessage]) -> Vec<serde_json::Value> {
        messages
            .iter()
            .map(|m| serde_json::from_slice(&m.to_line()).unwrap())
            .collect()
    }

    #[test]
    fn a_pull_speaks_as_docker_does() {
        let mut shaper = TransferMessages::new();
        let digest = format!("sha256:{}", "0123456789ab".repeat(5) + "cdef");
        let layer = |status| Event::Layer {
            transfer: Transfer::Pull,
            digest: digest.clone(),
            status,
        };
        assert!(shaper
            .messages(&Event::PullStarted {
                reference: "latest".into(),
                repository: "library/busybox".into(),
            })
            .is_empty());
        let mut all = Vec::new();
        for event in [
            layer(LayerStatus::Queued),
            layer(LayerStatus::Transferring {
                done: 512,
                total: 1024,
            }),
            layer(LayerStatus::Done),
            Event::Warning("not shown".into()),
            Event::PullFinished {
                digest: "sha256:abc".into(),
                name: "busybox:latest".into(),
                up_to_date: false,
            },
        ] {
            all.extend(shaper.messages(&event));
        }
        let got = lines(&all);
        assert_eq!(
            got[0],
            serde_json::json!({"status": "Pulling from library/busybox", "id": "latest"})
        );
        assert_eq!(
            got[1],
            serde_json::json!({"status": "Pulling fs layer", "progressDetail": {}, "id": "0123456789ab"})
        );
        assert_eq!(got[2]["status"], "Downloading");
        assert_eq!(got[2]["progressDetail"]["current"], 512);
        assert!(got[2]["progress"]
            .as_str()
            .unwrap()
            .ends_with("512B/1.024kB"));
        assert_eq!(got[3]["status"], "Download complete");
        assert_eq!(got[4]["status"], "Pull complete");
        assert_eq!(got[5], serde_json::json!({"status": "Digest: sha256:abc"}));
        assert_eq!(
            got[6],
            serde_json::json!({"status": "Status: Downloaded newer image for busybox:latest"})
        );
        assert_eq!(got.len(), 7);
    }

    #[test]
    fn a_push_speaks_as_docker_does() {
        let mut shaper = TransferMessages::new();
        let layer = |status| Event::Layer {
            transfer: Transfer::Push,
            digest: "sha256:aaaabbbbccccdddd".into(),
            status,
        };
        let mut all = Vec::new();
        for event in [
            Event::PushStarted {
                repository: "127.0.0.1:5000/acc/x".into(),
            },
            layer(LayerStatus::Compressing),
            layer(LayerStatus::Done),
            Event::Layer {
                transfer: Transfer::Push,
                digest: "sha256:eeeeffff0000".into(),
                status: LayerStatus::Mounted {
                    from: "acc/y".into(),
                },
            },
            Event::Layer {
                transfer: Transfer::Push,
                digest: "sha256:eeeeffff0000".into(),
                status: LayerStatus::Done,
            },
            layer(LayerStatus::Exists),
            Event::PushFinished {
                tag: "1".into(),
                digest: "sha256:abc".into(),
                size: 527,
            },
        ] {
            all.extend(shaper.messages(&event));
        }
        let statuses: Vec<String> = lines(&all)
            .iter()
            .filter_map(|v| Some(v["status"].as_str()?.to_string()))
            .collect();
        assert_eq!(
            statuses,
            [
                "The push refers to repository [127.0.0.1:5000/acc/x]",
                "Preparing",
                "Pushing",
                "Pushed",
                "Preparing",
                "Mounted from acc/y",
                "Layer already exists",
                "1: digest: sha256:abc size: 527",
            ]
        );
        assert_eq!(
            lines(&all).last().unwrap(),
            &serde_json::json!({"progressDetail": {}, "aux": {"Tag": "1", "Digest": "sha256:abc", "Size": 527}})
        );
        assert_eq!(lines(&all)[1]["id"], "aaaabbbbcccc");
    }

    #[test]
    fn a_pull_that_fails_before_its_layers_has_said_nothing() {
        let mut shaper = TransferMessages::new();
        let started = shaper.messages(&Event::PullStarted {
            reference: "1".into(),
            repository: "acc/nosuch".into(),
        });
        assert!(started.is_empty());
        assert!(shaper.messages(&Event::Warning("x".into())).is_empty());
    }
}
