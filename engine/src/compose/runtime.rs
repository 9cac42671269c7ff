//! Running a compose project (`kiln compose up/down/ps/start/stop/...`): the project's
//! networks, volumes and containers made, kept, recreated and removed the way docker
//! compose v2 does, found again by their `com.docker.compose.*` labels (so `down` works from
//! a fresh shell, or after `up` was killed). Progress goes out as [`ComposeEvent`]s, which
//! a face prints as compose's ` ✔ Container accproj-web-1  Started` lines.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{labels, MountType, Project, Service};
use crate::containers::Healthcheck as ContainerHealthcheck;
use crate::containers::RestartPolicy;
use crate::containers::{ContainerFilter, ContainerSummary, CreateOptions};
use crate::networks::{ConnectOptions, NetworkCreateOptions, NetworkFilter};
use crate::volumes::{VolumeCreate, VolumeFilter};
use crate::{BuildContext, BuildOptions, DockerfileSource, Engine, Error, Result};

/// What a [`ComposeEvent`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// A network.
    Network,
    /// A volume.
    Volume,
    /// A container.
    Container,
    /// An image.
    Image,
}

impl ResourceKind {
    /// compose's word for it (`Network`, `Volume`, `Container`, `Image`).
    pub fn word(self) -> &'static str {
        match self {
            ResourceKind::Network => "Network",
            ResourceKind::Volume => "Volume",
            ResourceKind::Container => "Container",
            ResourceKind::Image => "Image",
        }
    }
}

/// One step of a compose operation, as docker compose v2 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeEvent {
    /// What it is about.
    pub kind: ResourceKind,
    /// The resource's name (`accproj-web-1`, `accproj_default`).
    pub name: String,
    /// compose's status word: `Creating`, `Created`, `Starting`, `Started`, `Running`,
    /// `Recreate`, `Waiting`, `Healthy`, `Exited`, `Stopping`, `Stopped`, `Removing`,
    /// `Removed`, `Killed`, `Restarting`, `Restarted`.
    pub status: String,
    /// Whether the step is done (compose's ✔) rather than under way.
    pub done: bool,
}

/// Where compose events go.
pub type ComposeEvents<'a> = &'a mut dyn FnMut(&ComposeEvent);

fn emit(events: ComposeEvents<'_>, kind: ResourceKind, name: &str, status: &str, done: bool) {
    events(&ComposeEvent {
        kind,
        name: name.to_string(),
        status: status.to_string(),
        done,
    });
}

/// `up`'s options.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Only these services (and what they depend on); empty: all.
    pub services: Vec<String>,
    /// Recreate containers even when their configuration and image are unchanged.
    pub force_recreate: bool,
    /// Remove containers of services no longer in the project.
    pub remove_orphans: bool,
    /// `--scale SVC=N`.
    pub scale: BTreeMap<String, u32>,
    /// `--wait`: return once every service is running (and healthy when it has a check).
    pub wait: bool,
    /// How long to wait for a dependency's condition (default 10 minutes).
    pub dependency_timeout: Option<Duration>,
}

/// What `--rmi` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveImages {
    /// Images built for services without an `image` (`PROJECT-SERVICE`).
    Local,
    /// Every service's image.
    All,
}

/// `down`'s options.
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// `-v`: remove the project's named volumes (not external ones).
    pub volumes: bool,
    /// `--rmi`.
    pub remove_images: Option<RemoveImages>,
    /// `-t`: seconds to wait for a container to stop before killing it.
    pub timeout: Option<Duration>,
}

/// A container of a project, with its compose labels read.
#[derive(Debug, Clone)]
pub struct ProjectContainer {
    /// The service it belongs to.
    pub service: String,
    /// Its replica number (0 when unlabelled).
    pub number: u32,
    /// Whether it is a `compose run` container.
    pub oneoff: bool,
    /// The container as `ps` lists it.
    pub summary: ContainerSummary,
}

impl ProjectContainer {
    /// Its name, without docker's `/`.
    pub fn name(&self) -> String {
        self.summary
            .names
            .first()
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| self.summary.id.clone())
    }

    /// Whether it runs.
    pub fn running(&self) -> bool {
        self.summary.state == "running" || self.summary.state == "restarting"
    }
}

/// What `up` made, so a failure removes it again.
#[derive(Default)]
struct Made {
    networks: Vec<String>,
    volumes: Vec<String>,
    containers: Vec<String>,
}

