//! The runtime's behaviour on a real busybox rootfs, as root: what a docker
//! user expects from `docker run` and a RUN step.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{run, sh, Sandbox};
use kiln_executor::spec::{MountSpec, NetworkMode, StdioSpec};

#[test]
fn env_args_and_exit_codes() {
    let sb = Sandbox::new();
    let mut spec = sb.spec(&["sh", "-c", "echo \"$FOO|$HOME|$PATH\"; exit 7"]);
    spec.process
        .set_env(Some(vec!["FOO=bar baz".into(), "PATH=/bin".into()]));
    let out = run(spec).unwrap();
    assert_eq!(out.stdout, "bar baz|/root|/bin\n");
    assert_eq!(out.code, 7);
}

#[test]
fn pid_one_hostname_and_few_processes() {
    let sb = Sandbox::new();
    let mut spec = sb.spec(&[
        "sh",
        "-c",
        "echo $$; hostname; cat /etc/hostname; ls /proc | grep -c '^[0-9]'",
    ]);
    spec.hostname = "buildbox".into();
    let out = run(spec).unwrap();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(&lines[..3], ["1", "buildbox", "buildbox"], "{out:?}");
    assert!(lines[3].parse::<u32>().unwrap() < 5, "{out:?}");
}

#[test]
fn working_directory_is_created_inside_the_root() {
    let sb = Sandbox::new();
    let mut spec = sb.spec(&["pwd"]);
    spec.process.set_cwd(PathBuf::from("/srv/app"));
    let out = run(spec).unwrap();
    assert_eq!(out.stdout, "/srv/app\n");
    assert!(
        sb.upper().join("srv/app").is_dir(),
        "made in the container's layer"
    );
}

fn user_spec(sb: &Sandbox, user: &str, script: &str) -> kiln_executor::ContainerSpec {
    let mut spec = sb.spec(&["sh", "-c", script]);
    let mut u = oci_spec::runtime::User::default();
    u.set_username(Some(user.into()));
    spec.process.set_user(u);
    spec
}

#[test]
fn users_by_name_and_number() {
    let sb = Sandbox::new();
    let out = run(user_spec(
        &sb,
        "alice",
        "echo $(id -u):$(id -g):$(id -G):$HOME; grep CapEff /proc/self/status",
    ))
    .unwrap();
    assert_eq!(
        out.stdout.lines().next().unwrap(),
        "1000:1000:1000 50:/home/alice",
        "{out:?}"
    );
    assert!(
        out.stdout.contains("CapEff:\t0000000000000000"),
        "a non-root user keeps no capability: {out:?}"
    );
    let out = run(user_spec(&sb, "1234:5678", "echo $(id -u):$(id -g)")).unwrap();
    assert_eq!(out.stdout, "1234:5678\n");
    let out = run(user_spec(&sb, "nobody", "id -u")).unwrap();
    assert_eq!(out.stdout, "65534\n");
    let err = run(user_spec(&sb, "mallory", "true")).unwrap_err();
    assert!(err.to_string().contains("mallory"), "{err}");
}

