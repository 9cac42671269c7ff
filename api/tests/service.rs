//! The service on a temporary socket and root, driven by raw HTTP and by the real docker
//! CLIs when they are installed (/usr/local/bin/docker 28.x, Debian's /usr/bin/docker 20.10).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use kiln_api::router::{Call, HandlerResult, Router};
use kiln_api::server::{serve_with, ServeOptions};

/// A service running on its own runtime thread; stopped and joined on drop.
struct Service {
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

async fn echo_json(call: Call) -> HandlerResult {
    let value: serde_json::Value = kiln_api::body::json(call.body).await?;
    Ok(kiln_api::json_response(StatusCode::OK, &value))
}

async fn echo_hijack(mut call: Call) -> HandlerResult {
    kiln_api::server::hijack(&mut call, |mut stream| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = [0u8; 64];
        if let Ok(n) = stream.read(&mut buf).await {
            let _ = stream
                .write_all(&kiln_api::stream::encode_frames(
                    kiln_api::stream::StdStream::Stdout,
                    &buf[..n],
                ))
                .await;
        }
        // Dropping the stream closes it: the client sees EOF.
    })
}

async fn slow(_call: Call) -> HandlerResult {
    tokio::time::sleep(Duration::from_millis(700)).await;
    Ok(kiln_api::json_response(StatusCode::OK, &"done"))
}

fn router() -> Router {
    let mut router = Router::api();
    router
        .route(Method::POST, "/test/json", |c| Box::pin(echo_json(c)))
        .route(Method::POST, "/test/{id}/attach", |c| {
            Box::pin(echo_hijack(c))
        })
        .route(Method::GET, "/test/slow", |c| Box::pin(slow(c)));
    router
}