/// The replica count of a service under `--scale`.
fn replicas(service: &Service, scale: &BTreeMap<String, u32>) -> u32 {
    scale
        .get(&service.name)
        .copied()
        .unwrap_or(service.replicas)
}

/// The services `wanted` names and everything they depend on, in dependency order.
pub fn with_dependencies<'a>(project: &'a Project, wanted: &[String]) -> Result<Vec<&'a Service>> {
    for name in wanted {
        if project.service(name).is_none() {
            return Err(Error::NotFound(format!("no such service: {name}")));
        }
    }
    if wanted.is_empty() {
        return Ok(project.services.iter().collect());
    }
    let mut needed: Vec<String> = wanted.to_vec();
    let mut i = 0;
    while i < needed.len() {
        if let Some(svc) = project.service(&needed[i]) {
            for dep in svc.depends_on.keys() {
                if !needed.contains(dep) {
                    needed.push(dep.clone());
                }
            }
        }
        i += 1;
    }
    Ok(project
        .services
        .iter()
        .filter(|s| needed.contains(&s.name))
        .collect())
}

/// compose's healthcheck as the containers' (durations in nanoseconds, `disable` as NONE).
fn healthcheck(service: &Service) -> Option<ContainerHealthcheck> {
    let hc = service.healthcheck.as_ref()?;
    let nanos = |d: Option<Duration>| d.map_or(0, |d| d.as_nanos() as u64);
    let test = if hc.disable {
        vec!["NONE".to_string()]
    } else {
        hc.test.clone().unwrap_or_default()
    };
    Some(ContainerHealthcheck {
        test,
        interval: nanos(hc.interval),
        timeout: nanos(hc.timeout),
        start_period: nanos(hc.start_period),
        start_interval: nanos(hc.start_interval),
        retries: hc.retries.map_or(0, |r| r as i64),
    })
}

/// Replica `number`'s create options: every setting of the service, its compose labels, its
/// networks with the service name as an alias (as compose gives it), the project's volumes.
pub fn create_options(
    project: &Project,
    service: &Service,
    number: u32,
    name: String,
    oneoff: bool,
) -> Result<CreateOptions> {
    let mut options = CreateOptions {
        name: Some(name),
        image: service.image_name(),
        entrypoint: service.entrypoint.clone(),
        cmd: service.command.clone().unwrap_or_default(),
        env: service
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        workdir: service.working_dir.clone(),
        user: service.user.clone(),
        tty: service.tty,
        open_stdin: service.stdin_open,
        labels: service.container_labels(project, number, oneoff),
        hostname: service.hostname.clone(),
        add_hosts: service.extra_hosts.clone(),
        dns: service.dns.clone(),
        cap_add: service.cap_add.clone(),
        cap_drop: service.cap_drop.clone(),
        read_only: service.read_only,
        init: service.init.unwrap_or(false),
        stop_signal: service.stop_signal.clone(),
        stop_timeout: service.stop_grace_period.map(|d| d.as_secs()),
        healthcheck: healthcheck(service),
        ..CreateOptions::default()
    };
    if let Some(restart) = &service.restart {
        options.restart_policy = RestartPolicy::parse(restart)?;
    }
    options
        .labels
        .insert(labels::IMAGE.into(), service.image_name());
    for port in &service.ports {
        let mut spec = String::new();
        if let Some(ip) = &port.host_ip {
            spec.push_str(ip);
            spec.push(':');
        }
        match &port.published {
            Some(p) => {
                spec.push_str(p);
                spec.push(':');
            }
            None if port.host_ip.is_some() => spec.push(':'),
            None => {}
        }
        spec.push_str(&format!("{}/{}", port.target, port.protocol));
        options.publish.push(spec);
    }
    for volume in &service.volumes {
        let ro = if volume.read_only { ":ro" } else { "" };
        match volume.kind {
            MountType::Volume => match &volume.source {
                Some(key) => {
                    let engine_name = project
                        .volumes
                        .get(key)
                        .map_or_else(|| key.clone(), |v| v.name.clone());
                    options
                        .volumes
                        .push(format!("{engine_name}:{}{ro}", volume.target));
                }
                None => options.volumes.push(volume.target.clone()),
            },
            MountType::Bind => {
                let source = volume.source.clone().unwrap_or_default();
                let create = volume.bind.as_ref().is_none_or(|b| b.create_host_path);
                if create && !std::path::Path::new(&source).exists() {
                    std::fs::create_dir_all(&source)
                        .map_err(|e| Error::io("creating", std::path::PathBuf::from(&source), e))?;
                }
                options
                    .volumes
                    .push(format!("{source}:{}{ro}", volume.target));
            }
            MountType::Tmpfs => {
                let mut spec = format!("type=tmpfs,target={}", volume.target);
                if let Some(size) = volume.tmpfs.as_ref().and_then(|t| t.size) {
                    spec.push_str(&format!(",tmpfs-size={size}"));
                }
                options.mounts.push(spec);
            }
            other => {
                return Err(Error::invalid(format!(
                    "service {}: volumes of type {other:?} are not supported",
                    service.name
                )))
            }
        }
    }
    for tmpfs in &service.tmpfs {
        let target = tmpfs.split(':').next().unwrap_or_default();
        options.mounts.push(format!("type=tmpfs,target={target}"));
    }
    match &service.network_mode {
        Some(mode) => options.network = mode.clone(),
        None => {
            // the highest priority first, then by name (compose's order)
            let mut networks: Vec<_> = service.networks.iter().collect();
            networks.sort_by_key(|(key, n)| (std::cmp::Reverse(n.priority.unwrap_or(0)), *key));
            for (i, (key, settings)) in networks.into_iter().enumerate() {
                let engine_name = project
                    .networks
                    .get(key)
                    .map_or_else(|| key.clone(), |n| n.name.clone());
                let mut aliases = vec![service.name.clone()];
                aliases.extend(settings.aliases.iter().cloned());
                if i == 0 {
                    options.network = engine_name;
                    options.network_aliases = aliases;
                    options.ip = settings.ipv4_address.clone();
                } else {
                    options.extra_networks.push((
                        engine_name,
                        ConnectOptions {
                            aliases,
                            ipv4: settings.ipv4_address.clone(),
                        },
                    ));
                }
            }
        }
    }
    Ok(options)
}

