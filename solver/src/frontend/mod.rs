//! The Dockerfile front end: a parsed [`Dockerfile`] plus build options to a
//! build [`Graph`] and the image config of the target stage, with BuildKit's
//! semantics (its `dockerfile2llb`).
//!
//! It runs in two steps so that base images can be resolved (and pulled) all
//! at once, in parallel, by the caller:
//! 1. [`plan`] picks the target stage and the stages it needs, and lists the
//!    images they name ([`Plan::images`]);
//! 2. [`Plan::convert`] turns those stages into vertices, given each image's
//!    resolved digest and config.

pub mod paths;
pub mod platform;

mod dispatch;
mod env;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kiln_parser::instructions::{Command, Stage};
use kiln_parser::shell::{EnvList, Lexer};
use kiln_parser::{Dockerfile, Span};

use crate::graph::{Graph, Origin, Vertex, VertexId};
use crate::imageconfig::ImageConfig;
use crate::op::{Op, SourceOp};

pub use dispatch::rfc3339;
pub use platform::Platform;

/// What a build was asked for, besides the Dockerfile.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build (default: the last one).
    pub target: Option<String>,
    /// The platform built for (the host's; others are refused).
    pub platform: Platform,
    /// `--label` values, added to the target's config.
    pub labels: BTreeMap<String, String>,
    /// `--no-cache-filter`: stages whose steps ignore the cache.
    pub no_cache_filter: Vec<String>,
    /// `.dockerignore` patterns, applied to the build context.
    pub context_excludes: Vec<String>,
    /// The network RUN steps get unless they say otherwise (`--network`).
    pub network: crate::op::NetworkMode,
    /// SOURCE_DATE_EPOCH: when set, the config's and history's times.
    pub epoch: Option<i64>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            build_args: BTreeMap::new(),
            target: None,
            platform: Platform::host(),
            labels: BTreeMap::new(),
            no_cache_filter: Vec::new(),
            context_excludes: Vec::new(),
            network: crate::op::NetworkMode::Default,
            epoch: None,
        }
    }
}

/// An image named by the Dockerfile, resolved by the caller.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The normalized reference (e.g. `docker.io/library/busybox:latest`).
    pub reference: String,
    /// Manifest digest (`sha256:...`); it, not the name, makes cache keys.
    pub digest: String,
    /// The image's config.
    pub config: ImageConfig,
}

/// A front-end error, pointing at the instruction that caused it.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct FrontendError {
    /// The Dockerfile's name.
    pub file: String,
    /// 1-based line (0 when the error is not about one line).
    pub line: usize,
    /// Where exactly, when known.
    pub span: Option<Span>,
    /// What is wrong.
    pub message: String,
}

/// Where each stage's filesystem starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Base {
    Scratch,
    Stage(usize),
    Image(String),
}

/// Stages chosen for a build, and the images they need.
#[derive(Debug)]
pub struct Plan<'a> {
    dockerfile: &'a Dockerfile,
    options: BuildOptions,
    lexer: Lexer,
    /// Global ARGs (before the first FROM) with their values, predefined ones included.
    global_args: EnvList,
    bases: Vec<Base>,
    needed: BTreeSet<usize>,
    target: usize,
    /// Images named by `FROM`, `COPY --from` or `RUN --mount from=`, in order.
    images: Vec<String>,
}

/// The result of the front end.
#[derive(Debug)]
pub struct Build {
    /// Every vertex the target needs.
    pub graph: Graph,
    /// The vertex whose filesystem is the image's.
    pub target: VertexId,
    /// The image config of the target stage, with one history entry per instruction.
    pub config: ImageConfig,
    /// Build args given but used by no instruction (docker warns about them).
    pub unused_build_args: Vec<String>,
}

