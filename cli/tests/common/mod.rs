//! Helpers shared by the end-to-end tests.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// A busybox root filesystem made from Debian's busybox-static (as the
/// acceptance scripts make it), once per test binary.
pub fn rootfs() -> &'static Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| busybox_rootfs("kiln-cli-rootfs"))
        .path()
}

/// A new busybox root filesystem in a temp dir named `prefix...`, removed when dropped.
pub fn busybox_rootfs(prefix: &str) -> tempfile::TempDir {
    let t = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let r = t.path();
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
    t
}
