//! `top`: a running container's processes, read from `/proc` as `ps -ef` shows them (docker's
//! default), or with other `ps` arguments through the host's `ps`, filtered to the container.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{from_executor, is_running};
use crate::{Engine, Error, Result};

/// docker's answer to `GET /containers/{id}/top`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopResult {
    /// The column titles.
    #[serde(rename = "Titles")]
    pub titles: Vec<String>,
    /// One row per process, a string per column.
    #[serde(rename = "Processes")]
    pub processes: Vec<Vec<String>>,
}

/// The titles of `ps -ef`.
const PS_EF_TITLES: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];

/// The host pids of the processes in the PID namespace of `pid1` (a container's first
/// process), sorted; empty when it is gone.
pub(crate) fn namespace_pids(pid1: i32) -> Vec<i32> {
    let Ok(ns) = std::fs::read_link(format!("/proc/{pid1}/ns/pid")) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|n| n == ns))
        .collect();
    pids.sort_unstable();
    pids
}

/// The fields of `/proc/PID/stat` after the command name (field 3, the state, first), and the
/// command name: the name is in parentheses and may itself hold spaces and parentheses.
pub(crate) fn proc_stat(pid: i32) -> Option<(String, Vec<String>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest = text.get(close + 1..)?;
    Some((comm, rest.split_whitespace().map(str::to_string).collect()))
}

/// Field `n` (1-based, as proc(5) numbers them) of a [`proc_stat`] rest.
pub(crate) fn stat_field(rest: &[String], n: usize) -> u64 {
    rest.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0)
}

/// Clock ticks per second (`USER_HZ`).
pub(crate) fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

/// Seconds since boot.
fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The boot time, unix seconds.
fn boot_time() -> i64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// User names by uid from the host's /etc/passwd, as the host's `ps` shows them.
fn host_users() -> BTreeMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
        })
        .collect()
}

/// A terminal device number as `ps` names it (`?` for none).
fn tty_name(tty_nr: u64) -> String {
    if tty_nr == 0 {
        return "?".into();
    }
    let major = ((tty_nr >> 8) & 0xfff) as u32;
    let minor = ((tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00)) as u32;
    match major {
        136..=143 => format!("pts/{}", minor + (major - 136) * 256),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => "?".into(),
    }
}

