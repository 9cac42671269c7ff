//! One stage at a time, one instruction at a time: what each Dockerfile
//! instruction adds to the graph and to the image config (BuildKit's
//! `dispatch*` functions).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kiln_parser::instructions::{
    Add, Arg, CommandLine, Copy, HeredocSource, Instruction, Mount, MountType, Run, Sharing,
};
use kiln_parser::shell::{Env, Lexer};
use kiln_parser::{Command, Span, Stage};

use super::env::StageEnv;
use super::{paths, source_vertex, Base, FrontendError, Plan, ResolvedImage};
use crate::graph::{Graph, Origin, Vertex, VertexId};
use crate::imageconfig::{ConfigChange, Healthcheck, History, ImageConfig, StageState};
use crate::op::{
    CacheSharing, CopyAction, ExecOp, FileAction, FileOp, MountKind, NetworkMode, Op, Owner,
    SecurityMode, SourceOp,
};

/// The PATH BuildKit gives a Linux stage whose base sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl StageCx {
    /// The working directory RUN, COPY and relative paths use (`/` when unset).
    fn workdir(&self) -> String {
        self.config
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }
}

/// What a finished stage hands to stages built on it.
#[derive(Debug, Clone)]
pub(super) struct StageResult {
    /// The stage's last filesystem vertex.
    pub vertex: VertexId,
    /// Its image config.
    pub config: ImageConfig,
    /// Its environment (base Env, ARGs, ENVs), which `FROM <stage>` inherits.
    pub env: StageEnv,
}

/// Per-stage state while its instructions are dispatched.
struct StageCx {
    index: usize,
    label: String,
    step: usize,
    total: usize,
    vertex: VertexId,
    config: ImageConfig,
    env: StageEnv,
    state: StageState,
    /// ARGs declared in the stage with their values, for RUN's history line.
    args: Vec<(String, String)>,
    ignore_cache: bool,
}

pub(super) struct Converter<'p, 'a> {
    plan: &'p Plan<'a>,
    images: &'p HashMap<String, ResolvedImage>,
    graph: Graph,
    context: Option<VertexId>,
    scratch: Option<VertexId>,
    image_vertices: HashMap<String, VertexId>,
    used_args: BTreeSet<String>,
    created: Option<String>,
}

type Result<T> = std::result::Result<T, FrontendError>;

impl<'p, 'a> Converter<'p, 'a> {
    pub fn new(plan: &'p Plan<'a>, images: &'p HashMap<String, ResolvedImage>) -> Self {
        let mut used_args = BTreeSet::new();
        for inst in &plan.dockerfile.meta_args {
            if let Command::Arg(a) = &inst.command {
                used_args.extend(a.args.iter().map(|d| d.key.clone()));
            }
        }
        Converter {
            plan,
            images,
            graph: Graph::new(),
            context: None,
            scratch: None,
            image_vertices: HashMap::new(),
            used_args,
            created: plan.options.epoch.map(rfc3339),
        }
    }

    pub fn into_graph(self) -> Graph {
        self.graph
    }

