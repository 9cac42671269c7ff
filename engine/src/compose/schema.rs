//! From the merged, interpolated YAML tree to the typed model, checking it against the
//! compose specification as strictly as compose-go's JSON schema does: an unknown key (other
//! than `x-...`) is an error at its line, as is a value of the wrong type or syntax. Relative
//! paths are made absolute here, env files read, short syntaxes expanded.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::dotenv;
use super::error::{ComposeError, Location};
use super::model::*;
use super::syntax;
use super::yaml::{Key, Node, Value};

/// Service keys of the compose specification that kiln keeps as written without modelling
/// them (the runtime may use them later; `config` prints them).
const OTHER_SERVICE_KEYS: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "cgroup",
    "cgroup_parent",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "develop",
    "device_cgroup_rules",
    "devices",
    "gpus",
    "group_add",
    "ipc",
    "isolation",
    "label_file",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "post_start",
    "pre_start",
    "pre_stop",
    "provider",
    "pull_refresh_after",
    "runtime",
    "security_opt",
    "shm_size",
    "storage_opt",
    "sysctls",
    "ulimits",
    "use_api_socket",
    "userns_mode",
    "uts",
];

/// What conversion needs besides the tree.
pub(crate) struct Context<'a> {
    /// The project directory.
    pub working_dir: &'a Path,
    /// The project environment (bare `environment` keys, `env_file` interpolation).
    pub environment: &'a BTreeMap<String, String>,
    /// The project name.
    pub project: &'a str,
    /// Warnings for the user.
    pub warnings: &'a mut Vec<String>,
}

/// A service with where its references were written, for the cross-service checks.
pub(crate) struct ServiceSource {
    /// The service.
    pub service: Service,
    /// Where the service's key is.
    pub location: Location,
    /// Where each `depends_on`, `links`, `network_mode` and `volumes_from` reference is.
    pub dependency_locations: BTreeMap<String, Location>,
    /// Where each network reference is.
    pub network_locations: BTreeMap<String, Location>,
    /// Where each named volume, secret and config reference is, by `kind:name`.
    pub resource_locations: Vec<(&'static str, String, Location)>,
}

/// The top level, converted.
pub(crate) struct Converted {
    /// Every service, enabled by the profiles or not.
    pub services: Vec<ServiceSource>,
    /// Top-level networks, names resolved.
    pub networks: BTreeMap<String, Network>,
    /// Top-level volumes, names resolved.
    pub volumes: BTreeMap<String, Volume>,
    /// Top-level secrets.
    pub secrets: BTreeMap<String, FileObject>,
    /// Top-level configs.
    pub configs: BTreeMap<String, FileObject>,
    /// Top-level `x-` keys.
    pub extensions: BTreeMap<String, serde_json::Value>,
}

fn invalid(node: &Node, path: &str, message: impl Into<String>) -> ComposeError {
    ComposeError::Invalid {
        location: node.location.clone(),
        path: path.to_string(),
        message: message.into(),
    }
}

fn unknown(key: &Key, path: &str) -> ComposeError {
    ComposeError::UnknownKey {
        location: key.location.clone(),
        path: if path.is_empty() {
            "(root)".into()
        } else {
            path.to_string()
        },
        key: key.name.clone(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(node: &Node) -> &'static str {
    match &node.value {
        Value::Null => "null",
        Value::Scalar(..) => "a scalar",
        Value::Seq(_) => "a list",
        Value::Map(_) => "a mapping",
    }
}

/// The entries of a mapping (null is an empty one).
fn entries<'n>(node: &'n Node, path: &str) -> Result<&'n [(Key, Node)], ComposeError> {
    match &node.value {
        Value::Map(entries) => Ok(entries),
        Value::Null => Ok(&[]),
        _ => Err(invalid(
            node,
            path,
            format!("must be a mapping, not {}", type_name(node)),
        )),
    }
}

/// A scalar's text.
fn string(node: &Node, path: &str) -> Result<String, ComposeError> {
    match &node.value {
        Value::Scalar(text, _) => Ok(text.clone()),
        _ => Err(invalid(
            node,
            path,
            format!("must be a string, not {}", type_name(node)),
        )),
    }
}

fn opt_string(node: &Node, path: &str) -> Result<Option<String>, ComposeError> {
    match node.value {
        Value::Null => Ok(None),
        _ => string(node, path).map(Some),
    }
}

/// A boolean: `true`/`false` in any case, quoted or not (a quoted one is what interpolation
/// gives, and compose-go casts it).
fn boolean(node: &Node, path: &str) -> Result<bool, ComposeError> {
    match node.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        _ => Err(invalid(node, path, "must be a boolean (true or false)")),
    }
}

fn integer<T: std::str::FromStr>(node: &Node, path: &str) -> Result<T, ComposeError> {
    node.as_str()
        .and_then(|t| t.parse::<T>().ok())
        .ok_or_else(|| invalid(node, path, "must be a non-negative integer in range"))
}

fn duration(node: &Node, path: &str) -> Result<std::time::Duration, ComposeError> {
    let text = string(node, path)?;
    syntax::parse_duration(&text).map_err(|e| invalid(node, path, e))
}

/// A list of strings.
fn string_list(node: &Node, path: &str) -> Result<Vec<String>, ComposeError> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| string(item, &format!("{path}[{i}]")))
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(invalid(
            node,
            path,
            format!("must be a list, not {}", type_name(node)),
        )),
    }
}

/// A string or a list of strings.
fn string_or_list(node: &Node, path: &str) -> Result<Vec<String>, ComposeError> {
    match &node.value {
        Value::Scalar(text, _) => Ok(vec![text.clone()]),
        _ => string_list(node, path),
    }
}

