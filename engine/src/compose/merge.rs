//! Merging several compose files (`-f a.yaml -f b.yaml`, or a file and its
//! `compose.override.yaml`) with compose-go's rules (`override/merge.go`, `uncity.go`):
//! mappings merge by key; sequences are appended; scalars are replaced; and per key path:
//! `command`, `entrypoint` and `healthcheck.test` are replaced whole; `environment`, `labels`,
//! `env_file`, `dns`, `tmpfs`, `build.args`... become `KEY=VALUE` lists and are appended;
//! `depends_on` and service `networks` become mappings and merge by name; `build` as a string is
//! `{context: ...}`; `extra_hosts` are appended without duplicates. Then, merged or not, the
//! entries of list-valued keys are made unique (ports, volumes by target, environment by name,
//! ...: a later entry replaces an earlier one in place). `!reset` drops a key and `!override`
//! replaces instead of merging. `extends` within a file is resolved here too, with the same rules.

use super::error::ComposeError;
use super::syntax;
use super::yaml::{Key, Node, Tag, Value};

/// A key path pattern: literal segments and `*`.
fn matches(path: &[&str], pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('.').collect();
    parts.len() == path.len() && parts.iter().zip(path).all(|(p, s)| *p == "*" || p == s)
}

/// Paths whose values become `KEY=VALUE` sequences and are appended.
const TO_SEQUENCE: &[&str] = &[
    "networks.*.labels",
    "volumes.*.labels",
    "services.*.annotations",
    "services.*.build.args",
    "services.*.build.additional_contexts",
    "services.*.build.labels",
    "services.*.deploy.labels",
    "services.*.dns",
    "services.*.dns_opt",
    "services.*.dns_search",
    "services.*.env_file",
    "services.*.label_file",
    "services.*.environment",
    "services.*.labels",
    "services.*.volumes.*.volume.labels",
    "services.*.sysctls",
    "services.*.tmpfs",
];

/// Paths whose override value replaces the base's.
const REPLACE: &[&str] = &[
    "services.*.command",
    "services.*.entrypoint",
    "services.*.healthcheck.test",
    "services.*.ulimits.*",
];

/// Merges `over` into `base` (both whole files).
pub(crate) fn merge(base: Node, over: Node) -> Result<Node, ComposeError> {
    merge_at(base, over, &mut Vec::new())
}

fn merge_at(base: Node, over: Node, path: &mut Vec<String>) -> Result<Node, ComposeError> {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    if over.tag == Some(Tag::Override) || REPLACE.iter().any(|pat| matches(&p, pat)) {
        return Ok(over);
    }
    if TO_SEQUENCE.iter().any(|pat| matches(&p, pat)) {
        let location = base.location.clone();
        let mut items = into_sequence(base);
        items.extend(into_sequence(over));
        return Ok(Node::new(Value::Seq(items), location));
    }
    if matches(&p, "services.*.build") {
        return merge_mappings(build_mapping(base), build_mapping(over), path);
    }
    if matches(&p, "services.*.depends_on") {
        return merge_mappings(into_mapping(base, true), into_mapping(over, true), path);
    }
    if matches(&p, "services.*.networks") {
        return merge_mappings(into_mapping(base, false), into_mapping(over, false), path);
    }
    if matches(&p, "services.*.extra_hosts") || matches(&p, "services.*.build.extra_hosts") {
        let location = base.location.clone();
        let mut items = into_sequence(base);
        for item in into_sequence(over) {
            if !items.iter().any(|i| i.as_str() == item.as_str()) {
                items.push(item);
            }
        }
        return Ok(Node::new(Value::Seq(items), location));
    }
    if matches(&p, "services.*.logging") {
        let driver = |n: &Node| n.get("driver").and_then(Node::as_str).map(str::to_string);
        let (b, o) = (driver(&base), driver(&over));
        if b.is_some() && o.is_some() && b != o {
            return Ok(over);
        }
    }
    if matches(&p, "networks.*.ipam.config") {
        return merge_ipam_config(base, over);
    }
    match (base.value, over.value) {
        (base_value, Value::Null) => Ok(Node {
            value: base_value,
            ..base
        }),
        (Value::Map(base_entries), Value::Map(over_entries)) => merge_mappings(
            Node::new(Value::Map(base_entries), base.location),
            Node::new(Value::Map(over_entries), over.location),
            path,
        ),
        (Value::Seq(mut base_items), Value::Seq(over_items)) => {
            base_items.extend(over_items);
            Ok(Node::new(Value::Seq(base_items), base.location))
        }
        (Value::Map(_), _) | (Value::Seq(_), _) => Err(ComposeError::Invalid {
            location: over.location,
            path: path.join("."),
            message: "cannot override a mapping or a list with a value of another type".into(),
        }),
        (_, over_value) => Ok(Node {
            value: over_value,
            location: over.location,
            tag: over.tag,
        }),
    }
}

