//! Credentials in docker's config file (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`), containers' `REGISTRY_AUTH_FILE`, and docker credential helpers.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{Map, Value};

use super::given::{registry_host, RegistryAuth};

/// The user name that marks [`Credentials::password`] as an identity (OAuth2 refresh) token,
/// as docker's credential helpers return it.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// The key docker uses for Docker Hub in `auths`.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, not even in debug logs.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic` header (and of docker's `auth` field).
    pub fn basic_token(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.username, self.password))
    }
}

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The config file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The config file is not valid JSON of the expected shape.
    #[error("{path}: invalid docker config: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A `docker-credential-*` helper failed.
    #[error("credential helper docker-credential-{helper} {action}: {message}")]
    Helper {
        /// The helper's name.
        helper: String,
        /// `get`, `store` or `erase`.
        action: String,
        /// Its error output or the spawn error.
        message: String,
    },
    /// No home directory and no `DOCKER_CONFIG` to find the config file.
    #[error("cannot locate docker's config file: set DOCKER_CONFIG or HOME")]
    NoConfigDir,
    /// Credentials handed in with a request are unusable (the message never quotes them).
    #[error("the credentials given for {registry}: {message}")]
    Given {
        /// The registry they were given for.
        registry: String,
        /// What is wrong with them.
        message: String,
    },
}

/// The key docker writes in `auths` for a registry host.
pub fn auth_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_AUTH_KEY.to_string(),
        other => other.to_string(),
    }
}

/// docker's `ConvertToHostname`: `https://host/v1/` -> `host`.
fn key_hostname(key: &str) -> &str {
    let stripped = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    stripped.split('/').next().unwrap_or(stripped)
}

/// docker's config file: where it is and what it says.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    json: Map<String, Value>,
}

impl DockerConfig {
    /// Where docker reads its config: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> Result<PathBuf, CredentialError> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir).join("config.json"));
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or(CredentialError::NoConfigDir)?;
        Ok(PathBuf::from(home).join(".docker").join("config.json"))
    }

    /// Loads the file at `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<DockerConfig, CredentialError> {
        let json = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(invalid(path, "not a JSON object")),
                Err(e) => return Err(invalid(path, &e.to_string())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => {
                return Err(CredentialError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Ok(DockerConfig {
            path: path.to_path_buf(),
            json,
        })
    }

    /// The file this config was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential helper docker would use for `registry` (`credHelpers`, else `credsStore`).
    pub fn helper_for(&self, registry: &str) -> Option<String> {
        let key = auth_key(registry);
        self.json
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|h| h.get(&key).or_else(|| h.get(registry)))
            .or_else(|| self.json.get("credsStore"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// Credentials stored inline in `auths` for `registry`, matching keys as docker does
    /// (exact key first, then any key whose host part is the registry).
    pub fn inline_credentials(
        &self,
        registry: &str,
    ) -> Result<Option<Credentials>, CredentialError> {
        let Some(auths) = self.json.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let key = auth_key(registry);
        let wanted_host = key_hostname(&key);
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| key_hostname(k) == wanted_host)
                .map(|(_, v)| v)
        });
        let Some(entry) = entry else {
            return Ok(None);
        };
        // docker keeps an OAuth2 refresh token beside (or instead of) the password.
        if let Some(token) = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(Credentials {
                username: IDENTITY_TOKEN_USER.to_string(),
                password: token.to_string(),
            }));
        }
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| invalid(&self.path, &format!("auths.{key}.auth: {e}")))?;
            let text = String::from_utf8(decoded)
                .map_err(|_| invalid(&self.path, &format!("auths.{key}.auth is not UTF-8")))?;
            let (user, pass) = text
                .split_once(':')
                .ok_or_else(|| invalid(&self.path, &format!("auths.{key}.auth has no ':'")))?;
            return Ok(Some(Credentials {
                username: user.to_string(),
                password: pass.to_string(),
            }));
        }
        if let (Some(u), Some(p)) = (
            entry.get("username").and_then(Value::as_str),
            entry.get("password").and_then(Value::as_str),
        ) {
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
        Ok(None)
    }

    /// Credentials for `registry` as docker finds them: the helper if one is configured, else `auths`.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>, CredentialError> {
        if let Some(helper) = self.helper_for(registry) {
            return helper_get(&helper, &auth_key(registry));
        }
        self.inline_credentials(registry)
    }

    /// Stores credentials as `docker login` does (through the helper if one is configured, else
    /// inline in `auths`) and writes the file atomically with mode 0600.
    pub fn store(&mut self, registry: &str, creds: &Credentials) -> Result<(), CredentialError> {
        let key = auth_key(registry);
        let helper = self.helper_for(registry);
        if let Some(helper) = &helper {
            helper_store(helper, &key, creds)?;
        }
        let auths = self
            .json
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let auths = auths.as_object_mut().expect("auths is an object");
        let mut entry = Map::new();
        if helper.is_none() {
            entry.insert("auth".into(), Value::String(creds.basic_token()));
        }
        // With a helper docker keeps an empty entry so that the registry stays listed.
        auths.insert(key, Value::Object(entry));
        self.save()
    }

    /// Removes the registry's entry (and erases it from the helper). Returns whether there was one.
    pub fn remove(&mut self, registry: &str) -> Result<bool, CredentialError> {
        let key = auth_key(registry);
        let wanted_host = key_hostname(&key).to_string();
        let mut removed = false;
        if let Some(helper) = self.helper_for(registry) {
            removed |= helper_erase(&helper, &key)?;
        }
        if let Some(auths) = self.json.get_mut("auths").and_then(Value::as_object_mut) {
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| **k == key || key_hostname(k) == wanted_host)
                .cloned()
                .collect();
            for k in keys {
                auths.remove(&k);
                removed = true;
            }
        }
        if removed {
            self.save()?;
        }
        Ok(removed)
    }

    /// Writes the file: a temporary file in the same directory, mode 0600, fsynced, renamed over.
    fn save(&self) -> Result<(), CredentialError> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| CredentialError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut bytes = serde_json::to_vec_pretty(&Value::Object(self.json.clone()))
            .map_err(|e| invalid(&self.path, &e.to_string()))?;
        bytes.push(b'\n');
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "config.json".into()),
            std::process::id()
        ));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }
}