/// `{K: V}` or `[K=V, K]`: `None` for a key without a value.
fn list_or_dict(node: &Node, path: &str) -> Result<BTreeMap<String, Option<String>>, ComposeError> {
    let mut out = BTreeMap::new();
    match &node.value {
        Value::Map(entries) => {
            for (key, value) in entries {
                let v = match &value.value {
                    Value::Null => None,
                    Value::Scalar(text, _) => Some(text.clone()),
                    _ => {
                        return Err(invalid(
                            value,
                            &join(path, &key.name),
                            "must be a string, number, boolean or null",
                        ))
                    }
                };
                out.insert(key.name.clone(), v);
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let text = string(item, &format!("{path}[{i}]"))?;
                match text.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                    None => out.insert(text, None),
                };
            }
        }
        Value::Null => {}
        Value::Scalar(..) => {
            return Err(invalid(node, path, "must be a mapping or a list"));
        }
    }
    Ok(out)
}

/// `list_or_dict` where a value-less key is empty (labels, options).
fn string_map(node: &Node, path: &str) -> Result<BTreeMap<String, String>, ComposeError> {
    Ok(list_or_dict(node, path)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// `path` lexically cleaned (`a/./b/../c` is `a/c`).
pub(crate) fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

impl Context<'_> {
    /// A host path as written, made absolute: `~` is `$HOME`, relative is under the project
    /// directory.
    fn host_path(&self, text: &str) -> PathBuf {
        let expanded = if text == "~" || text.starts_with("~/") {
            match self.environment.get("HOME") {
                Some(home) => PathBuf::from(format!("{home}{}", &text[1..])),
                None => PathBuf::from(text),
            }
        } else {
            PathBuf::from(text)
        };
        clean(&self.working_dir.join(expanded))
    }

    fn lookup(&self, name: &str) -> Option<String> {
        self.environment.get(name).cloned()
    }
}

/// Whether a build context is remote (kept as written).
fn is_remote_context(text: &str) -> bool {
    text.contains("://") || text.starts_with("git@") || text.starts_with("github.com/")
}

/// Converts the top level.
pub(crate) fn project(root: &Node, cx: &mut Context<'_>) -> Result<Converted, ComposeError> {
    let mut converted = Converted {
        services: Vec::new(),
        networks: BTreeMap::new(),
        volumes: BTreeMap::new(),
        secrets: BTreeMap::new(),
        configs: BTreeMap::new(),
        extensions: BTreeMap::new(),
    };
    if !matches!(root.value, Value::Map(_) | Value::Null) {
        return Err(invalid(root, "(root)", "a compose file must be a mapping"));
    }
    for (key, value) in entries(root, "")? {
        match key.name.as_str() {
            "name" | "version" => {}
            "services" => {
                for (name, node) in entries(value, "services")? {
                    converted.services.push(service(name, node, cx)?);
                }
            }
            "networks" => {
                for (name, node) in entries(value, "networks")? {
                    converted
                        .networks
                        .insert(name.name.clone(), network(&name.name, node, cx)?);
                }
            }
            "volumes" => {
                for (name, node) in entries(value, "volumes")? {
                    converted
                        .volumes
                        .insert(name.name.clone(), volume(&name.name, node, cx)?);
                }
            }
            "secrets" | "configs" => {
                let kind = key.name.as_str();
                for (name, node) in entries(value, kind)? {
                    let object = file_object(&name.name, node, &join(kind, &name.name), cx)?;
                    if kind == "secrets" {
                        converted.secrets.insert(name.name.clone(), object);
                    } else {
                        converted.configs.insert(name.name.clone(), object);
                    }
                }
            }
            "include" | "models" => {
                return Err(invalid(
                    value,
                    &key.name,
                    format!("{} is not supported by kiln yet", key.name),
                ))
            }
            k if k.starts_with("x-") => {
                converted.extensions.insert(k.to_string(), value.to_json());
            }
            _ => return Err(unknown(key, "")),
        }
    }
    Ok(converted)
}

fn service(key: &Key, node: &Node, cx: &mut Context<'_>) -> Result<ServiceSource, ComposeError> {
    let name = key.name.clone();
    let path = join("services", &name);
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(
            node,
            &path,
            format!("service name {name:?} must consist of letters, digits, '.', '_' and '-'"),
        ));
    }
    if !matches!(node.value, Value::Map(_) | Value::Null) {
        return Err(invalid(node, &path, "a service must be a mapping"));
    }
    let mut svc = Service {
        name: name.clone(),
        project: cx.project.to_string(),
        replicas: 1,
        ..Service::default()
    };
    let mut source = ServiceSource {
        service: Service::default(),
        location: key.location.clone(),
        dependency_locations: BTreeMap::new(),
        network_locations: BTreeMap::new(),
        resource_locations: Vec::new(),
    };
    let mut environment_node = None;
    let mut scale = None;
    for (k, v) in entries(node, &path)? {
        let p = join(&path, &k.name);
        match k.name.as_str() {
            "build" => svc.build = Some(build(v, &p, cx)?),
            "image" => svc.image = opt_string(v, &p)?,
            "command" => svc.command = command(v, &p)?,
            "entrypoint" => svc.entrypoint = command(v, &p)?,
            "environment" => environment_node = Some(v),
            "env_file" => svc.env_file = env_files(v, &p, cx)?,
            "ports" => {
                for (i, item) in seq(v, &p)?.iter().enumerate() {
                    svc.ports.extend(port(item, &format!("{p}[{i}]"))?);
                }
            }
            "expose" => {
                for (i, item) in seq(v, &p)?.iter().enumerate() {
                    let ip = format!("{p}[{i}]");
                    let text = string(item, &ip)?;
                    let number = text.split_once('/').map_or(text.as_str(), |(n, _)| n);
                    syntax::port_range(number).map_err(|e| invalid(item, &ip, e))?;
                    svc.expose.push(text);
                }
            }
            "volumes" => {
                for (i, item) in seq(v, &p)?.iter().enumerate() {
                    let mount = service_volume(item, &format!("{p}[{i}]"), cx)?;
                    if mount.kind == MountType::Volume {
                        if let Some(src) = &mount.source {
                            source.resource_locations.push((
                                "volume",
                                src.clone(),
                                item.location.clone(),
                            ));
                        }
                    }
                    svc.volumes.push(mount);
                }
            }
            "volumes_from" => {
                svc.volumes_from = string_list(v, &p)?;
                for (i, from) in svc.volumes_from.iter().enumerate() {
                    if !from.starts_with("container:") {
                        let target = from.split(':').next().unwrap_or_default().to_string();
                        source
                            .dependency_locations
                            .entry(target)
                            .or_insert_with(|| item_location(v, i));
                    }
                }
            }
            "depends_on" => {
                svc.depends_on = depends_on(v, &p, &mut source.dependency_locations)?;
            }
            "links" => {
                svc.links = string_list(v, &p)?;
                for (i, link) in svc.links.iter().enumerate() {
                    let target = link.split(':').next().unwrap_or_default().to_string();
                    source
                        .dependency_locations
                        .entry(target)
                        .or_insert_with(|| item_location(v, i));
                }
            }
            "external_links" => svc.external_links = string_list(v, &p)?,
            "healthcheck" => svc.healthcheck = Some(healthcheck(v, &p)?),
            "restart" => {
                let text = string(v, &p)?;
                syntax::check_restart(&text).map_err(|e| invalid(v, &p, e))?;
                svc.restart = Some(text);
            }
            "networks" => {
                svc.networks = service_networks(v, &p, &mut source.network_locations)?;
            }
            "network_mode" => {
                let mode = string(v, &p)?;
                if let Some(target) = mode.strip_prefix("service:") {
                    source
                        .dependency_locations
                        .entry(target.to_string())
                        .or_insert_with(|| v.location.clone());
                }
                svc.network_mode = Some(mode);
            }
            "container_name" => svc.container_name = opt_string(v, &p)?,
            "hostname" => svc.hostname = opt_string(v, &p)?,
            "domainname" => svc.domainname = opt_string(v, &p)?,
            "working_dir" => svc.working_dir = opt_string(v, &p)?,
            "user" => svc.user = opt_string(v, &p)?,
            "labels" => svc.labels = string_map(v, &p)?,
            "init" => svc.init = Some(boolean(v, &p)?),
            "read_only" => svc.read_only = boolean(v, &p)?,
            "privileged" => svc.privileged = boolean(v, &p)?,
            "tty" => svc.tty = boolean(v, &p)?,
            "stdin_open" => svc.stdin_open = boolean(v, &p)?,
            "cap_add" => svc.cap_add = string_list(v, &p)?,
            "cap_drop" => svc.cap_drop = string_list(v, &p)?,
            "extra_hosts" => svc.extra_hosts = extra_hosts(v, &p)?,
            "dns" => svc.dns = string_or_list(v, &p)?,
            "dns_search" => svc.dns_search = string_or_list(v, &p)?,
            "dns_opt" => svc.dns_opt = string_list(v, &p)?,
            "tmpfs" => svc.tmpfs = string_or_list(v, &p)?,
            "stop_grace_period" => svc.stop_grace_period = Some(duration(v, &p)?),
            "stop_signal" => svc.stop_signal = opt_string(v, &p)?,
            "deploy" => svc.deploy = Some(deploy(v, &p)?),
            "scale" => scale = Some((integer::<u32>(v, &p)?, v)),
            "secrets" | "configs" => {
                let kind = if k.name == "secrets" {
                    "secret"
                } else {
                    "config"
                };
                let refs = file_references(v, &p)?;
                for (i, r) in refs.iter().enumerate() {
                    source
                        .resource_locations
                        .push((kind, r.source.clone(), item_location(v, i)));
                }
                if k.name == "secrets" {
                    svc.secrets = refs;
                } else {
                    svc.configs = refs;
                }
            }
            "pull_policy" => svc.pull_policy = opt_string(v, &p)?,
            "platform" => svc.platform = opt_string(v, &p)?,
            "profiles" => svc.profiles = string_list(v, &p)?,
            "extends" => {
                // resolved within its file before the merge; one left here extends a
                // service of another file, which compose-go rejects as well
                return Err(invalid(
                    v,
                    &p,
                    "extends must name a service of the same file",
                ));
            }
            other if other.starts_with("x-") => {
                svc.extensions.insert(other.to_string(), v.to_json());
            }
            other if OTHER_SERVICE_KEYS.contains(&other) => {
                svc.other.insert(other.to_string(), v.to_json());
            }
            _ => return Err(unknown(k, &path)),
        }
    }
    // the environment: env files in order, then `environment` over them
    for file in svc.env_file.clone() {
        for (k, v) in read_env_file(&file, node, cx)? {
            svc.environment.insert(k, v);
        }
    }
    if let Some(env) = environment_node {
        for (k, v) in list_or_dict(env, &join(&path, "environment"))? {
            match v.or_else(|| cx.lookup(&k)) {
                Some(value) => {
                    svc.environment.insert(k, value);
                }
                None => {
                    svc.environment.remove(&k);
                }
            }
        }
    }
    let replicas = svc.deploy.as_ref().and_then(|d| d.replicas);
    match (scale, replicas) {
        (Some((s, n)), Some(r)) if s != r => {
            return Err(invalid(
                n,
                &join(&path, "scale"),
                format!("scale ({s}) and deploy.replicas ({r}) differ"),
            ))
        }
        (Some((s, _)), _) => svc.replicas = s,
        (None, Some(r)) => svc.replicas = r,
        (None, None) => {}
    }
    if svc.image.is_none() && svc.build.is_none() {
        return Err(invalid(
            node,
            &path,
            "the service has neither an image nor a build context specified",
        ));
    }
    source.service = svc;
    Ok(source)
}

