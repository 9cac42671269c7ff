//! Starting, waiting for and entering containers.
//!
//! Process layout, and why:
//! * kiln forks a **holder**. The holder sets PR_SET_PDEATHSIG(SIGKILL),
//!   unshares the namespaces, makes `/` a slave mount (nothing mounted later
//!   propagates back to the host) and forks the container's **PID 1**. It then
//!   only waits and exits with PID 1's status (`128+signal` when killed).
//! * PID 1 (also PDEATHSIG-bound to the holder) mounts the rootfs, /proc,
//!   /dev, /sys and the user's mounts inside its own mount namespace, pivots
//!   into the new root, closes every descriptor it inherited, enters the
//!   working directory *inside* the new root, drops capabilities, loads the
//!   seccomp filter, switches user and `execve`s the program found in the
//!   container's own filesystem.
//!
//! So if kiln is SIGKILLed, the holder dies, PID 1 dies, the kernel kills
//! the whole PID namespace and frees the mount and network namespaces: no
//! process, mount or namespace is left. The host's kiln binary is never
//! executed in the container (CVE-2019-5736): PID 1 is a fork of kiln
//! until its `execve`, and during that window nothing else runs in the
//! container; a `kiln exec` process is made non-dumpable before it joins, so
//! container processes cannot open its /proc/PID/exe.
//!
//! fork() rather than clone(): glibc's fork resets the allocator's locks in
//! the child, so the child may allocate even when the caller has threads
//! (the solver runs RUN steps from a thread pool). The thread that calls
//! [`start`] must live until [`Running::wait`] returns: PDEATHSIG fires
//! when the *thread* that forked the holder exits.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use caps::CapsHashSet;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::PosixRlimitType;

use crate::cgroups::Cgroups;
use crate::error::{Error, Result};
use crate::mounts::{self, GeneratedFile};
use crate::network::{self, Slirp};
use crate::proxy::{self, PortProxy};
use crate::seccomp::Filters;
use crate::spec::{ContainerSpec, MountSpec, NetworkMode, Rootfs, StdioSpec};

/// Everything the container's process needs after the mounts: shared by
/// [`start`] and [`exec`].
#[derive(Debug, Clone)]
struct ProcPlan {
    args: Vec<String>,
    env: Vec<String>,
    cwd: PathBuf,
    user: String,
    extra_gids: Vec<u32>,
    caps: CapsHashSet,
    seccomp: Option<Filters>,
    no_new_privs: bool,
    rlimits: Vec<(libc::c_int, u64, u64)>,
    terminal: bool,
    init: bool,
    cgroup_procs: Vec<PathBuf>,
}

/// The rootfs half of the plan (only for [`start`]).
#[derive(Debug, Clone)]
struct RootPlan {
    rootfs: Rootfs,
    merged: PathBuf,
    secrets_dir: PathBuf,
    devs_dir: PathBuf,
    mounts: Vec<MountSpec>,
    files: Vec<GeneratedFile>,
    hostname: Option<String>,
    new_net: bool,
    /// A network namespace to join instead of a new one (`--network container:X`).
    join_net: Option<RawFd>,
    readonly: bool,
    sync_upper: bool,
}

/// Descriptors PID 1 / the exec'ed process talks to kiln through.
#[derive(Debug, Clone, Copy)]
struct ChildFds {
    stdio: [RawFd; 3],
    go: RawFd,
    err: RawFd,
    console: RawFd,
}

/// A started container.
#[derive(Debug)]
pub struct Running {
    /// The container's PID 1 as seen from the host.
    pub pid: i32,
    holder: Pid,
    /// The pty master when the container has a terminal.
    pub pty_master: Option<OwnedFd>,
    /// Published ports, with the host ports actually bound.
    pub ports: Option<PortProxy>,
    /// cgroup controllers the host lacks, so their limits were not applied.
    pub skipped_limits: Vec<&'static str>,
    cgroups: Cgroups,
    slirp: Option<Slirp>,
    _locks: Vec<std::fs::File>,
    reaped: bool,
}

impl Running {
    /// Sends `sig` to the container's PID 1 (a PID 1 ignores signals it has
    /// no handler for, except SIGKILL, as in docker).
    pub fn signal(&self, sig: Signal) -> Result<()> {
        nix::sys::signal::kill(Pid::from_raw(self.pid), sig)
            .map_err(|e| Error::sys("signal container", e))
    }

