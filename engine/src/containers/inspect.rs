//! Containers as docker shows them: the `ps` summary (with docker's filters) and the
//! `inspect` object, from a record and the stored settings. Both faces show these: the CLI's
//! `ps` table and `inspect`, and the API's `/containers/json` and `/containers/{id}/json`.

use std::collections::BTreeMap;

use kiln_executor::spec::{NetworkMode, PortMapping, Protocol};
use kiln_executor::state::{ContainerRecord, Status};
use serde::Serialize;

use super::health::{Health, Healthcheck};
use super::log::rfc3339_nanos;
use super::restart::RestartPolicy;
use super::settings::{ContainerMount, ContainerSettings};
use super::{from_executor, is_running};
use crate::events::human_duration;
use crate::{Engine, Error, Result};

/// docker's state word: `created`, `running`, `restarting` or `exited`.
pub fn state_name(rec: &ContainerRecord) -> &'static str {
    if rec.status == Status::Restarting && is_running(rec) {
        "restarting"
    } else if is_running(rec) {
        "running"
    } else if rec.status == Status::Created && rec.start_count == 0 {
        "created"
    } else {
        "exited"
    }
}

fn secs_ago(nanos: Option<u64>, fallback_secs: u64) -> u64 {
    let then = nanos.map(|n| n / 1_000_000_000).unwrap_or(fallback_secs);
    kiln_executor::state::now().saturating_sub(then)
}

/// docker's status column: `Up 5 seconds`, `Exited (3) 2 minutes ago`, `Created`,
/// `Restarting (1) 2 seconds ago`; see [`status_text_with_health`] for `(healthy)`.
pub fn status_text(rec: &ContainerRecord) -> String {
    match state_name(rec) {
        "running" => format!(
            "Up {}",
            human_duration(secs_ago(rec.started_at, rec.created))
        ),
        "restarting" => format!(
            "Restarting ({}) {} ago",
            rec.exit_code.unwrap_or(0),
            human_duration(secs_ago(rec.finished_at, rec.created))
        ),
        "created" => "Created".to_string(),
        _ => format!(
            "Exited ({}) {} ago",
            rec.exit_code.unwrap_or(137),
            human_duration(secs_ago(rec.finished_at, rec.created))
        ),
    }
}

/// The status column with the health of a running container after it, as docker's
/// `Up 5 seconds (healthy)`, `Up 1 second (health: starting)`.
pub fn status_text_with_health(rec: &ContainerRecord, health: Option<&Health>) -> String {
    let text = status_text(rec);
    match health {
        Some(h) if state_name(rec) == "running" => format!("{text} ({})", h.ps_text()),
        _ => text,
    }
}

/// A container's health as `ps` and `inspect` show it: the stored state, when it has a
/// check and has been started with it.
fn current_health(settings: &ContainerSettings, dir: &std::path::Path) -> Option<Health> {
    settings.healthcheck.as_ref()?.command()?;
    Health::load(dir)
}

/// One published port in a summary.
#[derive(Debug, Clone, Serialize)]
pub struct PortSummary {
    /// The host address.
    #[serde(rename = "IP")]
    pub ip: String,
    /// The port inside the container.
    #[serde(rename = "PrivatePort")]
    pub private_port: u16,
    /// The host port.
    #[serde(rename = "PublicPort")]
    pub public_port: u16,
    /// `tcp` or `udp`.
    #[serde(rename = "Type")]
    pub kind: String,
}

/// A network a container is on, as docker shows it (kiln's networks have no addresses yet).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSummary {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The container's address on it.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// The gateway.
    pub gateway: String,
    /// Aliases.
    pub aliases: Option<Vec<String>>,
    /// The prefix length of the address.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// The MAC address.
    pub mac_address: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// `NetworkSettings` of a summary.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryNetworks {
    /// By network name.
    pub networks: BTreeMap<String, EndpointSummary>,
}