impl Service {
    fn start(idle: Option<Duration>) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run/kiln.sock");
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let mut options = ServeOptions::new(&socket);
        options.idle = idle;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let engine = Arc::new(kiln_engine::Engine::new(root));
            rt.block_on(serve_with(options, engine, router(), async {
                let _ = stopped.await;
            }))
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "the service did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Service {
            socket,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    fn stop(&mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread.take().map_or(Ok(()), |t| t.join().unwrap())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// One request on a fresh connection: (status, headers, body).
fn request(socket: &Path, raw: &[u8]) -> (u16, String, String) {
    let mut conn = UnixStream::connect(socket).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer (and close) before it has read an over-limit body.
    let _ = conn.write_all(raw);
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    parse_response(&out)
}

fn parse_response(out: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn get(socket: &Path, path: &str) -> (u16, String, String) {
    request(
        socket,
        format!("GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn post_json(socket: &Path, body: &[u8]) -> (u16, String, String) {
    let mut raw = format!(
        "POST /v1.41/test/json HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    request(socket, &raw)
}

fn assert_alive(socket: &Path) {
    let (status, _, body) = get(socket, "/_ping");
    assert_eq!((status, body.as_str()), (200, "OK"));
}

#[test]
fn raw_requests_get_docker_shaped_answers() {
    let service = Service::start(None);
    let s = service.socket.as_path();

    let (status, head, body) = get(s, "/_ping");
    assert_eq!((status, body.as_str()), (200, "OK"));
    let head = head.to_ascii_lowercase();
    for want in [
        "api-version: 1.41",
        "ostype: linux",
        "docker-experimental: false",
        "cache-control: no-cache, no-store, must-revalidate",
        "pragma: no-cache",
    ] {
        assert!(head.contains(want), "{want} missing in {head}");
    }
    assert!(!head.contains("builder-version"), "{head}");
    let (status, _, body) = request(
        s,
        b"HEAD /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((status, body.as_str()), (200, ""));

    let (status, _, body) = get(s, "/v1.41/nope");
    assert_eq!(status, 404);
    assert_eq!(body.trim(), r#"{"message":"page not found"}"#);
    assert_alive(s);

    let (status, _, body) = get(s, "/v1.99/version");
    assert_eq!(status, 400);
    assert_eq!(
        body.trim(),
        r#"{"message":"client version 1.99 is too new. Maximum supported API version is 1.41"}"#
    );
    let (status, _, body) = get(s, "/v1.12/version");
    assert_eq!(status, 400);
    assert!(
        body.contains("is too old. Minimum supported API version is 1.24"),
        "{body}"
    );
    assert_alive(s);

    let (status, _, body) = post_json(s, br#"{"Image": "busybox""#);
    assert_eq!(status, 400);
    assert!(body.contains(r#""message":"invalid JSON: "#), "{body}");
    assert_alive(s);
    let (status, _, body) = post_json(s, br#"{"Image":"busybox"}"#);
    assert_eq!((status, body.trim()), (200, r#"{"Image":"busybox"}"#));

    let big = vec![b' '; (1 << 20) + 1];
    let (status, _, body) = post_json(s, &big);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("message"), "{body}");
    assert_alive(s);

    let (status, _, body) = get(s, "/version");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ApiVersion"], "1.41");
    assert_eq!(v["MinAPIVersion"], "1.24");
    assert_eq!(v["Platform"]["Name"], "kiln");
    assert_eq!(v["Os"], "linux");

    let (status, _, body) = get(s, "/v1.41/info");
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["OSType"], "linux");
    assert_eq!(info["Images"], 0);
    assert!(info["NCPU"].as_u64().unwrap() >= 1);
    assert!(info["MemTotal"].as_u64().unwrap() > 0);
    assert!(info["DockerRootDir"].as_str().unwrap().ends_with("/root"));
}

#[test]
fn keep_alive_and_hijack() {
    let service = Service::start(None);
    let mut conn = UnixStream::connect(&service.socket).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Two requests on one connection.
    for _ in 0..2 {
        conn.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("\r\n\r\nOK"), "{text}");
    }
    // Then an upgrade on the same connection (as the 20.10 CLI sends it: empty Host).
    conn.write_all(
        b"POST /v1.41/test/abc/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: \r\n\
          Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(conn.read(&mut byte).unwrap(), 1, "EOF in the 101's headers");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101 upgraded\r\n"), "{head}");
    assert!(
        head.contains("content-type: application/vnd.docker.raw-stream"),
        "{head}"
    );
    assert!(head.contains("upgrade: tcp"), "{head}");
    conn.write_all(b"hi\n").unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n");
    assert_alive(&service.socket);
}

#[test]
fn idle_exit_removes_the_socket() {
    let mut service = Service::start(Some(Duration::from_millis(600)));
    let t0 = Instant::now();
    // A connection held open keeps the service up past its idle time.
    let held = UnixStream::connect(&service.socket).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert_alive(&service.socket);
    drop(held);
    let thread = service.thread.take().unwrap();
    thread.join().unwrap().unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(1800));
    assert!(!service.socket.exists(), "the socket was not removed");
}

#[test]
fn a_second_service_on_a_live_socket_is_refused() {
    let service = Service::start(None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let engine = Arc::new(kiln_engine::Engine::new(service._dir.path().join("root")));
    let err = rt
        .block_on(kiln_api::serve(
            ServeOptions::new(&service.socket),
            engine,
            async {},
        ))
        .unwrap_err();
    assert!(
        err.to_string().contains("in use by a running service"),
        "{err}"
    );
    assert_alive(&service.socket);
}

/// `docker version` and `docker info` through each installed CLI.
#[test]
fn docker_clis_read_version_and_info() {
    let service = Service::start(None);
    let host = format!("unix://{}", service.socket.display());
    let config = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for cli in ["/usr/local/bin/docker", "/usr/bin/docker"] {
        if !Path::new(cli).exists() {
            eprintln!("skipping {cli}: not installed");
            continue;
        }
        ran += 1;
        let docker = |args: &[&str]| {
            let out = Command::new(cli)
                .args(args)
                .env("DOCKER_HOST", &host)
                .env("DOCKER_CONFIG", config.path())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{cli} {args:?}: {stdout}{stderr}");
            stdout
        };
        let version = docker(&["version"]);
        assert!(version.contains("Server: kiln"), "{cli}: {version}");
        let api = docker(&[
            "version",
            "--format",
            "{{.Server.APIVersion}} {{.Server.Version}}",
        ]);
        assert_eq!(
            api.trim(),
            format!("1.41 {}", env!("CARGO_PKG_VERSION")),
            "{cli}"
        );
        let info = docker(&[
            "info",
            "--format",
            "{{.OSType}} {{.ServerVersion}} {{.Images}} {{.Driver}}",
        ]);
        assert_eq!(
            info.trim(),
            format!("linux {} 0 overlay", env!("CARGO_PKG_VERSION")),
            "{cli}"
        );
        docker(&["info"]);
    }
    if ran == 0 {
        eprintln!("skipping: no docker CLI installed");
    }
    assert_alive(&service.socket);
}

#[test]
fn a_shutdown_lets_the_request_in_flight_finish() {
    let mut service = Service::start(None);
    let socket = service.socket.clone();
    let in_flight = std::thread::spawn(move || get(&socket, "/test/slow"));
    std::thread::sleep(Duration::from_millis(200));
    service.stop().unwrap();
    let (status, _, body) = in_flight.join().unwrap();
    assert_eq!((status, body.trim()), (200, "\"done\""));
    assert!(
        UnixStream::connect(&service.socket).is_err(),
        "still accepting"
    );
    assert!(!service.socket.exists());
}

#[test]
fn many_idle_connections_do_not_block_new_ones() {
    let service = Service::start(None);
    // Each connection costs two descriptors here (client and server in one process).
    let idle: Vec<UnixStream> = (0..400)
        .map(|_| UnixStream::connect(&service.socket).unwrap())
        .collect();
    let t0 = Instant::now();
    assert_alive(&service.socket);
    assert!(t0.elapsed() < Duration::from_secs(2));
    drop(idle);
    assert_alive(&service.socket);
}
