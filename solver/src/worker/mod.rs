//! The local worker: runs graph vertices with kiln's own parts — sources
//! from the store, RUN steps in the executor on overlay snapshots, COPY/ADD
//! through the file-op engine — and keeps every result in the store's build
//! cache under its key.
//!
//! A vertex's output is the stack of layers its filesystem is made of. Each
//! RUN/COPY adds one layer, made from the overlay upper dir the step wrote
//! into, and that upper dir becomes the layer's snapshot directly (a rename),
//! so the next step mounts it without unpacking anything.

mod exec;
mod file;
mod http;
mod mounts;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kiln_cache::layer::{CompressOptions, DiffSource, TarOptions};
use kiln_cache::metadata::CacheRecord;
use kiln_cache::{Digest, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::context::ContextIndex;
use crate::graph::{Graph, VertexId};
use crate::key::{CacheKey, KeyRecord};
use crate::op::{FileAction, Op, SourceOp};
use crate::scheduler::{Event, Worker};
use crate::statcache::StatCache;

/// One layer of a filesystem: a blob in the content store and its snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// The blob's digest as stored.
    pub blob: Digest,
    /// The blob's size.
    pub size: u64,
    /// The blob's media type.
    pub media_type: String,
    /// The chain ID of the stack ending with this layer (its snapshot).
    pub chain: Digest,
    /// When the layer was made (unix seconds; 0 for a base image's layers).
    /// A rebuild from cache gets the same time, so the same image ID.
    #[serde(default)]
    pub created: i64,
}

/// One step of a filesystem's history: a layer, or a step that changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// The step added this layer.
    Layer(Layer),
    /// The step ran but changed no file (its history entry is an empty layer).
    Empty,
}

/// What a vertex produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// A filesystem: every step from the base image up, in order.
    Fs(Vec<Step>),
    /// The build context (read in place, never copied into the store).
    Context,
    /// A directory made for this build only, read in place (an `ADD <url>`
    /// download); never recorded in the cache.
    Dir(PathBuf),
}

impl Output {
    /// The layers of a filesystem output, bottom first (empty steps skipped).
    pub fn layers(&self) -> Vec<&Layer> {
        match self {
            Output::Fs(steps) => steps
                .iter()
                .filter_map(|s| match s {
                    Step::Layer(l) => Some(l),
                    Step::Empty => None,
                })
                .collect(),
            Output::Context | Output::Dir(_) => Vec::new(),
        }
    }
}

/// Errors of the local worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] kiln_cache::Error),
    /// The runtime failed to run a step.
    #[error(transparent)]
    Runtime(#[from] kiln_executor::error::Error),
    /// A RUN step exited non-zero.
    #[error("process \"{command}\" did not complete successfully: exit code: {code}")]
    ExitCode {
        /// The command as BuildKit prints it.
        command: String,
        /// Its exit code.
        code: i32,
    },
    /// The build context could not be read.
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),
    /// A file operation failed.
    #[error("{0}")]
    File(String),
    /// A RUN step needs a secret that was not given.
    #[error("secret {0} not found: pass it with --secret id={0},src=FILE")]
    MissingSecret(String),
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

impl From<std::io::Error> for WorkerError {
    fn from(e: std::io::Error) -> Self {
        WorkerError::Other(e.to_string())
    }
}

/// Settings of a local build.
#[derive(Debug, Clone, Default)]
pub struct WorkerOptions {
    /// The build context directory.
    pub context: PathBuf,
    /// `.dockerignore` of the context.
    pub ignore: Option<kiln_parser::dockerignore::Matcher>,
    /// Secrets by id (`--secret`), read once at the start of the build.
    pub secrets: HashMap<String, Vec<u8>>,
    /// ssh-agent sockets by id (`--ssh`).
    pub ssh: HashMap<String, PathBuf>,
    /// SOURCE_DATE_EPOCH: layer mtimes are clamped to it.
    pub epoch: Option<i64>,
    /// Where the context's stat cache is kept between builds; `None` for a copy made for
    /// this build only (a git clone, a scratch unpack), whose stat cache is worth nothing
    /// afterwards. See [`crate::statcache::cache_file_for`] for a context directory's.
    pub stat_cache: Option<PathBuf>,
    /// `--security-opt no-new-privileges` for RUN steps.
    pub no_new_privileges: bool,
}

