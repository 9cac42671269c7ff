//! Credentials handed in with one request (the Engine API's `X-Registry-Auth`, `X-Registry-Config`
//! and `POST /auth` bodies): docker's `AuthConfig`, held in memory only.
//!
//! They are secrets. Nothing here writes them anywhere: the type has no `Serialize`, its
//! `Debug` redacts every secret field, and the errors about them never quote a value.

use base64::Engine;

use super::credentials::{CredentialError, Credentials, IDENTITY_TOKEN_USER};

/// The text shown for a secret field that is set.
const REDACTED: &str = "<redacted>";

/// docker's `AuthConfig` (moby `api/types/registry.AuthConfig`): what a client sends for one
/// registry. Field names are the JSON keys docker uses; Go decodes JSON keys without regard
/// to case, so the capitalized spellings are accepted too, and `null` reads as empty.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct RegistryAuth {
    /// The user name.
    #[serde(alias = "Username", deserialize_with = "null_is_empty")]
    pub username: String,
    /// The password (or a personal access token).
    #[serde(alias = "Password", deserialize_with = "null_is_empty")]
    pub password: String,
    /// `base64(username:password)`, as docker's config file keeps it; used when `username`
    /// and `password` are empty.
    #[serde(alias = "Auth", deserialize_with = "null_is_empty")]
    pub auth: String,
    /// An e-mail address (deprecated by docker; ignored).
    #[serde(alias = "Email", deserialize_with = "null_is_empty")]
    pub email: String,
    /// The registry these are for, as the client names it (`https://index.docker.io/v1/`,
    /// `127.0.0.1:5000`).
    #[serde(alias = "ServerAddress", deserialize_with = "null_is_empty")]
    pub serveraddress: String,
    /// An OAuth2 refresh token, exchanged for bearer tokens at the registry's token server.
    #[serde(alias = "IdentityToken", deserialize_with = "null_is_empty")]
    pub identitytoken: String,
    /// A bearer token sent to the registry as it is.
    #[serde(alias = "RegistryToken", deserialize_with = "null_is_empty")]
    pub registrytoken: String,
}

fn null_is_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(<Option<String> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Shows which secrets are set, never what they are.
        let secret = |value: &str| if value.is_empty() { "" } else { REDACTED };
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &secret(&self.password))
            .field("auth", &secret(&self.auth))
            .field("serveraddress", &self.serveraddress)
            .field("identitytoken", &secret(&self.identitytoken))
            .field("registrytoken", &secret(&self.registrytoken))
            .finish_non_exhaustive()
    }
}

impl RegistryAuth {
    /// A user name and password.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> RegistryAuth {
        RegistryAuth {
            username: username.into(),
            password: password.into(),
            ..RegistryAuth::default()
        }
    }

    /// Whether this holds nothing to authenticate with (docker's `{}`, sent for anonymous
    /// access).
    pub fn is_anonymous(&self) -> bool {
        self.username.is_empty()
            && self.password.is_empty()
            && self.auth.is_empty()
            && self.identitytoken.is_empty()
            && self.registrytoken.is_empty()
    }

    /// The bearer token to send as it is, when one was given.
    pub fn registry_token(&self) -> Option<&str> {
        Some(self.registrytoken.as_str()).filter(|t| !t.is_empty())
    }

    /// The credentials for basic auth or a token request: the identity token first (as
    /// docker's token handler prefers it), then user name and password, then `auth`
    /// decoded. `None` when there are none. `registry` only names the registry in errors.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>, CredentialError> {
        if !self.identitytoken.is_empty() {
            return Ok(Some(Credentials {
                username: IDENTITY_TOKEN_USER.to_string(),
                password: self.identitytoken.clone(),
            }));
        }
        if !self.username.is_empty() || !self.password.is_empty() {
            return Ok(Some(Credentials {
                username: self.username.clone(),
                password: self.password.clone(),
            }));
        }
        if self.auth.is_empty() {
            return Ok(None);
        }
        // The value itself never goes into the error: it is the secret.
        let bad = |what: &str| CredentialError::Given {
            registry: registry.to_string(),
            message: format!("the auth field {what}"),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(self.auth.trim())
            .map_err(|_| bad("is not base64"))?;
        let text = String::from_utf8(decoded).map_err(|_| bad("is not UTF-8 text"))?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| bad("is not of the form username:password"))?;
        Ok(Some(Credentials {
            username: user.to_string(),
            password: pass.to_string(),
        }))
    }
}

