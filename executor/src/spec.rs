//! What to run: the container's description, in OCI runtime-spec terms where
//! the runtime spec has a type for it.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use oci_spec::runtime::Process;

/// The container's root filesystem.
#[derive(Debug, Clone)]
pub enum Rootfs {
    /// A plain directory used as is (writes land in it unless `readonly`).
    Dir {
        /// The directory.
        path: PathBuf,
        /// Mount it read-only.
        readonly: bool,
    },
    /// An overlay of read-only lowers (topmost first) with a writable upper,
    /// as the store hands out for an image snapshot. It is mounted inside the
    /// container's own mount namespace, so the host never sees it.
    Overlay {
        /// Read-only layers, topmost first.
        lowers: Vec<PathBuf>,
        /// The writable layer.
        upper: PathBuf,
        /// overlayfs' work directory (same filesystem as `upper`).
        work: PathBuf,
    },
}

/// How a cache mount is shared between concurrent users (BuildKit's `sharing=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CacheSharing {
    /// Everyone uses the same directory at once.
    Shared,
    /// A user that finds the directory busy gets a fresh private one.
    Private,
    /// Users take turns: the directory is locked for the whole run.
    Locked,
}

/// One mount the container gets on top of its rootfs.
#[derive(Debug, Clone)]
pub enum MountSpec {
    /// A host path bound into the container. The source is opened on the host
    /// without following a final symlink; the destination is resolved inside
    /// the container's root.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Path inside the container.
        destination: PathBuf,
        /// Read-only (the default for RUN `--mount=type=bind`).
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Path inside the container.
        destination: PathBuf,
        /// Size limit in bytes (0 = kernel default).
        size: u64,
    },
    /// A persistent cache directory (RUN `--mount=type=cache`).
    Cache {
        /// The host directory holding the cache (created when missing).
        source: PathBuf,
        /// Path inside the container.
        destination: PathBuf,
        /// How concurrent users share it.
        sharing: CacheSharing,
        /// Read-only.
        readonly: bool,
    },
    /// A secret's bytes, made visible as a file on a tmpfs: they never touch
    /// a layer, the rootfs or the host's disk.
    Secret {
        /// The secret's content.
        data: Vec<u8>,
        /// Path of the file inside the container.
        destination: PathBuf,
        /// Permission bits of the file (BuildKit's default is 0400).
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
    },
    /// A host ssh-agent socket forwarded into the container.
    SshAgent {
        /// The agent's socket on the host.
        socket: PathBuf,
        /// Path of the socket inside the container.
        destination: PathBuf,
    },
}

impl MountSpec {
    /// Where the mount appears inside the container.
    pub fn destination(&self) -> &std::path::Path {
        match self {
            MountSpec::Bind { destination, .. }
            | MountSpec::Tmpfs { destination, .. }
            | MountSpec::Cache { destination, .. }
            | MountSpec::Secret { destination, .. }
            | MountSpec::SshAgent { destination, .. } => destination,
        }
    }
}

/// The network the container sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum NetworkMode {
    /// A new network namespace with only the loopback interface, up.
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// A new network namespace with outbound access through slirp4netns
    /// (user-mode NAT: no bridge, no firewall rules, no sysctl on the host).
    Default,
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// One published port: `-p [IP:]HOSTPORT:CONTAINERPORT[/PROTO]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortMapping {
    /// Host address to listen on.
    pub host_ip: std::net::IpAddr,
    /// Host port (0 = any free port).
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// Network settings.
#[derive(Debug, Clone, Default)]
pub struct NetworkSpec {
    /// Which network.
    pub mode: NetworkMode,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// Extra /etc/hosts lines, `(name, address)`.
    pub extra_hosts: Vec<(String, String)>,
    /// Name servers for /etc/resolv.conf (empty = derive from the host's).
    pub dns: Vec<String>,
    /// User-defined networks joined at start, in order (`eth0`, `eth1`, ...); with mode
    /// `None`, whose new namespace they are added to. The first one's address names the
    /// container in /etc/hosts and its gateway (the network's name server) is the resolver.
    pub attachments: Vec<crate::bridge::Attachment>,
    /// `--network container:X`: the network namespace to join (e.g. `/proc/PID/ns/net` of
    /// X's first process) instead of a new one; the mode is then `None`.
    pub join_netns: Option<PathBuf>,
}