#[test]
fn command_not_found_is_127_like_docker() {
    let sb = Sandbox::new();
    match run(sb.spec(&["no-such-program"])) {
        Err(kiln_executor::Error::Exec { code, message }) => {
            assert_eq!(code, 127);
            assert!(message.contains("not found"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let sb = Sandbox::new();
    match run(sb.spec(&["/etc/passwd"])) {
        Err(kiln_executor::Error::Exec { code, .. }) => assert_eq!(code, 126),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stdin_streams_in_and_output_streams_out() {
    let sb = Sandbox::new();
    let mut spec = sb.spec(&["sh", "-c", "while read l; do echo got:$l; done"]);
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let (or, ow) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    spec.stdin = StdioSpec::Fd(r);
    spec.stdout = StdioSpec::Fd(ow);
    let running = kiln_executor::launch::start(spec).unwrap();
    let mut input = std::fs::File::from(w);
    let mut output = std::fs::File::from(or);
    // Streaming: the first line comes back before stdin is closed.
    input.write_all(b"one\n").unwrap();
    let mut buf = [0u8; 64];
    let n = output.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"got:one\n");
    input.write_all(b"two\n").unwrap();
    drop(input);
    let mut rest = String::new();
    output.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "got:two\n");
    assert_eq!(running.wait().unwrap(), 0);
}

#[test]
fn signals_reach_the_program_and_kill_gives_137() {
    let sb = Sandbox::new();
    let (or, ow) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut spec = sb.spec(&[
        "sh",
        "-c",
        "trap 'echo got-term; exit 3' TERM; echo ready; sleep 30 & wait",
    ]);
    spec.stdout = StdioSpec::Fd(ow);
    let running = kiln_executor::launch::start(spec).unwrap();
    let mut out = std::fs::File::from(or);
    let mut buf = [0u8; 6];
    out.read_exact(&mut buf).unwrap();
    running.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest.trim(), "got-term");
    assert_eq!(running.wait().unwrap(), 3);

    let sb = Sandbox::new();
    let running = kiln_executor::launch::start(sb.spec(&["sleep", "30"])).unwrap();
    let t = Instant::now();
    running.kill().unwrap();
    assert_eq!(running.wait().unwrap(), 137);
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_pty_is_the_containers_own() {
    let sb = Sandbox::new();
    let mut spec = sb.spec(&["sh", "-c", "tty; stty size"]);
    spec.process.set_terminal(Some(true));
    let running = kiln_executor::launch::start(spec).unwrap();
    let master = running.pty_master.as_ref().unwrap().try_clone().unwrap();
    let mut text = String::new();
    let mut f = std::fs::File::from(master);
    let mut buf = [0u8; 256];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(running.wait().unwrap(), 0);
    assert!(text.starts_with("/dev/pts/0"), "{text:?}");
}

#[test]
fn docker_defaults_for_caps_seccomp_and_no_new_privs() {
    let out = sh("grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status");
    assert_eq!(
        out.stdout,
        "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\nSeccomp:\t2\n",
        "{out:?}"
    );
    let sb = Sandbox::new();
    let mut spec = sb.spec(&[
        "sh",
        "-c",
        "grep -E '^(CapEff|NoNewPrivs):' /proc/self/status",
    ]);
    spec.process.set_no_new_privileges(Some(true));
    spec.capabilities = kiln_executor::caps::adjust(
        kiln_executor::caps::docker_default(),
        &["NET_ADMIN".into()],
        &["CHOWN".into()],
    )
    .unwrap();
    let out = run(spec).unwrap();
    assert_eq!(
        out.stdout,
        format!(
            "CapEff:\t{:016x}\nNoNewPrivs:\t1\n",
            (0xa80425fbu64 | 1 << 12) & !1
        )
    );
}

#[test]
fn setuid_programs_work_unless_no_new_privileges() {
    // A setuid-root program run by a non-root user gains euid 0: what sudo
    // and su rely on in RUN steps. With no_new_privs it does not.
    let script = "cp /bin/escape /tmp/suid && chmod 4755 /tmp/suid && su -s /bin/sh nobody -c '/tmp/suid ids'";
    for (nnp, want) in [
        (false, "ruid=65534 euid=0\n"),
        (true, "ruid=65534 euid=65534\n"),
    ] {
        let sb = Sandbox::new();
        let mut spec = sb.spec(&["sh", "-c", script]);
        spec.process.set_no_new_privileges(Some(nnp));
        let out = run(spec).unwrap();
        assert_eq!(out.stdout, want, "no_new_privs={nnp}: {out:?}");
    }
}

#[test]
fn network_none_has_only_loopback_up() {
    let out = sh("ls /sys/class/net; cat /sys/class/net/lo/operstate; ping -c1 -W1 127.0.0.1 >/dev/null && echo ping-ok");
    assert_eq!(out.stdout, "lo\nunknown\nping-ok\n", "{out:?}");
}

#[test]
fn generated_etc_files_and_extra_hosts() {
    let sb = Sandbox::new();
    let mut spec = sb.spec(&["sh", "-c", "cat /etc/hosts /etc/resolv.conf"]);
    spec.network
        .extra_hosts
        .push(("registry.test".into(), "10.9.8.7".into()));
    spec.network.dns.push("192.0.2.53".into());
    let out = run(spec).unwrap();
    assert!(out.stdout.contains("10.9.8.7\tregistry.test"), "{out:?}");
    assert!(out.stdout.contains("nameserver 192.0.2.53"), "{out:?}");
    assert!(
        !sb.upper().join("etc/resolv.conf").exists()
            || std::fs::read_to_string(sb.upper().join("etc/resolv.conf"))
                .unwrap()
                .is_empty()
    );
}

#[test]
fn bind_mounts_tmpfs_and_read_only_root() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in"), "from-host").unwrap();
    let sb = Sandbox::new();
    let mut spec = sb.spec(&["sh", "-c", "cat /src/in; echo w > /src/out 2>/dev/null || echo ro-ok; echo t > /scratch/x && echo tmpfs-ok; touch /y 2>/dev/null || echo rootfs-ro"]);
    spec.mounts.push(MountSpec::Bind {
        source: host.path().into(),
        destination: "/src".into(),
        readonly: true,
    });
    spec.mounts.push(MountSpec::Tmpfs {
        destination: "/scratch".into(),
        size: 1 << 20,
    });
    spec.readonly_rootfs = true;
    let out = run(spec).unwrap();
    assert_eq!(
        out.stdout, "from-hostro-ok\ntmpfs-ok\nrootfs-ro\n",
        "{out:?}"
    );
    assert!(!host.path().join("out").exists());
}

#[test]
fn cache_mounts_persist_and_locked_ones_serialize() {
    let cache = tempfile::tempdir().unwrap();
    let src = cache.path().join("c1");
    for (i, expect) in [(1, "1\n"), (2, "1\n2\n")] {
        let sb = Sandbox::new();
        let mut spec = sb.spec(&[
            "sh",
            "-c",
            &format!("echo {i} >> /cache/log; cat /cache/log"),
        ]);
        spec.mounts.push(MountSpec::Cache {
            source: src.clone(),
            destination: "/cache".into(),
            sharing: kiln_executor::spec::CacheSharing::Locked,
            readonly: false,
        });
        assert_eq!(run(spec).unwrap().stdout, expect);
    }
    // private: a second concurrent user gets a different directory
    let sb1 = Sandbox::new();
    let mut s1 = sb1.spec(&["sleep", "30"]);
    s1.mounts.push(MountSpec::Cache {
        source: src.clone(),
        destination: "/cache".into(),
        sharing: kiln_executor::spec::CacheSharing::Private,
        readonly: false,
    });
    let r1 = kiln_executor::launch::start(s1).unwrap();
    let sb2 = Sandbox::new();
    let mut s2 = sb2.spec(&["sh", "-c", "cat /cache/log 2>/dev/null || echo empty"]);
    s2.mounts.push(MountSpec::Cache {
        source: src.clone(),
        destination: "/cache".into(),
        sharing: kiln_executor::spec::CacheSharing::Private,
        readonly: false,
    });
    assert_eq!(run(s2).unwrap().stdout, "empty\n");
    r1.kill().unwrap();
    r1.wait().unwrap();
}

#[test]
fn secrets_are_readable_but_never_written_to_the_layer() {
    let sb = Sandbox::new();
    let mut spec = sb.spec(&["sh", "-c", "cat /run/secrets/token; stat -c %a /run/secrets/token; echo x > /run/secrets/token 2>/dev/null || echo ro"]);
    spec.mounts.push(MountSpec::Secret {
        data: b"s3cr3t-value".to_vec(),
        destination: "/run/secrets/token".into(),
        mode: 0o400,
        uid: 0,
        gid: 0,
    });
    let out = run(spec).unwrap();
    assert_eq!(out.stdout, "s3cr3t-value400\nro\n", "{out:?}");
    let found = std::process::Command::new("grep")
        .args(["-rl", "s3cr3t-value"])
        .arg(sb.dir.path())
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "secret on disk: {}",
        String::from_utf8_lossy(&found.stdout)
    );
}

#[test]
fn ssh_agent_socket_is_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let t = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(b"agent-hello\n").unwrap();
    });
    let sb = Sandbox::new();
    let mut spec = sb.spec(&["sh", "-c", "/bin/escape unix-read /run/ssh.sock"]);
    spec.mounts.push(MountSpec::SshAgent {
        socket: sock.clone(),
        destination: "/run/ssh.sock".into(),
    });
    let out = run(spec).unwrap();
    assert_eq!(out.stdout, "agent-hello\n", "{out:?}");
    t.join().unwrap();
}

