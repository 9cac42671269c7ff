//! Content-addressed cache keys, and why a key changed.
//!
//! A vertex's key is blake3 over a version tag, its operation's canonical
//! encoding, and for each input either that input's key or, where the vertex
//! reads selected files from a local source, the digest of exactly that
//! content. Names, labels and source locations are left out, so moving a
//! line or renaming a stage keeps the cache. An image source keys on its
//! layers' chain ID and platform, not on its name or manifest digest, so
//! nothing of the machine (where or how the base image was obtained, the
//! store's root, the context's path) reaches a key: two machines building
//! the same Dockerfile on the same context content compute the same keys,
//! which is what lets them share a cache through a registry.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::op::{Op, SourceOp};

/// Bumped whenever the encoding of keys changes, so old cache records stop matching.
const KEY_VERSION: &[u8] = b"kiln.cachekey.v2\0";

/// A vertex's cache key: 32 bytes of blake3.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// The key as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from(self.0).to_hex().to_string()
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", &self.to_hex()[..12])
    }
}

/// What one input contributes to a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InputKey {
    /// The input's own cache key.
    Vertex(CacheKey),
    /// A digest of exactly the files this vertex reads from the input (after
    /// include/exclude), as they will land: content, modes and owners, never
    /// mtimes. Used for local sources, so that editing an unrelated file of
    /// the context keeps this vertex's cache.
    Content(CacheKey),
}

/// Everything that went into a key, kept so a later miss can say what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    /// The operation, exactly as it was hashed.
    pub op: Op,
    /// The inputs' contributions, in input order.
    pub inputs: Vec<InputKey>,
    /// The resulting key.
    pub key: CacheKey,
}

impl KeyRecord {
    /// Computes the key of `op` over its inputs' contributions.
    pub fn new(op: &Op, inputs: Vec<InputKey>) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(KEY_VERSION);
        let encoded = key_encoding(op);
        h.update(&(encoded.len() as u64).to_le_bytes());
        h.update(&encoded);
        for input in &inputs {
            let (tag, key) = match input {
                InputKey::Vertex(k) => (b'v', k),
                InputKey::Content(k) => (b'c', k),
            };
            h.update(&[tag]);
            h.update(&key.0);
        }
        KeyRecord {
            op: op.clone(),
            inputs,
            key: CacheKey(*h.finalize().as_bytes()),
        }
    }

    /// Why `self` differs from `previous`, the record of the same step in an
    /// earlier build (empty when the keys are equal).
    pub fn dirty_reasons(&self, previous: &KeyRecord) -> Vec<DirtyReason> {
        if self.key == previous.key {
            return Vec::new();
        }
        let mut reasons = Vec::new();
        if self.op != previous.op {
            let now = serde_json::to_value(&self.op).expect("ops always serialize");
            let then = serde_json::to_value(&previous.op).expect("ops always serialize");
            let mut fields = Vec::new();
            diff_json("", &then, &now, &mut fields);
            reasons.push(DirtyReason::Definition { fields });
        }
        if self.inputs.len() != previous.inputs.len() {
            reasons.push(DirtyReason::InputCount {
                was: previous.inputs.len(),
                now: self.inputs.len(),
            });
        } else {
            for (index, (now, then)) in self.inputs.iter().zip(&previous.inputs).enumerate() {
                match (now, then) {
                    (a, b) if a == b => {}
                    (InputKey::Content(_), InputKey::Content(_)) => {
                        reasons.push(DirtyReason::Content { input: index })
                    }
                    _ => reasons.push(DirtyReason::Input { input: index }),
                }
            }
        }
        reasons
    }
}

/// The bytes of `op` that go into its key. serde_json of these types is
/// deterministic: struct fields in declaration order, sequences in order, no
/// maps.
fn key_encoding(op: &Op) -> Vec<u8> {
    if let Op::Source(SourceOp::Image {
        platform,
        rootfs: Some(rootfs),
        ..
    }) = op
    {
        let view = serde_json::json!({ "image": { "platform": platform, "rootfs": rootfs } });
        return serde_json::to_vec(&view).expect("json values always serialize");
    }
    serde_json::to_vec(op).expect("ops always serialize")
}

/// One reason a step's cache key changed since the last build, in the
/// spirit of cargo's fingerprint `DirtyReason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DirtyReason {
    /// The step's own definition changed: these fields, with old and new values.
    Definition {
        /// Each changed field as `path: old -> new`.
        fields: Vec<FieldChange>,
    },
    /// The step now has a different number of inputs.
    InputCount {
        /// Inputs in the earlier build.
        was: usize,
        /// Inputs now.
        now: usize,
    },
    /// The step it builds on (input `input`) changed.
    Input {
        /// Index of the input.
        input: usize,
    },
    /// The files it reads from input `input` changed.
    Content {
        /// Index of the input.
        input: usize,
    },
}

/// One changed field of an operation, as a JSON path and its two values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Where in the operation, e.g. `exec.env[2]`.
    pub path: String,
    /// The earlier value (JSON), or `None` when the field is new.
    pub was: Option<String>,
    /// The value now (JSON), or `None` when the field is gone.
    pub now: Option<String>,
}

