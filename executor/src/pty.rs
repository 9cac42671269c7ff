//! Terminals: the container's pty is created *inside* the container (on its
//! own devpts instance, so `tty` prints `/dev/pts/0`), and its master end is
//! passed to kiln over a socket (SCM_RIGHTS), as runc's console socket does.

use std::io::IoSlice;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};

use crate::error::{Error, Result};

/// Sends `fd` over the unix socket `sock`.
pub fn send_fd(sock: RawFd, fd: RawFd) -> Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(b"m")];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|e| Error::sys("send pty master", e))?;
    Ok(())
}

/// Receives one descriptor sent with [`send_fd`].
pub fn recv_fd(sock: RawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| Error::sys("receive pty master", e))?;
    for c in msg
        .cmsgs()
        .map_err(|e| Error::sys("receive pty master", e))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel installed this descriptor for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::Setup("the container sent no pty".into()))
}

/// Opens a new pty in the calling process's /dev/pts and returns (master, slave).
pub(crate) fn open_pty_inside() -> Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys("open /dev/ptmx", e))?;
    nix::pty::grantpt(&master).map_err(|e| Error::sys("grantpt", e))?;
    nix::pty::unlockpt(&master).map_err(|e| Error::sys("unlockpt", e))?;
    let name = nix::pty::ptsname_r(&master).map_err(|e| Error::sys("ptsname", e))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("open {name}"), e))?;
    // SAFETY: PtyMaster owns a valid fd; into_raw_fd hands it to us.
    let m = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) };
    Ok((m, slave))
}

/// Puts the terminal on `fd` into raw mode; the guard restores it.
pub struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    /// Raw mode on `fd` when it is a terminal, `None` otherwise.
    pub fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: the caller keeps fd open for the guard's lifetime.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        let saved = termios::tcgetattr(b).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(b, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: see enter().
        let b = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(b, SetArg::TCSANOW, &self.saved);
    }
}

mod ioctls {
    //! The window-size ioctls (private: used by `copy_winsize`).
    #![allow(missing_docs)]
    nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, libc::winsize);
    nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, libc::winsize);
}
use ioctls::{get_winsize, set_winsize};

/// Sets the window size of pty `fd` (the Engine API's resize; bad fds just fail).
pub fn set_size(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: the ioctl reads a winsize we own.
    unsafe {
        let _ = set_winsize(fd, &ws);
    }
}

/// The window size of terminal `fd` as (rows, columns), if it is one.
pub fn size_of(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: the ioctl writes a winsize we own.
    unsafe { get_winsize(fd, &mut ws).ok()? };
    Some((ws.ws_row, ws.ws_col))
}

/// Copies the window size of terminal `from` to pty `to` (on start and on SIGWINCH).
pub fn copy_winsize(from: RawFd, to: RawFd) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: both ioctls read/write a winsize we own; bad fds just fail.
    unsafe {
        if get_winsize(from, &mut ws).is_ok() {
            let _ = set_winsize(to, &ws);
        }
    }
}
