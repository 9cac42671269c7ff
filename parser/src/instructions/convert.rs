//! From the line-level tree to typed instructions, with BuildKit's checks
//! (`instructions/parse.go`), messages kept close to its wording.

use super::flags::{FlagType, ParsedFlags};
use super::mount::parse_mount;
use super::units::parse_go_duration;
use super::*;
use crate::error::{suggest, ErrorKind, ParseError};
use crate::heredoc::{chomp_heredoc_content, parse_heredoc};
use crate::node::{RawArg, RawDockerfile, RawInstruction};

/// Every instruction name, upper-case (used for suggestions).
pub const INSTRUCTION_NAMES: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// A placeholder left behind when a node is moved out of its box.
fn empty_node() -> RawInstruction {
    RawInstruction {
        keyword: String::new(),
        keyword_span: Span::default(),
        flags: Vec::new(),
        args: Vec::new(),
        json: false,
        original: String::new(),
        heredocs: Vec::new(),
        comments: Vec::new(),
        span: Span::default(),
        args_span: Span::default(),
    }
}

struct Conv<'a> {
    text: &'a str,
    file: &'a str,
}

type Res<T> = Result<T, ParseError>;

impl Conv<'_> {
    fn err(&self, kind: ErrorKind, span: Span) -> ParseError {
        ParseError::new(kind, self.file, self.text, span)
    }

    fn invalid(&self, msg: impl Into<String>, span: Span) -> ParseError {
        self.err(ErrorKind::Invalid(msg.into()), span)
    }

    fn flags(&self, node: &RawInstruction, defs: &[(&'static str, FlagType)]) -> Res<ParsedFlags> {
        ParsedFlags::parse(&node.flags, defs).map_err(|e| {
            let (kind, word, help) = *e;
            let span = word.map_or(node.keyword_span, |w| w.span);
            let e = self.err(kind, span);
            match help {
                Some(h) => e.with_help(h),
                None => e,
            }
        })
    }

    fn count(
        &self,
        node: &RawInstruction,
        instruction: &'static str,
        expected: &'static str,
    ) -> ParseError {
        self.err(
            ErrorKind::ArgCount {
                instruction,
                expected,
            },
            node.keyword_span.join(node.args_span),
        )
    }
}

/// Moves the plain-word arguments out of `node`, and its ONBUILD trigger.
fn take_args(node: &mut RawInstruction) -> (Vec<Word>, Option<Box<RawInstruction>>) {
    let mut sub = None;
    let words = std::mem::take(&mut node.args)
        .into_iter()
        .filter_map(|a| match a {
            RawArg::Word(w) => Some(w),
            RawArg::Sub(s) => {
                sub = Some(s);
                None
            }
        })
        .collect();
    (words, sub)
}

fn command_line(node: &mut RawInstruction, args: Vec<Word>) -> CommandLine {
    CommandLine {
        exec_form: node.json,
        args,
        heredocs: std::mem::take(&mut node.heredocs),
    }
}

const STAGE_NAME_CHARS: fn(char) -> bool =
    |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.');

/// Checks `^[a-z][a-z0-9-_.]*$`.
fn valid_stage_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase()) && name.chars().all(STAGE_NAME_CHARS)
}

