//! kiln-parser: Dockerfile text to a typed, fully checked syntax tree.
//!
//! Parsing runs in two layers, as in BuildKit:
//!
//! 1. [`parse_raw`] reads lines: parser directives, comments, continuations,
//!    heredocs, and splits each instruction's arguments the way BuildKit's
//!    `parser` package does ([`RawDockerfile`], printable with
//!    [`RawDockerfile::dump`] in BuildKit's s-expression format).
//! 2. [`parse`] turns that into typed instructions ([`Dockerfile`]), checking
//!    every flag and argument the way BuildKit's `instructions` package does.
//!
//! Every node carries its source [`Span`]; every error is a [`ParseError`]
//! naming file, line and column, renderable with miette.
//!
//! # Where kiln differs from BuildKit
//!
//! The line-level parse reproduces BuildKit's `parser.Parse` and its dump
//! byte for byte (checked against BuildKit's own parser on its test files
//! and on thousands of random inputs), except where a Go quirk cannot be
//! expressed or would be unsafe:
//!
//! - input must be UTF-8 (BuildKit passes invalid bytes through);
//! - heredoc detection gives up on `${...}` nested more than 256 deep
//!   (the line then has no heredocs) instead of recursing without bound;
//! - where BuildKit's byte-wise flag splitting would start the arguments in
//!   the middle of a character, kiln starts them at the next character; the
//!   `HEALTHCHECK` type word is split at ASCII whitespace only;
//! - exec-form JSON is read by serde_json: a lone UTF-16 surrogate escape or
//!   nesting deeper than 128 makes it shell form, where Go would accept it;
//! - `--dump` quotes with Rust's Unicode tables, which may be a version
//!   newer than the Go release BuildKit was built with.
//!
//! The instruction checks follow BuildKit's `instructions` package (flags,
//! argument counts, `--mount` options, durations); kiln additionally checks
//! `EXPOSE` port syntax and wants a literal `--mount` `type=` (BuildKit
//! would expand a variable there).

#![warn(missing_docs)]

pub mod directives;
pub mod dockerignore;
pub mod error;
pub mod heredoc;
pub mod instructions;
pub mod line_parsers;
pub mod lint;
pub mod node;
pub mod outline;
pub mod quote;
pub mod raw;
pub mod shell;
pub mod span;

pub use error::{ErrorKind, ParseError};
pub use instructions::{Command, Dockerfile, Instruction, Stage};
pub use node::{RawArg, RawDockerfile, RawInstruction, Warning, Word};
pub use raw::parse_raw;
pub use span::{Position, Span};

/// Decodes Dockerfile bytes as UTF-8, or names the line and column of the
/// first invalid byte.
pub fn decode(bytes: &[u8], file: &str) -> Result<String, ParseError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => {
            let valid = e.valid_up_to();
            let lossy = String::from_utf8_lossy(bytes).into_owned();
            let prefix = String::from_utf8_lossy(&bytes[..valid]).into_owned();
            let index = span::LineIndex::new(&lossy);
            let at = prefix.len();
            Err(ParseError::new(
                ErrorKind::InvalidUtf8,
                file,
                &lossy,
                index.span(at, at + 1),
            ))
        }
    }
}

/// Parses and checks a whole Dockerfile: the line-level parse, then every
/// instruction's flags and arguments, grouped into stages.
pub fn parse(text: &str, file: &str) -> Result<Dockerfile, ParseError> {
    let raw = parse_raw(text, file)?;
    instructions::from_raw(raw, text, file)
}

/// [`parse`] for bytes (checks they are UTF-8 first).
pub fn parse_bytes(bytes: &[u8], file: &str) -> Result<Dockerfile, ParseError> {
    let text = decode(bytes, file)?;
    parse(&text, file)
}