#[test]
fn published_port_reaches_a_server_in_a_none_network_and_is_freed() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sb = Sandbox::new();
    let mut spec = sb.spec(&[
        "sh",
        "-c",
        "mkdir -p /www && echo hello-web > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    spec.network.mode = NetworkMode::None;
    spec.network.ports.push(kiln_executor::PortMapping {
        host_ip: "127.0.0.1".parse().unwrap(),
        host_port: port,
        container_port: 80,
        protocol: kiln_executor::Protocol::Tcp,
    });
    let running = kiln_executor::launch::start(spec).unwrap();
    let mut body = String::new();
    for _ in 0..50 {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            body.clear();
            c.read_to_string(&mut body).ok();
            if body.contains("hello-web") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(body.contains("hello-web"), "{body:?}");
    running.kill().unwrap();
    running.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
}

#[test]
fn default_network_reaches_a_namespace_the_test_made() {
    if std::process::Command::new("slirp4netns")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("slirp4netns is missing: run scripts/deps.sh");
    }
    let ns = TestNetns::new();
    let sb = Sandbox::new();
    let mut spec = sb.spec(&[
        "sh",
        "-c",
        &format!("for i in 1 2 3 4 5 6 7 8 9 10; do nc -w 3 {} 7777 </dev/null && break; sleep 0.3; done", ns.peer_ip),
    ]);
    spec.network.mode = NetworkMode::Default;
    let out = run(spec).unwrap();
    assert_eq!(out.stdout, "from-test-netns\n", "{out:?}");
}

/// A network namespace with a veth peer and a one-shot TCP server in it,
/// torn down on drop: the only non-loopback address a test may reach.
struct TestNetns {
    name: String,
    host_if: String,
    peer_ip: String,
    server: Option<std::process::Child>,
}

impl TestNetns {
    fn new() -> TestNetns {
        let tag = &kiln_executor::state::new_id()[..6];
        let name = format!("kilnt{tag}");
        let host_if = format!("kh{tag}");
        let n: u8 = u8::from_str_radix(&tag[..2], 16).unwrap() % 200 + 20;
        let (host_ip, peer_ip) = (format!("10.251.{n}.1"), format!("10.251.{n}.2"));
        let ip = |args: &str| {
            let st = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("ip {args}"))
                .status()
                .unwrap();
            assert!(st.success(), "ip {args}");
        };
        ip(&format!("netns add {name}"));
        let mut ns = TestNetns {
            name: name.clone(),
            host_if: host_if.clone(),
            peer_ip: peer_ip.clone(),
            server: None,
        };
        ip(&format!(
            "link add {host_if} type veth peer name eth0 netns {name}"
        ));
        ip(&format!("addr add {host_ip}/30 dev {host_if}"));
        ip(&format!("link set {host_if} up"));
        ip(&format!("-n {name} addr add {peer_ip}/30 dev eth0"));
        ip(&format!("-n {name} link set eth0 up"));
        ip(&format!("-n {name} link set lo up"));
        ns.server = Some(
            std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &name,
                    "busybox",
                    "sh",
                    "-c",
                    "echo from-test-netns | busybox nc -l -p 7777",
                ])
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(300));
        ns
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn init_reaps_and_forwards() {
    let sb = Sandbox::new();
    let mut spec = sb.spec(&[
        "sh",
        "-c",
        "echo $$; (sleep 0.1 &) ; sleep 0.3; ps -o pid,comm | grep -c defunct; exit 5",
    ]);
    spec.init = true;
    let out = run(spec).unwrap();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_ne!(
        lines[0], "1",
        "the program is not PID 1 under --init: {out:?}"
    );
    assert_eq!(lines[1], "0", "no zombie left: {out:?}");
    assert_eq!(out.code, 5);
}

