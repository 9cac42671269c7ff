//! The typed, normalized compose project: what `up`, `down`, `ps` and the rest work from.
//! Every value is interpolated, every relative path absolute, every short syntax in its long
//! form; serialized (serde) in the shape `docker compose config` prints.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// A loaded compose project.
#[derive(Debug, Clone, Serialize)]
pub struct Project {
    /// The project name (normalized; the prefix of every resource name).
    pub name: String,
    /// The project directory: relative paths in the files are resolved against it.
    #[serde(skip)]
    pub working_dir: PathBuf,
    /// The compose files, absolute, in merge order.
    #[serde(skip)]
    pub config_files: Vec<PathBuf>,
    /// The env files the environment was read from (`.env` or `--env-file`), absolute.
    #[serde(skip)]
    pub env_files: Vec<PathBuf>,
    /// The enabled services, in dependency order (a service after everything it depends on).
    #[serde(serialize_with = "services_by_name")]
    pub services: Vec<Service>,
    /// Services that the active profiles disable, by name (not created by `up`).
    #[serde(skip)]
    pub disabled_services: Vec<String>,
    /// Top-level networks, including the implicit `default` when a service uses it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    /// Top-level volumes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    /// Top-level secrets.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, FileObject>,
    /// Top-level configs.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, FileObject>,
    /// Top-level `x-` keys.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, serde_json::Value>,
    /// The environment the files were interpolated with (the process's over `.env`/
    /// `--env-file`), for the face to pass on (docker compose gives it to `run` and builds).
    #[serde(skip)]
    pub environment: BTreeMap<String, String>,
    /// Warnings to show the user (unset variables, obsolete `version`, ...), each once.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

fn services_by_name<S: Serializer>(services: &[Service], s: S) -> Result<S::Ok, S::Error> {
    let map: BTreeMap<&str, &Service> = services
        .iter()
        .map(|svc| (svc.name.as_str(), svc))
        .collect();
    map.serialize(s)
}

/// A service.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Service {
    /// The service's key in `services:`.
    #[serde(skip)]
    pub name: String,
    /// The project's name (for the names and labels derived from it).
    #[serde(skip)]
    pub project: String,
    /// `profiles`: the service runs only when one of them is active (none: always).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// How to build the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// The image, as written (a build-only service has none: see [`Service::image_name`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `command`: `None` keeps the image's CMD, `Some([])` clears it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// `entrypoint`: `None` keeps the image's, `Some([])` clears it; a set entrypoint drops
    /// the image's CMD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The container's environment: `env_file` files, then `environment` over them. A
    /// variable named without a value takes the project environment's; one that has none is
    /// left out (as compose-go's `RemoveEmpty`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// The env files read into `environment` (kept for display).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_file: Vec<EnvFile>,
    /// Published ports, one entry per container port.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// `expose`: ports (or ranges, `/proto`) exposed without publishing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// Mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ServiceVolume>,
    /// `volumes_from`: `service[:ro]` or `container:name[:ro]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    /// Dependencies, including those implied by `links`, `network_mode: service:X` and
    /// `volumes_from`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Dependency>,
    /// `links`: `service[:alias]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// `external_links`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<String>,
    /// The healthcheck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `restart`: `no`, `always`, `on-failure[:N]`, `unless-stopped`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// The networks by top-level key (the implicit `default` when none is given and there is
    /// no `network_mode`).
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "networks_null"
    )]
    pub networks: BTreeMap<String, ServiceNetwork>,
    /// `network_mode`: `none`, `host`, `bridge`, `service:NAME`, `container:NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// `container_name` (only with one replica).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// `hostname`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `domainname`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// `working_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `labels` (the user's; see [`Service::labels`] for the ones compose adds).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `init`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// `read_only`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// `privileged`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// `tty`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// `stdin_open`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stdin_open: bool,
    /// `cap_add`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// `cap_drop`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// `extra_hosts`, each `host:ip` (docker's form; `host=ip` is accepted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// `dns` servers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// `dns_search`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// `dns_opt`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    /// `tmpfs` mounts (`/path[:options]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    /// `stop_grace_period` (docker's default 10 s when `None`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_duration"
    )]
    pub stop_grace_period: Option<Duration>,
    /// `stop_signal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// How many containers: `deploy.replicas`, `scale`, or `--scale` (default 1).
    #[serde(skip)]
    pub replicas: u32,
    /// `deploy` (replicas are also in [`Service::replicas`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// `secrets` the service mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileReference>,
    /// `configs` the service mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileReference>,
    /// `pull_policy`: `always`, `never`, `missing`, `build`, `daily`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
    /// `platform`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Keys of the compose specification kiln keeps but does not model (`mem_limit`,
    /// `ulimits`, `logging`, `sysctls`, ...), as written (interpolated).
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
    /// `x-` keys.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

fn networks_null<S: Serializer>(
    networks: &BTreeMap<String, ServiceNetwork>,
    s: S,
) -> Result<S::Ok, S::Error> {
    // `default: null`, as docker compose prints a network with no settings
    let map: BTreeMap<&str, Option<&ServiceNetwork>> = networks
        .iter()
        .map(|(k, v)| (k.as_str(), (!v.is_empty()).then_some(v)))
        .collect();
    map.serialize(s)
}

