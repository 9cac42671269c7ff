//! Networking: the loopback of a new namespace, the default mode's outbound
//! access, and the generated /etc/hosts, /etc/resolv.conf and /etc/hostname.
//!
//! Default mode uses slirp4netns (Debian package) rather than a veth pair on
//! a NAT bridge: it needs no bridge, no iptables/nftables rules and no
//! `net.ipv4.ip_forward` change on the host (nothing to leak or clean up if
//! kiln is killed: it exits with its exit-fd), it keeps working when kiln
//! runs rootless later, and builds mostly download, where its user-mode TCP
//! is fast enough. Host loopback is *not* reachable from the container
//! (`--disable-host-loopback`): a RUN step must not reach services that
//! listen on the host's 127.0.0.1.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::{Error, Result};
use crate::mounts::GeneratedFile;
use crate::spec::{NetworkMode, NetworkSpec};

/// The container's address in default mode (slirp4netns' guest address).
pub const SLIRP_GUEST_IP: &str = "10.0.2.100";
/// slirp4netns' built-in DNS forwarder.
pub const SLIRP_DNS: &str = "10.0.2.3";
/// slirp4netns' gateway (the host, as the container sees it).
pub const SLIRP_GATEWAY: &str = "10.0.2.2";

/// Brings `lo` up in the calling process's network namespace.
pub fn loopback_up() -> Result<()> {
    // SAFETY: plain socket(2); the fd is wrapped at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::sys("socket for lo", nix::Error::last()));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let sock: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads an ifreq we own for the call's duration.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(Error::sys("bring lo up", nix::Error::last()));
    }
    Ok(())
}

