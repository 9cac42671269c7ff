//! `kiln build [OPTIONS] PATH`: docker build's flags, BuildKit's behaviour.
//!
//! The build itself is the engine's ([`kiln_engine::Engine::build`]); this module reads
//! what only the client has (standard input, its environment, secret files), draws the
//! events and writes `--iidfile` and `--metadata-file`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use kiln_engine::build::{parse_epoch, parse_labels};
use kiln_engine::{BuildContext, BuildOptions, DockerfileSource, Engine, Error};

use crate::progress::Mode;
use crate::render::{Rendering, View};
use crate::Globals;

/// Flags of `kiln build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The build context: a directory; `-` for a tar archive (plain, gzip,
    /// bzip2, xz or zstd) or a lone Dockerfile on standard input; or a git
    /// repository URL (`https://host/repo.git#ref:subdir`, `git@...`, `git://...`).
    context: PathBuf,
    /// The Dockerfile (default: PATH/Dockerfile); `-` reads it from standard input.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    file: Option<PathBuf>,
    /// Name and optionally tag the image (`name:tag`); may be repeated.
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    tags: Vec<String>,
    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    /// The stage to build.
    #[arg(long)]
    target: Option<String>,
    /// Do not use the cache.
    #[arg(long)]
    no_cache: bool,
    /// Do not use the cache for these stages.
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    no_cache_filter: Vec<String>,
    /// Progress output: auto, tty, plain, rawjson or quiet.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    progress: Mode,
    /// Print only the image ID.
    #[arg(short, long)]
    quiet: bool,
    /// Write the image ID to this file.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Write build result metadata (image and config digests) to this file.
    #[arg(long = "metadata-file", value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// Set a label on the image (`KEY=VALUE`).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Target platform (only the host's).
    #[arg(long)]
    platform: Option<String>,
    /// Network for RUN steps: default, none or host.
    #[arg(long, default_value = "default", value_parser = ["default", "none", "host"])]
    network: String,
    /// A secret for RUN --mount=type=secret: `id=ID,src=FILE` or `id=ID,env=VAR`.
    #[arg(long = "secret", value_name = "id=ID,src=PATH")]
    secrets: Vec<String>,
    /// An ssh agent socket for RUN --mount=type=ssh: `default` or `ID=SOCKET`.
    #[arg(long = "ssh", value_name = "default|ID=SOCKET")]
    ssh: Vec<String>,
    /// Security options (`no-new-privileges`).
    #[arg(long = "security-opt", value_name = "OPT")]
    security_opt: Vec<String>,
    /// How many steps may run at once (default: four per core, at least 16;
    /// a step waiting on the network holds a slot without using a core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Outputs: `type=local,dest=DIR`, `type=tar,dest=FILE`,
    /// `type=oci|docker,dest=FILE` (default: the local store).
    #[arg(short = 'o', long = "output", value_name = "type=TYPE,dest=PATH")]
    outputs: Vec<String>,
    /// After the build, tell for each step that ran why its cache missed
    /// (which field, parent step or context files changed since the last build).
    #[arg(long)]
    explain_cache: bool,
    /// Always check the registry for a newer base image (bases missing from the
    /// local store are pulled either way).
    #[arg(long)]
    pull: bool,
    /// Push each `-t` tag to its registry after the build.
    #[arg(long)]
    push: bool,
    /// Export the build cache: `type=registry,ref=REPO:TAG` or `type=local,dest=DIR`,
    /// with `mode=min` (the final image's steps, the default) or `mode=max` (every step).
    #[arg(long = "cache-to", value_name = "type=registry,ref=REF[,mode=max]")]
    cache_to: Vec<String>,
    /// Import a build cache: `type=registry,ref=REPO:TAG` (or just `REPO:TAG`) or
    /// `type=local,src=DIR`. A missing cache is a warning.
    #[arg(long = "cache-from", value_name = "type=registry,ref=REF")]
    cache_from: Vec<String>,
}

