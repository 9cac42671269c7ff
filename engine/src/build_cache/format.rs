//! kiln's build-cache format: one OCI image manifest whose config blob
//! ([`CONFIG_MEDIA_TYPE`]) lists cache records, and whose `layers` are every layer blob those
//! records name, so a registry (or an OCI layout) keeps them all alive. See ARCHITECTURE.md.

use std::collections::HashMap;

use crate::{Error, Result};
use kiln_cache::Digest;
use kiln_solver::worker::{Layer, Output, Step};
use serde::{Deserialize, Serialize};

/// The media type of the cache config blob.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";
/// The format version this kiln writes and reads.
const VERSION: u32 = 1;
/// The largest cache config read (records and layers of big multi-stage builds fit easily).
pub const MAX_CONFIG: u64 = 64 << 20;

/// A blob as an OCI descriptor names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    /// Its media type.
    pub media_type: String,
    /// Its sha256 digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// One layer of the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheLayer {
    /// The sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// The blob in the cache (gzip for layers kiln built; as pulled for base layers): one of
    /// the manifest's `layers`.
    pub blob: Blob,
    /// The blob as the exporting store kept it (a plain tar for layers kiln built): what the
    /// importing store keeps too, so images built from the cache are byte-identical.
    pub stored: Blob,
}

/// One step of a cached result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CacheStep {
    /// A layer: its index in [`CacheConfig::layers`] and when it was made (unix seconds).
    Layer {
        /// Index into the layer table.
        index: usize,
        /// When the layer was made: images rebuilt from the cache get the same times.
        created: i64,
    },
    /// A step that changed no file.
    Empty,
}

/// One cache record: a vertex's cache key and its result, the filesystem as every step
/// from the base image up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheRecord {
    /// The vertex's cache key (64 hex digits of blake3, machine-independent).
    pub key: String,
    /// Its result, bottom first.
    pub steps: Vec<CacheStep>,
}

/// The config blob of a cache manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheConfig {
    /// The format version (1).
    pub version: u32,
    /// Every layer the records name, once each.
    pub layers: Vec<CacheLayer>,
    /// The records.
    pub records: Vec<CacheRecord>,
}

impl CacheConfig {
    /// The config for `records` (key, result); `remote` gives the cache's blob for a stored
    /// layer blob.
    pub fn new(records: &[(String, Output)], remote: &HashMap<Digest, Blob>) -> Result<Self> {
        let mut layers: Vec<CacheLayer> = Vec::new();
        let mut index: HashMap<Digest, usize> = HashMap::new();
        let mut out = Vec::new();
        for (key, output) in records {
            let Output::Fs(steps) = output else { continue };
            let mut cached = Vec::new();
            for step in steps {
                match step {
                    Step::Empty => cached.push(CacheStep::Empty),
                    Step::Layer(l) => {
                        let i = match index.get(&l.blob) {
                            Some(&i) => i,
                            None => {
                                let Some(blob) = remote.get(&l.blob) else {
                                    return Err(Error::invalid(format!(
                                        "layer {} has no blob in the cache",
                                        l.blob
                                    )));
                                };
                                layers.push(CacheLayer {
                                    diff_id: l.diff_id.clone(),
                                    blob: blob.clone(),
                                    stored: Blob {
                                        media_type: l.media_type.clone(),
                                        digest: l.blob.clone(),
                                        size: l.size,
                                    },
                                });
                                index.insert(l.blob.clone(), layers.len() - 1);
                                layers.len() - 1
                            }
                        };
                        cached.push(CacheStep::Layer {
                            index: i,
                            created: l.created,
                        });
                    }
                }
            }
            out.push(CacheRecord {
                key: key.clone(),
                steps: cached,
            });
        }
        Ok(CacheConfig {
            version: VERSION,
            layers,
            records: out,
        })
    }

