//! Registries through the service: `docker login` (`POST /auth`), `docker push`, `docker
//! pull` (by tag and by digest) and `docker import` with the real docker CLI 28, against
//! Debian's docker-registry on 127.0.0.1 (one open, one with htpasswd basic auth), plus raw
//! requests for the header decoding. Needs root, docker-registry, apache2-utils (htpasswd),
//! busybox-static and skopeo (scripts/deps.sh), and /usr/local/bin/docker.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_api::server::{serve_with, ServeOptions};
use kiln_api::Router;

const DOCKER: &str = "/usr/local/bin/docker";
const USER: &str = "acc";
const PASSWORD: &str = "pa55-w0rd-9f3c";

/// The service on its own runtime thread, on a temp socket and root; stopped on drop.
struct Service {
    socket: PathBuf,
    root: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    dir: tempfile::TempDir,
}

impl Service {
    fn start() -> Service {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("kiln.sock");
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let options = ServeOptions::new(&socket);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let engine_root = root.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let engine = Arc::new(kiln_engine::Engine::new(engine_root));
            rt.block_on(serve_with(options, engine, Router::api(), async {
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
            root,
            stop: Some(stop),
            thread: Some(thread),
            dir,
        }
    }

    /// An engine on the service's root (the store is shared, as with the kiln CLI).
    fn engine(&self) -> kiln_engine::Engine {
        kiln_engine::Engine::new(&self.root)
    }

    /// The docker CLI on this service, with a config directory of its own.
    fn docker(&self, config: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = Command::new(DOCKER)
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", config)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the docker CLI at /usr/local/bin/docker");
        if let Some(bytes) = stdin {
            let mut input = child.stdin.take().unwrap();
            let bytes = bytes.to_vec();
            // Written from a thread: the CLI may stop reading early on an error.
            std::thread::spawn(move || {
                let _ = input.write_all(&bytes);
            });
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Debian's docker-registry on a free loopback port, killed on drop.
struct Registry {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// An open registry, or (`htpasswd`) one that wants [`USER`] and [`PASSWORD`].
    fn start(htpasswd: bool) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("htpasswd (scripts/deps.sh: apache2-utils)");
            assert!(out.status.success());
            std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: acc\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
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
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A busybox root filesystem (Debian's busybox-static) as a tar, for `docker import -`.
fn busybox_tar() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for d in ["bin", "etc", "tmp", "root"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", r.join("bin/busybox")).expect("busybox-static");
    std::os::unix::fs::symlink("busybox", r.join("bin/sh")).unwrap();
    std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let out = Command::new("tar")
        .arg("-C")
        .arg(r)
        .args(["-c", "."])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// skopeo's view of an image in a registry (`--raw`: the manifest).
fn skopeo(reference: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .args(extra)
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo (scripts/deps.sh)");
    assert!(out.status.success(), "skopeo: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One raw request on a fresh connection: (status, body).
fn raw(socket: &Path, request: &str) -> (u16, String) {
    let mut conn = UnixStream::connect(socket).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// Whether any file under `dir` holds `needle`.
fn any_file_holds(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Some(hit) = any_file_holds(&path, needle) {
                return Some(hit);
            }
        } else if meta.is_file() {
            if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    return Some(path);
                }
            }
        }
    }
    None
}

fn manifest_digest(push_output: &str, tag: &str) -> String {
    let line = push_output
        .lines()
        .find(|l| l.starts_with(&format!("{tag}: digest: sha256:")))
        .unwrap_or_else(|| panic!("no digest line in {push_output}"));
    line.split(' ').nth(2).unwrap().to_string()
}

#[test]
fn import_push_pull_by_tag_and_digest_with_docker() {
    let service = Service::start();
    let reg = Registry::start(false);
    let config = tempfile::tempdir().unwrap();
    let cfg = config.path();
    let name = format!("{}/acc/bb:1", reg.addr);

    // docker import: the body is the root filesystem; the CLI prints the image ID.
    let tar = busybox_tar();
    let imported = ok(service.docker(
        cfg,
        &["import", "-m", "from the test", "-", &name],
        Some(&tar),
    ));
    let id = imported.trim().to_string();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "stdout: {imported}"
    );
    let store = service.engine().store().unwrap();
    let image = store.image(&name).unwrap();
    assert_eq!(image.id.to_string(), id);
    let history = String::from_utf8_lossy(&image.config_raw).into_owned();
    assert!(history.contains("from the test"), "{history}");
    // With changes (`changes=` per instruction), applied to the config.
    let changed = format!("{}/acc/changed:1", reg.addr);
    ok(service.docker(
        cfg,
        &[
            "import",
            "-c",
            r#"CMD ["sh", "-c", "echo hi"]"#,
            "-c",
            "ENV A=1",
            "-",
            &changed,
        ],
        Some(&tar),
    ));
    let config: serde_json::Value =
        serde_json::from_slice(&store.image(&changed).unwrap().config_raw).unwrap();
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["sh", "-c", "echo hi"])
    );
    assert!(
        config["config"]["Env"].to_string().contains("A=1"),
        "{config}"
    );
    let refused = service.docker(
        cfg,
        &["import", "-c", "RUN true", "-", &changed],
        Some(&tar),
    );
    assert!(
        text(&refused).contains("RUN is not a valid change command"),
        "{}",
        text(&refused)
    );

    // docker push: docker's lines, and the registry holds the image with its config.
    let pushed = service.docker(cfg, &["push", &name], None);
    let out = ok(pushed);
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/acc/bb]",
            reg.addr
        )),
        "{out}"
    );
    assert!(out.contains(": Pushed"), "{out}");
    let digest = manifest_digest(&out, "1");
    assert_eq!(skopeo(&name, &[])["Digest"], digest.as_str());
    // The registry's config is the stored one: same layer.
    assert_eq!(
        skopeo(&name, &["--config"])["rootfs"]["diff_ids"][0],
        image.diff_ids[0].to_string().as_str()
    );
    let again = ok(service.docker(cfg, &["push", &name], None));
    assert!(again.contains(": Layer already exists"), "{again}");

    // docker pull into a store that lost the image.
    store.remove_image(&name, false).unwrap();
    assert!(store.image(&name).is_err());
    let pulled = service.docker(cfg, &["pull", &name], None);
    let out = ok(pulled);
    for want in [
        "1: Pulling from acc/bb".to_string(),
        ": Pull complete".to_string(),
        format!("Digest: {digest}"),
        format!("Status: Downloaded newer image for {name}"),
    ] {
        assert!(out.contains(&want), "{want} missing in {out}");
    }
    assert_eq!(store.image(&name).unwrap().id.to_string(), id);
    let again = ok(service.docker(cfg, &["pull", &name], None));
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "{again}"
    );

    // By digest: `tag=sha256:...`.
    let by_digest = format!("{}/acc/bb@{digest}", reg.addr);
    let out = ok(service.docker(cfg, &["pull", &by_digest], None));
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(out.contains(&by_digest), "{out}");

    // A missing repository or tag fails with the registry's word, before any progress.
    for missing in [
        format!("{}/acc/nosuch:1", reg.addr),
        format!("{}/acc/bb:nosuch", reg.addr),
    ] {
        let out = service.docker(cfg, &["pull", &missing], None);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(all.contains("Error response from daemon"), "{all}");
        assert!(all.contains("not found"), "{all}");
        assert!(!all.contains("Pulling from"), "{all}");
    }

    // push with no tag: every tag of the repository (`docker push --all-tags`).
    store.tag(&name, &format!("{}/acc/bb:2", reg.addr)).unwrap();
    let all = ok(service.docker(
        cfg,
        &["push", "--all-tags", &format!("{}/acc/bb", reg.addr)],
        None,
    ));
    assert!(all.contains("1: digest: "), "{all}");
    assert!(all.contains("2: digest: "), "{all}");
    assert_eq!(
        skopeo(&format!("{}/acc/bb:2", reg.addr), &[])["Digest"],
        digest.as_str()
    );
    let missing = service.docker(cfg, &["push", &format!("{}/acc/none:1", reg.addr)], None);
    assert!(
        text(&missing).contains("An image does not exist locally with the tag"),
        "{}",
        text(&missing)
    );
    assert_ne!(missing.status.code(), Some(0));
}

