//! The image configuration a build produces, and how each metadata
//! instruction changes it, with docker's exact rules (ENTRYPOINT clears an
//! inherited CMD, EXPOSE defaults to tcp, ENV replaces in place, ...).
//!
//! The type follows docker's image spec (a superset of OCI's config: it adds
//! Healthcheck, OnBuild and Shell, which BuildKit writes too). Fields kiln
//! does not know are kept verbatim, so a base image's config survives a
//! rebuild byte for byte where the Dockerfile leaves it alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An image config blob (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Creation time, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author (MAINTAINER sets it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture, GOARCH spelling.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// CPU variant, e.g. `v8`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// How containers run.
    #[serde(default)]
    pub config: RunConfig,
    /// The layers, by uncompressed digest.
    #[serde(default)]
    pub rootfs: RootFs,
    /// One entry per instruction, layer or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields kiln does not interpret, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The `config` object: defaults for containers of the image.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `user[:group]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ports as `80/tcp` -> `{}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    /// `KEY=value`, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Entrypoint argv.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Volumes as path -> `{}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    /// Working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Signal that stops a container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Healthcheck (docker extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// ONBUILD triggers (docker extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// Shell for shell-form instructions (docker extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields kiln does not interpret, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The empty JSON object docker uses as a set member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Empty {}

/// A healthcheck as stored in the image config (durations in nanoseconds).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", cmd]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Between checks.
    #[serde(skip_serializing_if = "is_zero")]
    #[serde(default)]
    pub interval: u64,
    /// For one check.
    #[serde(skip_serializing_if = "is_zero")]
    #[serde(default)]
    pub timeout: u64,
    /// Grace period.
    #[serde(skip_serializing_if = "is_zero")]
    #[serde(default)]
    pub start_period: u64,
    /// Between checks in the grace period.
    #[serde(skip_serializing_if = "is_zero")]
    #[serde(default)]
    pub start_interval: u64,
    /// Failures before unhealthy.
    #[serde(skip_serializing_if = "is_zero")]
    #[serde(default)]
    pub retries: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The `rootfs` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// sha256 of each uncompressed layer, base first.
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct History {
    /// When, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction, e.g. `RUN /bin/sh -c make # buildkit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// A comment (kiln writes `kiln`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the instruction made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
    /// Fields kiln does not interpret, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl RunConfig {
    /// The value of `key` in Env, if set.
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env.iter().flatten().find_map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v)
        })
    }
}

/// Whether CMD was set earlier in the stage being built: ENTRYPOINT clears
/// an inherited CMD but not one the same stage set before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageState {
    /// A CMD instruction ran in this stage.
    pub cmd_set: bool,
}

impl ImageConfig {
    /// Applies one metadata change, as docker's builder does.
    pub fn apply(&mut self, change: &ConfigChange, stage: &mut StageState) {
        let c = &mut self.config;
        match change {
            ConfigChange::Env(pairs) => {
                let env = c.env.get_or_insert_with(Vec::new);
                for (k, v) in pairs {
                    let entry = format!("{k}={v}");
                    match env
                        .iter_mut()
                        .find(|kv| kv.split_once('=').map_or(kv.as_str(), |p| p.0) == k)
                    {
                        Some(slot) => *slot = entry,
                        None => env.push(entry),
                    }
                }
            }
            ConfigChange::Labels(pairs) => {
                let labels = c.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in pairs {
                    labels.insert(k.clone(), v.clone());
                }
            }
            ConfigChange::Cmd(args) => {
                c.cmd = Some(args.clone());
                stage.cmd_set = true;
            }
            ConfigChange::Entrypoint(args) => {
                c.entrypoint = Some(args.clone());
                if !stage.cmd_set {
                    c.cmd = None;
                }
            }
            ConfigChange::Workdir(dir) => c.working_dir = Some(dir.clone()),
            ConfigChange::User(user) => c.user = Some(user.clone()),
            ConfigChange::Expose(ports) => {
                let set = c.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in ports {
                    let p = if p.contains('/') {
                        p.to_ascii_lowercase()
                    } else {
                        format!("{p}/tcp")
                    };
                    set.insert(p, Empty {});
                }
            }
            ConfigChange::Volumes(paths) => {
                let set = c.volumes.get_or_insert_with(BTreeMap::new);
                for p in paths {
                    set.insert(p.clone(), Empty {});
                }
            }
            ConfigChange::StopSignal(sig) => c.stop_signal = Some(sig.clone()),
            ConfigChange::Shell(shell) => c.shell = Some(shell.clone()),
            ConfigChange::Healthcheck(None) => {
                c.healthcheck = Some(HealthConfig {
                    test: Some(vec!["NONE".into()]),
                    ..Default::default()
                })
            }
            ConfigChange::Healthcheck(Some(h)) => c.healthcheck = Some(health_config(h)),
            ConfigChange::Onbuild(trigger) => c
                .on_build
                .get_or_insert_with(Vec::new)
                .push(trigger.clone()),
        }
    }
}

