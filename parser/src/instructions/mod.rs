//! The typed syntax tree: every instruction with its checked flags and
//! arguments, grouped into build stages, as BuildKit's `instructions`
//! package builds it. Serialized as JSON by [`Dockerfile::to_json`]; the
//! schema is documented in `parser/SCHEMA.md`.

mod convert;
pub mod flags;
pub mod mount;
pub mod units;

use serde::Serialize;

use crate::directives::Directive;
use crate::heredoc::Heredoc;
use crate::node::{Warning, Word};
use crate::span::Span;

pub use convert::{from_raw, INSTRUCTION_NAMES};
pub use mount::{Mount, MountType, Sharing};

/// The version of the JSON schema in `parser/SCHEMA.md`. Bumped on any
/// change that is not a pure addition.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole parsed and checked Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dockerfile {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The file name given to the parser.
    pub file: String,
    /// The escape character in force (`\` or `` ` ``).
    pub escape: char,
    /// Parser directives from the top of the file.
    pub directives: Vec<Directive>,
    /// `ARG` instructions before the first `FROM` (global build arguments).
    pub meta_args: Vec<Instruction>,
    /// Build stages in order.
    pub stages: Vec<Stage>,
    /// Non-fatal findings of the parser.
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// The tree as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain data structs to a String cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// One build stage: a `FROM` and the instructions up to the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// The stage's position, from 0.
    pub index: usize,
    /// The stage name lower-cased (BuildKit's rule), if the stage has one.
    pub name: Option<String>,
    /// The `FROM` instruction.
    pub from: Instruction,
    /// The instructions after `FROM`.
    pub instructions: Vec<Instruction>,
    /// From the `FROM` keyword to the end of the stage's last instruction.
    pub span: Span,
}

/// One instruction with where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Instruction {
    /// The keyword exactly as written (its case is kept for linting).
    pub keyword: String,
    /// Where the keyword was written.
    pub keyword_span: Span,
    /// The whole instruction, heredoc bodies included.
    pub span: Span,
    /// The flags as written (`--name=value` words, quotes removed).
    pub flags: Vec<Word>,
    /// Comment lines directly above the instruction.
    pub comments: Vec<String>,
    /// The logical line (continuations joined).
    pub original: String,
    /// What the instruction says.
    pub command: Command,
}

/// What an instruction says, one variant per Dockerfile instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "instruction", rename_all = "UPPERCASE")]
pub enum Command {
    /// `FROM [--platform=p] image [AS name]`.
    From(From),
    /// `RUN [flags] command`.
    Run(Run),
    /// `CMD command`.
    Cmd(CommandLine),
    /// `ENTRYPOINT command`.
    Entrypoint(CommandLine),
    /// `LABEL k=v ...`.
    Label(KeyValues),
    /// `EXPOSE port[/proto] ...`.
    Expose(Expose),
    /// `ENV k=v ...` or `ENV k v`.
    Env(KeyValues),
    /// `ADD [flags] src... dest`.
    Add(Add),
    /// `COPY [flags] src... dest`.
    Copy(Copy),
    /// `VOLUME path...`.
    Volume(Volume),
    /// `USER user[:group]`.
    User(Single),
    /// `WORKDIR path`.
    Workdir(Single),
    /// `ARG name[=default] ...`.
    Arg(Arg),
    /// `ONBUILD instruction`.
    Onbuild(Onbuild),
    /// `STOPSIGNAL signal`.
    StopSignal(Single),
    /// `HEALTHCHECK NONE` or `HEALTHCHECK [flags] CMD command`.
    Healthcheck(Healthcheck),
    /// `SHELL ["exe", "arg"...]`.
    Shell(CommandLine),
    /// `MAINTAINER name` (deprecated).
    Maintainer(Single),
}

impl Command {
    /// The instruction's canonical upper-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::From(_) => "FROM",
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Label(_) => "LABEL",
            Command::Expose(_) => "EXPOSE",
            Command::Env(_) => "ENV",
            Command::Add(_) => "ADD",
            Command::Copy(_) => "COPY",
            Command::Volume(_) => "VOLUME",
            Command::User(_) => "USER",
            Command::Workdir(_) => "WORKDIR",
            Command::Arg(_) => "ARG",
            Command::Onbuild(_) => "ONBUILD",
            Command::StopSignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Shell(_) => "SHELL",
            Command::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// `FROM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct From {
    /// The base image or stage (variables not expanded).
    pub image: Word,
    /// The `AS` keyword as written (its case is kept for linting).
    pub as_keyword: Option<Word>,
    /// The stage name as written.
    pub name: Option<Word>,
    /// `--platform=`.
    pub platform: Option<Word>,
}