/// `HostConfig` of a summary.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryHostConfig {
    /// The network mode's name.
    pub network_mode: String,
}

/// One mount as docker shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The host path.
    pub source: String,
    /// The path inside the container.
    pub destination: String,
    /// `local` for volumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// `ro`, or empty.
    pub mode: String,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// Always `rprivate`.
    pub propagation: String,
}

/// docker's `GET /containers/json` entry and `ps` row.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    /// Full id.
    pub id: String,
    /// `/name`.
    pub names: Vec<String>,
    /// The image as named at create.
    pub image: String,
    /// The image's ID.
    #[serde(rename = "ImageID")]
    pub image_id: String,
    /// The command line.
    pub command: String,
    /// Creation time, unix seconds.
    pub created: u64,
    /// Published ports.
    pub ports: Vec<PortSummary>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `created`, `running`, `exited`.
    pub state: String,
    /// `Up 5 seconds`, ...
    pub status: String,
    /// Its network mode.
    pub host_config: SummaryHostConfig,
    /// Its networks.
    pub network_settings: SummaryNetworks,
    /// Its mounts.
    pub mounts: Vec<MountPoint>,
    /// Its health (`{"Status","FailingStreak"}`), when it has a healthcheck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSummary>,
}

/// `Health` of a summary (docker's `HealthSummary`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthSummary {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Consecutive failed checks.
    pub failing_streak: u32,
}

/// docker's filters of `ps` (`--filter`, the API's `filters`): each list empty means any;
/// a container passes when it matches one value of every non-empty list.
#[derive(Debug, Clone, Default)]
pub struct ContainerFilter {
    /// Include stopped ones (`-a`).
    pub all: bool,
    /// `label=K` or `label=K=V` (all must match).
    pub labels: Vec<String>,
    /// `name=` (a substring of the name, as docker's regexp without anchors).
    pub names: Vec<String>,
    /// `id=` (a prefix).
    pub ids: Vec<String>,
    /// `status=created|running|exited`.
    pub statuses: Vec<String>,
    /// `ancestor=` (the image as named, or its ID).
    pub ancestors: Vec<String>,
    /// Only the newest N (`-n`).
    pub limit: Option<usize>,
    /// `health=starting|healthy|unhealthy|none`.
    pub healths: Vec<String>,
    /// `restart-policy=no|always|on-failure|unless-stopped` (podman's filter).
    pub restart_policies: Vec<String>,
}

impl ContainerFilter {
    fn matches(
        &self,
        rec: &ContainerRecord,
        settings: &ContainerSettings,
        health: Option<&Health>,
    ) -> bool {
        let state = state_name(rec);
        // docker's `health=`: `none` for a container without a check.
        let health_word = health.map_or("none", |h| h.status.as_str());
        let labels_ok = self.labels.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => rec.labels.get(k).is_some_and(|x| x == v),
            None => rec.labels.contains_key(l),
        });
        let any = |list: &[String], f: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|v| f(v))
        };
        labels_ok
            && any(&self.names, &|n| {
                rec.name.contains(n.trim_start_matches('/'))
            })
            && any(&self.ids, &|i| rec.id.starts_with(i))
            && any(&self.statuses, &|s| s == state)
            && any(&self.ancestors, &|a| {
                rec.image == a
                    || settings.image_id == a
                    || settings.image_id.strip_prefix("sha256:") == Some(a)
            })
            && any(&self.healths, &|h| h == health_word)
            && any(&self.restart_policies, &|p| {
                p == settings.restart_policy.shown_name()
            })
            && (self.all
                || !self.statuses.is_empty()
                || state == "running"
                || state == "restarting")
    }
}

