//! User-defined networks end to end (root): names and aliases resolve, replicas behind one
//! alias answer with every address, two networks are isolated by name and by address,
//! connect/disconnect, `--internal` has no default route, `rm` is refused while in use, `-p`
//! works on a user network, and the host's firewall, routes, links and namespaces are the
//! same after as before; a SIGKILL of a supervisor and of a helper leaves nothing behind.
//! Clients are busybox `wget` under `timeout` (busybox's `wget -T` segfaults).

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::Kiln;

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(k: &Kiln, args: &[&str]) -> String {
    let o = k.cmd().args(args).output().unwrap();
    assert!(o.status.success(), "kiln {args:?}: {}", common::log(&o));
    text(&o)
}

fn sh(cmd: &str) -> String {
    let o = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap();
    text(&o)
}

/// The host's firewall (both backends, no counters) and routes.
fn firewall_and_routes() -> String {
    sh("for t in iptables-save ip6tables-save iptables-legacy-save ip6tables-legacy-save; do \
        command -v $t >/dev/null && $t 2>/dev/null; done | grep -v '^#' | sed -E 's/\\[[0-9]+:[0-9]+\\]//g'; \
        ip route; ip -6 route")
    .replace(" linkdown", "")
}

/// The host's links and named network namespaces.
fn links_and_netns() -> Vec<String> {
    let mut v: Vec<String> =
        sh("ip -br link | awk '{print \"link\", $1}'; ip netns list | awk '{print \"netns\", $1}'")
            .lines()
            .map(str::to_string)
            .collect();
    v.sort();
    v
}

/// `kiln run --rm --network NET busybox sh -c SCRIPT`, its stdout.
fn client(k: &Kiln, net: &str, extra: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm", "--network", net];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    let o = k.cmd().args(&args).output().unwrap();
    text(&o).trim().to_string()
}

fn blocked(url: &str) -> String {
    format!("timeout 3 wget -q -O- {url} >/dev/null 2>&1 && echo reached || echo blocked")
}

fn inspect(k: &Kiln, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&ok(k, &["inspect", name])).unwrap();
    v[0].clone()
}

fn http_get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

fn helper_pids(root: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root.join("networks"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(t) = std::fs::read_to_string(e.path().join("helper.pid")) {
            if let Some(pid) = t.split_whitespace().next().and_then(|p| p.parse().ok()) {
                out.push(pid);
            }
        }
    }
    out
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")
}

/// Removes every container and network of a root when dropped, so a failed assertion leaves
/// no process or namespace behind.
struct Cleanup<'a>(&'a Kiln);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let ids = self
            .0
            .cmd()
            .args(["ps", "-aq"])
            .output()
            .map(|o| text(&o))
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            let _ = self.0.cmd().args(["rm", "-f", id]).output();
        }
        let nets = self
            .0
            .cmd()
            .args(["network", "ls", "-q", "--filter", "type=custom"])
            .output();
        for id in nets
            .map(|o| text(&o))
            .unwrap_or_default()
            .split_whitespace()
        {
            let _ = self.0.cmd().args(["network", "rm", id]).output();
        }
    }
}

