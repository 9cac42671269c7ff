//! Waiting for a container's directory to change: its log growing, its record replaced, the
//! directory removed. inotify wakes a waiter at once where polling would add its interval to
//! every `docker run`; the timeout bounds a wait whose event was missed (a record written
//! before the watch began), so callers always re-check their condition.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// A watch on one container directory.
pub(crate) struct DirWatch {
    inotify: Option<Inotify>,
}

impl DirWatch {
    /// Watches `dir` for writes, renames into it and its own removal. Without inotify (no
    /// watches left) every wait is a plain sleep: slower, never wrong.
    pub(crate) fn new(dir: &Path) -> DirWatch {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .ok()
            .filter(|i| {
                i.add_watch(
                    dir,
                    AddWatchFlags::IN_MODIFY
                        | AddWatchFlags::IN_MOVED_TO
                        | AddWatchFlags::IN_CLOSE_WRITE
                        | AddWatchFlags::IN_DELETE_SELF
                        | AddWatchFlags::IN_MOVE_SELF
                        | AddWatchFlags::IN_CREATE,
                )
                .is_ok()
            });
        DirWatch { inotify }
    }

    /// Returns once something changed in the directory or `timeout` passed.
    pub(crate) fn wait(&self, timeout: Duration) {
        let Some(inotify) = &self.inotify else {
            std::thread::sleep(timeout.min(Duration::from_millis(20)));
            return;
        };
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        if let Ok(n) = poll(&mut fds, PollTimeout::from(ms)) {
            if n > 0 {
                // Drain the queue: the caller re-reads the state itself.
                while let Ok(events) = inotify.read_events() {
                    if events.is_empty() {
                        break;
                    }
                }
            }
        }
    }
}
