//! `kiln run`: docker's flags over the engine's create, attach, start and wait. The
//! container is tended by its supervisor (see `kiln_engine::containers`), as with `-d`; in
//! the foreground this process shows its output, feeds its input, forwards signals and
//! exits with its exit code, as `docker run` does.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use kiln_engine::containers::config::parse_size;
use kiln_engine::containers::log::LogStream;
use kiln_engine::containers::{
    CreateOptions, HealthFlags, RestartPolicy, StartOutcome, WaitCondition,
};
use kiln_engine::{Engine, Error};
use kiln_executor::image::parse_env_file;

use crate::commands::container::SignalForwarder;
use crate::Globals;

/// Flags of `kiln run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Keep standard input open.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// Run in the background and print the container id.
    #[arg(short, long)]
    detach: bool,
    /// Name of the container.
    #[arg(long)]
    name: Option<String>,
    /// Set a label (K=V).
    #[arg(short, long = "label", value_name = "K=V")]
    label: Vec<String>,
    /// The signal `kiln stop` sends first.
    #[arg(long)]
    stop_signal: Option<String>,
    /// Seconds `kiln stop` waits before SIGKILL.
    #[arg(long)]
    stop_timeout: Option<u64>,
    /// Set an environment variable (K=V, or K to copy kiln's).
    #[arg(short, long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Bind a host path or named volume: SRC:DST[:ro|rw].
    #[arg(short, long = "volume", value_name = "SRC:DST[:ro]")]
    volume: Vec<String>,
    /// A mount: type=bind|volume|tmpfs|cache,source=..,target=..[,readonly]
    #[arg(long, value_name = "SPEC")]
    mount: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// User: name|uid[:group|gid].
    #[arg(short, long)]
    user: Option<String>,
    /// Additional groups for the process.
    #[arg(long)]
    group_add: Vec<u32>,
    /// Override the image's entrypoint.
    #[arg(long)]
    entrypoint: Option<String>,
    /// Network: none, host or default (outbound access via slirp4netns).
    #[arg(long, alias = "net", default_value = "default")]
    network: String,
    /// A network-scoped alias for the container (user networks); may be repeated.
    #[arg(long = "network-alias", alias = "net-alias")]
    network_alias: Vec<String>,
    /// The container's IPv4 address on its user network.
    #[arg(long)]
    ip: Option<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    read_only: bool,
    /// Add a capability.
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop a capability.
    #[arg(long)]
    cap_drop: Vec<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short, long)]
    memory: Option<String>,
    /// Maximum number of processes.
    #[arg(long)]
    pids_limit: Option<u64>,
    /// CPUs (e.g. 0.5).
    #[arg(long)]
    cpus: Option<f64>,
    /// Run a reaper as PID 1 that forwards signals.
    #[arg(long)]
    init: bool,
    /// Publish a port: [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp].
    #[arg(short, long = "publish")]
    publish: Vec<String>,
    /// Publish every port the image exposes on a free host port.
    #[arg(short = 'P', long)]
    publish_all: bool,
    /// Security options: no-new-privileges[:true|false], seccomp=unconfined.
    #[arg(long)]
    security_opt: Vec<String>,
    /// Hostname inside the container.
    #[arg(long)]
    hostname: Option<String>,
    /// Add a host-to-IP line to /etc/hosts (host:ip).
    #[arg(long)]
    add_host: Vec<String>,
    /// A DNS server for /etc/resolv.conf.
    #[arg(long)]
    dns: Vec<String>,
    /// A ulimit: name=soft[:hard] (never above kiln's hard limit).
    #[arg(long)]
    ulimit: Vec<String>,
    /// Treat IMAGE as an unpacked root filesystem directory (as podman's --rootfs);
    /// it is used as a read-only overlay lower, never modified.
    #[arg(long)]
    rootfs: bool,
    /// An OCI image config (JSON) to apply, for use with --rootfs.
    #[arg(long, value_name = "FILE")]
    image_config: Option<PathBuf>,
    /// Command to run to check health (run with /bin/sh -c inside the container).
    #[arg(long, value_name = "COMMAND")]
    health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 30s).
    #[arg(long, value_name = "DURATION")]
    health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 30s).
    #[arg(long, value_name = "DURATION")]
    health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy (default 3).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    health_retries: Option<i64>,
    /// Start period for the container to initialize before failing checks count
    /// (ms|s|m|h) (default 0s).
    #[arg(long, value_name = "DURATION")]
    health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h) (default 5s).
    #[arg(long, value_name = "DURATION")]
    health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long)]
    no_healthcheck: bool,
    /// Restart policy to apply when the container exits: no, on-failure[:max-retries],
    /// always, unless-stopped.
    #[arg(long, value_name = "POLICY", default_value = "no")]
    restart: String,
    /// The image (or, with --rootfs, the directory) to run.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// Command and arguments (replace the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn load_image_config(path: &Path) -> anyhow::Result<oci_spec::image::Config> {
    let text = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("parse {}", path.display()))?;
    // Accept a whole OCI image config ({"config": {...}}) or just its config part.
    let cfg = v.get("config").cloned().unwrap_or(v);
    serde_json::from_value(cfg)
        .with_context(|| format!("{} is not an OCI image config", path.display()))
}

