//! The service on a temporary socket and root with busybox imported, and the clients that
//! drive it: the docker CLI 28 and raw HTTP.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_api::router::Router;
use kiln_api::server::{serve_with, ServeOptions};
use kiln_engine::images::RootfsSource;

pub const DOCKER: &str = "/usr/local/bin/docker";

/// The service on its own runtime thread, with busybox:latest in its root.
pub struct Service {
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
    config: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

/// A busybox root filesystem: the static binary and a link per applet.
pub fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["etc", "tmp", "root", "proc", "sys", "dev"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static (scripts/deps.sh)");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = bin.join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

impl Service {
    pub fn start() -> Service {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("kiln.sock");
        let root = dir.path().join("root");
        let rootfs = dir.path().join("busybox");
        busybox_rootfs(&rootfs);
        let engine = Arc::new(kiln_engine::Engine::new(&root));
        engine
            .import_rootfs(RootfsSource::Directory(rootfs), "busybox:latest", None)
            .unwrap();
        let options = ServeOptions::new(&socket);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(serve_with(options, engine, Router::api(), async {
                let _ = stopped.await;
            }))
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "the service did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let config = tempfile::tempdir().unwrap();
        std::fs::write(config.path().join("config.json"), "{}").unwrap();
        Service {
            socket,
            dir,
            config,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The docker CLI on this service, with `stdin` as its standard input.
    pub fn docker_with(&self, args: &[&str], stdin: Option<&Path>) -> Output {
        let mut cmd = Command::new(DOCKER);
        cmd.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.config.path())
            .env_remove("DOCKER_BUILDKIT")
            .env_remove("DOCKER_CONTEXT");
        match stdin {
            Some(p) => cmd.stdin(std::fs::File::open(p).unwrap()),
            None => cmd.stdin(Stdio::null()),
        };
        cmd.output().unwrap()
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_with(args, None)
    }

    /// The docker CLI, which must succeed; its standard output.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(out.status.success(), "docker {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// One request on a fresh connection: (status, body as text).
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let (status, bytes) = self.request_bytes(method, path, body);
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// One request on a fresh connection: (status, body).
    pub fn request_bytes(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let mut conn = UnixStream::connect(&self.socket).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        let _ = conn.write_all(body);
        let mut out = Vec::new();
        let _ = conn.read_to_end(&mut out);
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(out.len());
        let head = String::from_utf8_lossy(&out[..split]).to_ascii_lowercase();
        let body = out.get(split + 4..).unwrap_or_default();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = if head.contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_vec()
        };
        (status, body)
    }

    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, body) = self.request("GET", path, b"");
        let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        (status, value)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A chunked body's payload.
pub fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&body[..end]);
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let rest = &body[end + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        body = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// Whether the docker CLI is installed; the tests that need it say so when it is not.
pub fn have_docker() -> bool {
    let there = Path::new(DOCKER).exists();
    if !there {
        eprintln!("skipping: no docker CLI at {DOCKER}");
    }
    there
}

/// A tar holding `files` (name, content).
pub fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, content.as_bytes())
            .unwrap();
    }
    tar.into_inner().unwrap()
}

/// The JSON lines of a stream.
pub fn lines(body: &str) -> Vec<serde_json::Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