/// Where the `i`th item of a list node is (the list's own place when it is not a list).
fn item_location(node: &Node, i: usize) -> Location {
    match &node.value {
        Value::Seq(items) => items
            .get(i)
            .map_or(node.location.clone(), |n| n.location.clone()),
        _ => node.location.clone(),
    }
}

fn seq<'n>(node: &'n Node, path: &str) -> Result<&'n [Node], ComposeError> {
    match &node.value {
        Value::Seq(items) => Ok(items),
        Value::Null => Ok(&[]),
        _ => Err(invalid(
            node,
            path,
            format!("must be a list, not {}", type_name(node)),
        )),
    }
}

/// `command` / `entrypoint`: null keeps the image's, a string is split into words, a list is
/// used as is.
fn command(node: &Node, path: &str) -> Result<Option<Vec<String>>, ComposeError> {
    match &node.value {
        Value::Null => Ok(None),
        Value::Scalar(text, _) => syntax::shell_split(text)
            .map(Some)
            .map_err(|e| invalid(node, path, e)),
        Value::Seq(_) => string_list(node, path).map(Some),
        Value::Map(_) => Err(invalid(node, path, "must be a string or a list")),
    }
}

fn build(node: &Node, path: &str, cx: &mut Context<'_>) -> Result<Build, ComposeError> {
    let context_of = |text: &str| {
        if is_remote_context(text) {
            text.to_string()
        } else {
            cx.host_path(text).to_string_lossy().into_owned()
        }
    };
    if let Value::Scalar(text, _) = &node.value {
        return Ok(Build {
            context: context_of(text),
            ..Build::default()
        });
    }
    let mut b = Build {
        context: context_of("."),
        ..Build::default()
    };
    for (k, v) in entries(node, path)? {
        let p = join(path, &k.name);
        match k.name.as_str() {
            "context" => b.context = context_of(&string(v, &p)?),
            "dockerfile" => b.dockerfile = opt_string(v, &p)?,
            "dockerfile_inline" => b.dockerfile_inline = opt_string(v, &p)?,
            "args" => {
                b.args = list_or_dict(v, &p)?
                    .into_iter()
                    .map(|(k, v)| {
                        let value = v.or_else(|| cx.lookup(&k));
                        (k, value)
                    })
                    .collect()
            }
            "target" => b.target = opt_string(v, &p)?,
            "labels" => b.labels = string_map(v, &p)?,
            "cache_from" => b.cache_from = string_list(v, &p)?,
            "cache_to" => b.cache_to = string_list(v, &p)?,
            "network" => b.network = opt_string(v, &p)?,
            "extra_hosts" => b.extra_hosts = extra_hosts(v, &p)?,
            "secrets" => b.secrets = file_references(v, &p)?,
            "tags" => b.tags = string_list(v, &p)?,
            "platforms" => b.platforms = string_list(v, &p)?,
            "no_cache" => b.no_cache = boolean(v, &p)?,
            "pull" => b.pull = boolean(v, &p)?,
            "additional_contexts" => {
                b.additional_contexts = string_map(v, &p)?
                    .into_iter()
                    .map(|(k, v)| {
                        let resolved = if v.contains(':') { v } else { context_of(&v) };
                        (k, resolved)
                    })
                    .collect()
            }
            "ssh" | "shm_size" | "isolation" | "privileged" | "entitlements" | "provenance"
            | "sbom" | "no_cache_filter" | "ulimits" => {
                b.other.insert(k.name.clone(), v.to_json());
            }
            other if other.starts_with("x-") => {}
            _ => return Err(unknown(k, path)),
        }
    }
    if b.dockerfile.is_some() && b.dockerfile_inline.is_some() {
        return Err(invalid(
            node,
            path,
            "dockerfile and dockerfile_inline cannot be set together",
        ));
    }
    Ok(b)
}

