//! `stats`: a container's resource use in docker's shape, sampled once a second.
//!
//! Memory, CPU and pids come from the container's own cgroups when it has them (kiln makes
//! `kiln/ID` in each hierarchy that a limit needs, v1 or the unified one: found through
//! `/proc/PID/cgroup`, so both layouts of this host work); for a controller it has no cgroup
//! in, they are summed over the processes of its PID namespace from `/proc` (the cgroup it
//! shares with its supervisor would count other processes). Block I/O and networks are left
//! empty: the docker CLI shows `0B / 0B`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::log::{now_nanos, rfc3339_nanos};
use super::top::{clock_ticks, namespace_pids, proc_stat, stat_field};
use super::{from_executor, is_running};
use crate::{Engine, Result};

/// docker's zero time, sent as `preread` before a previous sample exists.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `pids_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    /// Processes now.
    pub current: u64,
    /// The cgroup's limit, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// `cpu_stats.cpu_usage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// CPU time used, ns.
    pub total_usage: u64,
    /// Per CPU, ns (cgroup v1 only, as docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percpu_usage: Option<Vec<u64>>,
    /// In the kernel, ns.
    pub usage_in_kernelmode: u64,
    /// In user mode, ns.
    pub usage_in_usermode: u64,
}

/// `cpu_stats.throttling_data`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottlingData {
    /// Periods with a quota.
    pub periods: u64,
    /// Periods throttled.
    pub throttled_periods: u64,
    /// Time throttled, ns.
    pub throttled_time: u64,
}

/// `cpu_stats` and `precpu_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    /// The container's use.
    pub cpu_usage: CpuUsage,
    /// The host's CPU time since boot, ns (all CPUs, all states).
    #[serde(default)]
    pub system_cpu_usage: u64,
    /// CPUs online.
    #[serde(default)]
    pub online_cpus: u32,
    /// Quota throttling.
    pub throttling_data: ThrottlingData,
}

/// `memory_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Bytes in use.
    #[serde(default)]
    pub usage: u64,
    /// The cgroup's `memory.stat` (v1 or v2 keys).
    #[serde(default)]
    pub stats: BTreeMap<String, u64>,
    /// The limit: the host's memory when none is set.
    #[serde(default)]
    pub limit: u64,
}

/// One report of `GET /containers/{id}/stats`, in docker's shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    /// When this sample was read.
    pub read: String,
    /// When the previous one was (docker's zero time for none).
    pub preread: String,
    /// Processes.
    pub pids_stats: PidsStats,
    /// Block I/O: empty.
    pub blkio_stats: BTreeMap<String, serde_json::Value>,
    /// Windows only: 0.
    pub num_procs: u32,
    /// Windows only: empty.
    pub storage_stats: BTreeMap<String, serde_json::Value>,
    /// CPU now.
    pub cpu_stats: CpuStats,
    /// CPU at the previous sample.
    pub precpu_stats: CpuStats,
    /// Memory.
    pub memory_stats: MemoryStats,
    /// `/NAME`.
    pub name: String,
    /// The container's id.
    pub id: String,
}

impl StatsReport {
    /// CPU use between the two samples, in percent of one CPU (docker CLI's formula).
    pub fn cpu_percent(&self) -> f64 {
        let cpu = self.cpu_stats.cpu_usage.total_usage as f64
            - self.precpu_stats.cpu_usage.total_usage as f64;
        let system =
            self.cpu_stats.system_cpu_usage as f64 - self.precpu_stats.system_cpu_usage as f64;
        let cpus = match self.cpu_stats.online_cpus {
            0 => self
                .cpu_stats
                .cpu_usage
                .percpu_usage
                .as_ref()
                .map_or(0, |p| p.len()) as f64,
            n => n as f64,
        };
        if system > 0.0 && cpu > 0.0 {
            cpu / system * cpus * 100.0
        } else {
            0.0
        }
    }

    /// Memory in use less the page cache that can be dropped (docker CLI's `MEM USAGE`).
    pub fn memory_usage(&self) -> u64 {
        let m = &self.memory_stats;
        let cache = m
            .stats
            .get("total_inactive_file")
            .or_else(|| m.stats.get("inactive_file"))
            .copied()
            .unwrap_or(0);
        if cache < m.usage {
            m.usage - cache
        } else {
            m.usage
        }
    }

    /// [`StatsReport::memory_usage`] in percent of the limit.
    pub fn memory_percent(&self) -> f64 {
        match self.memory_stats.limit {
            0 => 0.0,
            limit => self.memory_usage() as f64 / limit as f64 * 100.0,
        }
    }
}

