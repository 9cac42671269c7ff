//! Test helpers: a busybox rootfs made from Debian's busybox-static (as
//! the acceptance scripts make it) plus a static escape helper, and a way to
//! run a container on it and capture its output. Tests run as root.

#![allow(dead_code)]

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kiln_executor::spec::{ContainerSpec, Rootfs, StdioSpec};

/// The shared read-only busybox rootfs (built once per test binary).
pub fn busybox_rootfs() -> &'static Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| {
        let t = tempfile::Builder::new().prefix("kiln-test-rootfs").tempdir().unwrap();
        let r = t.path();
        for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev", "home"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", r.join("bin/busybox")).expect("busybox-static is installed (scripts/deps.sh)");
        let list = Command::new(r.join("bin/busybox")).arg("--list").output().unwrap();
        for a in String::from_utf8_lossy(&list.stdout).lines() {
            let p = r.join("bin").join(a);
            if !p.exists() {
                std::os::unix::fs::symlink("busybox", p).unwrap();
            }
        }
        std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nalice:x:1000:1000:alice:/home/alice:/bin/sh\n").unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\nnogroup:x:65534:\nalice:x:1000:\nstaff:x:50:alice\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(r.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::set_permissions(r, std::fs::Permissions::from_mode(0o755)).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/escape_helper.c");
        let st = Command::new("cc").args(["-static", "-O1", "-o"]).arg(r.join("bin/escape")).arg(&src).status().expect("a C compiler (build-essential)");
        assert!(st.success(), "building the escape helper failed");
        t
    })
    .path()
}

/// A container on an overlay of the busybox rootfs (the rootfs stays untouched).
pub struct Sandbox {
    /// Holds upper, work and the state dir; removed on drop.
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    /// A fresh sandbox directory.
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("kiln-test-ct")
                .tempdir()
                .unwrap(),
        }
    }

    /// The overlay upper directory (what the container wrote).
    pub fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }

    /// A spec running `args` with stdout/stderr to be captured.
    pub fn spec(&self, args: &[&str]) -> ContainerSpec {
        let upper = self.upper();
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let id = format!("t{}", &kiln_executor::state::new_id()[..15]);
        ContainerSpec::new(
            id,
            Rootfs::Overlay {
                lowers: vec![busybox_rootfs().to_path_buf()],
                upper,
                work,
            },
            args.iter().map(|s| s.to_string()).collect(),
            self.dir.path().join("state"),
        )
    }
}

/// What a finished container printed.
#[derive(Debug)]
pub struct Output {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
}

/// Runs `spec` to completion, capturing stdout and stderr through pipes.
pub fn run(mut spec: ContainerSpec) -> kiln_executor::Result<Output> {
    let (or, ow) = pipe();
    let (er, ew) = pipe();
    spec.stdout = StdioSpec::Fd(ow);
    spec.stderr = StdioSpec::Fd(ew);
    let running = kiln_executor::launch::start(spec)?;
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        std::fs::File::from(er).read_to_string(&mut s).ok();
        s
    });
    let mut stdout = String::new();
    std::fs::File::from(or).read_to_string(&mut stdout).ok();
    let code = running.wait()?;
    Ok(Output {
        code,
        stdout,
        stderr: t.join().unwrap(),
    })
}

/// Runs `args` in a fresh sandbox with the default spec.
pub fn sh(script: &str) -> Output {
    let sb = Sandbox::new();
    run(sb.spec(&["sh", "-c", script])).unwrap()
}

/// Lines of the host's mount table mentioning `needle`.
pub fn host_mounts_with(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}
