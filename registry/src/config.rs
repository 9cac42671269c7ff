//! Client settings and kiln's registries config file.
//!
//! The file is JSON, at `$KILN_REGISTRIES_CONFIG` when set, else
//! `/etc/kiln/registries.json` as root or `$XDG_CONFIG_HOME/kiln/registries.json`
//! (`~/.config/kiln/registries.json`). Its key mirrors docker's daemon.json:
//!
//! ```json
//! { "insecure-registries": ["myregistry.local:5000", "10.0.0.7"] }
//! ```
//!
//! An insecure registry is reached over HTTPS without certificate verification, falling back
//! to plain HTTP, as docker does; loopback registries (`localhost`, 127.0.0.0/8, `::1`) use
//! plain HTTP without being listed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::progress::ProgressFn;

/// How the client behaves. `Default` gives docker's behaviour.
#[derive(Clone)]
pub struct ClientConfig {
    /// Registries reached without TLS verification (`host` or `host:port`).
    pub insecure_registries: Vec<String>,
    /// `--tls-verify=false`: treat every registry as insecure.
    pub tls_verify: bool,
    /// Attempts per request or blob before giving up (at least 1).
    pub max_attempts: u32,
    /// The first retry waits this long; each later one twice as long.
    pub retry_backoff: Duration,
    /// Blobs transferred at once.
    pub concurrency: usize,
    /// Blobs above this size are pushed in chunks of this size (PATCH); `None` pushes every
    /// blob in one PUT.
    pub chunk_size: Option<u64>,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Longest pause between two reads of a response before the transfer counts as broken.
    pub read_timeout: Duration,
    /// Receives per-blob progress.
    pub progress: Option<ProgressFn>,
    /// Where to find credentials.
    pub credentials: crate::auth::CredentialStore,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("insecure_registries", &self.insecure_registries)
            .field("tls_verify", &self.tls_verify)
            .field("max_attempts", &self.max_attempts)
            .field("concurrency", &self.concurrency)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure_registries: Vec::new(),
            tls_verify: true,
            max_attempts: 5,
            retry_backoff: Duration::from_millis(250),
            concurrency: 3,
            chunk_size: None,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            progress: None,
            credentials: crate::auth::CredentialStore::default(),
        }
    }
}

#[derive(serde::Deserialize)]
struct RegistriesFile {
    #[serde(default, rename = "insecure-registries")]
    insecure_registries: Vec<String>,
}

impl ClientConfig {
    /// Docker's defaults plus credentials from the environment and the registries file, if any.
    pub fn from_env() -> Result<ClientConfig> {
        let mut config = ClientConfig {
            credentials: crate::auth::CredentialStore::from_env(),
            ..ClientConfig::default()
        };
        if let Some(path) = registries_file_path() {
            config.load_registries_file(&path)?;
        }
        Ok(config)
    }

    /// Adds the insecure registries of a registries file; a missing file is no error.
    pub fn load_registries_file(&mut self, path: &Path) -> Result<()> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let file: RegistriesFile = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
            what: format!("registries config {}", path.display()),
            message: e.to_string(),
        })?;
        self.insecure_registries.extend(file.insecure_registries);
        Ok(())
    }

    /// Whether `registry` (host or host:port) is reached without TLS verification.
    pub fn is_insecure(&self, registry: &str) -> bool {
        !self.tls_verify
            || self
                .insecure_registries
                .iter()
                .any(|r| r == registry || (!r.contains(':') && host_of(registry) == r.as_str()))
    }
}

/// Where the registries file is looked for (see the module docs).
pub fn registries_file_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KILN_REGISTRIES_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    // /proc/self belongs to the process's effective uid: no unsafe call needed to learn it.
    let is_root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    };
    if is_root {
        return Some(PathBuf::from("/etc/kiln/registries.json"));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("kiln").join("registries.json"))
}

/// The host part of `host[:port]`, IPv6 brackets kept.
pub(crate) fn host_of(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry
            .split_once(']')
            .map_or(registry, |(h, _)| &registry[..h.len() + 1]);
    }
    registry.rsplit_once(':').map_or(registry, |(h, _)| h)
}

/// Whether docker reaches `registry` over plain HTTP by default: localhost, 127.0.0.0/8, ::1.
pub fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry);
    if host == "localhost" {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for yes in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.4.5",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "example.com",
            "10.0.0.1:5000",
            "docker.io",
            "localhost.example.com",
            "[::2]:80",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn insecure_list_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registries.json");
        std::fs::write(
            &path,
            r#"{"insecure-registries":["reg.local:5000","other.local"]}"#,
        )
        .unwrap();
        let mut c = ClientConfig::default();
        c.load_registries_file(&path).unwrap();
        c.load_registries_file(&dir.path().join("missing.json"))
            .unwrap();
        assert!(c.is_insecure("reg.local:5000"));
        assert!(!c.is_insecure("reg.local:5001"));
        assert!(c.is_insecure("other.local:443"));
        assert!(!c.is_insecure("example.com"));
        c.tls_verify = false;
        assert!(c.is_insecure("example.com"));
        std::fs::write(&path, "[").unwrap();
        let err = c.load_registries_file(&path).unwrap_err();
        assert!(err.to_string().contains("registries.json"), "{err}");
    }
}