fn merge_mappings(base: Node, over: Node, path: &mut Vec<String>) -> Result<Node, ComposeError> {
    let location = base.location.clone();
    let Value::Map(mut entries) = base.value else {
        return Ok(over);
    };
    let Value::Map(over_entries) = over.value else {
        return Ok(Node::new(Value::Map(entries), location));
    };
    for (key, value) in over_entries {
        let existing = entries.iter().position(|(k, _)| k.name == key.name);
        if value.tag == Some(Tag::Reset) {
            if let Some(i) = existing {
                entries.remove(i);
            }
            continue;
        }
        match existing {
            None => entries.push((key, value)),
            Some(i) => {
                let (old_key, old) = entries.remove(i);
                path.push(key.name.clone());
                let merged = merge_at(old, value, path);
                path.pop();
                entries.insert(i, (old_key, merged?));
            }
        }
    }
    Ok(Node::new(Value::Map(entries), location))
}

/// `build: ./dir` is `build: {context: ./dir}`.
fn build_mapping(node: Node) -> Node {
    match &node.value {
        Value::Scalar(..) => {
            let location = node.location.clone();
            Node::new(
                Value::Map(vec![(
                    Key {
                        name: "context".into(),
                        location: location.clone(),
                    },
                    node,
                )]),
                location,
            )
        }
        _ => node,
    }
}

/// A list of names as a mapping: `[a, b]` is `{a: null, b: null}`, or for depends_on
/// `{a: {condition: service_started, required: true}}`.
fn into_mapping(node: Node, depends_on: bool) -> Node {
    let location = node.location.clone();
    match node.value {
        Value::Seq(items) => {
            let entries = items
                .into_iter()
                .filter_map(|item| {
                    let name = item.as_str()?.to_string();
                    let location = item.location.clone();
                    let value = if depends_on {
                        Node::new(
                            Value::Map(vec![
                                (
                                    Key {
                                        name: "condition".into(),
                                        location: location.clone(),
                                    },
                                    Node::string("service_started", location.clone()),
                                ),
                                (
                                    Key {
                                        name: "required".into(),
                                        location: location.clone(),
                                    },
                                    Node::new(
                                        Value::Scalar("true".into(), super::yaml::Style::Plain),
                                        location.clone(),
                                    ),
                                ),
                            ]),
                            location.clone(),
                        )
                    } else {
                        Node::new(Value::Null, location.clone())
                    };
                    Some((Key { name, location }, value))
                })
                .collect();
            Node::new(Value::Map(entries), location)
        }
        value => Node::new(value, location),
    }
}

/// A mapping or string as a list: `{A: 1, B: null}` is `["A=1", "B"]` (sorted, as
/// compose-go does), a string is a one-item list.
fn into_sequence(node: Node) -> Vec<Node> {
    match node.value {
        Value::Seq(items) => items,
        Value::Scalar(..) => vec![node],
        Value::Null => Vec::new(),
        Value::Map(entries) => {
            let mut items: Vec<Node> = Vec::new();
            for (key, value) in entries {
                match value.value {
                    Value::Null => items.push(Node::string(key.name, key.location)),
                    Value::Seq(values) => {
                        for v in values {
                            let text = v.as_str().unwrap_or_default().to_string();
                            items.push(Node::string(format!("{}={text}", key.name), v.location));
                        }
                    }
                    Value::Scalar(text, _) => {
                        items.push(Node::string(format!("{}={text}", key.name), value.location))
                    }
                    Value::Map(_) => items.push(Node::string(key.name, key.location)),
                }
            }
            items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            items
        }
    }
}