    pub fn unused_build_args(&self) -> Vec<String> {
        self.plan
            .options
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !is_predefined_arg(k))
            .cloned()
            .collect()
    }

    fn err(
        &self,
        inst: &Instruction,
        span: Option<Span>,
        message: impl Into<String>,
    ) -> FrontendError {
        FrontendError {
            file: self.plan.dockerfile.file.clone(),
            line: span.unwrap_or(inst.span).start.line,
            span: Some(span.unwrap_or(inst.span)),
            message: message.into(),
        }
    }

    fn lexer(&self) -> Lexer {
        self.plan.lexer
    }

    fn expand(&self, inst: &Instruction, word: &str, span: Span, env: &dyn Env) -> Result<String> {
        self.lexer()
            .process_word(word, env)
            .map_err(|e| self.err(inst, Some(span), e.to_string()))
    }

    fn origin(&self, line: usize, stage: &str) -> Option<Origin> {
        Some(Origin {
            file: self.plan.dockerfile.file.clone(),
            line,
            stage: stage.to_string(),
        })
    }

    fn add(
        &mut self,
        cx: &StageCx,
        op: Op,
        inputs: Vec<VertexId>,
        name: String,
        line: usize,
    ) -> VertexId {
        self.graph
            .add(Vertex {
                op,
                inputs,
                name,
                origin: self.origin(line, &cx.label),
                ignore_cache: cx.ignore_cache,
            })
            .expect("the converter only names vertices it added")
    }

    fn image_vertex(&mut self, reference: &str, name: &str) -> Result<(VertexId, ImageConfig)> {
        let resolved = self.images.get(reference).ok_or_else(|| FrontendError {
            file: self.plan.dockerfile.file.clone(),
            line: 0,
            span: None,
            message: format!("internal: image {reference:?} was not resolved"),
        })?;
        let config = resolved.config.clone();
        if let Some(&v) = self.image_vertices.get(reference) {
            return Ok((v, config));
        }
        let v = source_vertex(
            &mut self.graph,
            SourceOp::Image {
                reference: resolved.reference.clone(),
                digest: Some(resolved.digest.clone()),
                platform: self.plan.options.platform.to_string(),
                rootfs: rootfs_chain(&config.rootfs.diff_ids),
            },
            name.to_string(),
            None,
        );
        self.image_vertices.insert(reference.to_string(), v);
        Ok((v, config))
    }

    fn context_vertex(&mut self) -> VertexId {
        if let Some(v) = self.context {
            return v;
        }
        let v = source_vertex(
            &mut self.graph,
            SourceOp::Local {
                name: "context".into(),
                include: vec![],
                exclude: self.plan.options.context_excludes.clone(),
            },
            "[internal] load build context".into(),
            None,
        );
        self.context = Some(v);
        v
    }

    /// The empty filesystem a `COPY --link` copies onto. Unnamed: the
    /// progress display does not show it.
    fn scratch_vertex(&mut self) -> VertexId {
        if let Some(v) = self.scratch {
            return v;
        }
        let v = source_vertex(&mut self.graph, SourceOp::Scratch, String::new(), None);
        self.scratch = Some(v);
        v
    }

    /// The filesystem a `--from` value names: an earlier stage, an image, or the context.
    fn source_named(
        &mut self,
        stage: usize,
        from: Option<&str>,
        results: &[Option<StageResult>],
    ) -> Result<VertexId> {
        let Some(from) = from else {
            return Ok(self.context_vertex());
        };
        if let Some(i) = super::stage_ref(self.plan.dockerfile, stage, from) {
            return results[i]
                .as_ref()
                .map(|r| r.vertex)
                .ok_or_else(|| FrontendError {
                    file: self.plan.dockerfile.file.clone(),
                    line: 0,
                    span: None,
                    message: format!("internal: stage {from:?} was not built before it was used"),
                });
        }
        if from == "context" {
            return Ok(self.context_vertex());
        }
        let name = format!("[internal] load metadata for {from}");
        Ok(self.image_vertex(from, &name)?.0)
    }

    pub fn stage(
        &mut self,
        stage: &Stage,
        base: &Base,
        results: &[Option<StageResult>],
    ) -> Result<StageResult> {
        let multi = self.plan.dockerfile.stages.len() > 1;
        let label = match (&stage.name, multi) {
            (Some(n), _) => format!("{n} "),
            (None, true) => format!("stage-{} ", stage.index),
            (None, false) => String::new(),
        };
        let total = 1 + stage.instructions.len();
        let from_text = format!("[{label}1/{total}] FROM");
        let (vertex, config, env) = match base {
            Base::Scratch => {
                let v = source_vertex(
                    &mut self.graph,
                    SourceOp::Scratch,
                    format!("{from_text} scratch"),
                    None,
                );
                let config = ImageConfig {
                    architecture: self.plan.options.platform.architecture.clone(),
                    os: self.plan.options.platform.os.clone(),
                    variant: self.plan.options.platform.variant.clone(),
                    ..Default::default()
                };
                let env = StageEnv::default();
                (v, config, env)
            }
            Base::Stage(i) => {
                let r = results[*i]
                    .clone()
                    .ok_or_else(|| self.err(&stage.from, None, "internal: base stage not built"))?;
                (r.vertex, r.config, r.env)
            }
            Base::Image(reference) => {
                let resolved = &self.images.get(reference);
                let shown = resolved.map_or(reference.clone(), |r| {
                    format!("{}@{}", r.reference, r.digest)
                });
                let (v, config) = self.image_vertex(reference, &format!("{from_text} {shown}"))?;
                let env = StageEnv::from_config(config.config.env.as_deref());
                (v, config, env)
            }
        };
        let ignore_cache = {
            let f = &self.plan.options.no_cache_filter;
            !f.is_empty()
                && stage
                    .name
                    .as_ref()
                    .is_some_and(|n| f.iter().any(|x| x.eq_ignore_ascii_case(n)))
                || f.iter().any(|x| x == &stage.index.to_string())
        };
        let (mut config, mut env) = (config, env);
        // As BuildKit: every stage has a PATH, in its image config and for RUN.
        if StageEnv::from_config(config.config.env.as_deref())
            .get("PATH")
            .is_none()
        {
            let path = format!("PATH={DEFAULT_PATH}");
            config.config.env.get_or_insert_with(Vec::new).push(path);
            env.set("PATH", DEFAULT_PATH);
        }
        let mut cx = StageCx {
            index: stage.index,
            label,
            step: 1,
            total,
            vertex,
            config,
            env,
            state: StageState::default(),
            args: Vec::new(),
            ignore_cache,
        };
        if cx.config.architecture.is_empty() {
            cx.config.architecture = self.plan.options.platform.architecture.clone();
            cx.config.os = self.plan.options.platform.os.clone();
        }

        // ONBUILD triggers of the base run first, and are not inherited.
        let triggers = cx.config.config.on_build.take().unwrap_or_default();
        for trigger in triggers {
            let text = format!("FROM scratch\n{trigger}\n");
            let parsed = kiln_parser::parse(&text, "ONBUILD").map_err(|e| {
                self.err(
                    &stage.from,
                    None,
                    format!("ONBUILD trigger {trigger:?} of the base image: {e}"),
                )
            })?;
            for inst in parsed.stages.iter().flat_map(|s| &s.instructions) {
                self.instruction(&mut cx, inst, results)?;
            }
        }
        for inst in &stage.instructions {
            cx.step += 1;
            self.instruction(&mut cx, inst, results)?;
        }
        Ok(StageResult {
            vertex: cx.vertex,
            config: cx.config,
            env: cx.env,
        })
    }

    fn name(&self, cx: &StageCx, inst: &Instruction) -> String {
        let text = inst.original.trim();
        let rest = text.get(inst.keyword.len()..).unwrap_or("");
        format!(
            "[{}{}/{}] {}{}",
            cx.label,
            cx.step,
            cx.total,
            inst.command.name(),
            rest
        )
    }

    fn history(&self, cx: &mut StageCx, created_by: String, layer: bool) {
        cx.config.history.push(History {
            created: self.created.clone(),
            created_by: Some(created_by),
            comment: Some("kiln".into()),
            empty_layer: !layer,
            extra: BTreeMap::new(),
        });
    }

    fn change(&self, cx: &mut StageCx, change: ConfigChange) {
        cx.config.apply(&change, &mut cx.state);
    }

    fn instruction(
        &mut self,
        cx: &mut StageCx,
        inst: &Instruction,
        results: &[Option<StageResult>],
    ) -> Result<()> {
        match &inst.command {
            Command::From(_) => Err(self.err(inst, None, "FROM inside a stage")),
            Command::Run(run) => self.run(cx, inst, run, results),
            Command::Copy(copy) => self.copy(cx, inst, copy, results),
            Command::Add(add) => self.add_cmd(cx, inst, add),
            Command::Env(kv) | Command::Label(kv) => {
                let is_env = matches!(inst.command, Command::Env(_));
                let mut pairs = Vec::new();
                let mut msg = String::from(if is_env { "ENV" } else { "LABEL" });
                // Every pair expands with the environment from before the
                // instruction (`ENV A=new B=$A` gives B the old A), as the
                // Dockerfile reference and BuildKit do.
                for p in &kv.pairs {
                    let k = self.expand(inst, &p.key.value, p.key.span, &cx.env)?;
                    let v = self.expand(inst, &p.value.value, p.value.span, &cx.env)?;
                    msg.push_str(&format!(" {k}={v}"));
                    pairs.push((k, v));
                }
                if is_env {
                    for (k, v) in &pairs {
                        cx.env.set(k, v);
                    }
                }
                let change = if is_env {
                    ConfigChange::Env(pairs)
                } else {
                    ConfigChange::Labels(pairs)
                };
                self.change(cx, change);
                self.history(cx, msg, false);
                Ok(())
            }
            Command::Arg(arg) => self.arg(cx, inst, arg),
            Command::Workdir(w) => {
                let p = self.expand(inst, &w.value.value, w.value.span, &cx.env)?;
                let current = cx.workdir();
                let wd = paths::workdir(&current, &p);
                self.change(cx, ConfigChange::Workdir(wd.clone()));
                let layer = wd != "/";
                if layer {
                    let owner = cx
                        .config
                        .config
                        .user
                        .clone()
                        .filter(|u| !u.is_empty())
                        .map(owner_of);
                    let op = Op::File(FileOp {
                        actions: vec![FileAction::Mkdir {
                            path: wd.clone(),
                            mode: 0o755,
                            parents: true,
                            owner,
                        }],
                    });
                    let name = self.name(cx, inst);
                    cx.vertex = self.add(cx, op, vec![cx.vertex], name, inst.span.start.line);
                }
                self.history(cx, format!("WORKDIR {wd}"), layer);
                Ok(())
            }
            Command::User(u) => {
                let user = self.expand(inst, &u.value.value, u.value.span, &cx.env)?;
                self.change(cx, ConfigChange::User(user.clone()));
                self.history(cx, format!("USER {user}"), false);
                Ok(())
            }
            Command::Cmd(c) | Command::Entrypoint(c) => {
                let args = self.command_args(cx, c);
                let is_cmd = matches!(inst.command, Command::Cmd(_));
                let msg = format!("{} {}", inst.command.name(), go_quote_list(&args));
                let change = if is_cmd {
                    ConfigChange::Cmd(args)
                } else {
                    ConfigChange::Entrypoint(args)
                };
                self.change(cx, change);
                self.history(cx, msg, false);
                Ok(())
            }
            Command::Shell(c) => {
                let args: Vec<String> = c.args.iter().map(|w| w.value.clone()).collect();
                let msg = format!("SHELL [{}]", args.join(" "));
                self.change(cx, ConfigChange::Shell(args));
                self.history(cx, msg, false);
                Ok(())
            }
            Command::Volume(v) => {
                let mut paths = Vec::new();
                for w in &v.paths {
                    let p = self.expand(inst, &w.value, w.span, &cx.env)?;
                    if p.is_empty() {
                        return Err(self.err(
                            inst,
                            Some(w.span),
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    paths.push(p);
                }
                let msg = format!("VOLUME [{}]", paths.join(" "));
                self.change(cx, ConfigChange::Volumes(paths));
                self.history(cx, msg, false);
                Ok(())
            }
            Command::Expose(e) => {
                let mut ports = Vec::new();
                for w in &e.ports {
                    let words = self
                        .lexer()
                        .process_words(&w.value, &cx.env)
                        .map_err(|err| self.err(inst, Some(w.span), err.to_string()))?;
                    for word in words {
                        ports.extend(
                            expose_ports(&word).map_err(|m| self.err(inst, Some(w.span), m))?,
                        );
                    }
                }
                let msg = format!("EXPOSE [{}]", ports.join(" "));
                self.change(cx, ConfigChange::Expose(ports));
                self.history(cx, msg, false);
                Ok(())
            }
            Command::StopSignal(s) => {
                let sig = self.expand(inst, &s.value.value, s.value.span, &cx.env)?;
                check_signal(&sig).map_err(|m| self.err(inst, Some(s.value.span), m))?;
                self.change(cx, ConfigChange::StopSignal(sig.clone()));
                self.history(cx, format!("STOPSIGNAL {sig}"), false);
                Ok(())
            }
            Command::Healthcheck(h) => {
                let change = match &h.test {
                    None => ConfigChange::Healthcheck(None),
                    Some(c) => {
                        let mut test =
                            vec![if c.exec_form { "CMD" } else { "CMD-SHELL" }.to_string()];
                        test.extend(c.args.iter().map(|w| w.value.clone()));
                        let nanos = |d: &Option<kiln_parser::instructions::Duration>| {
                            d.as_ref()
                                .map_or(0, |d| u64::try_from(d.nanos).unwrap_or(0))
                        };
                        ConfigChange::Healthcheck(Some(Healthcheck {
                            test,
                            interval_ns: nanos(&h.interval),
                            timeout_ns: nanos(&h.timeout),
                            start_period_ns: nanos(&h.start_period),
                            start_interval_ns: nanos(&h.start_interval),
                            retries: h.retries.map_or(0, |r| u32::try_from(r).unwrap_or(0)),
                        }))
                    }
                };
                self.change(cx, change);
                let msg = format!(
                    "HEALTHCHECK {}",
                    inst.original
                        .trim()
                        .get(inst.keyword.len()..)
                        .unwrap_or("")
                        .trim()
                );
                self.history(cx, msg, false);
                Ok(())
            }
            Command::Maintainer(m) => {
                cx.config.author = Some(m.value.value.clone());
                self.history(cx, format!("MAINTAINER {}", m.value.value), false);
                Ok(())
            }
            Command::Onbuild(o) => {
                let text = o.trigger.original.trim().to_string();
                self.change(cx, ConfigChange::Onbuild(text));
                Ok(())
            }
        }
    }

    fn arg(&mut self, cx: &mut StageCx, inst: &Instruction, arg: &Arg) -> Result<()> {
        let mut shown = Vec::new();
        for def in &arg.args {
            self.used_args.insert(def.key.clone());
            let value = match (self.plan.options.build_args.get(&def.key), &def.default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(self.expand(inst, d, def.span, &cx.env)?),
                (None, None) => self.plan.global_args.get(&def.key).map(str::to_string),
            };
            match &value {
                Some(v) => {
                    cx.env.set(&def.key, v);
                    cx.args.retain(|(k, _)| k != &def.key);
                    cx.args.push((def.key.clone(), v.clone()));
                    shown.push(format!("{}={v}", def.key));
                }
                None => shown.push(def.key.clone()),
            }
        }
        self.history(cx, format!("ARG {}", shown.join(" ")), false);
        Ok(())
    }

    /// CMD/ENTRYPOINT/RUN argv: exec form as written, shell form wrapped in the stage's SHELL.
    fn command_args(&self, cx: &StageCx, c: &CommandLine) -> Vec<String> {
        let args: Vec<String> = c.args.iter().map(|w| w.value.clone()).collect();
        if c.exec_form {
            args
        } else {
            let mut shell = cx
                .config
                .config
                .shell
                .clone()
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            shell.extend(args);
            shell
        }
    }

    fn run(
        &mut self,
        cx: &mut StageCx,
        inst: &Instruction,
        run: &Run,
        results: &[Option<StageResult>],
    ) -> Result<()> {
        let mut inputs = vec![cx.vertex];
        let mut mounts = Vec::new();
        let mut command = run.cmd_line.clone();
        if !command.heredocs.is_empty() && !command.exec_form {
            let line = command
                .args
                .first()
                .map(|w| w.value.clone())
                .unwrap_or_default();
            let single = kiln_parser::heredoc::parse_heredoc(line.trim())
                .ok()
                .flatten()
                .is_some();
            let doc = &command.heredocs[0];
            let data = if doc.chomp {
                kiln_parser::heredoc::chomp_heredoc_content(&doc.content)
            } else {
                doc.content.clone()
            };
            if single && command.heredocs.len() == 1 && data.starts_with("#!") {
                // A script with its own interpreter: written to a file and run directly.
                let file = self.add(
                    cx,
                    Op::File(FileOp {
                        actions: vec![FileAction::Mkfile {
                            path: format!("/{}", doc.name),
                            mode: 0o755,
                            data: data.into_bytes(),
                            owner: None,
                        }],
                    }),
                    vec![],
                    "[internal] preparing inline document".into(),
                    inst.span.start.line,
                );
                inputs.push(file);
                mounts.push(crate::op::Mount {
                    target: "/dev/pipes/".into(),
                    kind: MountKind::Bind {
                        input: inputs.len() - 1,
                        source: "/".into(),
                        readonly: true,
                    },
                });
                command.exec_form = true;
                command.args = vec![kiln_parser::Word {
                    value: format!("/dev/pipes/{}", doc.name),
                    span: inst.span,
                }];
            } else if single && command.heredocs.len() == 1 {
                command.args[0].value = data;
            } else {
                let mut text = line;
                for d in &command.heredocs {
                    text.push('\n');
                    text.push_str(&d.content);
                    text.push_str(&d.name);
                }
                command.args = vec![kiln_parser::Word {
                    value: text,
                    span: inst.span,
                }];
            }
            command.heredocs.clear();
        }
        let args = self.command_args(cx, &command);
        for m in &run.mounts {
            let mount = self.mount(cx, inst, m, &mut inputs, results)?;
            mounts.push(mount);
        }
        let network = match run.network.as_ref().map(|w| w.value.as_str()) {
            None => self.plan.options.network,
            Some("default") => NetworkMode::Default,
            Some("none") => NetworkMode::None,
            Some("host") => NetworkMode::Host,
            Some(other) => {
                return Err(self.err(
                    inst,
                    run.network.as_ref().map(|w| w.span),
                    format!("unsupported network mode {other:?}"),
                ))
            }
        };
        let security = match run.security.as_ref().map(|w| w.value.as_str()) {
            None | Some("sandbox") => SecurityMode::Sandbox,
            Some("insecure") => SecurityMode::Insecure,
            Some(other) => {
                return Err(self.err(
                    inst,
                    run.security.as_ref().map(|w| w.span),
                    format!("unsupported security mode {other:?}"),
                ))
            }
        };
        let op = Op::Exec(ExecOp {
            args: args.clone(),
            env: cx.env.to_list(),
            cwd: cx.workdir(),
            user: cx.config.config.user.clone().unwrap_or_default(),
            network,
            security,
            mounts,
        });
        let name = self.name(cx, inst);
        cx.vertex = self.add(cx, op, inputs, name, inst.span.start.line);
        let mut created_by = String::from("RUN ");
        if !cx.args.is_empty() {
            created_by.push_str(&format!("|{} ", cx.args.len()));
            for (k, v) in &cx.args {
                created_by.push_str(&format!("{k}={v} "));
            }
        }
        created_by.push_str(&args.join(" "));
        created_by.push_str(" # buildkit");
        self.history(cx, created_by, true);
        Ok(())
    }

    fn mount(
        &mut self,
        cx: &StageCx,
        inst: &Instruction,
        m: &Mount,
        inputs: &mut Vec<VertexId>,
        results: &[Option<StageResult>],
    ) -> Result<crate::op::Mount> {
        let expand = |s: &Option<String>| -> Result<Option<String>> {
            s.as_ref()
                .map(|v| self.expand(inst, v, inst.span, &cx.env))
                .transpose()
        };
        let target = expand(&m.target)?;
        let from = expand(&m.from)?;
        let source = expand(&m.source)?.unwrap_or_default();
        let id = expand(&m.id)?;
        let env = expand(&m.env)?;
        let num = |s: &Option<String>, default: u32, base: u32| -> Result<u32> {
            match s {
                None => Ok(default),
                Some(v) => u32::from_str_radix(v, base)
                    .map_err(|_| self.err(inst, None, format!("invalid mount option value {v:?}"))),
            }
        };
        let (mode_or, uid, gid) = (m.mode.clone(), num(&m.uid, 0, 10)?, num(&m.gid, 0, 10)?);
        let workdir = cx.workdir();
        let abs_target = |t: Option<String>| -> Result<String> {
            let t = t.ok_or_else(|| self.err(inst, None, "mount is missing target="))?;
            Ok(paths::workdir(&workdir, &t))
        };
        let mode = |default: u32| num(&mode_or, default, 8);
        let kind = match m.kind {
            MountType::Bind => {
                let target = abs_target(target)?;
                let v = self.source_named(cx.index, from.as_deref(), results)?;
                inputs.push(v);
                let source = paths::source(&source);
                return Ok(crate::op::Mount {
                    target,
                    kind: MountKind::Bind {
                        input: inputs.len() - 1,
                        source,
                        readonly: m.read_only,
                    },
                });
            }
            MountType::Cache => {
                let target = abs_target(target)?;
                let cache_id = id.unwrap_or_else(|| target.clone());
                let (mode, read_only, sharing) = (mode(0o755)?, m.read_only, m.sharing);
                let from = match from {
                    Some(f) => {
                        let v = self.source_named(cx.index, Some(&f), results)?;
                        inputs.push(v);
                        Some((inputs.len() - 1, paths::source(&source)))
                    }
                    None => None,
                };
                return Ok(crate::op::Mount {
                    kind: MountKind::Cache {
                        id: cache_id,
                        sharing: match sharing {
                            None | Some(Sharing::Shared) => CacheSharing::Shared,
                            Some(Sharing::Private) => CacheSharing::Private,
                            Some(Sharing::Locked) => CacheSharing::Locked,
                        },
                        readonly: read_only,
                        from,
                        mode,
                        uid,
                        gid,
                    },
                    target,
                });
            }
            MountType::Tmpfs => MountKind::Tmpfs {
                size: m.size_bytes.map_or(0, |s| u64::try_from(s).unwrap_or(0)),
            },
            MountType::Secret => {
                let id = id
                    .or_else(|| {
                        target
                            .as_deref()
                            .map(|t| t.rsplit('/').next().unwrap_or(t).to_string())
                    })
                    .ok_or_else(|| self.err(inst, None, "secret mount needs id= or target="))?;
                let target = match (&target, &env) {
                    (None, Some(_)) => String::new(),
                    (None, None) => format!("/run/secrets/{id}"),
                    (Some(t), _) => abs_target(Some(t.clone()))?,
                };
                return Ok(crate::op::Mount {
                    target,
                    kind: MountKind::Secret {
                        id,
                        env,
                        required: m.required,
                        mode: mode(0o400)?,
                        uid,
                        gid,
                    },
                });
            }
            MountType::Ssh => {
                let id = id.unwrap_or_else(|| "default".into());
                let target = match target {
                    Some(t) => abs_target(Some(t))?,
                    None => "/run/buildkit/ssh_agent.0".into(),
                };
                return Ok(crate::op::Mount {
                    target,
                    kind: MountKind::Ssh {
                        id,
                        required: m.required,
                        mode: mode(0o600)?,
                        uid,
                        gid,
                    },
                });
            }
        };
        Ok(crate::op::Mount {
            target: abs_target(target)?,
            kind,
        })
    }

    fn copy(
        &mut self,
        cx: &mut StageCx,
        inst: &Instruction,
        copy: &Copy,
        results: &[Option<StageResult>],
    ) -> Result<()> {
        let source = self.source_named(
            cx.index,
            copy.from.as_ref().map(|w| w.value.as_str()),
            results,
        )?;
        let spec = CopySpec {
            sources: &copy.sources,
            heredocs: &copy.heredoc_sources,
            dest: &copy.dest,
            chown: copy.chown.as_ref(),
            chmod: copy.chmod.as_ref(),
            excludes: &copy.excludes,
            parents: copy.parents,
            link: copy.link,
            unpack: false,
            keyword: "COPY",
            remote: None,
        };
        self.copy_like(cx, inst, source, spec)
    }

    fn add_cmd(&mut self, cx: &mut StageCx, inst: &Instruction, add: &Add) -> Result<()> {
        let checksum = add
            .checksum
            .as_ref()
            .map(|c| -> Result<String> {
                let v = self.expand(inst, &c.value, c.span, &cx.env)?;
                check_checksum(&v).map_err(|e| self.err(inst, Some(c.span), e))?;
                if add.sources.len() != 1 {
                    return Err(self.err(
                        inst,
                        Some(c.span),
                        "checksum can't be specified for multiple sources",
                    ));
                }
                Ok(v)
            })
            .transpose()?;
        let source = self.context_vertex();
        let spec = CopySpec {
            sources: &add.sources,
            heredocs: &add.heredoc_sources,
            dest: &add.dest,
            chown: add.chown.as_ref(),
            chmod: add.chmod.as_ref(),
            excludes: &add.excludes,
            parents: false,
            link: add.link,
            unpack: add.unpack.unwrap_or(true),
            keyword: "ADD",
            remote: Some(RemoteAdd {
                checksum,
                checksum_span: add.checksum.as_ref().map(|c| c.span),
            }),
        };
        self.copy_like(cx, inst, source, spec)
    }

    fn copy_like(
        &mut self,
        cx: &mut StageCx,
        inst: &Instruction,
        source: VertexId,
        spec: CopySpec<'_>,
    ) -> Result<()> {
        let workdir = cx.workdir();
        let dest_raw = self.expand(inst, &spec.dest.value, spec.dest.span, &cx.env)?;
        let dest = paths::dest(&workdir, &dest_raw);
        let chown = spec
            .chown
            .map(|w| self.expand(inst, &w.value, w.span, &cx.env))
            .transpose()?;
        let chmod = spec
            .chmod
            .map(|w| self.expand(inst, &w.value, w.span, &cx.env))
            .transpose()?;
        if let (Some(m), Some(w)) = (&chmod, spec.chmod) {
            check_chmod(m).map_err(|e| self.err(inst, Some(w.span), e))?;
        }
        let owner = chown.clone().map(owner_of);
        let mut msg = String::from(spec.keyword);
        if spec.parents {
            msg.push_str(" --parents");
        }
        if let Some(c) = &chown {
            msg.push_str(&format!(" --chown={c}"));
        }
        if let Some(m) = &chmod {
            msg.push_str(&format!(" --chmod={m}"));
        }
        let mut actions = Vec::new();
        let mut inputs = vec![cx.vertex];
        if !spec.sources.is_empty() {
            let mut sources = Vec::new();
            let mut local_at = None;
            for s in spec.sources {
                let v = self.expand(inst, &s.value, s.span, &cx.env)?;
                msg.push_str(&format!(" {v}"));
                if let Some(remote) = &spec.remote {
                    if is_git_source(&v) {
                        return Err(self.err(inst, Some(s.span), format!(
                            "ADD of a git repository ({v}) is not supported by kiln yet; clone it in a RUN step"
                        )));
                    }
                    if is_http_source(&v) {
                        let filename = url_filename(&v);
                        let origin = self.origin(inst.span.start.line, &cx.label);
                        let http = source_vertex(
                            &mut self.graph,
                            SourceOp::Http {
                                url: v.clone(),
                                checksum: remote.checksum.clone(),
                                filename: filename.clone(),
                            },
                            v.clone(),
                            origin,
                        );
                        inputs.push(http);
                        // BuildKit never unpacks a downloaded archive.
                        actions.push(FileAction::Copy(CopyAction {
                            input: inputs.len() - 1,
                            sources: vec![format!("/{filename}")],
                            dest: dest.clone(),
                            owner: owner.clone(),
                            mode: chmod.clone(),
                            exclude: Vec::new(),
                            parents: false,
                            unpack_archives: false,
                            follow_symlinks: true,
                        }));
                        continue;
                    }
                    if let Some(span) = remote.checksum_span {
                        return Err(self.err(
                            inst,
                            Some(span),
                            "checksum requires HTTP(S) or Git sources",
                        ));
                    }
                }
                local_at.get_or_insert(actions.len());
                sources.push(v);
            }
            if let Some(at) = local_at {
                inputs.push(source);
                actions.insert(
                    at,
                    FileAction::Copy(CopyAction {
                        input: inputs.len() - 1,
                        sources,
                        dest: dest.clone(),
                        owner: owner.clone(),
                        mode: chmod.clone(),
                        exclude: spec.excludes.iter().map(|w| w.value.clone()).collect(),
                        parents: spec.parents,
                        unpack_archives: spec.unpack,
                        follow_symlinks: true,
                    }),
                );
            }
        }
        if !spec.heredocs.is_empty() {
            // As BuildKit: each heredoc becomes a 0644 file in a scratch
            // filesystem, then is copied like any source, so the destination
            // gets created with its parents, an existing directory receives
            // the file under the heredoc's name, and --chown/--chmod apply
            // as for files from the context.
            let mut files = Vec::new();
            let mut names = Vec::new();
            for doc in spec.heredocs {
                msg.push_str(&format!(" <<{}", doc.path));
                let data = if doc.expand {
                    Lexer::new('\\')
                        .with_skip_process_quotes(true)
                        .process_word(&doc.data, &cx.env)
                        .map_err(|e| self.err(inst, Some(doc.span), e.to_string()))?
                } else {
                    doc.data.clone()
                };
                let name = doc.path.trim_start_matches('/').to_string();
                files.push(FileAction::Mkfile {
                    path: format!("/{name}"),
                    mode: 0o644,
                    data: data.into_bytes(),
                    owner: None,
                });
                names.push(name);
            }
            let scratch = source_vertex(&mut self.graph, SourceOp::Scratch, "scratch".into(), None);
            let inline = self.add(
                cx,
                Op::File(FileOp { actions: files }),
                vec![scratch],
                "[internal] preparing inline document".into(),
                inst.span.start.line,
            );
            inputs.push(inline);
            for name in names {
                actions.push(FileAction::Copy(CopyAction {
                    input: inputs.len() - 1,
                    sources: vec![name],
                    dest: dest.clone(),
                    owner: owner.clone(),
                    mode: chmod.clone(),
                    exclude: Vec::new(),
                    parents: false,
                    unpack_archives: false,
                    follow_symlinks: true,
                }));
            }
        }
        msg.push_str(&format!(" {}", spec.dest.value));
        let name = self.name(cx, inst);
        let line = inst.span.start.line;
        // BuildKit links only without --chmod (convert_copy.go), and so does kiln.
        if spec.link && chmod.is_none() {
            // The copy onto an empty filesystem keys without the stage
            // below it; the merge stacks its layer on whatever that is.
            inputs[0] = self.scratch_vertex();
            let linked = self.add(cx, Op::File(FileOp { actions }), inputs, name.clone(), line);
            let merge_name = name.replacen("] ", "] LINK ", 1);
            cx.vertex = self.add(cx, Op::Merge, vec![cx.vertex, linked], merge_name, line);
        } else {
            cx.vertex = self.add(cx, Op::File(FileOp { actions }), inputs, name, line);
        }
        self.history(cx, format!("{msg} # buildkit"), true);
        Ok(())
    }
}

struct CopySpec<'s> {
    sources: &'s [kiln_parser::Word],
    heredocs: &'s [HeredocSource],
    dest: &'s kiln_parser::Word,
    chown: Option<&'s kiln_parser::Word>,
    chmod: Option<&'s kiln_parser::Word>,
    excludes: &'s [kiln_parser::Word],
    parents: bool,
    link: bool,
    unpack: bool,
    keyword: &'static str,
    /// ADD: URLs are downloaded (with this `--checksum`), not read from the context.
    remote: Option<RemoteAdd>,
}

struct RemoteAdd {
    checksum: Option<String>,
    checksum_span: Option<Span>,
}

/// Whether an ADD source is an HTTP(S) URL (BuildKit's `isHTTPSource`).
fn is_http_source(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

/// Whether an ADD source names a git repository (BuildKit's `isGitSource`,
/// simplified: a URL ending in `.git` with an optional fragment, or an
/// `ssh://`, `git://` or `git@` remote).
fn is_git_source(src: &str) -> bool {
    let url = src.split_once('#').map_or(src, |(u, _)| u);
    ["git@", "git://", "ssh://"]
        .iter()
        .any(|p| src.starts_with(p))
        || (is_http_source(src) && url.ends_with(".git"))
}

/// The name BuildKit gives a downloaded file: the last segment of the
/// URL's path, percent-decoded (`__unnamed__` when there is none).
fn url_filename(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let base = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(base)
        .decode_utf8_lossy()
        .into_owned();
    match decoded.as_str() {
        "" | "." | ".." => "__unnamed__".into(),
        // A decoded `/` cannot make a path: keep the name one component.
        d => d.replace('/', "%2F"),
    }
}

/// `--checksum`: `sha256:` and 64 hex digits (the one algorithm kiln checks).
fn check_checksum(v: &str) -> std::result::Result<(), String> {
    match v.split_once(':') {
        Some(("sha256", hex)) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(())
        }
        Some((algo, _)) if algo != "sha256" => Err(format!(
            "invalid checksum {v}: kiln checks sha256 digests only"
        )),
        _ => Err(format!(
            "invalid checksum {v}: expected sha256:<64 hex digits>"
        )),
    }
}

fn owner_of(spec: String) -> Owner {
    match spec.split_once(':') {
        Some((u, g)) => Owner {
            user: u.to_string(),
            group: Some(g.to_string()),
        },
        None => Owner {
            user: spec,
            group: None,
        },
    }
}

/// `--chmod` takes octal bits up to 07777 or a symbolic mode (`u+x,go-w`).
fn check_chmod(mode: &str) -> std::result::Result<(), String> {
    let bad = || {
        format!(
            "invalid chmod parameter: '{mode}'. it should be octal string and between 0 and 07777"
        )
    };
    if mode.chars().all(|c| c.is_ascii_digit()) {
        return match u32::from_str_radix(mode, 8) {
            Ok(m) if m <= 0o7777 => Ok(()),
            _ => Err(bad()),
        };
    }
    let clause_ok = |c: &str| {
        let ops = c.trim_start_matches(['u', 'g', 'o', 'a']);
        !ops.is_empty()
            && ops.split_inclusive(['+', '-', '=']).count() > 0
            && ops.starts_with(['+', '-', '='])
            && ops.chars().all(|ch| "+-=rwxXst".contains(ch))
    };
    if mode.split(',').all(clause_ok) {
        Ok(())
    } else {
        Err(bad())
    }
}

fn check_signal(sig: &str) -> std::result::Result<(), String> {
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    if let Ok(n) = sig.parse::<u32>() {
        return if (1..=64).contains(&n) {
            Ok(())
        } else {
            Err(format!("invalid signal: {sig}"))
        };
    }
    let upper = sig.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if NAMES.contains(&name) || name.starts_with("RTMIN") || name.starts_with("RTMAX") {
        Ok(())
    } else {
        Err(format!("invalid signal: {sig}"))
    }
}

/// One EXPOSE word to `port/proto` entries; ranges are expanded as docker does.
fn expose_ports(word: &str) -> std::result::Result<Vec<String>, String> {
    // `[ip:]public:private/proto` is accepted: only the container port counts.
    let (spec, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!("invalid proto: {proto}"));
    }
    let port = spec.rsplit(':').next().unwrap_or(spec);
    let parse = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {port}"))
    };
    let (start, end) = match port.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(port)?, parse(port)?),
    };
    if end < start {
        return Err(format!(
            "invalid range specified for container port: {port}"
        ));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

fn is_predefined_arg(key: &str) -> bool {
    matches!(
        key,
        "HTTP_PROXY"
            | "http_proxy"
            | "HTTPS_PROXY"
            | "https_proxy"
            | "FTP_PROXY"
            | "ftp_proxy"
            | "NO_PROXY"
            | "no_proxy"
            | "ALL_PROXY"
            | "all_proxy"
            | "SOURCE_DATE_EPOCH"
    ) || key.starts_with("BUILDKIT_")
}

/// Go's `%q` of a `[]string`: `["a" "b c"]`.
fn go_quote_list(args: &[String]) -> String {
    let quoted: Vec<String> = args.iter().map(|a| go_quote(a)).collect();
    format!("[{}]", quoted.join(" "))
}

fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// RFC 3339 UTC of a Unix time, as Go's time.Time marshals it.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil; chrono would be a dependency for one line.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The chain ID of an image's layers, or `None` for an image without layers
/// or with a diff ID that does not parse (its manifest digest keys it then).
fn rootfs_chain(diff_ids: &[String]) -> Option<String> {
    let digests = diff_ids
        .iter()
        .map(|d| d.parse::<kiln_cache::Digest>().ok())
        .collect::<Option<Vec<_>>>()?;
    kiln_cache::snapshot::chain_ids(&digests)
        .pop()
        .map(|c| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_file_names_as_buildkit_makes_them() {
        assert_eq!(
            url_filename("https://h/a/b/file.tar.gz?x=1#f"),
            "file.tar.gz"
        );
        assert_eq!(url_filename("http://h:8080/dir/"), "dir");
        assert_eq!(url_filename("http://h"), "__unnamed__");
        assert_eq!(url_filename("http://h/a%20b"), "a b");
        assert_eq!(url_filename("http://h/..%2F..%2Fetc"), "..%2F..%2Fetc");
        assert!(is_git_source("https://github.com/o/r.git#main"));
        assert!(!is_git_source("https://h/x.tar"));
        assert!(check_checksum(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(check_checksum("sha256:abc").is_err());
        assert!(check_checksum(&format!("md5:{}", "a".repeat(32))).is_err());
    }

    #[test]
    fn rfc3339_of_known_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn go_quoting_of_argv() {
        assert_eq!(
            go_quote_list(&["/bin/sh".into(), "-c".into(), "echo \"hi\"\n".into()]),
            r#"["/bin/sh" "-c" "echo \"hi\"\n"]"#
        );
    }

    #[test]
    fn expose_expands_ranges_and_checks_protocols() {
        assert_eq!(expose_ports("80").unwrap(), ["80/tcp"]);
        assert_eq!(expose_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            expose_ports("8000-8002/tcp").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(expose_ports("80/xyz").is_err());
        assert!(expose_ports("http").is_err());
        assert!(expose_ports("9-1").is_err());
    }

    #[test]
    fn chmod_accepts_octal_and_symbolic_modes() {
        for ok in ["755", "0644", "7777", "u+x", "go-w", "a=rX,u+w"] {
            assert!(check_chmod(ok).is_ok(), "{ok}");
        }
        for bad in ["8", "17777", "u+q", "x", ""] {
            assert!(check_chmod(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals_by_name_or_number() {
        for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3"] {
            assert!(check_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["SIGNOPE", "0", "99"] {
            assert!(check_signal(bad).is_err(), "{bad}");
        }
    }
}
