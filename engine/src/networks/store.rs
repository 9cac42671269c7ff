//! A network's state under `--root`, which survives any crash:
//! `ROOT/networks/ID/network.json` (what create decided), `endpoints/CONTAINERID.json` (one per
//! container attached now: its address, names and the process whose life it follows),
//! `helper.pid` (the helper's pid and start time) and `lock` (taken around every change).

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An IPv4 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// The network address.
    pub base: Ipv4Addr,
    /// The prefix length.
    pub prefix_len: u8,
}

impl Subnet {
    /// Parses `A.B.C.D/N` (the address is masked to its network).
    pub fn parse(s: &str) -> Result<Subnet> {
        let bad = || Error::invalid(format!("invalid subnet {s:?}: want A.B.C.D/N"));
        let (ip, len) = s.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix_len: u8 = len.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix_len) {
            return Err(Error::invalid(format!(
                "invalid subnet {s:?}: the prefix length must be 8 to 30"
            )));
        }
        Ok(Subnet {
            base: Ipv4Addr::from(u32::from(ip) & Self::mask_of(prefix_len)),
            prefix_len,
        })
    }

    fn mask_of(prefix_len: u8) -> u32 {
        u32::MAX.checked_shl(32 - prefix_len as u32).unwrap_or(0)
    }

    /// Whether `ip` lies in the subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask_of(self.prefix_len) == u32::from(self.base)
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.base) || other.contains(self.base)
    }

    /// The first host address (docker's default gateway).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    /// The host addresses, in order (network and broadcast addresses excluded).
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let base = u32::from(self.base);
        let size = 1u64 << (32 - self.prefix_len as u32);
        (1..size.saturating_sub(1)).map(move |i| Ipv4Addr::from(base + i as u32))
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix_len)
    }
}

/// What `network create` decided, as stored in `network.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// 64 hex digits.
    pub id: String,
    /// The name.
    pub name: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// Always `bridge`.
    pub driver: String,
    /// `A.B.C.D/N`.
    pub subnet: String,
    /// The bridge's address.
    pub gateway: Ipv4Addr,
    /// No way out (no default route, no forwarding of names).
    pub internal: bool,
    /// Containers may be attached later (always true for kiln: there is no swarm).
    pub attachable: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

impl NetworkRecord {
    /// The subnet, parsed.
    pub fn subnet(&self) -> Result<Subnet> {
        Subnet::parse(&self.subnet)
    }

    /// The bridge's name inside the network's namespace.
    pub fn bridge(&self) -> String {
        format!("br-{}", self.id.get(..12).unwrap_or(&self.id))
    }
}

/// One container attached to a network now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    /// The container's id.
    pub container_id: String,
    /// The container's name.
    pub name: String,
    /// `--network-alias` names.
    pub aliases: Vec<String>,
    /// The endpoint's id (64 hex digits).
    pub endpoint_id: String,
    /// The container's address.
    pub ipv4: Ipv4Addr,
    /// Its MAC.
    pub mac: String,
    /// The veth end on the bridge.
    pub host_ifname: String,
    /// The interface inside the container.
    pub ifname: String,
    /// The process whose life the endpoint follows (the container's supervisor).
    pub owner_pid: i32,
    /// That process's start time, so a reused pid is never mistaken for it.
    pub owner_start: Option<u64>,
    /// The container's first process once it runs (whose namespace holds `ifname`), so a
    /// helper started again after a crash can make the veth anew.
    #[serde(default)]
    pub netns_pid: Option<i32>,
    /// Whether the container's default route goes through this network.
    #[serde(default)]
    pub default_route: bool,
}

impl Endpoint {
    /// Whether the process the endpoint follows still runs.
    pub fn alive(&self) -> bool {
        process_alive(self.owner_pid, self.owner_start)
    }
}

/// Whether `pid` runs and started at `start` (the start time from `/proc/PID/stat`).
/// A zombie counts as gone: a killed supervisor stays one until its parent (init, after the
/// double fork) reaps it.
pub fn process_alive(pid: i32, start: Option<u64>) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 2..i + 3))
        .unwrap_or("?");
    !matches!(state, "Z" | "X")
        && kiln_executor::state::process_start_time(pid)
            .is_some_and(|s| start.is_none_or(|w| w == s))
}