impl fmt::Display for DirtyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirtyReason::Definition { fields } => {
                f.write_str("the instruction changed")?;
                for (i, c) in fields.iter().enumerate() {
                    let sep = if i == 0 { ": " } else { "; " };
                    write!(
                        f,
                        "{sep}{} {} -> {}",
                        c.path,
                        c.was.as_deref().unwrap_or("(none)"),
                        c.now.as_deref().unwrap_or("(none)")
                    )?;
                }
                Ok(())
            }
            DirtyReason::InputCount { was, now } => {
                write!(f, "it reads {now} inputs, it read {was}")
            }
            DirtyReason::Input { input: 0 } => f.write_str("the step before it changed"),
            DirtyReason::Input { input } => write!(f, "its input #{input} changed"),
            DirtyReason::Content { input } => {
                write!(f, "the files it reads from input #{input} changed")
            }
        }
    }
}

fn diff_json(
    path: &str,
    then: &serde_json::Value,
    now: &serde_json::Value,
    out: &mut Vec<FieldChange>,
) {
    use serde_json::Value;
    if then == now {
        return;
    }
    match (then, now) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_json(&p, x, y, out),
                    (x, y) => out.push(change(p, x, y)),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let p = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => diff_json(&p, x, y, out),
                    (x, y) => out.push(change(p, x, y)),
                }
            }
        }
        _ => out.push(change(path.to_string(), Some(then), Some(now))),
    }
}

fn change(
    path: String,
    was: Option<&serde_json::Value>,
    now: Option<&serde_json::Value>,
) -> FieldChange {
    FieldChange {
        path,
        was: was.map(|v| v.to_string()),
        now: now.map(|v| v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{ExecOp, NetworkMode, SecurityMode};

    fn run(cmd: &str, env: &[&str]) -> Op {
        Op::Exec(ExecOp {
            args: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
            env: env.iter().map(|s| s.to_string()).collect(),
            cwd: "/".into(),
            user: String::new(),
            network: NetworkMode::None,
            security: SecurityMode::Sandbox,
            mounts: vec![],
        })
    }

    fn base() -> CacheKey {
        KeyRecord::new(&Op::Source(SourceOp::Scratch), vec![]).key
    }

    #[test]
    fn same_definition_and_inputs_give_the_same_key() {
        let a = KeyRecord::new(&run("make", &[]), vec![InputKey::Vertex(base())]);
        let b = KeyRecord::new(&run("make", &[]), vec![InputKey::Vertex(base())]);
        assert_eq!(a.key, b.key);
        assert!(a.dirty_reasons(&b).is_empty());
    }

    #[test]
    fn every_part_of_the_key_changes_it() {
        let a = KeyRecord::new(&run("make", &[]), vec![InputKey::Vertex(base())]);
        let other_cmd = KeyRecord::new(&run("make all", &[]), vec![InputKey::Vertex(base())]);
        let other_input = KeyRecord::new(&run("make", &[]), vec![InputKey::Vertex(a.key)]);
        let content = KeyRecord::new(&run("make", &[]), vec![InputKey::Content(base())]);
        let keys = [a.key, other_cmd.key, other_input.key, content.key];
        for i in 0..keys.len() {
            for j in 0..i {
                assert_ne!(keys[i], keys[j], "{i} vs {j}");
            }
        }
    }

    #[test]
    fn a_changed_build_arg_is_named_with_its_old_and_new_value() {
        let old = KeyRecord::new(&run("make", &["V=1"]), vec![InputKey::Vertex(base())]);
        let new = KeyRecord::new(&run("make", &["V=2"]), vec![InputKey::Vertex(base())]);
        let reasons = new.dirty_reasons(&old);
        assert_eq!(
            reasons,
            vec![DirtyReason::Definition {
                fields: vec![FieldChange {
                    path: "exec.env[0]".into(),
                    was: Some("\"V=1\"".into()),
                    now: Some("\"V=2\"".into()),
                }]
            }]
        );
        assert_eq!(
            reasons[0].to_string(),
            "the instruction changed: exec.env[0] \"V=1\" -> \"V=2\""
        );
    }

    #[test]
    fn changed_parent_and_changed_content_are_told_apart() {
        let other = KeyRecord::new(&run("x", &[]), vec![]).key;
        let old = KeyRecord::new(
            &run("make", &[]),
            vec![InputKey::Vertex(base()), InputKey::Content(base())],
        );
        let new = KeyRecord::new(
            &run("make", &[]),
            vec![InputKey::Vertex(other), InputKey::Content(other)],
        );
        assert_eq!(
            new.dirty_reasons(&old),
            vec![
                DirtyReason::Input { input: 0 },
                DirtyReason::Content { input: 1 }
            ]
        );
    }

    fn image(reference: &str, digest: &str, rootfs: Option<&str>) -> Op {
        Op::Source(SourceOp::Image {
            reference: reference.into(),
            digest: Some(digest.into()),
            platform: "linux/amd64".into(),
            rootfs: rootfs.map(str::to_string),
        })
    }

    #[test]
    fn an_image_keys_on_its_layers_not_on_its_name_or_manifest() {
        let key = |op: Op| KeyRecord::new(&op, vec![]).key;
        // The same layers imported at another time, pulled compressed, or re-tagged.
        let a = key(image("busybox:latest", "sha256:aa", Some("sha256:c1")));
        let b = key(image("reg/x/bb:1", "sha256:bb", Some("sha256:c1")));
        assert_eq!(a, b);
        assert_ne!(
            a,
            key(image("busybox:latest", "sha256:aa", Some("sha256:c2")))
        );
        // Without a known chain the manifest digest decides.
        assert_ne!(
            key(image("busybox:latest", "sha256:aa", None)),
            key(image("busybox:latest", "sha256:bb", None))
        );
    }
}