/// The build of a service with `build:`: its context, Dockerfile, args and target, tagged
/// [`Service::image_name`].
pub fn build_options(project: &Project, service: &Service) -> Option<BuildOptions> {
    let build = service.build.as_ref()?;
    let context = std::path::PathBuf::from(&build.context);
    let context = if context.is_absolute() {
        context
    } else {
        project.working_dir.join(context)
    };
    let dockerfile = match (&build.dockerfile_inline, &build.dockerfile) {
        (Some(text), _) => DockerfileSource::Bytes {
            name: "Dockerfile".into(),
            bytes: text.clone().into_bytes(),
        },
        (None, Some(path)) => {
            let path = std::path::PathBuf::from(path);
            DockerfileSource::Path(if path.is_absolute() {
                path
            } else {
                context.join(path)
            })
        }
        (None, None) => DockerfileSource::Path(context.join("Dockerfile")),
    };
    let mut options = BuildOptions::new(BuildContext::Directory(context));
    options.dockerfile = dockerfile;
    let mut tags = vec![service.image_name()];
    tags.extend(build.tags.iter().cloned());
    options.tags = tags;
    options.build_args = build
        .args
        .iter()
        .filter_map(|(k, v)| {
            v.clone()
                .or_else(|| project.environment.get(k).cloned())
                .map(|v| (k.clone(), v))
        })
        .collect();
    options.target = build.target.clone();
    options.labels = build.labels.clone();
    options.no_cache = build.no_cache;
    options.pull = build.pull;
    options.cache_from = build.cache_from.clone();
    options.cache_to = build.cache_to.clone();
    if let Some(network) = &build.network {
        options.network = network.clone();
    }
    Some(options)
}

impl Engine {
    /// The containers of project `name` (found by its label), one-off ones with `oneoff`,
    /// stopped ones with `all`; by service then number.
    pub fn compose_containers(
        &self,
        name: &str,
        all: bool,
        oneoff: bool,
    ) -> Result<Vec<ProjectContainer>> {
        let filter = ContainerFilter {
            all,
            labels: vec![format!("{}={name}", labels::PROJECT)],
            ..ContainerFilter::default()
        };
        let mut out: Vec<ProjectContainer> = self
            .container_summaries(&filter)?
            .into_iter()
            .map(|summary| ProjectContainer {
                service: summary
                    .labels
                    .get(labels::SERVICE)
                    .cloned()
                    .unwrap_or_default(),
                number: summary
                    .labels
                    .get(labels::CONTAINER_NUMBER)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                oneoff: summary.labels.get(labels::ONEOFF).map(String::as_str) == Some("True"),
                summary,
            })
            .filter(|c| oneoff || !c.oneoff)
            .collect();
        out.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
        Ok(out)
    }

