//! Parse errors: what went wrong, in which file, at which line and column,
//! with the source line shown under a marker (through miette).

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};

use crate::span::Span;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is not UTF-8 text.
    #[error("the Dockerfile is not valid UTF-8 text")]
    InvalidUtf8,
    /// Nothing but comments, directives and blank lines.
    #[error("file with no instructions")]
    NoInstructions,
    /// A line longer than BuildKit's scanner accepts.
    #[error("dockerfile line greater than max allowed size of 65535")]
    LineTooLong,
    /// The same parser directive twice.
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    /// A heredoc whose terminator line never came.
    #[error("unterminated heredoc {0:?}")]
    UnterminatedHeredoc(String),
    /// A heredoc delimiter that could not be read.
    #[error("{0}")]
    HeredocWord(String),
    /// A JSON array holding non-strings.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    /// `ENV key` without a value.
    #[error("{0} must have two arguments")]
    MissingValue(&'static str),
    /// `ENV a=b c`.
    #[error("Syntax error - can't find = in {0:?}. Must be of the form: name=value")]
    NoEquals(String),
    /// An instruction kiln does not know.
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    /// A flag the instruction does not take.
    #[error("unknown flag: {0}")]
    UnknownFlag(String),
    /// A flag given twice that may be given once.
    #[error("duplicate flag specified: {0}")]
    DuplicateFlag(String),
    /// `--flag` without `=value` where a value is needed, or `--flag=`.
    #[error("missing a value on flag: {0}")]
    MissingFlagValue(String),
    /// A word in flag position not starting with `--`.
    #[error("arg should start with -- : {0}")]
    NotAFlag(String),
    /// `--link=maybe`.
    #[error("expecting boolean value for flag {flag}, not: {value}")]
    BadBool {
        /// The flag.
        flag: String,
        /// What was given.
        value: String,
    },
    /// Wrong number of arguments.
    #[error("{instruction} requires {expected}")]
    ArgCount {
        /// The instruction, upper-case.
        instruction: &'static str,
        /// What it needs ("exactly one argument", ...).
        expected: &'static str,
    },
    /// An argument or flag value that is not allowed.
    #[error("{0}")]
    Invalid(String),
    /// A `--mount` value that is not allowed.
    #[error("invalid --mount: {0}")]
    Mount(String),
}

/// A parse error with its location and the source it points into.
///
/// Boxed inside so `Result<_, ParseError>` stays one pointer wide.
#[derive(Debug)]
pub struct ParseError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    file: String,
    span: Span,
    source_code: NamedSource<String>,
    label: &'static str,
    help: Option<String>,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.0;
        write!(
            f,
            "{}:{}:{}: {}",
            i.file, i.span.start.line, i.span.start.column, i.kind
        )?;
        if let Some(help) = &i.help {
            write!(f, " ({help})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

impl Diagnostic for ParseError {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.0.source_code)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.0.span;
        let at = SourceSpan::new(span.start.offset.into(), span.len());
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(self.0.label.to_string()),
            at,
        ))))
    }

    fn help(&self) -> Option<Box<dyn std::fmt::Display + '_>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
}

impl ParseError {
    /// An error of `kind` at `span` in `source` (the whole file text).
    pub fn new(kind: ErrorKind, file: &str, source: &str, span: Span) -> Self {
        let label = match &kind {
            ErrorKind::UnknownInstruction(_) => "unknown instruction",
            ErrorKind::UnknownFlag(_) => "unknown flag",
            ErrorKind::UnterminatedHeredoc(_) => "heredoc starts here",
            _ => "here",
        };
        ParseError(Box::new(Inner {
            source_code: NamedSource::new(file, source.to_string()),
            label,
            kind,
            file: file.to_string(),
            span,
            help: None,
        }))
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The file name as given to the parser (`-` for standard input).
    pub fn file(&self) -> &str {
        &self.0.file
    }

    /// Where it went wrong.
    pub fn span(&self) -> Span {
        self.0.span
    }

    /// The hint, if any (e.g. `did you mean FROM?`).
    pub fn help(&self) -> Option<&str> {
        self.0.help.as_deref()
    }

    /// The 1-based line the error points at.
    pub fn line(&self) -> usize {
        self.0.span.start.line
    }

    /// The 1-based column the error points at.
    pub fn column(&self) -> usize {
        self.0.span.start.column
    }
}

/// The candidate nearest to `word` (case-insensitive) if its edit distance
/// is below 3, as BuildKit's `suggest` package decides it; `None` when `word`
/// is itself a candidate.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    let mut best: Option<&str> = None;
    let mut min = 3;
    for c in candidates {
        let lc = c.to_lowercase();
        if lc == word {
            return None;
        }
        let d = strsim::levenshtein(&word, &lc);
        if d < min {
            best = Some(c);
            min = d;
        }
    }
    best
}
