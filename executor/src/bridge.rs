//! User-defined networks, the namespace side: a network's bridge lives in a network namespace
//! of its own (never the host's), and a container joins it through a veth pair created in
//! that namespace, its other end born in the container's namespace as `ethN`.
//!
//! Nothing here touches the host's namespace: no link, route, firewall rule or sysctl. The
//! host's `bridge-nf-call-iptables=1` with a `FORWARD DROP` policy (what Docker sets) would
//! silently drop bridged traffic in the host namespace; in the network's own namespace the
//! sysctl is set to 0 and nothing filters it (research A4).

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::netlink::Netlink;

/// One network a container joins: where the bridge is and what the container gets on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The network's namespace (`/proc/HELPER/ns/net`).
    pub network_ns: PathBuf,
    /// The bridge's name in that namespace.
    pub bridge: String,
    /// The name of the veth end on the bridge (unique in the network's namespace).
    pub host_ifname: String,
    /// The interface's name in the container (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// The container's address.
    pub address: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix_len: u8,
    /// The network's gateway (the bridge's address).
    pub gateway: Ipv4Addr,
    /// Whether the default route goes through this network's gateway.
    pub default_route: bool,
    /// The interface's MAC address.
    pub mac: [u8; 6],
}

/// docker's MAC for an address: `02:42` and the four bytes of the IPv4 address.
pub fn mac_for(address: Ipv4Addr) -> [u8; 6] {
    let o = address.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn open_ns(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::io(path, e))
}

/// Writes a sysctl of the caller's *current* network namespace (`/proc/sys/net` shows the
/// namespace of the process that opens it).
fn sysctl(name: &str, value: &str) -> Result<()> {
    let path = PathBuf::from("/proc/sys").join(name.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| Error::io(&path, e))
}

/// Sets up a network's namespace from inside it (the caller's thread must already be in the
/// network's own namespace): `lo` up, the bridge with the gateway address, bridged traffic
/// kept away from iptables, forwarding on for the way out.
pub fn setup_network_namespace(bridge: &str, gateway: Ipv4Addr, prefix_len: u8) -> Result<()> {
    crate::network::loopback_up()?;
    let mut nl = Netlink::open()?;
    nl.add_bridge(bridge)?;
    let index = nl.link_index(bridge)?;
    nl.add_address(index, gateway, prefix_len)?;
    nl.set_up(index)?;
    // br_netfilter may be absent (then bridged frames never see iptables anyway).
    if Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
        sysctl("net.bridge.bridge-nf-call-iptables", "0")?;
        let _ = sysctl("net.bridge.bridge-nf-call-ip6tables", "0");
    }
    sysctl("net.ipv4.ip_forward", "1")?;
    Ok(())
}

/// Joins the container whose network namespace is `container_ns` to a network: a veth pair
/// created in the network's namespace, one end on the bridge, the other in the container,
/// addressed, up, and (if asked) the container's default route.
pub fn attach(att: &Attachment, container_ns: &File) -> Result<()> {
    let network_ns = open_ns(&att.network_ns)?;
    let mut outer = Netlink::open_in(&network_ns)?;
    let bridge = outer.link_index(&att.bridge)?;
    outer.add_veth(&att.host_ifname, &att.ifname, att.mac, container_ns)?;
    let result = (|| -> Result<()> {
        let host_end = outer.link_index(&att.host_ifname)?;
        outer.set_master(host_end, bridge)?;
        outer.set_up(host_end)?;
        let mut inner = Netlink::open_in(container_ns)?;
        let eth = inner.link_index(&att.ifname)?;
        inner.add_address(eth, att.address, att.prefix_len)?;
        inner.set_up(eth)?;
        if att.default_route {
            inner.add_default_route(att.gateway)?;
        }
        Ok(())
    })();
    if result.is_err() {
        if let Ok(i) = outer.link_index(&att.host_ifname) {
            let _ = outer.del_link(i);
        }
    }
    result
}

/// Deletes the link `name` of the namespace `ns` if there is one (a veth whose other end is
/// in a namespace being torn down). Used before making an interface anew.
pub fn remove_stale_link(ns: &File, name: &str) -> Result<()> {
    let mut nl = Netlink::open_in(ns)?;
    match nl.link_index(name) {
        Ok(i) => nl.del_link(i),
        Err(_) => Ok(()),
    }
}

/// Removes a container from a network: deleting the veth end on the bridge deletes the
/// container's end too. A link already gone is not an error.
pub fn detach(network_ns: &Path, host_ifname: &str) -> Result<()> {
    let ns = open_ns(network_ns)?;
    let mut nl = Netlink::open_in(&ns)?;
    match nl.link_index(host_ifname) {
        Ok(i) => nl.del_link(i),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_follow_docker() {
        let mac = mac_for(Ipv4Addr::new(172, 18, 0, 2));
        assert_eq!(mac_string(mac), "02:42:ac:12:00:02");
    }
}