    /// Whether a service's image is missing from the store (it must be built or pulled).
    pub fn compose_image_missing(&self, service: &Service) -> bool {
        self.inspect_image(&service.image_name()).is_err()
    }

    /// The container of `service`'s replica `index` (from 1) in project `name`, running.
    pub fn compose_service_container(
        &self,
        name: &str,
        service: &str,
        index: u32,
    ) -> Result<ProjectContainer> {
        self.compose_containers(name, true, false)?
            .into_iter()
            .find(|c| c.service == service && c.number == index)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "service \"{service}\" is not running container #{index}"
                ))
            })
    }

    fn compose_networks(
        &self,
        project: &Project,
        made: &mut Made,
        events: ComposeEvents<'_>,
    ) -> Result<()> {
        for (key, network) in &project.networks {
            let exists = self.find_network(&network.name).is_ok();
            if network.external {
                if !exists {
                    return Err(Error::NotFound(format!(
                        "network {} declared as external, but could not be found",
                        network.name
                    )));
                }
                continue;
            }
            if exists {
                continue;
            }
            emit(
                events,
                ResourceKind::Network,
                &network.name,
                "Creating",
                false,
            );
            let subnet = network
                .ipam
                .as_ref()
                .and_then(|i| i.config.first())
                .and_then(|c| c.subnet.clone());
            let gateway = network
                .ipam
                .as_ref()
                .and_then(|i| i.config.first())
                .and_then(|c| c.gateway.clone());
            self.network_create(&NetworkCreateOptions {
                name: network.name.clone(),
                driver: network.driver.clone(),
                subnet,
                gateway,
                internal: network.internal,
                labels: project.network_labels(key),
            })?;
            made.networks.push(network.name.clone());
            emit(
                events,
                ResourceKind::Network,
                &network.name,
                "Created",
                true,
            );
        }
        Ok(())
    }

    fn compose_volumes(
        &self,
        project: &Project,
        made: &mut Made,
        events: ComposeEvents<'_>,
    ) -> Result<()> {
        for (key, volume) in &project.volumes {
            let exists = self.inspect_volume(&volume.name).is_ok();
            if volume.external {
                if !exists {
                    return Err(Error::NotFound(format!(
                        "external volume \"{}\" not found",
                        volume.name
                    )));
                }
                continue;
            }
            if exists {
                continue;
            }
            emit(
                events,
                ResourceKind::Volume,
                &volume.name,
                "Creating",
                false,
            );
            self.create_volume_with(&VolumeCreate {
                name: Some(volume.name.clone()),
                driver: volume.driver.clone(),
                driver_opts: volume.driver_opts.clone(),
                labels: project.volume_labels(key),
            })?;
            made.volumes.push(volume.name.clone());
            emit(events, ResourceKind::Volume, &volume.name, "Created", true);
        }
        Ok(())
    }

    /// Waits for `service`'s dependencies' conditions (`service_started`,
    /// `service_healthy`, `service_completed_successfully`).
    fn compose_wait_dependencies(
        &self,
        project: &Project,
        service: &Service,
        timeout: Duration,
        events: ComposeEvents<'_>,
    ) -> Result<()> {
        for (dep, dependency) in &service.depends_on {
            if dependency.condition == "service_started" {
                continue;
            }
            let containers: Vec<ProjectContainer> = self
                .compose_containers(&project.name, true, false)?
                .into_iter()
                .filter(|c| &c.service == dep)
                .collect();
            if containers.is_empty() {
                if dependency.required {
                    return Err(Error::NotFound(format!(
                        "service {} depends on {dep}, which has no container",
                        service.name
                    )));
                }
                continue;
            }
            for container in containers {
                let name = container.name();
                emit(events, ResourceKind::Container, &name, "Waiting", false);
                let end = Instant::now() + timeout;
                loop {
                    let inspect = self.inspect_container(&container.summary.id)?;
                    let state = &inspect.state;
                    let met = match dependency.condition.as_str() {
                        "service_healthy" => match state.health.as_ref().map(|h| h.status.as_str()) {
                            Some("healthy") => true,
                            Some("unhealthy") => {
                                return Err(Error::Conflict(format!(
                                    "dependency failed to start: container {name} is unhealthy"
                                )))
                            }
                            Some(_) => false,
                            None => {
                                return Err(Error::Invalid(format!(
                                    "dependency failed to start: container {name} has no healthcheck configured"
                                )))
                            }
                        },
                        _ => {
                            // service_completed_successfully
                            if state.running {
                                false
                            } else if state.exit_code == 0 {
                                true
                            } else {
                                return Err(Error::Conflict(format!(
                                    "service \"{dep}\" didn't complete successfully: exit {}",
                                    state.exit_code
                                )));
                            }
                        }
                    };
                    if met {
                        let word = if dependency.condition == "service_healthy" {
                            "Healthy"
                        } else {
                            "Exited"
                        };
                        emit(events, ResourceKind::Container, &name, word, true);
                        break;
                    }
                    if !state.running && dependency.condition == "service_healthy" {
                        return Err(Error::Conflict(format!(
                            "dependency failed to start: container {name} exited ({})",
                            state.exit_code
                        )));
                    }
                    if Instant::now() > end {
                        return Err(Error::Conflict(format!(
                            "dependency failed to start: timed out waiting for {name}"
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        Ok(())
    }

    /// `compose up -d`: the project's networks and volumes, then per service in dependency
    /// order, per replica, its container kept (same config hash and image: started if
    /// stopped) or recreated, each service started once its dependencies' conditions hold.
    /// Images must exist (the face builds or pulls first). On an error, what this call
    /// created is removed again, and the error returned.
    pub fn compose_up(
        &self,
        project: &Project,
        options: &UpOptions,
        events: ComposeEvents<'_>,
    ) -> Result<()> {
        let mut made = Made::default();
        let result = self.compose_up_inner(project, options, &mut made, events);
        if result.is_err() {
            for id in made.containers.iter().rev() {
                let _ = self.remove_container(id, true);
            }
            for name in &made.networks {
                let _ = self.network_remove(name);
            }
            for name in &made.volumes {
                let _ = self.remove_volume(name);
            }
        }
        result
    }

    fn compose_up_inner(
        &self,
        project: &Project,
        options: &UpOptions,
        made: &mut Made,
        events: ComposeEvents<'_>,
    ) -> Result<()> {
        let services = with_dependencies(project, &options.services)?;
        for service in &services {
            if self.compose_image_missing(service) {
                return Err(Error::NotFound(format!(
                    "No such image: {} (service {})",
                    service.image_name(),
                    service.name
                )));
            }
        }
        self.compose_networks(project, made, events)?;
        self.compose_volumes(project, made, events)?;
        let existing = self.compose_containers(&project.name, true, false)?;
        if options.remove_orphans {
            for orphan in existing
                .iter()
                .filter(|c| project.service(&c.service).is_none())
            {
                let name = orphan.name();
                emit(events, ResourceKind::Container, &name, "Removing", false);
                self.remove_container(&orphan.summary.id, true)?;
                emit(events, ResourceKind::Container, &name, "Removed", true);
            }
        }
        let timeout = options
            .dependency_timeout
            .unwrap_or(Duration::from_secs(600));
        for service in &services {
            let count = replicas(service, &options.scale);
            let hash = service.config_hash();
            let image_id = self
                .inspect_image(&service.image_name())
                .map(|i| i.id)
                .unwrap_or_default();
            let mut to_start = Vec::new();
            for number in 1..=count {
                let name = service.container_name(number);
                let current = existing
                    .iter()
                    .find(|c| c.service == service.name && c.number == number);
                if let Some(current) = current {
                    let same = !options.force_recreate
                        && current.summary.labels.get(labels::CONFIG_HASH) == Some(&hash)
                        && current.summary.image_id == image_id;
                    if same {
                        if current.running() {
                            emit(events, ResourceKind::Container, &name, "Running", true);
                        } else {
                            to_start.push((current.summary.id.clone(), name));
                        }
                        continue;
                    }
                    emit(events, ResourceKind::Container, &name, "Recreate", false);
                    self.remove_container(&current.summary.id, true)?;
                    let created = self.create_container(&create_options(
                        project,
                        service,
                        number,
                        name.clone(),
                        false,
                    )?)?;
                    made.containers.push(created.id.clone());
                    emit(events, ResourceKind::Container, &name, "Recreated", true);
                    to_start.push((created.id, name));
                } else {
                    emit(events, ResourceKind::Container, &name, "Creating", false);
                    let created = self.create_container(&create_options(
                        project,
                        service,
                        number,
                        name.clone(),
                        false,
                    )?)?;
                    made.containers.push(created.id.clone());
                    emit(events, ResourceKind::Container, &name, "Created", true);
                    to_start.push((created.id, name));
                }
            }
            // replicas above the count go
            for extra in existing
                .iter()
                .filter(|c| c.service == service.name && c.number > count)
            {
                let name = extra.name();
                emit(events, ResourceKind::Container, &name, "Removing", false);
                self.remove_container(&extra.summary.id, true)?;
                emit(events, ResourceKind::Container, &name, "Removed", true);
            }
            if !to_start.is_empty() {
                self.compose_wait_dependencies(project, service, timeout, events)?;
            }
            for (id, name) in to_start {
                emit(events, ResourceKind::Container, &name, "Starting", false);
                self.start_container(&id)?;
                emit(events, ResourceKind::Container, &name, "Started", true);
            }
        }
        if options.wait {
            self.compose_wait_all(project, &services, timeout, events)?;
        }
        Ok(())
    }

    /// `up --wait`: every container of `services` running, and healthy when it has a check.
    fn compose_wait_all(
        &self,
        project: &Project,
        services: &[&Service],
        timeout: Duration,
        events: ComposeEvents<'_>,
    ) -> Result<()> {
        let end = Instant::now() + timeout;
        for container in self.compose_containers(&project.name, true, false)? {
            if !services.iter().any(|s| s.name == container.service) {
                continue;
            }
            let name = container.name();
            emit(events, ResourceKind::Container, &name, "Waiting", false);
            loop {
                let inspect = self.inspect_container(&container.summary.id)?;
                let state = &inspect.state;
                if !state.running {
                    return Err(Error::Conflict(format!(
                        "container {name} exited ({})",
                        state.exit_code
                    )));
                }
                match state.health.as_ref().map(|h| h.status.as_str()) {
                    None | Some("healthy") => break,
                    Some("unhealthy") => {
                        return Err(Error::Conflict(format!("container {name} is unhealthy")))
                    }
                    Some(_) => {}
                }
                if Instant::now() > end {
                    return Err(Error::Conflict(format!("timed out waiting for {name}")));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            emit(events, ResourceKind::Container, &name, "Healthy", true);
        }
        Ok(())
    }

    /// `compose down`: the project's containers (by its label, one-off ones too) stopped and
    /// removed in reverse dependency order, then its networks (never external ones), with
    /// `-v` its named volumes, with `--rmi` its images.
    pub fn compose_down(
        &self,
        project: &Project,
        options: &DownOptions,
        events: ComposeEvents<'_>,
    ) -> Result<()> {
        let containers = self.compose_containers(&project.name, true, true)?;
        let order = |c: &ProjectContainer| {
            project
                .services
                .iter()
                .position(|s| s.name == c.service)
                .unwrap_or(usize::MAX)
        };
        let mut sorted: Vec<&ProjectContainer> = containers.iter().collect();
        // reverse dependency order: dependents (later, and orphans) first
        sorted.sort_by_key(|c| std::cmp::Reverse(order(c)));
        for container in sorted {
            let name = container.name();
            if container.running() {
                emit(events, ResourceKind::Container, &name, "Stopping", false);
                self.stop_container(&container.summary.id, options.timeout)?;
                emit(events, ResourceKind::Container, &name, "Stopped", true);
            }
            emit(events, ResourceKind::Container, &name, "Removing", false);
            self.remove_container(&container.summary.id, true)?;
            emit(events, ResourceKind::Container, &name, "Removed", true);
        }
        // the project's networks: those the file names, and any labelled with the project
        let mut networks: Vec<String> = project
            .networks
            .values()
            .filter(|n| !n.external)
            .map(|n| n.name.clone())
            .collect();
        let labelled = self.network_list(&NetworkFilter {
            label: vec![format!("{}={}", labels::PROJECT, project.name)],
            ..NetworkFilter::default()
        })?;
        for network in labelled {
            if !networks.contains(&network.name) {
                networks.push(network.name);
            }
        }
        for name in networks {
            if self.find_network(&name).is_err() {
                continue;
            }
            emit(events, ResourceKind::Network, &name, "Removing", false);
            self.network_remove(&name)?;
            emit(events, ResourceKind::Network, &name, "Removed", true);
        }
        if options.volumes {
            let mut volumes: Vec<String> = project
                .volumes
                .values()
                .filter(|v| !v.external)
                .map(|v| v.name.clone())
                .collect();
            let filter = VolumeFilter {
                labels: vec![format!("{}={}", labels::PROJECT, project.name)],
                ..VolumeFilter::default()
            };
            for volume in self.list_volumes_filtered(&filter)? {
                if !volumes.contains(&volume.name) {
                    volumes.push(volume.name);
                }
            }
            for name in volumes {
                if self.inspect_volume(&name).is_err() {
                    continue;
                }
                emit(events, ResourceKind::Volume, &name, "Removing", false);
                self.remove_volume(&name)?;
                emit(events, ResourceKind::Volume, &name, "Removed", true);
            }
        }
        if let Some(which) = options.remove_images {
            for service in &project.services {
                if which == RemoveImages::Local && service.image.is_some() {
                    continue;
                }
                let image = service.image_name();
                if self.inspect_image(&image).is_err() {
                    continue;
                }
                emit(events, ResourceKind::Image, &image, "Removing", false);
                self.remove_image(&image, false, true)?;
                emit(events, ResourceKind::Image, &image, "Removed", true);
            }
        }
        Ok(())
    }

    /// The project's containers of `services` (all when empty), in dependency order
    /// (`reverse`: the other way round).
    fn compose_selected(
        &self,
        project: &Project,
        services: &[String],
        reverse: bool,
    ) -> Result<Vec<ProjectContainer>> {
        for name in services {
            if project.service(name).is_none() {
                return Err(Error::NotFound(format!("no such service: {name}")));
            }
        }
        let mut out: Vec<ProjectContainer> = self
            .compose_containers(&project.name, true, false)?
            .into_iter()
            .filter(|c| services.is_empty() || services.contains(&c.service))
            .collect();
        let order = |c: &ProjectContainer| {
            project
                .services
                .iter()
                .position(|s| s.name == c.service)
                .unwrap_or(usize::MAX)
        };
        out.sort_by_key(|c| (order(c), c.number));
        if reverse {
            out.reverse();
        }
        Ok(out)
    }

    /// `compose stop`: the services' running containers stopped, dependents first.
    pub fn compose_stop(
        &self,
        project: &Project,
        services: &[String],
        timeout: Option<Duration>,
        events: ComposeEvents<'_>,
    ) -> Result<()> {
        for container in self.compose_selected(project, services, true)? {
            if !container.running() {
                continue;
            }
            let name = container.name();
            emit(events, ResourceKind::Container, &name, "Stopping", false);
            self.stop_container(&container.summary.id, timeout)?;
            emit(events, ResourceKind::Container, &name, "Stopped", true);
        }
        Ok(())
    }

    /// `compose start`: the services' stopped containers started, dependencies first (with
    /// their conditions waited for).
    pub fn compose_start(
        &self,
        project: &Project,
        services: &[String],
        events: ComposeEvents<'_>,
    ) -> Result<()> {
        let containers = self.compose_selected(project, services, false)?;
        if containers.is_empty() {
            return Err(Error::NotFound(
                "service(s) have no container to start".into(),
            ));
        }
        let mut waited: Vec<String> = Vec::new();
        for container in containers {
            if container.running() {
                continue;
            }
            if !waited.contains(&container.service) {
                if let Some(service) = project.service(&container.service) {
                    self.compose_wait_dependencies(
                        project,
                        service,
                        Duration::from_secs(600),
                        events,
                    )?;
                }
                waited.push(container.service.clone());
            }
            let name = container.name();
            emit(events, ResourceKind::Container, &name, "Starting", false);
            self.start_container(&container.summary.id)?;
            emit(events, ResourceKind::Container, &name, "Started", true);
        }
        Ok(())
    }

    /// `compose restart`: the services' containers restarted.
    pub fn compose_restart(
        &self,
        project: &Project,
        services: &[String],
        timeout: Option<Duration>,
        events: ComposeEvents<'_>,
    ) -> Result<()> {
        for container in self.compose_selected(project, services, false)? {
            let name = container.name();
            emit(events, ResourceKind::Container, &name, "Restarting", false);
            self.restart_container(&container.summary.id, timeout)?;
            emit(events, ResourceKind::Container, &name, "Started", true);
        }
        Ok(())
    }

    /// `compose kill`: a signal to the services' running containers.
    pub fn compose_kill(
        &self,
        project: &Project,
        services: &[String],
        signal: &str,
        events: ComposeEvents<'_>,
    ) -> Result<()> {
        let signal = crate::containers::config::parse_signal(signal)?;
        for container in self.compose_selected(project, services, true)? {
            if !container.running() {
                continue;
            }
            let name = container.name();
            emit(events, ResourceKind::Container, &name, "Killing", false);
            self.kill_container(&container.summary.id, signal)?;
            emit(events, ResourceKind::Container, &name, "Killed", true);
        }
        Ok(())
    }

    /// `compose rm`: the services' stopped containers removed (`stop`: stopped first;
    /// `force`: running ones too).
    pub fn compose_rm(
        &self,
        project: &Project,
        services: &[String],
        stop: bool,
        events: ComposeEvents<'_>,
    ) -> Result<()> {
        for container in self.compose_selected(project, services, true)? {
            let name = container.name();
            if container.running() {
                if !stop {
                    continue;
                }
                emit(events, ResourceKind::Container, &name, "Stopping", false);
                self.stop_container(&container.summary.id, None)?;
                emit(events, ResourceKind::Container, &name, "Stopped", true);
            }
            emit(events, ResourceKind::Container, &name, "Removing", false);
            self.remove_container(&container.summary.id, true)?;
            emit(events, ResourceKind::Container, &name, "Removed", true);
        }
        Ok(())
    }

    /// `compose run`: `service`'s dependencies brought up, then a one-off container
    /// `PROJECT-SERVICE-run-ID` created (not started: the face attaches first) with `cmd`
    /// (none: the service's command) and `env` over the service's environment.
    pub fn compose_run_create(
        &self,
        project: &Project,
        service: &str,
        run: &RunOptions,
        events: ComposeEvents<'_>,
    ) -> Result<crate::containers::Created> {
        let svc = project
            .service(service)
            .ok_or_else(|| Error::NotFound(format!("no such service: {service}")))?;
        if !run.no_deps && !svc.depends_on.is_empty() {
            let deps: Vec<String> = svc.depends_on.keys().cloned().collect();
            self.compose_up(
                project,
                &UpOptions {
                    services: deps,
                    ..UpOptions::default()
                },
                events,
            )?;
            self.compose_wait_dependencies(project, svc, Duration::from_secs(600), events)?;
        } else {
            let mut made = Made::default();
            self.compose_networks(project, &mut made, events)?;
            self.compose_volumes(project, &mut made, events)?;
        }
        let suffix: String = crate::containers::random_name()
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .chain("000000000000".chars())
            .take(12)
            .collect();
        let mut options = create_options(project, svc, 1, svc.run_container_name(&suffix), true)?;
        // a one-off container publishes no ports unless asked (compose's --service-ports)
        if !run.service_ports {
            options.publish.clear();
        }
        if let Some(cmd) = &run.cmd {
            options.cmd = cmd.clone();
        }
        options.env.extend(run.env.iter().cloned());
        options.auto_remove = run.remove;
        options.tty = run.tty;
        options.open_stdin = run.interactive;
        // a one-off container is not restarted
        options.restart_policy = RestartPolicy::default();
        // and is named by its service too, but not `service` alone (compose gives it the
        // service name as an alias as well)
        self.create_container(&options)
    }
}

/// `compose run`'s options.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The command (`None`: the service's).
    pub cmd: Option<Vec<String>>,
    /// `-e K=V`.
    pub env: Vec<String>,
    /// `--rm`.
    pub remove: bool,
    /// `--no-deps`.
    pub no_deps: bool,
    /// `--service-ports`.
    pub service_ports: bool,
    /// A terminal.
    pub tty: bool,
    /// Keep standard input open.
    pub interactive: bool,
}