/// Brings the blob of a layer into the store: the source of results imported
/// from a remote build cache (`--cache-from`), which name layers the store
/// may not hold yet. Implemented by the CLI (registry or local directory).
pub trait LayerFetcher: Send + Sync {
    /// Puts `layer.blob` into `store`, verified, or says why it cannot.
    /// Called from blocking threads, perhaps several at once.
    fn fetch(&self, store: &Store, layer: &Layer) -> Result<(), String>;
}

/// Results of other machines' builds (`--cache-from`), by cache key: a hit
/// when the local cache has no record; their layers are fetched only when a
/// step that runs, or the export, needs them.
pub struct ImportedCache {
    /// Each record's result, by the key's hex form.
    pub records: HashMap<String, Output>,
    /// Where missing layers come from.
    pub fetcher: Arc<dyn LayerFetcher>,
}

/// Runs vertices with the store and the executor.
pub struct LocalWorker {
    store: Store,
    options: WorkerOptions,
    context_index: Mutex<Option<Arc<ContextIndex>>>,
    /// Context files whose content differs from the previous scan of this
    /// context (from the stat cache), for `--explain-cache`.
    context_changes: Mutex<Vec<String>>,
    /// Where RUN output goes; taken by [`LocalWorker::close_events`] so a
    /// progress reader can see the end of the stream.
    events: Mutex<Option<mpsc::UnboundedSender<Event>>>,
    build_id: String,
    steps: std::sync::atomic::AtomicUsize,
    /// `ADD <url>` downloads of this build.
    downloads: http::Downloads,
    /// Results offered by `--cache-from`, consulted when the local cache misses.
    imported: Option<ImportedCache>,
}

impl Drop for LocalWorker {
    fn drop(&mut self) {
        self.downloads.remove_all();
    }
}

impl LocalWorker {
    /// A worker over `store`; progress (RUN output) goes to `events`.
    pub fn new(
        store: Store,
        options: WorkerOptions,
        events: Option<mpsc::UnboundedSender<Event>>,
    ) -> Self {
        let build_id = format!(
            "build-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        LocalWorker {
            store,
            options,
            context_index: Mutex::new(None),
            context_changes: Mutex::new(Vec::new()),
            events: Mutex::new(events),
            build_id,
            steps: std::sync::atomic::AtomicUsize::new(0),
            downloads: http::Downloads::default(),
            imported: None,
        }
    }

    /// Adds results imported from remote caches: looked up after the local cache.
    pub fn with_imported(mut self, imported: ImportedCache) -> Self {
        self.imported = Some(imported);
        self
    }

    /// The result stored for `key`: the local cache's (when its blobs are all
    /// present), else an imported one (whose blobs may still be remote).
    pub fn cached_output(&self, key: &CacheKey) -> Result<Option<Output>, WorkerError> {
        let hex = key.to_hex();
        if let Some(rec) = self.store.cache_get(&hex)? {
            // A record from an older kiln does not parse: a miss, overwritten later.
            if let Ok(out) = serde_json::from_value::<Output>(rec.value) {
                let intact = out
                    .layers()
                    .iter()
                    .all(|l| self.store.content().contains(&l.blob));
                if intact {
                    return Ok(Some(out));
                }
            }
        }
        Ok(self
            .imported
            .as_ref()
            .and_then(|i| i.records.get(&hex))
            .cloned())
    }