#[test]
fn networks_resolve_isolate_connect_and_leave_the_host_as_it_was() {
    let fw_before = firewall_and_routes();
    let host_before = links_and_netns();
    let k = Kiln::new();
    let _cleanup = Cleanup(&k);
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "hello-net\n").unwrap();
    let vol = format!("{}:/www:ro", www.path().display());
    ok(
        &k,
        &["network", "create", "--subnet", "10.231.7.0/24", "ta"],
    );
    ok(&k, &["network", "create", "tb"]);
    ok(&k, &["network", "create", "--internal", "ti"]);
    let dup = k.cmd().args(["network", "create", "ta"]).output().unwrap();
    assert!(!dup.status.success(), "a second network ta");
    let ls = ok(&k, &["network", "ls"]);
    for n in ["bridge", "host", "none", "ta", "tb", "ti"] {
        assert!(ls.split_whitespace().any(|w| w == n), "{n} in {ls}");
    }
    let net: serde_json::Value =
        serde_json::from_str(&ok(&k, &["network", "inspect", "ta"])).unwrap();
    assert_eq!(net[0]["IPAM"]["Config"][0]["Subnet"], "10.231.7.0/24");
    assert_eq!(net[0]["IPAM"]["Config"][0]["Gateway"], "10.231.7.1");

    ok(
        &k,
        &[
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            "ta",
            "--network-alias",
            "srv-alias",
            "-v",
            &vol,
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ],
    );
    let get = "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 5 wget -q -O- http://srv/ && exit; sleep 0.3; done";
    assert_eq!(client(&k, "ta", &[], get), "hello-net");
    assert_eq!(
        client(&k, "ta", &[], "timeout 5 wget -q -O- http://srv-alias/"),
        "hello-net"
    );
    let srv = inspect(&k, "srv");
    let ip = srv["NetworkSettings"]["Networks"]["ta"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip.starts_with("10.231.7."), "{ip}");
    assert_eq!(srv["NetworkSettings"]["Networks"]["ta"]["IPPrefixLen"], 24);
    let short = &srv["Id"].as_str().unwrap()[..12];
    assert_eq!(
        client(
            &k,
            "ta",
            &[],
            &format!("timeout 5 wget -q -O- http://{short}/")
        ),
        "hello-net"
    );

    // --ip picks the address; a taken one is refused
    assert!(
        client(&k, "ta", &["--ip", "10.231.7.77"], "ip -4 addr show eth0")
            .contains("inet 10.231.7.77/24")
    );
    let taken = k
        .cmd()
        .args([
            "run",
            "--rm",
            "--network",
            "ta",
            "--ip",
            &ip,
            "busybox",
            "true",
        ])
        .output()
        .unwrap();
    assert!(!taken.status.success(), "{ip} is srv's");

    // --network container:srv shares srv's namespace (its loopback) and name server
    assert_eq!(
        client(
            &k,
            "container:srv",
            &[],
            "timeout 5 wget -q -O- http://127.0.0.1/"
        ),
        "hello-net"
    );
    assert_eq!(
        client(
            &k,
            "container:srv",
            &[],
            "timeout 5 wget -q -O- http://srv-alias/"
        ),
        "hello-net"
    );

    // two replicas behind one alias: both addresses, in turns
    for n in ["p1", "p2"] {
        ok(
            &k,
            &[
                "run",
                "-d",
                "--name",
                n,
                "--network",
                "ta",
                "--network-alias",
                "pool",
                "busybox",
                "sleep",
                "300",
            ],
        );
    }
    let pool = client(&k, "ta", &[], "nslookup pool");
    let addrs: Vec<&str> = pool
        .lines()
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(str::trim)
        .filter(|a| !a.contains(':'))
        .collect();
    assert_eq!(addrs.len(), 2, "{pool}");

    // tb knows nothing of srv, by name or address
    assert_eq!(
        client(&k, "tb", &["--dns", "127.0.0.1"], &blocked("http://srv/")),
        "blocked"
    );
    assert_eq!(
        client(&k, "tb", &[], &blocked(&format!("http://{ip}/"))),
        "blocked"
    );
    // connected to tb as well, it answers there; disconnected, no more
    ok(&k, &["network", "connect", "tb", "srv"]);
    assert_eq!(
        client(&k, "tb", &[], "timeout 5 wget -q -O- http://srv/"),
        "hello-net"
    );
    let nets = inspect(&k, "srv")["NetworkSettings"]["Networks"].clone();
    let mut names: Vec<&String> = nets.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["ta", "tb"]);
    assert!(ok(&k, &["network", "inspect", "tb"]).contains("\"srv\""));
    ok(&k, &["network", "disconnect", "tb", "srv"]);
    assert_eq!(
        client(&k, "tb", &["--dns", "127.0.0.1"], &blocked("http://srv/")),
        "blocked"
    );

    // --internal: no default route; a plain network has one
    let route = "ip route get 198.51.100.1 >/dev/null 2>&1 && echo route || echo no-route";
    assert_eq!(client(&k, "ta", &[], route), "route");
    assert_eq!(client(&k, "ti", &[], route), "no-route");
    ok(&k, &["network", "connect", "ti", "srv"]);
    assert_eq!(
        client(&k, "ti", &[], "timeout 5 wget -q -O- http://srv/"),
        "hello-net"
    );
    assert_eq!(
        client(
            &k,
            "ti",
            &[],
            "nslookup nothere >/dev/null 2>&1 && echo found || echo nx"
        ),
        "nx"
    );

    // -p on a user network
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ok(
        &k,
        &[
            "run",
            "-d",
            "--name",
            "pub",
            "--network",
            "ta",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "-v",
            &vol,
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(port).as_deref() != Some("hello-net\n") {
        assert!(Instant::now() < deadline, "no page on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // rm while in use: docker's message, the network stays
    let rm = k.cmd().args(["network", "rm", "ta"]).output().unwrap();
    assert!(!rm.status.success());
    let msg = String::from_utf8_lossy(&rm.stderr);
    assert!(
        msg.contains("error while removing network: network ta id")
            && msg.contains("has active endpoints"),
        "{msg}"
    );
    assert!(ok(&k, &["network", "ls"]).contains(" ta "));
    assert_eq!(
        firewall_and_routes(),
        fw_before,
        "the host's firewall or routes changed"
    );

    let helpers = helper_pids(k.root.path());
    // ta and ti are in use; tb, left by srv, lost its helper
    assert_eq!(helpers.len(), 2, "one helper per network in use");
    ok(&k, &["rm", "-f", "srv", "p1", "p2", "pub"]);
    ok(&k, &["network", "rm", "ta", "tb", "ti"]);
    ok(&k, &["network", "create", "tp"]);
    assert_eq!(
        ok(&k, &["network", "prune", "-f"]).trim(),
        "Deleted Networks:\ntp"
    );
    assert!(!ok(&k, &["network", "ls"]).contains(" tp "));
    for pid in helpers {
        assert!(!alive(pid), "helper {pid} still runs");
    }
    assert_eq!(
        firewall_and_routes(),
        fw_before,
        "the host's firewall or routes changed"
    );
    let after = links_and_netns();
    let added: Vec<&String> = after.iter().filter(|l| !host_before.contains(l)).collect();
    assert!(added.is_empty(), "left on the host: {added:?}");
}

#[test]
fn sigkill_of_supervisor_and_helper_leaves_nothing() {
    let host_before = links_and_netns();
    let k = Kiln::new();
    let _cleanup = Cleanup(&k);
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "hello-again\n").unwrap();
    let vol = format!("{}:/www:ro", www.path().display());
    ok(&k, &["network", "create", "tk"]);
    let id = ok(
        &k,
        &[
            "run",
            "-d",
            "--name",
            "victim",
            "--network",
            "tk",
            "-v",
            &vol,
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ],
    );
    let id = id.trim();
    // the helper alone killed: the next kiln command starts another, which makes the
    // running container's veth again
    let first = helper_pids(k.root.path());
    assert_eq!(first.len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(first[0]) {
        assert!(Instant::now() < deadline, "the helper survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(&k, &["ps"]);
    assert_eq!(
        client(&k, "tk", &[], "timeout 5 wget -q -O- http://victim/"),
        "hello-again"
    );
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(k.root.path().join("containers").join(id).join("state.json")).unwrap(),
    )
    .unwrap();
    let supervisor = state["supervisor"].as_i64().unwrap() as i32;
    let program = state["pid"].as_i64().unwrap() as i32;
    let helpers = helper_pids(k.root.path());
    assert_eq!(helpers.len(), 1);
    for pid in [supervisor, helpers[0]] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(program) || alive(helpers[0]) {
        assert!(
            Instant::now() < deadline,
            "the container or the helper survived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // the next kiln command drops what they left
    ok(&k, &["ps", "-a"]);
    let net: serde_json::Value =
        serde_json::from_str(&ok(&k, &["network", "inspect", "tk"])).unwrap();
    assert_eq!(net[0]["Containers"], serde_json::json!({}));
    let netdir = std::fs::read_dir(k.root.path().join("networks"))
        .unwrap()
        .flatten()
        .find(|e| e.path().join("network.json").exists())
        .unwrap()
        .path();
    assert!(!netdir.join("helper.pid").exists());
    assert_eq!(
        std::fs::read_dir(netdir.join("endpoints")).unwrap().count(),
        0
    );
    // and the network works again
    let out = k
        .cmd()
        .args([
            "run",
            "--rm",
            "--network",
            "tk",
            "busybox",
            "sh",
            "-c",
            "ip route get 198.51.100.1 >/dev/null && echo route",
        ])
        .output()
        .unwrap();
    assert_eq!(text(&out).trim(), "route", "{}", common::log(&out));
    ok(&k, &["rm", "-f", "victim"]);
    ok(&k, &["network", "rm", "tk"]);
    let after = links_and_netns();
    let added: Vec<&String> = after.iter().filter(|l| !host_before.contains(l)).collect();
    assert!(added.is_empty(), "left on the host: {added:?}");
}
