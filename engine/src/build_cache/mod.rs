//! The build cache shared between machines: `kiln build --cache-to` exports cache records
//! (a vertex's key and its resulting layers) with their layer blobs to a registry or an OCI
//! layout directory; `--cache-from` imports them, so another machine's build finds its steps
//! cached and fetches their layers only when needed. The format is kiln's own
//! ([`format`], described in ARCHITECTURE.md); BuildKit's is not read or written.

mod fetch;
pub mod format;
mod local;
mod registry;
pub mod spec;

use std::collections::HashMap;
use std::sync::Arc;

use crate::events::{Event, Progress};
use crate::Result;
use kiln_cache::{Digest, Store};
use kiln_solver::graph::{Graph, VertexId};
use kiln_solver::key::KeyRecord;
use kiln_solver::op::Op;
use kiln_solver::worker::{ImportedCache, Layer, LocalWorker, Output};

use format::{Blob, CacheConfig, CONFIG_MEDIA_TYPE};
use spec::{CacheTo, ExportMode, Location};

/// One cache read from a `--cache-from` source.
pub struct Imported {
    /// Its records and layers.
    config: CacheConfig,
    /// Where its blobs are.
    origin: Arc<fetch::Origin>,
}

/// Reads every `--cache-from` source, sending [`Event::CacheImported`] for each. A source
/// that is missing or unreadable is a warning, as in buildx: the build goes on without it.
/// `None` when no source had a record.
pub fn import(
    store: &Store,
    sources: &[Location],
    progress: &Progress,
) -> Result<Option<ImportedCache>> {
    let mut fetcher = fetch::Fetcher::new()?;
    let mut records: HashMap<String, Output> = HashMap::new();
    for source in sources {
        let read = match source {
            Location::Registry { reference } => registry::import(store, reference),
            Location::Local { dir, tag } => local::import(dir, tag),
        };
        match read {
            Ok(Some(imported)) => {
                let outputs = imported.config.outputs();
                progress.emit(Event::CacheImported {
                    source: source.to_string(),
                    records: outputs.len(),
                    layers: imported.config.layers.len(),
                });
                fetcher.add(&imported.config.layers, imported.origin);
                for (key, output) in outputs {
                    records.entry(key).or_insert(output);
                }
            }
            Ok(None) => progress.warn(format!(
                "--cache-from {source}: not found; building without it"
            )),
            Err(e) => progress.warn(format!(
                "--cache-from {source}: {}; building without it",
                e.display_chain()
            )),
        }
    }
    if records.is_empty() {
        return Ok(None);
    }
    Ok(Some(ImportedCache {
        records,
        fetcher: Arc::new(fetcher),
    }))
}

/// The vertices whose results a cache export holds: with [`ExportMode::Min`], the final
/// image's chain (the target and the steps its filesystem is built on, through input 0);
/// with [`ExportMode::Max`], every step the build needed. Sources are never recorded (they
/// are resolved afresh by each build). In graph order.
pub fn selected_vertices(
    graph: &Graph,
    target: VertexId,
    keys: &HashMap<VertexId, KeyRecord>,
    mode: ExportMode,
) -> Vec<VertexId> {
    let is_step = |id: VertexId| matches!(graph.vertex(id).op, Op::Exec(_) | Op::File(_));
    let mut ids: Vec<VertexId> = match mode {
        ExportMode::Max => keys.keys().copied().filter(|&id| is_step(id)).collect(),
        ExportMode::Min => {
            let mut chain = Vec::new();
            let mut at = Some(target);
            while let Some(id) = at.filter(|&id| is_step(id)) {
                chain.push(id);
                at = graph.vertex(id).inputs.first().copied();
            }
            chain
        }
    };
    ids.sort_by_key(|id| id.0);
    ids
}

/// Exports the results of `vertices` to `to`, then sends [`Event::CacheExported`]. Results
/// imported and not fetched yet are fetched first (the export must hold their blobs).
pub fn export(
    store: &Store,
    worker: &LocalWorker,
    to: &CacheTo,
    vertices: &[VertexId],
    keys: &HashMap<VertexId, KeyRecord>,
    progress: &Progress,
) -> Result<()> {
    let mut records: Vec<(String, Output)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for id in vertices {
        let key = keys[id].key;
        if !seen.insert(key) {
            continue;
        }
        // A step below a cache hit that was pruned since has no result to export.
        let Some(output) = worker.cached_output(&key)? else {
            continue;
        };
        if matches!(output, Output::Fs(_)) {
            worker.materialize(&output)?;
            records.push((key.to_hex(), output));
        }
    }
    let mut layers: Vec<Layer> = Vec::new();
    for (_, output) in &records {
        for l in output.layers() {
            if !layers.iter().any(|x| x.blob == l.blob) {
                layers.push(l.clone());
            }
        }
    }
    let digest = match &to.target {
        Location::Registry { reference } => {
            registry::export(store, reference, &records, &layers)?.to_string()
        }
        Location::Local { dir, tag } => {
            local::export(store, dir, tag, &records, &layers)?.to_string()
        }
    };
    progress.emit(Event::CacheExported {
        target: to.target.to_string(),
        records: records.len(),
        layers: layers.len(),
        digest,
    });
    Ok(())
}

/// The cache manifest: an OCI image manifest whose config is the cache config and whose
/// layers are every blob the records name, in the order they are first named.
fn cache_manifest(
    config: &Digest,
    config_size: u64,
    remote: &HashMap<Digest, Blob>,
    layers: &[Layer],
) -> Result<Vec<u8>> {
    let descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let b = &remote[&l.blob];
            serde_json::json!({
                "mediaType": b.media_type,
                "digest": b.digest.to_string(),
                "size": b.size,
            })
        })
        .collect();
    Ok(serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": config.to_string(),
            "size": config_size,
        },
        "layers": descriptors,
    }))?)
}