    /// Kills the container.
    pub fn kill(&self) -> Result<()> {
        self.signal(Signal::SIGKILL)
    }

    /// The holder's pid (what to wait for from another thread).
    pub fn holder_pid(&self) -> i32 {
        self.holder.as_raw()
    }

    /// Waits for the container to exit and frees its host-side resources
    /// (ports, slirp4netns, cgroups, cache locks). Returns the exit code:
    /// the program's, or 128+N when killed by signal N.
    pub fn wait(mut self) -> Result<i32> {
        let code = wait_code(self.holder);
        self.reaped = true;
        self.release();
        code
    }

    /// Waits at most `timeout`; a container still running then is killed
    /// (nothing of it survives) and `Ok(None)` is returned.
    pub fn wait_timeout(mut self, timeout: std::time::Duration) -> Result<Option<i32>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match waitpid(self.holder, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, c)) => {
                    self.reaped = true;
                    self.release();
                    return Ok(Some(c));
                }
                Ok(WaitStatus::Signaled(_, s, _)) => {
                    self.reaped = true;
                    self.release();
                    return Ok(Some(128 + s as i32));
                }
                Err(nix::Error::EINTR) | Ok(_) => {}
                Err(e) => return Err(Error::sys("wait for container", e)),
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.kill();
                self.wait()?;
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    fn release(&mut self) {
        self.ports = None;
        self.slirp = None;
        self.cgroups.remove();
    }
}

impl Drop for Running {
    /// A container nobody waits for (an error or a panic on the caller's
    /// side) is killed and reaped: it never outlives its handle.
    fn drop(&mut self) {
        if !self.reaped {
            let _ = nix::sys::signal::kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            let _ = wait_code(self.holder);
            self.release();
        }
    }
}

fn wait_code(pid: Pid) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Error::sys("wait for container", e)),
        }
    }
}

/// Starts a container and waits for it: the whole of a RUN step.
pub fn run(spec: ContainerSpec) -> Result<i32> {
    start(spec)?.wait()
}

fn stdio_fd(s: &StdioSpec, n: RawFd, keep: &mut Vec<OwnedFd>) -> Result<RawFd> {
    Ok(match s {
        StdioSpec::Inherit => n,
        StdioSpec::Fd(fd) => fd.as_raw_fd(),
        StdioSpec::Null => {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map_err(|e| Error::io("/dev/null", e))?;
            let fd: OwnedFd = f.into();
            let raw = fd.as_raw_fd();
            keep.push(fd);
            raw
        }
    })
}

fn current_hard_limit(res: libc::c_int) -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a struct we own.
    if unsafe { libc::getrlimit(res as _, &mut l) } == 0 {
        l.rlim_max
    } else {
        u64::MAX
    }
}

fn rlimit_resource(t: PosixRlimitType) -> Option<libc::c_int> {
    use PosixRlimitType::*;
    Some(match t {
        RlimitCpu => libc::RLIMIT_CPU as _,
        RlimitFsize => libc::RLIMIT_FSIZE as _,
        RlimitData => libc::RLIMIT_DATA as _,
        RlimitStack => libc::RLIMIT_STACK as _,
        RlimitCore => libc::RLIMIT_CORE as _,
        RlimitRss => libc::RLIMIT_RSS as _,
        RlimitNproc => libc::RLIMIT_NPROC as _,
        RlimitNofile => libc::RLIMIT_NOFILE as _,
        RlimitMemlock => libc::RLIMIT_MEMLOCK as _,
        RlimitAs => libc::RLIMIT_AS as _,
        RlimitLocks => libc::RLIMIT_LOCKS as _,
        RlimitSigpending => libc::RLIMIT_SIGPENDING as _,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE as _,
        RlimitNice => libc::RLIMIT_NICE as _,
        RlimitRtprio => libc::RLIMIT_RTPRIO as _,
        RlimitRttime => libc::RLIMIT_RTTIME as _,
    })
}

