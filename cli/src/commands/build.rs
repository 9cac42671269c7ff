//! `kiln build [OPTIONS] PATH`: docker build's flags, BuildKit's behaviour.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use kiln_cache::Store;
use kiln_solver::frontend::{self, BuildOptions, Platform, ResolvedImage};
use kiln_solver::imageconfig::ImageConfig;
use kiln_solver::scheduler::{self, Event, SolveOptions};
use kiln_solver::worker::{LocalWorker, Output, Step, WorkerOptions};

use crate::progress::{Mode, Printer};
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
    let started = Instant::now();
    let store = Store::open(&g.root)
        .with_context(|| format!("opening the store at {}", g.root.display()))?;
    let context_arg = args.context.to_string_lossy().into_owned();
    let prepared = super::build_context::prepare(&store, &context_arg, args.file.as_deref())?;
    let context = prepared.dir.clone();
    let dockerfile_path = prepared.dockerfile_path.clone();
    let (name, bytes) = (
        prepared.dockerfile_name.clone(),
        prepared.dockerfile.clone(),
    );
    let dockerfile = match kiln_parser::parse_bytes(&bytes, &name) {
        Ok(df) => df,
        Err(err) => return Ok(super::parse::report(err)),
    };

    let platform = Platform::host();
    if let Some(p) = &args.platform {
        match Platform::parse(p) {
            Some(want) if want.matches(&platform) => {}
            _ => bail!("platform {p} was asked for, but kiln builds only for the host platform {platform} (no emulation)"),
        }
    }
    let ignore = kiln_parser::dockerignore::load(
        &context,
        dockerfile_path.as_deref().unwrap_or(Path::new("")),
    )
    .map_err(|e| anyhow!("{e}"))?;
    let build_args = key_values(&args.build_args, true)?;
    let epoch = source_date_epoch(build_args.get("SOURCE_DATE_EPOCH"))?;
    let options = BuildOptions {
        build_args,
        target: args.target.clone(),
        platform: platform.clone(),
        labels: key_values(&args.labels, false)?,
        no_cache_filter: args.no_cache_filter.clone(),
        context_excludes: Vec::new(),
        network: match args.network.as_str() {
            "none" => kiln_solver::op::NetworkMode::None,
            "host" => kiln_solver::op::NetworkMode::Host,
            _ => kiln_solver::op::NetworkMode::Default,
        },
        epoch,
    };

    let cache_to = args
        .cache_to
        .iter()
        .map(|s| crate::build_cache::spec::parse_cache_to(s))
        .collect::<Result<Vec<_>>>()?;
    let cache_from = args
        .cache_from
        .iter()
        .map(|s| crate::build_cache::spec::parse_cache_from(s))
        .collect::<Result<Vec<_>>>()?;

    let plan = frontend::plan(&dockerfile, &options).map_err(|e| anyhow!("{e}"))?;
    let mut images = HashMap::new();
    for reference in plan.images() {
        images.insert(
            reference.clone(),
            resolve_image(&store, reference, args.pull, args.quiet)?,
        );
    }
    let build = plan.convert(&images).map_err(|e| anyhow!("{e}"))?;
    let _lease = store.lease(&format!("build-{}", std::process::id()))?;

    let mode = if args.quiet {
        Mode::Quiet
    } else {
        args.progress.resolve()
    };
    // --no-cache uses no cache at all, imported or local (as buildx).
    let imported = if cache_from.is_empty() || args.no_cache {
        None
    } else {
        crate::build_cache::import(&store, &cache_from, args.quiet || mode == Mode::Quiet)?
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let mut worker = LocalWorker::new(
        store.clone(),
        WorkerOptions {
            context: context.clone(),
            ignore: Some(ignore),
            secrets: read_secrets(&args.secrets)?,
            ssh: ssh_sockets(&args.ssh)?,
            epoch: options.epoch,
            temporary_context: prepared.temporary,
            no_new_privileges: args
                .security_opt
                .iter()
                .any(|o| o == "no-new-privileges" || o == "no-new-privileges:true"),
        },
        Some(tx.clone()),
    );
    if let Some(imported) = imported {
        worker = worker.with_imported(imported);
    }
    let worker = Arc::new(worker);
    let names: HashMap<_, _> = build
        .graph
        .iter()
        .map(|(id, v)| (id, v.name.clone()))
        .collect();
    let graph = Arc::new(build.graph);
    let target = build.target;
    let solve_options = SolveOptions {
        jobs: args.jobs.unwrap_or_else(|| SolveOptions::default().jobs),
        no_cache: args.no_cache,
        events: Some(tx),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let printer = tokio::spawn(async move {
            let mut printer = Printer::new(mode, std::io::stderr(), names);
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(150));
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Some(ev) => printer.event(&ev, started.elapsed()),
                        None => break,
                    },
                    _ = tick.tick() => printer.tick(started.elapsed()),
                }
            }
            printer.finish(started.elapsed());
        });
        let solved = scheduler::solve(
            Arc::clone(&graph),
            target,
            Arc::new(Arc::clone(&worker)),
            solve_options,
        )
        .await;
        // The worker (kept for --explain-cache) and the solve held the last
        // senders: with both gone the printer drains and stops.
        worker.close_events();
        let _ = printer.await;
        solved
    });
    let solved = match result {
        Ok(s) => s,
        Err(err) => {
            let vertex = graph.vertex(err.vertex);
            if !args.quiet {
                eprintln!("------\n > {}:\n------", vertex.name);
                if let Some(origin) = &vertex.origin {
                    print_source(&name, &bytes, origin.line);
                }
            }
            eprintln!("ERROR: failed to solve: {}", err.source);
            return Ok(ExitCode::from(1));
        }
    };

    let explanations = explain_cache(&store, &context, &graph, &solved, &worker);
    if args.explain_cache {
        for line in explanations {
            eprintln!("{line}");
        }
    }
    if !build.unused_build_args.is_empty() && !args.quiet {
        eprintln!(
            "[Warning] One or more build-args {:?} were not consumed",
            build.unused_build_args
        );
    }
    // A result found in an imported cache may name layers still in that cache.
    worker.materialize(&solved.output)?;
    let exported = export(&store, build.config, &solved.output, &args, &options)?;
    if args.quiet {
        println!("{}", exported.config_digest);
    } else if mode != Mode::Quiet {
        eprintln!("writing image {} done", exported.config_digest);
        for t in &args.tags {
            eprintln!(
                "naming to {} done",
                kiln_cache::image::normalize_name(t).unwrap_or_else(|_| t.clone())
            );
        }
    }
    for to in &cache_to {
        let vertices = crate::build_cache::selected_vertices(&graph, target, &solved.keys, to.mode);
        let quiet = args.quiet || mode == Mode::Quiet;
        let done = crate::build_cache::export(&store, &worker, to, &vertices, &solved.keys, quiet)
            .with_context(|| format!("exporting the build cache to {}", to.target));
        match done {
            Err(e) if to.ignore_error => eprintln!("WARNING: {e:#}"),
            other => other?,
        }
    }
    for (id, record) in &solved.keys {
        if matches!(
            graph.vertex(*id).op,
            kiln_solver::op::Op::Exec(_) | kiln_solver::op::Op::File(_)
        ) {
            // Best effort: a result not adopted is still in the imported cache next time.
            let _ = worker.adopt_imported(&record.key);
        }
    }
    if args.push {
        for t in &args.tags {
            let opts = super::push::PushOptions {
                tls_verify: true,
                quiet: args.quiet || mode == Mode::Quiet,
            };
            super::push::push_image(&store, t, &opts).with_context(|| format!("pushing {t}"))?;
        }
    }
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &exported.config_digest)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        let meta = serde_json::json!({
            "containerimage.digest": exported.manifest_digest,
            "containerimage.config.digest": exported.config_digest,
            "image.name": args.tags.iter().map(|t| kiln_cache::image::normalize_name(t).unwrap_or_else(|_| t.clone())).collect::<Vec<_>>().join(","),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

struct Exported {
    manifest_digest: String,
    config_digest: String,
}

/// Writes config and manifest for the result, names it, and writes the extra outputs.
fn export(
    store: &Store,
    mut config: ImageConfig,
    output: &Output,
    args: &Args,
    options: &BuildOptions,
) -> Result<Exported> {
    let Output::Fs(steps) = output else {
        bail!("the target stage has no filesystem");
    };
    // History entries that expected a layer, in order, pair with the steps;
    // a step that changed nothing turns its entry into an empty layer, as
    // BuildKit's exporter does.
    let layered: Vec<usize> = config
        .history
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.empty_layer)
        .map(|(i, _)| i)
        .collect();
    if layered.len() == steps.len() {
        for (i, step) in layered.into_iter().zip(steps) {
            if *step == Step::Empty {
                config.history[i].empty_layer = true;
            }
        }
    }
    let layers = output.layers();
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.to_string()).collect();
    // The newest layer's time, not the clock: a rebuild from cache makes
    // the same config, so the same image ID (SOURCE_DATE_EPOCH overrides).
    let newest = layers.iter().map(|l| l.created).max().unwrap_or(0);
    let created = match options.epoch {
        Some(e) => kiln_solver::frontend::rfc3339(e),
        None if newest > 0 => kiln_solver::frontend::rfc3339(newest),
        None => config
            .created
            .clone()
            .unwrap_or_else(|| kiln_solver::frontend::rfc3339(0)),
    };
    config.created = Some(created.clone());
    for h in &mut config.history {
        if h.created.is_none() {
            h.created = Some(created.clone());
        }
    }
    let config_bytes = serde_json::to_vec(&config)?;
    let blobs: Vec<(kiln_cache::Digest, u64, String)> = layers
        .iter()
        .map(|l| (l.blob.clone(), l.size, l.media_type.clone()))
        .collect();
    let (manifest, config_digest) = store.commit_image(
        args.tags.first().map(String::as_str),
        &config_bytes,
        &blobs,
        kiln_cache::image::MediaTypes::Oci,
    )?;
    for t in args.tags.iter().skip(1) {
        store.set_name(t, &manifest)?;
    }
    for out in &args.outputs {
        write_output(store, out, &manifest)?;
    }
    Ok(Exported {
        manifest_digest: manifest.to_string(),
        config_digest: config_digest.to_string(),
    })
}

