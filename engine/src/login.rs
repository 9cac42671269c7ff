//! Login checks: whether a user name and password work on a registry (`kiln login`, `POST
//! /auth`). Nothing is written: storing the credentials is the face's job (the CLI writes
//! docker's config file; the API service stores nothing).

use kiln_registry::auth::{CredentialStore, RegistryAuth};
use kiln_registry::{Client, ClientConfig};

use crate::pull::runtime;
use crate::{Engine, Result, ResultExt};

/// Credentials to check against a registry.
#[derive(Debug, Clone)]
pub struct LoginCheck {
    /// The registry as the user wrote it (`https://index.docker.io/v1/`, `host:5000`); Docker
    /// Hub when `None`.
    pub server: Option<String>,
    /// What to log in with: a user name and password (`RegistryAuth::basic`), or whatever
    /// else docker's `AuthConfig` carries (an identity or registry token, `auth`). Its
    /// `Debug` shows no secret.
    pub credentials: RegistryAuth,
    /// Require HTTPS and verify certificates (loopback registries always use plain HTTP).
    pub tls_verify: bool,
}

impl Engine {
    /// Logs in to the registry with exactly these credentials (not stored ones) and returns
    /// the registry host they belong to (as [`registry_host`] names it). Refused credentials
    /// are a [`kiln_registry::Error`] whose `is_unauthorized()` holds, under
    /// `login to HOST failed`.
    pub fn check_login(&self, check: &LoginCheck) -> Result<String> {
        let registry = registry_host(check.server.as_deref());
        let mut config = ClientConfig::from_env()?;
        config.tls_verify = check.tls_verify;
        // Only what was given: never a stored credential.
        config.credentials = CredentialStore::given([]);
        let client = Client::new(config)?;
        runtime()?
            .block_on(client.login(&registry, &check.credentials))
            .with_context(|| format!("login to {registry} failed"))?;
        Ok(registry)
    }
}

/// The registry host docker would store credentials under: scheme and path stripped,
/// Docker Hub's aliases folded to `docker.io`.
pub fn registry_host(server: Option<&str>) -> String {
    kiln_registry::auth::registry_host(server.unwrap_or(""))
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
