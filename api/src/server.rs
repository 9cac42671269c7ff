//! The service: a unix socket, one tokio task per connection (no thread per connection),
//! HTTP/1.1 with keep-alive and upgrades through hyper, an idle exit, and a drain on
//! SIGTERM/SIGINT.
//!
//! **The socket is root-equivalent**: whoever can write to it can run anything as the
//! service's user. It is made with mode 0660 (owner and group only).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::os::fd::FromRawFd;

use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::query::Query;
use crate::router::{strip_version, Call, HandlerResult, Router};
use crate::Body;

/// How long the idle timeout is when `--time` is not given (podman's default).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(5);
/// How long a client may take to send a request's headers (slowloris bound; also closes
/// idle keep-alive connections).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long running requests may go on after SIGTERM/SIGINT before the service exits anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The socket's path.
    pub socket: PathBuf,
    /// Exit after this long with no open connection; `None` never.
    pub idle: Option<Duration>,
    /// The bound on finishing running requests after a shutdown signal.
    pub drain: Duration,
    /// The bound on reading a request's headers.
    pub header_read_timeout: Duration,
}

impl ServeOptions {
    /// Options for `socket` with the defaults.
    pub fn new(socket: impl Into<PathBuf>) -> ServeOptions {
        ServeOptions {
            socket: socket.into(),
            idle: Some(DEFAULT_IDLE),
            drain: DRAIN_TIMEOUT,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }

    /// Options from the CLI's arguments: an optional `unix:///path` (or plain path) and
    /// `--time` seconds (0 = never exit when idle).
    pub fn from_args(uri: Option<&str>, idle_seconds: u64) -> io::Result<ServeOptions> {
        let socket = match uri {
            Some(uri) => socket_path(uri)?,
            None => default_socket(),
        };
        let mut options = ServeOptions::new(socket);
        options.idle = (idle_seconds > 0).then(|| Duration::from_secs(idle_seconds));
        Ok(options)
    }
}

/// The default socket: `/run/kiln/kiln.sock` as root, `$XDG_RUNTIME_DIR/kiln/kiln.sock`
/// otherwise (`/tmp/kiln-UID/kiln.sock` without XDG_RUNTIME_DIR).
pub fn default_socket() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/kiln/kiln.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join("kiln/kiln.sock"),
        _ => PathBuf::from(format!("/tmp/kiln-{uid}/kiln.sock")),
    }
}

/// The socket path in `unix:///path` (or a plain path); other schemes are refused.
pub fn socket_path(uri: &str) -> io::Result<PathBuf> {
    if let Some(path) = uri.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{uri}: no socket path"),
            ));
        }
        return Ok(PathBuf::from(path));
    }
    if uri.contains("://") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{uri}: only unix:// sockets are supported"),
        ));
    }
    Ok(PathBuf::from(uri))
}

/// Counts open connections (hijacked streams included) and when the count last changed.
pub struct Tracker {
    state: watch::Sender<(usize, Instant)>,
}

/// One open connection; dropping it closes it in the count.
pub struct ConnectionGuard {
    tracker: Arc<Tracker>,
}

impl Tracker {
    fn new() -> Arc<Tracker> {
        Arc::new(Tracker {
            state: watch::Sender::new((0, Instant::now())),
        })
    }

    fn enter(self: &Arc<Tracker>) -> ConnectionGuard {
        self.state
            .send_modify(|(open, at)| (*open, *at) = (*open + 1, Instant::now()));
        ConnectionGuard {
            tracker: self.clone(),
        }
    }