#[test]
fn login_and_authenticated_push_and_pull_with_docker() {
    let service = Service::start();
    let open = Registry::start(false);
    let reg = Registry::start(true);
    let config = tempfile::tempdir().unwrap();
    let cfg = config.path();
    let cfg_file = cfg.join("config.json");
    std::fs::write(&cfg_file, "{}").unwrap();
    let name = format!("{}/acc/auth:1", reg.addr);
    let tar = busybox_tar();
    ok(service.docker(cfg, &["import", "-", &name], Some(&tar)));

    // Without credentials the push is refused, in the stream, with the registry's word.
    let denied = service.docker(cfg, &["push", &name], None);
    let all = text(&denied);
    assert_ne!(denied.status.code(), Some(0), "{all}");
    assert!(all.contains("authentication required"), "{all}");

    // A wrong password: dockerd's message, nothing stored by the CLI.
    let wrong = service.docker(
        cfg,
        &["login", "-u", USER, "--password-stdin", &reg.addr],
        Some(b"wrong\n"),
    );
    let all = text(&wrong);
    assert_eq!(wrong.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!(
            "login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
            reg.addr
        )),
        "{all}"
    );
    assert!(!std::fs::read_to_string(&cfg_file)
        .unwrap()
        .contains(&reg.addr));

    // The right one: `Login Succeeded`, and the CLI stores it as docker does.
    let out = ok(service.docker(
        cfg,
        &["login", "-u", USER, "--password-stdin", &reg.addr],
        Some(format!("{PASSWORD}\n").as_bytes()),
    ));
    assert!(out.contains("Login Succeeded"), "{out}");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_file).unwrap()).unwrap();
    assert!(
        stored["auths"][&reg.addr]["auth"].as_str().is_some(),
        "{stored}"
    );
    // An open registry takes any login, as dockerd finds.
    ok(service.docker(
        cfg,
        &["login", "-u", "x", "--password-stdin", &open.addr],
        Some(b"y\n"),
    ));

    // With the CLI's credentials (X-Registry-Auth) push and pull work.
    let out = ok(service.docker(cfg, &["push", &name], None));
    let digest = manifest_digest(&out, "1");
    let store = service.engine().store().unwrap();
    store.remove_image(&name, false).unwrap();
    let out = ok(service.docker(cfg, &["pull", &name], None));
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(store.image(&name).is_ok());

    // The service kept none of it: no file under its root or its directory holds the
    // password (in clear or as docker's base64 auth).
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for secret in [PASSWORD.as_bytes(), auth.as_bytes()] {
        assert_eq!(any_file_holds(service.dir.path(), secret), None);
    }
}

