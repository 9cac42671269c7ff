//! Build: a Dockerfile and its context into an image (`kiln build`, `POST /build`), with
//! docker build's options and BuildKit's behaviour.
//!
//! [`Engine::build`] prepares the context, parses the Dockerfile, pulls the bases the store
//! lacks, imports `--cache-from`, solves the steps, writes the image (and `--output`s),
//! exports `--cache-to` and pushes with `--push`. Steps' progress goes out as
//! [`Event::Step`]s after one [`Event::BuildSteps`].

mod context;
mod explain;
mod output;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use kiln_cache::Store;
use kiln_registry::auth::RegistryAuth;
use kiln_solver::frontend::{self, Platform, ResolvedImage};
use kiln_solver::imageconfig::ImageConfig;
use kiln_solver::scheduler::{self, Failure, SolveOptions};
use kiln_solver::worker::{LocalWorker, Output, Step, WorkerError, WorkerOptions};

pub use context::{parse_git_context, BuildContext, DockerfileSource, GitContext};

use crate::build_cache::spec::{parse_cache_from, parse_cache_to};
use crate::events::{Event, Progress};
use crate::pull::{pull_into, PullOptions};
use crate::push::{push_from, PushOptions};
use crate::{Engine, Error, Result, ResultExt, SolveFailure};

/// What to build and how: `docker build`'s options, with what only the client can read
/// (secret files, its environment, a Dockerfile on its standard input) already read.
#[derive(Debug)]
pub struct BuildOptions {
    /// Where the context comes from.
    pub context: BuildContext,
    /// Which Dockerfile to read.
    pub dockerfile: DockerfileSource,
    /// Names for the image (`name:tag`); the first is given when the image is committed.
    pub tags: Vec<String>,
    /// Build-time variables, resolved (`KEY` alone already looked up by the client).
    pub build_args: BTreeMap<String, String>,
    /// The stage to build (default: the last one).
    pub target: Option<String>,
    /// Use no cache at all, local or imported.
    pub no_cache: bool,
    /// Stages that use no cache.
    pub no_cache_filter: Vec<String>,
    /// Labels set on the image.
    pub labels: BTreeMap<String, String>,
    /// The platform asked for (`os/arch[/variant]`); only the host's is built.
    pub platform: Option<String>,
    /// Network for RUN steps: `default`, `none` or `host`.
    pub network: String,
    /// Secrets for `RUN --mount=type=secret`, by id.
    pub secrets: HashMap<String, Vec<u8>>,
    /// ssh agent sockets for `RUN --mount=type=ssh`, by id.
    pub ssh: HashMap<String, PathBuf>,
    /// Security options (`no-new-privileges`).
    pub security_opts: Vec<String>,
    /// How many steps may run at once (default: the scheduler's).
    pub jobs: Option<usize>,
    /// Outputs besides the store: `type=local,dest=DIR`, `type=tar,dest=FILE`,
    /// `type=oci|docker,dest=FILE`.
    pub outputs: Vec<String>,
    /// Return why each step that ran missed the cache (the records for the next build's
    /// explanations are kept either way).
    pub explain_cache: bool,
    /// Pull every base image, even those in the store.
    pub pull: bool,
    /// Push each tag to its registry after the build.
    pub push: bool,
    /// `--cache-to` specs, as buildx spells them.
    pub cache_to: Vec<String>,
    /// `--cache-from` specs, as buildx spells them.
    pub cache_from: Vec<String>,
    /// The build's epoch (SOURCE_DATE_EPOCH from the client's environment) when the build
    /// args have no `SOURCE_DATE_EPOCH` (which wins, as in BuildKit).
    pub epoch: Option<i64>,
    /// Credentials by registry for this build's pulls and pushes (docker's
    /// `X-Registry-Config`; keys as docker writes them: `host:port`,
    /// `https://index.docker.io/v1/`), held in memory only. `None` reads docker's credential
    /// files, as the CLI does; given, a registry they do not name is reached anonymously.
    /// (`--cache-to`/`--cache-from` registries still use the files.)
    pub registry_auth: Option<BTreeMap<String, RegistryAuth>>,
    /// Set by the caller to stop the build (an API client that went away): the solve is
    /// dropped, its steps cancelled, and nothing is tagged or exported.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl BuildOptions {
    /// Options for building `context` with its own Dockerfile and defaults for the rest.
    pub fn new(context: BuildContext) -> BuildOptions {
        BuildOptions {
            context,
            dockerfile: DockerfileSource::InContext(PathBuf::from("Dockerfile")),
            tags: Vec::new(),
            build_args: BTreeMap::new(),
            target: None,
            no_cache: false,
            no_cache_filter: Vec::new(),
            labels: BTreeMap::new(),
            platform: None,
            network: "default".into(),
            secrets: HashMap::new(),
            ssh: HashMap::new(),
            security_opts: Vec::new(),
            jobs: None,
            outputs: Vec::new(),
            explain_cache: false,
            pull: false,
            push: false,
            cache_to: Vec::new(),
            cache_from: Vec::new(),
            epoch: None,
            registry_auth: None,
            cancel: None,
        }
    }
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// The image ID (the config's digest).
    pub id: String,
    /// The image manifest's digest.
    pub manifest_digest: String,
    /// The tags as the store names them (`app:1`, `127.0.0.1:5000/app:latest`).
    pub names: Vec<String>,
    /// With `explain_cache`: one line per step that ran, saying why its cache missed.
    pub explanations: Vec<String>,
    /// Build args no step used.
    pub unused_build_args: Vec<String>,
}

