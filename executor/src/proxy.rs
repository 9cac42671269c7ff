//! Port publishing: listeners on the host that relay each connection into
//! the container's network namespace. The relay dials from a thread that
//! has joined the container's namespace, so it reaches the container's own
//! loopback whatever the network mode (even `none`), and nothing changes in
//! the host's firewall. Dropping the proxy frees the host ports.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::spec::{PortMapping, Protocol};

enum Dial {
    Tcp(u16, mpsc::Sender<std::io::Result<TcpStream>>),
    Udp(u16, mpsc::Sender<std::io::Result<UdpSocket>>),
}

/// Running relays for one container.
pub struct PortProxy {
    stop: Arc<AtomicBool>,
    tcp: Vec<Arc<TcpListener>>,
    udp: Vec<Arc<UdpSocket>>,
    /// The mappings with the host ports actually bound (for `-P`).
    pub bound: Vec<PortMapping>,
}

impl std::fmt::Debug for PortProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortProxy")
            .field("bound", &self.bound)
            .finish()
    }
}

/// Binds every host port now (so a taken port fails the run at once) and
/// starts relaying into the network namespace `netns`.
pub fn start(ports: &[PortMapping], netns: OwnedFd) -> Result<PortProxy> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    let mut bound = Vec::new();
    for p in ports {
        let addr = SocketAddr::new(p.host_ip, p.host_port);
        let mut m = p.clone();
        match p.protocol {
            Protocol::Tcp => {
                let l = TcpListener::bind(addr)
                    .map_err(|e| Error::io(format!("listen on {addr}"), e))?;
                m.host_port = l.local_addr().map(|a| a.port()).unwrap_or(p.host_port);
                tcp.push((Arc::new(l), p.container_port));
            }
            Protocol::Udp => {
                let s = UdpSocket::bind(addr)
                    .map_err(|e| Error::io(format!("listen on {addr}/udp"), e))?;
                m.host_port = s.local_addr().map(|a| a.port()).unwrap_or(p.host_port);
                udp.push((Arc::new(s), p.container_port));
            }
        }
        bound.push(m);
    }
    let (dial_tx, dial_rx) = mpsc::channel::<Dial>();
    // The dialer joins the container's namespace; sockets it creates stay there.
    thread::Builder::new()
        .name("kiln-port-dialer".into())
        .spawn(move || {
            if nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                return;
            }
            for d in dial_rx {
                match d {
                    Dial::Tcp(port, reply) => {
                        let _ = reply.send(TcpStream::connect_timeout(
                            &SocketAddr::from(([127, 0, 0, 1], port)),
                            Duration::from_secs(5),
                        ));
                    }
                    Dial::Udp(port, reply) => {
                        let s = UdpSocket::bind("127.0.0.1:0")
                            .and_then(|s| s.connect(("127.0.0.1", port)).map(|_| s));
                        let _ = reply.send(s);
                    }
                }
            }
        })
        .map_err(|e| Error::io("thread", e))?;
    let mut proxy = PortProxy {
        stop: stop.clone(),
        tcp: Vec::new(),
        udp: Vec::new(),
        bound,
    };
    for (l, cport) in tcp {
        proxy.tcp.push(l.clone());
        let (stop, dial) = (stop.clone(), dial_tx.clone());
        let _ = thread::Builder::new()
            .name("kiln-port-tcp".into())
            .spawn(move || {
                while let Ok((client, _)) = l.accept() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (tx, rx) = mpsc::channel();
                    if dial.send(Dial::Tcp(cport, tx)).is_err() {
                        break;
                    }
                    thread::spawn(move || {
                        if let Ok(Ok(upstream)) = rx.recv() {
                            splice_tcp(client, upstream);
                        }
                    });
                }
            });
    }
    for (s, cport) in udp {
        proxy.udp.push(s.clone());
        let (stop, dial) = (stop.clone(), dial_tx.clone());
        let _ = thread::Builder::new()
            .name("kiln-port-udp".into())
            .spawn(move || relay_udp(s, cport, stop, dial));
    }
    Ok(proxy)
}

fn splice_tcp(a: TcpStream, b: TcpStream) {
    let (a2, b2) = match (a.try_clone(), b.try_clone()) {
        (Ok(a2), Ok(b2)) => (a2, b2),
        _ => return,
    };
    let t = thread::spawn(move || copy_then_shutdown(a2, b2));
    copy_then_shutdown(b, a);
    let _ = t.join();
}

fn copy_then_shutdown(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn relay_udp(host: Arc<UdpSocket>, cport: u16, stop: Arc<AtomicBool>, dial: mpsc::Sender<Dial>) {
    let mut peers: std::collections::HashMap<SocketAddr, Arc<UdpSocket>> = Default::default();
    let mut buf = [0u8; 65536];
    // UDP sockets are not woken by shutdown(): poll the stop flag instead.
    let _ = host.set_read_timeout(Some(Duration::from_millis(300)));
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (n, from) = match host.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        };
        let up = match peers.get(&from) {
            Some(s) => s.clone(),
            None => {
                let (tx, rx) = mpsc::channel();
                if dial.send(Dial::Udp(cport, tx)).is_err() {
                    break;
                }
                let Ok(Ok(s)) = rx.recv() else { continue };
                let s = Arc::new(s);
                let (back, host2, stop2) = (s.clone(), host.clone(), stop.clone());
                let _ = back.set_read_timeout(Some(Duration::from_secs(120)));
                thread::spawn(move || {
                    let mut b = [0u8; 65536];
                    while let Ok(n) = back.recv(&mut b) {
                        if stop2.load(Ordering::Relaxed) || host2.send_to(&b[..n], from).is_err() {
                            break;
                        }
                    }
                });
                peers.insert(from, s.clone());
                s
            }
        };
        let _ = up.send(&buf[..n]);
    }
}

impl Drop for PortProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // shutdown() wakes a thread blocked in accept()/recv() on Linux; the
        // socket closes when that thread drops its last reference.
        for l in &self.tcp {
            // SAFETY: shutting down a socket we own; no memory is involved.
            unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) };
        }
        for s in &self.udp {
            // SAFETY: as above.
            unsafe { libc::shutdown(s.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }
}