fn proc_plan(
    spec_process: &oci_spec::runtime::Process,
    caps: &CapsHashSet,
    seccomp: bool,
    init: bool,
    cgroup_procs: Vec<PathBuf>,
) -> Result<ProcPlan> {
    let user = spec_process.user();
    let user_str = match user.username() {
        Some(name) if !name.is_empty() => name.clone(),
        _ => format!("{}:{}", user.uid(), user.gid()),
    };
    let mut rlimits = Vec::new();
    for r in spec_process.rlimits().clone().unwrap_or_default() {
        let Some(res) = rlimit_resource(r.typ()) else {
            continue;
        };
        // Never above the current hard limit: raising it needs
        // CAP_SYS_RESOURCE, which this host does not grant (FACTS.md).
        let hard = r.hard().min(current_hard_limit(res));
        rlimits.push((res, r.soft().min(hard), hard));
    }
    let args = spec_process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(Error::Invalid {
            what: "process",
            detail: "no command given".into(),
        });
    }
    Ok(ProcPlan {
        args,
        env: spec_process.env().clone().unwrap_or_default(),
        cwd: spec_process.cwd().clone(),
        user: user_str,
        extra_gids: user.additional_gids().clone().unwrap_or_default(),
        caps: caps.clone(),
        seccomp: if seccomp {
            Some(crate::seccomp::docker_default(caps)?)
        } else {
            None
        },
        no_new_privs: spec_process.no_new_privileges().unwrap_or(false),
        rlimits,
        terminal: spec_process.terminal().unwrap_or(false),
        init,
        cgroup_procs,
    })
}

/// Takes the cache mounts' locks and swaps a busy `private` cache for a
/// fresh directory. Returns the held lock files.
fn prepare_caches(mounts: &mut [MountSpec]) -> Result<Vec<std::fs::File>> {
    use crate::spec::CacheSharing;
    let mut locks = Vec::new();
    for m in mounts.iter_mut() {
        if let MountSpec::Cache {
            source, sharing, ..
        } = m
        {
            std::fs::create_dir_all(&*source).map_err(|e| Error::io(&*source, e))?;
            let lock_path = PathBuf::from(format!("{}.lock", source.display()));
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| Error::io(&lock_path, e))?;
            match sharing {
                CacheSharing::Shared => {}
                CacheSharing::Locked => {
                    // Held until the container is gone (the file closes in wait()).
                    // SAFETY: flock on a descriptor we own.
                    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
                    locks.push(f);
                }
                CacheSharing::Private => {
                    // SAFETY: flock on a descriptor we own.
                    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                        locks.push(f);
                    } else {
                        let mut n = 1;
                        loop {
                            let alt = PathBuf::from(format!("{}.private{n}", source.display()));
                            let alt_lock = PathBuf::from(format!("{}.lock", alt.display()));
                            std::fs::create_dir_all(&alt).map_err(|e| Error::io(&alt, e))?;
                            let f = std::fs::OpenOptions::new()
                                .create(true)
                                .truncate(false)
                                .write(true)
                                .open(&alt_lock)
                                .map_err(|e| Error::io(&alt_lock, e))?;
                            // SAFETY: as above.
                            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }
                                == 0
                            {
                                locks.push(f);
                                *source = alt;
                                break;
                            }
                            n += 1;
                        }
                    }
                }
            }
        }
    }
    Ok(locks)
}