#[test]
fn exec_joins_a_running_container() {
    let sb = Sandbox::new();
    let mut spec = sb.spec(&["sh", "-c", "echo marker > /tmp/m; sleep 30"]);
    spec.hostname = "exectarget".into();
    let running = kiln_executor::launch::start(spec).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut process = oci_spec::runtime::Process::default();
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "cat /tmp/m; hostname; grep CapEff /proc/self/status".into(),
    ]));
    process.set_env(Some(vec!["PATH=/bin".into()]));
    process.set_cwd("/".into());
    process.set_capabilities(None);
    process.set_rlimits(None);
    let (or, ow) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let e = kiln_executor::launch::exec(
        "none",
        running.pid,
        kiln_executor::launch::ExecSpec {
            process,
            capabilities: kiln_executor::caps::docker_default(),
            seccomp: true,
            stdin: StdioSpec::Null,
            stdout: StdioSpec::Fd(ow),
            stderr: StdioSpec::Inherit,
        },
    )
    .unwrap();
    let mut text = String::new();
    std::fs::File::from(or).read_to_string(&mut text).unwrap();
    assert_eq!(e.wait().unwrap(), 0);
    assert_eq!(text, "marker\nexectarget\nCapEff:\t00000000a80425fb\n");
    running.kill().unwrap();
    running.wait().unwrap();
}

