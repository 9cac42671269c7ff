//! `kiln run`: docker's flags over kiln's runtime. Foreground runs are tended
//! by this process; `-d` forks a small supervisor that holds the container,
//! writes its log and exit status, and serves its published ports.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use kiln_engine::containers::config::{
    parse_add_host, parse_network, parse_publish, parse_security_opts, parse_size, parse_ulimit,
};
use kiln_executor::image::{compose, parse_env_file, RunOverrides};
use kiln_executor::spec::{CacheSharing, ContainerSpec, MountSpec, NetworkMode, Rootfs, StdioSpec};
use kiln_executor::state::{ContainerRecord, Status, Store};
use kiln_executor::volume::Volumes;

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
    /// The image (or, with --rootfs, the directory) to run.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// Command and arguments (replace the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Turns `-v` and `--mount` values into mounts (named volumes resolved under --root).
fn parse_mounts(args: &Args, root: &Path) -> anyhow::Result<Vec<MountSpec>> {
    let mut out = Vec::new();
    for v in &args.volume {
        let parts: Vec<&str> = v.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [d] => {
                // An anonymous volume.
                let name = format!("anon{}", &kiln_executor::state::new_id()[..16]);
                out.push(MountSpec::Bind {
                    source: Volumes::open(root)?.data_dir(&name)?,
                    destination: d.into(),
                    readonly: false,
                });
                continue;
            }
            [s, d] => (*s, *d, ""),
            [s, d, o] => (*s, *d, *o),
            _ => bail!("invalid volume {v:?}: use SRC:DST[:ro]"),
        };
        let readonly = opts.split(',').any(|o| o == "ro");
        if !dst.starts_with('/') {
            bail!("invalid volume {v:?}: the destination must be an absolute path");
        }
        let source = if src.starts_with('/') || src.starts_with('.') {
            let p = PathBuf::from(src);
            if !p.exists() {
                // docker creates a missing bind source directory
                std::fs::create_dir_all(&p).with_context(|| format!("create {src}"))?;
            }
            p
        } else {
            Volumes::open(root)?.data_dir(src)?
        };
        out.push(MountSpec::Bind {
            source,
            destination: dst.into(),
            readonly,
        });
    }
    for m in &args.mount {
        let mut kind = "volume";
        let (mut src, mut dst, mut ro, mut size, mut sharing) =
            (None, None, false, 0u64, CacheSharing::Shared);
        for kv in m.split(',') {
            let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "type" => kind = val,
                "source" | "src" | "id" => src = Some(val.to_string()),
                "target" | "destination" | "dst" => dst = Some(val.to_string()),
                "readonly" | "ro" => ro = val.is_empty() || val == "true" || val == "1",
                "rw" => ro = !(val.is_empty() || val == "true"),
                "tmpfs-size" | "size" => size = parse_size(val)?,
                "sharing" => {
                    sharing = match val {
                        "shared" => CacheSharing::Shared,
                        "private" => CacheSharing::Private,
                        "locked" => CacheSharing::Locked,
                        _ => bail!("invalid sharing {val:?}"),
                    }
                }
                other => bail!("unknown mount option {other:?} in {m:?}"),
            }
        }
        let dst = PathBuf::from(dst.with_context(|| format!("mount {m:?} needs target="))?);
        let spec = match kind {
            "bind" => MountSpec::Bind {
                source: src
                    .with_context(|| format!("mount {m:?} needs source="))?
                    .into(),
                destination: dst,
                readonly: ro,
            },
            "volume" => {
                let name =
                    src.unwrap_or_else(|| format!("anon{}", &kiln_executor::state::new_id()[..16]));
                MountSpec::Bind {
                    source: Volumes::open(root)?.data_dir(&name)?,
                    destination: dst,
                    readonly: ro,
                }
            }
            "tmpfs" => MountSpec::Tmpfs {
                destination: dst,
                size,
            },
            "cache" => {
                let id = src.unwrap_or_else(|| dst.to_string_lossy().into_owned());
                // The id becomes one path component: hash-free but never a path (CVE-2024-9675).
                let safe: String = id
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let safe = if safe.starts_with('.') {
                    format!("_{safe}")
                } else {
                    safe
                };
                MountSpec::Cache {
                    source: root.join("cache-mounts").join(safe),
                    destination: dst,
                    sharing,
                    readonly: ro,
                }
            }
            other => bail!("unknown mount type {other:?}"),
        };
        out.push(spec);
    }
    Ok(out)
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

