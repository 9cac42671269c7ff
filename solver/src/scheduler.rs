//! Runs what a target needs: cache keys first, then every vertex whose
//! result is wanted and not cached, as soon as its inputs are ready, bounded
//! by a job count. Identical vertices (same key) run once. The first failure
//! cancels everything still running.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, OnceCell, Semaphore};
use tokio::task::JoinSet;

use crate::graph::{Graph, VertexId};
use crate::key::{CacheKey, InputKey, KeyRecord};

/// What executes vertices and remembers their results. The scheduler decides
/// *when*; the worker decides *how* (sandbox, file copies, store).
pub trait Worker: Send + Sync + 'static {
    /// The result of a vertex (e.g. a snapshot reference plus image config).
    type Output: Clone + Send + Sync + 'static;
    /// Why a vertex could not be keyed, looked up or run.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The digest of exactly the content vertex `id` reads from its input
    /// `input`, when that input is a local source read selectively (COPY from
    /// the context). `None`: use the input's own cache key.
    fn content_key(
        &self,
        graph: &Graph,
        id: VertexId,
        input: usize,
    ) -> impl Future<Output = Result<Option<CacheKey>, Self::Error>> + Send;

    /// A stored result for this key, if any.
    fn lookup(
        &self,
        record: &KeyRecord,
    ) -> impl Future<Output = Result<Option<Self::Output>, Self::Error>> + Send;

    /// Runs vertex `id` on its inputs' results and stores the result under
    /// `record.key`. Dropping the future must stop the work and leave nothing behind.
    fn execute(
        &self,
        graph: &Graph,
        id: VertexId,
        record: &KeyRecord,
        inputs: Vec<Self::Output>,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// Progress of a solve, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The vertex's result was found in the cache: it will not run.
    Cached {
        /// The vertex.
        vertex: VertexId,
    },
    /// The vertex started running.
    Started {
        /// The vertex.
        vertex: VertexId,
    },
    /// The vertex finished.
    Finished {
        /// The vertex.
        vertex: VertexId,
        /// How long it ran.
        elapsed: Duration,
    },
    /// Output of a running vertex (a RUN step's stdout or stderr), as it comes.
    /// Sent by workers through a clone of [`SolveOptions::events`].
    Log {
        /// The vertex.
        vertex: VertexId,
        /// 1 for stdout, 2 for stderr.
        stream: u8,
        /// The bytes, not necessarily whole lines.
        data: Vec<u8>,
    },
    /// The vertex failed; the solve is being cancelled.
    Failed {
        /// The vertex.
        vertex: VertexId,
        /// The error, as text.
        message: String,
    },
}

impl Event {
    /// The vertex the event is about.
    pub fn vertex(&self) -> VertexId {
        match self {
            Event::Started { vertex }
            | Event::Cached { vertex }
            | Event::Log { vertex, .. }
            | Event::Finished { vertex, .. }
            | Event::Failed { vertex, .. } => *vertex,
        }
    }
}

/// How a solve runs.
#[derive(Debug, Clone)]
pub struct SolveOptions {
    /// How many vertices may execute at once (at least 1).
    pub jobs: usize,
    /// Skip cache lookups: every needed vertex runs (`--no-cache`).
    pub no_cache: bool,
    /// Where progress events go, if anywhere.
    pub events: Option<mpsc::UnboundedSender<Event>>,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            jobs: default_jobs(),
            no_cache: false,
            events: None,
        }
    }
}

/// How many vertices run at once unless told otherwise: four per core,
/// and at least 16.
///
/// Not one per core: the limit counts steps, not CPU. A RUN that downloads,
/// sleeps or waits on a lock holds its slot while using no CPU, so one slot
/// per core would leave cores idle while ready steps queue (BuildKit sets no
/// limit at all and runs every ready vertex at once). CPU-bound steps lose
/// nothing by being admitted together, the kernel shares the cores among
/// them and the total time stays the same. The cap is kept finite so that a
/// generated Dockerfile with hundreds of independent stages does not start
/// hundreds of sandboxes (and their overlay mounts) at the same moment.
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 4).max(16)
}

/// Why a vertex failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure<E: std::error::Error + 'static> {
    /// The worker could not key, look up or run it.
    #[error(transparent)]
    Worker(E),
    /// The task computing it stopped before it finished (the worker panicked).
    #[error("interrupted before it finished")]
    Interrupted,
}

