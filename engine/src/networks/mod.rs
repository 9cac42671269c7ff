//! User-defined networks (`kiln network ...`, `/networks`): create, list, inspect, remove,
//! connect, disconnect, prune, with docker's shapes.
//!
//! Where things live, and why: each network's bridge sits in a network namespace of its own,
//! held by the network's helper process (`helper`), never in the host's, so kiln adds no
//! link, route, firewall rule or sysctl to the host, and two networks have no route between
//! them by construction. A container joins through a veth pair made in the network's
//! namespace (`kiln_executor::bridge`); names resolve through the network's name server on
//! its gateway (`dns`); what is attached where is in files under `--root` (`store`).

pub mod attach;
pub mod dns;
pub mod helper;
pub mod store;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::containers::log::{now_nanos, rfc3339_nanos};
use crate::{Engine, Error, Result};
use store::{NetworkRecord, Subnet};

pub use attach::{ConnectOptions, NetworkAttachment};
pub use helper::HELPER_COMMAND;

/// docker's predefined networks, listed as docker lists them.
const PREDEFINED: &[(&str, &str)] = &[("bridge", "bridge"), ("host", "host"), ("none", "null")];

/// `network create`'s options.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreateOptions {
    /// The name.
    pub name: String,
    /// `-d`: only `bridge` (the default) is known.
    pub driver: Option<String>,
    /// `--subnet A.B.C.D/N`.
    pub subnet: Option<String>,
    /// `--gateway A.B.C.D`.
    pub gateway: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// `--label K=V`.
    pub labels: BTreeMap<String, String>,
}

/// A created network.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreated {
    /// Its id.
    pub id: String,
    /// A warning (docker's field; empty).
    pub warning: String,
}

/// One `IPAM.Config` entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    /// `A.B.C.D/N`.
    pub subnet: String,
    /// The gateway.
    pub gateway: String,
}

/// `IPAM`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    /// `default`.
    pub driver: String,
    /// Options (none).
    pub options: BTreeMap<String, String>,
    /// The subnets.
    pub config: Vec<IpamConfig>,
}

/// A container on a network, as `network inspect` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkContainer {
    /// The container's name.
    pub name: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The MAC address.
    pub mac_address: String,
    /// `A.B.C.D/N`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// Empty (no IPv6).
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// docker's `NetworkResource`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkResource {
    /// The name.
    pub name: String,
    /// The id.
    pub id: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// `local`.
    pub scope: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    /// false.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Addresses.
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    /// `--internal`.
    pub internal: bool,
    /// Attachable.
    pub attachable: bool,
    /// false.
    pub ingress: bool,
    /// docker's `{"Network": ""}`.
    pub config_from: BTreeMap<String, String>,
    /// false.
    pub config_only: bool,
    /// The containers attached now, by id.
    pub containers: BTreeMap<String, NetworkContainer>,
    /// Driver options (none).
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// `network ls --filter` / `GET /networks?filters=`: every given key must match (values of
/// one key: any).
#[derive(Debug, Clone, Default)]
pub struct NetworkFilter {
    /// `name=`: a substring of the name.
    pub name: Vec<String>,
    /// `id=`: a prefix of the id.
    pub id: Vec<String>,
    /// `label=K` or `label=K=V`.
    pub label: Vec<String>,
    /// `driver=`.
    pub driver: Vec<String>,
    /// `type=custom|builtin`.
    pub kind: Vec<String>,
}

impl NetworkFilter {
    /// Builds a filter from docker's `key=value` pairs; an unknown key is refused.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut f = NetworkFilter::default();
        for (k, v) in pairs {
            let list = match k {
                "name" => &mut f.name,
                "id" => &mut f.id,
                "label" => &mut f.label,
                "driver" => &mut f.driver,
                "type" => &mut f.kind,
                other => return Err(Error::invalid(format!("invalid filter '{other}'"))),
            };
            list.push(v.to_string());
        }
        Ok(f)
    }

    fn matches(&self, n: &NetworkResource, builtin: bool) -> bool {
        let any = |list: &[String], f: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|v| f(v))
        };
        any(&self.name, &|v| n.name.contains(v))
            && any(&self.id, &|v| n.id.starts_with(v))
            && any(&self.driver, &|v| n.driver == v)
            && any(&self.kind, &|v| (v == "builtin") == builtin)
            && self.label.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                None => n.labels.contains_key(l),
            })
    }
}