/// Starts a container. Returns once its program has been `execve`d (or
/// with the reason it could not be).
pub fn start(mut spec: ContainerSpec) -> Result<Running> {
    let state = spec.state_dir.clone();
    let merged = state.join("rootfs");
    let secrets_dir = state.join("secrets");
    let devs_dir = state.join("devs");
    for d in [&state, &merged, &secrets_dir, &devs_dir] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    if let Rootfs::Overlay { work, .. } = &spec.rootfs {
        // A previous volatile mount of this upper left its marker; overlayfs
        // refuses to mount again until it is gone. That earlier mount ended
        // (two mounts of one work dir are refused anyway), so reuse the upper
        // as it is.
        let marker = work.join("work").join("incompat").join("volatile");
        if marker.exists() {
            std::fs::remove_dir_all(&marker).map_err(|e| Error::io(&marker, e))?;
        }
    }
    let locks = prepare_caches(&mut spec.mounts)?;
    let files = network::generate_files(&state, &spec.hostname, &spec.network)?;
    let join_net = match &spec.network.join_netns {
        Some(p) => Some(std::fs::File::open(p).map_err(|e| Error::io(p, e))?),
        None => None,
    };
    let cgroups = Cgroups::create(&spec.id, &spec.resources)?;
    let new_net = spec.network.mode != NetworkMode::Host && join_net.is_none();
    let plan = proc_plan(
        &spec.process,
        &spec.capabilities,
        spec.seccomp,
        spec.init,
        cgroups.procs_files(),
    );
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            cgroups.remove();
            return Err(e);
        }
    };
    let root = RootPlan {
        rootfs: spec.rootfs.clone(),
        merged,
        secrets_dir,
        devs_dir,
        mounts: spec.mounts.clone(),
        files,
        hostname: (spec.network.mode != NetworkMode::Host).then(|| spec.hostname.clone()),
        new_net,
        join_net: join_net.as_ref().map(|f| f.as_raw_fd()),
        readonly: spec.readonly_rootfs,
        sync_upper: spec.sync_upper,
    };
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if new_net {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    let r = spawn(
        Some((&root, flags)),
        None,
        &plan,
        &spec.stdin,
        &spec.stdout,
        &spec.stderr,
    );
    let (holder, pid, master, go, err) = match r {
        Ok(x) => x,
        Err(e) => {
            cgroups.remove();
            return Err(e);
        }
    };
    let mut running = Running {
        pid,
        holder,
        pty_master: master,
        ports: None,
        skipped_limits: cgroups.skipped.clone(),
        cgroups,
        slirp: None,
        _locks: locks,
        reaped: false,
    };
    let net_setup = (|| -> Result<()> {
        if spec.network.mode == NetworkMode::Default {
            running.slirp = Some(Slirp::start(pid)?);
        }
        if !spec.network.attachments.is_empty() && new_net {
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
                .map_err(|e| Error::io("container netns", e))?;
            for att in &spec.network.attachments {
                crate::bridge::attach(att, &ns)?;
            }
        }
        if !spec.network.ports.is_empty() && new_net {
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
                .map_err(|e| Error::io("container netns", e))?;
            running.ports = Some(proxy::start(&spec.network.ports, ns.into())?);
        }
        Ok(())
    })();
    finish_start(running, net_setup, go, err)
}

/// Lets the child go on and collects its setup result.
fn finish_start(running: Running, pre: Result<()>, go: OwnedFd, err: OwnedFd) -> Result<Running> {
    if let Err(e) = pre {
        drop(go);
        let _ = running.kill();
        let _ = running.wait();
        return Err(e);
    }
    // SAFETY: writing one byte from a live buffer to a pipe we own.
    unsafe { libc::write(go.as_raw_fd(), b"g".as_ptr().cast(), 1) };
    drop(go);
    let msg = read_all(&err);
    if msg.is_empty() {
        return Ok(running);
    }
    let _ = running.wait();
    Err(parse_child_error(&msg))
}

fn read_all(fd: &OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::Error::EINTR) => continue,
            Err(_) => break,
        }
    }
    out
}

fn parse_child_error(msg: &[u8]) -> Error {
    let text = String::from_utf8_lossy(msg);
    let (code, message) = text.split_once('\n').unwrap_or(("1", &text));
    let code: i32 = code.parse().unwrap_or(1);
    if code == 126 || code == 127 {
        Error::Exec {
            message: message.to_string(),
            code,
        }
    } else {
        Error::Setup(message.to_string())
    }
}

type Spawned = (Pid, i32, Option<OwnedFd>, OwnedFd, OwnedFd);