/// IPAM pools merge by subnet: an override pool with a base pool's subnet merges into it,
/// others are added.
fn merge_ipam_config(base: Node, over: Node) -> Result<Node, ComposeError> {
    let location = base.location.clone();
    let (Value::Seq(mut pools), Value::Seq(overrides)) = (base.value, over.value) else {
        return Err(ComposeError::Invalid {
            location,
            path: "ipam.config".into(),
            message: "must be a list".into(),
        });
    };
    for pool in overrides {
        let subnet = pool
            .get("subnet")
            .and_then(Node::as_str)
            .map(str::to_string);
        match pools
            .iter()
            .position(|p| p.get("subnet").and_then(Node::as_str).map(str::to_string) == subnet)
        {
            Some(i) => {
                let old = pools.remove(i);
                pools.insert(i, merge_mappings(old, pool, &mut Vec::new())?);
            }
            None => pools.push(pool),
        }
    }
    Ok(Node::new(Value::Seq(pools), location))
}

/// Resolves `extends` within one file (compose-go applies it per file, before the files
/// are merged): a service extending another is the other's resolved configuration merged
/// with its own, by the same rules as two files. `extends.file` is not supported yet.
pub(crate) fn apply_extends(doc: &mut Node) -> Result<(), ComposeError> {
    let Value::Map(top) = &mut doc.value else {
        return Ok(());
    };
    let Some((_, services)) = top.iter_mut().find(|(k, _)| k.name == "services") else {
        return Ok(());
    };
    let Value::Map(entries) = &mut services.value else {
        return Ok(());
    };
    if !entries.iter().any(|(_, s)| s.get("extends").is_some()) {
        return Ok(());
    }
    let originals: Vec<(String, Node)> = entries
        .iter()
        .map(|(k, v)| (k.name.clone(), v.clone()))
        .collect();
    let mut resolved: std::collections::BTreeMap<String, Node> = Default::default();
    for (name, _) in &originals {
        resolve_extends(name, &originals, &mut resolved, &mut Vec::new())?;
    }
    for (key, value) in entries.iter_mut() {
        if let Some(node) = resolved.remove(&key.name) {
            *value = node;
        }
    }
    Ok(())
}

fn resolve_extends(
    name: &str,
    services: &[(String, Node)],
    resolved: &mut std::collections::BTreeMap<String, Node>,
    stack: &mut Vec<String>,
) -> Result<Node, ComposeError> {
    if let Some(done) = resolved.get(name) {
        return Ok(done.clone());
    }
    let Some((_, service)) = services.iter().find(|(n, _)| n == name) else {
        // checked by the caller
        return Err(ComposeError::Options(format!("no such service: {name}")));
    };
    let Some(extends) = service.get("extends") else {
        resolved.insert(name.to_string(), service.clone());
        return Ok(service.clone());
    };
    let path = format!("services.{name}.extends");
    let bad = |node: &Node, message: String| ComposeError::Invalid {
        location: node.location.clone(),
        path: path.clone(),
        message,
    };
    let base_name = match &extends.value {
        Value::Scalar(text, _) => text.clone(),
        Value::Map(entries) => {
            let mut base = None;
            for (k, v) in entries {
                match k.name.as_str() {
                    "service" => base = v.as_str().map(str::to_string),
                    "file" => {
                        return Err(bad(v, "extends.file is not supported by kiln yet".into()))
                    }
                    _ => {
                        return Err(ComposeError::UnknownKey {
                            location: k.location.clone(),
                            path: path.clone(),
                            key: k.name.clone(),
                        })
                    }
                }
            }
            base.ok_or_else(|| bad(extends, "extends needs a service".into()))?
        }
        _ => return Err(bad(extends, "must be a service name or a mapping".into())),
    };
    if !services.iter().any(|(n, _)| *n == base_name) {
        return Err(bad(
            extends,
            format!("cannot extend service {name:?}: service {base_name:?} not found"),
        ));
    }
    if stack.contains(&base_name) || base_name == name {
        let mut cycle = stack.clone();
        cycle.push(name.to_string());
        cycle.push(base_name);
        return Err(bad(
            extends,
            format!("circular extends: {}", cycle.join(" -> ")),
        ));
    }
    stack.push(name.to_string());
    let base = resolve_extends(&base_name, services, resolved, stack)?;
    stack.pop();
    let mut own = service.clone();
    if let Value::Map(entries) = &mut own.value {
        entries.retain(|(k, _)| k.name != "extends");
    }
    let mut path = vec!["services".to_string(), name.to_string()];
    let merged = merge_at(base, own, &mut path)?;
    resolved.insert(name.to_string(), merged.clone());
    Ok(merged)
}