/// A solve that failed at one vertex.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {source}")]
pub struct SolveError<E: std::error::Error + 'static> {
    /// The vertex that failed.
    pub vertex: VertexId,
    /// Its human label.
    pub name: String,
    /// What went wrong (shared: several dependents may observe one failure).
    #[source]
    pub source: Arc<Failure<E>>,
}

impl<E: std::error::Error> Clone for SolveError<E> {
    fn clone(&self) -> Self {
        SolveError {
            vertex: self.vertex,
            name: self.name.clone(),
            source: Arc::clone(&self.source),
        }
    }
}

/// What a solve returns: the target's result and every needed vertex's key record.
#[derive(Debug)]
pub struct Solved<T> {
    /// The target's output.
    pub output: T,
    /// Key records of the vertices the target needed, by vertex.
    pub keys: HashMap<VertexId, KeyRecord>,
    /// The vertices that ran (missed the cache), in the order they started.
    pub ran: Vec<VertexId>,
}

/// One result per cache key, computed once and awaited by every vertex with that key.
type Cells<T, E> = Mutex<HashMap<CacheKey, Arc<OnceCell<Result<T, SolveError<E>>>>>>;
type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

struct Run<W: Worker> {
    graph: Arc<Graph>,
    worker: Arc<W>,
    keys: HashMap<VertexId, KeyRecord>,
    cells: Cells<W::Output, W::Error>,
    jobs: Semaphore,
    options: SolveOptions,
    tasks: Mutex<JoinSet<()>>,
    /// Vertices already reported as started or cached.
    announced: Mutex<std::collections::HashSet<VertexId>>,
    /// Vertices that ran, in start order.
    ran: Mutex<Vec<VertexId>>,
}

/// Builds `target` of `graph` with `worker`.
pub async fn solve<W: Worker>(
    graph: Arc<Graph>,
    target: VertexId,
    worker: Arc<W>,
    options: SolveOptions,
) -> Result<Solved<W::Output>, SolveError<W::Error>> {
    let keys = compute_keys(&graph, target, &worker).await?;
    let run = Arc::new(Run {
        graph,
        worker,
        keys,
        cells: Mutex::new(HashMap::new()),
        jobs: Semaphore::new(options.jobs.max(1)),
        options,
        tasks: Mutex::new(JoinSet::new()),
        announced: Mutex::new(std::collections::HashSet::new()),
        ran: Mutex::new(Vec::new()),
    });
    let result = Arc::clone(&run).resolve(target).await;
    // Success or failure, nothing started for this solve may outlive it.
    let mut tasks = std::mem::take(&mut *run.tasks.lock().expect("task set lock"));
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let output = result?;
    let keys = run.keys.clone();
    let ran = run.ran.lock().expect("ran lock").clone();
    Ok(Solved { output, keys, ran })
}

/// Keys of every vertex `target` needs, inputs before their readers. Content
/// digests are asked for all at once, so hashing several COPY selections
/// overlaps.
async fn compute_keys<W: Worker>(
    graph: &Arc<Graph>,
    target: VertexId,
    worker: &Arc<W>,
) -> Result<HashMap<VertexId, KeyRecord>, SolveError<W::Error>> {
    let needed = graph.needed_by(target);
    let asks = needed.iter().flat_map(|&id| {
        (0..graph.vertex(id).inputs.len()).map(move |input| {
            let (graph, worker) = (Arc::clone(graph), Arc::clone(worker));
            async move {
                let digest = worker.content_key(&graph, id, input).await;
                (id, input, digest)
            }
        })
    });
    let mut content = HashMap::new();
    for (id, input, digest) in futures::future::join_all(asks).await {
        match digest {
            Ok(Some(d)) => {
                content.insert((id, input), d);
            }
            Ok(None) => {}
            Err(e) => return Err(fail(graph, id, e)),
        }
    }
    let mut keys: HashMap<VertexId, KeyRecord> = HashMap::new();
    for id in needed {
        let vertex = graph.vertex(id);
        let inputs = vertex
            .inputs
            .iter()
            .enumerate()
            .map(|(i, input)| match content.get(&(id, i)) {
                Some(d) => InputKey::Content(*d),
                None => InputKey::Vertex(keys[input].key),
            })
            .collect();
        keys.insert(id, KeyRecord::new(&vertex.op, inputs));
    }
    Ok(keys)
}

fn fail<E: std::error::Error>(graph: &Graph, vertex: VertexId, e: E) -> SolveError<E> {
    SolveError {
        vertex,
        name: graph.vertex(vertex).name.clone(),
        source: Arc::new(Failure::Worker(e)),
    }
}