/// Why each step that ran missed the cache, against the record the same
/// step (same context, Dockerfile, stage and line) left in the previous
/// build; and the records for the next build to compare with.
fn explain_cache(
    store: &Store,
    context: &Path,
    graph: &kiln_solver::graph::Graph,
    solved: &scheduler::Solved<Output>,
    worker: &LocalWorker,
) -> Vec<String> {
    let context = std::fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
    let step_key = |id: kiln_solver::graph::VertexId| -> Option<String> {
        let origin = graph.vertex(id).origin.as_ref()?;
        let identity = format!(
            "{}\0{}\0{}\0{}",
            context.display(),
            origin.file,
            origin.stage,
            origin.line
        );
        Some(format!("explain:{}", short_hash(identity.as_bytes())))
    };
    let mut lines = Vec::new();
    for &id in &solved.ran {
        let (Some(key), Some(now)) = (step_key(id), solved.keys.get(&id)) else {
            continue;
        };
        let name = &graph.vertex(id).name;
        let previous = store
            .cache_get(&key)
            .ok()
            .flatten()
            .and_then(|r| serde_json::from_value::<kiln_solver::key::KeyRecord>(r.value).ok());
        let why = match previous {
            None => vec!["no earlier build of this step".to_string()],
            Some(prev) if prev.key == now.key => {
                vec!["its result was no longer in the cache".to_string()]
            }
            Some(prev) => now
                .dirty_reasons(&prev)
                .iter()
                .map(|r| match r {
                    kiln_solver::key::DirtyReason::Content { .. } => {
                        let files = worker.changed_context_files(graph, id);
                        match files.len() {
                            0 => "the build context files it reads changed".to_string(),
                            n if n <= 10 => format!("context files changed: {}", files.join(", ")),
                            n => format!(
                                "{n} context files changed: {}, ...",
                                files[..10].join(", ")
                            ),
                        }
                    }
                    other => other.to_string(),
                })
                .collect(),
        };
        lines.push(format!("{name}: cache miss: {}", why.join("; ")));
    }
    // The records only hold what was hashed (ops and digests): no file
    // content and no secret value, which never enter an op.
    let records: Vec<(String, kiln_cache::metadata::CacheRecord)> = solved
        .keys
        .iter()
        .filter_map(|(&id, record)| {
            let value = serde_json::to_value(record).ok()?;
            let rec = kiln_cache::metadata::CacheRecord {
                blobs: Vec::new(),
                snapshots: Vec::new(),
                value,
                created: 0,
                last_used: 0,
            };
            Some((step_key(id)?, rec))
        })
        .collect();
    let batch: Vec<(&str, &kiln_cache::metadata::CacheRecord)> =
        records.iter().map(|(k, r)| (k.as_str(), r)).collect();
    // A build whose explanations cannot be kept still succeeded.
    let _ = store.cache_put_all(&batch);
    lines
}

