//! Login checks: whether a user name and password work on a registry (`kiln login`, `POST
//! /auth`). Nothing is written: storing the credentials is the face's job (the CLI writes
//! docker's config file; the API service stores nothing).

use kiln_registry::auth::CredentialStore;
use kiln_registry::{Client, ClientConfig};

use crate::pull::runtime;
use crate::{Engine, Result, ResultExt};

/// Credentials to check against a registry.
#[derive(Debug, Clone)]
pub struct LoginCheck {
    /// The registry as the user wrote it (`https://index.docker.io/v1/`, `host:5000`); Docker
    /// Hub when `None`.
    pub server: Option<String>,
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
    /// Require HTTPS and verify certificates (loopback registries always use plain HTTP).
    pub tls_verify: bool,
}

impl Engine {
    /// Logs in to the registry with exactly these credentials (not stored ones) and returns
    /// the registry host they belong to (as [`registry_host`] names it).
    pub fn check_login(&self, check: &LoginCheck) -> Result<String> {
        let registry = registry_host(check.server.as_deref());
        let mut config = ClientConfig::from_env()?;
        config.tls_verify = check.tls_verify;
        config.credentials = CredentialStore::with_files(None, None);
        let client = Client::new(config)?;
        runtime()?
            .block_on(client.login(&registry, &check.username, &check.password))
            .with_context(|| format!("login to {registry} failed"))?;
        Ok(registry)
    }
}

/// The registry host docker would store credentials under: scheme and path stripped,
/// Docker Hub's aliases folded to `docker.io`.
pub fn registry_host(server: Option<&str>) -> String {
    let Some(server) = server.map(str::trim).filter(|s| !s.is_empty()) else {
        return "docker.io".into();
    };
    let stripped = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = stripped.split('/').next().unwrap_or(stripped);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalized_as_docker_does() {
        assert_eq!(registry_host(None), "docker.io");
        assert_eq!(
            registry_host(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(registry_host(Some("127.0.0.1:5000")), "127.0.0.1:5000");
        assert_eq!(
            registry_host(Some("http://reg.local:5000/v2/")),
            "reg.local:5000"
        );
    }
}
