//! BuildKit's shell lexer: variable expansion, quotes, escapes and word
//! splitting for Dockerfile arguments.
//!
//! Behaves exactly as BuildKit's `frontend/dockerfile/shell` package: `$v`,
//! `${v}`, `${v:-w}`, `${v-w}`, `${v:+w}`, `${v+w}`, `${v:?msg}`,
//! `${v?msg}`, `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`, `${v/p/r}` and
//! `${v//p/r}` (patterns: `*`, `?`, `\` escapes), single and double quotes,
//! a configurable escape character, `ProcessWord`, `ProcessWords` and the
//! matched/unmatched variable sets. [`expanded_args`] says which
//! instructions expand which arguments.
//!
//! Known BuildKit quirks kept on purpose (so kiln builds what BuildKit
//! builds): `*` and `?` in patterns do not match a newline (Go's `.`), and in
//! [`Lexer::process_words`] a `${v:-w}` style operator drops what the
//! current split word had collected before it (`a${X:-b}c` gives `bc`).

mod error;
mod glob;
mod instructions;
mod lex;

#[cfg(test)]
mod tests;

pub use error::{ExpandError, ExpandErrorKind, VarUse};
pub use instructions::{expanded_args, expands, ExpandedArg, Expansion};
pub use lex::{Env, EnvList, Lexer, WordExpansion, DEFAULT_WORK_LIMIT};