fn port_summaries(rec: &ContainerRecord, settings: &ContainerSettings) -> Vec<PortSummary> {
    let bound: Vec<PortSummary> = rec
        .ports
        .iter()
        .filter_map(|p| {
            // `IP:HOST->CONTAINER/PROTO`, as the supervisor recorded the bound ports.
            let (host, rest) = p.split_once("->")?;
            let (ip, public) = host.rsplit_once(':')?;
            let (private, kind) = rest.split_once('/')?;
            Some(PortSummary {
                ip: ip.to_string(),
                private_port: private.parse().ok()?,
                public_port: public.parse().ok()?,
                kind: kind.to_string(),
            })
        })
        .collect();
    if is_running(rec) {
        return bound;
    }
    let _ = settings;
    Vec::new()
}

/// docker's `Mode` of a mount: `ro`, or empty for a writable one.
fn mount_mode(readonly: bool) -> String {
    if readonly {
        "ro".into()
    } else {
        String::new()
    }
}

fn mount_points(settings: &ContainerSettings) -> Vec<MountPoint> {
    settings
        .mounts
        .iter()
        .map(|m| match m {
            ContainerMount::Bind {
                source,
                destination,
                readonly,
                volume,
            } => MountPoint {
                kind: if volume.is_some() { "volume" } else { "bind" }.into(),
                name: volume.clone(),
                source: source.display().to_string(),
                destination: destination.display().to_string(),
                driver: volume.as_ref().map(|_| "local".to_string()),
                mode: mount_mode(*readonly),
                rw: !readonly,
                propagation: "rprivate".into(),
            },
            ContainerMount::Tmpfs { destination, .. } => MountPoint {
                kind: "tmpfs".into(),
                name: None,
                source: String::new(),
                destination: destination.display().to_string(),
                driver: None,
                mode: String::new(),
                rw: true,
                propagation: "rprivate".into(),
            },
            ContainerMount::Cache {
                source,
                destination,
                readonly,
                ..
            } => MountPoint {
                kind: "bind".into(),
                name: None,
                source: source.display().to_string(),
                destination: destination.display().to_string(),
                driver: None,
                mode: mount_mode(*readonly),
                rw: !readonly,
                propagation: "rprivate".into(),
            },
        })
        .collect()
}

/// The network's name as docker shows it: the default network is `bridge` (dockerd turns
/// `default` into it too), kiln's being slirp4netns's user-mode NAT.
fn network_name(settings: &ContainerSettings) -> String {
    if crate::networks::attach::is_user_network(&settings.network_name)
        || settings.network_name.starts_with("container:")
    {
        return settings.network_name.clone();
    }
    match settings.network {
        NetworkMode::None => "none".into(),
        NetworkMode::Host => "host".into(),
        NetworkMode::Default => "bridge".into(),
    }
}

/// The container's endpoint on its network: on the default one, the addresses slirp4netns
/// gives every container (inside its own network namespace).
fn endpoint(settings: &ContainerSettings) -> EndpointSummary {
    match settings.network {
        NetworkMode::Default => EndpointSummary {
            network_id: "bridge".into(),
            ip_address: kiln_executor::network::SLIRP_GUEST_IP.into(),
            gateway: kiln_executor::network::SLIRP_GATEWAY.into(),
            aliases: None,
            ip_prefix_len: 24,
            ..Default::default()
        },
        _ => EndpointSummary::default(),
    }
}

fn summary(
    rec: &ContainerRecord,
    settings: &ContainerSettings,
    health: Option<&Health>,
) -> ContainerSummary {
    let network = network_name(settings);
    ContainerSummary {
        id: rec.id.clone(),
        names: vec![format!("/{}", rec.name)],
        image: rec.image.clone(),
        image_id: settings.image_id.clone(),
        command: rec.command.join(" "),
        created: rec.created,
        ports: port_summaries(rec, settings),
        labels: rec.labels.clone(),
        state: state_name(rec).into(),
        status: status_text_with_health(rec, health),
        host_config: SummaryHostConfig {
            network_mode: network.clone(),
        },
        network_settings: SummaryNetworks {
            networks: [(network, endpoint(settings))].into_iter().collect(),
        },
        mounts: mount_points(settings),
        health: health.map(|h| HealthSummary {
            status: h.status.clone(),
            failing_streak: h.failing_streak,
        }),
    }
}

