//! Healthchecks, as dockerd runs them (moby's `daemon/health.go`): the check a container was
//! created with (the image's HEALTHCHECK under the user's overrides), and its state machine
//! (`starting`, then `healthy` or `unhealthy` by the failing streak, the start period's
//! grace, the last five results) kept in `health.json` of the container's directory. The
//! supervisor runs the checks and writes the file (see [`HealthMonitor`]); `inspect` and
//! `ps` read it.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_executor::spec::StdioSpec;
use serde::{Deserialize, Serialize};

use super::exec::{ExecOptions, ExecStdio};
use super::log::{now_nanos, rfc3339_nanos};
use crate::{Engine, Error, Result};

/// The file of a container's directory holding its health state.
pub(crate) const HEALTH_FILE: &str = "health.json";

/// docker's defaults (moby `daemon/health.go`).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// The longest output of one check kept (more is cut, and `...` appended).
const MAX_OUTPUT: usize = 4096;
/// How many results the log keeps.
const MAX_LOG_ENTRIES: usize = 5;
/// The shortest duration docker accepts for a check's times.
const MINIMUM_DURATION_NS: u64 = 1_000_000;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// A healthcheck as docker's API and image configs carry it (`Config.Healthcheck`): the test
/// (`["CMD", prog, args...]`, `["CMD-SHELL", "command"]`, `["NONE"]`, or empty to inherit
/// the image's), durations in nanoseconds (0: inherit, then docker's default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Healthcheck {
    /// The test.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Between the end of one check and the start of the next (docker's 30 s when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: u64,
    /// How long one check may run before it is killed and counts as failed (30 s when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: u64,
    /// The grace after a start in which failures do not count (none when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: u64,
    /// Between checks during the start period while not yet healthy (5 s when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    /// Consecutive failures that make the container unhealthy (3 when 0).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub retries: i64,
}

impl Healthcheck {
    /// docker's checks of a healthcheck at create (moby `validateHealthCheck`).
    pub fn validate(&self) -> Result<()> {
        for (value, what) in [
            (self.interval, "Interval"),
            (self.timeout, "Timeout"),
            (self.start_period, "StartPeriod"),
            (self.start_interval, "StartInterval"),
        ] {
            if value != 0 && value < MINIMUM_DURATION_NS {
                return Err(Error::invalid(format!(
                    "{what} in Healthcheck cannot be less than 1ms"
                )));
            }
        }
        if self.retries < 0 {
            return Err(Error::invalid("Retries in Healthcheck cannot be negative"));
        }
        Ok(())
    }

    /// The user's healthcheck over the image's, as dockerd merges them: the user's fields
    /// that are set win, the image's fill the rest.
    pub fn merged(user: Option<&Healthcheck>, image: Option<&Healthcheck>) -> Option<Healthcheck> {
        let (user, image) = match (user, image) {
            (None, None) => return None,
            (Some(u), None) => return Some(u.clone()),
            (None, Some(i)) => return Some(i.clone()),
            (Some(u), Some(i)) => (u, i),
        };
        let pick = |u: u64, i: u64| if u == 0 { i } else { u };
        Some(Healthcheck {
            test: if user.test.is_empty() {
                image.test.clone()
            } else {
                user.test.clone()
            },
            interval: pick(user.interval, image.interval),
            timeout: pick(user.timeout, image.timeout),
            start_period: pick(user.start_period, image.start_period),
            start_interval: pick(user.start_interval, image.start_interval),
            retries: if user.retries == 0 {
                image.retries
            } else {
                user.retries
            },
        })
    }

    /// The program a check runs, or `None` when there is no check (no test, `NONE`, or a
    /// kind dockerd does not know, which it ignores too).
    pub fn command(&self) -> Option<Vec<String>> {
        let (kind, rest) = self.test.split_first()?;
        let cmd = match kind.as_str() {
            "CMD" => rest.to_vec(),
            "CMD-SHELL" => {
                let mut c = vec!["/bin/sh".to_string(), "-c".to_string()];
                c.extend(rest.iter().cloned());
                c
            }
            _ => return None,
        };
        (cmd.len() > usize::from(kind == "CMD-SHELL") * 2).then_some(cmd)
    }

