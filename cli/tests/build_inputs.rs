//! `kiln build` with contexts that are not a plain directory (a tar or a
//! Dockerfile on standard input, a git repository), ADD of URLs, COPY
//! --link, reproducibility and parallel stages, as root on busybox.

mod common;

use common::{context, log, write_files, Kiln};

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Nothing left behind in the store's scratch area.
fn assert_no_scratch_left(k: &Kiln) {
    let tmp = k.root.path().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
}

fn sh(cmd: &str) -> Vec<u8> {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", log(&out));
    out.stdout
}

const TAR_DOCKERFILE: &str = "FROM busybox\nCOPY . /c/\nRUN ls /c > /listing\n";

#[test]
fn a_context_tar_on_stdin_plain_or_compressed_is_built_and_dockerignored() {
    let k = Kiln::new();
    let ctx = context(&[
        ("Dockerfile", TAR_DOCKERFILE),
        ("a.txt", "A\n"),
        ("sub/b.txt", "B\n"),
        ("secret.txt", "s\n"),
        (".dockerignore", "secret.txt\n"),
    ]);
    let dir = ctx.path().display().to_string();
    for (i, compress) in ["cat", "gzip -c", "bzip2 -c", "xz -c", "zstd -q -c"]
        .iter()
        .enumerate()
    {
        let tar = sh(&format!("tar -C {dir} -c . | {compress}"));
        let tag = format!("stdin:{i}");
        let out = k.build_with_stdin("-", &["-t", &tag], Some(&tar));
        assert!(out.status.success(), "{compress}: {}", log(&out));
        assert_eq!(
            k.run(&tag, &["cat", "/listing"]),
            "Dockerfile\na.txt\nsub\n",
            "{compress}"
        );
        assert_eq!(k.run(&tag, &["cat", "/c/sub/b.txt"]), "B\n");
    }
    // -f names a Dockerfile inside the archive.
    write_files(
        ctx.path(),
        &[("build/Alt", "FROM busybox\nCOPY a.txt /alt\n")],
    );
    let tar = sh(&format!("tar -C {dir} -c ."));
    let out = k.build_with_stdin("-", &["-t", "alt:1", "-f", "build/Alt"], Some(&tar));
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(k.run("alt:1", &["cat", "/alt"]), "A\n");
    assert_no_scratch_left(&k);
}

#[test]
fn a_dockerfile_on_stdin_builds_with_an_empty_context() {
    let k = Kiln::new();
    let df = b"FROM busybox\nCOPY . /c/\nRUN ls -A /c > /listing\n";
    let out = k.build_with_stdin("-", &["-t", "lone:1"], Some(df));
    assert!(out.status.success(), "{}", log(&out));
    // As docker: the context holds the Dockerfile and nothing else.
    assert_eq!(k.run("lone:1", &["cat", "/listing"]), "Dockerfile\n");
    // And a COPY of anything else fails as it would with an empty directory.
    let out = k.build_with_stdin("-", &[], Some(b"FROM busybox\nCOPY a.txt /\n"));
    assert!(!out.status.success(), "{}", log(&out));
    assert_no_scratch_left(&k);
}

#[test]
fn dash_f_dash_reads_the_dockerfile_from_stdin_with_a_directory_context() {
    let k = Kiln::new();
    let ctx = context(&[
        ("Dockerfile", "FROM busybox\nRUN false\n"),
        ("a.txt", "A\n"),
    ]);
    let out = k.build_with_stdin(
        ctx.path().to_str().unwrap(),
        &["-t", "f:1", "-f", "-"],
        Some(b"FROM busybox\nCOPY a.txt /a\n"),
    );
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(k.run("f:1", &["cat", "/a"]), "A\n");
    let out = k.build_with_stdin("-", &["-f", "-"], Some(b"FROM busybox\n"));
    assert!(!out.status.success());
    assert!(log(&out).contains("stdin for both"), "{}", log(&out));
}