/// CPU time as `ps` shows it: `[DD-]HH:MM:SS`.
fn cpu_time(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// A start time as `ps -f` shows it: `HH:MM` today, `MonDD` this year, else the year (UTC).
fn start_time(start: i64, now: i64) -> String {
    let (date, clock) = {
        let text = kiln_cache::image::rfc3339(start);
        let (d, t) = text.split_once('T').unwrap_or((&text, ""));
        (d.to_string(), t.get(..5).unwrap_or("").to_string())
    };
    let today = kiln_cache::image::rfc3339(now);
    if today.get(..10) == date.get(..10) {
        return clock;
    }
    if today.get(..4) != date.get(..4) {
        return date.get(..4).unwrap_or("").to_string();
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month: usize = date.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    format!(
        "{}{}",
        MONTHS[month.clamp(1, 12) - 1],
        date.get(8..10).unwrap_or("")
    )
}

/// One `ps -ef` row for `pid`, or `None` when it exited meanwhile.
fn ps_ef_row(
    pid: i32,
    users: &BTreeMap<u32, String>,
    hz: u64,
    up: f64,
    boot: i64,
    now: i64,
) -> Option<Vec<String>> {
    let (comm, rest) = proc_stat(pid)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let euid: u32 = status
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let user = users
        .get(&euid)
        .cloned()
        .unwrap_or_else(|| euid.to_string());
    let ticks = stat_field(&rest, 14) + stat_field(&rest, 15);
    let started = stat_field(&rest, 22);
    let elapsed = up - started as f64 / hz as f64;
    let c = if elapsed > 0.0 {
        ((ticks as f64 / hz as f64) * 100.0 / elapsed).min(99.0) as u64
    } else {
        0
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let cmd = if args.is_empty() {
        format!("[{comm}]")
    } else {
        args.join(" ")
    };
    Some(vec![
        user,
        pid.to_string(),
        stat_field(&rest, 4).to_string(),
        c.to_string(),
        start_time(boot + (started / hz) as i64, now),
        tty_name(stat_field(&rest, 7)),
        cpu_time(ticks / hz),
        cmd,
    ])
}

/// The rows of the host's `ps ARGS` whose PID column is one of `pids`, parsed as dockerd
/// parses them: whitespace-separated fields, the extra ones joined into the last column.
fn host_ps(args: &str, pids: &HashSet<i32>) -> Result<TopResult> {
    let output = std::process::Command::new("ps")
        .args(args.split_whitespace())
        .output()
        .map_err(|e| Error::Internal(format!("running ps: {e}")))?;
    if !output.status.success() {
        return Err(Error::Internal(format!(
            "ps: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_ps(&String::from_utf8_lossy(&output.stdout), pids)
}

/// Parses `ps` output (see [`host_ps`]).
fn parse_ps(text: &str, pids: &HashSet<i32>) -> Result<TopResult> {
    let mut lines = text.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let Some(pid_col) = titles.iter().position(|t| t == "PID") else {
        return Err(Error::invalid("Couldn't find PID field in ps output"));
    };
    let mut processes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            return Err(Error::invalid(format!("Unexpected pid '{line}'")));
        };
        if !pids.contains(&pid) {
            continue;
        }
        let mut row: Vec<String> = fields
            .iter()
            .take(titles.len().saturating_sub(1))
            .map(|f| f.to_string())
            .collect();
        if fields.len() >= titles.len() {
            row.push(fields[titles.len() - 1..].join(" "));
        }
        processes.push(row);
    }
    Ok(TopResult { titles, processes })
}

impl Engine {
    /// The processes of a running container (docker's `top`): with no `ps_args` (or `-ef`)
    /// read from `/proc` as `ps -ef`'s columns; other arguments run the host's `ps` with them,
    /// as dockerd does. [`Error::Conflict`] when the container is not running.
    pub fn container_top(&self, key: &str, ps_args: &str) -> Result<TopResult> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        let Some(pid1) = rec.pid.filter(|_| is_running(&rec)) else {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                rec.id
            )));
        };
        let pids = namespace_pids(pid1);
        let args = ps_args.trim();
        if !args.is_empty() && args != "-ef" {
            return host_ps(args, &pids.into_iter().collect());
        }
        let (users, hz, up, boot) = (host_users(), clock_ticks(), uptime(), boot_time());
        let now = (super::log::now_nanos() / 1_000_000_000) as i64;
        Ok(TopResult {
            titles: PS_EF_TITLES.iter().map(|t| t.to_string()).collect(),
            processes: pids
                .into_iter()
                .filter_map(|pid| ps_ef_row(pid, &users, hz, up, boot, now))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_columns_read_as_ps_shows_them() {
        assert_eq!(cpu_time(0), "00:00:00");
        assert_eq!(cpu_time(3723), "01:02:03");
        assert_eq!(cpu_time(90000), "1-01:00:00");
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name(136 << 8 | 3), "pts/3");
        let now = kiln_cache::image::parse_rfc3339("2026-12-03T14:00:00Z").unwrap();
        let today = kiln_cache::image::parse_rfc3339("2026-12-03T09:07:00Z").unwrap();
        let earlier = kiln_cache::image::parse_rfc3339("2026-02-01T09:07:00Z").unwrap();
        let last_year = kiln_cache::image::parse_rfc3339("2025-02-01T09:07:00Z").unwrap();
        assert_eq!(start_time(today, now), "09:07");
        assert_eq!(start_time(earlier, now), "Feb01");
        assert_eq!(start_time(last_year, now), "2025");
    }

    #[test]
    fn this_process_is_in_its_own_pid_namespace_with_a_ps_row() {
        let me = std::process::id() as i32;
        assert!(namespace_pids(me).contains(&me));
        let row = ps_ef_row(me, &host_users(), clock_ticks(), uptime(), boot_time(), 0).unwrap();
        assert_eq!(row.len(), 8);
        assert_eq!(row[1], me.to_string());
        assert_eq!(row[2], std::os::unix::process::parent_id().to_string());
    }

    #[test]
    fn ps_output_is_filtered_by_pid_with_the_rest_in_the_last_column() {
        let text = "  PID TTY      STAT   TIME COMMAND\n    1 ?        Ss     0:00 sh -c sleep 9\n    2 ?        S      0:00 other\n";
        let top = parse_ps(text, &[1].into_iter().collect()).unwrap();
        assert_eq!(top.titles, ["PID", "TTY", "STAT", "TIME", "COMMAND"]);
        assert_eq!(
            top.processes,
            vec![vec!["1", "?", "Ss", "0:00", "sh -c sleep 9"]]
        );
        assert!(parse_ps("A B\n1 2\n", &HashSet::new()).is_err());
    }
}