    fn duration(ns: u64, default: Duration) -> Duration {
        if ns == 0 {
            default
        } else {
            Duration::from_nanos(ns)
        }
    }

    fn retries_or_default(&self) -> i64 {
        if self.retries <= 0 {
            DEFAULT_RETRIES
        } else {
            self.retries
        }
    }
}

/// The healthcheck from an image config blob (docker's `config.Healthcheck`, which OCI's
/// config type does not carry).
pub(crate) fn image_healthcheck(config_raw: &[u8]) -> Option<Healthcheck> {
    let v: serde_json::Value = serde_json::from_slice(config_raw).ok()?;
    let h = v.get("config")?.get("Healthcheck")?;
    serde_json::from_value(h.clone()).ok()
}

/// docker's healthcheck flags of `run`/`create` as given (durations in Go's syntax).
#[derive(Debug, Clone, Default)]
pub struct HealthFlags {
    /// `--health-cmd` (run with `/bin/sh -c`).
    pub cmd: Option<String>,
    /// `--health-interval`.
    pub interval: Option<String>,
    /// `--health-timeout`.
    pub timeout: Option<String>,
    /// `--health-retries`.
    pub retries: Option<i64>,
    /// `--health-start-period`.
    pub start_period: Option<String>,
    /// `--health-start-interval`.
    pub start_interval: Option<String>,
    /// `--no-healthcheck`.
    pub none: bool,
}

impl HealthFlags {
    /// The healthcheck these flags ask for, as docker's CLI builds it: `None` when no flag
    /// was given (the image's applies), `["NONE"]` for `--no-healthcheck`, otherwise the
    /// fields given over the image's.
    pub fn healthcheck(&self) -> Result<Option<Healthcheck>> {
        let any = self.cmd.is_some()
            || self.interval.is_some()
            || self.timeout.is_some()
            || self.retries.is_some()
            || self.start_period.is_some()
            || self.start_interval.is_some();
        if self.none {
            if any {
                return Err(Error::invalid(
                    "--no-healthcheck conflicts with --health-* options",
                ));
            }
            return Ok(Some(Healthcheck {
                test: vec!["NONE".into()],
                ..Healthcheck::default()
            }));
        }
        if !any {
            return Ok(None);
        }
        let duration = |value: &Option<String>, flag: &str| -> Result<u64> {
            let Some(text) = value else { return Ok(0) };
            let ns = kiln_parser::instructions::units::parse_go_duration(text).map_err(|e| {
                Error::invalid(format!(
                    "invalid argument {text:?} for \"--{flag}\" flag: {e}"
                ))
            })?;
            u64::try_from(ns).map_err(|_| Error::invalid(format!("--{flag} cannot be negative")))
        };
        let retries = self.retries.unwrap_or(0);
        if retries < 0 {
            return Err(Error::invalid("--health-retries cannot be negative"));
        }
        Ok(Some(Healthcheck {
            test: self
                .cmd
                .iter()
                .flat_map(|c| ["CMD-SHELL".to_string(), c.clone()])
                .collect(),
            interval: duration(&self.interval, "health-interval")?,
            timeout: duration(&self.timeout, "health-timeout")?,
            start_period: duration(&self.start_period, "health-start-period")?,
            start_interval: duration(&self.start_interval, "health-start-interval")?,
            retries,
        }))
    }
}

/// One check's result, as docker's `State.Health.Log` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    /// When it started, RFC 3339.
    pub start: String,
    /// When it ended, RFC 3339.
    pub end: String,
    /// 0 healthy, 1 unhealthy, -1 the check could not run or timed out.
    pub exit_code: i32,
    /// Its output (standard output and error), at most 4096 bytes then `...`.
    pub output: String,
}

