//! Errors of word expansion.

use std::collections::BTreeSet;

/// Which variables a word read while it was expanded.
///
/// The solver uses `matched` to know which ARGs a word depends on (cache
/// keys); lint uses `unmatched` to flag undefined ARGs (e.g. in FROM).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VarUse {
    /// Names that were looked up and set (possibly to "").
    pub matched: BTreeSet<String>,
    /// Names that were looked up and not set.
    pub unmatched: BTreeSet<String>,
}

/// A word that could not be expanded.
///
/// Displays as BuildKit words it (`failed to process "w": ...`); `offset`
/// says where in the word the offending construct starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {word:?}: {kind}")]
pub struct ExpandError {
    /// The word as given.
    pub word: String,
    /// Byte offset in `word` of the quote, `${` or end of word at fault.
    pub offset: usize,
    /// What went wrong.
    pub kind: ExpandErrorKind,
    /// Variables read before the error (boxed to keep errors small).
    pub vars: Box<VarUse>,
}

impl ExpandError {
    /// The 1-based column (in characters) of [`ExpandError::offset`].
    pub fn column(&self) -> usize {
        let at = self.offset.min(self.word.len());
        // Offsets always fall on character boundaries; count up to it.
        self.word
            .char_indices()
            .take_while(|&(i, _)| i < at)
            .count()
            + 1
    }
}

/// What went wrong while expanding a word. Messages are BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandErrorKind {
    /// `'...` without its closing quote.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// `"...` without its closing quote.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// The word ended inside `${...`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${}`, `${:...}` or `${{...`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// `${v/p` without the `/` before the replacement.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// The word ended before the character that closes a construct.
    #[error("unexpected end of statement while looking for matching {0}")]
    UnexpectedEnd(char),
    /// An operator other than the supported ones (e.g. `${v:=w}`, `${v:#p}`).
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${v?msg}` or `${v:?msg}` on an unset (or empty) variable.
    #[error("{name}: {message}")]
    Unset {
        /// The variable.
        name: String,
        /// The user's message, or BuildKit's default.
        message: String,
    },
    /// The word needs more work than the lexer's limit (kiln's guard
    /// against nested replacements that grow without bound; BuildKit has
    /// no such limit).
    #[error("expansion too large or complex (over {limit} units of work)")]
    TooComplex {
        /// The limit in force.
        limit: u64,
    },
    /// A bad escape in a `#`, `%` or `/` pattern.
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern {
        /// The pattern as expanded.
        pattern: String,
        /// Why it is invalid.
        reason: String,
    },
}