fn health_config(h: &Healthcheck) -> HealthConfig {
    HealthConfig {
        test: Some(h.test.clone()),
        interval: h.interval_ns,
        timeout: h.timeout_ns,
        start_period: h.start_period_ns,
        start_interval: h.start_interval_ns,
        retries: u64::from(h.retries),
    }
}

/// One change to the image configuration, made by a metadata instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConfigChange {
    /// Set environment variables (ENV).
    Env(Vec<(String, String)>),
    /// Set labels (LABEL, MAINTAINER).
    Labels(Vec<(String, String)>),
    /// Set the default command (CMD).
    Cmd(Vec<String>),
    /// Set the entrypoint (ENTRYPOINT); clears an inherited CMD as docker does.
    Entrypoint(Vec<String>),
    /// Set the working directory (WORKDIR; the mkdir is a separate File op).
    Workdir(String),
    /// Set the user (USER).
    User(String),
    /// Add exposed ports (EXPOSE), e.g. `80/tcp`.
    Expose(Vec<String>),
    /// Add volumes (VOLUME).
    Volumes(Vec<String>),
    /// Set the stop signal (STOPSIGNAL).
    StopSignal(String),
    /// Set the shell used by shell-form instructions (SHELL).
    Shell(Vec<String>),
    /// Set or disable the healthcheck (HEALTHCHECK); `None` disables it.
    Healthcheck(Option<Healthcheck>),
    /// Record build-time triggers for images built FROM this one (ONBUILD).
    Onbuild(String),
}

/// A container healthcheck, with durations in nanoseconds as in the OCI/docker config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Healthcheck {
    /// `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    /// Time between checks.
    pub interval_ns: u64,
    /// Time one check may take.
    pub timeout_ns: u64,
    /// Grace period after start.
    pub start_period_ns: u64,
    /// Time between checks during the start period.
    pub start_interval_ns: u64,
    /// Consecutive failures before unhealthy.
    pub retries: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ImageConfig {
        serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux",
                "config":{"Env":["PATH=/usr/bin","A=1"],"Cmd":["sh"],"ArgsEscaped":true},
                "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},
                "moby.buildkit.cache.v0":"x"}"#,
        )
        .unwrap()
    }

    #[test]
    fn unknown_fields_of_a_base_image_survive() {
        let json = serde_json::to_value(base()).unwrap();
        assert_eq!(json["moby.buildkit.cache.v0"], "x");
        assert_eq!(json["config"]["ArgsEscaped"], true);
    }

    #[test]
    fn env_replaces_in_place_and_appends_new_keys() {
        let mut c = base();
        let mut s = StageState::default();
        c.apply(
            &ConfigChange::Env(vec![("A".into(), "2".into()), ("B".into(), "x=y".into())]),
            &mut s,
        );
        assert_eq!(
            c.config.env.as_deref().unwrap(),
            ["PATH=/usr/bin", "A=2", "B=x=y"]
        );
        assert_eq!(c.config.env_value("B"), Some("x=y"));
    }

    #[test]
    fn entrypoint_clears_an_inherited_cmd_but_not_one_set_in_the_stage() {
        let mut c = base();
        let mut s = StageState::default();
        c.apply(&ConfigChange::Entrypoint(vec!["/app".into()]), &mut s);
        assert_eq!(c.config.cmd, None);
        let mut c = base();
        let mut s = StageState::default();
        c.apply(&ConfigChange::Cmd(vec!["--help".into()]), &mut s);
        c.apply(&ConfigChange::Entrypoint(vec!["/app".into()]), &mut s);
        assert_eq!(c.config.cmd, Some(vec!["--help".into()]));
    }

    #[test]
    fn expose_defaults_to_tcp_and_healthcheck_none_is_explicit() {
        let mut c = base();
        let mut s = StageState::default();
        c.apply(
            &ConfigChange::Expose(vec!["80".into(), "53/UDP".into()]),
            &mut s,
        );
        c.apply(&ConfigChange::Healthcheck(None), &mut s);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json["config"]["ExposedPorts"],
            serde_json::json!({"53/udp": {}, "80/tcp": {}})
        );
        assert_eq!(
            json["config"]["Healthcheck"],
            serde_json::json!({"Test": ["NONE"]})
        );
    }
}
