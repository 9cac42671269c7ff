//! Containers on networks: what a container's settings say it joins, joining at each start
//! (the supervisor), `network connect`/`disconnect` (also of a running container, at once),
//! and the endpoints `inspect` shows.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use kiln_executor::bridge::{self, Attachment};
use kiln_executor::spec::NetworkMode;
use kiln_executor::state::ContainerRecord;
use serde::{Deserialize, Serialize};

use super::helper;
use super::store::{self, Endpoint, NetworkRecord};
use crate::containers::{from_executor, ContainerSettings, EndpointSummary};
use crate::{Engine, Error, Result};

/// A user-defined network a container joins at each start (docker's `EndpointsConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// The network's id.
    pub network_id: String,
    /// Its name when the container was attached (for display when it is gone).
    pub network_name: String,
    /// `--network-alias` names.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`: the address asked for.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
}

/// `network connect`'s options (and a user network named at create).
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--alias`.
    pub aliases: Vec<String>,
    /// `--ip`.
    pub ipv4: Option<String>,
}

/// Resolves the user network a container is to join and checks the options.
pub(crate) fn attachment_for(
    engine: &Engine,
    network: &str,
    options: &ConnectOptions,
) -> Result<NetworkAttachment> {
    let rec = engine.find_network(network)?;
    let ipv4 = match &options.ipv4 {
        Some(s) if !s.is_empty() => {
            let ip: Ipv4Addr = s
                .parse()
                .map_err(|_| Error::invalid(format!("invalid IPv4 address: {s}")))?;
            if !rec.subnet()?.contains(ip) {
                return Err(Error::invalid(format!(
                    "no configured subnet contains IP address {ip}"
                )));
            }
            Some(ip)
        }
        _ => None,
    };
    for a in &options.aliases {
        if a.is_empty() || a.contains(char::is_whitespace) {
            return Err(Error::invalid(format!("invalid network alias {a:?}")));
        }
    }
    Ok(NetworkAttachment {
        network_id: rec.id.clone(),
        network_name: rec.name.clone(),
        aliases: options.aliases.clone(),
        ipv4,
    })
}

/// What `create` decides about a container's network: the mode, the name as stored
/// (`container:ID` for another container's namespace) and the user networks it joins.
pub(crate) fn for_create(
    engine: &Engine,
    options: &crate::containers::CreateOptions,
) -> Result<(NetworkMode, String, Vec<NetworkAttachment>)> {
    let mut name = if options.network.is_empty() {
        "default".to_string()
    } else {
        options.network.clone()
    };
    let no_aliases = || -> Result<()> {
        if options.network_aliases.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(
                "network-scoped alias is supported only for containers in user defined networks",
            ))
        }
    };
    let mut networks = Vec::new();
    let mode = if is_user_network(&name) {
        let primary = ConnectOptions {
            aliases: options.network_aliases.clone(),
            ipv4: options.ip.clone(),
        };
        networks.push(attachment_for(engine, &name, &primary)?);
        NetworkMode::None
    } else if let Some(target) = name.strip_prefix("container:") {
        // docker keeps the other container's id, so a rename does not break it
        let rec = engine.containers()?.find(target).map_err(from_executor)?;
        name = format!("container:{}", rec.id);
        if !options.publish.is_empty() || options.publish_all {
            return Err(Error::invalid(
                "conflicting options: port publishing and the container type network mode",
            ));
        }
        no_aliases()?;
        NetworkMode::None
    } else {
        no_aliases()?;
        crate::containers::config::parse_network(&name)?
    };
    for (net, opts) in &options.extra_networks {
        let att = attachment_for(engine, net, opts)?;
        if !networks
            .iter()
            .any(|a: &NetworkAttachment| a.network_id == att.network_id)
        {
            networks.push(att);
        }
    }
    Ok((mode, name, networks))
}

/// Whether a network is a user-defined one rather than a mode (`none`, `host`, `default`,
/// `bridge`, `container:...`).
pub fn is_user_network(name: &str) -> bool {
    !matches!(
        name,
        "" | "none" | "host" | "default" | "bridge" | "slirp4netns"
    ) && !name.starts_with("container:")
}

fn pick_address(
    net: &NetworkRecord,
    live: &[Endpoint],
    want: Option<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    let used = |ip: Ipv4Addr| ip == net.gateway || live.iter().any(|e| e.ipv4 == ip);
    if let Some(ip) = want {
        if used(ip) {
            return Err(Error::Conflict(format!("Address already in use: {ip}")));
        }
        return Ok(ip);
    }
    net.subnet()?.hosts().find(|ip| !used(*ip)).ok_or_else(|| {
        Error::Conflict(format!(
            "no available IPv4 addresses on network {}",
            net.name
        ))
    })
}

/// The first `ethN` not used by the container's live endpoints.
fn free_ifname(root: &Path, container_id: &str) -> String {
    let used: Vec<String> = store::load_all(root)
        .iter()
        .filter_map(|n| {
            let p = store::endpoint_path(root, &n.id, container_id);
            std::fs::read(p).ok()
        })
        .filter_map(|b| serde_json::from_slice::<Endpoint>(&b).ok())
        .filter(Endpoint::alive)
        .map(|e| e.ifname)
        .collect();
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !used.contains(n))
        .unwrap_or_else(|| "eth0".into())
}

/// Joins one network: under the network's lock, an address, the endpoint file (before the
/// helper starts, so it never sees the network empty), the helper. Returns what the executor
/// needs to make the veth.
#[allow(clippy::too_many_arguments)]
fn join(
    root: &Path,
    program: &Path,
    container_id: &str,
    container_name: &str,
    att: &NetworkAttachment,
    ifname: String,
    default_route: bool,
    owner: (i32, Option<u64>),
) -> Result<(Attachment, Endpoint)> {
    let net = store::load(root, &att.network_id)
        .map_err(|_| Error::NotFound(format!("network {} not found", att.network_name)))?;
    let _lock = store::lock_network(root, &net.id)?;
    let live = store::drop_stale(root, &net.id);
    let path = store::endpoint_path(root, &net.id, container_id);
    let previous = live.iter().find(|e| e.container_id == container_id);
    if previous.is_some() {
        return Err(Error::Conflict(format!(
            "endpoint with name {container_name} already exists in network {}",
            net.name
        )));
    }
    let ip = pick_address(&net, &live, att.ipv4)?;
    let endpoint_id = kiln_executor::state::new_id();
    let mac = bridge::mac_for(ip);
    let ep = Endpoint {
        container_id: container_id.to_string(),
        name: container_name.to_string(),
        aliases: att.aliases.clone(),
        endpoint_id: endpoint_id.clone(),
        ipv4: ip,
        mac: bridge::mac_string(mac),
        host_ifname: format!("kv{}", endpoint_id.get(..12).unwrap_or(&endpoint_id)),
        ifname: ifname.clone(),
        owner_pid: owner.0,
        owner_start: owner.1,
        netns_pid: None,
        default_route: default_route && !net.internal,
    };
    store::write_json(&path, &ep)?;
    let pid = match helper::ensure(root, program, &net.id) {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    let subnet = net.subnet()?;
    Ok((
        Attachment {
            network_ns: PathBuf::from(format!("/proc/{pid}/ns/net")),
            bridge: net.bridge(),
            host_ifname: ep.host_ifname.clone(),
            ifname,
            address: ip,
            prefix_len: subnet.prefix_len,
            gateway: net.gateway,
            default_route: default_route && !net.internal,
            mac,
        },
        ep,
    ))
}

/// Whether the attachment at `index` carries the default route: the first non-internal user
/// network of a container that has no other way out.
fn wants_default_route(root: &Path, settings: &ContainerSettings, index: usize) -> bool {
    settings.network == NetworkMode::None
        && !settings.networks[..index]
            .iter()
            .any(|a| store::load(root, &a.network_id).is_ok_and(|n| !n.internal))
}

/// At a start, before the program runs: joins every network of the settings (the caller is
/// the supervisor, whose life the endpoints follow) and adds the veths to make to `spec`.
pub fn join_all(
    root: &Path,
    rec: &ContainerRecord,
    settings: &ContainerSettings,
    spec: &mut kiln_executor::spec::NetworkSpec,
) -> Result<()> {
    leave_all(root, &rec.id);
    if let Some(target) = settings.network_name.strip_prefix("container:") {
        return join_container(root, target, spec);
    }
    let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let me = std::process::id() as i32;
    let owner = (me, kiln_executor::state::process_start_time(me));
    for (i, att) in settings.networks.iter().enumerate() {
        let default_route = wants_default_route(root, settings, i);
        match join(
            root,
            &program,
            &rec.id,
            &rec.name,
            att,
            format!("eth{i}"),
            default_route,
            owner,
        ) {
            Ok((a, _)) => spec.attachments.push(a),
            Err(e) => {
                leave_all(root, &rec.id);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Records the container's first process in its endpoint files, once it runs.
pub fn record_netns(root: &Path, container_id: &str, pid: i32) {
    for net in store::load_all(root) {
        let path = store::endpoint_path(root, &net.id, container_id);
        let Ok(_lock) = store::lock_network(root, &net.id) else {
            continue;
        };
        let Some(mut ep) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Endpoint>(&b).ok())
        else {
            continue;
        };
        ep.netns_pid = Some(pid);
        let _ = store::write_json(&path, &ep);
    }
}

/// In a helper started again while containers still hold endpoints (the last one was
/// killed): their veths went with the old namespace, so each is made anew.
pub(crate) fn reattach_all(root: &Path, net: &NetworkRecord) {
    let Ok(subnet) = net.subnet() else {
        return;
    };
    let me = std::process::id();
    for ep in store::endpoints(root, &net.id)
        .into_iter()
        .filter(Endpoint::alive)
    {
        let Some(pid) = ep.netns_pid else {
            continue;
        };
        let Ok(ns) = std::fs::File::open(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        let att = Attachment {
            network_ns: PathBuf::from(format!("/proc/{me}/ns/net")),
            bridge: net.bridge(),
            host_ifname: ep.host_ifname.clone(),
            ifname: ep.ifname.clone(),
            address: ep.ipv4,
            prefix_len: subnet.prefix_len,
            gateway: net.gateway,
            default_route: ep.default_route,
            mac: bridge::mac_for(ep.ipv4),
        };
        // The old namespace is freed asynchronously: its veth may still hold the name.
        let _ = bridge::remove_stale_link(&ns, &ep.ifname);
        if let Err(e) = bridge::attach(&att, &ns) {
            eprintln!("kiln network-helper: re-attaching {}: {e}", ep.name);
        }
    }
}

/// `--network container:X`: the namespace of X's first process (X must run), and X's name
/// servers unless `--dns` named others.
fn join_container(
    root: &Path,
    target: &str,
    spec: &mut kiln_executor::spec::NetworkSpec,
) -> Result<()> {
    let store = kiln_executor::state::Store::open(root).map_err(from_executor)?;
    let other = store.find(target).map_err(from_executor)?;
    let pid = other
        .pid
        .filter(|_| crate::containers::is_running(&other))
        .ok_or_else(|| {
            Error::Conflict(format!(
                "cannot join network namespace of a non running container: {}",
                other.name
            ))
        })?;
    spec.join_netns = Some(PathBuf::from(format!("/proc/{pid}/ns/net")));
    if spec.dns.is_empty() {
        let resolv = store.dir(&other.id).join("resolv.conf");
        spec.dns = std::fs::read_to_string(resolv)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver"))
            .map(|a| a.trim().to_string())
            .collect();
    }
    Ok(())
}

/// Removes the container's endpoint files from every network (its veths go with its
/// namespace).
pub fn leave_all(root: &Path, container_id: &str) {
    for net in store::load_all(root) {
        let path = store::endpoint_path(root, &net.id, container_id);
        if path.exists() {
            if let Ok(_lock) = store::lock_network(root, &net.id) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// The live endpoint of a container on a network.
fn live_endpoint(root: &Path, network_id: &str, container_id: &str) -> Option<Endpoint> {
    let bytes = std::fs::read(store::endpoint_path(root, network_id, container_id)).ok()?;
    serde_json::from_slice::<Endpoint>(&bytes)
        .ok()
        .filter(Endpoint::alive)
}

/// The user networks of a container as `inspect` shows them, by name: a running container's
/// addresses from its endpoints; a stopped one's network ids and aliases only.
pub fn endpoint_summaries(
    root: &Path,
    container_id: &str,
    settings: &ContainerSettings,
) -> BTreeMap<String, EndpointSummary> {
    let mut out = BTreeMap::new();
    for att in &settings.networks {
        let net = store::load(root, &att.network_id).ok();
        let name = net
            .as_ref()
            .map(|n| n.name.clone())
            .unwrap_or_else(|| att.network_name.clone());
        let mut aliases = att.aliases.clone();
        aliases.push(container_id.chars().take(12).collect());
        let mut summary = EndpointSummary {
            network_id: att.network_id.clone(),
            aliases: Some(aliases),
            ..Default::default()
        };
        if let (Some(net), Some(ep)) = (&net, live_endpoint(root, &att.network_id, container_id)) {
            summary.ip_address = ep.ipv4.to_string();
            summary.gateway = net.gateway.to_string();
            summary.ip_prefix_len = net.subnet().map(|s| s.prefix_len).unwrap_or(0);
            summary.mac_address = ep.mac.clone();
            summary.endpoint_id = ep.endpoint_id.clone();
        }
        out.insert(name, summary);
    }
    out
}

impl Engine {
    /// `network connect NET CONTAINER`: the container joins at its next start, and at once
    /// when it runs.
    pub fn network_connect(
        &self,
        network: &str,
        container: &str,
        options: &ConnectOptions,
    ) -> Result<()> {
        let att = attachment_for(self, network, options)?;
        let store = self.containers()?;
        let rec = store.find(container).map_err(from_executor)?;
        let dir = store.dir(&rec.id);
        let mut settings = ContainerSettings::load(&dir)?;
        if settings.network == NetworkMode::Host || settings.network_name.starts_with("container:")
        {
            return Err(Error::invalid(
                "container sharing network namespace with another container or host cannot be connected to any other network",
            ));
        }
        if settings
            .networks
            .iter()
            .any(|a| a.network_id == att.network_id)
        {
            return Err(Error::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, att.network_name
            )));
        }
        settings.networks.push(att.clone());
        let index = settings.networks.len() - 1;
        let running = crate::containers::is_running(&rec);
        if running {
            let (Some(pid), Some(sup)) = (rec.pid, rec.supervisor) else {
                return Err(Error::Internal("the running container has no pid".into()));
            };
            let default_route = wants_default_route(self.root(), &settings, index);
            let ifname = free_ifname(self.root(), &rec.id);
            let (a, _) = join(
                self.root(),
                &self.program(),
                &rec.id,
                &rec.name,
                &att,
                ifname,
                default_route,
                (sup, rec.supervisor_start),
            )?;
            let ns_path = format!("/proc/{pid}/ns/net");
            let attached = std::fs::File::open(&ns_path)
                .map_err(|e| Error::io("opening", Path::new(&ns_path), e))
                .and_then(|ns| bridge::attach(&a, &ns).map_err(Error::Executor));
            if attached.is_ok() {
                record_netns(self.root(), &rec.id, pid);
            }
            if let Err(e) = attached {
                let _ = std::fs::remove_file(store::endpoint_path(
                    self.root(),
                    &att.network_id,
                    &rec.id,
                ));
                return Err(e);
            }
        }
        settings.save(&dir)
    }

    /// `network disconnect NET CONTAINER` (`force`: no error when it is not connected).
    pub fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<()> {
        let net = self.find_network(network)?;
        let store = self.containers()?;
        let rec = store.find(container).map_err(from_executor)?;
        let dir = store.dir(&rec.id);
        let mut settings = ContainerSettings::load(&dir)?;
        let before = settings.networks.len();
        settings.networks.retain(|a| a.network_id != net.id);
        let endpoint = {
            let _lock = store::lock_network(self.root(), &net.id)?;
            let ep = live_endpoint(self.root(), &net.id, &rec.id);
            let _ = std::fs::remove_file(store::endpoint_path(self.root(), &net.id, &rec.id));
            ep
        };
        if before == settings.networks.len() && endpoint.is_none() {
            if force {
                return Ok(());
            }
            return Err(Error::Conflict(format!(
                "container {} is not connected to network {}",
                rec.id, net.name
            )));
        }
        if let (Some(ep), Some(pid)) = (endpoint, store::live_helper(self.root(), &net.id)) {
            bridge::detach(Path::new(&format!("/proc/{pid}/ns/net")), &ep.host_ifname)
                .map_err(Error::Executor)?;
        }
        settings.save(&dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> NetworkRecord {
        NetworkRecord {
            id: "a".repeat(64),
            name: "n".into(),
            created: String::new(),
            driver: "bridge".into(),
            subnet: "10.9.0.0/29".into(),
            gateway: Ipv4Addr::new(10, 9, 0, 1),
            internal: false,
            attachable: true,
            labels: Default::default(),
        }
    }

    fn ep(ip: [u8; 4]) -> Endpoint {
        Endpoint {
            container_id: "c".repeat(64),
            name: "c".into(),
            aliases: Vec::new(),
            endpoint_id: String::new(),
            ipv4: Ipv4Addr::from(ip),
            mac: String::new(),
            host_ifname: String::new(),
            ifname: "eth0".into(),
            owner_pid: 1,
            owner_start: None,
            netns_pid: None,
            default_route: false,
        }
    }

    #[test]
    fn addresses_skip_the_gateway_and_those_in_use() {
        let n = net();
        assert_eq!(
            pick_address(&n, &[], None).unwrap(),
            Ipv4Addr::new(10, 9, 0, 2)
        );
        let used = [ep([10, 9, 0, 2]), ep([10, 9, 0, 3])];
        assert_eq!(
            pick_address(&n, &used, None).unwrap(),
            Ipv4Addr::new(10, 9, 0, 4)
        );
        assert!(pick_address(&n, &used, Some(Ipv4Addr::new(10, 9, 0, 3))).is_err());
        assert!(pick_address(&n, &[], Some(Ipv4Addr::new(10, 9, 0, 1))).is_err());
        let full: Vec<Endpoint> = (2..=6).map(|i| ep([10, 9, 0, i])).collect();
        assert!(
            pick_address(&n, &full, None).is_err(),
            "a /29 has 6 host addresses"
        );
    }

    #[test]
    fn modes_are_not_user_networks() {
        for m in ["", "none", "host", "default", "bridge", "container:abc"] {
            assert!(!is_user_network(m), "{m}");
        }
        assert!(is_user_network("proj_default"));
    }
}