/// Writes hostname, hosts and resolv.conf for the container into `dir` and
/// returns them as files to bind over the image's.
pub fn generate_files(dir: &Path, hostname: &str, net: &NetworkSpec) -> Result<Vec<GeneratedFile>> {
    let w = |name: &str, text: String| -> Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
        Ok(p)
    };
    let mut hosts = String::new();
    if net.mode == NetworkMode::Host {
        hosts.push_str(&std::fs::read_to_string("/etc/hosts").unwrap_or_default());
    } else {
        hosts.push_str("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
    }
    for (name, ip) in &net.extra_hosts {
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    let first = net
        .attachments
        .first()
        .filter(|_| net.mode != NetworkMode::Host);
    match net.mode {
        _ if first.is_some() => {
            if let Some(a) = first {
                hosts.push_str(&format!("{}\t{hostname}\n", a.address));
            }
        }
        NetworkMode::Default => hosts.push_str(&format!("{SLIRP_GUEST_IP}\t{hostname}\n")),
        NetworkMode::None => hosts.push_str(&format!("127.0.0.1\t{hostname}\n")),
        NetworkMode::Host => {}
    }
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = if !net.dns.is_empty() {
        net.dns
            .iter()
            .map(|d| format!("nameserver {d}\n"))
            .collect()
    } else if net.mode == NetworkMode::Host {
        host_resolv
    } else if let Some(a) = first {
        // The network's own name server on its gateway, as podman's; docker's 127.0.0.11
        // needs a DNAT rule inside every container, a gateway address none. The host's search
        // domains are kept; names it does not know are forwarded to the host's resolvers.
        let mut out = format!("nameserver {}\n", a.gateway);
        for l in host_resolv.lines().filter(|l| l.starts_with("search")) {
            out.push_str(&format!("{l}\n"));
        }
        out.push_str("options ndots:0\n");
        out
    } else {
        // Loopback resolvers of the host (systemd-resolved, dnsmasq) are not
        // reachable from another namespace: drop them, as docker does.
        let mut out: String = host_resolv
            .lines()
            .filter(|l| {
                !(l.starts_with("nameserver") && (l.contains(" 127.") || l.contains(" ::1")))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        if !out.lines().any(|l| l.starts_with("nameserver")) && net.mode == NetworkMode::Default {
            out.push_str(&format!("nameserver {SLIRP_DNS}\n"));
        }
        out
    };
    let hostname_text = if net.mode == NetworkMode::Host {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        hostname.to_string()
    };
    Ok(vec![
        GeneratedFile {
            source: w("hostname", format!("{hostname_text}\n"))?,
            destination: "/etc/hostname".into(),
        },
        GeneratedFile {
            source: w("hosts", hosts)?,
            destination: "/etc/hosts".into(),
        },
        GeneratedFile {
            source: w("resolv.conf", resolv)?,
            destination: "/etc/resolv.conf".into(),
        },
    ])
}

/// A running slirp4netns serving one container's network namespace.
#[derive(Debug)]
pub struct Slirp {
    child: Child,
    /// Closing this ends slirp4netns (its --exit-fd), also when kiln dies.
    _exit_writer: OwnedFd,
}

impl Slirp {
    /// Starts slirp4netns for the namespace of `pid` and waits until the
    /// tap device is configured.
    pub fn start(pid: i32) -> Result<Slirp> {
        Slirp::start_from(pid, None)
    }

    /// As [`Slirp::start`], with slirp4netns itself running in the network namespace
    /// `outside` (an open namespace file) rather than the caller's: a process whose own
    /// namespace is the one served (a user network's helper) gives it the host's.
    pub fn start_from(pid: i32, outside: Option<std::os::fd::RawFd>) -> Result<Slirp> {
        let (ready_r, ready_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
        let (exit_r, exit_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
        let (rw, er) = (ready_w.as_raw_fd(), exit_r.as_raw_fd());
        let mut cmd = Command::new("slirp4netns");
        cmd.args([
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--ready-fd=3",
            "--exit-fd=4",
        ])
        .arg(pid.to_string())
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only setns and dup2 (async-signal-safe) run between fork and exec;
        // dup2 clears CLOEXEC on the copies slirp4netns inherits as 3 and 4.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                if let Some(ns) = outside {
                    if libc::setns(ns, libc::CLONE_NEWNET) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::dup2(rw, 3) < 0 || libc::dup2(er, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| Error::io("slirp4netns", e))?;
        drop(ready_w);
        drop(exit_r);
        let mut buf = [0u8; 1];
        let n = nix::unistd::read(&ready_r, &mut buf)
            .map_err(|e| Error::sys("wait for slirp4netns", e))?;
        if n != 1 {
            return Err(Error::Setup(
                "slirp4netns exited before the network was ready (is it installed?)".into(),
            ));
        }
        Ok(Slirp {
            child,
            _exit_writer: exit_w,
        })
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_follow_the_network_mode() {
        let t = tempfile::tempdir().unwrap();
        let mut net = NetworkSpec {
            mode: NetworkMode::Default,
            extra_hosts: vec![("db".into(), "10.1.2.3".into())],
            ..Default::default()
        };
        let files = generate_files(t.path(), "box1", &net).unwrap();
        let read = |name: &str| std::fs::read_to_string(t.path().join(name)).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(read("hostname"), "box1\n");
        assert!(read("hosts").contains("10.1.2.3\tdb\n"));
        assert!(read("hosts").contains(&format!("{SLIRP_GUEST_IP}\tbox1\n")));
        assert!(
            !read("resolv.conf")
                .lines()
                .any(|l| l.starts_with("nameserver 127.")),
            "no host-loopback resolver"
        );
        assert!(read("resolv.conf").contains("nameserver"));
        net.dns = vec!["192.0.2.1".into(), "192.0.2.2".into()];
        net.mode = NetworkMode::None;
        generate_files(t.path(), "box1", &net).unwrap();
        assert_eq!(
            read("resolv.conf"),
            "nameserver 192.0.2.1\nnameserver 192.0.2.2\n"
        );
        assert!(read("hosts").contains("127.0.0.1\tbox1\n"));
    }
}
