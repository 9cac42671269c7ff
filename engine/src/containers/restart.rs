//! Restart policies, as dockerd applies them (moby's `restartmanager`): the policy a
//! container was created with, the back-off between restarts (100 ms doubling to a minute,
//! back to 100 ms after a run of 10 s), and the marks a user's stop or kill leaves in the
//! container's directory so its supervisor does not start it again.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::ContainerSettings;
use super::{is_running, ContainerFilter, StartOutcome};
use crate::{Engine, Error, Result};

/// `no`.
pub const NO: &str = "no";
/// `always`.
pub const ALWAYS: &str = "always";
/// `on-failure`.
pub const ON_FAILURE: &str = "on-failure";
/// `unless-stopped`.
pub const UNLESS_STOPPED: &str = "unless-stopped";

/// A restart policy as docker's API carries it (`HostConfig.RestartPolicy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `no` (or empty), `always`, `on-failure`, `unless-stopped`.
    pub name: String,
    /// The most restarts `on-failure` makes (0: no limit).
    pub maximum_retry_count: i64,
}

impl RestartPolicy {
    /// Parses docker's `--restart` syntax: `NAME[:MAX]` (docker's CLI's `ParseRestartPolicy`;
    /// the name is checked by [`RestartPolicy::validate`]).
    pub fn parse(text: &str) -> Result<RestartPolicy> {
        let (name, count) = match text.split_once(':') {
            Some(("", _)) => {
                return Err(Error::invalid(
                    "invalid restart policy format: no policy provided before colon",
                ))
            }
            Some((n, c)) => (n, c),
            None => (text, ""),
        };
        let maximum_retry_count = if count.is_empty() {
            0
        } else {
            count.parse().map_err(|_| {
                Error::invalid(
                    "invalid restart policy format: maximum retry count must be an integer",
                )
            })?
        };
        Ok(RestartPolicy {
            name: name.to_string(),
            maximum_retry_count,
        })
    }

    /// docker's checks (moby `ValidateRestartPolicy`).
    pub fn validate(&self) -> Result<()> {
        match self.name.as_str() {
            ALWAYS | UNLESS_STOPPED | NO => {
                if self.maximum_retry_count != 0 {
                    let mut msg = "invalid restart policy: maximum retry count can only be used with 'on-failure'".to_string();
                    if self.maximum_retry_count < 0 {
                        msg.push_str(" and cannot be negative");
                    }
                    return Err(Error::Invalid(msg));
                }
                Ok(())
            }
            ON_FAILURE if self.maximum_retry_count < 0 => Err(Error::invalid(
                "invalid restart policy: maximum retry count cannot be negative",
            )),
            ON_FAILURE | "" => Ok(()),
            other => Err(Error::Invalid(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            ))),
        }
    }

    /// No restarts (`no`, or none given).
    pub fn is_none(&self) -> bool {
        self.name.is_empty() || self.name == NO
    }

    /// The name as docker shows it in `inspect` (`no` for none).
    pub fn shown_name(&self) -> &str {
        if self.name.is_empty() {
            NO
        } else {
            &self.name
        }
    }

    /// Whether a run that ended with `exit_code`, after `restarts` restarts, is started
    /// again (moby `ShouldRestart`); `manually_stopped` when the user stopped or killed it.
    pub fn should_restart(&self, exit_code: i32, restarts: u32, manually_stopped: bool) -> bool {
        match self.name.as_str() {
            ALWAYS => true,
            UNLESS_STOPPED => !manually_stopped,
            ON_FAILURE => {
                let max = self.maximum_retry_count;
                (max == 0 || i64::from(restarts) < max) && exit_code != 0
            }
            _ => false,
        }
    }
}

/// docker's back-off between restarts.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    timeout: Duration,
}

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long starts the back-off over.
const RESET_AFTER: Duration = Duration::from_secs(10);

impl Backoff {
    /// The wait before the next restart, after a run that lasted `ran`.
    pub(crate) fn next(&mut self, ran: Duration) -> Duration {
        if ran >= RESET_AFTER {
            self.timeout = Duration::ZERO;
        }
        self.timeout = if self.timeout.is_zero() {
            FIRST_DELAY
        } else {
            (self.timeout * 2).min(MAX_DELAY)
        };
        self.timeout
    }
}

/// The file a user's stop or kill leaves in the container's directory: `cancel` (no
/// restart now: docker's `ExitOnNext`) or `manual` (only the mark docker keeps as
/// `HasBeenManuallyStopped`, which `unless-stopped` heeds). A user's start removes it.
pub(crate) const STOPPED_FILE: &str = "stopped-by-user";

/// What a user's stop or kill asked of the restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserStop {
    /// No more restarts, whatever the policy.
    Cancel,
    /// Stopped by the user: `unless-stopped` does not restart.
    Manual,
}