#[test]
fn rlimits_never_exceed_the_hard_limit() {
    let sb = Sandbox::new();
    let mut spec = sb.spec(&["sh", "-c", "ulimit -n; ulimit -Hn"]);
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    let rl = oci_spec::runtime::PosixRlimitBuilder::default()
        .typ(oci_spec::runtime::PosixRlimitType::RlimitNofile)
        .soft(512u64)
        .hard(hard.saturating_mul(4))
        .build()
        .unwrap();
    spec.process.set_rlimits(Some(vec![rl]));
    let out = run(spec).unwrap();
    assert_eq!(out.stdout, format!("512\n{hard}\n"), "{out:?}");
}

#[test]
fn memory_pids_and_cpu_limits_land_in_the_hosts_cgroups() {
    let sb = Sandbox::new();
    let mut spec = sb.spec(&["sleep", "5"]);
    let id = spec.id.clone();
    spec.resources = kiln_executor::Resources {
        memory: Some(64 << 20),
        pids: Some(40),
        cpu_millis: Some(500),
    };
    let running = kiln_executor::launch::start(spec).unwrap();
    assert!(
        running.skipped_limits.is_empty(),
        "{:?}",
        running.skipped_limits
    );
    let find = |ctrl: &str, file: &str| -> String {
        for base in [
            format!("/sys/fs/cgroup/{ctrl}/kiln/{id}"),
            format!("/sys/fs/cgroup/kiln/{id}"),
        ] {
            if let Ok(v) = std::fs::read_to_string(format!("{base}/{file}")) {
                return v.trim().to_string();
            }
        }
        panic!("no {ctrl} cgroup for {id}");
    };
    let (mem, pids, cpu) = if std::path::Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        (
            find("memory", "memory.limit_in_bytes"),
            find("pids", "pids.max"),
            find("cpu", "cpu.cfs_quota_us"),
        )
    } else {
        (
            find("", "memory.max"),
            find("", "pids.max"),
            find("", "cpu.max").split(' ').next().unwrap().to_string(),
        )
    };
    assert_eq!(
        (mem.as_str(), pids.as_str(), cpu.as_str()),
        ("67108864", "40", "50000")
    );
    let procs = find("pids", "cgroup.procs");
    assert!(
        procs.lines().any(|p| p == running.pid.to_string()),
        "{procs}"
    );
    running.kill().unwrap();
    running.wait().unwrap();
    assert!(
        !std::path::Path::new(&format!("/sys/fs/cgroup/pids/kiln/{id}")).exists(),
        "removed after exit"
    );
}

#[test]
fn a_timed_out_step_is_killed_and_leaves_nothing() {
    let sb = Sandbox::new();
    let running =
        kiln_executor::launch::start(sb.spec(&["sh", "-c", "sleep 60 & sleep 60"])).unwrap();
    let pid = running.pid;
    assert_eq!(
        running.wait_timeout(Duration::from_millis(300)).unwrap(),
        None
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&sb.dir.path().display().to_string()));
}