/// A shell-form or exec-form command (`RUN`, `CMD`, `ENTRYPOINT`, `SHELL`,
/// `HEALTHCHECK CMD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandLine {
    /// Exec form (a JSON array): run `args` directly, without a shell.
    pub exec_form: bool,
    /// The exec-form arguments, or the one shell-form command string.
    pub args: Vec<Word>,
    /// Heredocs attached to the command (`RUN <<EOF`).
    pub heredocs: Vec<Heredoc>,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// The command.
    pub cmd_line: CommandLine,
    /// `--mount=` flags.
    pub mounts: Vec<Mount>,
    /// `--network=` (`default`, `none` or `host`).
    pub network: Option<Word>,
    /// `--security=` (`sandbox` or `insecure`).
    pub security: Option<Word>,
    /// `--device=` flags (labs).
    pub devices: Vec<Word>,
}

/// One `key=value` of `ENV` or `LABEL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyValue {
    /// The key (quotes not yet removed: expansion does that).
    pub key: Word,
    /// The value (quotes not yet removed).
    pub value: Word,
    /// True for the old `ENV key value` form, which has no `=`.
    pub no_delimiter: bool,
}

/// `ENV` / `LABEL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValues {
    /// The pairs in order.
    pub pairs: Vec<KeyValue>,
}

/// `EXPOSE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expose {
    /// Ports as written (`80`, `80/tcp`, `8000-8010/udp`).
    pub ports: Vec<Word>,
}

/// A source that is a heredoc (`COPY <<EOF /dst`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeredocSource {
    /// The file name (the heredoc's delimiter).
    pub path: String,
    /// The content, tabs already stripped for `<<-`.
    pub data: String,
    /// Whether variables in the content are expanded.
    pub expand: bool,
    /// The heredoc body.
    pub span: Span,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Add {
    /// Sources (paths, URLs, git refs), variables not expanded.
    pub sources: Vec<Word>,
    /// Heredoc sources.
    pub heredoc_sources: Vec<HeredocSource>,
    /// The destination.
    pub dest: Word,
    /// `--chown=`.
    pub chown: Option<Word>,
    /// `--chmod=`.
    pub chmod: Option<Word>,
    /// `--link`.
    pub link: bool,
    /// `--keep-git-dir`, if given.
    pub keep_git_dir: Option<bool>,
    /// `--checksum=`.
    pub checksum: Option<Word>,
    /// `--unpack`, if given.
    pub unpack: Option<bool>,
    /// `--exclude=` patterns.
    pub excludes: Vec<Word>,
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Copy {
    /// Source paths, variables not expanded.
    pub sources: Vec<Word>,
    /// Heredoc sources.
    pub heredoc_sources: Vec<HeredocSource>,
    /// The destination.
    pub dest: Word,
    /// `--from=` stage, image or context.
    pub from: Option<Word>,
    /// `--chown=`.
    pub chown: Option<Word>,
    /// `--chmod=`.
    pub chmod: Option<Word>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude=` patterns.
    pub excludes: Vec<Word>,
}

/// `VOLUME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// Paths, trimmed.
    pub paths: Vec<Word>,
    /// Whether written as a JSON array.
    #[serde(rename = "execForm")]
    pub json: bool,
}

/// An instruction with exactly one argument (`USER`, `WORKDIR`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Single {
    /// The argument as written.
    pub value: Word,
}

/// One `ARG` definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgDef {
    /// The name.
    pub key: String,
    /// The default, if one was given (`ARG a=` gives an empty one).
    pub default: Option<String>,
    /// The `name[=default]` word.
    pub span: Span,
}

/// `ARG`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Arg {
    /// The definitions in order.
    pub args: Vec<ArgDef>,
}

/// `ONBUILD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Onbuild {
    /// The instruction to run when the image is used as a base.
    pub trigger: Box<Instruction>,
}

/// A Go duration as written and in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Duration {
    /// As written (`30s`).
    pub text: String,
    /// In nanoseconds.
    pub nanos: i64,
    /// The flag.
    pub span: Span,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Healthcheck {
    /// The check command; `None` for `HEALTHCHECK NONE`.
    pub test: Option<CommandLine>,
    /// `--interval=`.
    pub interval: Option<Duration>,
    /// `--timeout=`.
    pub timeout: Option<Duration>,
    /// `--start-period=`.
    pub start_period: Option<Duration>,
    /// `--start-interval=`.
    pub start_interval: Option<Duration>,
    /// `--retries=`.
    pub retries: Option<i32>,
}