/// Runs the build and exports its result.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let engine = Engine::new(&g.root);
    let stdin_dockerfile = args.file.as_deref().is_some_and(|f| f.as_os_str() == "-");
    let context_arg = args.context.to_string_lossy().into_owned();
    let context = if context_arg == "-" {
        if stdin_dockerfile {
            bail!("invalid argument: can't use stdin for both build context and dockerfile");
        }
        BuildContext::Archive {
            stream: Box::new(std::io::stdin()),
            from: "standard input",
        }
    } else {
        BuildContext::locate(&context_arg)?
    };
    // With a directory context `-f` is a path as given (the default is PATH/Dockerfile);
    // with an archive or a repository, a path inside it.
    let dockerfile = match (&args.file, &context) {
        (Some(f), _) if stdin_dockerfile => {
            let (name, bytes) = super::parse::read_dockerfile(f)?;
            DockerfileSource::Bytes { name, bytes }
        }
        (Some(f), BuildContext::Directory(_)) => DockerfileSource::Path(f.clone()),
        (None, BuildContext::Directory(dir)) => DockerfileSource::Path(dir.join("Dockerfile")),
        (Some(f), _) => DockerfileSource::InContext(f.clone()),
        (None, _) => DockerfileSource::InContext(PathBuf::from("Dockerfile")),
    };
    let build_args = key_values(&args.build_args)?;
    // buildx turns the client's SOURCE_DATE_EPOCH into that build arg; the flag wins.
    let epoch = match build_args.contains_key("SOURCE_DATE_EPOCH") {
        true => None,
        false => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => parse_epoch(&v)?,
            Err(_) => None,
        },
    };
    let options = BuildOptions {
        context,
        dockerfile,
        tags: args.tags.clone(),
        build_args,
        target: args.target.clone(),
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        labels: parse_labels(&args.labels),
        platform: args.platform.clone(),
        network: args.network.clone(),
        secrets: read_secrets(&args.secrets)?,
        ssh: ssh_sockets(&args.ssh)?,
        security_opts: args.security_opt.clone(),
        jobs: args.jobs,
        outputs: args.outputs.clone(),
        explain_cache: args.explain_cache,
        pull: args.pull,
        push: args.push,
        cache_to: args.cache_to.clone(),
        cache_from: args.cache_from.clone(),
        epoch,
        // The CLI's credentials are docker's files, which the engine reads.
        registry_auth: None,
        // Ctrl-C ends the process, and the store's own recovery cleans after it.
        cancel: None,
    };

    let mode = if args.quiet {
        Mode::Quiet
    } else {
        args.progress.resolve()
    };
    let quiet = args.quiet || mode == Mode::Quiet;
    let rendering = Rendering::start(View {
        steps: mode,
        pulls: !args.quiet,
        pushes: !quiet,
        cache: !quiet,
        written: !quiet,
        id_on_stdout: args.quiet,
        unused_build_args: !args.quiet,
    });
    let result = engine.build(options, rendering.progress());
    rendering.finish();
    let built = match result {
        Ok(built) => built,
        Err(Error::Parse(err)) => return Ok(super::parse::report(err)),
        Err(Error::Solve(failure)) => {
            if !args.quiet {
                eprintln!("------\n > {}:\n------", failure.step);
                if let Some((name, line)) = &failure.origin {
                    print_source(name, &failure.dockerfile, *line);
                }
            }
            eprintln!("ERROR: failed to solve: {}", failure.message);
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &built.id).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        let meta = serde_json::json!({
            "containerimage.digest": built.manifest_digest,
            "containerimage.config.digest": built.id,
            "image.name": built.names.join(","),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--build-arg KEY=VALUE`, or `KEY` alone for the client's environment variable (left out
/// when it is not set).
fn key_values(items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(item) {
                    out.insert(item.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

/// `--secret id=x,src=path` / `id=x,env=VAR` / `id=x` (env var of that name).
fn read_secrets(specs: &[String]) -> Result<HashMap<String, Vec<u8>>> {
    let mut out = HashMap::new();
    for spec in specs {
        let fields: BTreeMap<&str, &str> = spec
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let id = fields
            .get("id")
            .copied()
            .ok_or_else(|| anyhow!("--secret {spec}: id= is missing"))?;
        let data = if let Some(src) = fields.get("src").or_else(|| fields.get("source")) {
            std::fs::read(src).with_context(|| format!("--secret {id}: reading {src}"))?
        } else {
            let var = fields.get("env").copied().unwrap_or(id);
            std::env::var(var)
                .map(String::into_bytes)
                .map_err(|_| anyhow!("--secret {id}: environment variable {var} is not set"))?
        };
        out.insert(id.to_string(), data);
    }
    Ok(out)
}

fn ssh_sockets(specs: &[String]) -> Result<HashMap<String, PathBuf>> {
    let mut out = HashMap::new();
    for spec in specs {
        let (id, path) = match spec.split_once('=') {
            Some((id, p)) => (id.to_string(), PathBuf::from(p)),
            None => (
                spec.clone(),
                std::env::var_os("SSH_AUTH_SOCK")
                    .map(PathBuf::from)
                    .ok_or_else(|| anyhow!("--ssh {spec}: SSH_AUTH_SOCK is not set"))?,
            ),
        };
        out.insert(id, path);
    }
    Ok(out)
}

/// The Dockerfile lines around a failed instruction, as BuildKit shows them.
fn print_source(name: &str, bytes: &[u8], line: usize) {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("{name}:{line}\n--------------------");
    let from = line.saturating_sub(3).max(1);
    let to = (line + 2).min(lines.len());
    for n in from..=to {
        let marker = if n == line { ">>>" } else { "   " };
        eprintln!("{n:>4} | {marker} {}", lines.get(n - 1).unwrap_or(&""));
    }
    eprintln!("--------------------");
}