/// `starting`, `healthy` or `unhealthy`, as docker names them.
pub const STARTING: &str = "starting";
/// See [`STARTING`].
pub const HEALTHY: &str = "healthy";
/// See [`STARTING`].
pub const UNHEALTHY: &str = "unhealthy";

/// A container's health (docker's `State.Health`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Consecutive failed checks.
    pub failing_streak: u32,
    /// The last results, oldest first.
    pub log: Vec<HealthResult>,
}

impl Health {
    /// The health stored in a container's directory (none before a start with a check).
    pub fn load(dir: &Path) -> Option<Health> {
        let bytes = std::fs::read(dir.join(HEALTH_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes it atomically (a temporary file renamed over): a reader sees the old state or
    /// the new, never half of one.
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(HEALTH_FILE);
        let tmp = dir.join("health.json.tmp");
        let bytes = serde_json::to_vec(self)?;
        std::fs::write(&tmp, bytes).map_err(|e| Error::io("writing", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("renaming", &path, e))
    }

    /// The state at a start: `starting`, no failures, the earlier results kept (as dockerd's
    /// `initHealthMonitor`).
    pub(crate) fn reset(dir: &Path) -> Health {
        Health {
            status: STARTING.into(),
            failing_streak: 0,
            log: Health::load(dir).map(|h| h.log).unwrap_or_default(),
        }
    }

    /// What `ps` shows after `Up 5 seconds`: `health: starting`, `healthy`, `unhealthy`.
    pub fn ps_text(&self) -> String {
        if self.status == STARTING {
            "health: starting".into()
        } else {
            self.status.clone()
        }
    }

    /// Counts one result in (moby `handleProbeResult`); `in_start_period` when the check
    /// started within the start period, where a failure before the first success does not
    /// count. Returns whether the status changed.
    pub(crate) fn record(
        &mut self,
        result: HealthResult,
        retries: i64,
        in_start_period: bool,
    ) -> bool {
        let before = self.status.clone();
        let ok = result.exit_code == 0;
        self.log.push(result);
        if self.log.len() > MAX_LOG_ENTRIES {
            let extra = self.log.len() - MAX_LOG_ENTRIES;
            self.log.drain(..extra);
        }
        if ok {
            self.failing_streak = 0;
            self.status = HEALTHY.into();
        } else if !(self.status == STARTING && in_start_period) {
            self.failing_streak += 1;
            if i64::from(self.failing_streak) >= retries {
                self.status = UNHEALTHY.into();
            }
        }
        self.status != before
    }
}

/// Output kept as dockerd's `limitedBuffer` keeps it.
fn limited_output(bytes: &[u8], truncated: bool) -> String {
    let mut out = String::from_utf8_lossy(bytes).into_owned();
    if truncated {
        out.push_str("...");
    }
    out
}

/// Runs one check in the container and returns its result: the exit code and output, or
/// -1 with docker's words when it could not run or ran past `timeout` (then it is killed).
fn probe(engine: &Engine, id: &str, cmd: &[String], timeout: Duration) -> HealthResult {
    let start = now_nanos();
    let failed = |output: String| HealthResult {
        start: rfc3339_nanos(start),
        end: rfc3339_nanos(now_nanos()),
        exit_code: -1,
        output,
    };
    let (read, write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return failed(format!("creating a pipe: {e}")),
    };
    let write2 = match write.try_clone() {
        Ok(w) => w,
        Err(e) => return failed(format!("creating a pipe: {e}")),
    };
    let options = ExecOptions {
        cmd: cmd.to_vec(),
        ..ExecOptions::default()
    };
    let stdio = ExecStdio {
        stdin: StdioSpec::Null,
        stdout: StdioSpec::Fd(write),
        stderr: StdioSpec::Fd(write2),
    };
    // The output is read on a thread of its own: a check may leave a process behind that
    // keeps the pipe open, and the result must not wait for it.
    let buffer: Arc<Mutex<(Vec<u8>, bool)>> = Arc::default();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    {
        let buffer = buffer.clone();
        let mut from = std::fs::File::from(read);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = from.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut b) = buffer.lock() {
                    let keep = MAX_OUTPUT.saturating_sub(b.0.len()).min(n);
                    b.0.extend_from_slice(&chunk[..keep]);
                    b.1 |= keep < n;
                }
            }
            let _ = done_tx.send(());
        });
    }
    let output = |buffer: &Mutex<(Vec<u8>, bool)>| {
        buffer
            .lock()
            .map(|b| limited_output(&b.0, b.1))
            .unwrap_or_default()
    };
    let running = match engine.exec_in_container(id, &options, stdio) {
        Ok(r) => r,
        Err(e) => return failed(e.to_string()),
    };
    match running.wait_timeout(timeout) {
        Ok(Some(code)) => {
            let _ = done_rx.recv_timeout(Duration::from_millis(200));
            HealthResult {
                start: rfc3339_nanos(start),
                end: rfc3339_nanos(now_nanos()),
                exit_code: code,
                output: output(&buffer),
            }
        }
        Ok(None) => {
            let _ = done_rx.recv_timeout(Duration::from_millis(100));
            let out = output(&buffer);
            let secs = go_duration_text(timeout);
            failed(if out.is_empty() {
                format!("Health check exceeded timeout ({secs})")
            } else {
                format!("Health check exceeded timeout ({secs}): {out}")
            })
        }
        Err(e) => failed(e.to_string()),
    }
}

