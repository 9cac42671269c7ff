//! The build graph: vertices (operations) and their inputs, acyclic by
//! construction because a vertex can only name inputs that already exist.

use serde::{Deserialize, Serialize};

use crate::op::Op;

/// Index of a vertex in its [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VertexId(pub usize);

/// Where in the user's input a vertex came from, for progress and errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Origin {
    /// The file the instruction is in (e.g. `Dockerfile`).
    pub file: String,
    /// 1-based line of the instruction.
    pub line: usize,
    /// Build stage the vertex belongs to, by name or index.
    pub stage: String,
}

/// One operation and the vertices whose outputs it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vertex {
    /// What the vertex does.
    pub op: Op,
    /// The vertices whose filesystems it reads; for `Exec` and `File`
    /// input 0 is the filesystem the result builds on.
    pub inputs: Vec<VertexId>,
    /// A short human label, e.g. `[build 2/4] RUN make`. Not part of the cache key.
    pub name: String,
    /// Where the vertex came from. Not part of the cache key.
    pub origin: Option<Origin>,
    /// Run it even when its key is cached (`--no-cache-filter`). Not part of the key.
    #[serde(default)]
    pub ignore_cache: bool,
}

/// Errors building a graph.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    /// An input names a vertex that does not exist (yet).
    #[error("vertex input {input:?} does not exist (graph has {len} vertices)")]
    UnknownInput {
        /// The id named.
        input: VertexId,
        /// How many vertices the graph had.
        len: usize,
    },
    /// An op refers to an input index its vertex does not have.
    #[error("{what} refers to input {index}, but the vertex has {inputs} inputs")]
    BadInputIndex {
        /// What referred to it.
        what: &'static str,
        /// The index used.
        index: usize,
        /// How many inputs there are.
        inputs: usize,
    },
}

/// A build graph: an arena of vertices in an order where inputs come first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Graph {
    vertices: Vec<Vertex>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a vertex whose inputs are already in the graph and returns its id.
    pub fn add(&mut self, vertex: Vertex) -> Result<VertexId, GraphError> {
        let len = self.vertices.len();
        if let Some(&input) = vertex.inputs.iter().find(|i| i.0 >= len) {
            return Err(GraphError::UnknownInput { input, len });
        }
        check_input_indices(&vertex)?;
        self.vertices.push(vertex);
        Ok(VertexId(len))
    }

    /// The vertex with this id.
    ///
    /// # Panics
    /// When the id is not of this graph: ids only come from [`Graph::add`].
    pub fn vertex(&self, id: VertexId) -> &Vertex {
        &self.vertices[id.0]
    }

    /// Number of vertices.
    pub fn len(&self) -> usize {
        self.vertices.len()
    }

    /// Whether the graph has no vertex.
    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty()
    }

    /// Every vertex with its id, inputs before the vertices that read them.
    pub fn iter(&self) -> impl Iterator<Item = (VertexId, &Vertex)> {
        self.vertices
            .iter()
            .enumerate()
            .map(|(i, v)| (VertexId(i), v))
    }

    /// The vertices `target` needs (itself included), inputs first: what a
    /// build of `target` must consider, and nothing of unrelated stages.
    pub fn needed_by(&self, target: VertexId) -> Vec<VertexId> {
        let mut needed = vec![false; self.vertices.len()];
        let mut stack = vec![target];
        while let Some(id) = stack.pop() {
            if !std::mem::replace(&mut needed[id.0], true) {
                stack.extend(&self.vertices[id.0].inputs);
            }
        }
        (0..self.vertices.len())
            .filter(|&i| needed[i])
            .map(VertexId)
            .collect()
    }
}

fn check_input_indices(vertex: &Vertex) -> Result<(), GraphError> {
    use crate::op::{FileAction, MountKind};
    let inputs = vertex.inputs.len();
    let check = |what, index: usize| {
        if index < inputs {
            Ok(())
        } else {
            Err(GraphError::BadInputIndex {
                what,
                index,
                inputs,
            })
        }
    };
    match &vertex.op {
        Op::Source(_) => Ok(()),
        Op::Exec(exec) => {
            check("exec root filesystem", 0)?;
            for m in &exec.mounts {
                match &m.kind {
                    MountKind::Bind { input, .. } => check("bind mount", *input)?,
                    MountKind::Cache {
                        from: Some((input, _)),
                        ..
                    } => check("cache mount seed", *input)?,
                    _ => {}
                }
            }
            Ok(())
        }
        Op::Merge => check("merge base", 0),
        Op::File(file) => file.actions.iter().try_for_each(|a| match a {
            FileAction::Copy(copy) => check("copy source", copy.input),
            _ => Ok(()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{ExecOp, FileAction, FileOp, SourceOp};

    fn scratch() -> Vertex {
        Vertex {
            op: Op::Source(SourceOp::Scratch),
            inputs: vec![],
            name: "scratch".into(),
            origin: None,
            ignore_cache: false,
        }
    }

    fn run(input: VertexId) -> Vertex {
        Vertex {
            op: Op::Exec(ExecOp {
                args: vec!["true".into()],
                env: vec![],
                cwd: "/".into(),
                user: String::new(),
                network: Default::default(),
                security: Default::default(),
                mounts: vec![],
            }),
            inputs: vec![input],
            name: "RUN true".into(),
            origin: None,
            ignore_cache: false,
        }
    }

    #[test]
    fn inputs_must_exist_so_no_cycle_can_be_built() {
        let mut g = Graph::new();
        let err = g.add(run(VertexId(0))).unwrap_err();
        assert_eq!(
            err,
            GraphError::UnknownInput {
                input: VertexId(0),
                len: 0
            }
        );
        let s = g.add(scratch()).unwrap();
        assert_eq!(g.add(run(s)).unwrap(), VertexId(1));
    }

    #[test]
    fn ops_cannot_point_past_their_inputs() {
        let mut g = Graph::new();
        let no_base = Vertex {
            inputs: vec![],
            ..run(VertexId(0))
        };
        assert!(matches!(
            g.add(no_base),
            Err(GraphError::BadInputIndex { index: 0, .. })
        ));
        let s = g.add(scratch()).unwrap();
        let copy = Vertex {
            op: Op::File(FileOp {
                actions: vec![FileAction::Copy(crate::op::CopyAction {
                    input: 1,
                    sources: vec!["a".into()],
                    dest: "/".into(),
                    owner: None,
                    mode: None,
                    exclude: vec![],
                    parents: false,
                    unpack_archives: false,
                    follow_symlinks: true,
                })],
            }),
            inputs: vec![s],
            name: "COPY a /".into(),
            origin: None,
            ignore_cache: false,
        };
        assert!(matches!(
            g.add(copy),
            Err(GraphError::BadInputIndex {
                what: "copy source",
                index: 1,
                inputs: 1
            })
        ));
    }

    #[test]
    fn needed_by_skips_unrelated_stages() {
        let mut g = Graph::new();
        let a = g.add(scratch()).unwrap();
        let a2 = g.add(run(a)).unwrap();
        let b = g.add(scratch()).unwrap();
        let _b2 = g.add(run(b)).unwrap();
        let c = g.add(run(a2)).unwrap();
        assert_eq!(g.needed_by(c), vec![a, a2, c]);
        assert_eq!(g.needed_by(b), vec![b]);
    }
}