/// A container's cgroup directory for `controller`, when it is kiln's own (`.../kiln/ID`).
fn own_cgroup(pid: i32, id: &str, controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let suffix = format!("/kiln/{id}");
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if !path.ends_with(&suffix) {
            continue;
        }
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            // The unified hierarchy: the controller must be enabled there.
            for base in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
                let dir = Path::new(base).join(rel);
                let enabled = std::fs::read_to_string(dir.join("cgroup.controllers"))
                    .is_ok_and(|c| c.split_whitespace().any(|c| c == controller));
                if enabled {
                    return Some(dir);
                }
            }
        } else if controllers.split(',').any(|c| c == controller) {
            let dir = Path::new("/sys/fs/cgroup").join(controllers).join(rel);
            if dir.is_dir() {
                return Some(dir);
            }
        }
    }
    None
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (`memory.stat`, `cpu.stat`, `cpuacct.stat`).
fn read_pairs(path: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The host's memory, bytes.
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let kb: u64 = t
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

/// The host's CPU time (ns) and online CPUs, from `/proc/stat`.
fn host_cpu() -> (u64, u32) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ns_per_tick = 1_000_000_000 / clock_ticks();
    let mut total = 0;
    let mut cpus = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("cpu ") {
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            total = rest
                .split_whitespace()
                .take(8)
                .filter_map(|f| f.parse::<u64>().ok())
                .sum::<u64>()
                * ns_per_tick;
        } else if line.starts_with("cpu") {
            cpus += 1;
        }
    }
    (total, cpus)
}