/// Forks the holder and the container process. `root` is for a new
/// container; `join` the namespace descriptors of a running one (exec).
fn spawn(
    root: Option<(&RootPlan, CloneFlags)>,
    join: Option<&[(OwnedFd, CloneFlags)]>,
    plan: &ProcPlan,
    stdin: &StdioSpec,
    stdout: &StdioSpec,
    stderr: &StdioSpec,
) -> Result<Spawned> {
    let mut keep = Vec::new();
    let stdio = [
        stdio_fd(stdin, 0, &mut keep)?,
        stdio_fd(stdout, 1, &mut keep)?,
        stdio_fd(stderr, 2, &mut keep)?,
    ];
    let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
    let pipe = || nix::unistd::pipe2(cloexec).map_err(|e| Error::sys("pipe", e));
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (console_parent, console_child) = if plan.terminal {
        let (a, b) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| Error::sys("socketpair", e))?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let fds = ChildFds {
        stdio,
        go: go_r.as_raw_fd(),
        err: err_w.as_raw_fd(),
        console: console_child.as_ref().map_or(-1, |c| c.as_raw_fd()),
    };
    let parent_pid = nix::unistd::getpid();
    // SAFETY: the child only runs code that is safe after fork in a
    // multi-threaded process with glibc (fork resets malloc's locks); it
    // takes no lock another thread of ours could hold (no stdio, no env).
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::sys("fork", e))? {
        ForkResult::Child => holder_main(parent_pid, root, join, plan, fds, ready_w.as_raw_fd()),
        ForkResult::Parent { child } => {
            drop((ready_w, go_r, err_w, console_child, keep));
            let mut buf = [0u8; 4];
            let mut got = 0;
            while got < 4 {
                match nix::unistd::read(&ready_r, &mut buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(nix::Error::EINTR) => continue,
                    Err(_) => break,
                }
            }
            if got < 4 {
                let msg = read_all(&err_r);
                let _ = wait_code(child);
                return Err(if msg.is_empty() {
                    Error::Setup("the container's holder died".into())
                } else {
                    parse_child_error(&msg)
                });
            }
            let pid = i32::from_ne_bytes(buf);
            let master = match console_parent {
                Some(sock) => match crate::pty::recv_fd(sock.as_raw_fd()) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        let msg = read_all(&err_r);
                        let _ = wait_code(child);
                        return Err(if msg.is_empty() {
                            e
                        } else {
                            parse_child_error(&msg)
                        });
                    }
                },
                None => None,
            };
            Ok((child, pid, master, go_w, err_r))
        }
    }
}

/// Writes `code\nmessage` to the error pipe and exits.
fn die(err_fd: RawFd, code: i32, msg: &str) -> ! {
    let text = format!("{code}\n{msg}");
    // SAFETY: write(2) from a live buffer, then _exit(2): no destructors run
    // in the forked child.
    unsafe {
        libc::write(err_fd, text.as_ptr().cast(), text.len());
        libc::_exit(code)
    }
}

fn set_pdeathsig() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
}

fn holder_main(
    parent: Pid,
    root: Option<(&RootPlan, CloneFlags)>,
    join: Option<&[(OwnedFd, CloneFlags)]>,
    plan: &ProcPlan,
    fds: ChildFds,
    ready: RawFd,
) -> ! {
    set_pdeathsig();
    if nix::unistd::getppid() != parent {
        // kiln died before we could bind our life to it.
        // SAFETY: _exit in a forked child.
        unsafe { libc::_exit(1) };
    }
    if let Some((rp, flags)) = root {
        if let Some(fd) = rp.join_net {
            // SAFETY: the descriptor stays open in kiln until the holder has started, and
            // the fork gave the holder its own copy.
            let ns = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            if let Err(e) = nix::sched::setns(ns, CloneFlags::CLONE_NEWNET) {
                die(fds.err, 1, &format!("join the network namespace: {e}"));
            }
        }
        if let Err(e) = nix::sched::unshare(flags) {
            die(fds.err, 1, &format!("unshare namespaces: {e}"));
        }
        // Before anything is mounted: nothing we mount may reach the host.
        if let Err(e) = nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
            None::<&str>,
        ) {
            die(fds.err, 1, &format!("make / a slave mount: {e}"));
        }
    }
    if let Some(nss) = join {
        // Non-dumpable before the fork: the flag is inherited, so there is no
        // instant at which a container process could open the new process's
        // /proc/PID/exe (the host's kiln binary, CVE-2019-5736).
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        // Join the cgroups while the host's /sys is still ours to see; the
        // process forked below inherits them.
        if let Err((code, msg)) = join_cgroups(plan) {
            die(fds.err, code, &msg);
        }
        for (fd, flag) in nss {
            if let Err(e) = nix::sched::setns(fd, *flag) {
                die(
                    fds.err,
                    1,
                    &format!("join the container's {flag:?} namespace: {e}"),
                );
            }
        }
    }
    // SAFETY: the holder is single-threaded; see spawn().
    match unsafe { nix::unistd::fork() } {
        Err(e) => die(fds.err, 1, &format!("fork the container process: {e}")),
        Ok(ForkResult::Child) => {
            let r = match root {
                Some((rp, _)) => container_init(rp, plan, fds),
                None => exec_main(plan, fds),
            };
            match r {
                Ok(never) => match never {},
                Err((code, msg)) => die(fds.err, code, &msg),
            }
        }
        Ok(ForkResult::Parent { child }) => {
            let b = child.as_raw().to_ne_bytes();
            // SAFETY: plain syscalls on our own descriptors, in a forked child.
            unsafe {
                libc::write(ready, b.as_ptr().cast(), 4);
                // Keep no descriptor of kiln's but stdio: the parent's EOF on
                // the error pipe must mean "the container's program started".
                libc::close_range(3, u32::MAX, 0);
            }
            let code = wait_code(child).unwrap_or(1);
            // SAFETY: _exit in a forked child.
            unsafe { libc::_exit(code) }
        }
    }
}