    /// Records in the local cache the imported result for `key` once all its
    /// layers were fetched (by a step, the export or a cache export), so the
    /// next build finds it without `--cache-from`. Returns whether it did.
    pub fn adopt_imported(&self, key: &CacheKey) -> Result<bool, WorkerError> {
        let hex = key.to_hex();
        let Some(output) = self.imported.as_ref().and_then(|i| i.records.get(&hex)) else {
            return Ok(false);
        };
        let layers = output.layers();
        let content = self.store.content();
        if self.store.cache_get(&hex)?.is_some()
            || !layers.iter().all(|l| content.contains(&l.blob))
        {
            return Ok(false);
        }
        let now = unix_now();
        let rec = CacheRecord {
            blobs: layers.iter().map(|l| l.blob.clone()).collect(),
            // Only the snapshots already unpacked: the others are made from the blobs when used.
            snapshots: layers
                .iter()
                .filter(|l| self.store.snapshots().exists(&l.chain))
                .map(|l| l.chain.clone())
                .collect(),
            value: serde_json::to_value(output).map_err(|e| WorkerError::Other(e.to_string()))?,
            created: now,
            last_used: now,
        };
        self.store.cache_put(&hex, &rec)?;
        Ok(true)
    }

    /// Makes sure every layer blob of `output` is in the store, fetching the
    /// ones an imported result named from their remote cache.
    pub fn materialize(&self, output: &Output) -> Result<(), WorkerError> {
        for layer in output.layers() {
            if self.store.content().contains(&layer.blob) {
                continue;
            }
            let Some(imported) = &self.imported else {
                return Err(kiln_cache::Error::BlobNotFound(layer.blob.clone()).into());
            };
            imported.fetcher.fetch(&self.store, layer).map_err(|e| {
                WorkerError::Other(format!(
                    "fetching layer {} from the imported build cache: {e}",
                    layer.blob
                ))
            })?;
        }
        Ok(())
    }

