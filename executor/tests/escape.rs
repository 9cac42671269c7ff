//! The escape suite: each case tries to break out of the container the way
//! a hostile RUN step would, and asserts the effect on the host did not
//! happen (a file not written, a process not killed, a mount not made, a
//! value not changed), not merely that a command failed.

mod common;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{host_mounts_with, run, sh, Sandbox};
use kiln_executor::spec::{MountSpec, NetworkMode, Resources};

fn esc(action: &str, arg: &str) -> String {
    let out = sh(&format!("/bin/escape {action} {arg}"));
    out.stdout.trim().to_string()
}

fn marker() -> String {
    format!("kilnesc{}", &kiln_executor::state::new_id()[..10])
}

// --- CVE-2024-21626: leaked descriptors and a working directory under /proc/self/fd

#[test]
fn cwd_under_proc_self_fd_is_refused_and_writes_nothing_on_the_host() {
    let host = tempfile::tempdir().unwrap();
    // A host directory descriptor kiln's caller holds (as runc leaked one).
    let dirfd = std::fs::File::open(host.path()).unwrap();
    let n = dirfd.as_raw_fd();
    for cwd in [
        format!("/proc/self/fd/{n}"),
        "/proc/self/fd/7".into(),
        "/proc/thread-self/fd/3".into(),
        "/proc/1/fd/5".into(),
    ] {
        let sb = Sandbox::new();
        let mut spec = sb.spec(&[
            "sh",
            "-c",
            "echo pwned > ../pwned; echo pwned > ./pwned; pwd",
        ]);
        spec.process.set_cwd(PathBuf::from(&cwd));
        let r = run(spec);
        assert!(
            r.is_err()
                || !r
                    .as_ref()
                    .unwrap()
                    .stdout
                    .contains(&host.path().display().to_string()),
            "{cwd}: {r:?}"
        );
    }
    assert_eq!(
        std::fs::read_dir(host.path()).unwrap().count(),
        0,
        "nothing was written in the host directory"
    );
    assert!(!host.path().parent().unwrap().join("pwned").exists());
}