/// A duration as Go prints one (`1s`, `1.5s`, `500ms`, `2m0s`), for docker's timeout message.
fn go_duration_text(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, div) = if ns < 1_000 {
            ("ns", 1)
        } else if ns < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", trim_fraction(ns as f64 / div as f64));
    }
    let secs = d.as_secs_f64();
    let h = (secs / 3600.0).floor();
    let m = ((secs - h * 3600.0) / 60.0).floor();
    let s = secs - h * 3600.0 - m * 60.0;
    let mut out = String::new();
    if h > 0.0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0.0 || m > 0.0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_fraction(s)));
    out
}

fn trim_fraction(v: f64) -> String {
    let text = format!("{v:.9}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

/// The supervisor's health loop for one run of a container: checks at docker's intervals
/// until told to stop, recording each result in `health.json` and an event
/// (`health_status: healthy`) at each change of status.
pub(crate) struct HealthMonitor {
    /// The container's id.
    pub id: String,
    /// Its directory.
    pub dir: std::path::PathBuf,
    /// Its healthcheck.
    pub check: Healthcheck,
    /// The program each check runs.
    pub cmd: Vec<String>,
    /// When this run started (for the start period).
    pub started: Instant,
    /// Called with each change of status (for the event).
    pub on_change: Box<dyn Fn(&str) + Send>,
}

impl HealthMonitor {
    /// Runs the loop (on the calling thread, which the executor ties each check's life to)
    /// until `stop` receives or its sender is dropped.
    pub(crate) fn run(self, engine: &Engine, stop: &Receiver<()>) {
        let (check, dir, started) = (&self.check, self.dir.as_path(), self.started);
        let interval = Healthcheck::duration(check.interval, DEFAULT_INTERVAL);
        let start_interval = Healthcheck::duration(check.start_interval, DEFAULT_START_INTERVAL);
        let start_period = Duration::from_nanos(check.start_period);
        let timeout = Healthcheck::duration(check.timeout, DEFAULT_TIMEOUT);
        let retries = check.retries_or_default();
        let mut health = Health::reset(dir);
        loop {
            let next = if started.elapsed() < start_period && health.status == STARTING {
                start_interval
            } else {
                interval
            };
            match stop.recv_timeout(next) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            let began = started.elapsed();
            let result = probe(engine, &self.id, &self.cmd, timeout);
            // A result that arrives once the run is ending is dropped, as dockerd does.
            if !matches!(stop.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty)) {
                return;
            }
            let changed = health.record(result, retries, began < start_period);
            let _ = health.save(dir);
            if changed {
                (self.on_change)(&health.status);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i32) -> HealthResult {
        HealthResult {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn the_state_machine_follows_dockerd() {
        let mut h = Health {
            status: STARTING.into(),
            failing_streak: 0,
            log: Vec::new(),
        };
        // In the start period failures do not count while starting.
        assert!(!h.record(result(1), 2, true));
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 0));
        assert!(!h.record(result(1), 2, false));
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 1));
        assert!(h.record(result(1), 2, false));
        assert_eq!((h.status.as_str(), h.failing_streak), (UNHEALTHY, 2));
        assert!(h.record(result(0), 2, false));
        assert_eq!((h.status.as_str(), h.failing_streak), (HEALTHY, 0));
        // Once healthy, the start period no longer excuses a failure.
        assert!(!h.record(result(1), 2, true));
        assert_eq!(h.failing_streak, 1);
        for _ in 0..4 {
            h.record(result(-1), 2, false);
        }
        assert_eq!(h.log.len(), MAX_LOG_ENTRIES);
        assert_eq!(h.log[0].exit_code, 1);
        assert_eq!(h.ps_text(), UNHEALTHY);
    }

    #[test]
    fn user_fields_win_over_the_images() {
        let image = Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval: 5,
            retries: 7,
            ..Healthcheck::default()
        };
        let user = Healthcheck {
            interval: 9,
            ..Healthcheck::default()
        };
        let m = Healthcheck::merged(Some(&user), Some(&image)).unwrap();
        assert_eq!(m.test, image.test);
        assert_eq!((m.interval, m.retries), (9, 7));
        assert_eq!(m.command(), Some(vec!["true".to_string()]));
        let none = Healthcheck {
            test: vec!["NONE".into()],
            ..Healthcheck::default()
        };
        assert_eq!(
            Healthcheck::merged(Some(&none), Some(&image))
                .unwrap()
                .command(),
            None
        );
    }

    #[test]
    fn flags_build_dockers_config() {
        let h = HealthFlags {
            cmd: Some("test -f /ok".into()),
            interval: Some("1s".into()),
            retries: Some(3),
            ..HealthFlags::default()
        }
        .healthcheck()
        .unwrap()
        .unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "test -f /ok"]);
        assert_eq!(h.interval, 1_000_000_000);
        assert_eq!(h.command().unwrap(), ["/bin/sh", "-c", "test -f /ok"]);
        assert!(HealthFlags::default().healthcheck().unwrap().is_none());
        let e = HealthFlags {
            none: true,
            retries: Some(1),
            ..HealthFlags::default()
        }
        .healthcheck()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--no-healthcheck conflicts with --health-* options"
        );
        let e = HealthFlags {
            interval: Some("-1s".into()),
            ..HealthFlags::default()
        }
        .healthcheck()
        .unwrap_err();
        assert_eq!(e.to_string(), "--health-interval cannot be negative");
        let short = Healthcheck {
            interval: 10,
            ..Healthcheck::default()
        };
        assert_eq!(
            short.validate().unwrap_err().to_string(),
            "Interval in Healthcheck cannot be less than 1ms"
        );
    }

    #[test]
    fn timeouts_read_as_go_prints_them() {
        assert_eq!(go_duration_text(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration_text(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration_text(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration_text(Duration::from_secs(120)), "2m0s");
    }

    #[test]
    fn image_configs_carry_the_check() {
        let raw = br#"{"config":{"Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":1000000000,"Retries":2}}}"#;
        let h = image_healthcheck(raw).unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "true"]);
        assert_eq!((h.interval, h.retries), (1_000_000_000, 2));
        assert!(image_healthcheck(br#"{"config":{}}"#).is_none());
    }
}
