//! `POST /build`: the classic builder's API, which both docker CLIs (without BuildKit), the
//! Python SDK and compose 1.29 use. The context is the request body (a tar, chunked), or a
//! git URL in `remote`; the answer is a JSON-lines stream that reads as dockerd's legacy
//! builder output (`Step 1/3 : FROM busybox`, the RUN steps' output, `Successfully built
//! <id>`), then `aux.ID`, or an error whose `errorDetail.code` is a failed RUN's status.
//! `POST /build/prune` is not served: kiln has no command that prunes the build cache alone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use hyper::Method;
use kiln_engine::build::parse_git_context;
use kiln_engine::events::short_digest;
use kiln_engine::{
    BuildContext, BuildOptions, BuildResult, DockerfileSource, Error, Event, Progress,
};
use kiln_solver::graph::VertexId;
use kiln_solver::scheduler::Event as StepEvent;
use serde_json::json;

use crate::body::BodyReader;
use crate::error::{chain_message, ApiError};
use crate::query::Query;
use crate::router::{Call, HandlerResult, Router};
use crate::stream::{JsonMessage, JsonStream};

/// Adds this module's routes.
pub fn routes(router: &mut Router) {
    router.route(Method::POST, "/build", |c| Box::pin(build(c)));
}

/// What a build sends the stream: its events, then its end.
enum Update {
    Event(Event),
    Done(Result<BuildResult, Error>),
}

/// `POST /build`. The query is checked before the stream starts (a bad one is a 400); the
/// build then runs on a blocking thread and its events become stream lines as they come.
async fn build(call: Call) -> HandlerResult {
    let request = BuildRequest::from_query(&call.query)?;
    // FROM pulls use the client's credentials only, as dockerd's: never the service's files.
    let registry_auth = crate::auth::registry_config(&call)?;
    let quiet = request.quiet;
    let context = match &request.remote {
        Some(url) => BuildContext::Git(url.clone()),
        None => BuildContext::Archive {
            stream: Box::new(BodyReader::from_incoming(call.body)),
            from: "the request body",
        },
    };
    let mut options = request.into_options(context);
    options.registry_auth = Some(registry_auth);
    // A client that goes away cancels its build, as with dockerd: nothing gets tagged.
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    options.cancel = Some(cancel.clone());
    let (updates, mut received) = tokio::sync::mpsc::unbounded_channel::<Update>();
    let engine = call.engine.clone();
    // Events come from the build's thread and from the engine's own runtime, where a
    // blocking send would panic: an unbounded channel never blocks (a build's log is small
    // next to its context).
    tokio::task::spawn_blocking(move || {
        let events = updates.clone();
        let progress = Progress::new(move |e| {
            let _ = events.send(Update::Event(e));
        });
        let result = engine.build(options, &progress);
        let _ = updates.send(Update::Done(result));
    });
    let (stream, response) = JsonStream::new();
    tokio::spawn(async move {
        let mut log = LegacyLog::new(quiet);
        let mut done = false;
        let gone = || cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        loop {
            let update = tokio::select! {
                update = received.recv() => update,
                // A long silent step sends nothing: look for the client now and then.
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                    if stream.is_closed() {
                        gone();
                        return;
                    }
                    continue;
                }
            };
            let Some(update) = update else { break };
            let lines = match update {
                Update::Event(e) => log.event(&e),
                Update::Done(result) => {
                    done = true;
                    log.done(result)
                }
            };
            for line in lines {
                if !stream.send(&line).await {
                    gone();
                    return;
                }
            }
        }
        if !done {
            // The build's thread died (a panic): say so rather than end as a success.
            let _ = stream
                .send(&JsonMessage::error(None, "the build stopped unexpectedly"))
                .await;
        }
    });
    Ok(response)
}