fn env_files(node: &Node, path: &str, cx: &Context<'_>) -> Result<Vec<EnvFile>, ComposeError> {
    let items: Vec<&Node> = match &node.value {
        Value::Scalar(..) => vec![node],
        _ => seq(node, path)?.iter().collect(),
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let p = format!("{path}[{i}]");
        let file = match &item.value {
            Value::Scalar(text, _) => EnvFile {
                path: cx.host_path(text),
                required: true,
                format: None,
            },
            Value::Map(_) => {
                let mut file = EnvFile {
                    path: PathBuf::new(),
                    required: true,
                    format: None,
                };
                let mut has_path = false;
                for (k, v) in entries(item, &p)? {
                    let kp = join(&p, &k.name);
                    match k.name.as_str() {
                        "path" => {
                            file.path = cx.host_path(&string(v, &kp)?);
                            has_path = true;
                        }
                        "required" => file.required = boolean(v, &kp)?,
                        "format" => file.format = opt_string(v, &kp)?,
                        _ => return Err(unknown(k, &p)),
                    }
                }
                if !has_path {
                    return Err(invalid(item, &p, "an env_file entry needs a path"));
                }
                file
            }
            _ => return Err(invalid(item, &p, "must be a path or a mapping with a path")),
        };
        out.push(file);
    }
    Ok(out)
}

/// The variables of one `env_file` (nothing for a missing optional one).
fn read_env_file(
    file: &EnvFile,
    service: &Node,
    cx: &mut Context<'_>,
) -> Result<Vec<(String, String)>, ComposeError> {
    let location =
        env_file_location(service, &file.path, cx).unwrap_or_else(|| service.location.clone());
    let text = match std::fs::read_to_string(&file.path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !file.required => {
            return Ok(Vec::new())
        }
        Err(source) => {
            return Err(ComposeError::EnvFile {
                location,
                path: file.path.clone(),
                source,
            })
        }
    };
    if file.format.as_deref() == Some("raw") {
        return Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.to_string(), String::new()),
            })
            .collect());
    }
    let environment = cx.environment;
    dotenv::parse(&text, &file.path, &|k| environment.get(k).cloned())
}

