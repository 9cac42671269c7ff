//! Compose files as one typed, normalized, validated project model, loaded the way docker
//! compose v2 (compose-go) loads them: file lookup, `.env` and `--env-file`, interpolation,
//! several files merged, strict schema checks with file:line errors, profiles, project and
//! resource names, the implicit default network, dependency order.
//!
//! The faces call [`load`] with [`ProjectOptions`] (their flags and the process
//! environment) and work from the [`Project`] it returns; nothing after it reads YAML.
//!
//! Pipeline: [`yaml`] parses each file into a positioned tree (anchors, merge keys);
//! [`interpolate`] substitutes variables per file; [`merge`] merges the files and makes list
//! entries unique; [`schema`] converts the tree to the [`model`] types, strictly; and
//! [`normalize`] applies what needs the whole project.

mod dotenv;
mod error;
mod interpolate;
mod load;
mod merge;
mod model;
mod normalize;
pub mod runtime;
mod schema;
mod syntax;
mod yaml;

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

pub use error::{ComposeError, Location};
pub use load::{
    load, normalize_project_name, ProjectOptions, DEFAULT_FILE_NAMES, OVERRIDE_FILE_NAMES,
};
pub use model::*;
pub use syntax::format_duration;

/// The `com.docker.compose.*` label names, as docker compose v2 puts them on containers,
/// networks and volumes (`ps`, `down` and `logs` find a project's resources by them).
pub mod labels {
    /// The project's name.
    pub const PROJECT: &str = "com.docker.compose.project";
    /// The service's name.
    pub const SERVICE: &str = "com.docker.compose.service";
    /// The container's replica number, from 1.
    pub const CONTAINER_NUMBER: &str = "com.docker.compose.container-number";
    /// `True` for a `compose run` container, else `False`.
    pub const ONEOFF: &str = "com.docker.compose.oneoff";
    /// [`super::Service::config_hash`].
    pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
    /// The project directory.
    pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
    /// The compose files, comma-separated.
    pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
    /// The env files the project's environment was read from, comma-separated.
    pub const ENVIRONMENT_FILE: &str = "com.docker.compose.project.environment_file";
    /// The compose implementation's version.
    pub const VERSION: &str = "com.docker.compose.version";
    /// A network's key in the file.
    pub const NETWORK: &str = "com.docker.compose.network";
    /// A volume's key in the file.
    pub const VOLUME: &str = "com.docker.compose.volume";
    /// The service's dependencies, `name:condition:restart` comma-separated.
    pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
    /// The image the container was created from.
    pub const IMAGE: &str = "com.docker.compose.image";
}

/// The version kiln puts in `com.docker.compose.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Project {
    /// The project in the YAML shape `docker compose config` prints.
    pub fn to_yaml(&self) -> String {
        match serde_json::to_value(self) {
            Ok(mut value) => {
                // a literal `$` is written `$$`, so the output is itself a compose file that
                // loads to the same project (docker compose config does the same)
                escape_dollars(&mut value);
                let serde_json::Value::Object(mut map) = value else {
                    return yaml::to_yaml(&value);
                };
                // the top-level keys in docker compose's order, then the extensions
                let mut out = String::new();
                for key in [
                    "name", "services", "networks", "volumes", "secrets", "configs",
                ] {
                    if let Some(v) = map.remove(key) {
                        let mut one = serde_json::Map::new();
                        one.insert(key.to_string(), v);
                        out.push_str(&yaml::to_yaml(&serde_json::Value::Object(one)));
                    }
                }
                if !map.is_empty() {
                    out.push_str(&yaml::to_yaml(&serde_json::Value::Object(map)));
                }
                out
            }
            // serializing plain data to a JSON value cannot fail; say so rather than panic
            Err(e) => format!("# error: {e}\n"),
        }
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The labels compose puts on the project's network `key`.
    pub fn network_labels(&self, key: &str) -> BTreeMap<String, String> {
        let mut out = self
            .networks
            .get(key)
            .map(|n| n.labels.clone())
            .unwrap_or_default();
        out.insert(labels::PROJECT.into(), self.name.clone());
        out.insert(labels::NETWORK.into(), key.into());
        out.insert(labels::VERSION.into(), VERSION.into());
        out
    }

    /// The labels compose puts on the project's volume `key`.
    pub fn volume_labels(&self, key: &str) -> BTreeMap<String, String> {
        let mut out = self
            .volumes
            .get(key)
            .map(|v| v.labels.clone())
            .unwrap_or_default();
        out.insert(labels::PROJECT.into(), self.name.clone());
        out.insert(labels::VOLUME.into(), key.into());
        out.insert(labels::VERSION.into(), VERSION.into());
        out
    }
}

