//! The checks and settings that need the whole project: profiles, dependencies (implicit
//! ones from links, `network_mode: service:` and `volumes_from`; unknown or disabled
//! targets), the implicit `default` network, references to top-level networks, volumes,
//! secrets and configs, replicas and `--scale`, and the dependency order.

use std::collections::{BTreeMap, BTreeSet};

use super::error::ComposeError;
use super::model::{Dependency, Network, Service, ServiceNetwork};
use super::schema::{Converted, ServiceSource};

/// The services enabled by `profiles` (and those of the `targeted` services), checked and in dependency order, and the names of
/// the disabled ones.
pub(crate) fn services(
    converted: &mut Converted,
    project: &str,
    profiles: &[String],
    targeted: &[String],
    scale: &BTreeMap<String, u32>,
    warnings: &mut Vec<String>,
) -> Result<(Vec<Service>, Vec<String>), ComposeError> {
    let all = std::mem::take(&mut converted.services);
    // a service named on the command line enables its profiles (compose-go's
    // WithServicesEnabled)
    let mut profiles = profiles.to_vec();
    for name in targeted {
        match all.iter().find(|s| &s.service.name == name) {
            Some(s) => profiles.extend(s.service.profiles.iter().cloned()),
            None => {
                return Err(ComposeError::Options(format!("no such service: {name}")));
            }
        }
    }
    let enabled_by = |svc: &Service| {
        svc.profiles.is_empty()
            || profiles
                .iter()
                .any(|p| p == "*" || svc.profiles.contains(p))
    };
    let disabled: BTreeMap<String, Vec<String>> = all
        .iter()
        .filter(|s| !enabled_by(&s.service))
        .map(|s| (s.service.name.clone(), s.service.profiles.clone()))
        .collect();
    let mut enabled: Vec<ServiceSource> = all
        .into_iter()
        .filter(|s| !disabled.contains_key(&s.service.name))
        .collect();
    let names: BTreeSet<String> = enabled.iter().map(|s| s.service.name.clone()).collect();
    for name in scale.keys() {
        if !names.contains(name) {
            return Err(ComposeError::Options(format!(
                "--scale: no such service: {name}"
            )));
        }
    }
    let mut uses_default = false;
    for source in &mut enabled {
        let svc = &mut source.service;
        // implicit dependencies: links, network_mode service:X, volumes_from X
        for target in source.dependency_locations.keys() {
            svc.depends_on
                .entry(target.clone())
                .or_insert_with(|| Dependency {
                    condition: "service_started".into(),
                    required: true,
                    restart: false,
                });
        }
        let mut missing = Vec::new();
        for (target, dep) in &svc.depends_on {
            if names.contains(target) {
                continue;
            }
            let location = source
                .dependency_locations
                .get(target)
                .cloned()
                .unwrap_or_else(|| source.location.clone());
            if !dep.required {
                warnings.push(format!(
                    "service {:?} depends on {target:?}, which is not enabled; ignored because required is false",
                    svc.name
                ));
                missing.push(target.clone());
                continue;
            }
            return Err(match disabled.get(target) {
                Some(profiles) => ComposeError::DisabledService {
                    location,
                    service: svc.name.clone(),
                    dependency: target.clone(),
                    profiles: profiles.clone(),
                },
                None => ComposeError::UnknownService {
                    location,
                    service: svc.name.clone(),
                    dependency: target.clone(),
                },
            });
        }
        for target in missing {
            svc.depends_on.remove(&target);
        }
        // networks: the implicit default, and each one declared
        if svc.networks.is_empty() && svc.network_mode.is_none() {
            svc.networks
                .insert("default".into(), ServiceNetwork::default());
        }
        if svc.network_mode.is_some() && !svc.networks.is_empty() {
            return Err(ComposeError::Invalid {
                location: source.location.clone(),
                path: format!("services.{}", svc.name),
                message: "network_mode and networks cannot be combined".into(),
            });
        }
        for network in svc.networks.keys() {
            if network == "default" {
                uses_default = true;
                continue;
            }
            if !converted.networks.contains_key(network) {
                return Err(ComposeError::UndefinedResource {
                    location: source
                        .network_locations
                        .get(network)
                        .cloned()
                        .unwrap_or_else(|| source.location.clone()),
                    service: svc.name.clone(),
                    kind: "network",
                    name: network.clone(),
                });
            }
        }
        for (kind, name, location) in &source.resource_locations {
            let defined = match *kind {
                "volume" => converted.volumes.contains_key(name),
                "secret" => converted.secrets.contains_key(name),
                _ => converted.configs.contains_key(name),
            };
            if !defined {
                return Err(ComposeError::UndefinedResource {
                    location: location.clone(),
                    service: svc.name.clone(),
                    kind,
                    name: name.clone(),
                });
            }
        }
        if let Some(n) = scale.get(&svc.name) {
            svc.replicas = *n;
        }
        if svc.replicas > 1 && svc.container_name.is_some() {
            return Err(ComposeError::Invalid {
                location: source.location.clone(),
                path: format!("services.{}", svc.name),
                message: format!(
                    "container_name {:?} is set, so the service cannot have {} replicas (a container name must be unique)",
                    svc.container_name.as_deref().unwrap_or_default(),
                    svc.replicas
                ),
            });
        }
    }
    if uses_default && !converted.networks.contains_key("default") {
        converted.networks.insert(
            "default".into(),
            Network {
                name: format!("{project}_default"),
                ..Network::default()
            },
        );
    }
    let services: Vec<Service> = enabled.into_iter().map(|s| s.service).collect();
    Ok((order(services)?, disabled.into_keys().collect()))
}

/// The services with each one after its dependencies (ties by name); a cycle is an error
/// naming it.
fn order(services: Vec<Service>) -> Result<Vec<Service>, ComposeError> {
    let mut by_name: BTreeMap<String, Service> =
        services.into_iter().map(|s| (s.name.clone(), s)).collect();
    let graph: BTreeMap<String, Vec<String>> = by_name
        .iter()
        .map(|(name, s)| (name.clone(), s.depends_on.keys().cloned().collect()))
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    let mut sorted: Vec<String> = Vec::new();
    // iterative depth-first search: (node, index of the next dependency to visit)
    for start in graph.keys() {
        if marks.contains_key(start.as_str()) {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        marks.insert(start.as_str(), Mark::Visiting);
        while let Some((node, next)) = stack.last().copied() {
            let deps = graph.get(node).map(Vec::as_slice).unwrap_or_default();
            if let Some(dep) = deps.get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                match marks.get(dep.as_str()) {
                    Some(Mark::Done) => {}
                    Some(Mark::Visiting) => {
                        let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            stack[from..].iter().map(|(n, _)| n.to_string()).collect();
                        cycle.push(dep.clone());
                        return Err(ComposeError::Cycle { services: cycle });
                    }
                    None => {
                        if graph.contains_key(dep) {
                            marks.insert(dep.as_str(), Mark::Visiting);
                            stack.push((dep.as_str(), 0));
                        }
                    }
                }
            } else {
                marks.insert(node, Mark::Done);
                sorted.push(node.to_string());
                stack.pop();
            }
        }
    }
    Ok(sorted
        .into_iter()
        .filter_map(|name| by_name.remove(&name))
        .collect())
}
