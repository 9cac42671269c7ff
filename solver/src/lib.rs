//! kiln-solver: a parsed Dockerfile plus build args to a DAG of small
//! operations (image source, exec, file op, metadata), only what the target
//! needs. Each vertex gets a content-addressed cache key (blake3 of its
//! definition, its inputs' keys and the content of the files it reads), and
//! ready vertices run in parallel.
//!
//! - [`op`]: the vocabulary (what a vertex does).
//! - [`graph`]: vertices and their inputs.
//! - [`key`]: cache keys, and why a key changed ([`key::DirtyReason`]).
//! - [`context`] and [`statcache`]: the build context, digested by what a step reads.
//! - [`fileop`]: COPY, ADD and the other file edits, resolved inside their root.
//! - [`scheduler`]: runs what a target needs, in parallel, through a [`scheduler::Worker`].

pub mod context;
pub mod fileop;
pub mod frontend;
pub mod graph;
pub mod imageconfig;
pub mod key;
pub mod op;
pub mod scheduler;
pub mod statcache;
pub mod worker;
