//! `/_ping`, `/version` and `/info`: what a client asks before anything else.

use hyper::{header, Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::router::{Call, HandlerResult, Router};
use crate::{full, json_response, API_VERSION, MIN_API_VERSION};

/// Adds this module's routes.
pub fn routes(router: &mut Router) {
    router
        .route(Method::GET, "/_ping", |c| Box::pin(ping(c)))
        .route(Method::HEAD, "/_ping", |c| Box::pin(ping(c)))
        .route(Method::GET, "/version", |c| Box::pin(version(c)))
        .route(Method::GET, "/info", |c| Box::pin(info(c)));
}

/// `GET|HEAD /_ping`: `OK`, and the headers clients negotiate from. No `Builder-Version`:
/// `2` would send the 20.10 CLI down the BuildKit session path, which kiln does not serve.
pub async fn ping(call: Call) -> HandlerResult {
    let body = if call.parts.method == Method::HEAD {
        ""
    } else {
        "OK"
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache, no-store, must-revalidate")
        .header(header::PRAGMA, "no-cache")
        .body(full(body))
        .map_err(|e| crate::ApiError::internal(e.to_string()))
}

/// kiln's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /version`.
pub async fn version(_call: Call) -> HandlerResult {
    let host = Host::read();
    let details = json!({
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": host.kernel,
    });
    let mut body = json!({
        "Platform": {"Name": "kiln"},
        "Components": [{"Name": "Engine", "Version": VERSION, "Details": details}],
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "n/a",
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": host.kernel,
        "BuildTime": "",
    });
    if let Some(components) = body["Components"][0]["Details"].as_object_mut() {
        components.insert("GitCommit".into(), Value::from(""));
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /info`: the host's real values, the store's counts, and what kiln's runtime supports
/// (which silences the 20.10 CLI's warnings only where that is true).
pub async fn info(call: Call) -> HandlerResult {
    let engine = call.engine.clone();
    tokio::task::spawn_blocking(move || info_body(&engine))
        .await
        .map_err(|e| crate::ApiError::internal(format!("gathering info: {e}")))?
        .map(|body| json_response(StatusCode::OK, &body))
}

fn info_body(engine: &kiln_engine::Engine) -> Result<Value, crate::ApiError> {
    use kiln_engine::ResultExt;
    let host = Host::read();
    let containers = engine.containers()?.list();
    let running = containers
        .iter()
        .filter(|c| c.status == kiln_executor::state::Status::Running)
        .count();
    let store = engine.store()?;
    let images: std::collections::BTreeSet<String> = store
        .images()
        .context("listing images")?
        .into_iter()
        .map(|r| r.config.to_string())
        .collect();
    let ip_forward = read_trimmed("/proc/sys/net/ipv4/ip_forward").as_deref() == Some("1");
    let bridge_nf =
        |name: &str| read_trimmed(&format!("/proc/sys/net/bridge/{name}")).as_deref() == Some("1");
    let cgroup_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    Ok(json!({
        "ID": engine_id(engine.root()),
        "Name": host.hostname,
        "ServerVersion": VERSION,
        "OperatingSystem": host.os,
        "OSType": "linux",
        "OSVersion": host.os_version,
        "Architecture": host.machine,
        "KernelVersion": host.kernel,
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": host.mem_total,
        "DockerRootDir": engine.root().display().to_string(),
        "Driver": "overlay",
        "DriverStatus": [],
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": containers.len() - running,
        "Images": images.len(),
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": if cgroup_v2 { "2" } else { "1" },
        // kiln run applies --memory, --cpus (CFS quota and period) and --pids-limit; it has
        // no swap, shares, cpuset or OOM-kill options.
        "MemoryLimit": true,
        "SwapLimit": false,
        "CpuCfsQuota": true,
        "CpuCfsPeriod": true,
        "CPUShares": false,
        "CPUSet": false,
        "PidsLimit": true,
        "OomKillDisable": false,
        "KernelMemory": false,
        "IPv4Forwarding": ip_forward,
        "BridgeNfIptables": bridge_nf("bridge-nf-call-iptables"),
        "BridgeNfIp6tables": bridge_nf("bridge-nf-call-ip6tables"),
        "Debug": false,
        "NFd": count_dir("/proc/self/fd"),
        "NGoroutines": 0,
        "SystemTime": now_rfc3339(),
        "LoggingDriver": "json-file",
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {
                "docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": true, "Official": true}
            },
            "Mirrors": [],
        },
        "Plugins": {"Volume": ["local"], "Network": ["host", "none"], "Log": ["json-file"]},
        "HttpProxy": std::env::var("HTTP_PROXY").unwrap_or_default(),
        "HttpsProxy": std::env::var("HTTPS_PROXY").unwrap_or_default(),
        "NoProxy": std::env::var("NO_PROXY").unwrap_or_default(),
        "Labels": [],
        "ExperimentalBuild": false,
        "LiveRestoreEnabled": false,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=default"],
        "Warnings": [],
    }))
}

/// What uname and /etc/os-release say about the host.
struct Host {
    hostname: String,
    kernel: String,
    machine: String,
    os: String,
    os_version: String,
    mem_total: u64,
}

impl Host {
    fn read() -> Host {
        let (hostname, kernel, machine) = uname();
        let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let field = |key: &str| {
            release.lines().find_map(|line| {
                line.strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix('='))
                    .map(|v| v.trim().trim_matches('"').to_string())
            })
        };
        let mem_total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kib| kib * 1024);
        Host {
            hostname,
            kernel,
            machine,
            os: field("PRETTY_NAME").unwrap_or_else(|| "Linux".into()),
            os_version: field("VERSION_ID").unwrap_or_default(),
            mem_total,
        }
    }
}

/// (nodename, release, machine) from uname(2).
fn uname() -> (String, String, String) {
    // SAFETY: utsname is plain old data, all zeroes is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a valid, writable utsname; uname only writes into it.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Default::default();
    }
    let text = |field: &[libc::c_char]| {
        let bytes: Vec<u8> = field
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (text(&uts.nodename), text(&uts.release), text(&uts.machine))
}

/// Go's name for this architecture, as docker reports it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "arm" => "arm",
        other => other,
    }
}

/// A stable ID for this root: made once from the kernel's random UUID and kept in
/// `ROOT/engine-id` (docker keeps its ID under its root too).
fn engine_id(root: &std::path::Path) -> String {
    let path = root.join("engine-id");
    if let Some(id) = read_trimmed(&path.display().to_string()).filter(|id| !id.is_empty()) {
        return id;
    }
    let id = read_trimmed("/proc/sys/kernel/random/uuid").unwrap_or_default();
    if !id.is_empty() {
        // Two services starting at once may both write: the last one wins, both valid.
        let tmp = root.join(format!("engine-id.{}", std::process::id()));
        if std::fs::write(&tmp, format!("{id}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    id
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map_or(0, |d| d.count())
}

/// Now as RFC 3339 in UTC (`2026-12-03T11:38:10.123456789Z`).
fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values_are_real() {
        let (hostname, kernel, machine) = uname();
        assert!(!hostname.is_empty() && !kernel.is_empty() && !machine.is_empty());
        assert_ne!(go_arch(), "x86_64");
        let t = now_rfc3339();
        assert_eq!(t.len(), "2026-12-03T11:38:10.123456789Z".len(), "{t}");
        assert!(t.starts_with("20"));
    }

    #[test]
    fn the_engine_id_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = engine_id(dir.path());
        assert_eq!(a.len(), 36, "{a}");
        assert_eq!(engine_id(dir.path()), a);
    }
}