    /// Context files that vertex `id` reads and whose content changed since
    /// the previous build of this context (empty when unknown).
    pub fn changed_context_files(&self, graph: &Graph, id: VertexId) -> Vec<String> {
        let changes = self.context_changes.lock().expect("context changes lock");
        let vertex = graph.vertex(id);
        (0..vertex.inputs.len())
            .filter(|&i| {
                matches!(
                    graph.vertex(vertex.inputs[i]).op,
                    Op::Source(SourceOp::Local { .. })
                )
            })
            .flat_map(|i| {
                let prefixes = context_prefixes(graph, id, i);
                changes
                    .iter()
                    .filter(move |p| under_any(p, &prefixes))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Drops the worker's progress sender: once the solve's is gone too, the
    /// reader sees the end of the event stream.
    pub fn close_events(&self) {
        self.events.lock().expect("events lock").take();
    }

    /// The store this worker writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn next_id(&self, vertex: VertexId) -> String {
        let n = self.steps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("{}-{}-{n}", self.build_id, vertex.0)
    }

    fn log(&self, vertex: VertexId, stream: u8, data: Vec<u8>) {
        if let Some(tx) = self.events.lock().expect("events lock").as_ref() {
            let _ = tx.send(Event::Log {
                vertex,
                stream,
                data,
            });
        }
    }

    /// The context's index, made once per build (stat-only when warm).
    fn context_index(&self) -> Result<Arc<ContextIndex>, WorkerError> {
        let mut slot = self.context_index.lock().expect("context index lock");
        if let Some(index) = slot.as_ref() {
            return Ok(Arc::clone(index));
        }
        let mut cache = match &self.options.stat_cache {
            Some(file) => StatCache::load(file),
            None => StatCache::default(),
        };
        let before = cache.hashes();
        let (index, _stats) = ContextIndex::scan(
            &self.options.context,
            self.options.ignore.as_ref(),
            &mut cache,
        )?;
        if !before.is_empty() {
            let after = cache.hashes();
            let mut changed: Vec<String> = after
                .iter()
                .filter(|(p, h)| before.get(*p) != Some(*h))
                .map(|(p, _)| p.clone())
                .chain(before.keys().filter(|p| !after.contains_key(*p)).cloned())
                .collect();
            changed.sort();
            *self.context_changes.lock().expect("context changes lock") = changed;
        }
        // The stat cache only saves work; failing to write it is not a build error.
        if let Some(file) = &self.options.stat_cache {
            let _ = cache.save(file);
        }
        let index = Arc::new(index);
        *slot = Some(Arc::clone(&index));
        Ok(index)
    }

    /// Unpacks (when needed) the snapshots of `steps` and returns their
    /// directories, topmost first, as overlay's lowerdir wants them.
    fn lower_dirs(&self, steps: &[Step]) -> Result<Vec<PathBuf>, WorkerError> {
        let mut dirs = Vec::new();
        let mut parent: Option<Digest> = None;
        for step in steps {
            if let Step::Layer(l) = step {
                let dir =
                    self.store
                        .ensure_snapshot(&l.chain, parent.as_ref(), &l.diff_id, &l.blob)?;
                dirs.push(dir);
                parent = Some(l.chain.clone());
            }
        }
        dirs.reverse();
        Ok(dirs)
    }

    /// Turns a finished step's upper dir into a layer and its snapshot.
    fn commit_upper(
        &self,
        rootfs_id: &str,
        upper: &Path,
        base: &[Step],
    ) -> Result<Step, WorkerError> {
        if dir_is_empty(upper)? {
            self.store.remove_rootfs(rootfs_id)?;
            return Ok(Step::Empty);
        }
        let info = self.store.create_layer(
            DiffSource::OverlayUpper(upper),
            &TarOptions {
                source_date_epoch: self.options.epoch,
            },
            // Build time writes plain tars: compression happens once, on export or push.
            &CompressOptions {
                compression: kiln_cache::layer::Compression::None,
                ..Default::default()
            },
        )?;
        let parents: Vec<Digest> = base
            .iter()
            .filter_map(|s| match s {
                Step::Layer(l) => Some(l.diff_id.clone()),
                Step::Empty => None,
            })
            .collect();
        let chain = self
            .store
            .commit_rootfs(rootfs_id, &parents, &info.diff_id)?;
        Ok(Step::Layer(Layer {
            diff_id: info.diff_id,
            blob: info.digest,
            size: info.size,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            chain,
            created: self.options.epoch.unwrap_or_else(unix_now),
        }))
    }

    /// Stacks the layers of `inputs[1..]` on those of `inputs[0]`: the
    /// blobs are reused as they are; only the chain IDs (which name the
    /// stack below a layer) change, and the snapshots of the new chains are
    /// unpacked from the blobs now, so the cache record of the merge points
    /// only at snapshots that exist.
    fn merge(&self, inputs: &[Output]) -> Result<Output, WorkerError> {
        let mut steps: Vec<Step> = Vec::new();
        for input in inputs {
            steps.extend(fs_steps(input)?.iter().cloned());
        }
        let diff_ids: Vec<Digest> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Layer(l) => Some(l.diff_id.clone()),
                Step::Empty => None,
            })
            .collect();
        let mut chains = kiln_cache::snapshot::chain_ids(&diff_ids).into_iter();
        for step in &mut steps {
            if let Step::Layer(l) = step {
                l.chain = chains.next().expect("one chain per layer");
            }
        }
        self.lower_dirs(&steps)?;
        Ok(Output::Fs(steps))
    }

    fn remember(&self, record: &KeyRecord, output: &Output) -> Result<(), WorkerError> {
        let layers = output.layers();
        let now = unix_now();
        let rec = CacheRecord {
            blobs: layers.iter().map(|l| l.blob.clone()).collect(),
            snapshots: layers.iter().map(|l| l.chain.clone()).collect(),
            value: serde_json::to_value(output).map_err(|e| WorkerError::Other(e.to_string()))?,
            created: now,
            last_used: now,
        };
        self.store.cache_put(&record.key.to_hex(), &rec)?;
        Ok(())
    }