impl<W: Worker> Run<W> {
    fn emit(&self, event: Event) {
        if let Some(tx) = &self.options.events {
            // A closed receiver only means nobody watches progress any more.
            let _ = tx.send(event);
        }
    }

    /// The result of `id`, computed at most once per key for this solve.
    fn resolve(self: Arc<Self>, id: VertexId) -> BoxFut<Result<W::Output, SolveError<W::Error>>> {
        Box::pin(async move {
            let key = self.keys[&id].key;
            let cell = Arc::clone(
                self.cells
                    .lock()
                    .expect("cell map lock")
                    .entry(key)
                    .or_default(),
            );
            let this = Arc::clone(&self);
            cell.get_or_init(|| this.compute(id)).await.clone()
        })
    }

    async fn compute(self: Arc<Self>, id: VertexId) -> Result<W::Output, SolveError<W::Error>> {
        let record = &self.keys[&id];
        if !self.options.no_cache && !self.graph.vertex(id).ignore_cache {
            match self.worker.lookup(record).await {
                Ok(Some(out)) => {
                    self.announce_cached_below(id).await;
                    if self.announce(id) {
                        self.emit(Event::Cached { vertex: id });
                    }
                    return Ok(out);
                }
                Ok(None) => {}
                Err(e) => return Err(self.failed(id, e)),
            }
        }
        let inputs = self.inputs_of(id).await?;
        let _permit = self.jobs.acquire().await.expect("semaphore never closed");
        self.announce(id);
        self.ran.lock().expect("ran lock").push(id);
        self.emit(Event::Started { vertex: id });
        let started = Instant::now();
        match self.worker.execute(&self.graph, id, record, inputs).await {
            Ok(out) => {
                self.emit(Event::Finished {
                    vertex: id,
                    elapsed: started.elapsed(),
                });
                Ok(out)
            }
            Err(e) => Err(self.failed(id, e)),
        }
    }

    /// Resolves all inputs of `id` at once, each in its own task so
    /// independent branches use every core; returns at the first failure.
    async fn inputs_of(
        self: &Arc<Self>,
        id: VertexId,
    ) -> Result<Vec<W::Output>, SolveError<W::Error>> {
        let inputs = &self.graph.vertex(id).inputs;
        let mut receivers = Vec::with_capacity(inputs.len());
        for &input in inputs {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let this = Arc::clone(self);
            self.tasks.lock().expect("task set lock").spawn(async move {
                let _ = tx.send(this.resolve(input).await);
            });
            receivers.push(async move {
                // A dropped sender means the task died (a panic in the worker).
                rx.await.unwrap_or_else(|_| {
                    Err(SolveError {
                        vertex: input,
                        name: self.graph.vertex(input).name.clone(),
                        source: Arc::new(Failure::Interrupted),
                    })
                })
            });
        }
        futures::future::try_join_all(receivers).await
    }

    /// Marks `id` as reported; false when it already was.
    fn announce(&self, id: VertexId) -> bool {
        self.announced.lock().expect("announced lock").insert(id)
    }

    /// A cache hit needs nothing below it, but users expect every step whose
    /// result is in the cache to say so, as BuildKit shows them: report the
    /// ancestors that are cached too (a lookup each, no work).
    async fn announce_cached_below(&self, id: VertexId) {
        for below in self.graph.needed_by(id) {
            if below == id
                || self
                    .announced
                    .lock()
                    .expect("announced lock")
                    .contains(&below)
            {
                continue;
            }
            if let Ok(Some(_)) = self.worker.lookup(&self.keys[&below]).await {
                if self.announce(below) {
                    self.emit(Event::Cached { vertex: below });
                }
            }
        }
    }