/// The build's query, decoded and checked.
#[derive(Debug, Default, PartialEq)]
pub struct BuildRequest {
    /// `dockerfile`: a path inside the context (default `Dockerfile`).
    pub dockerfile: String,
    /// `t`, repeated.
    pub tags: Vec<String>,
    /// `buildargs` without the null (unset) ones.
    pub build_args: BTreeMap<String, String>,
    /// `target`.
    pub target: Option<String>,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// `nocache`.
    pub no_cache: bool,
    /// `pull`.
    pub pull: bool,
    /// `q`: only the image ID.
    pub quiet: bool,
    /// `networkmode` (empty: the default).
    pub network: String,
    /// `platform`.
    pub platform: Option<String>,
    /// `cachefrom`.
    pub cache_from: Vec<String>,
    /// `remote`: a git URL to build instead of the body.
    pub remote: Option<String>,
}

impl BuildRequest {
    /// Decodes the query. What kiln cannot do is a clear 400 rather than ignored: BuildKit's
    /// session builds (`version=2`), remote contexts that are not git repositories, and
    /// extra hosts.
    pub fn from_query(query: &Query) -> Result<BuildRequest, ApiError> {
        if query.get("version") == Some("2") {
            return Err(ApiError::bad_request(
                "kiln serves the classic builder only (version=1): BuildKit's session API is \
                 not supported; build with DOCKER_BUILDKIT=0",
            ));
        }
        let remote = match query.get("remote").filter(|r| !r.is_empty()) {
            None => None,
            Some(url) if parse_git_context(url).is_some() => Some(url.to_string()),
            Some(url) => {
                return Err(ApiError::bad_request(format!(
                    "remote context {url:?}: kiln builds from git repository URLs only \
                     (https://host/repo.git#ref:dir, git@host:repo, git://...)"
                )))
            }
        };
        if let Some(hosts) = query.get("extrahosts").filter(|h| !h.trim().is_empty()) {
            return Err(ApiError::bad_request(format!(
                "extrahosts ({hosts}) is not supported by kiln's builder"
            )));
        }
        let build_args: BTreeMap<String, Option<String>> =
            query.json("buildargs")?.unwrap_or_default();
        let network = match query.get("networkmode").unwrap_or("") {
            "" => "default".to_string(),
            other => other.to_string(),
        };
        Ok(BuildRequest {
            dockerfile: query
                .get("dockerfile")
                .filter(|d| !d.is_empty())
                .unwrap_or("Dockerfile")
                .to_string(),
            tags: query
                .all("t")
                .into_iter()
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
            build_args: build_args
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
            target: query
                .get("target")
                .filter(|t| !t.is_empty())
                .map(String::from),
            labels: query.json("labels")?.unwrap_or_default(),
            no_cache: query.bool("nocache"),
            pull: query.bool("pull"),
            quiet: query.bool("q"),
            network,
            platform: query
                .get("platform")
                .filter(|p| !p.is_empty())
                .map(String::from),
            cache_from: query.json("cachefrom")?.unwrap_or_default(),
            remote,
        })
    }

    /// The engine's options for this request on `context`.
    pub fn into_options(self, context: BuildContext) -> BuildOptions {
        let mut opts = BuildOptions::new(context);
        opts.dockerfile = DockerfileSource::InContext(PathBuf::from(self.dockerfile));
        opts.tags = self.tags;
        opts.build_args = self.build_args;
        opts.target = self.target;
        opts.labels = self.labels;
        opts.no_cache = self.no_cache;
        opts.pull = self.pull;
        opts.network = self.network;
        opts.platform = self.platform;
        opts.cache_from = self.cache_from;
        opts
    }
}

/// The build's events as the legacy builder's lines: `Step i/N : INSTRUCTION` when a step
/// starts or is found in the cache (numbered in Dockerfile order), ` ---> Using cache`, each
/// RUN's output as it comes, and the summary at the end. kiln keeps no intermediate images,
/// so there is no ` ---> <id>` after each step, only after the last.
pub struct LegacyLog {
    quiet: bool,
    /// Each shown step's number and instruction.
    steps: HashMap<VertexId, (usize, String)>,
    total: usize,
    announced: HashSet<VertexId>,
    /// With `quiet`: what would have been shown, sent if the build fails (as dockerd does).
    held: String,
    /// Each step's output bytes that end inside a UTF-8 character, kept for the next chunk.
    partial: HashMap<VertexId, Vec<u8>>,
}