/// `State` of `inspect`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// `created`, `running`, `exited`.
    pub status: String,
    /// Running.
    pub running: bool,
    /// Always false (no pause yet).
    pub paused: bool,
    /// Waiting to be restarted by its restart policy.
    pub restarting: bool,
    /// Killed by the OOM killer (not tracked yet: false).
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Always false.
    pub dead: bool,
    /// PID 1's host pid (0 when not running).
    pub pid: i32,
    /// The last exit code.
    pub exit_code: i32,
    /// Why the last start failed.
    pub error: String,
    /// RFC 3339 (docker's zero time when never).
    pub started_at: String,
    /// RFC 3339 (docker's zero time when never).
    pub finished_at: String,
    /// Its health, when it has a healthcheck and has been started with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// `Config` of `inspect`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    /// Hostname.
    pub hostname: String,
    /// Domain name (always empty).
    pub domainname: String,
    /// User.
    pub user: String,
    /// Whether stdin is open to attachers.
    pub attach_stdin: bool,
    /// Always true.
    pub attach_stdout: bool,
    /// Always true.
    pub attach_stderr: bool,
    /// Exposed ports as a set.
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// A terminal.
    pub tty: bool,
    /// `-i`.
    pub open_stdin: bool,
    /// Stdin closes after the first attacher.
    pub stdin_once: bool,
    /// Environment.
    pub env: Vec<String>,
    /// Command.
    pub cmd: Vec<String>,
    /// The image as named.
    pub image: String,
    /// Volumes (none declared).
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// Working directory.
    pub working_dir: String,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Stop signal.
    pub stop_signal: String,
    /// Stop timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
    /// The healthcheck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
}

/// A port binding of `HostConfig.PortBindings` and `NetworkSettings.Ports`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    /// The host address.
    pub host_ip: String,
    /// The host port (a string, as docker has it).
    pub host_port: String,
}

/// `HostConfig` of `inspect`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectHostConfig {
    /// `-v` binds.
    pub binds: Vec<String>,
    /// The network mode.
    pub network_mode: String,
    /// Requested port bindings.
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// `{"Name":"on-failure","MaximumRetryCount":2}`.
    pub restart_policy: RestartPolicy,
    /// `--rm`.
    pub auto_remove: bool,
    /// Added capabilities are folded into the set; not kept apart.
    pub cap_add: Option<Vec<String>>,
    /// See `cap_add`.
    pub cap_drop: Option<Vec<String>>,
    /// Name servers.
    pub dns: Vec<String>,
    /// Extra hosts lines, `host:ip`.
    pub extra_hosts: Vec<String>,
    /// Never privileged.
    pub privileged: bool,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// Memory limit (0: none).
    pub memory: u64,
    /// CPU quota in nano CPUs (0: none).
    pub nano_cpus: u64,
    /// Process limit.
    pub pids_limit: Option<u64>,
    /// `--init`.
    pub init: bool,
    /// The log driver as docker names it.
    pub log_config: serde_json::Value,
}

/// `NetworkSettings` of `inspect`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectNetworkSettings {
    /// Bound ports by `PORT/PROTO` (docker's `null` for an exposed port not published).
    pub ports: BTreeMap<String, Option<Vec<PortBinding>>>,
    /// The address on the default network (none yet: empty).
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Networks by name.
    pub networks: BTreeMap<String, EndpointSummary>,
}