/// Doubles every `$` in the string values (not the keys) of `value`.
fn escape_dollars(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        serde_json::Value::Array(items) => items.iter_mut().for_each(escape_dollars),
        serde_json::Value::Object(map) => map.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

impl Service {
    /// The image the service runs: `image`, or for a build-only service `PROJECT-SERVICE`
    /// (docker compose v2's name for the built image).
    pub fn image_name(&self) -> String {
        match &self.image {
            Some(image) => image.clone(),
            None => format!("{}-{}", self.project, self.name),
        }
    }

    /// The name of replica `number` (from 1): `container_name`, else `PROJECT-SERVICE-N`.
    pub fn container_name(&self, number: u32) -> String {
        match &self.container_name {
            Some(name) => name.clone(),
            None => format!("{}-{}-{number}", self.project, self.name),
        }
    }

    /// The name of a `compose run` container: `PROJECT-SERVICE-run-SUFFIX`.
    pub fn run_container_name(&self, suffix: &str) -> String {
        format!("{}-{}-run-{suffix}", self.project, self.name)
    }

    /// A stable hash of the service's normalized configuration (what `up` compares to tell a
    /// changed service from an unchanged one). Like docker compose's `ServiceHash`, it leaves
    /// out what does not change a container: the replica count, profiles, dependencies and
    /// the build section (a rebuilt image shows in the image, not here).
    pub fn config_hash(&self) -> String {
        let mut copy = self.clone();
        copy.replicas = 1;
        copy.profiles.clear();
        copy.depends_on.clear();
        copy.build = None;
        if let Some(deploy) = &mut copy.deploy {
            deploy.replicas = None;
        }
        // serde_json maps are sorted, so the text (and the hash) is stable
        let text = serde_json::to_string(&copy).unwrap_or_default();
        let digest = Sha256::digest(format!("{}\n{text}", copy.name).as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The labels of replica `number`'s container: the user's `labels` and compose's
    /// `com.docker.compose.*` (project, service, container-number, oneoff, config-hash,
    /// project.working_dir, project.config_files, project.environment_file, version,
    /// depends_on).
    pub fn container_labels(
        &self,
        project: &Project,
        number: u32,
        oneoff: bool,
    ) -> BTreeMap<String, String> {
        let mut out = self.labels.clone();
        out.insert(labels::PROJECT.into(), project.name.clone());
        out.insert(labels::SERVICE.into(), self.name.clone());
        out.insert(labels::CONTAINER_NUMBER.into(), number.to_string());
        out.insert(
            labels::ONEOFF.into(),
            if oneoff { "True" } else { "False" }.into(),
        );
        out.insert(labels::CONFIG_HASH.into(), self.config_hash());
        out.insert(
            labels::WORKING_DIR.into(),
            project.working_dir.to_string_lossy().into_owned(),
        );
        out.insert(
            labels::CONFIG_FILES.into(),
            project
                .config_files
                .iter()
                .map(|f| f.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(","),
        );
        if !project.env_files.is_empty() {
            out.insert(
                labels::ENVIRONMENT_FILE.into(),
                project
                    .env_files
                    .iter()
                    .map(|f| f.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        out.insert(labels::VERSION.into(), VERSION.into());
        out.insert(
            labels::DEPENDS_ON.into(),
            self.depends_on
                .iter()
                .map(|(name, d)| format!("{name}:{}:{}", d.condition, d.restart))
                .collect::<Vec<_>>()
                .join(","),
        );
        out
    }
}

#[cfg(test)]
mod tests;