/// How entries of a list-valued key are told apart, for [`enforce_unicity`].
fn indexer(path: &[&str]) -> Option<fn(&Node) -> Option<String>> {
    const KEY_VALUE: &[&str] = &[
        "networks.*.labels",
        "networks.*.ipam.options",
        "services.*.annotations",
        "services.*.build.args",
        "services.*.build.additional_contexts",
        "services.*.build.platforms",
        "services.*.build.tags",
        "services.*.build.labels",
        "services.*.cap_add",
        "services.*.cap_drop",
        "services.*.deploy.labels",
        "services.*.dns",
        "services.*.dns_opt",
        "services.*.dns_search",
        "services.*.environment",
        "services.*.labels",
        "services.*.links",
        "services.*.networks.*.aliases",
        "services.*.networks.*.link_local_ips",
        "services.*.profiles",
        "services.*.sysctls",
        "services.*.tmpfs",
    ];
    if KEY_VALUE.iter().any(|pat| matches(path, pat)) {
        return Some(|n| {
            let text = n.as_str()?;
            Some(text.split_once('=').map_or(text, |(k, _)| k).to_string())
        });
    }
    if matches(path, "services.*.volumes") {
        return Some(|n| match n.as_str() {
            Some(text) => syntax::parse_volume_short(text).ok().map(|v| v.target),
            None => n.get("target").and_then(Node::as_str).map(str::to_string),
        });
    }
    if matches(path, "services.*.ports") {
        return Some(|n| match n.as_str() {
            Some(text) => Some(text.to_string()),
            None => Some(format!(
                "{}:{}:{}/{}",
                n.get("host_ip").and_then(Node::as_str).unwrap_or("0.0.0.0"),
                n.get("published").and_then(Node::as_str).unwrap_or(""),
                n.get("target").and_then(Node::as_str).unwrap_or(""),
                n.get("protocol").and_then(Node::as_str).unwrap_or("tcp"),
            )),
        });
    }
    if matches(path, "services.*.expose") {
        return Some(|n| n.as_str().map(str::to_string));
    }
    if matches(path, "services.*.env_file") {
        return Some(|n| match n.as_str() {
            Some(text) => Some(text.to_string()),
            None => n.get("path").and_then(Node::as_str).map(str::to_string),
        });
    }
    if matches(path, "services.*.secrets") {
        return Some(|n| mount_key(n, "/run/secrets"));
    }
    if matches(path, "services.*.configs") {
        return Some(|n| mount_key(n, ""));
    }
    None
}

fn mount_key(node: &Node, default_dir: &str) -> Option<String> {
    match node.as_str() {
        Some(text) => Some(format!("{default_dir}/{text}")),
        None => match node.get("target").and_then(Node::as_str) {
            Some(target) => Some(target.to_string()),
            None => Some(format!(
                "{default_dir}/{}",
                node.get("source")
                    .and_then(Node::as_str)
                    .unwrap_or_default()
            )),
        },
    }
}

/// Makes the entries of list-valued keys unique: a later entry with the same key replaces
/// the earlier one where it stood.
pub(crate) fn enforce_unicity(node: &mut Node) {
    enforce_at(node, &mut Vec::new());
}

