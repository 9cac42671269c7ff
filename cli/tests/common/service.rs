//! `kiln system service` on a temp socket over a fresh root with busybox imported, for the
//! tests that drive it with real Engine API clients.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::Kiln;

/// The docker CLI 28 where this machine has it.
pub const DOCKER: &str = "/usr/local/bin/docker";

/// The service; stopped on drop.
pub struct Service {
    /// Its root (busybox:latest imported).
    pub kiln: Kiln,
    /// Its socket.
    pub socket: PathBuf,
    /// A `DOCKER_CONFIG` of its own.
    pub config: tempfile::TempDir,
    child: Child,
}

impl Service {
    /// The service, when `client` (a program the test needs) is installed; else a note and `None`.
    pub fn start_for(client: &str) -> Option<Service> {
        if !Path::new(client).exists() {
            eprintln!("note: {client} is not installed: these checks are skipped");
            return None;
        }
        Some(Service::start())
    }

    /// The service.
    pub fn start() -> Service {
        let kiln = Kiln::new();
        let socket = kiln.root.path().join("kiln.sock");
        let child = kiln
            .cmd()
            .args(["system", "service", "--time", "0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "the service did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Service {
            kiln,
            socket,
            config: tempfile::tempdir().unwrap(),
            child,
        }
    }

    /// `DOCKER_HOST` for clients.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// A client command with `DOCKER_HOST` and `DOCKER_CONFIG` set, under a 60 s timeout.
    pub fn client(&self, program: &str) -> Command {
        let mut c = Command::new("timeout");
        c.arg("120")
            .arg(program)
            .env("DOCKER_HOST", self.docker_host())
            .env("DOCKER_CONFIG", self.config.path())
            .stdin(Stdio::null());
        c
    }

    /// The docker CLI 28 against the service.
    pub fn docker(&self) -> Command {
        self.client(DOCKER)
    }

    /// `docker ARGS`, with its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.docker().args(args).output().unwrap()
    }

    /// One raw HTTP/1.1 request; the status line and body.
    pub fn http(&self, method: &str, path: &str, body: &str) -> (String, String) {
        let mut s = UnixStream::connect(&self.socket).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (
            head.lines().next().unwrap_or("").to_string(),
            body.to_string(),
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
