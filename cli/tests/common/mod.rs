//! Helpers shared by the end-to-end tests.

#![allow(dead_code)] // each test binary uses its own subset

pub mod service;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// A busybox root filesystem made from Debian's busybox-static (as the
/// acceptance scripts make it), shared by every test binary and run: it lives
/// under the temp dir, named after the busybox it holds, and is made once
/// (into a temp name, then renamed) so that nothing is left per run.
pub fn rootfs() -> &'static Path {
    static ROOT: OnceLock<std::path::PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        let bin = std::fs::metadata("/bin/busybox").expect("busybox-static (scripts/deps.sh)");
        let dir = std::env::temp_dir().join(format!(
            "kiln-test-busybox-{}-{}-{}",
            bin.size(),
            bin.mtime(),
            bin.ino()
        ));
        if !dir.join("etc/group").exists() {
            let t = busybox_rootfs("kiln-test-busybox-new");
            // Another test binary may have won the race: then use its copy.
            if std::fs::rename(t.path(), &dir).is_ok() {
                std::mem::forget(t);
            }
        }
        dir
    })
}

/// kiln on a fresh `--root` of its own, with busybox:latest imported: the harness of the
/// `kiln build` tests.
pub struct Kiln {
    /// The store root, removed on drop.
    pub root: tempfile::TempDir,
}

impl Kiln {
    /// A fresh root with busybox:latest imported.
    pub fn new() -> Kiln {
        let k = Kiln {
            root: tempfile::Builder::new()
                .prefix("kiln-build-test")
                .tempdir()
                .unwrap(),
        };
        import_busybox(k.cmd(), "busybox:latest");
        k
    }

    /// `kiln --root ROOT`, to which a test adds its arguments.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.arg("--root").arg(self.root.path());
        c
    }

    /// `kiln build --progress=plain --network none ARGS CONTEXT`, with the output.
    pub fn build(&self, context: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
        self.build_with_stdin(context, args, None)
    }

    /// [`Kiln::build`] with `stdin` on its standard input (none: /dev/null).
    pub fn build_with_stdin(
        &self,
        context: impl AsRef<std::ffi::OsStr>,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Output {
        let mut child = self
            .cmd()
            .args(["build", "--progress=plain", "--network", "none"])
            .args(args)
            .arg(context)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(data) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            let data = data.to_vec();
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&data);
            });
        }
        child.wait_with_output().unwrap()
    }

    /// `kiln run --rm --network none IMAGE ARGS`, which must succeed; its stdout.
    pub fn run(&self, image: &str, args: &[&str]) -> String {
        let out = self
            .cmd()
            .args(["run", "--rm", "--network", "none", image])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", log(&out));
        String::from_utf8(out.stdout).unwrap()
    }
}

/// One machine: its own `--root` and an empty docker config, so no stored credentials or
/// registry settings of the host interfere (the registry and cache tests).
pub struct Machine {
    /// The store root.
    pub root: tempfile::TempDir,
    /// `DOCKER_CONFIG` (and the registries config, absent).
    pub config: tempfile::TempDir,
}

impl Machine {
    /// A fresh root and config.
    pub fn new() -> Machine {
        Machine {
            root: tempfile::Builder::new()
                .prefix("kiln-machine-root")
                .tempdir()
                .unwrap(),
            config: tempfile::tempdir().unwrap(),
        }
    }

    /// `kiln --root ROOT` in this machine's environment, stdin from /dev/null.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.arg("--root")
            .arg(self.root.path())
            .env("DOCKER_CONFIG", self.config.path())
            .env(
                "KILN_REGISTRIES_CONFIG",
                self.config.path().join("none.json"),
            )
            .env_remove("SOURCE_DATE_EPOCH")
            .stdin(Stdio::null());
        c
    }

    /// `kiln ARGS`, with its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// `kiln ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kiln {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A temp dir holding `files` (name, text), subdirectories made as needed.
pub fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("kiln-build-ctx")
        .tempdir()
        .unwrap();
    write_files(dir.path(), files);
    dir
}

/// Writes `files` (name, text) under `dir`, making subdirectories as needed.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// A command's stdout then stderr, for assertion messages and output checks.
pub fn log(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Imports [`rootfs`] as the image `name` with `kiln` (a command already given its `--root`
/// and environment): `tar -C ROOTFS -c . | kiln import - NAME`, as the acceptance scripts do.
pub fn import_busybox(mut kiln: Command, name: &str) {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs())
        .args(["-c", "."])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = kiln
        .args(["import", "-", name])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(tar.wait().unwrap().success());
    assert!(
        out.status.success(),
        "kiln import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new busybox root filesystem in a temp dir named `prefix...`, removed when dropped.
pub fn busybox_rootfs(prefix: &str) -> tempfile::TempDir {
    let t = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    make_rootfs(t.path());
    t
}

/// Fills the empty directory `r` with a busybox root filesystem.
pub fn make_rootfs(r: &Path) {
    for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev", "home"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", r.join("bin/busybox")).expect("busybox-static (scripts/deps.sh)");
    // Another test thread forking while the copy was open for writing holds that fd until it
    // execs; running the binary then fails with ETXTBSY for a moment.
    let list = (0..100)
        .find_map(
            |_| match Command::new(r.join("bin/busybox")).arg("--list").output() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                }
                other => Some(other.unwrap()),
            },
        )
        .expect("busybox stayed busy");
    for a in String::from_utf8_lossy(&list.stdout).lines() {
        let _ = std::os::unix::fs::symlink("busybox", r.join("bin").join(a));
    }
    std::fs::write(
        r.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    )
    .unwrap();
    std::fs::write(r.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// A running docker-registry (Debian's) on 127.0.0.1 with its storage in a temp dir,
/// killed on drop.
pub struct Registry {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The temp dir: `config.yml`, `log`, and the storage under `data/`.
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// A registry with no authentication.
    pub fn start() -> Registry {
        Registry::start_with(|_| String::new())
    }

    /// A registry whose config gets the YAML `extra` returns (given the temp dir), e.g. an
    /// `auth:` section.
    pub fn start_with(extra: impl FnOnce(&Path) -> String) -> Registry {
        use std::net::{TcpListener, TcpStream};
        use std::time::{Duration, Instant};
        let dir = tempfile::Builder::new()
            .prefix("kiln-test-registry")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{}",
            dir.path().join("data").display(),
            extra(dir.path())
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (scripts/deps.sh)");
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry { child, addr, dir }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
