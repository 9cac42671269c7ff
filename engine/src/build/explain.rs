//! `--explain-cache`: why each step that ran missed the cache, and the records the next
//! build compares with.

use std::path::Path;

use kiln_cache::Store;
use kiln_solver::scheduler;
use kiln_solver::worker::{LocalWorker, Output};

/// Why each step that ran missed the cache, against the record the same
/// step (same context, Dockerfile, stage and line) left in the previous
/// build; and the records for the next build to compare with.
pub(super) fn explain_cache(
    store: &Store,
    context: &Path,
    graph: &kiln_solver::graph::Graph,
    solved: &scheduler::Solved<Output>,
    worker: &LocalWorker,
) -> Vec<String> {
    let context = std::fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
    let step_key = |id: kiln_solver::graph::VertexId| -> Option<String> {
        let origin = graph.vertex(id).origin.as_ref()?;
        let identity = format!(
            "{}\0{}\0{}\0{}",
            context.display(),
            origin.file,
            origin.stage,
            origin.line
        );
        Some(format!("explain:{}", short_hash(identity.as_bytes())))
    };
    let mut lines = Vec::new();
    for &id in &solved.ran {
        let (Some(key), Some(now)) = (step_key(id), solved.keys.get(&id)) else {
            continue;
        };
        let name = &graph.vertex(id).name;
        let previous = store
            .cache_get(&key)
            .ok()
            .flatten()
            .and_then(|r| serde_json::from_value::<kiln_solver::key::KeyRecord>(r.value).ok());
        let why = match previous {
            None => vec!["no earlier build of this step".to_string()],
            Some(prev) if prev.key == now.key => {
                vec!["its result was no longer in the cache".to_string()]
            }
            Some(prev) => now
                .dirty_reasons(&prev)
                .iter()
                .map(|r| match r {
                    kiln_solver::key::DirtyReason::Content { .. } => {
                        let files = worker.changed_context_files(graph, id);
                        match files.len() {
                            0 => "the build context files it reads changed".to_string(),
                            n if n <= 10 => format!("context files changed: {}", files.join(", ")),
                            n => format!(
                                "{n} context files changed: {}, ...",
                                files[..10].join(", ")
                            ),
                        }
                    }
                    other => other.to_string(),
                })
                .collect(),
        };
        lines.push(format!("{name}: cache miss: {}", why.join("; ")));
    }
    // The records only hold what was hashed (ops and digests): no file
    // content and no secret value, which never enter an op.
    let records: Vec<(String, kiln_cache::metadata::CacheRecord)> = solved
        .keys
        .iter()
        .filter_map(|(&id, record)| {
            let value = serde_json::to_value(record).ok()?;
            let rec = kiln_cache::metadata::CacheRecord {
                blobs: Vec::new(),
                snapshots: Vec::new(),
                value,
                created: 0,
                last_used: 0,
            };
            Some((step_key(id)?, rec))
        })
        .collect();
    let batch: Vec<(&str, &kiln_cache::metadata::CacheRecord)> =
        records.iter().map(|(k, r)| (k.as_str(), r)).collect();
    // A build whose explanations cannot be kept still succeeded.
    let _ = store.cache_put_all(&batch);
    lines
}

fn short_hash(bytes: &[u8]) -> String {
    kiln_cache::Digest::of(bytes).hex()[..32].to_string()
}