/// The node of the `env_file` entry naming `path`, for error locations.
fn env_file_location(service: &Node, path: &Path, cx: &Context<'_>) -> Option<Location> {
    let node = service.get("env_file")?;
    let names = |n: &Node| -> Option<PathBuf> {
        match &n.value {
            Value::Scalar(text, _) => Some(cx.host_path(text)),
            Value::Map(_) => n
                .get("path")
                .and_then(Node::as_str)
                .map(|t| cx.host_path(t)),
            _ => None,
        }
    };
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .find(|i| names(i).as_deref() == Some(path))
            .map(|i| i.location.clone()),
        _ => Some(node.location.clone()),
    }
}

fn port(node: &Node, path: &str) -> Result<Vec<Port>, ComposeError> {
    match &node.value {
        Value::Scalar(text, _) => {
            syntax::parse_ports_short(text).map_err(|e| invalid(node, path, e))
        }
        Value::Map(_) => {
            let mut port = Port {
                mode: "ingress".into(),
                host_ip: None,
                target: 0,
                published: None,
                protocol: "tcp".into(),
                name: None,
                app_protocol: None,
            };
            for (k, v) in entries(node, path)? {
                let p = join(path, &k.name);
                match k.name.as_str() {
                    "target" => {
                        port.target =
                            syntax::port_number(&string(v, &p)?).map_err(|e| invalid(v, &p, e))?
                    }
                    "published" => {
                        if let Some(text) = opt_string(v, &p)? {
                            syntax::port_range(&text).map_err(|e| invalid(v, &p, e))?;
                            port.published = Some(text);
                        }
                    }
                    "host_ip" => {
                        let ip = string(v, &p)?;
                        if ip.parse::<std::net::IpAddr>().is_err() {
                            return Err(invalid(v, &p, format!("{ip:?} is not an IP address")));
                        }
                        port.host_ip = Some(ip);
                    }
                    "protocol" => {
                        let proto = string(v, &p)?.to_ascii_lowercase();
                        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                            return Err(invalid(v, &p, format!("unknown protocol {proto:?}")));
                        }
                        port.protocol = proto;
                    }
                    "mode" => {
                        let mode = string(v, &p)?;
                        if !matches!(mode.as_str(), "host" | "ingress") {
                            return Err(invalid(v, &p, "must be host or ingress"));
                        }
                        port.mode = mode;
                    }
                    "name" => port.name = opt_string(v, &p)?,
                    "app_protocol" => port.app_protocol = opt_string(v, &p)?,
                    other if other.starts_with("x-") => {}
                    _ => return Err(unknown(k, path)),
                }
            }
            if port.target == 0 {
                return Err(invalid(node, path, "a port needs a target"));
            }
            Ok(vec![port])
        }
        _ => Err(invalid(node, path, "must be a port string or a mapping")),
    }
}

fn service_volume(
    node: &Node,
    path: &str,
    cx: &Context<'_>,
) -> Result<ServiceVolume, ComposeError> {
    let mut volume = match &node.value {
        Value::Scalar(text, _) => {
            syntax::parse_volume_short(text).map_err(|e| invalid(node, path, e))?
        }
        Value::Map(_) => long_volume(node, path)?,
        _ => return Err(invalid(node, path, "must be a volume string or a mapping")),
    };
    if volume.kind == MountType::Bind {
        if let Some(source) = &volume.source {
            volume.source = Some(cx.host_path(source).to_string_lossy().into_owned());
        } else {
            return Err(invalid(node, path, "a bind mount needs a source"));
        }
    }
    Ok(volume)
}

fn long_volume(node: &Node, path: &str) -> Result<ServiceVolume, ComposeError> {
    let mut volume = ServiceVolume::default();
    let mut kind = None;
    for (k, v) in entries(node, path)? {
        let p = join(path, &k.name);
        match k.name.as_str() {
            "type" => {
                kind = Some(match string(v, &p)?.as_str() {
                    "volume" => MountType::Volume,
                    "bind" => MountType::Bind,
                    "tmpfs" => MountType::Tmpfs,
                    "npipe" => MountType::Npipe,
                    "cluster" => MountType::Cluster,
                    "image" => MountType::Image,
                    other => return Err(invalid(v, &p, format!("unknown mount type {other:?}"))),
                })
            }
            "source" => volume.source = opt_string(v, &p)?.filter(|s| !s.is_empty()),
            "target" => volume.target = string(v, &p)?,
            "read_only" => volume.read_only = boolean(v, &p)?,
            "consistency" => volume.consistency = opt_string(v, &p)?,
            "bind" => {
                let mut bind = BindOptions::default();
                for (bk, bv) in entries(v, &p)? {
                    let bp = join(&p, &bk.name);
                    match bk.name.as_str() {
                        "propagation" => bind.propagation = opt_string(bv, &bp)?,
                        "create_host_path" => bind.create_host_path = boolean(bv, &bp)?,
                        "selinux" => bind.selinux = opt_string(bv, &bp)?,
                        "recursive" => {}
                        other if other.starts_with("x-") => {}
                        _ => return Err(unknown(bk, &p)),
                    }
                }
                volume.bind = Some(bind);
            }
            "volume" => {
                let mut options = VolumeOptions::default();
                for (vk, vv) in entries(v, &p)? {
                    let vp = join(&p, &vk.name);
                    match vk.name.as_str() {
                        "nocopy" => options.nocopy = boolean(vv, &vp)?,
                        "subpath" => options.subpath = opt_string(vv, &vp)?,
                        "labels" => {}
                        other if other.starts_with("x-") => {}
                        _ => return Err(unknown(vk, &p)),
                    }
                }
                volume.volume = Some(options);
            }
            "tmpfs" => {
                let mut options = TmpfsOptions::default();
                for (tk, tv) in entries(v, &p)? {
                    let tp = join(&p, &tk.name);
                    match tk.name.as_str() {
                        "size" => {
                            let text = string(tv, &tp)?;
                            options.size =
                                Some(syntax::parse_bytes(&text).map_err(|e| invalid(tv, &tp, e))?)
                        }
                        "mode" => {
                            let text = string(tv, &tp)?;
                            let mode = u32::from_str_radix(text.trim_start_matches("0o"), 8)
                                .or_else(|_| text.parse::<u32>())
                                .map_err(|_| invalid(tv, &tp, "must be a file mode"))?;
                            options.mode = Some(mode);
                        }
                        other if other.starts_with("x-") => {}
                        _ => return Err(unknown(tk, &p)),
                    }
                }
                volume.tmpfs = Some(options);
            }
            "image" => {}
            other if other.starts_with("x-") => {}
            _ => return Err(unknown(k, path)),
        }
    }
    volume.kind = kind.ok_or_else(|| invalid(node, path, "a long-syntax volume needs a type"))?;
    if volume.target.is_empty() || !volume.target.starts_with('/') {
        return Err(invalid(
            node,
            path,
            "a volume needs a target that is an absolute path",
        ));
    }
    Ok(volume)
}