fn enforce_at(node: &mut Node, path: &mut Vec<String>) {
    match &mut node.value {
        Value::Map(entries) => {
            for (key, value) in entries.iter_mut() {
                path.push(key.name.clone());
                enforce_at(value, path);
                path.pop();
            }
        }
        Value::Seq(items) => {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            let Some(index) = indexer(&p) else {
                return;
            };
            let mut unique: Vec<(Option<String>, Node)> = Vec::new();
            for item in std::mem::take(items) {
                let key = index(&item);
                match unique.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
                    Some(entry) => entry.1 = item,
                    None => unique.push((key, item)),
                }
            }
            *items = unique.into_iter().map(|(_, n)| n).collect();
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn doc(name: &str, source: &str) -> Node {
        let file: Arc<str> = Arc::from(name);
        super::super::yaml::parse(&file, source)
            .expect("parses")
            .remove(0)
    }

    fn merged(a: &str, b: &str) -> serde_json::Value {
        let mut node = merge(doc("a.yaml", a), doc("b.yaml", b)).expect("merges");
        enforce_unicity(&mut node);
        node.to_json()
    }

    #[test]
    fn services_merge_field_by_field() {
        let out = merged(
            "services:\n  web:\n    image: a\n    command: [x, y]\n    ports: ['80:80']\n    environment:\n      A: '1'\n      B: '2'\n    depends_on: [db]\n  db:\n    image: db\n",
            "services:\n  web:\n    image: b\n    command: [z]\n    ports: ['81:81', '80:80']\n    environment: ['B=3', 'C=4']\n    depends_on:\n      cache:\n        condition: service_healthy\n",
        );
        let web = &out["services"]["web"];
        assert_eq!(web["image"], "b");
        assert_eq!(web["command"], serde_json::json!(["z"]));
        assert_eq!(web["ports"], serde_json::json!(["80:80", "81:81"]));
        assert_eq!(web["environment"], serde_json::json!(["A=1", "B=3", "C=4"]));
        assert_eq!(
            web["depends_on"]["db"],
            serde_json::json!({"condition": "service_started", "required": true})
        );
        assert_eq!(web["depends_on"]["cache"]["condition"], "service_healthy");
        assert_eq!(out["services"]["db"]["image"], "db");
    }

    #[test]
    fn build_string_and_mapping() {
        let out = merged(
            "services:\n  web:\n    build: ./web\n",
            "services:\n  web:\n    build:\n      target: dev\n",
        );
        assert_eq!(
            out["services"]["web"]["build"],
            serde_json::json!({"context": "./web", "target": "dev"})
        );
    }

    #[test]
    fn volumes_unique_by_target_and_reset_tag() {
        let out = merged(
            "services:\n  web:\n    volumes: ['a:/data', './x:/x']\n    dns: [1.1.1.1]\n    labels: {a: b}\n",
            "services:\n  web:\n    volumes: ['b:/data']\n    dns: !reset []\n    extra_hosts: ['h:1.2.3.4']\n",
        );
        let web = &out["services"]["web"];
        assert_eq!(web["volumes"], serde_json::json!(["b:/data", "./x:/x"]));
        assert!(web.get("dns").is_none());
        assert_eq!(web["labels"], serde_json::json!({"a": "b"}));
    }

    #[test]
    fn extends_in_one_file() {
        let mut node = doc(
            "a.yaml",
            "services:\n  base:\n    image: b\n    environment: {A: '1'}\n    command: [x]\n  mid:\n    extends: base\n    environment: {B: '2'}\n  top:\n    extends:\n      service: mid\n    command: [y]\n",
        );
        apply_extends(&mut node).expect("extends");
        let out = node.to_json();
        let top = &out["services"]["top"];
        assert_eq!(top["image"], "b");
        assert_eq!(top["environment"], serde_json::json!(["A=1", "B=2"]));
        assert_eq!(top["command"], serde_json::json!(["y"]));
        assert!(top.get("extends").is_none());
        let mut cyclic = doc(
            "c.yaml",
            "services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
        );
        let err = apply_extends(&mut cyclic).expect_err("cycle");
        assert!(err.to_string().contains("circular extends"), "{err}");
        let mut missing = doc("m.yaml", "services:\n  a:\n    extends: nope\n");
        let err = apply_extends(&mut missing).expect_err("missing");
        assert!(err.to_string().contains("m.yaml:3:"), "{err}");
    }

    #[test]
    fn networks_list_and_map() {
        let out = merged(
            "services:\n  web:\n    networks: [front]\n",
            "services:\n  web:\n    networks:\n      back:\n        aliases: [w]\n",
        );
        assert_eq!(
            out["services"]["web"]["networks"],
            serde_json::json!({"front": null, "back": {"aliases": ["w"]}})
        );
    }
}
