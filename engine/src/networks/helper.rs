//! A network's helper (`kiln --root R network-helper ID`, hidden): the process whose own
//! network namespace *is* the network's. It holds the namespace alive (with the bridge and
//! every container's veth end), runs the network's name server on gateway:53, and for a
//! non-internal network its way out: slirp4netns on `tap0` plus a MASQUERADE of the subnet,
//! in that namespace's own tables (the host's `iptables-save` never changes).
//!
//! It exits once the network has no live endpoint, so the namespace and all its links vanish
//! with it; after a SIGKILL of everything the kernel frees them just the same. Starting it
//! happens under the network's lock, and the endpoint that needs it is written before the
//! lock is let go, so a helper never exits under a container that is joining.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use super::dns::{self, NameServer};
use super::store::{self, NetworkRecord};
use crate::{Error, Result};

/// The hidden subcommand that runs a network's helper.
pub const HELPER_COMMAND: &str = "network-helper";

const REPORT_FD: i32 = 3;

/// Makes sure the helper of network `id` runs; the caller holds the network's lock.
/// Returns its pid (the network's namespace is `/proc/PID/ns/net`).
pub fn ensure(root: &Path, program: &Path, id: &str) -> Result<i32> {
    if let Some(pid) = store::live_helper(root, id) {
        return Ok(pid);
    }
    let dir = store::network_dir(root, id);
    let (report, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::Internal(format!("creating a pipe: {e}")))?;
    let err_path = dir.join("helper.err");
    let err_log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&err_path)
        .map_err(|e| Error::io("opening", &err_path, e))?;
    let mut cmd = std::process::Command::new(program);
    cmd.arg("--root")
        .arg(root)
        .arg(HELPER_COMMAND)
        .arg(id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err_log);
    let w = report_w.as_raw_fd();
    // SAFETY: only dup2 and fcntl (async-signal-safe) run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(w, REPORT_FD) < 0 || libc::fcntl(REPORT_FD, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io("starting the network helper", program, e))?;
    drop(report_w);
    // The helper forks itself away at once: this reaps the first process only.
    let _ = child.wait();
    let mut text = String::new();
    let _ = std::fs::File::from(report).read_to_string(&mut text);
    if let Some(pid) = text.strip_prefix("ok ") {
        return pid
            .trim()
            .parse()
            .map_err(|_| Error::Internal(format!("network helper said {text:?}")));
    }
    let detail = text
        .strip_prefix("err ")
        .map(str::to_string)
        .unwrap_or_else(|| {
            std::fs::read_to_string(&err_path)
                .unwrap_or_default()
                .lines()
                .last()
                .unwrap_or("it exited")
                .to_string()
        });
    Err(Error::Internal(format!(
        "the network's helper did not start: {detail}"
    )))
}

/// Stops the helper of a network that has no endpoint (the caller holds its lock).
pub fn stop(root: &Path, id: &str) {
    if let Some(pid) = store::live_helper(root, id) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        for _ in 0..100 {
            if store::live_helper(root, id).is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = std::fs::remove_file(store::helper_pid_path(root, id));
}

/// The helper's body; never returns. Must be called before kiln starts any thread.
pub fn run(root: &Path, id: &str) -> ! {
    let _ = nix::unistd::setsid();
    // SAFETY: no thread runs yet (the caller's contract), so the child may do anything.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {}
        // SAFETY: _exit in the parent of the double fork, whose only job is done.
        Ok(nix::unistd::ForkResult::Parent { .. }) => unsafe { libc::_exit(0) },
        Err(_) => {}
    }
    // SAFETY: fd 3 is the report pipe the starter set up for this process alone.
    let mut report = unsafe { std::fs::File::from_raw_fd(REPORT_FD) };
    match Helper::setup(root, id) {
        Ok(helper) => {
            let me = std::process::id() as i32;
            let start = kiln_executor::state::process_start_time(me).unwrap_or(0);
            let pid_path = store::helper_pid_path(root, id);
            if let Err(e) = std::fs::write(&pid_path, format!("{me} {start}\n")) {
                let _ = write!(report, "err writing {}: {e}", pid_path.display());
                std::process::exit(1);
            }
            let _ = write!(report, "ok {me}");
            drop(report);
            helper.serve()
        }
        Err(e) => {
            let _ = write!(report, "err {}", e.display_chain());
            std::process::exit(1)
        }
    }
}