type ChildResult = std::result::Result<std::convert::Infallible, (i32, String)>;

fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> (i32, String) + '_ {
    move |e| (1, format!("{what}: {e}"))
}

fn reset_signals() {
    // SAFETY: resetting dispositions and the mask; plain integer syscalls.
    unsafe {
        for s in 1..32 {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                libc::signal(s, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

fn join_cgroups(plan: &ProcPlan) -> std::result::Result<(), (i32, String)> {
    for f in &plan.cgroup_procs {
        std::fs::write(f, "0").map_err(|e| (1, format!("join cgroup {}: {e}", f.display())))?;
    }
    Ok(())
}

fn container_init(rp: &RootPlan, plan: &ProcPlan, fds: ChildFds) -> ChildResult {
    set_pdeathsig();
    reset_signals();
    join_cgroups(plan)?;
    if rp.new_net {
        network::loopback_up().map_err(fail("network"))?;
    }
    // SAFETY: umask has no failure mode; device nodes get exact modes.
    unsafe { libc::umask(0) };
    mounts::mount_rootfs(&rp.rootfs, &rp.merged, rp.sync_upper).map_err(fail("rootfs"))?;
    let root = nix::fcntl::open(
        &rp.merged,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(fail("open rootfs"))?;
    mounts::populate(&root, &rp.mounts, &rp.files, &rp.secrets_dir, &rp.devs_dir)
        .map_err(fail("mounts"))?;
    mounts::pivot(&root).map_err(fail("pivot_root"))?;
    drop(root);
    mounts::protect_proc_and_sys().map_err(fail("masked paths"))?;
    if rp.readonly {
        mounts::readonly_root().map_err(fail("read-only root"))?;
    }
    if let Some(h) = &rp.hostname {
        nix::unistd::sethostname(h).map_err(fail("sethostname"))?;
    }
    finish_process(plan, fds)
}

fn exec_main(plan: &ProcPlan, fds: ChildFds) -> ChildResult {
    // Before anything else: a process of the container must not be able to
    // open our /proc/PID/exe (the host's kiln) while we are still kiln.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    set_pdeathsig();
    reset_signals();
    finish_process(plan, fds)
}

/// Terminal, rlimits, user, fds, cwd, capabilities, seccomp, then execve.
fn finish_process(plan: &ProcPlan, fds: ChildFds) -> ChildResult {
    if plan.terminal {
        let (master, slave) = crate::pty::open_pty_inside().map_err(fail("terminal"))?;
        crate::pty::send_fd(fds.console, master.as_raw_fd()).map_err(fail("terminal"))?;
        drop(master);
        nix::unistd::setsid().map_err(fail("setsid"))?;
        // SAFETY: TIOCSCTTY takes an integer argument; slave is open.
        if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
            return Err((
                1,
                format!("set controlling terminal: {}", nix::Error::last()),
            ));
        }
        for n in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(slave.as_raw_fd(), n) };
        }
    } else {
        // Move the chosen descriptors out of the way first, so that a
        // source numbered 0..2 is not clobbered before it is copied.
        let mut tmp = [0; 3];
        for (i, fd) in fds.stdio.iter().enumerate() {
            // SAFETY: F_DUPFD_CLOEXEC on a descriptor we hold.
            tmp[i] = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10) };
            if tmp[i] < 0 {
                return Err((1, format!("stdio descriptor {fd}: {}", nix::Error::last())));
            }
        }
        for (i, fd) in tmp.iter().enumerate() {
            // SAFETY: dup2 onto the standard descriptors (clears CLOEXEC).
            unsafe { libc::dup2(*fd, i as RawFd) };
        }
    }
    // Wait for kiln to finish the host side (network, ports).
    let mut b = [0u8; 1];
    // SAFETY: read into a live one-byte buffer.
    if unsafe { libc::read(fds.go, b.as_mut_ptr().cast(), 1) } != 1 {
        // kiln gave up on us.
        // SAFETY: _exit in a forked child.
        unsafe { libc::_exit(1) };
    }
    for (res, soft, hard) in &plan.rlimits {
        let l = libc::rlimit {
            rlim_cur: *soft,
            rlim_max: *hard,
        };
        // SAFETY: setrlimit reads a struct we own.
        if unsafe { libc::setrlimit(*res as _, &l) } != 0 {
            return Err((1, format!("setrlimit {res}: {}", nix::Error::last())));
        }
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let user = crate::user::resolve(&plan.user, &passwd, &group, &plan.extra_gids)
        .map_err(|e| (1, e.to_string()))?;
    let mut env = plan.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    if plan.terminal && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    // Close everything kiln let us inherit before touching the working
    // directory: no host directory stays reachable as /proc/self/fd/N.
    // SAFETY: closing descriptor ranges; the error pipe (CLOEXEC) is kept
    // until execve closes it.
    unsafe {
        if fds.err > 3 {
            libc::close_range(3, (fds.err - 1) as u32, 0);
        }
        libc::close_range((fds.err + 1) as u32, u32::MAX, 0);
    }
    mounts::enter_cwd(&plan.cwd).map_err(|e| (1, e.to_string()))?;
    if plan.no_new_privs {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err((1, format!("no_new_privs: {}", nix::Error::last())));
        }
    }
    crate::caps::drop_bounding(&plan.caps).map_err(|e| (1, e.to_string()))?;
    // With no_new_privs off, loading a filter needs CAP_SYS_ADMIN: load it
    // while we still have it. Everything after this point is a syscall the
    // docker profile allows (setgroups, setres[ug]id, capset, execve).
    if let Some(f) = &plan.seccomp {
        f.load().map_err(|e| (1, e.to_string()))?;
    }
    let gids: Vec<nix::unistd::Gid> = user
        .additional_gids
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&gids).map_err(fail("setgroups"))?;
    let gid = nix::unistd::Gid::from_raw(user.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(fail("setgid"))?;
    let uid = nix::unistd::Uid::from_raw(user.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(fail("setuid"))?;
    crate::caps::set_process_caps(&plan.caps, user.uid == 0).map_err(|e| (1, e.to_string()))?;
    // SAFETY: umask has no failure mode.
    unsafe { libc::umask(0o022) };
    if plan.init {
        run_as_init(plan, &env, fds)
    } else {
        exec_program(&plan.args, &env)
    }
}

/// `--init`: PID 1 stays a tiny reaper (non-dumpable, so its kiln image
/// cannot be opened through /proc/1/exe) and forwards signals to the program.
fn run_as_init(plan: &ProcPlan, env: &[String], fds: ChildFds) -> ChildResult {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let all = nix::sys::signal::SigSet::all();
    let _ = all.thread_block();
    // SAFETY: single-threaded process (fork of a fork).
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err((1, format!("fork: {e}"))),
        Ok(ForkResult::Child) => {
            let _ = all.thread_unblock();
            exec_program(&plan.args, env)
        }
        Ok(ForkResult::Parent { child }) => {
            // SAFETY: closing our copies; the program holds its own.
            unsafe { libc::close_range(0, u32::MAX, 0) };
            let _ = fds;
            loop {
                let Ok(sig) = all.wait() else { continue };
                if sig == Signal::SIGCHLD {
                    loop {
                        match waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                            Ok(WaitStatus::Exited(p, c)) if p == child => unsafe_exit(c),
                            Ok(WaitStatus::Signaled(p, s, _)) if p == child => {
                                unsafe_exit(128 + s as i32)
                            }
                            Ok(WaitStatus::StillAlive) | Err(_) => break,
                            Ok(_) => continue,
                        }
                    }
                } else {
                    let _ = nix::sys::signal::kill(child, sig);
                }
            }
        }
    }
}