impl LegacyLog {
    /// A log for a build with `q=quiet`.
    pub fn new(quiet: bool) -> LegacyLog {
        LegacyLog {
            quiet,
            steps: HashMap::new(),
            total: 0,
            announced: HashSet::new(),
            held: String::new(),
            partial: HashMap::new(),
        }
    }

    /// The lines for one event.
    pub fn event(&mut self, event: &Event) -> Vec<JsonMessage> {
        let mut text = String::new();
        match event {
            Event::BuildSteps(names) => {
                let mut shown: Vec<(&VertexId, &String)> = names
                    .iter()
                    .filter(|(_, n)| !n.is_empty() && !n.starts_with("[internal]"))
                    .collect();
                // Vertices are made in Dockerfile order.
                shown.sort();
                self.total = shown.len();
                self.steps = shown
                    .into_iter()
                    .enumerate()
                    .map(|(i, (v, n))| (*v, (i + 1, instruction(n))))
                    .collect();
            }
            Event::Step(step) => match step {
                StepEvent::Started { vertex } => {
                    self.announce(*vertex, &mut text);
                }
                StepEvent::Cached { vertex } => {
                    if self.announce(*vertex, &mut text) {
                        text.push_str(" ---> Using cache\n");
                    }
                }
                StepEvent::Log { vertex, data, .. } => {
                    let partial = self.partial.entry(*vertex).or_default();
                    partial.extend_from_slice(data);
                    text.push_str(&take_text(partial));
                }
                StepEvent::Finished { .. } | StepEvent::Failed { .. } => {}
            },
            Event::PullStarted {
                reference,
                repository,
            } => text.push_str(&format!("{reference}: Pulling from {repository}\n")),
            Event::PullFinished { digest, name, .. } => {
                text.push_str(&format!("Digest: {digest}\nStatus: Downloaded {name}\n"))
            }
            Event::Warning(w) => text.push_str(&format!("[Warning] {w}\n")),
            Event::BuildSolved {
                unused_build_args, ..
            } if !unused_build_args.is_empty() => text.push_str(&format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                unused_build_args.join(" ")
            )),
            _ => {}
        }
        self.emit(text)
    }

    /// The last lines: the image ID and names, or the error.
    pub fn done(&mut self, result: Result<BuildResult, Error>) -> Vec<JsonMessage> {
        match result {
            Ok(built) => {
                if self.quiet {
                    return vec![JsonMessage::stream(format!("{}\n", built.id))];
                }
                let short = short_digest(&built.id).to_string();
                let mut out = vec![
                    JsonMessage::stream(format!(" ---> {short}\n")),
                    JsonMessage::aux(json!({ "ID": built.id })),
                    JsonMessage::stream(format!("Successfully built {short}\n")),
                ];
                out.extend(
                    built
                        .names
                        .iter()
                        .map(|n| JsonMessage::stream(format!("Successfully tagged {n}\n"))),
                );
                out
            }
            Err(err) => {
                let mut out = Vec::new();
                if self.quiet && !self.held.is_empty() {
                    out.push(JsonMessage::stream(std::mem::take(&mut self.held)));
                }
                let (code, message) = match err.kind() {
                    Error::Solve(failure) => (
                        failure.exit_code,
                        format!("{}: {}", failure.step, chain_message(&err)),
                    ),
                    Error::Parse(_) => (
                        None,
                        format!("dockerfile parse error: {}", chain_message(&err)),
                    ),
                    _ => (None, chain_message(&err)),
                };
                out.push(JsonMessage::error(code, message));
                out
            }
        }
    }

    /// Writes `Step i/N : ...` the first time a shown step is seen; whether it is shown.
    fn announce(&mut self, vertex: VertexId, text: &mut String) -> bool {
        let Some((number, instruction)) = self.steps.get(&vertex) else {
            return false;
        };
        if self.announced.insert(vertex) {
            text.push_str(&format!("Step {number}/{} : {instruction}\n", self.total));
        }
        true
    }

    fn emit(&mut self, text: String) -> Vec<JsonMessage> {
        if text.is_empty() {
            return Vec::new();
        }
        if self.quiet {
            self.held.push_str(&text);
            return Vec::new();
        }
        vec![JsonMessage::stream(text)]
    }
}