struct Helper {
    root: std::path::PathBuf,
    net: NetworkRecord,
    slirp: Option<kiln_executor::network::Slirp>,
    isolated: Vec<String>,
}

fn run_iptables(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("iptables")
        .args(["-w"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io("running", Path::new("iptables"), e))?;
    if !out.status.success() {
        return Err(Error::Internal(format!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

impl Helper {
    fn setup(root: &Path, id: &str) -> Result<Helper> {
        let net = store::load(root, id)?;
        let subnet = net.subnet()?;
        // Opened in the host's namespace before leaving it: the upstream side of the name
        // server, and the namespace slirp4netns is to run in.
        let upstream = if net.internal {
            None
        } else {
            let sock = UdpSocket::bind("0.0.0.0:0")
                .map_err(|e| Error::io("binding", Path::new("a forwarding socket"), e))?;
            let _ = sock.set_read_timeout(Some(Duration::from_secs(3)));
            Some(sock)
        };
        let host_ns = std::fs::File::open("/proc/self/ns/net")
            .map_err(|e| Error::io("opening", Path::new("/proc/self/ns/net"), e))?;
        let resolvers = dns::host_resolvers();
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Internal(format!("a network namespace: {e}")))?;
        kiln_executor::bridge::setup_network_namespace(
            &net.bridge(),
            net.gateway,
            subnet.prefix_len,
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        let mut helper = Helper {
            root: root.to_path_buf(),
            net: net.clone(),
            slirp: None,
            isolated: Vec::new(),
        };
        if !net.internal {
            let me = std::process::id() as i32;
            helper.slirp = Some(
                kiln_executor::network::Slirp::start_from(me, Some(host_ns.as_raw_fd()))
                    .map_err(|e| Error::Internal(e.to_string()))?,
            );
            let src = subnet.to_string();
            run_iptables(&[
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-s",
                &src,
                "-o",
                "tap0",
                "-j",
                "MASQUERADE",
            ])?;
            run_iptables(&["-N", "KILN-ISOLATION"])?;
            run_iptables(&["-I", "FORWARD", "-j", "KILN-ISOLATION"])?;
            helper.refresh_isolation();
        }
        drop(host_ns);
        super::attach::reattach_all(root, &net);
        let server = NameServer::new(root, &net, upstream, resolvers);
        let addr = SocketAddr::from((net.gateway, 53));
        let udp = UdpSocket::bind(addr)
            .map_err(|e| Error::io("binding", Path::new("gateway:53/udp"), e))?;
        let tcp = TcpListener::bind(addr)
            .map_err(|e| Error::io("binding", Path::new("gateway:53/tcp"), e))?;
        server.spawn(udp, tcp);
        Ok(helper)
    }

    /// Other kiln networks' subnets are refused on the way out: without this, a packet for
    /// another network's address would leave through slirp4netns to wherever the host routes
    /// it, while no route between two networks is what isolation means.
    fn refresh_isolation(&mut self) {
        if self.net.internal {
            return;
        }
        let mut others: Vec<String> = store::load_all(&self.root)
            .into_iter()
            .filter(|n| n.id != self.net.id)
            .map(|n| n.subnet)
            .collect();
        others.sort();
        if others == self.isolated {
            return;
        }
        if run_iptables(&["-F", "KILN-ISOLATION"]).is_err() {
            return;
        }
        for s in &others {
            let _ = run_iptables(&[
                "-A",
                "KILN-ISOLATION",
                "-d",
                s,
                "-j",
                "REJECT",
                "--reject-with",
                "icmp-net-unreachable",
            ]);
        }
        self.isolated = others;
    }

    /// Tends the network until it has no live endpoint, then exits.
    fn serve(mut self) -> ! {
        let id = self.net.id.clone();
        loop {
            std::thread::sleep(Duration::from_millis(500));
            if !store::network_dir(&self.root, &id)
                .join("network.json")
                .exists()
            {
                self.exit();
            }
            let Ok(lock) = store::lock_network(&self.root, &id) else {
                continue;
            };
            if store::drop_stale(&self.root, &id).is_empty() {
                let _ = std::fs::remove_file(store::helper_pid_path(&self.root, &id));
                drop(lock);
                self.exit();
            }
            drop(lock);
            self.refresh_isolation();
        }
    }

    fn exit(&mut self) -> ! {
        self.slirp = None;
        std::process::exit(0)
    }
}