/// Marks the container as stopped by the user (see [`STOPPED_FILE`]); a `Cancel` is never
/// weakened to a `Manual` by a later kill.
pub(crate) fn mark_user_stop(dir: &Path, stop: UserStop) {
    if user_stop(dir) == Some(UserStop::Cancel) {
        return;
    }
    let text = match stop {
        UserStop::Cancel => "cancel",
        UserStop::Manual => "manual",
    };
    let _ = std::fs::write(dir.join(STOPPED_FILE), text);
}

/// The mark a user's stop or kill left, if any.
pub(crate) fn user_stop(dir: &Path) -> Option<UserStop> {
    match std::fs::read_to_string(dir.join(STOPPED_FILE)).ok()?.trim() {
        "cancel" => Some(UserStop::Cancel),
        _ => Some(UserStop::Manual),
    }
}

/// Removes the mark (a user's start).
pub(crate) fn clear_user_stop(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(STOPPED_FILE));
}

/// What [`Engine::start_by_restart_policy`] did with one container.
#[derive(Debug)]
pub struct PolicyStart {
    /// The container's name.
    pub name: String,
    /// Its start.
    pub outcome: Result<StartOutcome>,
}

impl Engine {
    /// Starts the stopped containers that pass `filter` and whose restart policy dockerd
    /// would start when it starts (kiln has no daemon: this is what a boot runs, see
    /// `contrib/systemd/kiln-restart.service`): `always`; `unless-stopped` unless the user
    /// stopped it; `on-failure` after a failed run with retries left. Records of supervisors
    /// that died with the host are settled first (exit code 137).
    pub fn start_by_restart_policy(&self, filter: &ContainerFilter) -> Result<Vec<PolicyStart>> {
        let store = self.containers()?;
        store.cleanup_stale();
        let mut filter = filter.clone();
        filter.all = true;
        let mut out = Vec::new();
        for c in self.container_summaries(&filter)? {
            let Ok(rec) = store.load(&c.id) else { continue };
            if is_running(&rec) {
                continue;
            }
            let dir = store.dir(&rec.id);
            let Ok(settings) = ContainerSettings::load(&dir) else {
                continue;
            };
            let policy = &settings.restart_policy;
            let due = match policy.name.as_str() {
                ON_FAILURE => {
                    rec.start_count > 0
                        && policy.should_restart(
                            rec.exit_code.unwrap_or(0),
                            rec.restart_count,
                            false,
                        )
                }
                ALWAYS => true,
                UNLESS_STOPPED => user_stop(&dir).is_none(),
                _ => false,
            };
            if due {
                out.push(PolicyStart {
                    outcome: self.start_container(&rec.id),
                    name: rec.name,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_validate_as_docker() {
        let p = RestartPolicy::parse("on-failure:2").unwrap();
        assert_eq!((p.name.as_str(), p.maximum_retry_count), (ON_FAILURE, 2));
        p.validate().unwrap();
        assert!(RestartPolicy::parse("no").unwrap().is_none());
        assert_eq!(
            RestartPolicy::parse("always:x").unwrap_err().to_string(),
            "invalid restart policy format: maximum retry count must be an integer"
        );
        assert_eq!(
            RestartPolicy::parse("always:3")
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string(),
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        );
        let e = RestartPolicy::parse("sometimes")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(matches!(e.kind(), Error::Invalid(_)), "{e}");
        assert!(e.to_string().contains("unknown policy 'sometimes'"), "{e}");
    }

    #[test]
    fn restarts_follow_the_policy() {
        let on_failure = RestartPolicy::parse("on-failure:2").unwrap();
        assert!(on_failure.should_restart(1, 0, false));
        assert!(on_failure.should_restart(1, 1, false));
        assert!(!on_failure.should_restart(1, 2, false));
        assert!(!on_failure.should_restart(0, 0, false));
        let unless = RestartPolicy::parse("unless-stopped").unwrap();
        assert!(unless.should_restart(0, 9, false));
        assert!(!unless.should_restart(0, 9, true));
        assert!(RestartPolicy::parse("always")
            .unwrap()
            .should_restart(0, 0, true));
        assert!(!RestartPolicy::default().should_restart(1, 0, false));
    }

    #[test]
    fn the_back_off_doubles_to_a_minute_and_resets_after_ten_seconds() {
        let mut b = Backoff::default();
        let quick = Duration::from_secs(1);
        assert_eq!(b.next(quick), Duration::from_millis(100));
        assert_eq!(b.next(quick), Duration::from_millis(200));
        for _ in 0..20 {
            b.next(quick);
        }
        assert_eq!(b.next(quick), Duration::from_secs(60));
        assert_eq!(b.next(Duration::from_secs(10)), Duration::from_millis(100));
    }

    #[test]
    fn a_cancel_is_not_weakened_by_a_later_kill() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(user_stop(dir.path()), None);
        mark_user_stop(dir.path(), UserStop::Cancel);
        mark_user_stop(dir.path(), UserStop::Manual);
        assert_eq!(user_stop(dir.path()), Some(UserStop::Cancel));
        clear_user_stop(dir.path());
        mark_user_stop(dir.path(), UserStop::Manual);
        assert_eq!(user_stop(dir.path()), Some(UserStop::Manual));
    }
}