#[test]
fn a_hostile_context_tar_stays_inside_its_directory() {
    let k = Kiln::new();
    let victim = tempfile::Builder::new()
        .prefix("kiln-inputs-victim")
        .tempdir()
        .unwrap();
    let v = victim.path().display();
    // Entries that climb out by name, through a symlink, and through a hard link.
    let tar = |hard_link: bool| {
        let script = format!(
            r#"
import io, sys, tarfile
out = io.BytesIO()
t = tarfile.open(fileobj=out, mode="w")
def add(name, data=b"", **kw):
    i = tarfile.TarInfo(name)
    for k, val in kw.items(): setattr(i, k, val)
    i.size = len(data)
    t.addfile(i, io.BytesIO(data))
add("Dockerfile", b"FROM busybox\nCOPY . /c/\n")
add("../../../../../../{v}/by-name", b"x")
add("link", type=tarfile.SYMTYPE, linkname="{v}")
add("link/through-link", b"x")
if {hard}:
    add("hard", type=tarfile.LNKTYPE, linkname="../../../../../../etc/passwd")
t.close()
sys.stdout.buffer.write(out.getvalue())
"#,
            hard = if hard_link { "True" } else { "False" }
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", log(&out));
        out.stdout
    };
    let out = k.build_with_stdin("-", &["-t", "hostile:1"], Some(&tar(false)));
    assert!(out.status.success(), "{}", log(&out));
    let found = k.run("hostile:1", &["find", "/c", "-type", "f"]);
    assert!(found.contains(&format!("/c{v}/by-name")), "{found}");
    assert!(found.contains(&format!("/c{v}/through-link")), "{found}");
    // A hard link to a file outside: refused.
    let out = k.build_with_stdin("-", &["-t", "hostile:2"], Some(&tar(true)));
    assert!(!out.status.success(), "{}", log(&out));
    let entries: Vec<_> = std::fs::read_dir(victim.path()).unwrap().collect();
    assert!(entries.is_empty(), "written outside: {entries:?}");
    assert_no_scratch_left(&k);
}

/// A `git daemon` serving `base` on 127.0.0.1, stopped on drop.
struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    fn start(base: &Path) -> GitDaemon {
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("git")
                .arg("daemon")
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg("--export-all")
                .arg("--reuseaddr")
                .arg(format!("--base-path={}", base.display()))
                .arg(base)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return GitDaemon { child, port };
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("git daemon did not start");
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_git_url_context_checks_out_the_ref_and_uses_the_subdir() {
    let k = Kiln::new();
    let base = tempfile::Builder::new()
        .prefix("kiln-inputs-git")
        .tempdir()
        .unwrap();
    let work = base.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let w = work.display();
    let b = base.path().display();
    write_files(
        &work,
        &[
            ("app/Dockerfile", "FROM busybox\nCOPY . /c/\n"),
            ("app/v.txt", "one\n"),
            ("app/.dockerignore", "skip.txt\n"),
            ("app/skip.txt", "no\n"),
            ("outside.txt", "out\n"),
        ],
    );
    let git = "git -c user.name=t -c user.email=t@t -c init.defaultBranch=main";
    sh(&format!(
        "cd {w} && {git} init -q && {git} add -A && {git} commit -qm one && {git} tag v1"
    ));
    std::fs::write(work.join("app/v.txt"), "two\n").unwrap();
    sh(&format!(
        "cd {w} && {git} commit -qam two && {git} clone -q --bare {w} {b}/repo.git"
    ));
    let daemon = GitDaemon::start(base.path());
    let url = |frag: &str| format!("git://127.0.0.1:{}/repo.git{frag}", daemon.port);

    let out = k.build(url("#v1:app"), &["-t", "git:v1"]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(k.run("git:v1", &["cat", "/c/v.txt"]), "one\n");
    let listing = k.run("git:v1", &["ls", "-A", "/c"]);
    assert_eq!(
        listing, ".dockerignore\nDockerfile\nv.txt\n",
        "no .git, no ignored file"
    );

    let out = k.build(url("#main:app"), &["-t", "git:main"]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(k.run("git:main", &["cat", "/c/v.txt"]), "two\n");

    // A commit id works as the ref too.
    let first = String::from_utf8(sh(&format!("git -C {w} rev-parse HEAD~1"))).unwrap();
    let out = k.build(url(&format!("#{}:app", first.trim())), &["-t", "git:sha"]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(k.run("git:sha", &["cat", "/c/v.txt"]), "one\n");

    // No fragment: the default branch, the repository's root as context.
    let out = k.build(url(""), &["-t", "git:root", "-f", "app/Dockerfile"]);
    assert!(out.status.success(), "{}", log(&out));
    assert!(k.run("git:root", &["ls", "/c"]).contains("outside.txt"));

    let out = k.build(url("#no-such-ref"), &[]);
    assert!(!out.status.success());
    assert!(
        log(&out).contains("unable to prepare context"),
        "{}",
        log(&out)
    );
    assert_no_scratch_left(&k);
}

/// A tiny HTTP/1.1 server on 127.0.0.1 serving one body (changeable) at
/// every path, with a fixed `Last-Modified`; counts the requests.
struct FileServer {
    port: u16,
    body: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
const LAST_MODIFIED_UNIX: &str = "1445412480";

impl FileServer {
    fn start(body: &[u8]) -> FileServer {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = std::sync::Arc::new(std::sync::Mutex::new(body.to_vec()));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (b, h) = (body.clone(), hits.clone());
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let data = b.lock().unwrap().clone();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: {LAST_MODIFIED}\r\n\
                     Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                    data.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&data);
            }
        });
        FileServer { port, body, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

fn cached_steps(out: &Output) -> Vec<String> {
    let text = log(out);
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[1].ends_with(" CACHED"))
        .map(|w| w[0].split_once(' ').map_or("", |p| p.1).to_string())
        .collect()
}

#[test]
fn add_of_a_url_downloads_a_0600_file_with_its_last_modified_time_not_unpacked() {
    let k = Kiln::new();
    // A gzip'd tar: ADD unpacks local archives, never downloaded ones.
    let archive = sh("d=$(mktemp -d) && echo hi > $d/f && tar -C $d -cz f && rm -r $d");
    let server = FileServer::start(&archive);
    let df = format!(
        "FROM busybox\nADD {u} /dl/\nADD {u} /renamed\nADD --chmod=644 {u} /modes/\n\
         RUN stat -c '%a %Y %s %u' /dl/data.tar.gz /renamed /modes/data.tar.gz > /stat\n",
        u = server.url("/files/data.tar.gz?token=x")
    );
    let ctx = context(&[("Dockerfile", &df)]);
    let out = k.build(ctx.path().to_str().unwrap(), &["-t", "url:1"]);
    assert!(out.status.success(), "{}", log(&out));
    let n = archive.len();
    let t = LAST_MODIFIED_UNIX;
    assert_eq!(
        k.run("url:1", &["cat", "/stat"]),
        format!("600 {t} {n} 0\n600 {t} {n} 0\n644 {t} {n} 0\n")
    );
    assert_eq!(
        k.run("url:1", &["sh", "-c", "gzip -dc /renamed | tar -t"]),
        "f\n"
    );
    // One download for the three ADDs of the same URL.
    assert_eq!(server.hits(), 1);

    // Every build fetches the URL again and keys on what came back.
    let out = k.build(ctx.path().to_str().unwrap(), &["-t", "url:1"]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(server.hits(), 2);
    assert_eq!(cached_steps(&out).len(), 4, "{}", log(&out));
    *server.body.lock().unwrap() = b"changed".to_vec();
    let out = k.build(ctx.path().to_str().unwrap(), &["-t", "url:1"]);
    assert!(out.status.success(), "{}", log(&out));
    assert!(cached_steps(&out).is_empty(), "{}", log(&out));
    assert!(k.run("url:1", &["cat", "/stat"]).contains(" 7 0\n"));
    assert_no_scratch_left(&k);
}

#[test]
fn add_checksum_is_the_cache_key_and_a_mismatch_names_the_line() {
    let k = Kiln::new();
    let server = FileServer::start(b"payload\n");
    let good = sha256_hex(b"payload\n");
    let df = |sum: &str| {
        format!(
            "FROM busybox\nRUN echo before\nADD --checksum=sha256:{sum} {} /p.txt\n",
            server.url("/p")
        )
    };
    let ctx = context(&[("Dockerfile", &df(&good))]);
    let out = k.build(ctx.path().to_str().unwrap(), &["-t", "sum:1"]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(k.run("sum:1", &["cat", "/p.txt"]), "payload\n");
    assert_eq!(server.hits(), 1);
    // With a checksum, a cached step needs no download at all.
    let out = k.build(ctx.path().to_str().unwrap(), &["-t", "sum:1"]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(server.hits(), 1);
    assert!(
        cached_steps(&out).iter().any(|s| s.contains("ADD")),
        "{}",
        log(&out)
    );

    let bad = "0".repeat(64);
    std::fs::write(ctx.path().join("Dockerfile"), df(&bad)).unwrap();
    let out = k.build(ctx.path().to_str().unwrap(), &[]);
    assert!(!out.status.success());
    let text = log(&out);
    assert!(text.contains("digest mismatch"), "{text}");
    assert!(text.contains(&format!("sha256:{good}")), "{text}");
    assert!(text.contains("Dockerfile:3"), "{text}");
    assert!(text.contains(">>> ADD --checksum"), "{text}");

    // A checksum on a local source is refused, as BuildKit does.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM busybox\nADD --checksum=sha256:{good} Dockerfile /x\n"),
    )
    .unwrap();
    let out = k.build(ctx.path().to_str().unwrap(), &[]);
    assert!(!out.status.success());
    assert!(
        log(&out).contains("checksum requires HTTP(S)"),
        "{}",
        log(&out)
    );
    assert_no_scratch_left(&k);
}

fn layers(k: &Kiln, image: &str) -> Vec<String> {
    let out = k.cmd().args(["inspect", image]).output().unwrap();
    assert!(out.status.success(), "{}", log(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    v["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn copy_link_keeps_its_layer_and_cache_when_an_earlier_step_changes() {
    let k = Kiln::new();
    let df = |v: &str| {
        format!(
            "FROM busybox\nRUN mkdir -m 700 /app && echo {v} > /before\n\
             COPY --link a.txt /app/deep/a.txt\nRUN cat /app/deep/a.txt /before > /out\n"
        )
    };
    let ctx = context(&[("Dockerfile", &df("one")), ("a.txt", "A\n")]);
    let path = ctx.path().to_str().unwrap();
    let out = k.build(path, &["-t", "link:1"]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(k.run("link:1", &["cat", "/out"]), "A\none\n");
    // The linked layer carries the missing parents itself, 0755 and root's,
    // over whatever the stage below had there.
    assert_eq!(
        k.run("link:1", &["stat", "-c", "%a %u", "/app", "/app/deep"]),
        "755 0\n755 0\n"
    );
    let first = layers(&k, "link:1");

    std::fs::write(ctx.path().join("Dockerfile"), df("two")).unwrap();
    let out = k.build(path, &["-t", "link:2"]);
    assert!(out.status.success(), "{}", log(&out));
    let cached = cached_steps(&out);
    assert!(
        cached
            .iter()
            .any(|s| s == "[3/4] COPY --link a.txt /app/deep/a.txt"),
        "{}",
        log(&out)
    );
    assert_eq!(k.run("link:2", &["cat", "/out"]), "A\ntwo\n");
    let second = layers(&k, "link:2");
    assert_eq!(first.len(), second.len());
    assert_ne!(first[1], second[1], "the RUN's layer changed");
    assert_eq!(first[2], second[2], "the COPY --link layer is the same");

    // A plain COPY in the same place is re-run and re-keyed by the change.
    let plain = |v: &str| df(v).replace("COPY --link", "COPY");
    std::fs::write(ctx.path().join("Dockerfile"), plain("one")).unwrap();
    assert!(k.build(path, &["-t", "plain:1"]).status.success());
    std::fs::write(ctx.path().join("Dockerfile"), plain("two")).unwrap();
    let out = k.build(path, &["-t", "plain:2"]);
    assert!(
        !cached_steps(&out).iter().any(|s| s.contains("COPY")),
        "{}",
        log(&out)
    );
}

fn metadata_digest(k: &Kiln, context: &Path, epoch: &str, args: &[&str]) -> String {
    let meta = context.join("..").join(format!(
        "{}.meta.json",
        context.file_name().unwrap().to_string_lossy()
    ));
    let out = k
        .cmd()
        .env("SOURCE_DATE_EPOCH", epoch)
        .args([
            "build",
            "--progress=plain",
            "--network",
            "none",
            "-t",
            "r:1",
        ])
        .args(args)
        .arg("--metadata-file")
        .arg(&meta)
        .arg(context)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", log(&out));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    std::fs::remove_file(&meta).unwrap();
    v["containerimage.digest"].as_str().unwrap().to_string()
}

#[test]
fn source_date_epoch_builds_the_same_image_from_two_places_and_roots() {
    let df = "FROM busybox\nWORKDIR /app\nCOPY . ./\nCOPY --link a.txt /linked/\n\
              RUN echo built > /app/out && mkdir -p /var/x && echo gone > /var/x/f\n\
              RUN rm /var/x/f\nADD sub.tar /unpacked/\n";
    let files = [("Dockerfile", df), ("a.txt", "A\n"), ("dir/b.txt", "B\n")];
    let make = || {
        let ctx = context(&files);
        sh(&format!(
            "cd {} && tar --mtime=@1 --numeric-owner --owner=0 --group=0 -cf sub.tar dir",
            ctx.path().display()
        ));
        ctx
    };
    // Files written at different seconds (after the epoch, which clamps
    // them; as with BuildKit, times before it are kept and would differ).
    let ctx1 = make();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let ctx2 = make();
    let (k1, k2) = (Kiln::new(), Kiln::new());
    // The same base image in both roots (an import records its own time, as
    // a pull of one digest would not differ).
    let saved = k1.cmd().args(["save", "busybox:latest"]).output().unwrap();
    assert!(saved.status.success(), "{}", log(&saved));
    let mut load = k2
        .cmd()
        .args(["load"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    load.stdin.take().unwrap().write_all(&saved.stdout).unwrap();
    let loaded = load.wait_with_output().unwrap();
    assert!(loaded.status.success(), "{}", log(&loaded));
    let d1 = metadata_digest(&k1, ctx1.path(), "1700000000", &[]);
    // The second build also runs at a later second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let d2 = metadata_digest(&k2, ctx2.path(), "1700000000", &[]);
    assert!(d1.starts_with("sha256:"), "{d1}");
    assert_eq!(d1, d2, "same Dockerfile, context and epoch: same manifest");
    // The epoch is part of what is reproduced.
    let d3 = metadata_digest(&k2, ctx2.path(), "1700000001", &[]);
    assert_ne!(d1, d3);
    // As a build arg (what BuildKit reads; buildx passes the variable so), it wins.
    let d4 = metadata_digest(
        &k2,
        ctx2.path(),
        "1700000001",
        &["--build-arg", "SOURCE_DATE_EPOCH=1700000000"],
    );
    assert_eq!(d1, d4);
}

#[test]
fn independent_stages_run_at_the_same_time() {
    let k = Kiln::new();
    let mut df = String::new();
    for s in ["a", "b", "c", "d"] {
        df.push_str(&format!(
            "FROM busybox AS {s}\nRUN sleep 1 && echo {s} > /{s}\n"
        ));
    }
    df.push_str("FROM busybox\n");
    for s in ["a", "b", "c", "d"] {
        df.push_str(&format!("COPY --from={s} /{s} /{s}\n"));
    }
    let ctx = context(&[("Dockerfile", &df)]);
    let out = k
        .cmd()
        .args([
            "build",
            "--progress=rawjson",
            "--network",
            "none",
            "--jobs",
            "4",
        ])
        .args(["-t", "par:1"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", log(&out));
    let mut spans: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let name = v["name"].as_str().unwrap_or("").to_string();
        if !name.contains("RUN sleep 1") {
            continue;
        }
        let t = v["timeMs"].as_f64().unwrap();
        let span = spans.entry(name).or_insert((f64::NAN, f64::NAN));
        match v["event"].as_str() {
            Some("started") => span.0 = t,
            Some("done") => span.1 = t,
            _ => {}
        }
    }
    assert_eq!(spans.len(), 4, "{spans:?}\n{}", log(&out));
    let last_start = spans.values().map(|s| s.0).fold(f64::MIN, f64::max);
    let first_end = spans.values().map(|s| s.1).fold(f64::MAX, f64::min);
    assert!(
        last_start < first_end,
        "the four RUNs did not all run at once: {spans:?}"
    );
    assert_eq!(
        k.run("par:1", &["cat", "/a", "/b", "/c", "/d"]),
        "a\nb\nc\nd\n"
    );
}
