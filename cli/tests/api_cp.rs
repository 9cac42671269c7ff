//! `docker cp` both ways (running and stopped containers, hostile archives and symlinks that
//! point out of the root), `docker top` and `docker stats` through the Engine API, driven by
//! the docker CLI 28 and by raw HTTP; and the same through `kiln cp`, `kiln top` and
//! `kiln stats`. Skipped (with a note) when that CLI is not installed.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Output;

use common::service::{Service, DOCKER};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{o:?}");
    out(&o)
}

/// One raw request with a binary body; the status line and the body.
fn http_bytes(svc: &Service, method: &str, path: &str, body: &[u8]) -> (String, Vec<u8>) {
    let mut s = UnixStream::connect(&svc.socket).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut text = Vec::new();
    s.read_to_end(&mut text).unwrap();
    let split = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(text.len());
    let head = String::from_utf8_lossy(&text[..split]).into_owned();
    let body = text.get(split + 4..).unwrap_or_default().to_vec();
    (head, body)
}

/// Appends an entry whose name and link name are written as given.
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    name: &str,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_old();
    let old = h.as_old_mut();
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

/// No mount of a copy is left on the host.
fn assert_no_copy_mounts() {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("cp-root"), "{mounts}");
}

#[test]
fn docker_cp_both_ways_for_running_and_stopped_containers() {
    let Some(svc) = Service::start_for(DOCKER) else {
        return;
    };
    ok(svc.run(&["run", "-d", "--name", "c1", "busybox", "sleep", "300"]));
    let host = tempfile::tempdir().unwrap();
    let src = host.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "hello\n").unwrap();
    std::fs::write(src.join("sub/b.txt"), "deep\n").unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();

    // host to container: the directory lands under the existing /tmp by its own name
    ok(svc.run(&["cp", src.to_str().unwrap(), "c1:/tmp/"]));
    let o = ok(svc.run(&[
        "exec",
        "c1",
        "sh",
        "-c",
        "cat /tmp/src/sub/b.txt; readlink /tmp/src/link",
    ]));
    assert_eq!(o, "deep\na.txt\n");
    // a file to a new name
    let file = src.join("a.txt");
    ok(svc.run(&["cp", file.to_str().unwrap(), "c1:/tmp/renamed.txt"]));
    assert_eq!(
        ok(svc.run(&["exec", "c1", "cat", "/tmp/renamed.txt"])),
        "hello\n"
    );

    // container to host: a directory to a new name, a file into a directory
    let copy = host.path().join("copy");
    ok(svc.run(&["cp", "c1:/tmp/src", copy.to_str().unwrap()]));
    assert_eq!(
        std::fs::read_to_string(copy.join("sub/b.txt")).unwrap(),
        "deep\n"
    );
    assert_eq!(
        std::fs::read_link(copy.join("link")).unwrap().to_str(),
        Some("a.txt")
    );
    ok(svc.run(&["cp", "c1:/etc/passwd", host.path().to_str().unwrap()]));
    assert!(std::fs::read_to_string(host.path().join("passwd"))
        .unwrap()
        .contains("root:"));
    // `-`: a tar on standard output, named after the path's last component
    let o = svc.run(&["cp", "c1:/tmp/src", "-"]);
    assert!(o.status.success(), "{o:?}");
    let mut names: Vec<String> = tar::Archive::new(&o.stdout[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["src/", "src/a.txt", "src/link", "src/sub/", "src/sub/b.txt"]
    );
    // the stat header: HEAD with docker's JSON, 404 for a missing path
    let (head, _) = http_bytes(&svc, "HEAD", "/containers/c1/archive?path=/tmp/src", b"");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("x-docker-container-path-stat: "),
        "{head}"
    );
    let (head, _) = http_bytes(&svc, "GET", "/containers/c1/archive?path=/nope", b"");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let o = svc.run(&["cp", "c1:/nope", host.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Could not find the file /nope"),
        "{o:?}"
    );

    // a stopped container: copied into, read back, and its program sees the file
    ok(svc.run(&["create", "--name", "c2", "busybox", "cat", "/root/a.txt"]));
    ok(svc.run(&["cp", file.to_str().unwrap(), "c2:/root/"]));
    let back = host.path().join("back.txt");
    ok(svc.run(&["cp", "c2:/root/a.txt", back.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "hello\n");
    assert_eq!(ok(svc.run(&["start", "-a", "c2"])), "hello\n");
    assert_no_copy_mounts();
    let o = svc.run(&["cp", file.to_str().unwrap(), "c2:/no/such/dir/"]);
    assert!(!o.status.success(), "{o:?}");

    // the kiln CLI: the same operations on the same root
    let kiln_copy = host.path().join("kiln-copy");
    let o = svc
        .kiln
        .cmd()
        .args(["cp", "c1:/tmp/src", kiln_copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        std::fs::read_to_string(kiln_copy.join("a.txt")).unwrap(),
        "hello\n"
    );
    let o = svc
        .kiln
        .cmd()
        .args(["cp", src.join("sub").to_str().unwrap(), "c2:/root/fromkiln"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let o = svc
        .kiln
        .cmd()
        .args(["cp", "c2:/root/fromkiln/b.txt", "-"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let mut entries = tar::Archive::new(&o.stdout[..]);
    let mut first = entries.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(first.path().unwrap().to_str(), Some("b.txt"));
    let mut text = String::new();
    first.read_to_string(&mut text).unwrap();
    assert_eq!(text, "deep\n");
    assert_no_copy_mounts();
    ok(svc.run(&["rm", "-f", "c1", "c2"]));
}

#[test]
fn hostile_archives_and_symlinks_stay_inside_the_container() {
    let Some(svc) = Service::start_for(DOCKER) else {
        return;
    };
    ok(svc.run(&["run", "-d", "--name", "h1", "busybox", "sleep", "300"]));
    let outside = tempfile::tempdir().unwrap();
    let outside_path = outside.path().to_str().unwrap().to_string();
    std::fs::write(outside.path().join("secret"), "host secret\n").unwrap();

    // An archive with a `../` name, an absolute symlink to a host directory and an entry
    // through it, and last a hard link to a host file (names written raw: the tar crate
    // refuses `..`).
    let mut b = tar::Builder::new(Vec::new());
    let escaped = "escaped-kiln-cp-test";
    raw_entry(
        &mut b,
        tar::EntryType::Regular,
        &format!("../../../../../../{escaped}"),
        "",
        b"evil",
    );
    raw_entry(&mut b, tar::EntryType::Symlink, "evil", &outside_path, b"");
    raw_entry(&mut b, tar::EntryType::Regular, "evil/pwned", "", b"evil");
    let hard_target = format!("../../../..{outside_path}/secret");
    raw_entry(&mut b, tar::EntryType::Link, "hard", &hard_target, b"");
    let tar_bytes = b.into_inner().unwrap();
    let (head, _) = http_bytes(&svc, "PUT", "/containers/h1/archive?path=/tmp", &tar_bytes);
    // The hard link's target is not inside the destination: the upload fails there, after
    // the entries before it were written, inside the container.
    assert!(!head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!outside.path().join("pwned").exists());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    assert!(!std::path::Path::new("/").join(escaped).exists());
    assert!(!std::path::Path::new("/tmp").join(escaped).exists());
    let cat = format!("/tmp/{escaped}");
    assert_eq!(ok(svc.run(&["exec", "h1", "cat", &cat])), "evil");
    let inside = ok(svc.run(&["exec", "h1", "find", "/tmp", "-name", "pwned"]));
    assert_eq!(inside.trim(), format!("/tmp{outside_path}/pwned"));
    let o = svc.run(&["exec", "h1", "ls", "/tmp/hard"]);
    assert!(!o.status.success(), "{o:?}");

    // A symlink in the container pointing at the host's directory leads nowhere on a read.
    let link = format!("{outside_path}/secret");
    ok(svc.run(&["exec", "h1", "ln", "-s", &link, "/tmp/out"]));
    let dest = tempfile::tempdir().unwrap();
    let o = svc.run(&["cp", "-L", "h1:/tmp/out", dest.path().to_str().unwrap()]);
    assert!(!o.status.success(), "{o:?}");
    let (head, _) = http_bytes(
        &svc,
        "GET",
        &format!("/containers/h1/archive?path={link}"),
        b"",
    );
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    // Without -L the link itself is copied, as a link.
    ok(svc.run(&["cp", "h1:/tmp/out", dest.path().to_str().unwrap()]));
    assert_eq!(
        std::fs::read_link(dest.path().join("out"))
            .unwrap()
            .to_str(),
        Some(link.as_str())
    );
    // A write through a link to the host's directory finds no such directory.
    ok(svc.run(&["exec", "h1", "ln", "-s", &outside_path, "/tmp/outdir"]));
    let f = dest.path().join("f");
    std::fs::write(&f, "x").unwrap();
    let o = svc.run(&["cp", f.to_str().unwrap(), "h1:/tmp/outdir/"]);
    assert!(!o.status.success(), "{o:?}");
    let (head, _) = http_bytes(
        &svc,
        "PUT",
        "/containers/h1/archive?path=/tmp/outdir",
        &tar_bytes,
    );
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    ok(svc.run(&["rm", "-f", "h1"]));
}

#[test]
fn docker_top_and_stats_show_the_containers_processes_and_use() {
    let Some(svc) = Service::start_for(DOCKER) else {
        return;
    };
    ok(svc.run(&[
        "run",
        "-d",
        "--name",
        "t1",
        "busybox",
        "sh",
        "-c",
        "sleep 301 & sleep 302",
    ]));
    ok(svc.run(&[
        "run", "-d", "--name", "t2", "--memory", "64m", "busybox", "sleep", "303",
    ]));
    let top = ok(svc.run(&["top", "t1"]));
    let first = top.lines().next().unwrap_or("");
    for title in ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"] {
        assert!(first.contains(title), "{top}");
    }
    assert!(
        top.contains("sleep 301") && top.contains("sleep 302"),
        "{top}"
    );
    assert!(!top.contains("sleep 303"), "{top}");
    let kiln_top = svc.kiln.cmd().args(["top", "t1"]).output().unwrap();
    assert!(out(&kiln_top).contains("sleep 301"), "{kiln_top:?}");
    if std::path::Path::new("/usr/bin/ps").exists() || std::path::Path::new("/bin/ps").exists() {
        let o = svc.run(&["top", "t1", "-o", "pid,args"]);
        assert!(out(&o).starts_with("PID"), "{o:?}");
        assert!(out(&o).contains("sleep 302"), "{o:?}");
    }

    let stats = ok(svc.run(&["stats", "--no-stream", "t1", "t2"]));
    let lines: Vec<&str> = stats.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID") && lines[0].contains("PIDS"),
        "{stats}"
    );
    let t1 = lines.iter().find(|l| l.contains(" t1 ")).expect(&stats);
    let pids: u32 = t1.split_whitespace().last().unwrap().parse().unwrap();
    assert!(pids >= 2, "{stats}");
    let t2 = lines.iter().find(|l| l.contains(" t2 ")).expect(&stats);
    assert!(t2.contains("/ 64MiB"), "{stats}");
    let (head, body) = http_bytes(&svc, "GET", "/containers/t2/stats?stream=false", b"");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["memory_stats"]["limit"], 64 << 20, "{v}");
    assert!(v["memory_stats"]["usage"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["pids_stats"]["current"], 1, "{v}");
    assert!(
        v["cpu_stats"]["system_cpu_usage"].as_u64().unwrap()
            > v["precpu_stats"]["system_cpu_usage"].as_u64().unwrap(),
        "{v}"
    );
    assert_eq!(v["name"], "/t2");
    let kiln_stats = svc
        .kiln
        .cmd()
        .args(["stats", "--no-stream", "t2"])
        .output()
        .unwrap();
    assert!(out(&kiln_stats).contains("/ 64MiB"), "{kiln_stats:?}");
    // a stream: a report a second, ended by the container's stop
    let mut s = UnixStream::connect(&svc.socket).unwrap();
    write!(s, "GET /containers/t1/stats HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    while seen.windows(5).filter(|w| w == b"\"read").count() < 2 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    drop(s);
    let o = svc.run(&["top", "nosuch"]);
    assert!(!o.status.success());
    ok(svc.run(&["rm", "-f", "t1", "t2"]));
    let o = svc.run(&["top", "t1"]);
    assert!(!o.status.success());
}