impl Engine {
    /// Builds an image. A Dockerfile that does not parse is [`Error::Parse`]; a step that
    /// fails is [`Error::Solve`]. Events: pulls of missing bases, cache imports,
    /// [`Event::BuildSteps`] then [`Event::Step`]s, [`Event::BuildSolved`],
    /// [`Event::ImageWritten`], cache exports, pushes.
    pub fn build(&self, opts: BuildOptions, progress: &Progress) -> Result<BuildResult> {
        build(&self.store()?, opts, progress)
    }
}

/// A tag as the store names it, as `naming to ... done` shows it.
fn normalized(tag: &str) -> String {
    kiln_cache::image::normalize_name(tag).unwrap_or_else(|_| tag.to_string())
}

/// `--label KEY=VALUE` (or `KEY`, an empty value) as a map.
pub fn parse_labels(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (item.clone(), String::new()),
        })
        .collect()
}

/// A SOURCE_DATE_EPOCH value: seconds since 1970, or `None` when empty.
pub fn parse_epoch(value: &str) -> Result<Option<i64>> {
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse() {
        Ok(seconds) => Ok(Some(seconds)),
        Err(e) => Err(Error::invalid(format!("{e}")).context(format!(
            "SOURCE_DATE_EPOCH={value} is not a number of seconds"
        ))),
    }
}

fn network_mode(network: &str) -> Result<kiln_solver::op::NetworkMode> {
    match network {
        // docker's own name for its default network (`networkmode=bridge`).
        "default" | "bridge" => Ok(kiln_solver::op::NetworkMode::Default),
        "none" => Ok(kiln_solver::op::NetworkMode::None),
        "host" => Ok(kiln_solver::op::NetworkMode::Host),
        other => Err(Error::invalid(format!(
            "network {other:?} is not supported (use default, none or host)"
        ))),
    }
}