#[test]
fn no_descriptor_of_kiln_leaks_into_the_container() {
    // A careless caller leaves a host file open without CLOEXEC.
    let host = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(host.path(), "host-secret").unwrap();
    let f = std::fs::File::open(host.path()).unwrap();
    let fd = f.as_raw_fd();
    nix::fcntl::fcntl(
        &f,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let out = sh(&format!(
        "/bin/escape fds; cat /proc/self/fd/{fd} 2>/dev/null; ls -l /proc/self/fd/ | grep -c {}",
        host.path().display()
    ));
    assert!(out.stdout.starts_with("count=0\n"), "{out:?}");
    assert!(!out.stdout.contains("host-secret"), "{out:?}");
}

// --- CVE-2019-5736: overwriting the runtime binary through /proc/*/exe

#[test]
fn proc_exe_of_no_process_is_the_host_runtime_and_cannot_be_overwritten() {
    let me = std::fs::read_link("/proc/self/exe").unwrap();
    let before = std::fs::read(&me).unwrap();
    let out = sh("for p in /proc/[0-9]*; do readlink $p/exe; done; /bin/escape write-exe; echo x > /proc/self/exe 2>/dev/null && echo wrote-self");
    assert!(!out.stdout.contains(&me.display().to_string()), "{out:?}");
    assert!(!out.stdout.contains("kiln"), "{out:?}");
    assert!(!out.stdout.contains("wrote-self"), "{out:?}");
    assert_eq!(
        std::fs::read(&me).unwrap(),
        before,
        "the host binary is unchanged"
    );
    // and the image's own busybox is untouched in the shared rootfs
    assert!(
        std::fs::metadata(common::busybox_rootfs().join("bin/busybox"))
            .unwrap()
            .len()
            > 100_000
    );
}

// --- mount, umount, pivot_root, unshare, setns

#[test]
fn mount_is_denied_and_nothing_appears_in_any_mount_table() {
    let m = marker();
    let out = sh(&format!("mkdir -p /mnt/x; mount -t tmpfs {m} /mnt/x 2>&1; /bin/escape mount /mnt/x; grep -c {m} /proc/mounts"));
    assert!(out.stdout.contains("errno=1"), "{out:?}");
    assert!(out.stdout.trim_end().ends_with('0'), "{out:?}");
    assert!(host_mounts_with(&m).is_empty());
}

#[test]
fn umount_of_a_masked_path_is_denied_and_the_mask_stays() {
    let out = sh("/bin/escape umount /proc/kcore; umount /sys/firmware 2>/dev/null; head -c 16 /proc/kcore | wc -c; ls /sys/firmware | wc -l");
    assert_eq!(out.stdout, "errno=1\n0\n0\n", "{out:?}");
}

#[test]
fn pivot_root_is_denied() {
    assert_eq!(esc("pivot-root", "/tmp"), "errno=1");
}

#[test]
fn unshare_of_mount_and_user_namespaces_is_denied() {
    assert_eq!(esc("unshare-mnt", ""), "errno=1");
    assert_eq!(esc("unshare-user", ""), "errno=1");
    assert_eq!(esc("clone-newuser", ""), "errno=1");
    assert_eq!(
        esc("clone3", ""),
        "errno=38",
        "clone3 is ENOSYS so libc falls back to a checked clone"
    );
    let out = sh("unshare -m true 2>&1; echo rc=$?");
    assert!(out.stdout.contains("rc=1"), "{out:?}");
}

#[test]
fn setns_into_the_host_is_impossible() {
    // The host's namespaces are not even reachable: /proc/1 is the container's own PID 1.
    let own = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let out = sh("readlink /proc/1/ns/mnt; /bin/escape setns /proc/1/ns/mnt");
    assert!(!out.stdout.contains(&own.display().to_string()), "{out:?}");
    assert!(out.stdout.contains("errno=1"), "{out:?}");
}

// --- keyctl, ptrace, kexec, modules, bpf, perf, vsock, open_by_handle_at

#[test]
fn keyctl_is_denied_and_no_key_reaches_the_hosts_keyring() {
    let before = std::fs::read_to_string("/proc/keys")
        .unwrap_or_default()
        .lines()
        .count();
    assert_eq!(esc("keyctl", ""), "errno=1");
    assert_eq!(esc("keyctl-join", ""), "errno=1");
    let after = std::fs::read_to_string("/proc/keys").unwrap_or_default();
    assert!(!after.contains("kiln"), "{after}");
    let _ = before;
}

#[test]
fn ptrace_of_a_host_process_fails_and_it_stays_untraced() {
    let mut victim = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let out = esc("ptrace", &victim.id().to_string());
    assert!(out.starts_with("errno="), "{out}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", victim.id())).unwrap();
    assert!(status.contains("TracerPid:\t0"), "{status}");
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn kexec_is_denied() {
    assert_eq!(esc("kexec", ""), "errno=1");
    assert_eq!(esc("kexec-file", ""), "errno=1");
}

#[test]
fn module_loading_is_denied_and_no_module_appears() {
    let before = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    assert_eq!(esc("init-module", ""), "errno=1");
    assert_eq!(esc("finit-module", ""), "errno=1");
    assert_eq!(esc("delete-module", "loop"), "errno=1");
    assert_eq!(
        std::fs::read_to_string("/proc/modules").unwrap_or_default(),
        before
    );
}

#[test]
fn bpf_perf_vsock_and_open_by_handle_are_denied() {
    assert_eq!(esc("bpf", ""), "errno=1");
    assert_eq!(esc("perf", ""), "errno=1");
    assert_eq!(esc("vsock", ""), "errno=1");
    // the "shocker" escape of docker 0.x
    assert_eq!(esc("open-by-handle", ""), "errno=1");
}

#[test]
fn tiocsti_cannot_type_into_a_terminal() {
    assert_eq!(esc("tiocsti", ""), "errno=1");
}

// --- the host's processes, mounts, files, hostname and kernel settings

#[test]
fn host_processes_cannot_be_seen_or_killed() {
    let mut victim = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = victim.id();
    let out = sh(&format!("kill -9 {pid} 2>/dev/null; kill -9 -1 2>/dev/null; ls /proc | grep -c '^[0-9]'; cat /proc/1/cmdline | tr '\\0' ' '"));
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        victim.try_wait().unwrap().is_none(),
        "the host process survived"
    );
    assert!(
        out.stdout.starts_with(|c: char| c.is_ascii_digit())
            && out.stdout.lines().next().unwrap().parse::<u32>().unwrap() < 5,
        "{out:?}"
    );
    assert!(
        out.stdout.contains("sh -c"),
        "PID 1 is the container's own: {out:?}"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn host_mount_table_is_not_visible() {
    // Every mount point the container sees is one kiln made; none of the
    // host's (/work, /tmp/..., /sys/fs/cgroup/...) is reachable.
    let out = sh("cat /proc/self/mountinfo /proc/1/mountinfo");
    let allowed = [
        "/",
        "/proc",
        "/dev",
        "/sys",
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
    ];
    for line in out.stdout.lines() {
        let point = line.split(' ').nth(4).unwrap();
        assert!(
            allowed
                .iter()
                .any(|a| point == *a || (*a != "/" && point.starts_with(&format!("{a}/")))),
            "{point} in {out:?}"
        );
    }
    assert!(out.stdout.lines().count() > 8, "{out:?}");
}

#[test]
fn classic_chroot_breakout_lands_in_the_container() {
    let host = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(host.path(), "host-only").unwrap();
    let out = esc("chroot-escape", &host.path().display().to_string());
    assert!(!out.contains("host-only"), "{out}");
}

#[test]
fn hostname_change_is_denied_and_the_hosts_is_unchanged() {
    let before = nix::unistd::gethostname().unwrap();
    let out = sh("hostname pwned 2>/dev/null; /bin/escape sethostname pwned2");
    assert_eq!(out.stdout.trim(), "errno=1", "{out:?}");
    assert_eq!(nix::unistd::gethostname().unwrap(), before);
}

#[test]
fn proc_sys_and_sys_are_read_only_for_the_host_kernel() {
    let path = "/proc/sys/kernel/printk_ratelimit_burst";
    let before = std::fs::read_to_string(path).unwrap();
    let bumped = before.trim().parse::<u64>().unwrap() + 1;
    let out = sh(&format!("echo {bumped} > {path} 2>/dev/null || echo denied; touch /sys/kernel/x 2>/dev/null || echo sys-ro"));
    let after = std::fs::read_to_string(path).unwrap();
    if after != before {
        std::fs::write(path, &before).unwrap();
    }
    assert_eq!(
        after, before,
        "host sysctl changed from inside the container"
    );
    assert_eq!(out.stdout, "denied\nsys-ro\n");
}

#[test]
fn masked_proc_files_show_nothing() {
    // (files this kernel lacks count as empty)
    let out = sh("cat /proc/kcore 2>/dev/null | wc -c; cat /proc/keys 2>/dev/null | wc -c; ls /proc/acpi 2>/dev/null | wc -l; cat /proc/timer_list 2>/dev/null | wc -c");
    assert_eq!(out.stdout, "0\n0\n0\n0\n", "{out:?}");
}

// --- symlinks in bind sources, volumes and mount destinations

#[test]
fn symlink_in_a_bind_source_resolves_inside_the_container() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "host-secret-content").unwrap();
    let vol = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(secret.path(), vol.path().join("link")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../", vol.path().join("up")).unwrap();
    let sb = Sandbox::new();
    let mut spec = sb.spec(&[
        "sh",
        "-c",
        &format!(
            "cat /data/link 2>&1; cat /data/up{} 2>&1; ls /data/up/",
            secret.path().display()
        ),
    ]);
    spec.mounts.push(MountSpec::Bind {
        source: vol.path().into(),
        destination: "/data".into(),
        readonly: false,
    });
    let out = run(spec).unwrap();
    assert!(!out.stdout.contains("host-secret-content"), "{out:?}");
    assert!(
        out.stdout.contains("bin"),
        "up/ is the container's root: {out:?}"
    );
}

#[test]
fn symlink_in_a_mount_destination_cannot_place_a_mount_on_the_host() {
    let host = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload"), "x").unwrap();
    let sb = Sandbox::new();
    // The image ships /data -> <host dir> (absolute) and /up -> ../../..
    std::fs::create_dir_all(sb.upper()).unwrap();
    std::os::unix::fs::symlink(host.path(), sb.upper().join("data")).unwrap();
    std::os::unix::fs::symlink("../../../../../..", sb.upper().join("up")).unwrap();
    let mut spec = sb.spec(&["sh", "-c", "ls /up/x; ls -d /up/t"]);
    spec.mounts.push(MountSpec::Tmpfs {
        destination: format!("/up{}/t", host.path().display()).into(),
        size: 0,
    });
    spec.mounts.push(MountSpec::Bind {
        source: src.path().into(),
        destination: "/../../../up/x".into(),
        readonly: true,
    });
    let out = run(spec).unwrap();
    assert!(
        out.stdout.contains("payload"),
        "the mount landed inside the container: {out:?}"
    );
    // A destination through a link to a host path either fails or lands inside the root.
    let sb2 = Sandbox::new();
    std::fs::create_dir_all(sb2.upper()).unwrap();
    std::os::unix::fs::symlink(host.path(), sb2.upper().join("data")).unwrap();
    let mut spec = sb2.spec(&["ls", "/data/sub"]);
    spec.mounts.push(MountSpec::Bind {
        source: src.path().into(),
        destination: "/data/sub".into(),
        readonly: true,
    });
    // The link is followed inside the root: the mount point is made there.
    let out = run(spec).unwrap();
    assert!(out.stdout.contains("payload"), "{out:?}");
    let inside = sb2
        .upper()
        .join(host.path().strip_prefix("/").unwrap())
        .join("sub");
    assert!(
        inside.is_dir(),
        "mount point made inside the container's layer"
    );
    assert_eq!(
        std::fs::read_dir(host.path()).unwrap().count(),
        0,
        "nothing was created on the host"
    );
    assert!(host_mounts_with(&host.path().display().to_string()).is_empty());
}

#[test]
fn named_volume_names_cannot_escape_the_volumes_dir() {
    let root = tempfile::tempdir().unwrap();
    let v = kiln_executor::volume::Volumes::open(root.path()).unwrap();
    for bad in ["../../etc", "..", "a/../../b", "/etc"] {
        assert!(v.create(bad).is_err(), "{bad}");
    }
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        1,
        "only volumes/ exists"
    );
}

