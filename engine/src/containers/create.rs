//! Creating a container: its name, its image's snapshots as read-only lowers, its process
//! composed from the image's config and the user's overrides, its mounts, network and limits,
//! all checked before anything is written; then its record (status created) and settings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_executor::image::{compose, RunOverrides};
use kiln_executor::spec::{CacheSharing, NetworkMode, Resources};
use kiln_executor::state::{ContainerRecord, Status};
use kiln_executor::volume::Volumes;

use super::config::{parse_add_host, parse_publish, parse_security_opts, parse_size, parse_ulimit};
use super::from_executor;
use super::settings::{ContainerMount, ContainerSettings};
use crate::{Engine, Error, Result, ResultExt};

/// What to create: docker's `create`/`run` flags and the Engine API's create body, typed.
/// Strings in docker's syntaxes (`-v`, `--mount`, `-p`, `--ulimit`, ...) are parsed here, so
/// both faces accept exactly the same values.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The name (`--name`); generated when absent.
    pub name: Option<String>,
    /// The image reference, or with `rootfs` a directory.
    pub image: String,
    /// `image` is an unpacked root filesystem directory (podman's `--rootfs`), used as a
    /// read-only lower and never modified.
    pub rootfs: bool,
    /// An OCI image config to apply with `rootfs`.
    pub image_config: Option<oci_spec::image::Config>,
    /// Replaces the image's entrypoint (`Some(empty)` clears it).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command when not empty.
    pub cmd: Vec<String>,
    /// Environment: `K=V` entries added over the image's (`K` alone is taken as given).
    pub env: Vec<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// User: `name|uid[:group|gid]`.
    pub user: Option<String>,
    /// Additional groups.
    pub group_add: Vec<u32>,
    /// A pseudo-terminal.
    pub tty: bool,
    /// Keep standard input open for attachers (`-i`).
    pub open_stdin: bool,
    /// Close standard input when the first attacher detaches.
    pub stdin_once: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Hostname.
    pub hostname: Option<String>,
    /// `-v SRC:DST[:ro]`, `-v NAME:DST`, `-v DST` (an anonymous volume).
    pub volumes: Vec<String>,
    /// `--mount type=bind|volume|tmpfs|cache,source=..,target=..[,readonly]`.
    pub mounts: Vec<String>,
    /// `--network`: none, host, default (bridge).
    pub network: String,
    /// `-p [IP:]HOST:CONTAINER[/PROTO]`.
    pub publish: Vec<String>,
    /// `-P`: every exposed port on a free host port.
    pub publish_all: bool,
    /// `--add-host host:ip`.
    pub add_hosts: Vec<String>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--init`.
    pub init: bool,
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// Process limit.
    pub pids_limit: Option<u64>,
    /// CPU quota in millicpus.
    pub cpu_millis: Option<u64>,
    /// `--ulimit name=soft[:hard]`.
    pub ulimits: Vec<String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds.
    pub stop_timeout: Option<u64>,
    /// The user's healthcheck (`--health-*`, `--no-healthcheck`, the API's
    /// `Config.Healthcheck`), over the image's; `None` keeps the image's.
    pub healthcheck: Option<super::health::Healthcheck>,
    /// `--restart` (the API's `HostConfig.RestartPolicy`).
    pub restart_policy: super::restart::RestartPolicy,
    /// `--network-alias`: names of the container on the user network `network` names.
    pub network_aliases: Vec<String>,
    /// `--ip`: its address there.
    pub ip: Option<String>,
    /// More user networks to join (the API's further `EndpointsConfig` entries).
    pub extra_networks: Vec<(String, crate::networks::ConnectOptions)>,
}

/// A created container.
#[derive(Debug, Clone)]
pub struct Created {
    /// Its id (64 hex digits).
    pub id: String,
    /// Its name.
    pub name: String,
    /// What docker would warn about (the CLI prints them, the API returns them).
    pub warnings: Vec<String>,
}

/// A generated name, `adjective_noun_hhhh` (kiln's words, docker's shape).
pub fn random_name() -> String {
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

/// docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (one leading `/` allowed,
/// as the API's `?name=/x`).
fn check_name(name: &str) -> Result<String> {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || name.len() < 2 || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(Error::invalid(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(name.to_string())
}

fn anonymous_volume() -> String {
    // docker names anonymous volumes by 64 hex digits; kiln's keep a prefix that says so.
    format!("anon{}", &kiln_executor::state::new_id()[..16])
}

/// A cache id as one safe path component: never a path (CVE-2024-9675), never hidden.
fn cache_component(id: &str) -> String {
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
    if safe.starts_with('.') {
        format!("_{safe}")
    } else {
        safe
    }
}

impl Engine {
    /// Parses `-v` and `--mount` values into mounts (named volumes resolved, and created,
    /// under the root; a missing bind source directory created, as docker does).
    fn container_mounts(&self, options: &CreateOptions) -> Result<Vec<ContainerMount>> {
        let volumes = || Volumes::open(self.root()).map_err(from_executor);
        let mut out = Vec::new();
        for v in &options.volumes {
            let parts: Vec<&str> = v.split(':').collect();
            let (src, dst, opts) = match parts.as_slice() {
                [d] => ("", *d, ""),
                [s, d] => (*s, *d, ""),
                [s, d, o] => (*s, *d, *o),
                _ => {
                    return Err(Error::invalid(format!(
                        "invalid volume {v:?}: use SRC:DST[:ro]"
                    )))
                }
            };
            if !dst.starts_with('/') {
                return Err(Error::invalid(format!(
                    "invalid volume {v:?}: the destination must be an absolute path"
                )));
            }
            let readonly = opts.split(',').any(|o| o == "ro");
            let (source, volume) = if src.starts_with('/') || src.starts_with('.') {
                let p = PathBuf::from(src);
                if !p.exists() {
                    std::fs::create_dir_all(&p).map_err(|e| Error::io("creating", &p, e))?;
                }
                (p, None)
            } else {
                let name = if src.is_empty() {
                    anonymous_volume()
                } else {
                    src.to_string()
                };
                (
                    volumes()?.data_dir(&name).map_err(from_executor)?,
                    Some(name),
                )
            };
            out.push(ContainerMount::Bind {
                source,
                destination: dst.into(),
                readonly,
                volume,
            });
        }
        for m in &options.mounts {
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
                            _ => return Err(Error::invalid(format!("invalid sharing {val:?}"))),
                        }
                    }
                    other => {
                        return Err(Error::invalid(format!(
                            "unknown mount option {other:?} in {m:?}"
                        )))
                    }
                }
            }
            let destination = PathBuf::from(
                dst.ok_or_else(|| Error::invalid(format!("mount {m:?} needs target=")))?,
            );
            out.push(match kind {
                "bind" => ContainerMount::Bind {
                    source: src
                        .ok_or_else(|| Error::invalid(format!("mount {m:?} needs source=")))?
                        .into(),
                    destination,
                    readonly: ro,
                    volume: None,
                },
                "volume" => {
                    let name = src.unwrap_or_else(anonymous_volume);
                    ContainerMount::Bind {
                        source: volumes()?.data_dir(&name).map_err(from_executor)?,
                        destination,
                        readonly: ro,
                        volume: Some(name),
                    }
                }
                "tmpfs" => ContainerMount::Tmpfs { destination, size },
                "cache" => {
                    let id = src.unwrap_or_else(|| destination.to_string_lossy().into_owned());
                    ContainerMount::Cache {
                        source: self.root().join("cache-mounts").join(cache_component(&id)),
                        destination,
                        sharing,
                        readonly: ro,
                    }
                }
                other => return Err(Error::invalid(format!("unknown mount type {other:?}"))),
            });
        }
        Ok(out)
    }

    /// Creates a container without starting it. A taken name is an [`Error::Conflict`]; a
    /// missing image is [`Error::NotFound`] `No such image: X` (what makes the docker CLI pull).
    pub fn create_container(&self, options: &CreateOptions) -> Result<Created> {
        let store = self.containers()?;
        store.cleanup_stale();
        let name = match &options.name {
            Some(n) => check_name(n)?,
            None => random_name(),
        };
        if let Ok(other) = store.find(&name) {
            if other.name == name {
                return Err(Error::Conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                )));
            }
        }
        if let Some(h) = &options.healthcheck {
            h.validate()?;
        }
        options.restart_policy.validate()?;
        if options.auto_remove && !options.restart_policy.is_none() {
            return Err(Error::invalid(
                "can't create 'AutoRemove' container with restart policy",
            ));
        }
        let id = kiln_executor::state::new_id();
        let dir = store.dir(&id);
        let mut warnings = Vec::new();

        let (lowers, image_id, image_cfg, image_health) = if options.rootfs {
            let lower = std::fs::canonicalize(&options.image)
                .map_err(|e| Error::io("opening the rootfs", &options.image, e))?;
            (
                vec![lower],
                String::new(),
                options.image_config.clone(),
                None,
            )
        } else {
            let images = self.store()?;
            let found = images.image(&options.image).map_err(|e| match e {
                kiln_cache::Error::ImageNotFound(_) => {
                    Error::NotFound(format!("No such image: {}", options.image))
                }
                e => e.into(),
            })?;
            let mut lowers = images.unpack(&found)?;
            lowers.reverse();
            let cfg = found.config.config().clone().unwrap_or_default();
            let health = super::health::image_healthcheck(&found.config_raw);
            (lowers, found.id.to_string(), Some(cfg), health)
        };

        let composed = compose(
            image_cfg.as_ref(),
            &RunOverrides {
                entrypoint: options.entrypoint.clone(),
                cmd: options.cmd.clone(),
                env: options.env.clone(),
                workdir: options.workdir.clone(),
                user: options.user.clone(),
            },
        )
        .map_err(from_executor)?;
        let security = parse_security_opts(&options.security_opt)?;
        let rlimits = options
            .ulimits
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<Result<Vec<_>>>()?;
        let capabilities = kiln_executor::caps::adjust(
            kiln_executor::caps::docker_default(),
            &options.cap_add,
            &options.cap_drop,
        )
        .map_err(from_executor)?;
        let (network, network_name, networks) = crate::networks::attach::for_create(self, options)?;
        let mut ports = options
            .publish
            .iter()
            .map(|p| parse_publish(p))
            .collect::<Result<Vec<_>>>()?;
        let exposed_ports: Vec<String> = image_cfg
            .as_ref()
            .and_then(|c| c.exposed_ports().clone())
            .unwrap_or_default();
        if options.publish_all {
            for p in &exposed_ports {
                let mut m = parse_publish(p)?;
                m.host_ip = std::net::Ipv4Addr::UNSPECIFIED.into();
                m.host_port = 0;
                ports.push(m);
            }
        }
        if network == NetworkMode::Host && !ports.is_empty() {
            warnings.push("published ports are discarded when using host network mode".into());
            ports.clear();
        }
        let extra_hosts = options
            .add_hosts
            .iter()
            .map(|h| parse_add_host(h))
            .collect::<Result<Vec<_>>>()?;
        let mounts = self.container_mounts(options)?;
        let (entrypoint, cmd) = split_args(image_cfg.as_ref(), options, &composed.args);

        let settings = ContainerSettings {
            image: options.image.clone(),
            image_id,
            lowers,
            args: composed.args.clone(),
            entrypoint,
            cmd,
            env: composed.env.clone(),
            cwd: composed.cwd.clone(),
            user: composed.user.clone(),
            group_add: options.group_add.clone(),
            tty: options.tty,
            open_stdin: options.open_stdin,
            stdin_once: options.stdin_once,
            labels: options.labels.clone(),
            hostname: options.hostname.clone().unwrap_or_default(),
            mounts,
            network,
            network_name,
            ports,
            exposed_ports,
            extra_hosts,
            dns: options.dns.clone(),
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            seccomp: security.seccomp,
            no_new_privileges: security.no_new_privileges,
            read_only: options.read_only,
            init: options.init,
            resources: Resources {
                memory: options.memory,
                pids: options.pids_limit,
                cpu_millis: options.cpu_millis,
            },
            rlimits,
            stop_signal: options
                .stop_signal
                .clone()
                .unwrap_or_else(|| composed.stop_signal.clone()),
            stop_timeout: options.stop_timeout,
            auto_remove: options.auto_remove,
            healthcheck: super::health::Healthcheck::merged(
                options.healthcheck.as_ref(),
                image_health.as_ref(),
            ),
            restart_policy: options.restart_policy.clone(),
            networks,
        };
        let rec = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            image: options.image.clone(),
            command: composed.args.clone(),
            created: kiln_executor::state::now(),
            status: Status::Created,
            pid: None,
            supervisor: None,
            supervisor_start: None,
            exit_code: None,
            ports: Vec::new(),
            auto_remove: options.auto_remove,
            env: composed.env,
            cwd: composed.cwd,
            user: composed.user,
            caps: settings.capabilities.clone(),
            seccomp: settings.seccomp,
            no_new_privs: settings.no_new_privileges,
            stop_signal: settings.stop_signal.clone(),
            start_count: 0,
            started_at: None,
            finished_at: None,
            error: None,
            labels: options.labels.clone(),
            restart_count: 0,
        };
        for d in [dir.join("upper"), dir.join("work")] {
            std::fs::create_dir_all(&d).map_err(|e| Error::io("creating", &d, e))?;
        }
        // The log and the exit-code file exist from the start: attachers open them before
        // the first start (see `lifecycle::ExitWatch` for why the exit file must).
        for f in ["log", super::lifecycle::EXIT_FILE] {
            let p = dir.join(f);
            std::fs::File::create(&p).map_err(|e| Error::io("creating", &p, e))?;
        }
        settings.save(&dir)?;
        // The record last: a container is listed only once it is whole.
        store
            .save(&rec)
            .map_err(from_executor)
            .context("saving the container's record")?;
        self.record_container_event(&rec, "create", &[]);
        Ok(Created { id, name, warnings })
    }
}

/// The entrypoint and command parts of the composed args (for `inspect`).
fn split_args(
    cfg: Option<&oci_spec::image::Config>,
    options: &CreateOptions,
    args: &[String],
) -> (Vec<String>, Vec<String>) {
    let entrypoint = match &options.entrypoint {
        Some(e) => e.clone(),
        None => cfg.and_then(|c| c.entrypoint().clone()).unwrap_or_default(),
    };
    let n = entrypoint.len().min(args.len());
    (args[..n].to_vec(), args[n..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_rules() {
        assert_eq!(check_name("/web-1").unwrap(), "web-1");
        assert_eq!(check_name("a.b_c").unwrap(), "a.b_c");
        for bad in ["", "x", "-web", "we b", "a/b"] {
            let e = check_name(bad).unwrap_err();
            assert!(matches!(e.kind(), Error::Invalid(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn cache_ids_never_become_paths() {
        assert_eq!(cache_component("../../etc"), "_.._.._etc");
        assert_eq!(cache_component("go-mod"), "go-mod");
    }

    #[test]
    fn a_missing_image_is_not_found_in_docker_words() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(dir.path());
        let e = engine
            .create_container(&CreateOptions {
                image: "acc/nosuch:1".into(),
                ..CreateOptions::default()
            })
            .unwrap_err();
        assert!(matches!(e.kind(), Error::NotFound(_)), "{e}");
        assert_eq!(e.to_string(), "No such image: acc/nosuch:1");
        // Nothing was left behind.
        assert!(engine.containers().unwrap().list().is_empty());
    }
}