fn build(store: &Store, opts: BuildOptions, progress: &Progress) -> Result<BuildResult> {
    // A bad tag is refused before any step runs, not after the whole build.
    for tag in &opts.tags {
        kiln_cache::image::normalize_name(tag).map_err(|e| Error::invalid(e.to_string()))?;
    }
    let key = context::mirror_key(&opts.tags, &opts.dockerfile, opts.target.as_deref());
    let prepared = context::prepare(store, opts.context, opts.dockerfile, &key)?;
    let context = prepared.dir.clone();
    let (name, bytes) = (
        prepared.dockerfile_name.clone(),
        prepared.dockerfile.clone(),
    );
    let dockerfile = kiln_parser::parse_bytes(&bytes, &name)?;

    let platform = Platform::host();
    if let Some(p) = &opts.platform {
        match Platform::parse(p) {
            Some(want) if want.matches(&platform) => {}
            _ => {
                return Err(Error::invalid(format!(
                    "platform {p} was asked for, but kiln builds only for the host platform {platform} (no emulation)"
                )))
            }
        }
    }
    let ignore = kiln_parser::dockerignore::load(
        &context,
        prepared
            .dockerfile_path
            .as_deref()
            .unwrap_or(std::path::Path::new("")),
    )
    .map_err(|e| Error::invalid(e.to_string()))?;
    let epoch = match opts.build_args.get("SOURCE_DATE_EPOCH") {
        Some(v) => parse_epoch(v)?,
        None => opts.epoch,
    };
    let options = frontend::BuildOptions {
        build_args: opts.build_args.clone(),
        target: opts.target.clone(),
        platform: platform.clone(),
        labels: opts.labels.clone(),
        no_cache_filter: opts.no_cache_filter.clone(),
        context_excludes: Vec::new(),
        network: network_mode(&opts.network)?,
        epoch,
    };

    let cache_to = opts
        .cache_to
        .iter()
        .map(|s| parse_cache_to(s))
        .collect::<Result<Vec<_>>>()?;
    let cache_from = opts
        .cache_from
        .iter()
        .map(|s| parse_cache_from(s))
        .collect::<Result<Vec<_>>>()?;

    let plan = frontend::plan(&dockerfile, &options).map_err(|e| Error::invalid(e.to_string()))?;
    let mut images = HashMap::new();
    for reference in plan.images() {
        images.insert(
            reference.clone(),
            resolve_image(
                store,
                reference,
                opts.pull,
                opts.registry_auth.as_ref(),
                progress,
            )?,
        );
    }
    let build = plan
        .convert(&images)
        .map_err(|e| Error::invalid(e.to_string()))?;
    let _lease = store.lease(&format!("build-{}", std::process::id()))?;

    // --no-cache uses no cache at all, imported or local (as buildx).
    let imported = if cache_from.is_empty() || opts.no_cache {
        None
    } else {
        crate::build_cache::import(store, &cache_from, progress)?
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<scheduler::Event>();
    let mut worker = LocalWorker::new(
        store.clone(),
        WorkerOptions {
            context: context.clone(),
            ignore: Some(ignore),
            secrets: opts.secrets,
            ssh: opts.ssh,
            epoch: options.epoch,
            stat_cache: prepared.stat_cache.clone(),
            no_new_privileges: opts
                .security_opts
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
    progress.emit(Event::BuildSteps(Arc::new(names)));
    let graph = Arc::new(build.graph);
    let target = build.target;
    let solve_options = SolveOptions {
        jobs: opts.jobs.unwrap_or_else(|| SolveOptions::default().jobs),
        no_cache: opts.no_cache,
        events: Some(tx),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let steps = progress.clone();
        let forward = tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                steps.emit(Event::Step(ev));
            }
        });
        let solve = scheduler::solve(
            Arc::clone(&graph),
            target,
            Arc::new(Arc::clone(&worker)),
            solve_options,
        );
        let cancel = opts.cancel.clone();
        let cancelled = async move {
            match cancel {
                Some(flag) => {
                    while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        // Dropping the solve aborts its tasks (the scheduler's JoinSet goes with it).
        let solved = tokio::select! {
            solved = solve => Some(solved),
            _ = cancelled => None,
        };
        // The worker (kept for --explain-cache) and the solve held the last senders: with
        // both gone the forwarder drains and stops, so every step event precedes what
        // follows the solve.
        worker.close_events();
        let _ = forward.await;
        solved
    });
    let Some(result) = result else {
        return Err(Error::Cancelled("the build was cancelled".into()));
    };
    let solved = match result {
        Ok(s) => s,
        Err(err) => {
            let vertex = graph.vertex(err.vertex);
            let exit_code = match &*err.source {
                Failure::Worker(WorkerError::ExitCode { code, .. }) => Some(*code),
                _ => None,
            };
            return Err(Error::Solve(Box::new(SolveFailure {
                step: vertex.name.clone(),
                origin: vertex.origin.as_ref().map(|o| (name.clone(), o.line)),
                dockerfile: bytes,
                message: err.source.to_string(),
                exit_code,
            })));
        }
    };

    let explanations = explain::explain_cache(store, &context, &graph, &solved, &worker);
    let explanations = if opts.explain_cache {
        explanations
    } else {
        Vec::new()
    };
    progress.emit(Event::BuildSolved {
        explanations: explanations.clone(),
        unused_build_args: build.unused_build_args.clone(),
    });
    // A result found in an imported cache may name layers still in that cache.
    worker.materialize(&solved.output)?;
    let exported = export(
        store,
        build.config,
        &solved.output,
        &opts.tags,
        &opts.outputs,
        &options,
    )?;
    let names: Vec<String> = opts.tags.iter().map(|t| normalized(t)).collect();
    progress.emit(Event::ImageWritten {
        id: exported.config_digest.clone(),
        names: names.clone(),
    });
    for to in &cache_to {
        let vertices = crate::build_cache::selected_vertices(&graph, target, &solved.keys, to.mode);
        let done =
            crate::build_cache::export(store, &worker, to, &vertices, &solved.keys, progress)
                .with_context(|| format!("exporting the build cache to {}", to.target));
        match done {
            Err(e) if to.ignore_error => progress.warn(e.display_chain()),
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
    if opts.push {
        for t in &opts.tags {
            let push = PushOptions {
                reference: t.clone(),
                tls_verify: true,
                credentials: registry_auth_for(opts.registry_auth.as_ref(), t),
            };
            push_from(store, &push, progress).with_context(|| format!("pushing {t}"))?;
        }
    }
    Ok(BuildResult {
        id: exported.config_digest,
        manifest_digest: exported.manifest_digest,
        names,
        explanations,
        unused_build_args: build.unused_build_args,
    })
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
    tags: &[String],
    outputs: &[String],
    options: &frontend::BuildOptions,
) -> Result<Exported> {
    let Output::Fs(steps) = output else {
        return Err(Error::invalid("the target stage has no filesystem"));
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
        tags.first().map(String::as_str),
        &config_bytes,
        &blobs,
        kiln_cache::image::MediaTypes::Oci,
    )?;
    for t in tags.iter().skip(1) {
        store.set_name(t, &manifest)?;
    }
    for out in outputs {
        output::write_output(store, out, &manifest)?;
    }
    Ok(Exported {
        manifest_digest: manifest.to_string(),
        config_digest: config_digest.to_string(),
    })
}

/// The credentials of a build's `registry_auth` for the registry `reference` names: `None`
/// (read the files) when the build was given none; anonymous when given some, none of them
/// for that registry (as dockerd).
fn registry_auth_for(
    registry_auth: Option<&BTreeMap<String, RegistryAuth>>,
    reference: &str,
) -> Option<RegistryAuth> {
    let auths = registry_auth?;
    let domain = kiln_registry::Reference::parse(reference)
        .map(|r| r.domain().to_string())
        .unwrap_or_default();
    Some(
        auths
            .iter()
            .find(|(server, _)| kiln_registry::auth::registry_host(server) == domain)
            .map(|(_, auth)| auth.clone())
            .unwrap_or_default(),
    )
}

/// An image from the local store, as the front end needs it: pulled first when the store
/// lacks it, or always with `--pull`.
fn resolve_image(
    store: &Store,
    reference: &str,
    always_pull: bool,
    registry_auth: Option<&BTreeMap<String, RegistryAuth>>,
    progress: &Progress,
) -> Result<ResolvedImage> {
    let pull = || {
        let opts = PullOptions {
            reference: reference.to_string(),
            platform: kiln_registry::Platform::host(),
            tls_verify: true,
            credentials: registry_auth_for(registry_auth, reference),
        };
        pull_into(store, &opts, progress).with_context(|| {
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
            Err(e) => return Err(e.into()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn epochs_are_seconds_or_empty() {
        assert_eq!(parse_epoch("").unwrap(), None);
        assert_eq!(parse_epoch("1700000000").unwrap(), Some(1_700_000_000));
        let err = parse_epoch("soon").unwrap_err();
        assert!(matches!(err.kind(), Error::Invalid(_)), "{err:?}");
        assert!(
            err.display_chain()
                .starts_with("SOURCE_DATE_EPOCH=soon is not a number of seconds: "),
            "{}",
            err.display_chain()
        );
    }

    #[test]
    fn labels_without_a_value_are_empty() {
        let labels = parse_labels(&["a=b=c".into(), "flag".into()]);
        assert_eq!(labels["a"], "b=c");
        assert_eq!(labels["flag"], "");
    }

    #[test]
    fn unknown_networks_are_refused() {
        assert!(network_mode("host").is_ok());
        assert!(network_mode("bridge").is_ok());
        assert!(matches!(network_mode("overlay"), Err(Error::Invalid(_))));
    }

    #[test]
    fn contexts_are_directories_or_git_urls() {
        let dir = tempfile::tempdir().unwrap();
        let arg = dir.path().to_str().unwrap();
        assert!(matches!(
            BuildContext::locate(arg).unwrap(),
            BuildContext::Directory(d) if d == dir.path()
        ));
        assert!(matches!(
            BuildContext::locate("https://example.com/r.git#main").unwrap(),
            BuildContext::Git(_)
        ));
        let err = BuildContext::locate("/no/such/dir").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to prepare context: path \"/no/such/dir\" not found"
        );
    }

    /// A context directory with `Dockerfile` holding `dockerfile` and a file `a.txt`.
    fn context(dockerfile: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
        std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
        dir
    }

    fn options(dir: &tempfile::TempDir) -> BuildOptions {
        BuildOptions::new(BuildContext::Directory(dir.path().to_path_buf()))
    }

    #[test]
    fn a_build_sends_its_steps_then_the_image() {
        let root = tempfile::tempdir().unwrap();
        let engine = Engine::new(root.path());
        let dir = context("FROM scratch\nARG USED\nCOPY a.txt /a-$USED\n");
        let mut opts = options(&dir);
        opts.tags = vec!["app:1".into()];
        opts.build_args =
            BTreeMap::from([("USED".into(), "x".into()), ("NOT_USED".into(), "y".into())]);
        let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
        let sink = Arc::clone(&seen);
        let progress = Progress::new(move |e| sink.lock().unwrap().push(e));
        let built = engine.build(opts, &progress).unwrap();
        assert_eq!(built.names, ["app:1"]);
        assert_eq!(built.unused_build_args, ["NOT_USED"]);
        assert!(built.id.starts_with("sha256:"), "{}", built.id);

        let seen = seen.lock().unwrap();
        let at = |pred: &dyn Fn(&Event) -> bool| seen.iter().position(pred).expect("sent");
        let steps = at(&|e| matches!(e, Event::BuildSteps(_)));
        let first_step = at(&|e| matches!(e, Event::Step(_)));
        let solved = at(&|e| matches!(e, Event::BuildSolved { .. }));
        let written = at(&|e| matches!(e, Event::ImageWritten { .. }));
        assert!(steps < first_step && first_step < solved && solved < written);
        let last_step = seen.iter().rposition(|e| matches!(e, Event::Step(_)));
        assert!(last_step < Some(solved), "a step event after the solve");
        assert!(matches!(
            &seen[written],
            Event::ImageWritten { id, .. } if *id == built.id
        ));
        let stored = engine.store().unwrap().image("app:1").unwrap();
        assert_eq!(stored.id.to_string(), built.id);
    }

    #[test]
    fn a_failed_step_names_its_line_and_a_bad_dockerfile_is_a_parse_error() {
        let root = tempfile::tempdir().unwrap();
        let engine = Engine::new(root.path());
        let dir = context("FROM scratch\nCOPY missing.txt /m\n");
        let err = engine.build(options(&dir), &Progress::none()).unwrap_err();
        let Error::Solve(failure) = err else {
            panic!("not a solve failure: {err:?}")
        };
        assert_eq!(failure.step, "[2/2] COPY missing.txt /m");
        assert_eq!(failure.origin, Some(("Dockerfile".to_string(), 2)));
        assert!(failure.dockerfile.starts_with(b"FROM scratch"));
        assert_eq!(failure.exit_code, None);

        let dir = context("FROM scratch\nCOPY a.txt\n");
        let err = engine.build(options(&dir), &Progress::none()).unwrap_err();
        assert!(matches!(err, Error::Parse(_)), "{err:?}");
    }
}