    fn failed(&self, id: VertexId, e: W::Error) -> SolveError<W::Error> {
        self.emit(Event::Failed {
            vertex: id,
            message: e.to_string(),
        });
        fail(&self.graph, id, e)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::graph::Vertex;
    use crate::op::{ExecOp, Op, SourceOp};

    #[derive(Debug, thiserror::Error)]
    #[error("step failed: {0}")]
    struct TestError(String);

    /// Runs `sh -c` commands of a tiny language: `ok`, `fail`, `barrier`
    /// (waits until two vertices are inside `execute` at once) and `hang`.
    #[derive(Default)]
    struct TestWorker {
        cached: Mutex<HashMap<CacheKey, String>>,
        executed: Mutex<Vec<String>>,
        running: AtomicUsize,
        max_running: AtomicUsize,
        barrier: Option<tokio::sync::Barrier>,
        dropped_while_running: Arc<AtomicUsize>,
        content: Option<CacheKey>,
    }

    struct DropFlag(Arc<AtomicUsize>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Worker for TestWorker {
        type Output = String;
        type Error = TestError;

        async fn content_key(
            &self,
            graph: &Graph,
            id: VertexId,
            input: usize,
        ) -> Result<Option<CacheKey>, TestError> {
            let reads_local = matches!(
                graph.vertex(graph.vertex(id).inputs[input]).op,
                Op::Source(SourceOp::Local { .. })
            );
            Ok(self.content.filter(|_| reads_local))
        }

        async fn lookup(&self, record: &KeyRecord) -> Result<Option<String>, TestError> {
            Ok(self.cached.lock().unwrap().get(&record.key).cloned())
        }

        async fn execute(
            &self,
            graph: &Graph,
            id: VertexId,
            record: &KeyRecord,
            inputs: Vec<String>,
        ) -> Result<String, TestError> {
            let v = graph.vertex(id);
            self.executed.lock().unwrap().push(v.name.clone());
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_running.fetch_max(now, Ordering::SeqCst);
            let flag = DropFlag(Arc::clone(&self.dropped_while_running));
            let cmd = match &v.op {
                Op::Exec(e) => e.args[0].clone(),
                _ => "ok".into(),
            };
            let result = match cmd.as_str() {
                "fail" => Err(TestError(v.name.clone())),
                "hang" => std::future::pending().await,
                "barrier" => {
                    self.barrier.as_ref().unwrap().wait().await;
                    Ok(())
                }
                _ => {
                    tokio::task::yield_now().await;
                    Ok(())
                }
            };
            std::mem::forget(flag);
            self.running.fetch_sub(1, Ordering::SeqCst);
            result?;
            let out = format!("{}({})", v.name, inputs.join(","));
            self.cached.lock().unwrap().insert(record.key, out.clone());
            Ok(out)
        }
    }

    fn source(g: &mut Graph, name: &str) -> VertexId {
        g.add(Vertex {
            op: Op::Source(SourceOp::Image {
                reference: name.into(),
                digest: None,
                platform: "linux/amd64".into(),
                rootfs: None,
            }),
            inputs: vec![],
            name: name.into(),
            origin: None,
            ignore_cache: false,
        })
        .unwrap()
    }

    fn exec(g: &mut Graph, name: &str, cmd: &str, inputs: &[VertexId]) -> VertexId {
        g.add(Vertex {
            op: Op::Exec(ExecOp {
                args: vec![cmd.into(), name.into()],
                env: vec![],
                cwd: "/".into(),
                user: String::new(),
                network: Default::default(),
                security: Default::default(),
                mounts: vec![],
            }),
            inputs: inputs.to_vec(),
            name: name.into(),
            origin: None,
            ignore_cache: false,
        })
        .unwrap()
    }

    async fn run(
        g: Graph,
        target: VertexId,
        w: &Arc<TestWorker>,
        jobs: usize,
    ) -> Result<Solved<String>, SolveError<TestError>> {
        let options = SolveOptions {
            jobs,
            ..Default::default()
        };
        tokio::time::timeout(
            Duration::from_secs(20),
            solve(Arc::new(g), target, Arc::clone(w), options),
        )
        .await
        .expect("solve deadlocked")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn independent_branches_run_at_the_same_time() {
        let mut g = Graph::new();
        let base = source(&mut g, "base");
        let a = exec(&mut g, "a", "barrier", &[base]);
        let b = exec(&mut g, "b", "barrier", &[base]);
        let join = exec(&mut g, "join", "ok", &[a, b]);
        let w = Arc::new(TestWorker {
            barrier: Some(tokio::sync::Barrier::new(2)),
            ..Default::default()
        });
        // Both branches wait for each other inside execute: a serial
        // scheduler would never finish.
        let out = run(g, join, &w, 2).await.unwrap();
        assert_eq!(out.output, "join(a(base()),b(base()))");
        assert_eq!(w.max_running.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_bounds_how_many_run_at_once() {
        let mut g = Graph::new();
        let base = source(&mut g, "base");
        let branches: Vec<_> = (0..6)
            .map(|i| exec(&mut g, &format!("s{i}"), "ok", &[base]))
            .collect();
        let join = exec(&mut g, "join", "ok", &branches);
        let w = Arc::new(TestWorker::default());
        run(g, join, &w, 1).await.unwrap();
        assert_eq!(w.max_running.load(Ordering::SeqCst), 1);
        assert_eq!(w.executed.lock().unwrap().len(), 8);
    }

    #[tokio::test]
    async fn identical_vertices_run_once() {
        let mut g = Graph::new();
        let base = source(&mut g, "base");
        let a = exec(&mut g, "same", "ok", &[base]);
        let b = exec(&mut g, "same", "ok", &[base]);
        let join = exec(&mut g, "join", "ok", &[a, b]);
        let w = Arc::new(TestWorker::default());
        run(g, join, &w, 4).await.unwrap();
        let executed = w.executed.lock().unwrap().clone();
        assert_eq!(executed.iter().filter(|n| *n == "same").count(), 1);
    }

    #[tokio::test]
    async fn a_cached_target_needs_nothing_below_it() {
        let mut g = Graph::new();
        let base = source(&mut g, "base");
        let step = exec(&mut g, "step", "ok", &[base]);
        let w = Arc::new(TestWorker::default());
        let first = run(g.clone(), step, &w, 2).await.unwrap();
        w.executed.lock().unwrap().clear();
        let events = mpsc::unbounded_channel();
        let options = SolveOptions {
            events: Some(events.0),
            ..Default::default()
        };
        let second = solve(Arc::new(g), step, Arc::clone(&w), options)
            .await
            .unwrap();
        assert_eq!(first.output, second.output);
        assert!(w.executed.lock().unwrap().is_empty());
        let mut rx = events.1;
        // Everything cached below the hit is reported as cached, in order, once.
        assert_eq!(rx.recv().await, Some(Event::Cached { vertex: base }));
        assert_eq!(rx.recv().await, Some(Event::Cached { vertex: step }));
        assert!(rx.try_recv().is_err(), "each step is reported once");
    }

    #[tokio::test]
    async fn no_cache_runs_everything_again() {
        let mut g = Graph::new();
        let base = source(&mut g, "base");
        let step = exec(&mut g, "step", "ok", &[base]);
        let w = Arc::new(TestWorker::default());
        run(g.clone(), step, &w, 2).await.unwrap();
        let options = SolveOptions {
            no_cache: true,
            ..Default::default()
        };
        let solved = solve(Arc::new(g), step, Arc::clone(&w), options)
            .await
            .unwrap();
        assert_eq!(w.executed.lock().unwrap().len(), 4);
        assert_eq!(
            solved.ran,
            [base, step],
            "ran lists what missed, in start order"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_cancels_the_steps_still_running() {
        let mut g = Graph::new();
        let base = source(&mut g, "base");
        let hang = exec(&mut g, "hang", "hang", &[base]);
        let bad = exec(&mut g, "bad", "fail", &[base]);
        let join = exec(&mut g, "join", "ok", &[hang, bad]);
        let w = Arc::new(TestWorker::default());
        let err = run(g, join, &w, 4).await.unwrap_err();
        assert_eq!(err.vertex, bad);
        assert_eq!(err.to_string(), "bad: step failed: bad");
        // The hanging step's future was dropped by the time solve returned.
        assert_eq!(w.dropped_while_running.load(Ordering::SeqCst), 1);
        assert!(!w.executed.lock().unwrap().contains(&"join".to_string()));
    }

    #[tokio::test]
    async fn content_read_from_a_local_source_makes_the_key() {
        let mut g = Graph::new();
        let ctx = g
            .add(Vertex {
                op: Op::Source(SourceOp::Local {
                    name: "context".into(),
                    include: vec![],
                    exclude: vec![],
                }),
                inputs: vec![],
                name: "context".into(),
                origin: None,
                ignore_cache: false,
            })
            .unwrap();
        let step = exec(&mut g, "copy", "ok", &[ctx]);
        let mut keys = HashSet::new();
        for content in [1u8, 2, 1] {
            let w = Arc::new(TestWorker {
                content: Some(CacheKey([content; 32])),
                ..Default::default()
            });
            let solved = run(g.clone(), step, &w, 1).await.unwrap();
            let record = &solved.keys[&step];
            assert_eq!(
                record.inputs,
                vec![InputKey::Content(CacheKey([content; 32]))]
            );
            keys.insert(record.key);
        }
        assert_eq!(
            keys.len(),
            2,
            "same content, same key; other content, other key"
        );
    }
}