fn memory(pid: i32, id: &str, pids: &[i32]) -> MemoryStats {
    let host = host_memory();
    let cap = |limit: Option<u64>| match limit {
        Some(l) if l > 0 && l < host => l,
        _ => host,
    };
    if let Some(dir) = own_cgroup(pid, id, "memory") {
        if let Some(usage) = read_u64(&dir.join("memory.usage_in_bytes")) {
            return MemoryStats {
                usage,
                stats: read_pairs(&dir.join("memory.stat")),
                limit: cap(read_u64(&dir.join("memory.limit_in_bytes"))),
            };
        }
        if let Some(usage) = read_u64(&dir.join("memory.current")) {
            return MemoryStats {
                usage,
                stats: read_pairs(&dir.join("memory.stat")),
                limit: cap(read_u64(&dir.join("memory.max"))),
            };
        }
    }
    // SAFETY: sysconf only reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let usage = pids
        .iter()
        .filter_map(|p| {
            let statm = std::fs::read_to_string(format!("/proc/{p}/statm")).ok()?;
            statm.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum::<u64>()
        * page;
    MemoryStats {
        usage,
        stats: BTreeMap::new(),
        limit: host,
    }
}

fn cpu(pid: i32, id: &str, pids: &[i32]) -> CpuStats {
    let (system_cpu_usage, online_cpus) = host_cpu();
    let ns_per_tick = 1_000_000_000 / clock_ticks();
    let mut stats = CpuStats {
        system_cpu_usage,
        online_cpus,
        ..CpuStats::default()
    };
    if let Some(dir) = own_cgroup(pid, id, "cpuacct") {
        if let Some(total) = read_u64(&dir.join("cpuacct.usage")) {
            let times = read_pairs(&dir.join("cpuacct.stat"));
            let percpu = std::fs::read_to_string(dir.join("cpuacct.usage_percpu"))
                .ok()
                .map(|t| {
                    t.split_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect()
                });
            stats.cpu_usage = CpuUsage {
                total_usage: total,
                percpu_usage: percpu,
                usage_in_kernelmode: times.get("system").copied().unwrap_or(0) * ns_per_tick,
                usage_in_usermode: times.get("user").copied().unwrap_or(0) * ns_per_tick,
            };
            if let Some(cpu_dir) = own_cgroup(pid, id, "cpu") {
                let t = read_pairs(&cpu_dir.join("cpu.stat"));
                stats.throttling_data = ThrottlingData {
                    periods: t.get("nr_periods").copied().unwrap_or(0),
                    throttled_periods: t.get("nr_throttled").copied().unwrap_or(0),
                    throttled_time: t.get("throttled_time").copied().unwrap_or(0),
                };
            }
            return stats;
        }
    }
    if let Some(dir) = own_cgroup(pid, id, "cpu") {
        let t = read_pairs(&dir.join("cpu.stat"));
        if let Some(usec) = t.get("usage_usec") {
            stats.cpu_usage = CpuUsage {
                total_usage: usec * 1000,
                percpu_usage: None,
                usage_in_kernelmode: t.get("system_usec").copied().unwrap_or(0) * 1000,
                usage_in_usermode: t.get("user_usec").copied().unwrap_or(0) * 1000,
            };
            stats.throttling_data = ThrottlingData {
                periods: t.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: t.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: t.get("throttled_usec").copied().unwrap_or(0) * 1000,
            };
            return stats;
        }
    }
    let (mut user, mut system) = (0, 0);
    for p in pids {
        if let Some((_, rest)) = proc_stat(*p) {
            user += stat_field(&rest, 14);
            system += stat_field(&rest, 15);
        }
    }
    stats.cpu_usage = CpuUsage {
        total_usage: (user + system) * ns_per_tick,
        percpu_usage: None,
        usage_in_kernelmode: system * ns_per_tick,
        usage_in_usermode: user * ns_per_tick,
    };
    stats
}

fn pids_stats(pid: i32, id: &str, pids: &[i32]) -> PidsStats {
    if let Some(dir) = own_cgroup(pid, id, "pids") {
        if let Some(current) = read_u64(&dir.join("pids.current")) {
            return PidsStats {
                current,
                limit: read_u64(&dir.join("pids.max")),
            };
        }
    }
    PidsStats {
        current: pids.len() as u64,
        limit: None,
    }
}

/// One sample of a running container whose first process is `pid`.
fn sample(pid: i32, id: &str) -> (String, PidsStats, CpuStats, MemoryStats) {
    let pids = namespace_pids(pid);
    (
        rfc3339_nanos(now_nanos()),
        pids_stats(pid, id, &pids),
        cpu(pid, id, &pids),
        memory(pid, id, &pids),
    )
}

/// A container's stats, one report a second (see [`Engine::container_stats`]).
pub struct StatsStream {
    store: kiln_executor::state::Store,
    key: String,
    name: String,
    id: String,
    previous: Option<(String, CpuStats)>,
    last: Option<Instant>,
    ended: bool,
}

/// How long apart samples are (docker's collector interval).
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);

impl StatsStream {
    /// The next report, a second after the previous one (the first at once): its
    /// `precpu_stats` are the previous sample's. A container that is not running gives one
    /// report of zeroes and then `None`, as does one that stops.
    pub fn next_report(&mut self) -> Result<Option<StatsReport>> {
        if self.ended {
            return Ok(None);
        }
        if let Some(last) = self.last {
            std::thread::sleep(STATS_INTERVAL.saturating_sub(last.elapsed()));
        }
        self.last = Some(Instant::now());
        let rec = self.store.load(&self.key).map_err(from_executor)?;
        let mut report = StatsReport {
            name: format!("/{}", self.name),
            id: self.id.clone(),
            read: ZERO_TIME.into(),
            preread: ZERO_TIME.into(),
            ..StatsReport::default()
        };
        let Some(pid) = rec.pid.filter(|_| is_running(&rec)) else {
            self.ended = true;
            return Ok(Some(report));
        };
        let (read, pids, cpu, memory) = sample(pid, &self.id);
        if let Some((preread, precpu)) = self.previous.take() {
            report.preread = preread;
            report.precpu_stats = precpu;
        }
        report.read = read.clone();
        report.pids_stats = pids;
        report.cpu_stats = cpu.clone();
        report.memory_stats = memory;
        self.previous = Some((read, cpu));
        Ok(Some(report))
    }
}

impl Engine {
    /// The stats of a container as a stream of reports (docker's `stats`):
    /// [`Error::NotFound`](crate::Error::NotFound) for no such container.
    pub fn container_stats(&self, key: &str) -> Result<StatsStream> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        Ok(StatsStream {
            store,
            key: rec.id.clone(),
            name: rec.name.clone(),
            id: rec.id,
            previous: None,
            last: None,
            ended: false,
        })
    }

    /// One report whose CPU figures span a second (`docker stats --no-stream`; the API's
    /// `stream=false`), or with `one_shot` the first sample alone, without `precpu_stats`.
    pub fn container_stats_once(&self, key: &str, one_shot: bool) -> Result<StatsReport> {
        let mut stream = self.container_stats(key)?;
        let first = stream.next_report()?.unwrap_or_default();
        if one_shot || stream.ended {
            return Ok(first);
        }
        Ok(stream.next_report()?.unwrap_or(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_percent_follow_the_docker_cli() {
        let mut r = StatsReport::default();
        r.precpu_stats.cpu_usage.total_usage = 1_000;
        r.precpu_stats.system_cpu_usage = 10_000;
        r.cpu_stats.cpu_usage.total_usage = 2_000;
        r.cpu_stats.system_cpu_usage = 20_000;
        r.cpu_stats.online_cpus = 2;
        assert!((r.cpu_percent() - 20.0).abs() < 1e-9);
        r.memory_stats.usage = 300;
        r.memory_stats.limit = 1_000;
        r.memory_stats
            .stats
            .insert("total_inactive_file".into(), 100);
        assert_eq!(r.memory_usage(), 200);
        assert!((r.memory_percent() - 20.0).abs() < 1e-9);
    }

    #[test]
    fn the_host_has_cpu_time_and_memory() {
        let (total, cpus) = host_cpu();
        assert!(total > 0 && cpus > 0);
        assert!(host_memory() > 0);
        // This process's own figures through the /proc fallback.
        let me = std::process::id() as i32;
        let m = memory(me, "no-such-container", &[me]);
        assert!(m.usage > 0 && m.limit == host_memory(), "{m:?}");
        assert_eq!(pids_stats(me, "no-such-container", &[me]).current, 1);
    }

    #[test]
    fn a_report_has_dockers_keys() {
        let v = serde_json::to_value(StatsReport::default()).unwrap();
        for k in [
            "read",
            "preread",
            "pids_stats",
            "memory_stats",
            "cpu_stats",
            "precpu_stats",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v["cpu_stats"]["cpu_usage"].get("total_usage").is_some());
        assert!(v["cpu_stats"]["cpu_usage"].get("percpu_usage").is_none());
    }
}