fn depends_on(
    node: &Node,
    path: &str,
    locations: &mut BTreeMap<String, Location>,
) -> Result<BTreeMap<String, Dependency>, ComposeError> {
    let mut out = BTreeMap::new();
    match &node.value {
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let name = string(item, &format!("{path}[{i}]"))?;
                locations.insert(name.clone(), item.location.clone());
                out.insert(
                    name,
                    Dependency {
                        condition: "service_started".into(),
                        required: true,
                        restart: false,
                    },
                );
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries {
                let p = join(path, &key.name);
                let mut dep = Dependency {
                    condition: "service_started".into(),
                    required: true,
                    restart: false,
                };
                for (k, v) in self::entries(value, &p)? {
                    let kp = join(&p, &k.name);
                    match k.name.as_str() {
                        "condition" => {
                            let condition = string(v, &kp)?;
                            if !matches!(
                                condition.as_str(),
                                "service_started"
                                    | "service_healthy"
                                    | "service_completed_successfully"
                            ) {
                                return Err(invalid(
                                    v,
                                    &kp,
                                    format!("unknown condition {condition:?} (use service_started, service_healthy or service_completed_successfully)"),
                                ));
                            }
                            dep.condition = condition;
                        }
                        "required" => dep.required = boolean(v, &kp)?,
                        "restart" => dep.restart = boolean(v, &kp)?,
                        other if other.starts_with("x-") => {}
                        _ => return Err(unknown(k, &p)),
                    }
                }
                locations.insert(key.name.clone(), key.location.clone());
                out.insert(key.name.clone(), dep);
            }
        }
        Value::Null => {}
        Value::Scalar(..) => return Err(invalid(node, path, "must be a list or a mapping")),
    }
    Ok(out)
}

fn healthcheck(node: &Node, path: &str) -> Result<Healthcheck, ComposeError> {
    let mut hc = Healthcheck::default();
    for (k, v) in entries(node, path)? {
        let p = join(path, &k.name);
        match k.name.as_str() {
            "test" => {
                hc.test = match &v.value {
                    Value::Null => None,
                    Value::Scalar(text, _) => Some(vec!["CMD-SHELL".into(), text.clone()]),
                    _ => {
                        let test = string_list(v, &p)?;
                        match test.first().map(String::as_str) {
                            Some("NONE") | Some("CMD") | Some("CMD-SHELL") => {}
                            _ => {
                                return Err(invalid(
                                    v,
                                    &p,
                                    "a test list must start with CMD, CMD-SHELL or NONE",
                                ))
                            }
                        }
                        if test[0] == "CMD-SHELL" && test.len() != 2 {
                            return Err(invalid(v, &p, "CMD-SHELL takes one command string"));
                        }
                        Some(test)
                    }
                }
            }
            "interval" => hc.interval = Some(duration(v, &p)?),
            "timeout" => hc.timeout = Some(duration(v, &p)?),
            "start_period" => hc.start_period = Some(duration(v, &p)?),
            "start_interval" => hc.start_interval = Some(duration(v, &p)?),
            "retries" => hc.retries = Some(integer(v, &p)?),
            "disable" => hc.disable = boolean(v, &p)?,
            other if other.starts_with("x-") => {}
            _ => return Err(unknown(k, path)),
        }
    }
    if hc.disable {
        hc.test = Some(vec!["NONE".into()]);
    }
    Ok(hc)
}