// --- resources, devices, network

#[test]
fn fork_bomb_is_bounded_by_the_pids_limit() {
    let sb = Sandbox::new();
    // The forking subshell dies when fork fails; the outer shell counts with
    // builtins only (it cannot fork either once the limit is reached).
    let mut spec = sb.spec(&["sh", "-c", "(i=0; while [ $i -lt 200 ]; do sleep 5 & i=$((i+1)); done) 2>/dev/null; set -- /proc/[0-9]*; echo $#"]);
    spec.resources = Resources {
        pids: Some(32),
        ..Default::default()
    };
    let out = run(spec).unwrap();
    let n: u32 = out.stdout.trim().parse().unwrap_or(999);
    assert!(n <= 33, "{n} processes ran: {out:?}");
    assert!(n >= 10, "the limit is not absurdly low: {out:?}");
}

#[test]
fn device_nodes_for_host_disks_can_be_made_but_not_read() {
    let out = sh("mknod /tmp/sda b 8 0; mknod /tmp/vda b 253 0; mknod /tmp/mem c 1 1; mknod /tmp/kmsg c 1 11; for d in sda vda mem kmsg; do head -c 1 /tmp/$d 2>/dev/null | wc -c; done");
    assert_eq!(out.stdout, "0\n0\n0\n0\n", "{out:?}");
}

