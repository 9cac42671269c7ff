//! kiln-parser: Dockerfile text to a typed, fully checked syntax tree.
//!
//! This crate will own the first stage of kiln's data flow: parser directives,
//! line continuations, heredocs, every instruction and its flags, BuildKit's
//! word expansion, and `.dockerignore` matching. Every node carries its source
//! span so later stages can point errors at the line a user wrote.

pub mod dockerignore;
pub mod shell;
