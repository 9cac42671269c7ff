//! What `create` decided for a container, stored beside its record as `settings.json`: every
//! start builds the runtime spec from it (as dockerd keeps a container's config and host
//! config and makes a new OCI spec per start), and `inspect` shows it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_executor::spec::{CacheSharing, NetworkMode, PortMapping, Resources};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One mount of a container, as stored (no secret ever is: `run` has no secret mounts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ContainerMount {
    /// A host path, or a named volume's data directory, bound in.
    Bind {
        /// The host path.
        source: PathBuf,
        /// Where it appears inside the container.
        destination: PathBuf,
        /// Read-only.
        readonly: bool,
        /// The volume's name when the source is a volume's data directory.
        #[serde(default)]
        volume: Option<String>,
    },
    /// A fresh tmpfs per start.
    Tmpfs {
        /// Where it appears.
        destination: PathBuf,
        /// Size limit in bytes (0: the kernel's default).
        size: u64,
    },
    /// A cache directory under `ROOT/cache-mounts`.
    Cache {
        /// The host directory.
        source: PathBuf,
        /// Where it appears.
        destination: PathBuf,
        /// How concurrent users share it.
        sharing: CacheSharing,
        /// Read-only.
        readonly: bool,
    },
}

/// A container's settings, fixed at create.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerSettings {
    /// The image as the user named it.
    pub image: String,
    /// The image's ID (`sha256:...`); empty for a `--rootfs` directory.
    pub image_id: String,
    /// The read-only lowers of its root filesystem, topmost first.
    pub lowers: Vec<PathBuf>,
    /// The program and its arguments (entrypoint and command composed).
    pub args: Vec<String>,
    /// The entrypoint part of `args`.
    pub entrypoint: Vec<String>,
    /// The command part of `args`.
    pub cmd: Vec<String>,
    /// Environment.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User (`name|uid[:group|gid]`, resolved inside the root at start).
    pub user: String,
    /// Additional groups.
    pub group_add: Vec<u32>,
    /// A pseudo-terminal.
    pub tty: bool,
    /// Standard input is kept open for attachers (`-i`).
    pub open_stdin: bool,
    /// Standard input closes when the first attacher lets go of it (docker's default with `-i`).
    pub stdin_once: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Hostname (empty: the id's first 12 digits).
    pub hostname: String,
    /// Mounts.
    pub mounts: Vec<ContainerMount>,
    /// Network mode.
    pub network: NetworkMode,
    /// The network's name as given (`default`, `none`, `host`, `bridge`).
    pub network_name: String,
    /// Published ports (host port 0: any free one, chosen at start).
    pub ports: Vec<PortMapping>,
    /// Ports the image exposes (`80/tcp`).
    pub exposed_ports: Vec<String>,
    /// Extra /etc/hosts lines.
    pub extra_hosts: Vec<(String, String)>,
    /// Name servers.
    pub dns: Vec<String>,
    /// Capabilities kept, by name.
    pub capabilities: Vec<String>,
    /// Whether the default seccomp filter applies.
    pub seccomp: bool,
    /// no_new_privs.
    pub no_new_privileges: bool,
    /// Read-only root filesystem.
    pub read_only: bool,
    /// A reaper as PID 1.
    pub init: bool,
    /// cgroup limits.
    pub resources: Resources,
    /// Resource limits (`--ulimit`).
    pub rlimits: Vec<oci_spec::runtime::PosixRlimit>,
    /// The signal `stop` sends first.
    pub stop_signal: String,
    /// Seconds `stop` waits before SIGKILL (docker's 10 when unset).
    pub stop_timeout: Option<u64>,
    /// Removed when it exits.
    pub auto_remove: bool,
    /// The healthcheck (the image's under the user's overrides; `None`: none).
    #[serde(default)]
    pub healthcheck: Option<super::health::Healthcheck>,
    /// The restart policy.
    #[serde(default)]
    pub restart_policy: super::restart::RestartPolicy,
    /// User-defined networks joined at each start, in order (`eth0`, `eth1`, ...).
    #[serde(default)]
    pub networks: Vec<crate::networks::NetworkAttachment>,
}

/// Where a container's settings are.
pub(crate) fn settings_path(container_dir: &Path) -> PathBuf {
    container_dir.join("settings.json")
}

impl ContainerSettings {
    /// Reads the settings of the container whose directory is `dir`.
    pub fn load(dir: &Path) -> Result<ContainerSettings> {
        let path = settings_path(dir);
        let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("{} is not valid: {e}", path.display())))
    }

    /// Writes them atomically (a temporary file renamed over).
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let path = settings_path(dir);
        let tmp = dir.join("settings.json.tmp");
        let bytes = serde_json::to_vec_pretty(self)?;
        std::fs::write(&tmp, bytes).map_err(|e| Error::io("writing", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("renaming", &path, e))
    }
}