/// Checks an EXPOSE port spec: `port[-port][/tcp|udp|sctp]`.
fn valid_port(spec: &str) -> bool {
    if spec.contains('$') || spec.contains(':') {
        return true;
    }
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    if !matches!(proto.to_ascii_lowercase().as_str(), "tcp" | "udp" | "sctp") {
        return false;
    }
    let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
    let port =
        |s: &str| !s.is_empty() && s.len() <= 5 && s.parse::<u32>().is_ok_and(|p| p <= 65535);
    port(a) && port(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok()
}

impl Conv<'_> {
    fn sources_and_dest(
        &self,
        node: &RawInstruction,
        mut ws: Vec<Word>,
        name: &'static str,
    ) -> Res<(Vec<Word>, Vec<HeredocSource>, Word)> {
        let dest = ws.pop();
        let (Some(dest), false) = (dest, ws.is_empty()) else {
            return Err(self.invalid(
                format!("{name} requires at least two arguments, but only one was provided. Destination could not be determined"),
                node.keyword_span.join(node.args_span),
            ));
        };
        if matches!(parse_heredoc(&dest.value), Ok(Some(_))) {
            return Err(self.invalid(
                format!("{name} cannot accept a heredoc as a destination"),
                dest.span,
            ));
        }
        let mut sources = Vec::new();
        let mut heredoc_sources = Vec::new();
        for w in ws {
            match parse_heredoc(&w.value) {
                Ok(Some(head)) => {
                    // BuildKit looks heredocs up by name in a map: the last
                    // one of a repeated name wins.
                    let doc = node.heredocs.iter().rev().find(|h| h.name == head.name);
                    let content = doc.map(|h| h.content.clone()).unwrap_or_default();
                    heredoc_sources.push(HeredocSource {
                        data: if head.chomp {
                            chomp_heredoc_content(&content)
                        } else {
                            content
                        },
                        path: head.name,
                        expand: head.expand,
                        span: doc.map_or(w.span, |h| h.span),
                    });
                }
                _ => sources.push(w),
            }
        }
        Ok((sources, heredoc_sources, dest))
    }

    fn duration(&self, flag: Option<Word>, name: &str) -> Res<Option<Duration>> {
        let Some(w) = flag else { return Ok(None) };
        if w.value.is_empty() {
            return Ok(None);
        }
        let nanos = parse_go_duration(&w.value).map_err(|e| self.invalid(e, w.span))?;
        if nanos != 0 && nanos < 1_000_000 {
            return Err(self.invalid(format!("Interval {name:?} cannot be less than 1ms"), w.span));
        }
        Ok(Some(Duration {
            text: w.value,
            nanos,
            span: w.span,
        }))
    }

    fn instruction(&self, mut node: RawInstruction) -> Res<Instruction> {
        let lower = crate::node::go_lower(&node.keyword);
        let (ws, sub) = take_args(&mut node);
        let node = &mut node;
        let exactly_one = |name: &'static str| -> Res<Single> {
            match ws.as_slice() {
                [one] => Ok(Single { value: one.clone() }),
                _ => Err(self.count(node, name, "exactly one argument")),
            }
        };
        let kvs = |name: &'static str| -> Res<KeyValues> {
            self.flags(node, &[])?;
            if ws.is_empty() {
                return Err(self.count(node, name, "at least one argument"));
            }
            let mut pairs = Vec::new();
            for t in ws.chunks(3) {
                let [k, v, d] = t else {
                    return Err(self.invalid(
                        format!("Bad input to {name}, too many arguments"),
                        node.args_span,
                    ));
                };
                if k.value.is_empty() {
                    return Err(self.invalid(format!("{name} names can not be blank"), k.span));
                }
                pairs.push(KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                    no_delimiter: d.value.is_empty(),
                });
            }
            Ok(KeyValues { pairs })
        };
        let command = match lower.as_str() {
            "env" => Command::Env(kvs("ENV")?),
            "label" => Command::Label(kvs("LABEL")?),
            "maintainer" => {
                let v = exactly_one("MAINTAINER")?;
                self.flags(node, &[])?;
                Command::Maintainer(v)
            }
            "add" => {
                if ws.len() < 2 {
                    self.sources_and_dest(node, ws.clone(), "ADD")?;
                }
                let f = self.flags(
                    node,
                    &[
                        ("chown", FlagType::String),
                        ("chmod", FlagType::String),
                        ("link", FlagType::Bool),
                        ("keep-git-dir", FlagType::Bool),
                        ("checksum", FlagType::String),
                        ("unpack", FlagType::Bool),
                        ("exclude", FlagType::Strings),
                    ],
                )?;
                let (sources, heredoc_sources, dest) = self.sources_and_dest(node, ws, "ADD")?;
                Command::Add(Add {
                    sources,
                    heredoc_sources,
                    dest,
                    chown: f.string("chown"),
                    chmod: f.string("chmod"),
                    link: f.bool("link"),
                    keep_git_dir: f.bool_opt("keep-git-dir"),
                    checksum: f.string("checksum"),
                    unpack: f.bool_opt("unpack"),
                    excludes: f.strings("exclude"),
                })
            }
            "copy" => {
                if ws.len() < 2 {
                    self.sources_and_dest(node, ws.clone(), "COPY")?;
                }
                let f = self.flags(
                    node,
                    &[
                        ("chown", FlagType::String),
                        ("from", FlagType::String),
                        ("chmod", FlagType::String),
                        ("link", FlagType::Bool),
                        ("exclude", FlagType::Strings),
                        ("parents", FlagType::Bool),
                    ],
                )?;
                let (sources, heredoc_sources, dest) = self.sources_and_dest(node, ws, "COPY")?;
                Command::Copy(Copy {
                    sources,
                    heredoc_sources,
                    dest,
                    from: f.string("from"),
                    chown: f.string("chown"),
                    chmod: f.string("chmod"),
                    link: f.bool("link"),
                    parents: f.bool("parents"),
                    excludes: f.strings("exclude"),
                })
            }
            "from" => {
                let (as_keyword, name) = match ws.as_slice() {
                    [_, a, n] if a.value.eq_ignore_ascii_case("as") => {
                        if !valid_stage_name(&n.value.to_lowercase()) {
                            return Err(self.invalid(
                                format!("invalid name for build stage: {:?}, name can't start with a number or contain symbols", n.value),
                                n.span,
                            ));
                        }
                        (Some(a.clone()), Some(n.clone()))
                    }
                    [_] => (None, None),
                    _ => {
                        return Err(self.invalid(
                            "FROM requires either one or three arguments",
                            node.keyword_span.join(node.args_span),
                        ))
                    }
                };
                let f = self.flags(node, &[("platform", FlagType::String)])?;
                Command::From(From {
                    image: ws[0].clone(),
                    as_keyword,
                    name,
                    platform: f.string("platform"),
                })
            }
            "onbuild" => {
                let Some(sub) = sub else {
                    return Err(self.count(node, "ONBUILD", "at least one argument"));
                };
                self.flags(node, &[])?;
                let trigger = crate::node::go_lower(&sub.keyword).to_uppercase();
                match trigger.as_str() {
                    "ONBUILD" => {
                        return Err(self.invalid(
                            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                            sub.keyword_span,
                        ))
                    }
                    "MAINTAINER" | "FROM" => {
                        return Err(self.invalid(
                            format!("{trigger} isn't allowed as an ONBUILD trigger"),
                            sub.keyword_span,
                        ))
                    }
                    _ => {}
                }
                let mut sub = sub;
                sub.heredocs = std::mem::take(&mut node.heredocs);
                let sub = std::mem::replace(&mut *sub, empty_node());
                Command::Onbuild(Onbuild {
                    trigger: Box::new(self.instruction(sub)?),
                })
            }
            "workdir" => {
                let v = exactly_one("WORKDIR")?;
                self.flags(node, &[])?;
                Command::Workdir(v)
            }
            "run" => {
                let f = self.flags(
                    node,
                    &[
                        ("mount", FlagType::Strings),
                        ("network", FlagType::String),
                        ("security", FlagType::String),
                        ("device", FlagType::Strings),
                    ],
                )?;
                let network = f.string("network");
                if let Some(n) = &network {
                    if !matches!(n.value.as_str(), "default" | "none" | "host") {
                        return Err(
                            self.invalid(format!("invalid network mode {:?}", n.value), n.span)
                        );
                    }
                }
                let security = f.string("security");
                if let Some(s) = &security {
                    if !matches!(s.value.as_str(), "sandbox" | "insecure") {
                        return Err(
                            self.invalid(format!("security {:?} is not valid", s.value), s.span)
                        );
                    }
                }
                let mut mounts = Vec::new();
                for m in f.strings("mount") {
                    mounts.push(
                        parse_mount(&m.value, m.span)
                            .map_err(|e| self.err(ErrorKind::Mount(e), m.span))?,
                    );
                }
                Command::Run(Run {
                    cmd_line: command_line(node, ws),
                    mounts,
                    network,
                    security,
                    devices: f.strings("device"),
                })
            }
            "cmd" => {
                self.flags(node, &[])?;
                Command::Cmd(command_line(node, ws))
            }
            "entrypoint" => {
                self.flags(node, &[])?;
                Command::Entrypoint(command_line(node, ws))
            }
            "healthcheck" => {
                let Some(first) = ws.first() else {
                    return Err(self.count(node, "HEALTHCHECK", "at least one argument"));
                };
                let typ = first.value.to_uppercase();
                let rest = &ws[1..];
                if typ == "NONE" {
                    if !rest.is_empty() {
                        return Err(
                            self.invalid("HEALTHCHECK NONE takes no arguments", rest[0].span)
                        );
                    }
                    Command::Healthcheck(Healthcheck {
                        test: None,
                        interval: None,
                        timeout: None,
                        start_period: None,
                        start_interval: None,
                        retries: None,
                    })
                } else {
                    let f = self.flags(
                        node,
                        &[
                            ("interval", FlagType::String),
                            ("timeout", FlagType::String),
                            ("start-period", FlagType::String),
                            ("start-interval", FlagType::String),
                            ("retries", FlagType::String),
                        ],
                    )?;
                    if typ != "CMD" {
                        return Err(self.invalid(
                            format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)"),
                            first.span,
                        ));
                    }
                    if rest.is_empty() {
                        return Err(
                            self.invalid("Missing command after HEALTHCHECK CMD", first.span)
                        );
                    }
                    let retries = match f.string("retries") {
                        Some(r) if !r.value.is_empty() => {
                            let n: i32 = r.value.parse().map_err(|_| {
                                self.invalid(
                                    format!(
                                        "strconv.ParseInt: parsing {:?}: invalid syntax",
                                        r.value
                                    ),
                                    r.span,
                                )
                            })?;
                            if n < 0 {
                                return Err(self.invalid(
                                    format!("--retries cannot be negative ({n})"),
                                    r.span,
                                ));
                            }
                            Some(n)
                        }
                        _ => None,
                    };
                    Command::Healthcheck(Healthcheck {
                        test: Some(CommandLine {
                            exec_form: node.json,
                            args: rest.to_vec(),
                            heredocs: Vec::new(),
                        }),
                        interval: self.duration(f.string("interval"), "interval")?,
                        timeout: self.duration(f.string("timeout"), "timeout")?,
                        start_period: self.duration(f.string("start-period"), "start-period")?,
                        start_interval: self
                            .duration(f.string("start-interval"), "start-interval")?,
                        retries,
                    })
                }
            }
            "expose" => {
                if ws.is_empty() {
                    return Err(self.count(node, "EXPOSE", "at least one argument"));
                }
                self.flags(node, &[])?;
                if let Some(bad) = ws.iter().find(|w| !valid_port(&w.value)) {
                    return Err(self.invalid(
                        format!("invalid port specification: {:?}", bad.value),
                        bad.span,
                    ));
                }
                Command::Expose(Expose { ports: ws })
            }
            "user" => {
                let v = exactly_one("USER")?;
                self.flags(node, &[])?;
                Command::User(v)
            }
            "volume" => {
                if ws.is_empty() {
                    return Err(self.count(node, "VOLUME", "at least one argument"));
                }
                self.flags(node, &[])?;
                let mut paths = Vec::new();
                for w in &ws {
                    let t = w.value.trim();
                    if t.is_empty() {
                        return Err(
                            self.invalid("VOLUME specified can not be an empty string", w.span)
                        );
                    }
                    paths.push(Word {
                        value: t.to_string(),
                        span: w.span,
                    });
                }
                Command::Volume(Volume {
                    paths,
                    json: node.json,
                })
            }
            // BuildKit does not check STOPSIGNAL's or ARG's flags.
            "stopsignal" => Command::StopSignal(exactly_one("STOPSIGNAL")?),
            "arg" => {
                if ws.is_empty() {
                    return Err(self.count(node, "ARG", "at least one argument"));
                }
                let mut args = Vec::new();
                for w in &ws {
                    let (key, default) = match w.value.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (w.value.clone(), None),
                    };
                    if key.is_empty() {
                        return Err(self.invalid("ARG names can not be blank", w.span));
                    }
                    args.push(ArgDef {
                        key,
                        default,
                        span: w.span,
                    });
                }
                Command::Arg(Arg { args })
            }
            "shell" => {
                self.flags(node, &[])?;
                if ws.is_empty() {
                    return Err(self.count(node, "SHELL", "at least one argument"));
                }
                if !node.json {
                    return Err(self.invalid(
                        "SHELL requires the arguments to be in JSON form",
                        node.args_span,
                    ));
                }
                Command::Shell(command_line(node, ws))
            }
            _ => {
                let e = self.err(
                    ErrorKind::UnknownInstruction(node.keyword.clone()),
                    node.keyword_span,
                );
                return Err(
                    match suggest(&node.keyword, INSTRUCTION_NAMES.iter().copied()) {
                        Some(s) => e.with_help(format!("did you mean {s}?")),
                        None => e,
                    },
                );
            }
        };
        Ok(Instruction {
            keyword: std::mem::take(&mut node.keyword),
            keyword_span: node.keyword_span,
            span: node.span,
            flags: std::mem::take(&mut node.flags),
            comments: std::mem::take(&mut node.comments),
            original: std::mem::take(&mut node.original),
            command,
        })
    }
}

/// Checks every instruction of `raw` and groups them into stages. `text`
/// and `file` are the source and its name, for errors.
pub fn from_raw(raw: RawDockerfile, text: &str, file: &str) -> Result<Dockerfile, ParseError> {
    let conv = Conv { text, file };
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in raw.instructions {
        let ins = conv.instruction(node)?;
        match (&ins.command, stages.last_mut()) {
            (Command::From(f), _) => {
                let name = f.name.as_ref().map(|n| n.value.to_lowercase());
                stages.push(Stage {
                    index: stages.len(),
                    name,
                    span: ins.span,
                    from: ins,
                    instructions: Vec::new(),
                });
            }
            (Command::Arg(_), None) => meta_args.push(ins),
            (_, Some(stage)) => {
                stage.span = stage.span.join(ins.span);
                stage.instructions.push(ins);
            }
            (_, None) => {
                return Err(conv.invalid("no build stage in current context", ins.keyword_span));
            }
        }
    }
    Ok(Dockerfile {
        schema_version: SCHEMA_VERSION,
        file: file.to_string(),
        escape: raw.escape,
        directives: raw.directives,
        meta_args,
        stages,
        warnings: raw.warnings,
    })
}