/// The engine's create options from the flags, with what only the client has resolved
/// here: env files, and `-e K` taken from this process's environment (docker's CLI does
/// the same; the engine never reads its own environment for a container).
pub(crate) fn create_options(args: &Args) -> anyhow::Result<CreateOptions> {
    let mut env = Vec::new();
    for f in &args.env_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("read env file {}", f.display()))?;
        env.extend(parse_env_file(&text));
    }
    for e in &args.env {
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.push(format!("{e}={v}"));
        }
    }
    let labels = args
        .label
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect();
    Ok(CreateOptions {
        name: args.name.clone(),
        image: args.image.clone(),
        rootfs: args.rootfs,
        image_config: args
            .image_config
            .as_deref()
            .map(load_image_config)
            .transpose()?,
        entrypoint: args.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                Vec::new()
            } else {
                vec![e.clone()]
            }
        }),
        cmd: args.command.clone(),
        env,
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        group_add: args.group_add.clone(),
        tty: args.tty,
        open_stdin: args.interactive,
        // docker's CLI: a foreground `-i` closes the program's input at the end of its own.
        stdin_once: args.interactive && !args.detach,
        labels,
        hostname: args.hostname.clone(),
        volumes: args.volume.clone(),
        mounts: args.mount.clone(),
        network: args.network.clone(),
        publish: args.publish.clone(),
        publish_all: args.publish_all,
        add_hosts: args.add_host.clone(),
        dns: args.dns.clone(),
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        security_opt: args.security_opt.clone(),
        read_only: args.read_only,
        init: args.init,
        memory: args.memory.as_deref().map(parse_size).transpose()?,
        pids_limit: args.pids_limit,
        cpu_millis: args.cpus.map(|c| (c * 1000.0) as u64),
        ulimits: args.ulimit.clone(),
        auto_remove: args.rm,
        stop_signal: args.stop_signal.clone(),
        stop_timeout: args.stop_timeout,
        healthcheck: HealthFlags {
            cmd: args.health_cmd.clone(),
            interval: args.health_interval.clone(),
            timeout: args.health_timeout.clone(),
            retries: args.health_retries,
            start_period: args.health_start_period.clone(),
            start_interval: args.health_start_interval.clone(),
            none: args.no_healthcheck,
        }
        .healthcheck()?,
        restart_policy: RestartPolicy::parse(&args.restart)?,
        network_aliases: args.network_alias.clone(),
        ip: args.ip.clone(),
        ..Default::default()
    })
}