fn unsafe_exit(code: i32) -> ! {
    // SAFETY: _exit in a forked child.
    unsafe { libc::_exit(code) }
}

/// execve the program, searching the container's PATH as docker does.
fn exec_program(args: &[String], env: &[String]) -> ChildResult {
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let cenv: Vec<CString> = env
        .iter()
        .map(|e| CString::new(e.as_bytes()).unwrap_or_default())
        .collect();
    let prog = &args[0];
    let candidates: Vec<PathBuf> = if prog.contains('/') {
        vec![PathBuf::from(prog)]
    } else {
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(crate::spec::DEFAULT_PATH);
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(prog))
            .collect()
    };
    let mut denied = None;
    for c in &candidates {
        let cp = CString::new(c.as_os_str().as_encoded_bytes()).unwrap_or_default();
        let e = nix::unistd::execve(&cp, &cargs, &cenv).unwrap_err();
        match e {
            nix::Error::ENOENT | nix::Error::ENOTDIR if !prog.contains('/') => continue,
            nix::Error::EACCES if !prog.contains('/') => denied = Some(c.clone()),
            nix::Error::ENOENT => {
                return Err((
                    127,
                    format!("exec: \"{prog}\": stat {prog}: no such file or directory"),
                ))
            }
            nix::Error::EACCES => {
                return Err((126, format!("exec: \"{prog}\": permission denied")))
            }
            other => return Err((126, format!("exec: \"{}\": {other}", c.display()))),
        }
    }
    match denied {
        Some(c) => Err((126, format!("exec: \"{}\": permission denied", c.display()))),
        None => Err((
            127,
            format!("exec: \"{prog}\": executable file not found in $PATH"),
        )),
    }
}

