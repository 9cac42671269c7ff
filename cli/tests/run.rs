//! `kiln run` and friends end to end, as root, on a busybox rootfs made from
//! Debian's busybox-static: docker's flags and exit codes, detached
//! containers, and no process, mount or state left after kiln is SIGKILLed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::rootfs;

struct Kiln {
    root: tempfile::TempDir,
}

impl Drop for Kiln {
    /// A failing test must not leave a detached container running.
    fn drop(&mut self) {
        let ids = self.run(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.run(&["rm", "-f", id]);
        }
    }
}

impl Kiln {
    fn new() -> Kiln {
        Kiln {
            root: tempfile::Builder::new()
                .prefix("kiln-cli-root")
                .tempdir()
                .unwrap(),
        }
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.arg("--root").arg(self.root.path());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.args(args).stdin(Stdio::null());
        c.output().unwrap()
    }
    fn path(&self) -> PathBuf {
        self.root.path().to_path_buf()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn rfs() -> String {
    rootfs().display().to_string()
}

#[test]
fn run_composes_image_config_and_flags_like_docker() {
    let k = Kiln::new();
    let cfg = k.path().join("config.json");
    std::fs::write(&cfg, r#"{"config":{"Entrypoint":["/bin/echo","ep"],"Cmd":["default"],"Env":["A=1","PATH=/bin"],"WorkingDir":"/srv","User":"nobody"}}"#).unwrap();
    let c = cfg.display().to_string();
    let o = k.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--image-config",
        &c,
        "--rootfs",
        &rfs(),
    ]);
    assert_eq!(stdout(&o), "ep default\n", "{o:?}");
    let o = k.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--image-config",
        &c,
        "--rootfs",
        &rfs(),
        "x",
    ]);
    assert_eq!(stdout(&o), "ep x\n");
    let o = k.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--image-config",
        &c,
        "--entrypoint",
        "sh",
        "--rootfs",
        &rfs(),
        "-c",
        "echo $A:$(pwd):$(id -u)",
    ]);
    assert_eq!(stdout(&o), "1:/srv:65534\n", "{o:?}");
    let o = k.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-e",
        "A=2",
        "-u",
        "0",
        "-w",
        "/tmp",
        "--image-config",
        &c,
        "--entrypoint",
        "",
        "--rootfs",
        &rfs(),
        "sh",
        "-c",
        "echo $A:$(pwd):$(id -u)",
    ]);
    assert_eq!(stdout(&o), "2:/tmp:0\n", "{o:?}");
}

#[test]
fn exit_codes_follow_docker() {
    let k = Kiln::new();
    let o = k.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--rootfs",
        &rfs(),
        "sh",
        "-c",
        "exit 42",
    ]);
    assert_eq!(o.status.code(), Some(42));
    let o = k.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--rootfs",
        &rfs(),
        "nonexistent-cmd",
    ]);
    assert_eq!(o.status.code(), Some(127), "{o:?}");
    // (a PID 1 cannot be SIGKILLed from inside its namespace: with --init the program is not PID 1)
    let o = k.run(&[
        "run",
        "--rm",
        "--init",
        "--network",
        "none",
        "--rootfs",
        &rfs(),
        "sh",
        "-c",
        "kill -9 $$",
    ]);
    assert_eq!(o.status.code(), Some(137), "{o:?}");
    let o = k.run(&[
        "run",
        "--rm",
        "--network",
        "bogus",
        "--rootfs",
        &rfs(),
        "true",
    ]);
    // docker's code for a run refused before its program starts.
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    // --rm left nothing behind
    let left: Vec<_> = std::fs::read_dir(k.path().join("containers"))
        .unwrap()
        .flatten()
        .map(|e| {
            std::fs::read_to_string(e.path().join("state.json")).unwrap_or_else(|_| {
                format!(
                    "{:?}",
                    std::fs::read_dir(e.path())
                        .map(|d| d.flatten().map(|x| x.file_name()).collect::<Vec<_>>())
                )
            })
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn state(k: &Kiln, name: &str) -> Option<serde_json::Value> {
    for e in std::fs::read_dir(k.path().join("containers"))
        .ok()?
        .flatten()
    {
        if let Ok(text) = std::fs::read(e.path().join("state.json")) {
            let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
            if v["name"] == name {
                return Some(v);
            }
        }
    }
    None
}

#[test]
fn sigkill_of_the_supervisor_leaves_no_process_mount_or_state() {
    let k = Kiln::new();
    for rm in [false, true] {
        let name = format!("victim{rm}");
        let mut args = vec![
            "run",
            "--name",
            &name,
            "--network",
            "default",
            "--pids-limit",
            "20",
        ];
        if rm {
            args.push("--rm");
        }
        let r = rfs();
        args.extend(["--rootfs", &r, "sh", "-c", "sleep 60 & sleep 60"]);
        let mut child = k
            .cmd()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the container to run", Duration::from_secs(10), || {
            state(&k, &name).is_some_and(|s| s["status"] == "running")
        });
        let s = state(&k, &name).unwrap();
        let pid = s["pid"].as_i64().unwrap();
        let id = s["id"].as_str().unwrap().to_string();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        // As with docker, the CLI going away leaves the container to its supervisor...
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        // ...and the supervisor dying takes the container along.
        let supervisor = s["supervisor"].as_i64().unwrap();
        assert!(supervisor > 0 && supervisor != i64::from(child.id()));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(supervisor as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        wait_for(
            "the container's processes to die",
            Duration::from_secs(5),
            || !Path::new(&format!("/proc/{pid}")).exists(),
        );
        // no process of the container (nor slirp4netns) remains
        let leftovers: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("cmdline")).ok())
            .filter(|c| c.contains(&id[..12]) || c.contains(&format!("{pid}\0tap0")))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(&k.path().display().to_string()),
            "no mount under the root"
        );
        // the next kiln start cleans the stale record and its cgroups
        let o = k.run(&["ps", "-a"]);
        if rm {
            assert!(!stdout(&o).contains(&name), "{o:?}");
            assert!(!k.path().join("containers").join(&id).exists());
        } else {
            assert!(stdout(&o).contains("Exited (137)"), "{o:?}");
        }
        assert!(!Path::new(&format!("/sys/fs/cgroup/pids/kiln/{id}")).exists());
    }
}