fn short_hash(bytes: &[u8]) -> String {
    kiln_cache::Digest::of(bytes).hex()[..32].to_string()
}

/// `--output type=...,dest=...`.
fn write_output(store: &Store, spec: &str, manifest: &kiln_cache::Digest) -> Result<()> {
    let fields: BTreeMap<&str, &str> = spec
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let kind = fields.get("type").copied().unwrap_or("local");
    let dest = fields
        .get("dest")
        .copied()
        .or_else(|| (!spec.contains('=')).then_some(spec))
        .ok_or_else(|| anyhow!("--output {spec}: dest= is missing"))?;
    let image = store.load_image(manifest, Vec::new())?;
    let items = [kiln_cache::transfer::SaveItem {
        image: image.clone(),
        names: Vec::new(),
    }];
    let tmp = PathBuf::from(format!("{dest}.kiln-tmp-{}", std::process::id()));
    match kind {
        "oci" | "docker" => {
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let file = if kind == "oci" {
                kiln_cache::transfer::save_oci(store, &items, file)?
            } else {
                kiln_cache::transfer::save_docker(store, &items, file)?
            };
            file.sync_all()?;
            std::fs::rename(&tmp, dest)?;
        }
        "local" | "tar" => {
            let dir = if kind == "local" {
                PathBuf::from(dest)
            } else {
                tmp.with_extension("dir")
            };
            std::fs::create_dir_all(&dir)?;
            for (blob, _, _) in image.layers()? {
                let f = store.content().open_blob(&blob)?;
                kiln_cache::layer::apply_layer(
                    std::io::BufReader::new(f),
                    &dir,
                    &kiln_cache::layer::ApplyOptions {
                        mode: kiln_cache::layer::ApplyMode::Merged,
                        ..Default::default()
                    },
                )?;
            }
            if kind == "tar" {
                let file = std::fs::File::create(&tmp)?;
                let mut tar = tar::Builder::new(file);
                tar.follow_symlinks(false);
                tar.append_dir_all(".", &dir)?;
                tar.into_inner()?.sync_all()?;
                std::fs::rename(&tmp, dest)?;
                std::fs::remove_dir_all(&dir)?;
            }
        }
        other => bail!("--output type={other} is not supported (use local, tar, oci or docker)"),
    }
    Ok(())
}