fn service_networks(
    node: &Node,
    path: &str,
    locations: &mut BTreeMap<String, Location>,
) -> Result<BTreeMap<String, ServiceNetwork>, ComposeError> {
    let mut out = BTreeMap::new();
    match &node.value {
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let name = string(item, &format!("{path}[{i}]"))?;
                locations.insert(name.clone(), item.location.clone());
                out.insert(name, ServiceNetwork::default());
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries {
                let p = join(path, &key.name);
                let mut net = ServiceNetwork::default();
                for (k, v) in self::entries(value, &p)? {
                    let kp = join(&p, &k.name);
                    match k.name.as_str() {
                        "aliases" => net.aliases = string_list(v, &kp)?,
                        "ipv4_address" => {
                            let ip = string(v, &kp)?;
                            if ip.parse::<std::net::Ipv4Addr>().is_err() {
                                return Err(invalid(
                                    v,
                                    &kp,
                                    format!("{ip:?} is not an IPv4 address"),
                                ));
                            }
                            net.ipv4_address = Some(ip);
                        }
                        "ipv6_address" => {
                            let ip = string(v, &kp)?;
                            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                                return Err(invalid(
                                    v,
                                    &kp,
                                    format!("{ip:?} is not an IPv6 address"),
                                ));
                            }
                            net.ipv6_address = Some(ip);
                        }
                        "mac_address" => net.mac_address = opt_string(v, &kp)?,
                        "priority" => {
                            net.priority = Some(
                                v.as_str()
                                    .and_then(|t| t.parse().ok())
                                    .ok_or_else(|| invalid(v, &kp, "must be an integer"))?,
                            )
                        }
                        "link_local_ips" => net.link_local_ips = string_list(v, &kp)?,
                        "interface_name" => net.interface_name = opt_string(v, &kp)?,
                        "driver_opts" | "gw_priority" => {}
                        other if other.starts_with("x-") => {}
                        _ => return Err(unknown(k, &p)),
                    }
                }
                locations.insert(key.name.clone(), key.location.clone());
                out.insert(key.name.clone(), net);
            }
        }
        Value::Null => {}
        Value::Scalar(..) => return Err(invalid(node, path, "must be a list or a mapping")),
    }
    Ok(out)
}

fn extra_hosts(node: &Node, path: &str) -> Result<Vec<String>, ComposeError> {
    match &node.value {
        Value::Map(entries) => {
            let mut out = Vec::new();
            for (k, v) in entries {
                let p = join(path, &k.name);
                for ip in string_or_list(v, &p)? {
                    out.push(format!("{}:{ip}", k.name));
                }
            }
            Ok(out)
        }
        _ => {
            let mut out = Vec::new();
            for (i, item) in seq(node, path)?.iter().enumerate() {
                let p = format!("{path}[{i}]");
                let text = string(item, &p)?;
                out.push(syntax::extra_host(&text).map_err(|e| invalid(item, &p, e))?);
            }
            Ok(out)
        }
    }
}

fn deploy(node: &Node, path: &str) -> Result<Deploy, ComposeError> {
    let mut d = Deploy::default();
    for (k, v) in entries(node, path)? {
        let p = join(path, &k.name);
        match k.name.as_str() {
            "replicas" => d.replicas = Some(integer(v, &p)?),
            "labels" => d.labels = string_map(v, &p)?,
            "mode" | "resources" | "restart_policy" | "placement" | "update_config"
            | "rollback_config" | "endpoint_mode" => {
                d.other.insert(k.name.clone(), v.to_json());
            }
            other if other.starts_with("x-") => {}
            _ => return Err(unknown(k, path)),
        }
    }
    Ok(d)
}

fn file_references(node: &Node, path: &str) -> Result<Vec<FileReference>, ComposeError> {
    let mut out = Vec::new();
    for (i, item) in seq(node, path)?.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let mut r = FileReference {
            source: String::new(),
            target: None,
            uid: None,
            gid: None,
            mode: None,
        };
        match &item.value {
            Value::Scalar(text, _) => r.source = text.clone(),
            Value::Map(_) => {
                for (k, v) in entries(item, &p)? {
                    let kp = join(&p, &k.name);
                    match k.name.as_str() {
                        "source" => r.source = string(v, &kp)?,
                        "target" => r.target = opt_string(v, &kp)?,
                        "uid" => r.uid = opt_string(v, &kp)?,
                        "gid" => r.gid = opt_string(v, &kp)?,
                        "mode" => {
                            let text = string(v, &kp)?;
                            let mode = if text.starts_with('0') {
                                u32::from_str_radix(text.trim_start_matches("0o"), 8).ok()
                            } else {
                                text.parse().ok()
                            };
                            r.mode =
                                Some(mode.ok_or_else(|| invalid(v, &kp, "must be a file mode"))?);
                        }
                        other if other.starts_with("x-") => {}
                        _ => return Err(unknown(k, &p)),
                    }
                }
            }
            _ => return Err(invalid(item, &p, "must be a name or a mapping")),
        }
        if r.source.is_empty() {
            return Err(invalid(item, &p, "needs a source"));
        }
        out.push(r);
    }
    Ok(out)
}

/// `external: true`, or the legacy `external: {name: x}`; returns the legacy name.
fn external(node: &Node, path: &str) -> Result<(bool, Option<String>), ComposeError> {
    match &node.value {
        Value::Map(_) => {
            let mut name = None;
            for (k, v) in entries(node, path)? {
                match k.name.as_str() {
                    "name" => name = opt_string(v, &join(path, "name"))?,
                    _ => return Err(unknown(k, path)),
                }
            }
            Ok((true, name))
        }
        _ => Ok((boolean(node, path)?, None)),
    }
}

fn network(key: &str, node: &Node, cx: &mut Context<'_>) -> Result<Network, ComposeError> {
    let path = join("networks", key);
    let mut net = Network::default();
    let mut name = None;
    let mut set = Vec::new();
    for (k, v) in entries(node, &path)? {
        let p = join(&path, &k.name);
        if !k.name.starts_with("x-") && !matches!(k.name.as_str(), "name" | "external" | "labels") {
            set.push(k.name.clone());
        }
        match k.name.as_str() {
            "name" => name = opt_string(v, &p)?,
            "driver" => net.driver = opt_string(v, &p)?,
            "driver_opts" => net.driver_opts = string_map(v, &p)?,
            "internal" => net.internal = boolean(v, &p)?,
            "attachable" => net.attachable = boolean(v, &p)?,
            "enable_ipv6" => net.enable_ipv6 = Some(boolean(v, &p)?),
            "enable_ipv4" => cx.warnings.push(format!(
                "{}: {p}: enable_ipv4 is not supported by kiln and is ignored",
                k.location
            )),
            "labels" => net.labels = string_map(v, &p)?,
            "external" => {
                let (ext, legacy) = external(v, &p)?;
                net.external = ext;
                if legacy.is_some() {
                    name = legacy;
                }
            }
            "ipam" => net.ipam = Some(ipam(v, &p)?),
            other if other.starts_with("x-") => {
                net.extensions.insert(other.to_string(), v.to_json());
            }
            _ => return Err(unknown(k, &path)),
        }
    }
    if net.external {
        if let Some(first) = set.first() {
            return Err(invalid(
                node,
                &path,
                format!("conflicting parameters \"external\" and \"{first}\" specified for network {key:?}"),
            ));
        }
    }
    net.name = match (name, net.external) {
        (Some(name), _) => name,
        (None, true) => key.to_string(),
        (None, false) => format!("{}_{key}", cx.project),
    };
    Ok(net)
}