/// docker's rule for network names.
fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

fn predefined_id(name: &str) -> String {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex:0<64}")
}

fn predefined_resource(name: &str, driver: &str) -> NetworkResource {
    NetworkResource {
        name: name.into(),
        id: predefined_id(name),
        created: rfc3339_nanos(0),
        scope: "local".into(),
        driver: driver.into(),
        enable_ipv6: false,
        ipam: Ipam {
            driver: "default".into(),
            options: BTreeMap::new(),
            config: Vec::new(),
        },
        internal: false,
        attachable: false,
        ingress: false,
        config_from: [("Network".to_string(), String::new())].into(),
        config_only: false,
        containers: BTreeMap::new(),
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
    }
}

/// The subnets `network create` picks from when given none, as docker's default pools.
fn default_pools() -> impl Iterator<Item = Subnet> {
    let b16 = (18u8..=31).map(|b| Subnet {
        base: Ipv4Addr::new(172, b, 0, 0),
        prefix_len: 16,
    });
    let c20 = (0u8..16).map(|i| Subnet {
        base: Ipv4Addr::new(192, 168, i * 16, 0),
        prefix_len: 20,
    });
    b16.chain(c20)
}

/// The subnets of the host's own routes (not the default one), read from
/// `/proc/net/route`: like docker, a default pool that overlaps one is skipped, so a
/// container can still reach the host's own networks through the way out.
fn host_route_subnets() -> Vec<Subnet> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // little-endian words: the kernel prints the address as it lies in memory
            let prefix_len = u32::from_be(mask.swap_bytes()).count_ones() as u8;
            (prefix_len > 0).then(|| Subnet {
                base: Ipv4Addr::from(dest.swap_bytes()),
                prefix_len,
            })
        })
        .collect()
}

/// slirp4netns' own subnet in a network's namespace (its `tap0`).
const SLIRP_SUBNET: &str = "10.0.2.0/24";

impl Engine {
    fn network_resource(&self, rec: &NetworkRecord) -> NetworkResource {
        let containers = store::endpoints(self.root(), &rec.id)
            .into_iter()
            .filter(store::Endpoint::alive)
            .map(|ep| {
                let prefix = rec.subnet().map(|s| s.prefix_len).unwrap_or(16);
                (
                    ep.container_id.clone(),
                    NetworkContainer {
                        name: ep.name.clone(),
                        endpoint_id: ep.endpoint_id.clone(),
                        mac_address: ep.mac.clone(),
                        ipv4_address: format!("{}/{prefix}", ep.ipv4),
                        ipv6_address: String::new(),
                    },
                )
            })
            .collect();
        NetworkResource {
            name: rec.name.clone(),
            id: rec.id.clone(),
            created: rec.created.clone(),
            scope: "local".into(),
            driver: rec.driver.clone(),
            enable_ipv6: false,
            ipam: Ipam {
                driver: "default".into(),
                options: BTreeMap::new(),
                config: vec![IpamConfig {
                    subnet: rec.subnet.clone(),
                    gateway: rec.gateway.to_string(),
                }],
            },
            internal: rec.internal,
            attachable: rec.attachable,
            ingress: false,
            config_from: [("Network".to_string(), String::new())].into(),
            config_only: false,
            containers,
            options: BTreeMap::new(),
            labels: rec.labels.clone(),
        }
    }

