//! `kiln system service` started as systemd starts a socket-activated service: the listening
//! socket is descriptor 3, `LISTEN_PID`/`LISTEN_FDS` say so (contrib/systemd/kiln.socket).

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::Stdio;

#[test]
fn an_activated_service_serves_the_socket_it_is_given_and_leaves_it() {
    let k = common::Machine::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("activated.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let fd = listener.as_raw_fd();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" --root \"$1\" system service --time 1")
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .arg(k.root.path())
        .stdin(Stdio::null());
    // SAFETY: dup2 and fcntl between fork and exec, both async-signal-safe. (dup2 onto
    // itself keeps close-on-exec, so the flag is cleared in any case.)
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("OK"), "{answer}");
    // Idle for its --time: it exits 0, and the socket, systemd's, stays.
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(path.exists(), "the activated socket was removed");
}