#[test]
fn raw_auth_requests_and_bad_headers() {
    let service = Service::start();
    let reg = Registry::start(true);
    let s = service.socket.as_path();
    let post = |path: &str, headers: &str, body: &str| {
        raw(
            s,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n{headers}\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let login = |password: &str| {
        post(
            "/v1.41/auth",
            "",
            &format!(
                r#"{{"username":"{USER}","password":"{password}","serveraddress":"{}"}}"#,
                reg.addr
            ),
        )
    };
    let (status, body) = login(PASSWORD);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"Status": "Login Succeeded", "IdentityToken": ""})
    );
    let (status, body) = login("not-the-password");
    assert_eq!(status, 401, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["message"],
        format!(
            "login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
            reg.addr
        )
    );
    assert!(!body.contains("not-the-password"), "{body}");
    let (status, body) = post("/v1.41/auth", "", r#"{"username":"acc","password":["x"]}"#);
    assert_eq!(status, 400, "{body}");

    // A bad X-Registry-Auth is a 400 that names the header, before anything is pulled.
    for bad in ["%%%", "bm90IGpzb24"] {
        let (status, body) = post(
            &format!("/v1.41/images/create?fromImage={}/acc/x&tag=1", reg.addr),
            &format!("X-Registry-Auth: {bad}\r\n"),
            "",
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("invalid X-Registry-Auth header"), "{body}");
    }
    // Neither fromImage nor fromSrc: 400.
    let (status, _) = post("/v1.41/images/create", "", "");
    assert_eq!(status, 400);
    // A pull with the right credentials in X-Registry-Auth (base64url, unpadded) of an
    // image the registry lacks: a 404 with the registry's word.
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        r#"{{"username":"{USER}","password":"{PASSWORD}","serveraddress":"{}"}}"#,
        reg.addr
    ));
    let (status, body) = post(
        &format!("/v1.41/images/create?fromImage={}/acc/x&tag=1", reg.addr),
        &format!("X-Registry-Auth: {header}\r\n"),
        "",
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("not found"), "{body}");
    assert!(!body.contains(PASSWORD), "{body}");
    // Anonymous (`e30=`) to the htpasswd registry: refused, and said so.
    let (status, body) = post(
        &format!("/v1.41/images/create?fromImage={}/acc/x&tag=1", reg.addr),
        "X-Registry-Auth: e30=\r\n",
        "",
    );
    assert_ne!(status, 200, "{body}");
    assert!(body.contains("authentication required"), "{body}");
}