#[test]
fn detached_container_lifecycle() {
    let k = Kiln::new();
    let o = k.run(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "none",
        "--rootfs",
        &rfs(),
        "sh",
        "-c",
        "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    assert!(o.status.success(), "{o:?}");
    let id = stdout(&o).trim().to_string();
    assert_eq!(id.len(), 64);
    assert!(stdout(&k.run(&["ps"])).contains("web"));
    wait_for("the log", Duration::from_secs(5), || {
        stdout(&k.run(&["logs", "web"])).contains("started")
    });
    let o = k.run(&["exec", "web", "sh", "-c", "echo $$ inside; exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stdout(&o).ends_with(" inside\n") && !stdout(&o).starts_with("1 "),
        "{o:?}"
    );
    let o = k.run(&["rm", "web"]);
    assert!(
        !o.status.success(),
        "a running container is not removed without -f"
    );
    let t = Instant::now();
    assert!(k.run(&["stop", "web"]).status.success());
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "the trap made it stop at once"
    );
    assert!(!stdout(&k.run(&["ps"])).contains("web"));
    assert!(stdout(&k.run(&["ps", "-a"])).contains("Exited (0)"));
    assert!(stdout(&k.run(&["logs", "web"])).contains("bye"));
    assert!(k.run(&["rm", "web"]).status.success());
    assert!(!stdout(&k.run(&["ps", "-a"])).contains("web"));
    assert!(!k.path().join("containers").join(&id).exists());
}

#[test]
fn published_port_serves_and_is_freed_by_rm_f() {
    let k = Kiln::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = format!("127.0.0.1:{port}:80");
    let o = k.run(&[
        "run",
        "-d",
        "--name",
        "srv",
        "-p",
        &p,
        "--rootfs",
        &rfs(),
        "sh",
        "-c",
        "mkdir -p /www && echo hello-web > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&k.run(&["ps"])).contains(&format!("127.0.0.1:{port}->80/tcp")));
    let mut body = String::new();
    wait_for("the web server", Duration::from_secs(10), || {
        use std::io::{Read, Write};
        let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = c.write_all(b"GET / HTTP/1.0\r\n\r\n");
        body.clear();
        let _ = c.read_to_string(&mut body);
        body.contains("hello-web")
    });
    assert!(k.run(&["rm", "-f", "srv"]).status.success());
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free after rm -f");
}

#[test]
fn volumes_persist_between_runs() {
    let k = Kiln::new();
    assert!(k.run(&["volume", "create", "data1"]).status.success());
    let o = k.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "data1:/data",
        "--rootfs",
        &rfs(),
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert!(o.status.success(), "{o:?}");
    let o = k.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "data1:/data:ro",
        "--rootfs",
        &rfs(),
        "sh",
        "-c",
        "cat /data/f; echo x > /data/g || echo ro",
    ]);
    assert_eq!(stdout(&o), "kept\nro\n", "{o:?}");
    assert!(stdout(&k.run(&["volume", "ls"])).contains("data1"));
    let v: serde_json::Value =
        serde_json::from_slice(&k.run(&["volume", "inspect", "data1"]).stdout).unwrap();
    assert_eq!(v[0]["Name"], "data1");
    assert!(k.run(&["volume", "rm", "data1"]).status.success());
    assert!(!stdout(&k.run(&["volume", "ls"])).contains("data1"));
    assert!(!k.run(&["volume", "create", "../evil"]).status.success());
}
