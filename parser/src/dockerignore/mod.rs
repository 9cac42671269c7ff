//! `.dockerignore` files: reading them as moby's `ignorefile` does and
//! matching context paths as moby's `patternmatcher` decides.
//!
//! ```
//! use kiln_parser::dockerignore::{read_patterns, Matcher};
//! let lines = read_patterns(b"# build output\n/target\n*.log\n!keep.log\n").unwrap();
//! let m = Matcher::new(&lines).unwrap();
//! assert!(m.matches("target/debug/kiln"));
//! assert!(m.matches("x.log"));
//! assert!(!m.matches("keep.log"));
//! assert!(!m.matches("src/x.log")); // `*` does not cross `/`
//! ```
//!
//! Differences from BuildKit, all on malformed or exotic patterns: kiln
//! checks every pattern when the file is read (BuildKit reports some bad
//! patterns only when a path reaches them), and rejects the few Go regexp
//! escapes that can leak through a pattern and that kiln does not implement
//! (`\b`, `\B`, `\C`, `\Q`, `\p`, `\P`), naming the line.

pub mod gopath;
mod matcher;
mod regex;

use std::path::{Path, PathBuf};

pub use matcher::{Matcher, ParentMatch, Pattern};

/// The default ignore file name at the root of a build context.
pub const DOCKERIGNORE: &str = ".dockerignore";

/// Go's `bufio.MaxScanTokenSize`: moby fails on longer lines.
const MAX_LINE: usize = 64 * 1024;

/// One pattern of a .dockerignore file and the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreLine {
    /// The pattern, trimmed and cleaned, with its leading `!` if any.
    pub pattern: Vec<u8>,
    /// 1-based line number in the file.
    pub line: usize,
}

/// A .dockerignore file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}line {line}: {kind}{}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default(), if pattern.is_empty() { String::new() } else { format!(": {pattern:?}") })]
pub struct IgnoreError {
    /// The file, when the patterns came from one.
    pub file: Option<PathBuf>,
    /// 1-based line of the offending pattern (0 for errors not tied to a line).
    pub line: usize,
    /// The pattern as written (lossy UTF-8); empty when not tied to one.
    pub pattern: String,
    /// What is wrong.
    pub kind: IgnoreErrorKind,
}

/// What is wrong with a .dockerignore pattern or file.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreErrorKind {
    /// A line that is only `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// Go's `filepath.Match` rejects the pattern (e.g. an unclosed `[`).
    #[error("syntax error in pattern")]
    BadPattern,
    /// The regular expression moby builds from the pattern is invalid.
    #[error("syntax error in pattern: {0}")]
    BadRegex(String),
    /// A Go regexp feature reached through the pattern that kiln does not
    /// implement.
    #[error("unsupported in .dockerignore patterns: {0}")]
    Unsupported(String),
    /// A line longer than 64 KiB (moby's scanner limit).
    #[error("line too long")]
    LineTooLong,
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads .dockerignore content as moby's `ignorefile.ReadAll`: a UTF-8
/// BOM is dropped; lines starting with `#` are comments; each line is
/// trimmed of white space, `!` is kept apart (and trimmed after), the rest
/// cleaned like a path (`./a/` is `a`, `a/../b` is `b`) and a leading `/`
/// removed; blank lines are skipped.
pub fn read_patterns(content: &[u8]) -> Result<Vec<IgnoreLine>, IgnoreError> {
    let mut out = Vec::new();
    let mut rest = content;
    let mut number = 0;
    while !rest.is_empty() {
        let (mut line, after) = match rest.iter().position(|&c| c == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = after;
        if line.len() >= MAX_LINE {
            return Err(IgnoreError {
                file: None,
                line: number + 1,
                pattern: String::new(),
                kind: IgnoreErrorKind::LineTooLong,
            });
        }
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if number == 0 {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        number += 1;
        if line.first() == Some(&b'#') {
            continue;
        }
        let mut p = gopath::trim_space(line);
        if p.is_empty() {
            continue;
        }
        let invert = p[0] == b'!';
        if invert {
            p = gopath::trim_space(&p[1..]);
        }
        let mut pattern = Vec::with_capacity(p.len() + 1);
        if invert {
            pattern.push(b'!');
        }
        if !p.is_empty() {
            let cleaned = gopath::clean(p);
            let cleaned = if cleaned.len() > 1 && cleaned[0] == b'/' {
                &cleaned[1..]
            } else {
                &cleaned[..]
            };
            pattern.extend_from_slice(cleaned);
        }
        out.push(IgnoreLine {
            pattern,
            line: number,
        });
    }
    Ok(out)
}

/// The ignore file that applies to a build: `<Dockerfile>.dockerignore`
/// beside the Dockerfile when it exists, else `.dockerignore` at the root
/// of the context, else none.
pub fn find_ignore_file(context: &Path, dockerfile: &Path) -> Option<PathBuf> {
    if let Some(name) = dockerfile.file_name() {
        let mut specific = name.to_os_string();
        specific.push(".dockerignore");
        let candidate = dockerfile.with_file_name(specific);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    let default = context.join(DOCKERIGNORE);
    default.is_file().then_some(default)
}

/// Reads and compiles the ignore file that applies to a build (see
/// [`find_ignore_file`]); no file gives a matcher that excludes nothing.
/// Errors name the file and line.
pub fn load(context: &Path, dockerfile: &Path) -> Result<Matcher, IgnoreError> {
    let Some(file) = find_ignore_file(context, dockerfile) else {
        return Ok(Matcher::default());
    };
    let with_file = |mut e: IgnoreError| {
        e.file = Some(file.clone());
        e
    };
    let content = std::fs::read(&file).map_err(|e| {
        with_file(IgnoreError {
            file: None,
            line: 0,
            pattern: String::new(),
            kind: IgnoreErrorKind::Io(e),
        })
    })?;
    let lines = read_patterns(&content).map_err(with_file)?;
    Matcher::new(&lines).map_err(with_file)
}

#[cfg(test)]
mod tests;