fn random_name() -> String {
    const ADJ: &[&str] = &[
        "amber", "brisk", "calm", "deft", "eager", "fiery", "glowing", "hardy", "keen", "lucid",
    ];
    const NOUN: &[&str] = &[
        "anvil", "bellows", "crucible", "ember", "forge", "glaze", "hearth", "ingot", "kiln",
        "slag",
    ];
    let id = kiln_executor::state::new_id();
    let b = u64::from_str_radix(&id[..8], 16).unwrap_or(0) as usize;
    format!(
        "{}_{}_{}",
        ADJ[b % ADJ.len()],
        NOUN[(b / 10) % NOUN.len()],
        &id[8..12]
    )
}

/// Resolves IMAGE to a fresh snapshot and the image's config: the seam where
/// the store (kiln-cache, through [`kiln_executor::image::ImageResolver`])
/// plugs in. Until it lands, only `--rootfs DIR` runs.
fn resolve_image(
    globals: &Globals,
    image: &str,
    container_dir: &std::path::Path,
) -> anyhow::Result<(kiln_executor::image::RootfsLayout, oci_spec::image::Config)> {
    let images = kiln_cache::Store::open(&globals.root)?;
    let found = images.image(image).map_err(|e| match e {
        kiln_cache::Error::ImageNotFound(_) => anyhow::anyhow!(
            "Unable to find image {image:?} locally (kiln build, kiln load or kiln import it first)"
        ),
        e => anyhow::anyhow!(e),
    })?;
    // The image's snapshots are the read-only lowers; the container's writes
    // go to its own upper dir, removed with the container.
    let mut lowers = images.unpack(&found)?;
    lowers.reverse();
    if lowers.is_empty() {
        let empty = container_dir.join("empty");
        std::fs::create_dir_all(&empty)?;
        lowers.push(empty);
    }
    let config = found.config.config().clone().unwrap_or_default();
    Ok((
        kiln_executor::image::RootfsLayout {
            lowers,
            upper: container_dir.join("upper"),
            work: container_dir.join("work"),
        },
        config,
    ))
}