fn ipam(node: &Node, path: &str) -> Result<Ipam, ComposeError> {
    let mut ipam = Ipam::default();
    for (k, v) in entries(node, path)? {
        let p = join(path, &k.name);
        match k.name.as_str() {
            "driver" => ipam.driver = opt_string(v, &p)?,
            "options" => ipam.options = string_map(v, &p)?,
            "config" => {
                for (i, item) in seq(v, &p)?.iter().enumerate() {
                    let ip = format!("{p}[{i}]");
                    let mut pool = IpamPool::default();
                    for (pk, pv) in entries(item, &ip)? {
                        let pp = join(&ip, &pk.name);
                        match pk.name.as_str() {
                            "subnet" => {
                                let subnet = string(pv, &pp)?;
                                check_cidr(&subnet).map_err(|e| invalid(pv, &pp, e))?;
                                pool.subnet = Some(subnet);
                            }
                            "gateway" => {
                                let gw = string(pv, &pp)?;
                                if gw.parse::<std::net::IpAddr>().is_err() {
                                    return Err(invalid(
                                        pv,
                                        &pp,
                                        format!("{gw:?} is not an IP address"),
                                    ));
                                }
                                pool.gateway = Some(gw);
                            }
                            "ip_range" => {
                                let range = string(pv, &pp)?;
                                check_cidr(&range).map_err(|e| invalid(pv, &pp, e))?;
                                pool.ip_range = Some(range);
                            }
                            "aux_addresses" => pool.aux_addresses = string_map(pv, &pp)?,
                            other if other.starts_with("x-") => {}
                            _ => return Err(unknown(pk, &ip)),
                        }
                    }
                    ipam.config.push(pool);
                }
            }
            other if other.starts_with("x-") => {}
            _ => return Err(unknown(k, path)),
        }
    }
    Ok(ipam)
}

/// `ADDRESS/PREFIX`.
fn check_cidr(text: &str) -> Result<(), String> {
    let bad = || format!("{text:?} is not a subnet in CIDR form (10.0.0.0/24)");
    let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
    let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok(())
}

fn volume(key: &str, node: &Node, cx: &Context<'_>) -> Result<Volume, ComposeError> {
    let path = join("volumes", key);
    let mut vol = Volume::default();
    let mut name = None;
    let mut set = Vec::new();
    for (k, v) in entries(node, &path)? {
        let p = join(&path, &k.name);
        if matches!(k.name.as_str(), "driver" | "driver_opts") {
            set.push(k.name.clone());
        }
        match k.name.as_str() {
            "name" => name = opt_string(v, &p)?,
            "driver" => vol.driver = opt_string(v, &p)?,
            "driver_opts" => vol.driver_opts = string_map(v, &p)?,
            "labels" => vol.labels = string_map(v, &p)?,
            "external" => {
                let (ext, legacy) = external(v, &p)?;
                vol.external = ext;
                if legacy.is_some() {
                    name = legacy;
                }
            }
            other if other.starts_with("x-") => {
                vol.extensions.insert(other.to_string(), v.to_json());
            }
            _ => return Err(unknown(k, &path)),
        }
    }
    if vol.external {
        if let Some(first) = set.first() {
            return Err(invalid(
                node,
                &path,
                format!("conflicting parameters \"external\" and \"{first}\" specified for volume {key:?}"),
            ));
        }
    }
    vol.name = match (name, vol.external) {
        (Some(name), _) => name,
        (None, true) => key.to_string(),
        (None, false) => format!("{}_{key}", cx.project),
    };
    Ok(vol)
}

fn file_object(
    key: &str,
    node: &Node,
    path: &str,
    cx: &Context<'_>,
) -> Result<FileObject, ComposeError> {
    let mut object = FileObject::default();
    let mut name = None;
    for (k, v) in entries(node, path)? {
        let p = join(path, &k.name);
        match k.name.as_str() {
            "name" => name = opt_string(v, &p)?,
            "file" => object.file = Some(cx.host_path(&string(v, &p)?)),
            "environment" => object.environment = opt_string(v, &p)?,
            "content" if path.starts_with("configs") => object.content = opt_string(v, &p)?,
            "external" => {
                let (ext, legacy) = external(v, &p)?;
                object.external = ext;
                if legacy.is_some() {
                    name = legacy;
                }
            }
            "labels" => object.labels = string_map(v, &p)?,
            "driver" | "driver_opts" | "template_driver" => {
                object.other.insert(k.name.clone(), v.to_json());
            }
            other if other.starts_with("x-") => {}
            _ => return Err(unknown(k, path)),
        }
    }
    let sources = [
        object.file.is_some(),
        object.environment.is_some(),
        object.content.is_some(),
        object.external,
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(invalid(
            node,
            path,
            "needs exactly one of file, environment, content or external",
        ));
    }
    object.name = match (name, object.external) {
        (Some(name), _) => name,
        (None, true) => key.to_string(),
        (None, false) => format!("{}_{key}", cx.project),
    };
    Ok(object)
}