/// cgroup limits. `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// Maximum number of processes.
    pub pids: Option<u64>,
    /// CPU quota in millicpus (1000 = one CPU).
    pub cpu_millis: Option<u64>,
}

/// Where the container's standard streams go.
#[derive(Debug)]
pub enum StdioSpec {
    /// The caller's own stream of the same number.
    Inherit,
    /// /dev/null.
    Null,
    /// This descriptor (e.g. a pipe's write end for streaming build output).
    Fd(OwnedFd),
}

/// Everything needed to start one container.
#[derive(Debug)]
pub struct ContainerSpec {
    /// The container's id (a directory name under the state dir).
    pub id: String,
    /// The root filesystem.
    pub rootfs: Rootfs,
    /// Remount the root read-only after setting it up (`--read-only`).
    pub readonly_rootfs: bool,
    /// Keep overlayfs' syncs to the upper layer. Off by default: the overlay
    /// is mounted `volatile`, because its unmount otherwise syncs the whole
    /// upper filesystem (35 ms here under load, against 4 ms). An upper is
    /// either thrown away (`--rm`) or turned into a layer by the store,
    /// which makes its own blob durable; after a host crash a volatile upper
    /// cannot be mounted again, which kiln never does.
    pub sync_upper: bool,
    /// The process: args, env, cwd, user, terminal, rlimits, no_new_privileges.
    /// `user.username` holds an unresolved docker `-u` value (`name[:group]`),
    /// resolved from the image's /etc/passwd and /etc/group inside the new root.
    pub process: Process,
    /// Capabilities the process keeps (docker's default set unless changed).
    pub capabilities: caps::CapsHashSet,
    /// Whether the docker-default seccomp filter is applied (it is unless `seccomp=unconfined`).
    pub seccomp: bool,
    /// The UTS hostname.
    pub hostname: String,
    /// Extra mounts, applied in order after /proc, /dev and /sys.
    pub mounts: Vec<MountSpec>,
    /// Networking.
    pub network: NetworkSpec,
    /// cgroup limits.
    pub resources: Resources,
    /// Run a tiny reaper as PID 1 and the program as its child (`--init`).
    pub init: bool,
    /// A private directory for this container's generated files and overlay
    /// mount point (e.g. `<root>/containers/<id>`); created when missing.
    pub state_dir: PathBuf,
    /// Standard input.
    pub stdin: StdioSpec,
    /// Standard output.
    pub stdout: StdioSpec,
    /// Standard error.
    pub stderr: StdioSpec,
}

/// The PATH docker gives a container whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ContainerSpec {
    /// A spec with docker's defaults: `args` run as root in `/` on `rootfs`,
    /// default capabilities and seccomp, no network, stdio inherited.
    pub fn new(
        id: impl Into<String>,
        rootfs: Rootfs,
        args: Vec<String>,
        state_dir: PathBuf,
    ) -> Self {
        let id = id.into();
        let mut process = Process::default();
        process.set_args(Some(args));
        process.set_env(Some(vec![format!("PATH={DEFAULT_PATH}")]));
        process.set_cwd(PathBuf::from("/"));
        process.set_terminal(Some(false));
        process.set_no_new_privileges(Some(false));
        process.set_capabilities(None);
        process.set_rlimits(None);
        let hostname = id.chars().take(12).collect();
        ContainerSpec {
            id,
            rootfs,
            readonly_rootfs: false,
            sync_upper: false,
            process,
            capabilities: crate::caps::docker_default(),
            seccomp: true,
            hostname,
            mounts: Vec::new(),
            network: NetworkSpec::default(),
            resources: Resources::default(),
            init: false,
            state_dir,
            stdin: StdioSpec::Null,
            stdout: StdioSpec::Inherit,
            stderr: StdioSpec::Inherit,
        }
    }
}