/// The registry host docker keys credentials by: scheme and path stripped
/// (`https://host:5000/v2/` -> `host:5000`), Docker Hub's names folded to `docker.io`
/// (the domain a reference to Docker Hub has). Empty means Docker Hub.
pub fn registry_host(server: &str) -> String {
    let server = server.trim();
    if server.is_empty() {
        return crate::reference::DEFAULT_DOMAIN.to_string();
    }
    let stripped = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = stripped.split('/').next().unwrap_or(stripped);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => {
            crate::reference::DEFAULT_DOMAIN.to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRETS: [&str; 4] = [
        "pa55-w0rd",
        "YWNjOmF1dGgtc2VjcmV0",
        "id-secret",
        "reg-secret",
    ];

    fn full() -> RegistryAuth {
        RegistryAuth {
            username: "acc".into(),
            password: SECRETS[0].into(),
            auth: SECRETS[1].into(),
            email: String::new(),
            serveraddress: "127.0.0.1:5000".into(),
            identitytoken: SECRETS[2].into(),
            registrytoken: SECRETS[3].into(),
        }
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let auth = full();
        for text in [format!("{auth:?}"), format!("{auth:#?}")] {
            for secret in SECRETS {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            assert!(
                text.contains("acc") && text.contains("127.0.0.1:5000"),
                "{text}"
            );
            assert!(text.contains(REDACTED), "{text}");
        }
        // Nor does the Debug of what they become, or of a store holding them.
        let creds = auth.credentials("r").unwrap().unwrap();
        assert!(!format!("{creds:?}").contains(SECRETS[2]));
        let store = super::super::CredentialStore::given([("r".to_string(), auth)]);
        let text = format!("{store:?}");
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn errors_never_quote_the_auth_field() {
        for auth in ["c2VjcmV0LXdpdGhvdXQtY29sb24=", "not base64 secret!", "/w=="] {
            let given = RegistryAuth {
                auth: auth.into(),
                ..RegistryAuth::default()
            };
            let err = given.credentials("127.0.0.1:5000").unwrap_err().to_string();
            assert!(err.contains("127.0.0.1:5000"), "{err}");
            assert!(!err.contains(auth), "{err}");
            // Nor the decoded text.
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn which_credentials_are_used() {
        let mut auth = full();
        assert_eq!(
            auth.credentials("r").unwrap().unwrap().username,
            IDENTITY_TOKEN_USER
        );
        auth.identitytoken.clear();
        assert_eq!(
            auth.credentials("r").unwrap(),
            Some(Credentials {
                username: "acc".into(),
                password: SECRETS[0].into()
            })
        );
        let only_auth = RegistryAuth {
            auth: "YWNjOmF1dGgtc2VjcmV0".into(),
            ..RegistryAuth::default()
        };
        assert_eq!(
            only_auth.credentials("r").unwrap().unwrap().password,
            "auth-secret"
        );
        assert!(RegistryAuth::default().is_anonymous());
        assert_eq!(RegistryAuth::default().credentials("r").unwrap(), None);
        assert_eq!(full().registry_token(), Some(SECRETS[3]));
        assert!(!only_auth.is_anonymous());
    }

    #[test]
    fn decodes_docker_json_in_both_spellings() {
        let a: RegistryAuth = serde_json::from_str(
            r#"{"username":"u","password":"p","serveraddress":"h:5000","auth":null}"#,
        )
        .unwrap();
        assert_eq!(
            (a.username.as_str(), a.serveraddress.as_str()),
            ("u", "h:5000")
        );
        let b: RegistryAuth =
            serde_json::from_str(r#"{"Username":"u","Password":"p","IdentityToken":"t"}"#).unwrap();
        assert_eq!(b.identitytoken, "t");
        let empty: RegistryAuth = serde_json::from_str("{}").unwrap();
        assert!(empty.is_anonymous());
    }

    #[test]
    fn hosts_are_keyed_as_docker_keys_them() {
        assert_eq!(registry_host(""), "docker.io");
        assert_eq!(registry_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_host("http://reg.local:5000/v2/"), "reg.local:5000");
    }
}