/// docker's `inspect` of a container.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    /// Full id.
    pub id: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// The program.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// State.
    pub state: ContainerState,
    /// The image's ID.
    pub image: String,
    /// `/etc/resolv.conf`'s source.
    pub resolv_conf_path: String,
    /// `/etc/hostname`'s source.
    pub hostname_path: String,
    /// `/etc/hosts`' source.
    pub hosts_path: String,
    /// The log file.
    pub log_path: String,
    /// `/name`.
    pub name: String,
    /// Restarts its restart policy made since the user last started it.
    pub restart_count: u32,
    /// `overlay2` (what docker users read it as: an overlay of the image's layers).
    pub driver: String,
    /// `linux`.
    pub platform: String,
    /// Host config.
    pub host_config: InspectHostConfig,
    /// Mounts.
    pub mounts: Vec<MountPoint>,
    /// Config.
    pub config: InspectConfig,
    /// Network settings.
    pub network_settings: InspectNetworkSettings,
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn port_key(p: &PortMapping) -> String {
    let proto = if p.protocol == Protocol::Udp {
        "udp"
    } else {
        "tcp"
    };
    format!("{}/{proto}", p.container_port)
}

fn inspect(
    rec: &ContainerRecord,
    settings: &ContainerSettings,
    dir: &std::path::Path,
) -> ContainerInspect {
    let running = is_running(rec);
    let network = network_name(settings);
    let mut port_bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for p in &settings.ports {
        port_bindings
            .entry(port_key(p))
            .or_default()
            .push(PortBinding {
                host_ip: p.host_ip.to_string(),
                host_port: if p.host_port == 0 {
                    String::new()
                } else {
                    p.host_port.to_string()
                },
            });
    }
    let mut ports: BTreeMap<String, Option<Vec<PortBinding>>> = settings
        .exposed_ports
        .iter()
        .map(|p| {
            let key = if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            };
            (key, None)
        })
        .collect();
    for p in port_summaries(rec, settings) {
        ports
            .entry(format!("{}/{}", p.private_port, p.kind))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.ip,
                host_port: p.public_port.to_string(),
            });
    }
    let binds = settings
        .mounts
        .iter()
        .filter_map(|m| match m {
            ContainerMount::Bind {
                source,
                destination,
                readonly,
                volume,
            } => Some(format!(
                "{}:{}{}",
                volume
                    .clone()
                    .unwrap_or_else(|| source.display().to_string()),
                destination.display(),
                if *readonly { ":ro" } else { "" }
            )),
            _ => None,
        })
        .collect();
    let time = |t: Option<u64>| t.map(rfc3339_nanos).unwrap_or_else(|| ZERO_TIME.into());
    let state = ContainerState {
        status: state_name(rec).into(),
        running,
        paused: false,
        restarting: state_name(rec) == "restarting",
        oom_killed: false,
        dead: false,
        pid: if running { rec.pid.unwrap_or(0) } else { 0 },
        exit_code: if running && state_name(rec) != "restarting" {
            0
        } else {
            rec.exit_code
                .unwrap_or(if rec.start_count > 0 { 137 } else { 0 })
        },
        error: rec.error.clone().unwrap_or_default(),
        started_at: time(rec.started_at),
        finished_at: time(rec.finished_at),
        health: current_health(settings, dir),
    };
    ContainerInspect {
        id: rec.id.clone(),
        created: kiln_cache::image::rfc3339(rec.created as i64),
        path: settings.args.first().cloned().unwrap_or_default(),
        args: settings.args.iter().skip(1).cloned().collect(),
        state,
        image: settings.image_id.clone(),
        resolv_conf_path: dir.join("resolv.conf").display().to_string(),
        hostname_path: dir.join("hostname").display().to_string(),
        hosts_path: dir.join("hosts").display().to_string(),
        log_path: dir.join("log").display().to_string(),
        name: format!("/{}", rec.name),
        restart_count: rec.restart_count,
        driver: "overlay2".into(),
        platform: "linux".into(),
        host_config: InspectHostConfig {
            binds,
            network_mode: network.clone(),
            port_bindings,
            restart_policy: RestartPolicy {
                name: settings.restart_policy.shown_name().to_string(),
                maximum_retry_count: settings.restart_policy.maximum_retry_count,
            },
            auto_remove: settings.auto_remove,
            cap_add: None,
            cap_drop: None,
            dns: settings.dns.clone(),
            extra_hosts: settings
                .extra_hosts
                .iter()
                .map(|(h, ip)| format!("{h}:{ip}"))
                .collect(),
            privileged: false,
            readonly_rootfs: settings.read_only,
            memory: settings.resources.memory.unwrap_or(0),
            nano_cpus: settings
                .resources
                .cpu_millis
                .unwrap_or(0)
                .saturating_mul(1_000_000),
            pids_limit: settings.resources.pids,
            init: settings.init,
            // Clients read logs through the API only when the driver is one whose logs dockerd
            // can serve (the Python SDK's `run` checks for `json-file`): kiln's can be. The
            // file itself (LogPath) is in the CRI format (see `log`), not json-file's.
            log_config: serde_json::json!({"Type": "json-file", "Config": {}}),
        },
        mounts: mount_points(settings),
        config: InspectConfig {
            hostname: if settings.hostname.is_empty() {
                rec.id[..12].to_string()
            } else {
                settings.hostname.clone()
            },
            domainname: String::new(),
            user: settings.user.clone(),
            attach_stdin: settings.open_stdin,
            attach_stdout: true,
            attach_stderr: true,
            exposed_ports: (!settings.exposed_ports.is_empty()).then(|| {
                settings
                    .exposed_ports
                    .iter()
                    .map(|p| (p.clone(), serde_json::json!({})))
                    .collect()
            }),
            tty: settings.tty,
            open_stdin: settings.open_stdin,
            stdin_once: settings.stdin_once,
            env: settings.env.clone(),
            cmd: settings.cmd.clone(),
            image: settings.image.clone(),
            volumes: None,
            working_dir: settings.cwd.clone(),
            entrypoint: (!settings.entrypoint.is_empty()).then(|| settings.entrypoint.clone()),
            labels: settings.labels.clone(),
            stop_signal: settings.stop_signal.clone(),
            stop_timeout: settings.stop_timeout,
            healthcheck: settings.healthcheck.clone(),
        },
        network_settings: InspectNetworkSettings {
            ports,
            ip_address: String::new(),
            networks: [(network, endpoint(settings))].into_iter().collect(),
        },
    }
}