/// The networks' directory of a root.
pub fn networks_dir(root: &Path) -> PathBuf {
    root.join("networks")
}

/// A network's directory.
pub fn network_dir(root: &Path, id: &str) -> PathBuf {
    networks_dir(root).join(id)
}

/// A network's endpoints directory.
pub fn endpoints_dir(root: &Path, id: &str) -> PathBuf {
    network_dir(root, id).join("endpoints")
}

/// An exclusive `flock` held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes the lock at `path` (created when missing), waiting for it.
pub fn lock(path: &Path) -> Result<Lock> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("opening", path, e))?;
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(Lock { _file: file });
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::io("locking", path, e));
        }
    }
}

/// The lock of one network.
pub fn lock_network(root: &Path, id: &str) -> Result<Lock> {
    lock(&network_dir(root, id).join("lock"))
}

/// The lock around creating and removing networks (names and subnets are unique).
pub fn lock_all(root: &Path) -> Result<Lock> {
    lock(&networks_dir(root).join(".lock"))
}

/// Writes `value` as JSON at `path` atomically (a temporary renamed over), so a reader never
/// sees half a file and the directory's mtime tells that something changed.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(value)?;
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming", path, e))
}

/// Every network's record.
pub fn load_all(root: &Path) -> Vec<NetworkRecord> {
    let Ok(rd) = std::fs::read_dir(networks_dir(root)) else {
        return Vec::new();
    };
    let mut out: Vec<NetworkRecord> = rd
        .flatten()
        .filter_map(|e| load(root, &e.file_name().to_string_lossy()).ok())
        .collect();
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    out
}

/// One network's record.
pub fn load(root: &Path, id: &str) -> Result<NetworkRecord> {
    let path = network_dir(root, id).join("network.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Internal(format!("{} is not valid: {e}", path.display())))
}

/// The endpoints of a network, live or not.
pub fn endpoints(root: &Path, id: &str) -> Vec<Endpoint> {
    let Ok(rd) = std::fs::read_dir(endpoints_dir(root, id)) else {
        return Vec::new();
    };
    let mut out: Vec<Endpoint> = rd
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by_key(|e: &Endpoint| u32::from(e.ipv4));
    out
}

/// The path of a container's endpoint file on a network.
pub fn endpoint_path(root: &Path, id: &str, container_id: &str) -> PathBuf {
    endpoints_dir(root, id).join(format!("{container_id}.json"))
}

/// Removes the endpoints whose process is gone (the caller holds the network's lock) and
/// returns the live ones.
pub fn drop_stale(root: &Path, id: &str) -> Vec<Endpoint> {
    let mut live = Vec::new();
    for ep in endpoints(root, id) {
        if ep.alive() {
            live.push(ep);
        } else {
            let _ = std::fs::remove_file(endpoint_path(root, id, &ep.container_id));
        }
    }
    live
}

/// The helper's pid file: `PID START`.
pub fn helper_pid_path(root: &Path, id: &str) -> PathBuf {
    network_dir(root, id).join("helper.pid")
}

/// The running helper of a network: its pid, when the pid file names a live process that
/// started when the file says.
pub fn live_helper(root: &Path, id: &str) -> Option<i32> {
    let text = std::fs::read_to_string(helper_pid_path(root, id)).ok()?;
    let mut parts = text.split_whitespace();
    let pid: i32 = parts.next()?.parse().ok()?;
    let start: u64 = parts.next()?.parse().ok()?;
    process_alive(pid, Some(start)).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_compare() {
        let s = Subnet::parse("10.213.7.9/24").unwrap();
        assert_eq!(s.to_string(), "10.213.7.0/24");
        assert_eq!(s.first_host(), Ipv4Addr::new(10, 213, 7, 1));
        assert!(s.contains(Ipv4Addr::new(10, 213, 7, 254)));
        assert!(!s.contains(Ipv4Addr::new(10, 213, 8, 1)));
        assert_eq!(s.hosts().count(), 254);
        assert!(s.overlaps(&Subnet::parse("10.213.0.0/16").unwrap()));
        assert!(!s.overlaps(&Subnet::parse("10.213.8.0/24").unwrap()));
        assert!(Subnet::parse("10.1.2.3").is_err());
        assert!(Subnet::parse("10.1.2.3/33").is_err());
    }
}
