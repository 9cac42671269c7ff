//! Plumbing shared by `run` and `exec`: the detached supervisor, signal
//! forwarding, the terminal, and container lookup helpers.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::Context;
use kiln_executor::spec::{ContainerSpec, PortMapping, Protocol, StdioSpec};
use kiln_executor::state::{ContainerRecord, Status, Store};
use nix::sys::signal::{SigSet, Signal};

/// `IP:HOST->CONTAINER/PROTO`, as `docker ps` shows published ports.
pub fn port_strings(bound: &[PortMapping]) -> Vec<String> {
    bound
        .iter()
        .map(|p| {
            let proto = if p.protocol == Protocol::Udp {
                "udp"
            } else {
                "tcp"
            };
            format!(
                "{}:{}->{}/{proto}",
                p.host_ip, p.host_port, p.container_port
            )
        })
        .collect()
}

/// Forwards the signals a user sends kiln (Ctrl-C, SIGTERM, ...) to the
/// container's PID 1, and window-size changes to its terminal.
pub struct SignalForwarder {
    pid: Arc<AtomicI32>,
    pty: Arc<AtomicI32>,
}

const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

impl SignalForwarder {
    /// Blocks the forwarded signals in this thread (and so in every thread
    /// made later) and starts the thread that forwards them.
    pub fn install() -> SignalForwarder {
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(*s);
        }
        let _ = set.thread_block();
        let pid = Arc::new(AtomicI32::new(0));
        let pty = Arc::new(AtomicI32::new(-1));
        let (p, t) = (pid.clone(), pty.clone());
        std::thread::spawn(move || loop {
            let Ok(sig) = set.wait() else { continue };
            if sig == Signal::SIGWINCH {
                let m = t.load(Ordering::Relaxed);
                if m >= 0 {
                    kiln_executor::pty::copy_winsize(0, m);
                }
                continue;
            }
            let target = p.load(Ordering::Relaxed);
            if target > 0 {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(target), sig);
            } else if sig == Signal::SIGINT || sig == Signal::SIGTERM {
                // Nothing started yet: stop here, as an unblocked signal would.
                std::process::exit(128 + sig as i32);
            }
        });
        SignalForwarder { pid, pty }
    }

    /// Starts forwarding to `pid` (and window sizes to `pty`).
    pub fn target(&self, pid: i32, pty: Option<i32>) {
        self.pid.store(pid, Ordering::Relaxed);
        if let Some(m) = pty {
            self.pty.store(m, Ordering::Relaxed);
        }
    }
}

/// Connects kiln's terminal to the container's pty until the container
/// closes it: raw mode, window size, stdin (with `-i`) and output.
pub fn attach_pty(master: &OwnedFd, interactive: bool) {
    let _raw = kiln_executor::pty::RawMode::enter(0);
    kiln_executor::pty::copy_winsize(0, master.as_raw_fd());
    if interactive {
        if let Ok(dup) = master.try_clone() {
            std::thread::spawn(move || {
                let mut to = std::fs::File::from(dup);
                let mut stdin = std::io::stdin().lock();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stdin.read(&mut buf) {
                    if n == 0 || to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    }
    let Ok(dup) = master.try_clone() else { return };
    let mut from = std::fs::File::from(dup);
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 4096];
    // EIO once every holder of the pty's other end has closed it.
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || out.write_all(&buf[..n]).is_err() {
            break;
        }
        let _ = out.flush();
    }
}

/// `kiln run -d`: forks a supervisor (double fork, new session) that starts
/// the container with its output going to `<dir>/log`, records its state,
/// serves its ports, waits for it and records the exit. This process prints
/// the id once the container's program has started.
pub fn detach(
    store: &Store,
    mut rec: ContainerRecord,
    mut spec: ContainerSpec,
) -> anyhow::Result<ExitCode> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    let log_path = store.dir(&rec.id).join("log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open {}", log_path.display()))?;
    // SAFETY: kiln is single-threaded here (no thread has been started).
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut msg = String::new();
            std::fs::File::from(r).read_to_string(&mut msg).ok();
            if let Some(err) = msg.strip_prefix("err\n") {
                eprintln!("kiln: error: {err}");
                return Ok(ExitCode::from(125));
            }
            if msg != "ok" {
                eprintln!("kiln: error: the supervisor died before the container started");
                return Ok(ExitCode::from(125));
            }
            println!("{}", rec.id);
            Ok(ExitCode::SUCCESS)
        }
        nix::unistd::ForkResult::Child => {
            drop(r);
            let _ = nix::unistd::setsid();
            // SAFETY: still single-threaded.
            if let Ok(nix::unistd::ForkResult::Parent { .. }) = unsafe { nix::unistd::fork() } {
                // SAFETY: _exit in the middle process of the double fork.
                unsafe { libc::_exit(0) };
            }
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .ok();
            if let Some(n) = &null {
                for fd in 0..3 {
                    // SAFETY: dup2 onto our own standard descriptors.
                    unsafe { libc::dup2(n.as_raw_fd(), fd) };
                }
            }
            let me = std::process::id() as i32;
            rec.supervisor = Some(me);
            rec.supervisor_start = kiln_executor::state::process_start_time(me);
            let log_fd: OwnedFd = log.into();
            let terminal = spec.process.terminal().unwrap_or(false);
            spec.stdin = StdioSpec::Null;
            spec.stdout = StdioSpec::Fd(log_fd.try_clone().unwrap_or_else(|_| dup_null()));
            spec.stderr = StdioSpec::Fd(log_fd.try_clone().unwrap_or_else(|_| dup_null()));
            let mut report = std::fs::File::from(w);
            let running = match kiln_executor::launch::start(spec) {
                Ok(r) => r,
                Err(e) => {
                    let _ = write!(report, "err\n{e}");
                    crate::commands::run::finish(store, &mut rec, None);
                    std::process::exit(0);
                }
            };
            rec.status = Status::Running;
            rec.pid = Some(running.pid);
            rec.ports = running
                .ports
                .as_ref()
                .map(|p| port_strings(&p.bound))
                .unwrap_or_default();
            let _ = store.save(&rec);
            let _ = report.write_all(b"ok");
            drop(report);
            if terminal {
                if let Some(m) = running.pty_master.as_ref().and_then(|m| m.try_clone().ok()) {
                    let mut logf = std::fs::File::from(log_fd);
                    std::thread::spawn(move || {
                        let mut from = std::fs::File::from(m);
                        let _ = std::io::copy(&mut from, &mut logf);
                    });
                }
            }
            let code = running.wait().unwrap_or(125);
            // `kiln rm -f` may have removed us already.
            if store.load(&rec.id).is_ok() {
                crate::commands::run::finish(store, &mut rec, Some(code));
            }
            std::process::exit(0);
        }
    }
}

fn dup_null() -> OwnedFd {
    std::fs::File::open("/dev/null")
        .map(OwnedFd::from)
        .unwrap_or_else(|_| {
            // SAFETY: fd 2 is open in every process kiln runs as; this path is
            // only reached when /dev/null is missing.
            unsafe { OwnedFd::from_raw_fd(libc::dup(2)) }
        })
}