#[test]
fn network_none_cannot_reach_the_hosts_loopback() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let sb = Sandbox::new();
    let mut spec = sb.spec(&[
        "sh",
        "-c",
        &format!("echo hi | nc -w 1 127.0.0.1 {port} && echo connected; ls /sys/class/net"),
    ]);
    spec.network.mode = NetworkMode::None;
    let out = run(spec).unwrap();
    assert!(!out.stdout.contains("connected"), "{out:?}");
    assert_eq!(out.stdout.trim(), "lo");
    assert!(
        listener.accept().is_err(),
        "the host listener got no connection"
    );
}

#[test]
fn default_network_cannot_reach_the_hosts_loopback_either() {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let sb = Sandbox::new();
    // 10.0.2.2 is slirp4netns' gateway, which would be the host's loopback.
    let mut spec = sb.spec(&[
        "sh",
        "-c",
        &format!("echo hi | nc -w 1 10.0.2.2 {port} && echo connected; true"),
    ]);
    spec.network.mode = NetworkMode::Default;
    let out = run(spec).unwrap();
    assert!(!out.stdout.contains("connected"), "{out:?}");
    assert!(
        listener.accept().is_err(),
        "the host listener got no connection"
    );
}

#[test]
fn the_rootfs_directory_is_never_modified() {
    let before = std::fs::read_dir(common::busybox_rootfs().join("etc"))
        .unwrap()
        .count();
    let out = sh("rm -rf /bin/sh /etc/passwd; echo x > /etc/new; echo done");
    assert_eq!(out.stdout, "done\n");
    assert!(common::busybox_rootfs().join("bin/sh").exists());
    assert!(common::busybox_rootfs().join("etc/passwd").exists());
    assert_eq!(
        std::fs::read_dir(common::busybox_rootfs().join("etc"))
            .unwrap()
            .count(),
        before
    );
}

#[test]
fn changing_the_containers_devices_does_not_touch_the_hosts() {
    use std::os::unix::fs::PermissionsExt;
    let before = std::fs::metadata("/dev/null").unwrap().permissions().mode();
    let out = sh("chmod 000 /dev/null; chown 65534 /dev/zero; rm -f /dev/urandom; ls -l /dev/null | cut -c1-10");
    assert_eq!(out.stdout, "c---------\n", "{out:?}");
    assert_eq!(
        std::fs::metadata("/dev/null").unwrap().permissions().mode(),
        before
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata("/dev/zero").unwrap().uid(), 0);
    assert!(Path::new("/dev/urandom").exists());
}