/// Chooses the target stage, the stages it needs, and the images to resolve.
pub fn plan<'a>(
    dockerfile: &'a Dockerfile,
    options: &BuildOptions,
) -> Result<Plan<'a>, FrontendError> {
    let lexer = Lexer::new(dockerfile.escape);
    let err = |line: usize, span: Option<Span>, message: String| FrontendError {
        file: dockerfile.file.clone(),
        line,
        span,
        message,
    };
    if dockerfile.stages.is_empty() {
        return Err(err(
            0,
            None,
            "the Dockerfile has no FROM instruction".into(),
        ));
    }

    let mut global_args = EnvList::new();
    let host = Platform::host();
    for (k, v) in options
        .platform
        .args("TARGET")
        .into_iter()
        .chain(host.args("BUILD"))
    {
        global_args.set(&k, &v);
    }
    for inst in &dockerfile.meta_args {
        let Command::Arg(arg) = &inst.command else {
            continue;
        };
        for def in &arg.args {
            let value = match (options.build_args.get(&def.key), &def.default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(
                    lexer
                        .process_word(d, &global_args)
                        .map_err(|e| err(inst.span.start.line, Some(def.span), e.to_string()))?,
                ),
                (None, None) => None,
            };
            if let Some(v) = value {
                global_args.set(&def.key, &v);
            }
        }
    }

    let target = match &options.target {
        None => dockerfile.stages.len() - 1,
        Some(name) => dockerfile
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(&name.to_ascii_lowercase()))
            .ok_or_else(|| {
                let names: Vec<_> = dockerfile
                    .stages
                    .iter()
                    .filter_map(|s| s.name.clone())
                    .collect();
                err(
                    0,
                    None,
                    format!(
                        "target stage {name:?} could not be found (stages: {})",
                        names.join(", ")
                    ),
                )
            })?,
    };

    // As BuildKit (dockerfile2llb toCommand): COPY --from takes no variables.
    // A value that expansion with no variables would change is refused here,
    // in any stage, rather than looked up as an image named `${X}`.
    for inst in dockerfile.stages.iter().flat_map(|s| &s.instructions) {
        let Command::Copy(copy) = &inst.command else {
            continue;
        };
        let Some(from) = &copy.from else { continue };
        let plain = lexer.process_word(&from.value, &EnvList::new());
        if plain.as_deref().ok() != Some(from.value.as_str()) {
            return Err(err(
                inst.span.start.line,
                Some(from.span),
                "variable expansion is not supported for --from, define a new stage with FROM \
                 using ARG from global scope as a workaround"
                    .into(),
            ));
        }
    }

    let mut bases = Vec::new();
    for stage in &dockerfile.stages {
        let line = stage.from.span.start.line;
        let Command::From(from) = &stage.from.command else {
            return Err(err(
                line,
                Some(stage.from.span),
                "a stage must start with FROM".into(),
            ));
        };
        let image = lexer
            .process_word(&from.image.value, &global_args)
            .map_err(|e| err(line, Some(from.image.span), e.to_string()))?;
        if image.is_empty() {
            return Err(err(
                line,
                Some(from.image.span),
                format!("base name ({}) should not be blank", from.image.value),
            ));
        }
        if let Some(p) = &from.platform {
            let p = lexer
                .process_word(&p.value, &global_args)
                .map_err(|e| err(line, Some(p.span), e.to_string()))?;
            check_platform(&p, &options.platform).map_err(|m| {
                err(
                    line,
                    Some(from.platform.as_ref().map_or(from.image.span, |w| w.span)),
                    m,
                )
            })?;
        }
        let lower = image.to_ascii_lowercase();
        let base = if let Some(i) = dockerfile.stages[..stage.index]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            Base::Stage(i)
        } else if lower == "scratch" {
            Base::Scratch
        } else {
            Base::Image(image)
        };
        bases.push(base);
    }

    // The stages the target needs: its base chain and every stage a COPY
    // --from or RUN --mount from= names, transitively.
    let mut needed = BTreeSet::new();
    let mut images = Vec::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !needed.insert(i) {
            continue;
        }
        match &bases[i] {
            Base::Stage(s) => todo.push(*s),
            Base::Image(r) if !images.contains(r) => images.push(r.clone()),
            _ => {}
        }
        for from in stage_sources(&dockerfile.stages[i]) {
            match stage_ref(dockerfile, i, &from) {
                Some(s) => todo.push(s),
                None if from != "context" && !images.contains(&from) => images.push(from),
                None => {}
            }
        }
    }

    Ok(Plan {
        dockerfile,
        options: options.clone(),
        lexer,
        global_args,
        bases,
        needed,
        target,
        images,
    })
}

