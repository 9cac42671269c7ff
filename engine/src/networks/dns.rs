//! A network's name server (docker's embedded DNS, on the gateway's address): A records for
//! the containers' names, `--network-alias` aliases and short IDs, every address of a name
//! (several containers with one alias give several records, rotated per answer), an empty
//! NOERROR for AAAA and other types of a known name (glibc asks A and AAAA: both must be
//! answered), NXDOMAIN for an unknown name on a network with no way out, and anything else
//! forwarded to the host's resolvers through a socket opened in the host's namespace.
//!
//! The records come from the endpoint files under `--root`, read again when the endpoints
//! directory changes, so no process has to be told about a container.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use simple_dns::rdata::{RData, A};
use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};

use super::store::{self, NetworkRecord};

/// The name servers of the host's `/etc/resolv.conf`, port 53.
pub fn host_resolvers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Names to addresses, as the endpoint files say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Records {
    names: BTreeMap<String, Vec<Ipv4Addr>>,
}

impl Records {
    /// The records of a set of endpoints: each container's name, aliases and short id.
    pub fn from_endpoints(endpoints: &[store::Endpoint]) -> Records {
        let mut names: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
        for ep in endpoints {
            let short: String = ep.container_id.chars().take(12).collect();
            let mut own = vec![ep.name.clone(), short];
            own.extend(ep.aliases.iter().cloned());
            own.sort();
            own.dedup();
            for n in own.into_iter().filter(|n| !n.is_empty()) {
                let list = names.entry(n.to_ascii_lowercase()).or_default();
                if !list.contains(&ep.ipv4) {
                    list.push(ep.ipv4);
                }
            }
        }
        Records { names }
    }

    /// The addresses of `name` (case-insensitive, a final dot ignored).
    pub fn lookup(&self, name: &str) -> Option<&[Ipv4Addr]> {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.get(&key).map(Vec::as_slice)
    }
}

struct Cached {
    stamp: Option<SystemTime>,
    records: Records,
}

/// The server of one network.
#[derive(Clone)]
pub struct NameServer {
    endpoints_dir: PathBuf,
    root: PathBuf,
    network_id: String,
    internal: bool,
    upstream: Option<Arc<Mutex<UdpSocket>>>,
    resolvers: Vec<SocketAddr>,
    cache: Arc<Mutex<Cached>>,
    turn: Arc<AtomicUsize>,
}