    /// Finds a user-defined network by name, full id or unique id prefix.
    pub fn find_network(&self, key: &str) -> Result<NetworkRecord> {
        let all = store::load_all(self.root());
        if let Some(n) = all.iter().find(|n| n.name == key || n.id == key) {
            return Ok(n.clone());
        }
        let by_prefix: Vec<&NetworkRecord> = if key.is_empty() {
            Vec::new()
        } else {
            all.iter().filter(|n| n.id.starts_with(key)).collect()
        };
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NotFound(format!("network {key} not found"))),
            _ => Err(Error::invalid(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                by_prefix.len()
            ))),
        }
    }

    /// Drops endpoints of containers that are gone and stops helpers whose network has none
    /// left (after a crash: the helper otherwise does it itself).
    pub fn network_sweep(&self) {
        for rec in store::load_all(self.root()) {
            let Ok(_lock) = store::lock_network(self.root(), &rec.id) else {
                continue;
            };
            if store::drop_stale(self.root(), &rec.id).is_empty() {
                helper::stop(self.root(), &rec.id);
            } else if store::live_helper(self.root(), &rec.id).is_none() {
                // Killed under running containers: a new one makes their veths again (a
                // failure here shows at the next join, which needs the helper too).
                let _ = helper::ensure(self.root(), &self.program(), &rec.id);
            }
        }
    }

    /// `network create`.
    pub fn network_create(&self, options: &NetworkCreateOptions) -> Result<NetworkCreated> {
        check_name(&options.name)?;
        if PREDEFINED.iter().any(|(n, _)| *n == options.name) {
            return Err(Error::Conflict(format!(
                "operation is not permitted on predefined {} network",
                options.name
            )));
        }
        match options.driver.as_deref() {
            None | Some("") | Some("bridge") => {}
            Some(d) => {
                return Err(Error::NotFound(format!(
                    "plugin \"{d}\" not found: kiln's networks use the bridge driver"
                )))
            }
        }
        let _lock = store::lock_all(self.root())?;
        let existing = store::load_all(self.root());
        if existing.iter().any(|n| n.name == options.name) {
            return Err(Error::Conflict(format!(
                "network with name {} already exists",
                options.name
            )));
        }
        let mut taken: Vec<Subnet> = existing.iter().filter_map(|n| n.subnet().ok()).collect();
        let subnet = match &options.subnet {
            Some(s) => {
                let s = Subnet::parse(s)?;
                if let Some(other) = existing
                    .iter()
                    .find(|n| n.subnet().is_ok_and(|o| o.overlaps(&s)))
                {
                    return Err(Error::Conflict(format!(
                        "Pool overlaps with other one on this address space (network {})",
                        other.name
                    )));
                }
                if !options.internal && s.overlaps(&Subnet::parse(SLIRP_SUBNET)?) {
                    return Err(Error::invalid(format!(
                        "subnet {s} overlaps {SLIRP_SUBNET}, the way out of kiln's networks"
                    )));
                }
                s
            }
            None => {
                taken.extend(host_route_subnets());
                default_pools()
                .find(|p| !taken.iter().any(|t| t.overlaps(p)))
                .ok_or_else(|| {
                    Error::invalid(
                        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
                    )
                })?
            }
        };
        let gateway = match &options.gateway {
            Some(g) => {
                let ip: Ipv4Addr = g
                    .parse()
                    .map_err(|_| Error::invalid(format!("invalid gateway address {g:?}")))?;
                if !subnet.contains(ip) || ip == subnet.base {
                    return Err(Error::invalid(format!(
                        "gateway {ip} is not a host address of subnet {subnet}"
                    )));
                }
                ip
            }
            None => subnet.first_host(),
        };
        let rec = NetworkRecord {
            id: kiln_executor::state::new_id(),
            name: options.name.clone(),
            created: rfc3339_nanos(now_nanos()),
            driver: "bridge".into(),
            subnet: subnet.to_string(),
            gateway,
            internal: options.internal,
            attachable: true,
            labels: options.labels.clone(),
        };
        let dir = store::network_dir(self.root(), &rec.id);
        let eps = store::endpoints_dir(self.root(), &rec.id);
        std::fs::create_dir_all(&eps).map_err(|e| Error::io("creating", &eps, e))?;
        store::write_json(&dir.join("network.json"), &rec)?;
        Ok(NetworkCreated {
            id: rec.id,
            warning: String::new(),
        })
    }

    /// `network ls`: the predefined networks and kiln's, filtered.
    pub fn network_list(&self, filter: &NetworkFilter) -> Result<Vec<NetworkResource>> {
        self.network_sweep();
        let mut out = Vec::new();
        for (name, driver) in PREDEFINED {
            let r = predefined_resource(name, driver);
            if filter.matches(&r, true) {
                out.push(r);
            }
        }
        for rec in store::load_all(self.root()) {
            let r = self.network_resource(&rec);
            if filter.matches(&r, false) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// `network inspect`.
    pub fn network_inspect(&self, key: &str) -> Result<NetworkResource> {
        if let Some((name, driver)) = PREDEFINED
            .iter()
            .find(|(n, _)| *n == key || predefined_id(n) == key)
        {
            return Ok(predefined_resource(name, driver));
        }
        self.network_sweep();
        let rec = self.find_network(key)?;
        Ok(self.network_resource(&rec))
    }

    /// `network rm`: refused while a container is attached.
    pub fn network_remove(&self, key: &str) -> Result<()> {
        if PREDEFINED.iter().any(|(n, _)| *n == key) {
            return Err(Error::Conflict(format!(
                "{key} is a pre-defined network and cannot be removed"
            )));
        }
        let rec = self.find_network(key)?;
        let _all = store::lock_all(self.root())?;
        let _lock = store::lock_network(self.root(), &rec.id)?;
        if !store::drop_stale(self.root(), &rec.id).is_empty() {
            return Err(Error::Conflict(format!(
                "error while removing network: network {} id {} has active endpoints",
                rec.name, rec.id
            )));
        }
        helper::stop(self.root(), &rec.id);
        let dir = store::network_dir(self.root(), &rec.id);
        // Renamed away first, so a half-removed network never lists.
        let trash = store::networks_dir(self.root()).join(format!(".rm-{}", rec.id));
        std::fs::rename(&dir, &trash).map_err(|e| Error::io("removing", &dir, e))?;
        std::fs::remove_dir_all(&trash).map_err(|e| Error::io("removing", &trash, e))
    }

    /// `network prune`: removes every network no container is attached to; returns their names.
    pub fn network_prune(&self, filter: &NetworkFilter) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for rec in store::load_all(self.root()) {
            let r = self.network_resource(&rec);
            if !filter.matches(&r, false) || self.network_in_use_by_settings(&rec) {
                continue;
            }
            if self.network_remove(&rec.id).is_ok() {
                removed.push(rec.name);
            }
        }
        Ok(removed)
    }

    /// Whether a container (running or not) names the network in its settings: prune keeps
    /// those, as docker keeps networks with containers.
    fn network_in_use_by_settings(&self, rec: &NetworkRecord) -> bool {
        let Ok(store) = self.containers() else {
            return false;
        };
        store.list().iter().any(|c| {
            crate::containers::ContainerSettings::load(&store.dir(&c.id))
                .is_ok_and(|s| s.networks.iter().any(|a| a.network_id == rec.id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_created_with_docker_pools_and_refused_twice() {
        let t = tempfile::tempdir().unwrap();
        let e = Engine::new(t.path());
        let opts = |name: &str| NetworkCreateOptions {
            name: name.into(),
            ..Default::default()
        };
        e.network_create(&opts("a")).unwrap();
        e.network_create(&opts("b")).unwrap();
        // docker's pools in order, skipping any the host routes to
        let host = host_route_subnets();
        let mut pools = default_pools().filter(|p| !host.iter().any(|h| h.overlaps(p)));
        let (first, second) = (pools.next().unwrap(), pools.next().unwrap());
        let subnet = |n: &str| e.network_inspect(n).unwrap().ipam.config[0].subnet.clone();
        assert_eq!(subnet("a"), first.to_string());
        assert_eq!(subnet("b"), second.to_string());
        assert!(matches!(
            e.network_create(&opts("a")),
            Err(Error::Conflict(_))
        ));
        let inside_a = Subnet {
            base: Ipv4Addr::from(u32::from(first.base) + 256),
            prefix_len: 24,
        };
        let overlapping = NetworkCreateOptions {
            subnet: Some(inside_a.to_string()),
            ..opts("c")
        };
        assert!(e.network_create(&overlapping).is_err());
        assert!(e.network_create(&opts("bad name")).is_err());
        let names: Vec<String> = e
            .network_list(&NetworkFilter::default())
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["bridge", "host", "none", "a", "b"]);
        let custom = NetworkFilter::from_pairs([("type", "custom"), ("name", "b")]).unwrap();
        assert_eq!(e.network_list(&custom).unwrap().len(), 1);
        e.network_remove("a").unwrap();
        assert!(e.network_inspect("a").unwrap_err().is_not_found());
        assert_eq!(e.network_prune(&NetworkFilter::default()).unwrap(), ["b"]);
    }

    #[test]
    fn host_routes_are_those_ip_route_lists() {
        let Ok(out) = std::process::Command::new("ip")
            .args(["-4", "route", "show", "table", "main"])
            .output()
        else {
            return;
        };
        let mut want: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|d| *d != "default")
            .map(|d| {
                if d.contains('/') {
                    d.to_string()
                } else {
                    format!("{d}/32")
                }
            })
            .collect();
        let mut got: Vec<String> = host_route_subnets().iter().map(|s| s.to_string()).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }
}