    /// Parses and checks a config blob.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let config: CacheConfig = serde_json::from_slice(bytes)?;
        if config.version != VERSION {
            return Err(Error::invalid(format!(
                "cache format version {} (this kiln reads version {VERSION})",
                config.version
            )));
        }
        for r in &config.records {
            if r.key.len() != 64 || !r.key.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::invalid(format!(
                    "record key {:?} is not 64 hex digits",
                    r.key
                )));
            }
            for s in &r.steps {
                if let CacheStep::Layer { index, .. } = s {
                    if *index >= config.layers.len() {
                        return Err(Error::invalid(format!(
                            "record {} names layer #{index}, which is not listed",
                            r.key
                        )));
                    }
                }
            }
        }
        for l in &config.layers {
            // A plain tar's digest is its diff ID: anything else would be stored under a
            // digest that does not match its content.
            let plain = kiln_cache::layer::Compression::from_media_type(&l.stored.media_type)
                == Some(kiln_cache::layer::Compression::None);
            if plain && l.stored.digest != l.diff_id {
                return Err(Error::invalid(format!(
                    "layer {}: a plain tar must be stored under its diff ID",
                    l.diff_id
                )));
            }
        }
        Ok(config)
    }

    /// The records as the worker's results, by key.
    pub fn outputs(&self) -> HashMap<String, Output> {
        self.records
            .iter()
            .map(|r| {
                let mut diff_ids = Vec::new();
                let mut steps = Vec::new();
                for s in &r.steps {
                    match s {
                        CacheStep::Empty => steps.push(Step::Empty),
                        CacheStep::Layer { index, created } => {
                            let l = &self.layers[*index];
                            diff_ids.push(l.diff_id.clone());
                            let chain = kiln_cache::snapshot::chain_ids(&diff_ids)
                                .pop()
                                .expect("one diff ID at least");
                            steps.push(Step::Layer(Layer {
                                diff_id: l.diff_id.clone(),
                                blob: l.stored.digest.clone(),
                                size: l.stored.size,
                                media_type: l.stored.media_type.clone(),
                                chain,
                                created: *created,
                            }));
                        }
                    }
                }
                (r.key.clone(), Output::Fs(steps))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(content: &[u8], created: i64, parent: Option<&Layer>) -> Layer {
        let diff_id = Digest::of(content);
        let chain = match parent {
            None => diff_id.clone(),
            Some(p) => Digest::of(format!("{} {diff_id}", p.chain).as_bytes()),
        };
        Layer {
            diff_id: diff_id.clone(),
            blob: diff_id,
            size: content.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            chain,
            created,
        }
    }

    #[test]
    fn records_round_trip_with_shared_layers_listed_once() {
        let base = layer(b"base", 0, None);
        let top = layer(b"top", 1700000000, Some(&base));
        let a = Output::Fs(vec![Step::Layer(base.clone())]);
        let b = Output::Fs(vec![
            Step::Layer(base.clone()),
            Step::Empty,
            Step::Layer(top.clone()),
        ]);
        let records = vec![("a".repeat(64), a.clone()), ("b".repeat(64), b.clone())];
        let remote: HashMap<Digest, Blob> = [&base, &top]
            .iter()
            .map(|l| {
                let gz = Blob {
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    digest: Digest::of(format!("gz {}", l.blob).as_bytes()),
                    size: 7,
                };
                (l.blob.clone(), gz)
            })
            .collect();
        let config = CacheConfig::new(&records, &remote).unwrap();
        assert_eq!(config.layers.len(), 2);
        let bytes = serde_json::to_vec(&config).unwrap();
        let back = CacheConfig::parse(&bytes).unwrap();
        let outputs = back.outputs();
        assert_eq!(outputs[&"a".repeat(64)], a);
        assert_eq!(outputs[&"b".repeat(64)], b, "chain IDs and times come back");
    }

    #[test]
    fn malformed_configs_are_refused() {
        let bad_index = br#"{"version":1,"layers":[],"records":[{"key":"%K","steps":[{"layer":{"index":0,"created":0}}]}]}"#;
        let text = String::from_utf8_lossy(bad_index).replace("%K", &"c".repeat(64));
        assert!(CacheConfig::parse(text.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("not listed"));
        let bad_key = br#"{"version":1,"layers":[],"records":[{"key":"../x","steps":[]}]}"#;
        assert!(CacheConfig::parse(bad_key).is_err());
        assert!(CacheConfig::parse(br#"{"version":2,"layers":[],"records":[]}"#).is_err());
    }
}