/// Runs `kiln run`.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    store.cleanup_stale();
    let id = kiln_executor::state::new_id();
    let name = args.name.clone().unwrap_or_else(random_name);
    if store.find(&name).is_ok() {
        bail!("the container name {name:?} is already in use");
    }
    let dir = store.dir(&id);

    let (rootfs, image_cfg) = if args.rootfs {
        let lower =
            std::fs::canonicalize(&args.image).with_context(|| format!("rootfs {}", args.image))?;
        let cfg = args
            .image_config
            .as_deref()
            .map(load_image_config)
            .transpose()?;
        let upper = dir.join("upper");
        let work = dir.join("work");
        // (created once every flag has been checked: a usage error leaves nothing behind)
        (
            Rootfs::Overlay {
                lowers: vec![lower],
                upper,
                work,
            },
            cfg,
        )
    } else {
        let (layout, cfg) = resolve_image(globals, &args.image, &dir)?;
        (
            Rootfs::Overlay {
                lowers: layout.lowers,
                upper: layout.upper,
                work: layout.work,
            },
            Some(cfg),
        )
    };

    let mut env = Vec::new();
    for f in &args.env_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("read env file {}", f.display()))?;
        env.extend(parse_env_file(&text));
    }
    env.extend(args.env.iter().cloned());
    let composed = compose(
        image_cfg.as_ref(),
        &RunOverrides {
            entrypoint: args.entrypoint.clone(),
            cmd: args.command.clone(),
            env,
            workdir: args.workdir.clone(),
            user: args.user.clone(),
        },
    )?;

    let mut spec = ContainerSpec::new(id.clone(), rootfs, composed.args.clone(), dir.clone());
    spec.process.set_env(Some(composed.env.clone()));
    spec.process.set_cwd(PathBuf::from(&composed.cwd));
    let mut user = oci_spec::runtime::User::default();
    user.set_username(Some(composed.user.clone()));
    user.set_additional_gids(Some(args.group_add.clone()));
    spec.process.set_user(user);
    spec.process.set_terminal(Some(args.tty));
    let security = parse_security_opts(&args.security_opt)?;
    let no_new_privs = security.no_new_privileges;
    if !security.seccomp {
        spec.seccomp = false;
    }
    spec.process.set_no_new_privileges(Some(no_new_privs));
    let rlimits = args
        .ulimit
        .iter()
        .map(|u| parse_ulimit(u))
        .collect::<kiln_engine::Result<Vec<_>>>()?;
    spec.process.set_rlimits(if rlimits.is_empty() {
        None
    } else {
        Some(rlimits)
    });
    spec.capabilities = kiln_executor::caps::adjust(
        kiln_executor::caps::docker_default(),
        &args.cap_add,
        &args.cap_drop,
    )?;
    if let Some(h) = &args.hostname {
        spec.hostname = h.clone();
    }
    spec.readonly_rootfs = args.read_only;
    spec.init = args.init;
    spec.mounts = parse_mounts(&args, &globals.root)?;
    spec.network.mode = parse_network(&args.network)?;
    spec.network.ports = args
        .publish
        .iter()
        .map(|p| parse_publish(p))
        .collect::<kiln_engine::Result<_>>()?;
    if args.publish_all {
        if let Some(cfg) = &image_cfg {
            for p in cfg.exposed_ports().clone().unwrap_or_default() {
                let mut m = parse_publish(&p)?;
                m.host_ip = "0.0.0.0".parse()?;
                m.host_port = 0;
                spec.network.ports.push(m);
            }
        }
    }
    if spec.network.mode == NetworkMode::Host && !spec.network.ports.is_empty() {
        eprintln!("kiln: warning: published ports are discarded when using host network mode");
        spec.network.ports.clear();
    }
    for h in &args.add_host {
        spec.network.extra_hosts.push(parse_add_host(h)?);
    }
    spec.network.dns = args.dns.clone();
    spec.resources.memory = args.memory.as_deref().map(parse_size).transpose()?;
    spec.resources.pids = args.pids_limit;
    spec.resources.cpu_millis = args.cpus.map(|c| (c * 1000.0) as u64);

    let caps_names: Vec<String> = spec.capabilities.iter().map(|c| c.to_string()).collect();
    let mut rec = ContainerRecord {
        id: id.clone(),
        name,
        image: args.image.clone(),
        command: composed.args.clone(),
        created: kiln_executor::state::now(),
        status: Status::Created,
        pid: None,
        supervisor: Some(std::process::id() as i32),
        supervisor_start: kiln_executor::state::process_start_time(std::process::id() as i32),
        exit_code: None,
        ports: Vec::new(),
        auto_remove: args.rm,
        env: composed.env.clone(),
        cwd: composed.cwd.clone(),
        user: composed.user.clone(),
        caps: caps_names,
        seccomp: spec.seccomp,
        no_new_privs,
        stop_signal: composed.stop_signal.clone(),
    };
    if let Rootfs::Overlay { upper, work, .. } = &spec.rootfs {
        for d in [upper, work] {
            std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
        }
    }
    store.save(&rec)?;

    if args.detach {
        return crate::commands::container::detach(&store, rec, spec);
    }
    spec.stdin = if args.interactive && !args.tty {
        StdioSpec::Inherit
    } else {
        StdioSpec::Null
    };
    let forward = crate::commands::container::SignalForwarder::install();
    let running = match kiln_executor::launch::start(spec) {
        Ok(r) => r,
        Err(e) => {
            let code = match &e {
                kiln_executor::Error::Exec { code, .. } => *code as u8,
                _ => 125,
            };
            finish(&store, &mut rec, None);
            eprintln!("kiln: error: {e}");
            return Ok(ExitCode::from(code));
        }
    };
    if !running.skipped_limits.is_empty() {
        eprintln!(
            "kiln: warning: this host has no {} cgroup controller: those limits are not applied",
            running.skipped_limits.join("/")
        );
    }
    rec.status = Status::Running;
    rec.pid = Some(running.pid);
    rec.ports = running
        .ports
        .as_ref()
        .map(|p| crate::commands::container::port_strings(&p.bound))
        .unwrap_or_default();
    store.save(&rec)?;
    forward.target(
        running.pid,
        running.pty_master.as_ref().map(|m| m.as_raw_fd()),
    );
    if let Some(master) = running.pty_master.as_ref() {
        crate::commands::container::attach_pty(master, args.interactive);
    }
    let code = running.wait()?;
    finish(&store, &mut rec, Some(code));
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Records the exit (or removes the container with --rm).
pub(crate) fn finish(store: &Store, rec: &mut ContainerRecord, code: Option<i32>) {
    if rec.auto_remove {
        // Move the directory aside now; a forked child deletes it while this
        // process exits (the next start cleans up if the child dies).
        if let Ok(trash) = store.discard(&rec.id) {
            // SAFETY: the child only deletes files and calls _exit.
            if let Ok(nix::unistd::ForkResult::Child) = unsafe { nix::unistd::fork() } {
                // Let go of kiln's stdio: a `$(kiln run --rm ...)` must not wait for us.
                // SAFETY: closing our own copies of the standard descriptors.
                unsafe { libc::close_range(0, 2, 0) };
                let _ = kiln_executor::state::remove_tree_one_fs(&trash);
                // SAFETY: _exit in a forked child.
                unsafe { libc::_exit(0) };
            }
        }
        return;
    }
    rec.status = Status::Exited;
    rec.exit_code = Some(code.unwrap_or(125));
    rec.pid = None;
    let _ = store.save(rec);
    // The overlay's upper keeps the container's changes; the mount point is empty.
}