    /// Resolves once no connection has been open for `idle`.
    async fn idle_for(&self, idle: Duration) {
        let mut rx = self.state.subscribe();
        loop {
            let (open, at) = *rx.borrow_and_update();
            if open == 0 {
                let deadline = at + idle;
                if Instant::now() >= deadline {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = rx.changed() => {}
                }
            } else if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Resolves once a connection is open.
    async fn busy(&self) {
        let mut rx = self.state.subscribe();
        while rx.borrow_and_update().0 == 0 {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Resolves once no connection is open.
    async fn drained(&self) {
        let mut rx = self.state.subscribe();
        while rx.borrow_and_update().0 > 0 {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.tracker
            .state
            .send_modify(|(open, at)| (*open, *at) = (open.saturating_sub(1), Instant::now()));
    }
}

/// Gives the allocator's free memory back to the system whenever the service has had no
/// connection for a second: glibc keeps what a build, a pull or a save freed for reuse, and
/// an idle service should be small (measured: 34 MiB after bench/engine-api.sh without this).
async fn trim_when_idle(tracker: Arc<Tracker>) {
    loop {
        tracker.idle_for(Duration::from_secs(1)).await;
        // SAFETY: malloc_trim has no preconditions; it only returns free pages.
        unsafe { libc::malloc_trim(0) };
        release_code_pages();
        tracker.busy().await;
    }
}

/// Drops the idle service's hold on the kiln binary's code pages. One binary serves every
/// command, so a service that ran a build and a few containers has touched most of its
/// ~14 MiB of code, all of it counted in its RSS for as long as it lives (measured: 13.7 of
/// 18 MiB after bench/engine-api.sh). The pages stay in the page cache; the next request
/// maps back the ones it runs, with minor faults.
fn release_code_pages() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for (start, end) in executable_ranges(&maps, &exe.to_string_lossy()) {
        // SAFETY: the range is a whole mapping of our own executable that is mapped
        // executable and never writable (r-xp): its pages are clean copies of the file, so
        // MADV_DONTNEED only unmaps them and the next access reads them back unchanged.
        // Writable or relocated mappings (data, RELRO) are never passed here: dropping those
        // would lose what was written to them.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// The `r-xp` mappings of the file `exe` in a `/proc/PID/maps` text.
fn executable_ranges(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            let path = f.nth(3)?;
            if perms != "r-xp" || path != exe {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

/// What every connection shares.
struct Shared {
    engine: Arc<kiln_engine::Engine>,
    router: Router,
    tracker: Arc<Tracker>,
}

/// Serves the Engine API on `options.socket` until `shutdown` resolves or the idle timeout
/// passes, then drains and removes the socket.
pub async fn serve(
    options: ServeOptions,
    engine: Arc<kiln_engine::Engine>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_with(options, engine, Router::api(), shutdown).await
}

/// [`serve`] with a route table of the caller's (tests).
pub async fn serve_with(
    options: ServeOptions,
    engine: Arc<kiln_engine::Engine>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    // A socket systemd made and passed (socket activation) is not ours to remove at exit.
    let (listener, inode) = match activated_listener()? {
        Some(listener) => (listener, 0),
        None => bind(&options.socket)?,
    };
    let shared = Arc::new(Shared {
        engine,
        router,
        tracker: Tracker::new(),
    });
    let trimmer = tokio::spawn(trim_when_idle(shared.tracker.clone()));
    let (drain_tx, drain_rx) = watch::channel(false);
    let idle = {
        let tracker = shared.tracker.clone();
        let idle = options.idle;
        async move {
            match idle {
                Some(idle) => tracker.idle_for(idle).await,
                None => std::future::pending().await,
            }
        }
    };
    tokio::pin!(idle, shutdown);
    let result = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let guard = shared.tracker.enter();
                    let shared = shared.clone();
                    let drain = drain_rx.clone();
                    let header_timeout = options.header_read_timeout;
                    tokio::spawn(async move {
                        let _guard = guard;
                        connection(stream, shared, drain, header_timeout).await;
                    });
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(e) if is_transient(&e) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => break Err(io::Error::new(e.kind(), format!("accepting on {}: {e}", options.socket.display()))),
            },
            _ = &mut idle => break Ok(()),
            _ = &mut shutdown => break Ok(()),
        }
    };
    trimmer.abort();
    drop(listener);
    remove_socket(&options.socket, inode);
    let _ = drain_tx.send(true);
    let _ = tokio::time::timeout(options.drain, shared.tracker.drained()).await;
    result
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::ECONNABORTED)
    )
}

/// One connection: HTTP/1.1, keep-alive, upgrades; on drain, finish the request in flight
/// and close.
async fn connection(
    stream: tokio::net::UnixStream,
    shared: Arc<Shared>,
    mut drain: watch::Receiver<bool>,
    header_timeout: Duration,
) {
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = drain.wait_for(|draining| *draining) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Answers one request: version prefix, route, handler, docker's headers.
async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let mut response = match route(shared, parts, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(
        "api-version",
        header::HeaderValue::from_static(crate::API_VERSION),
    );
    headers.insert("ostype", header::HeaderValue::from_static("linux"));
    headers.insert(
        "docker-experimental",
        header::HeaderValue::from_static("false"),
    );
    headers.insert(
        header::SERVER,
        header::HeaderValue::from_static(concat!("kiln/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    response
}

async fn route(
    shared: &Shared,
    parts: hyper::http::request::Parts,
    body: Incoming,
) -> HandlerResult {
    let (version, path) = strip_version(parts.uri.path())?;
    let (handler, params) = shared.router.find(&parts.method, path)?;
    let query = Query::parse(parts.uri.query().unwrap_or(""));
    handler(Call {
        engine: shared.engine.clone(),
        parts,
        params,
        query,
        body,
        version,
        tracker: shared.tracker.clone(),
    })
    .await
}

/// A hijacked connection: the raw duplex stream after `101 UPGRADED` (bytes the client sent
/// early included).
pub type Hijacked = TokioIo<Upgraded>;

/// Answers `101 UPGRADED` (`Content-Type: application/vnd.docker.raw-stream`,
/// `Connection: Upgrade`, `Upgrade: tcp`) and runs `serve` on the raw stream once hyper has
/// handed it over. The stream counts as an open connection until `serve` returns; close
/// it (drop it) when the container exits: the CLI waits for EOF.
pub fn hijack<F, Fut>(call: &mut Call, serve: F) -> HandlerResult
where
    F: FnOnce(Hijacked) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let on_upgrade = call.parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
        ApiError::bad_request("this request must upgrade the connection (Upgrade: tcp)")
    })?;
    let guard = call.tracker.enter();
    tokio::spawn(async move {
        let _guard = guard;
        if let Ok(upgraded) = on_upgrade.await {
            serve(TokioIo::new(upgraded)).await;
        }
    });
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONTENT_TYPE, "application/vnd.docker.raw-stream")
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(crate::empty())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    response
        .extensions_mut()
        .insert(hyper::ext::ReasonPhrase::from_static(b"UPGRADED"));
    Ok(response)
}

/// The listening socket systemd passed, if this process was socket-activated
/// (`LISTEN_PID` is this process and `LISTEN_FDS` at least 1: the socket is descriptor 3, as
/// sd_listen_fds(3) has it). Written here rather than taken from a crate: it is these few
/// checks, and the crates that do it pull in libsystemd.
fn activated_listener() -> io::Result<Option<UnixListener>> {
    const FIRST_FD: i32 = 3;
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    if !ours || count == 0 {
        return Ok(None);
    }
    // Not for the processes this one starts (containers' supervisors).
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a stat we own; a bad descriptor just fails.
    let is_socket = unsafe { libc::fstat(FIRST_FD, stat.as_mut_ptr()) } == 0
        // SAFETY: fstat succeeded, so it filled the struct.
        && unsafe { stat.assume_init() }.st_mode & libc::S_IFMT == libc::S_IFSOCK;
    if !is_socket {
        return Err(io::Error::other(
            "LISTEN_FDS is set but descriptor 3 is not a socket (check the .socket unit)",
        ));
    }
    // SAFETY: systemd handed this process descriptor 3, a listening socket, to own; nothing
    // else in kiln uses it.
    let std_listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(FIRST_FD) };
    // SAFETY: setting FD_CLOEXEC on our own descriptor.
    unsafe { libc::fcntl(FIRST_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    std_listener.set_nonblocking(true)?;
    UnixListener::from_std(std_listener).map(Some)
}

/// Binds the socket: makes the parent directory, replaces a stale socket, refuses one a
/// live server answers on, and sets mode 0660. Returns the listener and the socket's inode.
fn bind(path: &Path) -> io::Result<(UnixListener, u64)> {
    let shown = path.display();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", parent.display())))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{shown} exists and is not a socket"),
            ));
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{shown} is in use by a running service (stop it first)"),
                ));
            }
            // Nobody listens: a socket left by a service that crashed.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(|e| {
                    io::Error::new(e.kind(), format!("removing the stale socket {shown}: {e}"))
                })?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io::Error::new(e.kind(), format!("probing {shown}: {e}")));
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io::Error::new(e.kind(), format!("{shown}: {e}"))),
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("binding {shown}: {e}")))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| io::Error::new(e.kind(), format!("setting the mode of {shown}: {e}")))?;
    let inode = std::fs::symlink_metadata(path)
        .map(|m| m.ino())
        .unwrap_or(0);
    Ok((listener, inode))
}

