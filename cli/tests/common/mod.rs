//! Helpers shared by the end-to-end tests.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// A busybox root filesystem made from Debian's busybox-static (as the
/// acceptance scripts make it), once per test binary.
pub fn rootfs() -> &'static Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| {
        let t = tempfile::Builder::new()
            .prefix("kiln-cli-rootfs")
            .tempdir()
            .unwrap();
        make_rootfs(t.path());
        t
    })
    .path()
}

/// Fills the empty directory `r` with the busybox root filesystem that
/// [`rootfs`] holds (for a test that must clean up after itself).
pub fn make_rootfs(r: &Path) {
    for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev", "home"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", r.join("bin/busybox")).expect("busybox-static (scripts/deps.sh)");
    let list = Command::new(r.join("bin/busybox"))
        .arg("--list")
        .output()
        .unwrap();
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