impl Engine {
    /// The containers that pass `filter`, newest first, as docker's summaries. Records left
    /// behind by a supervisor that died are cleaned up first.
    pub fn container_summaries(&self, filter: &ContainerFilter) -> Result<Vec<ContainerSummary>> {
        let store = self.containers()?;
        store.cleanup_stale();
        self.network_sweep();
        let mut out = Vec::new();
        for rec in store.list() {
            let dir = store.dir(&rec.id);
            let settings = ContainerSettings::load(&dir).unwrap_or_default();
            let health = current_health(&settings, &dir);
            if filter.matches(&rec, &settings, health.as_ref()) {
                let mut s = summary(&rec, &settings, health.as_ref());
                if !settings.networks.is_empty() {
                    s.network_settings.networks = crate::networks::attach::endpoint_summaries(
                        self.root(),
                        &rec.id,
                        &settings,
                    );
                }
                out.push(s);
            }
            if filter.limit.is_some_and(|n| out.len() >= n) {
                break;
            }
        }
        Ok(out)
    }

    /// docker's `inspect` of a container ([`Error::NotFound`] `No such container: X`).
    pub fn inspect_container(&self, key: &str) -> Result<ContainerInspect> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(|e| match from_executor(e) {
            Error::NotFound(_) => Error::NotFound(format!("No such container: {key}")),
            e => e,
        })?;
        let dir = store.dir(&rec.id);
        let settings = ContainerSettings::load(&dir)?;
        let mut out = inspect(&rec, &settings, &dir);
        if !settings.networks.is_empty() {
            out.network_settings.networks =
                crate::networks::attach::endpoint_summaries(self.root(), &rec.id, &settings);
        }
        Ok(out)
    }
}