/// Removes the socket if it is still ours (another service may have replaced it).
fn remove_socket(path: &Path, inode: u64) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == inode) {
        let _ = std::fs::remove_file(path);
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // No signal handling: never resolve rather than exit at once.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Runs the service on its own runtime until SIGTERM/SIGINT or the idle timeout.
pub fn run(options: ServeOptions, engine: Arc<kiln_engine::Engine>) -> io::Result<()> {
    // Big buffers (a build's or a save's) come from mmap and go back at free: glibc's
    // default raises this threshold after the first big free, and then keeps such buffers
    // in its arenas for good, which a long-lived service pays for in RSS.
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kiln-api")
        .build()?;
    let result = runtime.block_on(serve(options, engine, shutdown_signal()));
    // Blocking engine work still running (a build) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_code_mappings_are_released() {
        let maps = "\
55d0a0000000-55d0a0100000 r--p 00000000 fd:00 12 /usr/bin/kiln
55d0a0100000-55d0a0f00000 r-xp 00100000 fd:00 12 /usr/bin/kiln
55d0a0f00000-55d0a1000000 r--p 00f00000 fd:00 12 /usr/bin/kiln
55d0a1000000-55d0a1010000 rw-p 01000000 fd:00 12 /usr/bin/kiln
7f0000000000-7f0000100000 r-xp 00000000 fd:00 34 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
";
        assert_eq!(
            executable_ranges(maps, "/usr/bin/kiln"),
            [(0x55d0a0100000, 0x55d0a0f00000)]
        );
        // Really run it: the process goes on working afterwards.
        release_code_pages();
        assert_eq!(
            socket_path("/tmp/k.sock").unwrap(),
            Path::new("/tmp/k.sock")
        );
    }

    #[test]
    fn socket_uris() {
        assert_eq!(
            socket_path("unix:///tmp/k.sock").unwrap(),
            Path::new("/tmp/k.sock")
        );
        assert_eq!(
            socket_path("/tmp/k.sock").unwrap(),
            Path::new("/tmp/k.sock")
        );
        assert!(socket_path("tcp://127.0.0.1:2375").is_err());
        assert!(socket_path("unix://").is_err());
        let o = ServeOptions::from_args(Some("unix:///x/y.sock"), 0).unwrap();
        assert_eq!(o.idle, None);
        assert_eq!(o.socket, Path::new("/x/y.sock"));
        let o = ServeOptions::from_args(None, 3).unwrap();
        assert_eq!(o.idle, Some(Duration::from_secs(3)));
    }

    #[test]
    fn a_regular_file_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.sock");
        std::fs::write(&path, "keep").unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let err = rt.block_on(async { bind(&path).map(|_| ()).unwrap_err() });
        assert!(err.to_string().contains("is not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep");
    }

    #[tokio::test]
    async fn stale_sockets_are_replaced_and_live_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/k.sock");
        let (live, _) = bind(&path).unwrap();
        let err = bind(&path).map(|_| ()).unwrap_err();
        assert!(
            err.to_string().contains("in use by a running service"),
            "{err}"
        );
        drop(live); // the file stays: a stale socket now
        assert!(path.exists());
        let (_listener, _) = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_no_open_connection() {
        let tracker = Tracker::new();
        let guard = tracker.enter();
        let idle = tracker.idle_for(Duration::from_secs(3));
        tokio::pin!(idle);
        // Open for 10 s: never idle.
        assert!(tokio::time::timeout(Duration::from_secs(10), idle.as_mut())
            .await
            .is_err());
        drop(guard);
        let t0 = tokio::time::Instant::now();
        idle.await;
        assert!(t0.elapsed() >= Duration::from_secs(3));
        assert_eq!(tracker.state.borrow().0, 0);
    }
}