fn invalid(path: &Path, message: &str) -> CredentialError {
    CredentialError::Invalid {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn run_helper(
    helper: &str,
    action: &str,
    input: &[u8],
) -> Result<(bool, Vec<u8>), CredentialError> {
    let err = |message: String| CredentialError::Helper {
        helper: helper.to_string(),
        action: action.to_string(),
        message,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| err(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    let mut text = out.stdout;
    if !out.status.success() {
        // Helpers print "credentials not found in native keychain" on stdout for a miss.
        text.extend_from_slice(&out.stderr);
    }
    Ok((out.status.success(), text))
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>, CredentialError> {
    let (ok, out) = run_helper(helper, "get", server.as_bytes())?;
    if !ok {
        let text = String::from_utf8_lossy(&out).trim().to_string();
        if text.contains("credentials not found") {
            return Ok(None);
        }
        return Err(CredentialError::Helper {
            helper: helper.into(),
            action: "get".into(),
            message: text,
        });
    }
    let value: Value = serde_json::from_slice(&out).map_err(|e| CredentialError::Helper {
        helper: helper.into(),
        action: "get".into(),
        message: format!("invalid output: {e}"),
    })?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(Some(Credentials {
        username: field("Username"),
        password: field("Secret"),
    }))
}

fn helper_store(helper: &str, server: &str, creds: &Credentials) -> Result<(), CredentialError> {
    let input = serde_json::json!({
        "ServerURL": server,
        "Username": creds.username,
        "Secret": creds.password,
    });
    let (ok, out) = run_helper(helper, "store", input.to_string().as_bytes())?;
    if ok {
        Ok(())
    } else {
        Err(CredentialError::Helper {
            helper: helper.into(),
            action: "store".into(),
            message: String::from_utf8_lossy(&out).trim().to_string(),
        })
    }
}

fn helper_erase(helper: &str, server: &str) -> Result<bool, CredentialError> {
    let (ok, out) = run_helper(helper, "erase", server.as_bytes())?;
    if ok {
        return Ok(true);
    }
    let text = String::from_utf8_lossy(&out).trim().to_string();
    if text.contains("not found") {
        return Ok(false);
    }
    Err(CredentialError::Helper {
        helper: helper.into(),
        action: "erase".into(),
        message: text,
    })
}

/// Finds credentials: `REGISTRY_AUTH_FILE` (containers' auth.json) first when set, then
/// docker's config file; or, for a store made by [`CredentialStore::given`], only the
/// credentials handed in, in memory (as dockerd uses only what a request sends).
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    auth_file: Option<PathBuf>,
    docker_config: Option<PathBuf>,
    /// Credentials handed in, by registry host ([`registry_host`]); when set, no file is read.
    given: Option<BTreeMap<String, RegistryAuth>>,
}

impl CredentialStore {
    /// The files docker and the containers tools read, from the environment.
    pub fn from_env() -> CredentialStore {
        CredentialStore {
            auth_file: std::env::var_os("REGISTRY_AUTH_FILE")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            docker_config: DockerConfig::default_path().ok(),
            given: None,
        }
    }

    /// Explicit files (tests, `--authfile`).
    pub fn with_files(
        auth_file: Option<PathBuf>,
        docker_config: Option<PathBuf>,
    ) -> CredentialStore {
        CredentialStore {
            auth_file,
            docker_config,
            given: None,
        }
    }

    /// Only these credentials, by registry (keys as docker's `X-Registry-Config` has them:
    /// `host:port`, `https://index.docker.io/v1/`), held in memory; no file is read, and a
    /// registry not among them is reached anonymously.
    pub fn given(auths: impl IntoIterator<Item = (String, RegistryAuth)>) -> CredentialStore {
        CredentialStore {
            auth_file: None,
            docker_config: None,
            given: Some(
                auths
                    .into_iter()
                    .map(|(server, auth)| (registry_host(&server), auth))
                    .collect(),
            ),
        }
    }

    /// The handed-in credentials for `registry`, when this store holds handed-in ones.
    fn given_for(&self, registry: &str) -> Option<Option<&RegistryAuth>> {
        self.given
            .as_ref()
            .map(|given| given.get(&registry_host(registry)))
    }

    /// A bearer token handed in for `registry`, to send as it is.
    pub fn registry_token(&self, registry: &str) -> Option<String> {
        self.given_for(registry)
            .flatten()
            .and_then(RegistryAuth::registry_token)
            .map(str::to_string)
    }

    /// The credentials for `registry`: the handed-in ones for a [`CredentialStore::given`]
    /// store, else those of the first file that has some.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, CredentialError> {
        if let Some(given) = self.given_for(registry) {
            return match given {
                Some(auth) => auth.credentials(registry),
                None => Ok(None),
            };
        }
        if let Some(path) = &self.auth_file {
            if let Some(c) = DockerConfig::load(path)?.credentials(registry)? {
                return Ok(Some(c));
            }
        }
        if let Some(path) = &self.docker_config {
            return DockerConfig::load(path)?.credentials(registry);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn reads_auths_like_docker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},
                "http://reg.example:5000/v2/":{"auth":"YTpiOmM="},
                "plain.example":{"username":"x","password":"y"}},
                "other":{"kept":true}}"#,
        )
        .unwrap();
        let cfg = DockerConfig::load(&path).unwrap();
        assert_eq!(
            cfg.inline_credentials("docker.io").unwrap(),
            Some(creds("u", "p"))
        );
        assert_eq!(
            cfg.inline_credentials("reg.example:5000").unwrap(),
            Some(creds("a", "b:c"))
        );
        assert_eq!(
            cfg.inline_credentials("plain.example").unwrap(),
            Some(creds("x", "y"))
        );
        assert_eq!(cfg.inline_credentials("missing.example").unwrap(), None);
        assert_eq!(cfg.helper_for("reg.example:5000"), None);
    }

    #[test]
    fn store_and_remove_keep_other_fields_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, r#"{"psFormat":"table"}"#).unwrap();
        let mut cfg = DockerConfig::load(&path).unwrap();
        cfg.store("127.0.0.1:5000", &creds("acc", "pw")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["psFormat"], "table");
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "YWNjOnB3");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let reloaded = DockerConfig::load(&path).unwrap();
        assert_eq!(
            reloaded.credentials("127.0.0.1:5000").unwrap(),
            Some(creds("acc", "pw"))
        );
        let mut cfg = reloaded;
        assert!(cfg.remove("127.0.0.1:5000").unwrap());
        assert!(!cfg.remove("127.0.0.1:5000").unwrap());
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(v["auths"].as_object().unwrap().is_empty());
        assert_eq!(v["psFormat"], "table");
        // No temporary file is left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn invalid_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = DockerConfig::load(&path).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
        std::fs::write(&path, r#"{"auths":{"h":{"auth":"!!!"}}}"#).unwrap();
        assert!(DockerConfig::load(&path).unwrap().credentials("h").is_err());
    }

    #[test]
    fn credential_helper_protocol() {
        // A real helper executable speaking docker's protocol, found through PATH.
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = dir.path().join("log");
        let script = format!(
            "#!/bin/sh\nread -r input || true\necho \"$1 $input\" >> {log}\ncase \"$1\" in\n get) [ \"$input\" = reg.example ] && echo '{{\"ServerURL\":\"reg.example\",\"Username\":\"hu\",\"Secret\":\"hs\"}}' && exit 0; echo 'credentials not found in native keychain'; exit 1;;\n *) exit 0;;\nesac\n",
            log = log.display()
        );
        let helper = bin.join("docker-credential-kilntest");
        std::fs::write(&helper, script).unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credHelpers":{"reg.example":"kilntest"}}"#).unwrap();
        // PATH is process-wide; only this test changes it and it only appends.
        let old = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin.clone()];
        paths.extend(std::env::split_paths(&old));
        // Only this test changes PATH (it prepends), and no other unit test spawns programs.
        std::env::set_var("PATH", std::env::join_paths(paths).unwrap());
        let cfg = DockerConfig::load(&path).unwrap();
        assert_eq!(cfg.helper_for("reg.example").as_deref(), Some("kilntest"));
        assert_eq!(
            cfg.credentials("reg.example").unwrap(),
            Some(creds("hu", "hs"))
        );
        assert_eq!(cfg.helper_for("other.example"), None);
        let mut cfg = cfg;
        cfg.store("reg.example", &creds("hu", "hs")).unwrap();
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains("get reg.example"), "{logged}");
        assert!(logged.contains("store {"), "{logged}");
        // The secret went to the helper, not into the file.
        assert!(!std::fs::read_to_string(&path).unwrap().contains("aHU6aHM"));
    }
}