/// The text in `bytes`, leaving there a UTF-8 character the chunk cut in two (invalid bytes
/// become U+FFFD).
fn take_text(bytes: &mut Vec<u8>) -> String {
    let keep = match std::str::from_utf8(bytes) {
        Ok(_) => 0,
        // error_len None: the bytes end inside a character that may still be completed.
        Err(e) if e.error_len().is_none() => bytes.len() - e.valid_up_to(),
        Err(_) => 0,
    };
    let rest = bytes.split_off(bytes.len() - keep);
    let text = String::from_utf8_lossy(bytes).into_owned();
    *bytes = rest;
    text
}

/// A step's instruction from its progress name: `[base 2/4] RUN make` is `RUN make`, and a
/// FROM loses the digest kiln resolved it to (`FROM busybox:latest@sha256:...`).
fn instruction(name: &str) -> String {
    let text = match name.strip_prefix('[').and_then(|n| n.split_once("] ")) {
        Some((_, rest)) => rest,
        None => name,
    };
    match text.strip_prefix("FROM ") {
        Some(image) => format!("FROM {}", image.split('@').next().unwrap_or(image)),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn line(m: &JsonMessage) -> String {
        String::from_utf8_lossy(&m.to_line()).into_owned()
    }

    #[test]
    fn queries_decode_as_both_clis_send_them() {
        let q = Query::parse(
            "buildargs=%7B%22A%22%3A%221%22%2C%22B%22%3Anull%7D&cachefrom=%5B%5D&dockerfile=sub%2FDf\
             &extrahosts=&labels=%7B%22l%22%3A%22v%22%7D&networkmode=default&nocache=1&pull=False\
             &q=1&rm=1&shmsize=0&t=x%3A1&t=x%3Alatest&target=t1&version=1",
        );
        let r = BuildRequest::from_query(&q).unwrap();
        assert_eq!(r.dockerfile, "sub/Df");
        assert_eq!(r.tags, ["x:1", "x:latest"]);
        assert_eq!(
            r.build_args,
            BTreeMap::from([("A".to_string(), "1".to_string())])
        );
        assert_eq!(r.labels["l"], "v");
        assert!(r.no_cache && r.quiet && !r.pull);
        assert_eq!(r.target.as_deref(), Some("t1"));
        let minimal = BuildRequest::from_query(&Query::parse("t=x%3A2&version=1")).unwrap();
        assert_eq!(minimal.dockerfile, "Dockerfile");
        assert_eq!(minimal.network, "default");
        assert!(minimal.remote.is_none());
    }

    #[test]
    fn what_kiln_cannot_build_is_a_400() {
        let refused = |q: &str| BuildRequest::from_query(&Query::parse(q)).unwrap_err();
        assert_eq!(refused("version=2&remote=client-session").status, 400);
        let e = refused("remote=https%3A%2F%2Fexample.com%2Fctx.tar.gz");
        assert!(
            e.message.contains("git repository URLs only"),
            "{}",
            e.message
        );
        assert_eq!(refused("extrahosts=h%3A1.2.3.4").status, 400);
        assert_eq!(refused("buildargs=%7B").status, 400);
        let git = BuildRequest::from_query(&Query::parse(
            "remote=https%3A%2F%2Fexample.com%2Fr.git%23main",
        ))
        .unwrap();
        assert_eq!(
            git.remote.as_deref(),
            Some("https://example.com/r.git#main")
        );
    }

    fn steps() -> Event {
        Event::BuildSteps(Arc::new(HashMap::from([
            (VertexId(0), "[internal] load build context".to_string()),
            (
                VertexId(1),
                "[1/3] FROM busybox:latest@sha256:abc".to_string(),
            ),
            (VertexId(2), "[2/3] RUN echo hi".to_string()),
            (VertexId(3), "[3/3] COPY . /ctx".to_string()),
            (VertexId(4), String::new()),
        ])))
    }

    #[test]
    fn steps_read_as_the_legacy_builder() {
        let mut log = LegacyLog::new(false);
        assert!(log.event(&steps()).is_empty());
        let mut all = Vec::new();
        for e in [
            StepEvent::Cached {
                vertex: VertexId(1),
            },
            StepEvent::Started {
                vertex: VertexId(0),
            },
            StepEvent::Started {
                vertex: VertexId(2),
            },
            StepEvent::Log {
                vertex: VertexId(2),
                stream: 1,
                data: b"hi\n".to_vec(),
            },
            StepEvent::Started {
                vertex: VertexId(3),
            },
        ] {
            all.extend(log.event(&Event::Step(e)));
        }
        let text: Vec<String> = all.iter().map(line).collect();
        assert_eq!(
            text,
            [
                "{\"stream\":\"Step 1/3 : FROM busybox:latest\\n ---> Using cache\\n\"}\n",
                "{\"stream\":\"Step 2/3 : RUN echo hi\\n\"}\n",
                "{\"stream\":\"hi\\n\"}\n",
                "{\"stream\":\"Step 3/3 : COPY . /ctx\\n\"}\n",
            ]
        );
        let id = format!("sha256:{}", "ab".repeat(32));
        let end = log.done(Ok(BuildResult {
            id: id.clone(),
            manifest_digest: String::new(),
            names: vec!["x:1".into()],
            explanations: Vec::new(),
            unused_build_args: Vec::new(),
        }));
        let end: Vec<String> = end.iter().map(line).collect();
        assert_eq!(end[1], format!("{{\"aux\":{{\"ID\":\"{id}\"}}}}\n"));
        assert_eq!(
            end[2],
            "{\"stream\":\"Successfully built abababababab\\n\"}\n"
        );
        assert_eq!(end[3], "{\"stream\":\"Successfully tagged x:1\\n\"}\n");
    }

    #[test]
    fn quiet_sends_the_id_alone_or_the_held_log_and_the_error() {
        let mut log = LegacyLog::new(true);
        log.event(&steps());
        let shown = log.event(&Event::Step(StepEvent::Started {
            vertex: VertexId(2),
        }));
        assert!(shown.is_empty());
        let id = format!("sha256:{}", "cd".repeat(32));
        let ok = LegacyLog::new(true).done(Ok(BuildResult {
            id: id.clone(),
            manifest_digest: String::new(),
            names: vec!["x:1".into()],
            explanations: Vec::new(),
            unused_build_args: Vec::new(),
        }));
        assert_eq!(ok.len(), 1);
        assert_eq!(line(&ok[0]), format!("{{\"stream\":\"{id}\\n\"}}\n"));
        let failed = log.done(Err(Error::Solve(Box::new(kiln_engine::SolveFailure {
            step: "[2/3] RUN echo hi".into(),
            origin: None,
            dockerfile: Vec::new(),
            message: "process \"/bin/sh -c exit 9\" did not complete successfully: exit code: 9"
                .into(),
            exit_code: Some(9),
        }))));
        assert_eq!(failed.len(), 2);
        assert_eq!(
            failed[0].stream.as_deref(),
            Some("Step 2/3 : RUN echo hi\n")
        );
        let detail = failed[1].error_detail.as_ref().unwrap();
        assert_eq!(detail.code, Some(9));
        assert!(
            detail.message.contains("exit code: 9"),
            "{}",
            detail.message
        );
    }

    #[test]
    fn a_character_cut_between_chunks_is_whole_in_the_stream() {
        let mut bytes = "é".as_bytes()[..1].to_vec();
        assert_eq!(take_text(&mut bytes), "");
        bytes.extend_from_slice(&"é".as_bytes()[1..]);
        bytes.extend_from_slice(b"!\xff");
        assert_eq!(take_text(&mut bytes), "é!\u{fffd}");
        assert!(bytes.is_empty());
    }

    #[test]
    fn instructions_lose_their_step_prefix_and_digest() {
        assert_eq!(instruction("[base 2/4] RUN make"), "RUN make");
        assert_eq!(
            instruction("[1/2] FROM busybox:latest@sha256:0123"),
            "FROM busybox:latest"
        );
        assert_eq!(instruction("plain"), "plain");
    }
}