impl NameServer {
    /// A server for `net`; `upstream` is a socket in the host's namespace (none for an
    /// internal network), `resolvers` where to forward to.
    pub fn new(
        root: &Path,
        net: &NetworkRecord,
        upstream: Option<UdpSocket>,
        resolvers: Vec<SocketAddr>,
    ) -> NameServer {
        NameServer {
            endpoints_dir: store::endpoints_dir(root, &net.id),
            root: root.to_path_buf(),
            network_id: net.id.clone(),
            internal: net.internal,
            upstream: upstream.map(|s| Arc::new(Mutex::new(s))),
            resolvers,
            cache: Arc::new(Mutex::new(Cached {
                stamp: None,
                records: Records::default(),
            })),
            turn: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Serves UDP and TCP on threads of their own.
    pub fn spawn(self, udp: UdpSocket, tcp: TcpListener) {
        let me = self.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = udp.recv_from(&mut buf) else {
                    continue;
                };
                // A thread per query: one forwarded to a slow upstream must not hold up the
                // names the network answers itself.
                let (Ok(out), me, query) = (udp.try_clone(), me.clone(), buf[..n].to_vec()) else {
                    continue;
                };
                std::thread::spawn(move || {
                    if let Some(reply) = me.answer(&query) {
                        let _ = out.send_to(&reply, from);
                    }
                });
            }
        });
        std::thread::spawn(move || {
            for conn in tcp.incoming().flatten() {
                let me = self.clone();
                std::thread::spawn(move || me.serve_tcp(conn));
            }
        });
    }

    fn serve_tcp(&self, mut conn: TcpStream) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        loop {
            let mut len = [0u8; 2];
            if conn.read_exact(&mut len).is_err() {
                return;
            }
            let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
            if conn.read_exact(&mut msg).is_err() {
                return;
            }
            let Some(reply) = self.answer(&msg) else {
                return;
            };
            let mut out = (reply.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&reply);
            if conn.write_all(&out).is_err() {
                return;
            }
        }
    }

    fn records(&self) -> Records {
        let stamp = std::fs::metadata(&self.endpoints_dir)
            .and_then(|m| m.modified())
            .ok();
        let Ok(mut cache) = self.cache.lock() else {
            return Records::default();
        };
        if cache.stamp != stamp || stamp.is_none() {
            let live: Vec<store::Endpoint> = store::endpoints(&self.root, &self.network_id)
                .into_iter()
                .filter(store::Endpoint::alive)
                .collect();
            cache.records = Records::from_endpoints(&live);
            cache.stamp = stamp;
        }
        cache.records.clone()
    }

    /// The reply to one query message (none for a message that cannot be parsed).
    pub fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        let packet = Packet::parse(query).ok()?;
        let question = packet.questions.first()?.clone();
        let name = question.qname.to_string();
        let records = self.records();
        let known = records.lookup(&name).map(<[Ipv4Addr]>::to_vec);
        if known.is_none() && !self.internal {
            if let Some(reply) = self.forward(query) {
                return Some(reply);
            }
        }
        let mut reply = Packet::new_reply(packet.id());
        reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
        if packet.has_flags(PacketFlag::RECURSION_DESIRED) {
            reply.set_flags(PacketFlag::RECURSION_DESIRED);
        }
        reply.questions.push(question.clone());
        match known {
            None => {
                *reply.rcode_mut() =
                    if self.internal || self.upstream.is_none() || self.resolvers.is_empty() {
                        RCODE::NameError
                    } else {
                        RCODE::ServerFailure
                    };
            }
            Some(mut ips) => {
                reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
                if question.qtype == QTYPE::TYPE(TYPE::A) {
                    if !ips.is_empty() {
                        let turn = self.turn.fetch_add(1, Ordering::Relaxed) % ips.len();
                        ips.rotate_left(turn);
                    }
                    for ip in ips {
                        reply.answers.push(ResourceRecord::new(
                            question.qname.clone(),
                            CLASS::IN,
                            600,
                            RData::A(A::from(ip)),
                        ));
                    }
                }
            }
        }
        reply.build_bytes_vec().ok()
    }

    /// Sends the query to the host's resolvers, one after the other, and relays the first
    /// reply that carries the query's id.
    fn forward(&self, query: &[u8]) -> Option<Vec<u8>> {
        let sock = self.upstream.as_ref()?.lock().ok()?;
        let id = query.get(..2)?;
        let mut buf = vec![0u8; 4096];
        for server in &self.resolvers {
            if sock.send_to(query, server).is_err() {
                continue;
            }
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                if from == *server && buf.get(..2) == Some(id) {
                    return Some(buf[..n].to_vec());
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(id: &str, name: &str, aliases: &[&str], ip: [u8; 4]) -> store::Endpoint {
        store::Endpoint {
            container_id: id.repeat(64 / id.len()),
            name: name.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            endpoint_id: String::new(),
            ipv4: Ipv4Addr::from(ip),
            mac: String::new(),
            host_ifname: String::new(),
            ifname: "eth0".into(),
            owner_pid: std::process::id() as i32,
            owner_start: None,
            netns_pid: None,
            default_route: false,
        }
    }

    #[test]
    fn names_aliases_and_short_ids_resolve() {
        let r = Records::from_endpoints(&[
            ep("a", "web-1", &["web"], [10, 0, 0, 2]),
            ep("b", "web-2", &["web"], [10, 0, 0, 3]),
        ]);
        assert_eq!(r.lookup("web-1."), Some(&[Ipv4Addr::new(10, 0, 0, 2)][..]));
        assert_eq!(r.lookup("WEB").map(<[_]>::len), Some(2));
        assert_eq!(
            r.lookup("aaaaaaaaaaaa"),
            Some(&[Ipv4Addr::new(10, 0, 0, 2)][..])
        );
        assert_eq!(r.lookup("db"), None);
    }

    fn server_with(dir: &Path, internal: bool, eps: &[store::Endpoint]) -> NameServer {
        let net = NetworkRecord {
            id: "f".repeat(64),
            name: "t".into(),
            created: String::new(),
            driver: "bridge".into(),
            subnet: "10.0.0.0/24".into(),
            gateway: Ipv4Addr::new(10, 0, 0, 1),
            internal,
            attachable: true,
            labels: BTreeMap::new(),
        };
        let epdir = store::endpoints_dir(dir, &net.id);
        std::fs::create_dir_all(&epdir).unwrap();
        for e in eps {
            store::write_json(&store::endpoint_path(dir, &net.id, &e.container_id), e).unwrap();
        }
        NameServer::new(dir, &net, None, Vec::new())
    }

    fn ask(server: &NameServer, name: &str, t: TYPE) -> Packet<'static> {
        let mut q = Packet::new_query(7);
        q.questions.push(simple_dns::Question::new(
            simple_dns::Name::new_unchecked(name).into_owned(),
            QTYPE::TYPE(t),
            simple_dns::QCLASS::CLASS(CLASS::IN),
            false,
        ));
        let bytes = server.answer(&q.build_bytes_vec().unwrap()).unwrap();
        Packet::parse(&bytes).unwrap().into_owned_packet()
    }

    trait Owned {
        fn into_owned_packet(self) -> Packet<'static>;
    }
    impl Owned for Packet<'_> {
        fn into_owned_packet(self) -> Packet<'static> {
            let bytes = self.build_bytes_vec().unwrap();
            let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            Packet::parse(leaked).unwrap()
        }
    }

    #[test]
    fn unknown_names_are_forwarded_and_the_reply_relayed() {
        let t = tempfile::tempdir().unwrap();
        // a resolver of our own on loopback, answering every query with 192.0.2.9
        let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
        let resolver = upstream.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = upstream.recv_from(&mut buf).unwrap();
            let q = Packet::parse(&buf[..n]).unwrap();
            let mut r = Packet::new_reply(q.id());
            r.questions.push(q.questions[0].clone());
            r.answers.push(ResourceRecord::new(
                q.questions[0].qname.clone(),
                CLASS::IN,
                60,
                RData::A(A::from(Ipv4Addr::new(192, 0, 2, 9))),
            ));
            upstream
                .send_to(&r.build_bytes_vec().unwrap(), from)
                .unwrap();
        });
        let mut s = server_with(t.path(), false, &[ep("a", "srv", &[], [10, 0, 0, 2])]);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.upstream = Some(Arc::new(Mutex::new(sock)));
        s.resolvers = vec![resolver];
        let known = ask(&s, "srv", TYPE::A);
        assert_eq!(known.answers.len(), 1, "a known name is answered here");
        let other = ask(&s, "example.test", TYPE::A);
        assert_eq!(other.rcode(), RCODE::NoError);
        assert_eq!(
            format!("{:?}", other.answers[0].rdata),
            format!("{:?}", RData::A(A::from(Ipv4Addr::new(192, 0, 2, 9))))
        );
    }

    #[test]
    fn answers_a_aaaa_and_unknown_names() {
        let t = tempfile::tempdir().unwrap();
        let s = server_with(
            t.path(),
            true,
            &[
                ep("a", "srv", &["pool"], [10, 0, 0, 2]),
                ep("b", "other", &["pool"], [10, 0, 0, 3]),
            ],
        );
        let a = ask(&s, "srv", TYPE::A);
        assert_eq!(a.id(), 7);
        assert_eq!(a.rcode(), RCODE::NoError);
        assert_eq!(a.answers.len(), 1);
        let pool1 = ask(&s, "pool", TYPE::A);
        let pool2 = ask(&s, "pool", TYPE::A);
        assert_eq!(pool1.answers.len(), 2);
        assert_ne!(
            format!("{:?}", pool1.answers[0].rdata),
            format!("{:?}", pool2.answers[0].rdata),
            "the order rotates"
        );
        let aaaa = ask(&s, "srv", TYPE::AAAA);
        assert_eq!(aaaa.rcode(), RCODE::NoError);
        assert!(aaaa.answers.is_empty());
        let none = ask(&s, "nothere", TYPE::A);
        assert_eq!(none.rcode(), RCODE::NameError);
    }
}