/// An image from the local store, as the front end needs it: pulled first when the store
/// lacks it, or always with `--pull`.
fn resolve_image(
    store: &Store,
    reference: &str,
    always_pull: bool,
    quiet: bool,
) -> Result<ResolvedImage> {
    let pull = || {
        let opts = super::pull::PullOptions {
            platform: kiln_registry::Platform::host(),
            tls_verify: true,
            quiet,
        };
        super::pull::pull_image(store, reference, &opts).with_context(|| {
            format!("FROM {reference}: not in the local store, and the pull failed")
        })
    };
    let image = if always_pull {
        let pulled = pull()?;
        store.load_image(&pulled.manifest_digest, pulled.name.into_iter().collect())?
    } else {
        match store.image(reference) {
            Ok(image) => image,
            Err(kiln_cache::Error::ImageNotFound(_)) => {
                let pulled = pull()?;
                store.load_image(&pulled.manifest_digest, pulled.name.into_iter().collect())?
            }
            Err(e) => return Err(anyhow!(e)),
        }
    };
    let config: ImageConfig = serde_json::from_slice(&image.config_raw)
        .with_context(|| format!("{reference}: reading its image config"))?;
    Ok(ResolvedImage {
        reference: kiln_cache::image::normalize_name(reference)
            .unwrap_or_else(|_| reference.to_string()),
        digest: image.manifest_digest.to_string(),
        config,
    })
}

fn key_values(items: &[String], env_fallback: bool) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None if env_fallback => {
                if let Ok(v) = std::env::var(item) {
                    out.insert(item.clone(), v);
                }
            }
            None => {
                out.insert(item.clone(), String::new());
            }
        }
    }
    Ok(out)
}

/// The build's epoch: `--build-arg SOURCE_DATE_EPOCH=...` (what BuildKit
/// reads), else the environment variable (which buildx turns into that
/// build arg).
fn source_date_epoch(build_arg: Option<&String>) -> Result<Option<i64>> {
    let value = match build_arg {
        Some(v) => Some(v.clone()),
        None => std::env::var("SOURCE_DATE_EPOCH").ok(),
    };
    match value {
        Some(v) if !v.is_empty() => {
            Ok(Some(v.parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v} is not a number of seconds")
            })?))
        }
        _ => Ok(None),
    }
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