    fn execute_blocking(
        &self,
        graph: &Graph,
        id: VertexId,
        inputs: Vec<Output>,
    ) -> Result<Output, WorkerError> {
        let vertex = graph.vertex(id);
        if matches!(vertex.op, Op::Exec(_) | Op::File(_)) {
            // Inputs found in an imported cache may name layers not fetched yet.
            for input in &inputs {
                self.materialize(input)?;
            }
        }
        match &vertex.op {
            Op::Source(SourceOp::Scratch) => Ok(Output::Fs(Vec::new())),
            Op::Source(SourceOp::Local { .. }) => Ok(Output::Context),
            Op::Source(SourceOp::Image {
                reference, digest, ..
            }) => {
                let digest = digest.as_ref().ok_or_else(|| {
                    WorkerError::Other(format!("image {reference} was not resolved"))
                })?;
                let manifest: Digest = digest
                    .parse()
                    .map_err(|e: kiln_cache::Error| WorkerError::Other(e.to_string()))?;
                let image = self.store.load_image(&manifest, Vec::new())?;
                let chains = kiln_cache::snapshot::chain_ids(&image.diff_ids);
                let steps = image
                    .layers()?
                    .into_iter()
                    .zip(&image.diff_ids)
                    .zip(chains)
                    .map(|(((blob, size, media_type), diff_id), chain)| {
                        Step::Layer(Layer {
                            diff_id: diff_id.clone(),
                            blob,
                            size,
                            media_type,
                            chain,
                            created: 0,
                        })
                    })
                    .collect();
                Ok(Output::Fs(steps))
            }
            Op::Source(SourceOp::Http {
                url,
                checksum,
                filename,
            }) => {
                let got = tokio::runtime::Handle::current().block_on(self.downloads.get(
                    url,
                    filename,
                    || Ok(self.store.scratch()?),
                ))?;
                if let Some(want) = checksum {
                    if *want != got.digest.to_string() {
                        return Err(WorkerError::Other(format!(
                            "digest mismatch for {url}: {} (expected: {want})",
                            got.digest
                        )));
                    }
                }
                Ok(Output::Dir(got.dir))
            }
            Op::Exec(exec) => exec::run(self, id, exec, &inputs),
            Op::Merge => self.merge(&inputs),
            Op::File(fileop) => file::run(self, id, fileop, &inputs),
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn dir_is_empty(dir: &Path) -> Result<bool, WorkerError> {
    Ok(std::fs::read_dir(dir)?.next().is_none())
}

fn fs_steps(output: &Output) -> Result<&[Step], WorkerError> {
    match output {
        Output::Fs(steps) => Ok(steps),
        Output::Context | Output::Dir(_) => Err(WorkerError::Other(
            "the build context cannot be the base of a step".into(),
        )),
    }
}

impl Worker for Arc<LocalWorker> {
    type Output = Output;
    type Error = WorkerError;

    async fn content_key(
        &self,
        graph: &Graph,
        id: VertexId,
        input: usize,
    ) -> Result<Option<CacheKey>, WorkerError> {
        let vertex = graph.vertex(id);
        let source = graph.vertex(vertex.inputs[input]);
        if let Op::Source(SourceOp::Http {
            url,
            checksum,
            filename,
        }) = &source.op
        {
            // As BuildKit: a given checksum is the key (no download needed
            // for a cache hit); otherwise the content, downloaded now.
            if let Some(c) = checksum {
                return Ok(Some(http::content_key(filename, c, None)));
            }
            // On a blocking thread: the body is written to disk as it comes.
            let this = Arc::clone(self);
            let (url, name) = (url.clone(), filename.clone());
            let got = tokio::task::spawn_blocking(move || {
                tokio::runtime::Handle::current().block_on(
                    this.downloads
                        .get(&url, &name, || Ok(this.store.scratch()?)),
                )
            })
            .await
            .map_err(|e| WorkerError::Other(format!("downloading: {e}")))??;
            return Ok(Some(http::content_key(
                filename,
                &got.digest.to_string(),
                got.last_modified,
            )));
        }
        if !matches!(source.op, Op::Source(SourceOp::Local { .. })) {
            return Ok(None);
        }
        let prefixes = context_prefixes(graph, id, input);
        let this = Arc::clone(self);
        let digest = tokio::task::spawn_blocking(move || -> Result<CacheKey, WorkerError> {
            let index = this.context_index()?;
            Ok(index.digest_where(|e| under_any(&e.path, &prefixes)))
        })
        .await
        .map_err(|e| WorkerError::Other(format!("hashing the context: {e}")))??;
        Ok(Some(digest))
    }

    async fn lookup(&self, record: &KeyRecord) -> Result<Option<Output>, WorkerError> {
        self.cached_output(&record.key)
    }

    async fn execute(
        &self,
        graph: &Graph,
        id: VertexId,
        record: &KeyRecord,
        inputs: Vec<Output>,
    ) -> Result<Output, WorkerError> {
        let this = Arc::clone(self);
        let graph = graph.clone();
        let record = record.clone();
        tokio::task::spawn_blocking(move || {
            let out = this.execute_blocking(&graph, id, inputs)?;
            if matches!(graph.vertex(id).op, Op::Exec(_) | Op::File(_) | Op::Merge) {
                this.remember(&record, &out)?;
            }
            Ok(out)
        })
        .await
        .map_err(|e| WorkerError::Other(format!("step panicked or was cancelled: {e}")))?
    }
}

/// The prefixes of the context vertex `id` reads through its input `input`;
/// a wildcard reads everything under the directory before it. Reading more
/// than needed only costs cache hits, never correctness.
fn context_prefixes(graph: &Graph, id: VertexId, input: usize) -> Vec<String> {
    let prefix = |s: &str| literal_prefix(&crate::frontend::paths::source(s));
    let mut prefixes = Vec::new();
    match &graph.vertex(id).op {
        Op::File(f) => {
            for a in &f.actions {
                if let FileAction::Copy(c) = a {
                    if c.input == input {
                        prefixes.extend(c.sources.iter().map(|s| prefix(s)));
                    }
                }
            }
        }
        Op::Exec(e) => {
            for m in &e.mounts {
                if let crate::op::MountKind::Bind {
                    input: i, source, ..
                } = &m.kind
                {
                    if *i == input {
                        prefixes.push(prefix(source));
                    }
                }
            }
        }
        Op::Source(_) | Op::Merge => {}
    }
    prefixes
}

fn under_any(path: &str, prefixes: &[String]) -> bool {
    prefixes
        .iter()
        .any(|p| p.is_empty() || path == p || path.starts_with(&format!("{p}/")))
}

/// The part of a source path before its first wildcard component, without
/// leading `/` (`/src/*.rs` -> `src`).
fn literal_prefix(source: &str) -> String {
    let mut out = Vec::new();
    for part in source.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part.contains(['*', '?', '[']) {
            break;
        }
        out.push(part);
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::literal_prefix;

    #[test]
    fn literal_prefixes_stop_at_wildcards() {
        assert_eq!(literal_prefix("/src/*.rs"), "src");
        assert_eq!(literal_prefix("/"), "");
        assert_eq!(literal_prefix("/a/b/c.txt"), "a/b/c.txt");
        assert_eq!(literal_prefix("/*"), "");
        // Sources are cleaned first, as the copy itself cleans them.
        assert_eq!(
            literal_prefix(&crate::frontend::paths::source("../../a/./b")),
            "a/b"
        );
    }
}
