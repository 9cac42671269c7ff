//! The compose loader's error: every failure that comes from a file names the file, and the
//! line and column wherever the YAML gives them, so a face can print `compose.yaml:5:1: ...`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A place in a compose file: the file as the user named it (made absolute), 1-based line and
/// column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: Arc<str>,
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// What went wrong loading a compose project.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// No compose file was given and none of the default names exists in the directory or
    /// its parents.
    #[error("no configuration file provided: not found (looked for {names} in {dir} and its parents)", dir = .dir.display())]
    NoConfigFile {
        /// Where the lookup started.
        dir: PathBuf,
        /// The names looked for.
        names: String,
    },
    /// A file could not be read.
    #[error("reading {path}: {source}", path = .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("{location}: yaml: {message} (line {line})", line = .location.line)]
    Yaml {
        /// Where the parser stopped.
        location: Location,
        /// The parser's message.
        message: String,
    },
    /// A key the compose specification does not define (it is strict: only `x-` keys are
    /// free).
    #[error("{location}: {path}: additional property {key:?} is not allowed (line {line})", line = .location.line)]
    UnknownKey {
        /// Where the key is.
        location: Location,
        /// The mapping it is in (`services.web`, or `(root)`).
        path: String,
        /// The key.
        key: String,
    },
    /// A value with the wrong type or syntax (a bad port, duration, restart policy...).
    #[error("{location}: {path}: {message} (line {line})", line = .location.line)]
    Invalid {
        /// Where the value is.
        location: Location,
        /// The key path of the value (`services.web.ports[0]`).
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// `${VAR:?message}` or `${VAR?message}` with VAR missing.
    #[error("{location}: required variable {name} is missing a value{sep}{message} (line {line})", line = .location.line, sep = if .message.is_empty() { "" } else { ": " })]
    MissingVariable {
        /// Where the reference is.
        location: Location,
        /// The variable.
        name: String,
        /// The message the file gives.
        message: String,
    },
    /// A `${` with no valid variable expression.
    #[error("{location}: invalid interpolation format for {path}: {template:?}; you may need to escape any $ with another $ (line {line})", line = .location.line)]
    BadInterpolation {
        /// Where the value is.
        location: Location,
        /// The key path of the value.
        path: String,
        /// The value as written.
        template: String,
    },
    /// A service depends (depends_on, links, network_mode or volumes_from) on a service the
    /// project does not define.
    #[error("{location}: service {service:?} depends on undefined service {dependency:?} (line {line})", line = .location.line)]
    UnknownService {
        /// Where the reference is.
        location: Location,
        /// The depending service.
        service: String,
        /// The missing one.
        dependency: String,
    },
    /// A service needs one that the active profiles disable.
    #[error("{location}: service {service:?} depends on service {dependency:?}, which is disabled (its profiles {profiles:?} are not active) (line {line})", line = .location.line)]
    DisabledService {
        /// Where the reference is.
        location: Location,
        /// The depending service.
        service: String,
        /// The disabled one.
        dependency: String,
        /// Its profiles.
        profiles: Vec<String>,
    },
    /// A reference to an undefined top-level network, volume, secret or config.
    #[error("{location}: service {service:?} refers to undefined {kind} {name:?} (line {line})", line = .location.line)]
    UndefinedResource {
        /// Where the reference is.
        location: Location,
        /// The service.
        service: String,
        /// network, volume, secret, config.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// The services' dependencies form a cycle.
    #[error("dependency cycle detected: {}", .services.join(" -> "))]
    Cycle {
        /// The services on the cycle, the first repeated at the end.
        services: Vec<String>,
    },
    /// A required env_file does not exist or cannot be read.
    #[error("{location}: env file {path} not found: {source} (line {line})", path = .path.display(), line = .location.line)]
    EnvFile {
        /// Where the env_file entry is.
        location: Location,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An env file (`.env`, `--env-file`, `env_file:`) has a bad line.
    #[error("{path}:{line}: {message}", path = .path.display())]
    Dotenv {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A project name that is not lowercase letters, digits, `-` and `_` starting with a
    /// letter or digit.
    #[error("invalid project name {name:?}: it must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit")]
    ProjectName {
        /// The name.
        name: String,
    },
    /// A problem with the options themselves (a --scale for an unknown service, ...).
    #[error("{0}")]
    Options(String),
}

impl ComposeError {
    /// Where in which file the error is, when it comes from one place of a file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ComposeError::Yaml { location, .. }
            | ComposeError::UnknownKey { location, .. }
            | ComposeError::Invalid { location, .. }
            | ComposeError::MissingVariable { location, .. }
            | ComposeError::BadInterpolation { location, .. }
            | ComposeError::UnknownService { location, .. }
            | ComposeError::DisabledService { location, .. }
            | ComposeError::UndefinedResource { location, .. }
            | ComposeError::EnvFile { location, .. } => Some(location),
            ComposeError::NoConfigFile { .. }
            | ComposeError::Read { .. }
            | ComposeError::Cycle { .. }
            | ComposeError::Dotenv { .. }
            | ComposeError::ProjectName { .. }
            | ComposeError::Options(_) => None,
        }
    }
}

impl From<ComposeError> for crate::Error {
    /// Every compose error is the user's input being wrong: [`crate::Error::Invalid`], with the
    /// message (which carries the file, line and column) kept whole.
    fn from(error: ComposeError) -> crate::Error {
        match error {
            ComposeError::Read { path, source } => crate::Error::io("reading", path, source),
            other => crate::Error::Invalid(other.to_string()),
        }
    }
}