fn check_platform(wanted: &str, built: &Platform) -> Result<(), String> {
    match Platform::parse(wanted) {
        Some(p) if p.matches(built) => Ok(()),
        Some(p) => Err(format!(
            "platform {p} was asked for, but kiln builds only for the host platform {built} (no emulation)"
        )),
        None => Err(format!("invalid platform {wanted:?}: want os/arch[/variant]")),
    }
}

/// The `--from` values of a stage's COPY and RUN --mount instructions.
fn stage_sources(stage: &Stage) -> Vec<String> {
    let mut out = Vec::new();
    for inst in &stage.instructions {
        match &inst.command {
            Command::Copy(c) => {
                if let Some(f) = &c.from {
                    out.push(f.value.clone());
                }
            }
            Command::Run(r) => out.extend(r.mounts.iter().filter_map(|m| m.from.clone())),
            _ => {}
        }
    }
    out
}

/// The stage a `--from` value names, as BuildKit decides: a stage name, or
/// the index of an earlier stage.
fn stage_ref(dockerfile: &Dockerfile, current: usize, from: &str) -> Option<usize> {
    let lower = from.to_ascii_lowercase();
    if let Some(i) = dockerfile.stages[..current]
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return Some(i);
    }
    match from.parse::<usize>() {
        Ok(i) if i < current => Some(i),
        _ => None,
    }
}

impl<'a> Plan<'a> {
    /// Images to resolve before [`Plan::convert`], as written after expansion.
    pub fn images(&self) -> &[String] {
        &self.images
    }

    /// The index of the target stage.
    pub fn target_stage(&self) -> usize {
        self.target
    }

    /// Whether stage `index` is built at all.
    pub fn needs(&self, index: usize) -> bool {
        self.needed.contains(&index)
    }

    /// Builds the graph of the needed stages. `images` maps each name of
    /// [`Plan::images`] to what it resolved to.
    pub fn convert(self, images: &HashMap<String, ResolvedImage>) -> Result<Build, FrontendError> {
        let mut cx = dispatch::Converter::new(&self, images);
        let mut results: Vec<Option<dispatch::StageResult>> =
            vec![None; self.dockerfile.stages.len()];
        for (i, stage) in self.dockerfile.stages.iter().enumerate() {
            if !self.needed.contains(&i) {
                continue;
            }
            let result = cx.stage(stage, &self.bases[i], &results)?;
            results[i] = Some(result);
        }
        let target = results[self.target].take().ok_or_else(|| FrontendError {
            file: self.dockerfile.file.clone(),
            line: 0,
            span: None,
            message: "internal: the target stage was not built".into(),
        })?;
        let mut config = target.config;
        if !self.options.labels.is_empty() {
            let labels = config.config.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(self.options.labels.clone());
        }
        let unused_build_args = cx.unused_build_args();
        Ok(Build {
            graph: cx.into_graph(),
            target: target.vertex,
            config,
            unused_build_args,
        })
    }
}

/// Adds a source vertex for `op` named `name`.
fn source_vertex(
    graph: &mut Graph,
    op: SourceOp,
    name: String,
    origin: Option<Origin>,
) -> VertexId {
    graph
        .add(Vertex {
            op: Op::Source(op),
            inputs: vec![],
            name,
            origin,
            ignore_cache: false,
        })
        .expect("sources have no inputs to get wrong")
}

#[cfg(test)]
mod tests;