/// A service's `build`.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Build {
    /// The context: an absolute directory, or a URL (git, http) as written.
    pub context: String,
    /// The Dockerfile, relative to the context (`Dockerfile` when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// An inline Dockerfile instead of a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile_inline: Option<String>,
    /// Build arguments (`None`: named without a value and not in the environment).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, Option<String>>,
    /// The stage to build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Labels for the image.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `cache_from`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    /// `cache_to`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache_to: Vec<String>,
    /// `network` for RUN steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `extra_hosts` for RUN steps (`host:ip`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// `secrets` for RUN --mount=type=secret.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileReference>,
    /// More tags for the built image.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `platforms`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// `no_cache`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_cache: bool,
    /// `pull`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pull: bool,
    /// `additional_contexts`: name to path (absolute) or URL.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_contexts: BTreeMap<String, String>,
    /// Build keys kept without modelling (`ssh`, `shm_size`, ...).
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// One `env_file` entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EnvFile {
    /// The file, absolute.
    pub path: PathBuf,
    /// Whether a missing file is an error (default true).
    pub required: bool,
    /// `format: raw` reads lines as `KEY=VALUE` without quotes or interpolation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// One published (or, without `published`, randomly published) port.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Port {
    /// `ingress` (the default) or `host`.
    pub mode: String,
    /// The host address to bind; `None` is every address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// The container port.
    pub target: u16,
    /// The host port or range (`8080`, `8000-8010`); `None` is a random port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `app_protocol`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

/// What a service mount is.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A named or anonymous volume.
    #[default]
    Volume,
    /// A host path.
    Bind,
    /// A tmpfs.
    Tmpfs,
    /// A named pipe (Windows).
    Npipe,
    /// A cluster volume.
    Cluster,
    /// An image's filesystem.
    Image,
}

/// One entry of a service's `volumes`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct ServiceVolume {
    /// What it is.
    #[serde(rename = "type")]
    pub kind: MountType,
    /// The volume's key in top-level `volumes` (named), the absolute host path (bind), the
    /// image (image); `None` for an anonymous volume or a tmpfs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The path in the container.
    pub target: String,
    /// `ro`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// `consistency` (ignored on Linux).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// Bind settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    /// Volume settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    /// Tmpfs settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
}

/// A bind mount's settings.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct BindOptions {
    /// `propagation`: `rprivate`, `shared`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Make the host directory when it is missing (the short syntax always does).
    pub create_host_path: bool,
    /// `selinux`: `z` or `Z`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
}

/// A volume mount's settings.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct VolumeOptions {
    /// Do not copy the image's content into a new volume.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nocopy: bool,
    /// Mount this path of the volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// A tmpfs mount's settings.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct TmpfsOptions {
    /// Size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// File mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// One `depends_on` entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Dependency {
    /// `service_started`, `service_healthy` or `service_completed_successfully`.
    pub condition: String,
    /// Whether `up` fails when the dependency is missing or fails (default true).
    pub required: bool,
    /// Whether restarting the dependency restarts this service.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
}

/// A healthcheck. Unset fields take docker's defaults (or the image's HEALTHCHECK's).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Healthcheck {
    /// `["CMD", args...]`, `["CMD-SHELL", command]` or `["NONE"]` (also when `disable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Between checks.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_duration"
    )]
    pub interval: Option<Duration>,
    /// A check's time limit.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_duration"
    )]
    pub timeout: Option<Duration>,
    /// Failures in a row that make the container unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
    /// Failures during this start period do not count.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_duration"
    )]
    pub start_period: Option<Duration>,
    /// Between checks during the start period.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_duration"
    )]
    pub start_interval: Option<Duration>,
    /// `disable: true` (the image's healthcheck is off too).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disable: bool,
}

/// A service's settings on one network.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct ServiceNetwork {
    /// More names for the service on this network.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// A fixed IPv4 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    /// A fixed IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    /// A MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Connection order (higher first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// `link_local_ips`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
    /// `interface_name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
}

impl ServiceNetwork {
    /// No settings at all (`networks: [name]`).
    pub fn is_empty(&self) -> bool {
        *self == ServiceNetwork::default()
    }
}

/// A service's `deploy`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Deploy {
    /// `replicas` as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// `deploy.labels` (swarm service labels).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The other deploy keys (`resources`, `restart_policy`, ...) as written.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A service's use of a secret or config.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileReference {
    /// The top-level key.
    pub source: String,
    /// The path in the container (`None`: `/run/secrets/SOURCE`, or `/SOURCE` for configs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Owner uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Owner gid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// File mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// A top-level network.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Network {
    /// The engine-side name: `PROJECT_KEY`, or `name:`, or the key when external.
    pub name: String,
    /// `driver` (`bridge` when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// `driver_opts`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// `ipam`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    /// No route out.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// `attachable`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub attachable: bool,
    /// `enable_ipv6`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    /// Made outside the project: never created or removed by it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// The user's labels (see [`Network::labels`] for compose's).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `x-` keys.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

/// A network's IP address management.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Ipam {
    /// `driver`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Address pools.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    /// `options`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// One IPAM pool.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct IpamPool {
    /// `subnet` (CIDR).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// `gateway`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// `ip_range`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// `aux_addresses`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

/// A top-level volume.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Volume {
    /// The engine-side name: `PROJECT_KEY`, or `name:`, or the key when external.
    pub name: String,
    /// `driver` (`local` when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// `driver_opts`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Made outside the project: never created or removed by it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// The user's labels (see [`Volume::labels`] for compose's).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `x-` keys.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

/// A top-level secret or config.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct FileObject {
    /// The engine-side name.
    pub name: String,
    /// Its content comes from this file (absolute).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// ... or from this variable of the project environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// ... or is this text (configs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Made outside the project.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// `labels`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Other keys (`driver`, `template_driver`, ...) as written.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

fn opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&super::syntax::format_duration(*d)),
        None => s.serialize_none(),
    }
}
