//! Terminal plumbing shared by `run` and `exec`: signal forwarding and a pty's copy loop.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{SigSet, Signal};

/// What to do when the terminal's size changes.
type OnResize = Box<dyn Fn() + Send>;

/// Forwards the signals a user sends kiln (Ctrl-C, SIGTERM, ...) to the
/// container's PID 1, and window-size changes to its terminal.
pub struct SignalForwarder {
    pid: Arc<AtomicI32>,
    on_resize: Arc<Mutex<Option<OnResize>>>,
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
        let on_resize: Arc<Mutex<Option<OnResize>>> = Arc::new(Mutex::new(None));
        let (p, r) = (pid.clone(), on_resize.clone());
        std::thread::spawn(move || loop {
            let Ok(sig) = set.wait() else { continue };
            if sig == Signal::SIGWINCH {
                if let Ok(guard) = r.lock() {
                    if let Some(f) = guard.as_ref() {
                        f();
                    }
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
        SignalForwarder { pid, on_resize }
    }

    /// Starts forwarding to `pid`, and calls `on_resize` when the terminal's size changes.
    pub fn target(&self, pid: i32, on_resize: Option<OnResize>) {
        self.pid.store(pid, Ordering::Relaxed);
        if let Ok(mut slot) = self.on_resize.lock() {
            *slot = on_resize;
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