/// What `kiln exec` runs in a running container.
#[derive(Debug)]
pub struct ExecSpec {
    /// The process (args, env, cwd, user, terminal, no_new_privileges).
    pub process: oci_spec::runtime::Process,
    /// Capabilities it keeps.
    pub capabilities: CapsHashSet,
    /// Apply the docker-default seccomp filter.
    pub seccomp: bool,
    /// Standard input.
    pub stdin: StdioSpec,
    /// Standard output.
    pub stdout: StdioSpec,
    /// Standard error.
    pub stderr: StdioSpec,
}

/// Runs a new process inside the running container whose PID 1 is `pid`
/// (host view, container id `id`): it joins the container's namespaces and
/// cgroups and gets the same confinement as the container's own process.
pub fn exec(id: &str, pid: i32, spec: ExecSpec) -> Result<Running> {
    let mut nss = Vec::new();
    // Order: mount last, because joining it changes our root and /proc.
    for (name, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let p = format!("/proc/{pid}/ns/{name}");
        let own = std::fs::read_link(format!("/proc/self/ns/{name}")).ok();
        let theirs = std::fs::read_link(&p).map_err(|e| Error::io(&p, e))?;
        if own.as_ref() == Some(&theirs) {
            continue; // e.g. --network host: already there
        }
        let f = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
        nss.push((OwnedFd::from(f), flag));
    }
    let cgroups = Cgroups::existing(id);
    let plan = proc_plan(
        &spec.process,
        &spec.capabilities,
        spec.seccomp,
        false,
        cgroups.procs_files(),
    )?;
    let (holder, cpid, master, go, err) = spawn(
        None,
        Some(&nss),
        &plan,
        &spec.stdin,
        &spec.stdout,
        &spec.stderr,
    )?;
    let running = Running {
        pid: cpid,
        holder,
        pty_master: master,
        ports: None,
        skipped_limits: Vec::new(),
        cgroups: Cgroups::default(),
        slirp: None,
        _locks: Vec::new(),
        reaped: false,
    };
    finish_start(running, Ok(()), go, err)
}