/// docker's exit code for a `run` that failed before the program ran: 125, or the
/// start's 126/127.
pub(crate) fn failed(e: Error) -> ExitCode {
    let code = match &e {
        Error::Start { code, .. } => *code,
        _ => 125,
    };
    eprintln!("kiln: error: {:#}", anyhow::Error::from(e));
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// docker's exit code for flags that cannot be turned into create options: 125.
pub(crate) fn bad_flags(e: anyhow::Error) -> ExitCode {
    eprintln!("kiln: error: {e:#}");
    ExitCode::from(125)
}

/// Runs `kiln run`.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(&globals.root);
    let options = match create_options(&args) {
        Ok(o) => o,
        // docker's 125 for flags it refuses, as for a create that fails.
        Err(e) => return Ok(bad_flags(e)),
    };
    let created = match engine.create_container(&options) {
        Ok(c) => c,
        Err(e) => return Ok(failed(e)),
    };
    for w in &created.warnings {
        eprintln!("kiln: warning: {w}");
    }
    if args.detach {
        return Ok(match engine.start_container(&created.id) {
            Ok(_) => {
                println!("{}", created.id);
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        });
    }
    foreground(&engine, &created.id, args.interactive, true, args.rm)
}

/// Attaches this terminal to a container and waits for the end of its run, starting it
/// first when `start` (what `run` without `-d`, `start -a` and `attach` do). With a
/// terminal the container's is used; `interactive` feeds it this process's input. Returns the
/// container's exit code.
pub fn foreground(
    engine: &Engine,
    id: &str,
    interactive: bool,
    start: bool,
    auto_remove: bool,
) -> anyhow::Result<ExitCode> {
    // Attach and begin the wait before the start: nothing the program writes is missed,
    // and the exit code of a `--rm` container is read after it is gone.
    let mut attachment = engine.attach_container(id)?;
    let tty = attachment.tty;
    let condition = if auto_remove {
        WaitCondition::Removed
    } else {
        WaitCondition::NextExit
    };
    let mut exit = engine.watch_exit(id, condition)?;
    let forward = SignalForwarder::install();
    let pid = if start {
        match engine.start_container(id) {
            Ok(StartOutcome::Started { pid }) => pid,
            Ok(StartOutcome::AlreadyRunning) => engine.find_container(id)?.pid.unwrap_or(0),
            Err(e) => return Ok(failed(e)),
        }
    } else {
        let rec = engine.find_container(id)?;
        if !kiln_engine::containers::is_running(&rec) {
            anyhow::bail!("You cannot attach to a stopped container, start it first");
        }
        rec.pid.unwrap_or(0)
    };
    let raw = if tty {
        kiln_executor::pty::RawMode::enter(0)
    } else {
        None
    };
    let resize = {
        let root = engine.root().to_path_buf();
        let id = id.to_string();
        move || {
            if let Some((rows, cols)) = kiln_executor::pty::size_of(0) {
                let _ = Engine::new(&root).resize_container_tty(&id, rows, cols);
            }
        }
    };
    if tty {
        resize();
    }
    forward.target(pid, tty.then(|| Box::new(resize) as Box<dyn Fn() + Send>));
    if interactive {
        if let Some(mut conn) = attachment.stdin.connect()? {
            std::thread::spawn(move || {
                let mut stdin = std::io::stdin().lock();
                let mut buf = [0u8; 32 * 1024];
                while let Ok(n) = stdin.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = conn.shutdown(std::net::Shutdown::Write);
            });
        }
    }
    {
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        while let Some(chunk) = attachment.output.next_chunk()? {
            // A closed stdout (`| head`) stops the copy, not the container.
            let written = match chunk.stream {
                LogStream::Stdout => out.write_all(&chunk.bytes).and_then(|_| out.flush()),
                LogStream::Stderr => err.write_all(&chunk.bytes),
            };
            if written.is_err() {
                break;
            }
        }
    }
    let outcome = exit.wait(None);
    drop(raw);
    let code = outcome.map(|o| o.exit_code).unwrap_or(125);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
