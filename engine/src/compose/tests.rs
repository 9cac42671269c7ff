//! Tests of the whole loader: files on disk in a temporary project directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

struct Dir(tempfile::TempDir);

impl Dir {
    /// A project directory named `name` (the default project name comes from it).
    fn new(name: &str) -> Dir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(name)).expect("mkdir");
        Dir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        let mut entries = std::fs::read_dir(self.0.path()).expect("read");
        let project = entries
            .next()
            .and_then(Result::ok)
            .map(|e| e.path())
            .expect("project dir");
        project.join(name)
    }

    fn write(&self, name: &str, text: &str) -> &Dir {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
        self
    }

    fn options(&self) -> ProjectOptions {
        ProjectOptions {
            cwd: Some(self.path("")),
            ..ProjectOptions::default()
        }
    }

    fn load(&self) -> Result<Project, ComposeError> {
        load(&self.options())
    }
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const ACCEPT: &str = r#"services:
  web:
    build: ./web
    ports:
      - "127.0.0.1:${ACC_WEB_PORT}:80"
    stop_grace_period: 1s
  api:
    image: busybox
    env_file: api.env
    environment:
      ACC_API_MSG: ${ACC_API_MSG:-unset}
      ACC_DEFAULTED: ${ACC_NOT_SET_ANYWHERE:-dflt}
      ACC_OVERRIDE: from-environment
    command: ["sh", "-c", "echo \"api says $$ACC_API_MSG\""]
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O- http://127.0.0.1:8080/"]
      interval: 1s
      retries: 30
  pool:
    image: busybox
    deploy:
      replicas: 2
  client:
    image: busybox
    depends_on:
      api:
        condition: service_healthy
    volumes:
      - data:/data
volumes:
  data:
"#;

fn accept_dir() -> Dir {
    let dir = Dir::new("Acc.Proj");
    dir.write("compose.yaml", ACCEPT)
        .write(".env", "ACC_WEB_PORT=18080\nACC_API_MSG=from-dotenv\n")
        .write(
            "api.env",
            "# comment\n\nACC_FILE_VAR=from-env-file\nACC_OVERRIDE=from-env-file\n",
        );
    dir
}

#[test]
fn the_acceptance_project() {
    let dir = accept_dir();
    let project = dir.load().expect("loads");
    assert_eq!(project.name, "accproj");
    assert_eq!(project.working_dir, dir.path(""));
    assert_eq!(project.config_files, vec![dir.path("compose.yaml")]);
    // dependency order: api before client; the rest by name
    let names: Vec<&str> = project.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["api", "client", "pool", "web"]);

    let web = project.service("web").expect("web");
    assert_eq!(web.image_name(), "accproj-web");
    assert_eq!(web.container_name(1), "accproj-web-1");
    assert_eq!(
        web.build.as_ref().map(|b| b.context.clone()),
        Some(dir.path("web").to_string_lossy().into_owned())
    );
    assert_eq!(web.ports.len(), 1);
    assert_eq!(web.ports[0].host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(web.ports[0].published.as_deref(), Some("18080"));
    assert_eq!(web.ports[0].target, 80);
    assert_eq!(web.stop_grace_period, Some(Duration::from_secs(1)));
    assert!(web.networks.contains_key("default"));

    let api = project.service("api").expect("api");
    let want = env(&[
        ("ACC_API_MSG", "from-dotenv"),
        ("ACC_DEFAULTED", "dflt"),
        ("ACC_FILE_VAR", "from-env-file"),
        ("ACC_OVERRIDE", "from-environment"),
    ]);
    assert_eq!(api.environment, want);
    assert_eq!(
        api.command
            .as_deref()
            .and_then(|c| c.get(2))
            .map(String::as_str),
        Some("echo \"api says $ACC_API_MSG\"")
    );
    let hc = api.healthcheck.as_ref().expect("healthcheck");
    assert_eq!(hc.interval, Some(Duration::from_secs(1)));
    assert_eq!(hc.retries, Some(30));

    assert_eq!(project.service("pool").map(|s| s.replicas), Some(2));
    let client = project.service("client").expect("client");
    assert_eq!(
        client.depends_on.get("api").map(|d| d.condition.as_str()),
        Some("service_healthy")
    );
    assert_eq!(client.volumes[0].kind, MountType::Volume);
    assert_eq!(client.volumes[0].source.as_deref(), Some("data"));

    assert_eq!(project.networks["default"].name, "accproj_default");
    assert_eq!(project.volumes["data"].name, "accproj_data");

    let yaml = project.to_yaml();
    assert!(yaml.contains("from-dotenv"), "{yaml}");
    assert!(yaml.contains("dflt"));
    assert!(yaml.contains("18080"));
    assert!(!yaml.contains("${"), "{yaml}");
    assert!(yaml.starts_with("name: accproj\nservices:\n"), "{yaml}");
    let order: Vec<usize> = ["\nservices:", "\nnetworks:", "\nvolumes:"]
        .iter()
        .map(|k| yaml.find(k).expect("top-level key"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{yaml}");
    assert!(yaml.contains("    stop_grace_period: 1s\n"), "{yaml}");
}

#[test]
fn process_environment_beats_dotenv() {
    let dir = accept_dir();
    let mut options = dir.options();
    options.environment = env(&[("ACC_API_MSG", "from-shell")]);
    let project = load(&options).expect("loads");
    let api = project.service("api").expect("api");
    assert_eq!(api.environment["ACC_API_MSG"], "from-shell");
}

#[test]
fn labels_and_config_hash() {
    let dir = accept_dir();
    let project = dir.load().expect("loads");
    let web = project.service("web").expect("web");
    let labels = web.container_labels(&project, 2, false);
    assert_eq!(labels[labels::PROJECT], "accproj");
    assert_eq!(labels[labels::SERVICE], "web");
    assert_eq!(labels[labels::CONTAINER_NUMBER], "2");
    assert_eq!(labels[labels::ONEOFF], "False");
    assert_eq!(
        labels[labels::CONFIG_FILES],
        dir.path("compose.yaml").to_string_lossy()
    );
    assert_eq!(labels[labels::CONFIG_HASH].len(), 64);
    assert_eq!(
        labels[labels::ENVIRONMENT_FILE],
        dir.path(".env").to_string_lossy()
    );
    assert_eq!(
        project.network_labels("default")[labels::NETWORK],
        "default"
    );
    assert_eq!(project.volume_labels("data")[labels::VOLUME], "data");

    // the hash is stable across loads, and changes with the service's config only
    let again = dir.load().expect("loads");
    assert_eq!(
        again.service("web").map(Service::config_hash),
        Some(web.config_hash())
    );
    let api_hash = project.service("api").map(Service::config_hash);
    let mut options = dir.options();
    options.environment = env(&[("ACC_API_MSG", "changed")]);
    let changed = load(&options).expect("loads");
    assert_ne!(changed.service("api").map(Service::config_hash), api_hash);
    assert_eq!(
        changed.service("web").map(Service::config_hash),
        Some(web.config_hash())
    );
    // replicas do not count
    let mut options = dir.options();
    options.scale = [("web".to_string(), 3)].into_iter().collect();
    let scaled = load(&options).expect("loads");
    assert_eq!(scaled.service("web").map(|s| s.replicas), Some(3));
    assert_eq!(
        scaled.service("web").map(Service::config_hash),
        Some(web.config_hash())
    );
}

#[test]
fn project_name_precedence() {
    let dir = Dir::new("My.Proj_dir");
    dir.write("compose.yaml", "services:\n  a:\n    image: x\n");
    assert_eq!(dir.load().expect("loads").name, "myproj_dir");
    dir.write(
        "compose.yaml",
        "name: ${N:-from-file}\nservices:\n  a:\n    image: x\n",
    );
    assert_eq!(dir.load().expect("loads").name, "from-file");
    let mut options = dir.options();
    options.environment = env(&[("COMPOSE_PROJECT_NAME", "from-env")]);
    assert_eq!(load(&options).expect("loads").name, "from-env");
    options.project_name = Some("from-flag".into());
    assert_eq!(load(&options).expect("loads").name, "from-flag");
    options.project_name = Some("Bad Name".into());
    assert!(matches!(
        load(&options),
        Err(ComposeError::ProjectName { .. })
    ));
    assert_eq!(normalize_project_name("__My-App.2"), "my-app2");
}

#[test]
fn compose_project_name_is_interpolated() {
    let dir = Dir::new("proj");
    dir.write(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    labels:\n      p: ${COMPOSE_PROJECT_NAME}\n",
    );
    let project = dir.load().expect("loads");
    assert_eq!(project.services[0].labels["p"], "proj");
}

#[test]
fn default_file_lookup_and_override() {
    let dir = Dir::new("look");
    dir.write("docker-compose.yml", "services:\n  a:\n    image: old\n")
        .write(
            "compose.yaml",
            "services:\n  a:\n    image: base\n    ports: ['80']\n",
        )
        .write(
            "compose.override.yaml",
            "services:\n  a:\n    image: over\n    ports: ['81']\n",
        );
    let project = dir.load().expect("loads");
    assert_eq!(
        project.config_files,
        vec![dir.path("compose.yaml"), dir.path("compose.override.yaml")]
    );
    let a = project.service("a").expect("a");
    assert_eq!(a.image.as_deref(), Some("over"));
    assert_eq!(
        a.ports.iter().map(|p| p.target).collect::<Vec<_>>(),
        vec![80, 81]
    );
    assert!(project
        .warnings
        .iter()
        .any(|w| w.contains("multiple config files")));

    // searched upward from a subdirectory
    std::fs::create_dir_all(dir.path("sub/deeper")).expect("mkdir");
    let mut options = dir.options();
    options.cwd = Some(dir.path("sub/deeper"));
    let project = load(&options).expect("loads");
    assert_eq!(project.working_dir, dir.path(""));

    let empty = Dir::new("empty");
    assert!(matches!(
        empty.load(),
        Err(ComposeError::NoConfigFile { .. })
    ));
}

#[test]
fn compose_file_variable_and_project_directory() {
    let dir = Dir::new("cf");
    dir.write(
        "one.yaml",
        "services:\n  a:\n    image: one\n    volumes: ['./data:/data']\n",
    )
    .write("two.yaml", "services:\n  b:\n    image: two\n");
    let mut options = dir.options();
    options.environment = env(&[("COMPOSE_FILE", "one.yaml:two.yaml")]);
    let project = load(&options).expect("loads");
    assert_eq!(project.services.len(), 2);

    // --project-directory: paths resolve against it, and .env is read there
    dir.write("elsewhere/.env", "IMG=from-elsewhere\n").write(
        "three.yaml",
        "services:\n  c:\n    image: ${IMG}\n    volumes: ['./data:/data']\n",
    );
    let mut options = dir.options();
    options.files = vec![PathBuf::from("three.yaml")];
    options.project_dir = Some(PathBuf::from("elsewhere"));
    let project = load(&options).expect("loads");
    let c = project.service("c").expect("c");
    assert_eq!(c.image.as_deref(), Some("from-elsewhere"));
    assert_eq!(
        c.volumes[0].source.as_deref().map(Path::new),
        Some(dir.path("elsewhere/data").as_path())
    );
    assert_eq!(project.name, "elsewhere");
}

#[test]
fn env_file_flag_replaces_dotenv() {
    let dir = Dir::new("ef");
    dir.write("compose.yaml", "services:\n  a:\n    image: ${IMG:-none}\n")
        .write(".env", "IMG=from-dotenv\n")
        .write("custom.env", "IMG=from-custom\n");
    assert_eq!(
        dir.load().expect("loads").services[0].image.as_deref(),
        Some("from-dotenv")
    );
    let mut options = dir.options();
    options.env_files = vec![PathBuf::from("custom.env")];
    assert_eq!(
        load(&options).expect("loads").services[0].image.as_deref(),
        Some("from-custom")
    );
    options.env_files = vec![PathBuf::from("missing.env")];
    assert!(matches!(load(&options), Err(ComposeError::Read { .. })));
}

#[test]
fn two_files_merge() {
    let dir = Dir::new("merge");
    dir.write(
        "a.yaml",
        "services:\n  web:\n    image: a\n    environment:\n      A: '1'\n      B: '2'\n    labels: [x=1]\n    volumes: ['v1:/data', './logs:/logs']\n    networks: [front]\nnetworks:\n  front:\nvolumes:\n  v1:\n  v2:\n",
    )
    .write(
        "b.yaml",
        "services:\n  web:\n    environment: ['B=3']\n    labels:\n      y: '2'\n    volumes: ['v2:/data']\n    command: echo hi\n",
    );
    let mut options = dir.options();
    options.files = vec!["a.yaml".into(), "b.yaml".into()];
    let project = load(&options).expect("loads");
    let web = project.service("web").expect("web");
    assert_eq!(web.image.as_deref(), Some("a"));
    assert_eq!(web.environment, env(&[("A", "1"), ("B", "3")]));
    assert_eq!(web.labels, env(&[("x", "1"), ("y", "2")]));
    let sources: Vec<&str> = web
        .volumes
        .iter()
        .filter_map(|v| v.source.as_deref())
        .collect();
    assert_eq!(sources[0], "v2");
    assert_eq!(sources.len(), 2);
    assert_eq!(
        web.command,
        Some(vec!["echo".to_string(), "hi".to_string()])
    );
    assert_eq!(web.networks.keys().collect::<Vec<_>>(), vec!["front"]);
    assert!(!project.networks.contains_key("default"));
    assert_eq!(project.networks["front"].name, "merge_front");
}

#[test]
fn anchors_and_extensions() {
    let dir = Dir::new("anchors");
    dir.write(
        "compose.yaml",
        "x-common: &common\n  image: busybox\n  restart: always\n  environment:\n    SHARED: 'yes'\nservices:\n  a:\n    <<: *common\n  b:\n    <<: *common\n    restart: \"no\"\n    x-note: hello\n",
    );
    let project = dir.load().expect("loads");
    let a = project.service("a").expect("a");
    let b = project.service("b").expect("b");
    assert_eq!(a.restart.as_deref(), Some("always"));
    assert_eq!(b.restart.as_deref(), Some("no"));
    assert_eq!(b.image.as_deref(), Some("busybox"));
    assert_eq!(a.environment["SHARED"], "yes");
    assert_eq!(b.extensions["x-note"], "hello");
    assert!(project.extensions.contains_key("x-common"));
}

#[test]
fn profiles() {
    let dir = Dir::new("prof");
    dir.write(
        "compose.yaml",
        "services:\n  app:\n    image: a\n  debug:\n    image: d\n    profiles: [debug]\n  tools:\n    image: t\n    profiles: [tools]\n    depends_on: [app]\n",
    );
    let names = |p: &Project| {
        p.services
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    };
    let project = dir.load().expect("loads");
    assert_eq!(names(&project), vec!["app"]);
    assert_eq!(project.disabled_services, vec!["debug", "tools"]);
    let mut options = dir.options();
    options.profiles = vec!["debug".into()];
    assert_eq!(names(&load(&options).expect("loads")), vec!["app", "debug"]);
    let mut options = dir.options();
    options.environment = env(&[("COMPOSE_PROFILES", "tools, debug")]);
    assert_eq!(
        names(&load(&options).expect("loads")),
        vec!["app", "debug", "tools"]
    );
    // a service named on the command line enables its profiles
    let mut options = dir.options();
    options.services = vec!["tools".into()];
    assert_eq!(names(&load(&options).expect("loads")), vec!["app", "tools"]);
    options.services = vec!["ghost".into()];
    assert!(matches!(load(&options), Err(ComposeError::Options(_))));
    // an enabled service needing a disabled one is an error naming both
    dir.write(
        "compose.yaml",
        "services:\n  app:\n    image: a\n    depends_on: [db]\n  db:\n    image: d\n    profiles: [db]\n",
    );
    let err = dir.load().expect_err("disabled dependency");
    assert!(matches!(err, ComposeError::DisabledService { .. }), "{err}");
    assert!(err.to_string().contains(":4:"), "{err}");
}

#[test]
fn environment_forms_and_bare_keys() {
    let dir = Dir::new("envs");
    dir.write(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    environment:\n      - LIST=1\n      - FROM_SHELL\n      - NOT_ANYWHERE\n      - EMPTY=\n  b:\n    image: x\n    environment:\n      FLAG: yes\n      OCTAL: 0755\n      NUM: 1.50\n      NULL_ONE:\n",
    );
    let mut options = dir.options();
    options.environment = env(&[("FROM_SHELL", "shell"), ("NULL_ONE", "n")]);
    let project = load(&options).expect("loads");
    assert_eq!(
        project.service("a").map(|s| s.environment.clone()),
        Some(env(&[
            ("LIST", "1"),
            ("FROM_SHELL", "shell"),
            ("EMPTY", "")
        ]))
    );
    assert_eq!(
        project.service("b").map(|s| s.environment.clone()),
        Some(env(&[
            ("FLAG", "yes"),
            ("OCTAL", "0755"),
            ("NUM", "1.50"),
            ("NULL_ONE", "n")
        ]))
    );
}

#[test]
fn env_file_forms() {
    let dir = Dir::new("envfile");
    dir.write("a.env", "A=1\nB=${SHELL_VAR}\n")
        .write("b.env", "A=2\n")
        .write(
            "compose.yaml",
            "services:\n  s:\n    image: x\n    env_file:\n      - a.env\n      - path: b.env\n      - path: missing.env\n        required: false\n",
        );
    let mut options = dir.options();
    options.environment = env(&[("SHELL_VAR", "sv")]);
    let project = load(&options).expect("loads");
    assert_eq!(
        project.services[0].environment,
        env(&[("A", "2"), ("B", "sv")])
    );
    assert_eq!(project.services[0].env_file.len(), 3);
}

#[test]
fn short_and_long_syntaxes() {
    let dir = Dir::new("syn");
    dir.write(
        "compose.yaml",
        r#"services:
  s:
    image: x
    command: sh -c 'echo "a b"'
    entrypoint: []
    ports:
      - 22:22
      - target: 80
        published: 8080
        host_ip: 127.0.0.1
        protocol: udp
      - 3000-3001:4000-4001
    expose: ["9000", 9001/udp]
    volumes:
      - ~/cache:/cache
      - ../up:/up:ro
      - type: bind
        source: ./src
        target: /src
      - type: tmpfs
        target: /tmp
        tmpfs:
          size: 64m
      - /anon
    healthcheck:
      test: curl -f http://localhost
      interval: 1m30s
      start_period: 500ms
    networks:
      back:
        aliases: [s1, s2]
        ipv4_address: 10.5.0.9
    extra_hosts: ["db=10.0.0.2", "cache:10.0.0.3"]
    dns: 1.1.1.1
    tmpfs: /run
    cap_add: [NET_ADMIN]
    init: true
    read_only: true
    tty: true
    stdin_open: true
    privileged: false
    user: "1000:1000"
    working_dir: /work
    hostname: host1
    stop_signal: SIGINT
    restart: on-failure:3
    mem_limit: 512m
    ulimits:
      nofile: {soft: 1024, hard: 2048}
  t:
    image: x
    network_mode: "service:s"
    healthcheck:
      disable: true
networks:
  back:
    driver: bridge
    internal: true
    ipam:
      config:
        - subnet: 10.5.0.0/16
          gateway: 10.5.0.1
    labels: [team=a]
  outside:
    external: true
  named:
    name: custom-name
volumes:
  ext:
    external: true
    name: real-ext
"#,
    );
    let mut options = dir.options();
    options.environment = env(&[("HOME", "/home/u")]);
    let project = load(&options).expect("loads");
    let s = project.service("s").expect("s");
    assert_eq!(
        s.command,
        Some(vec!["sh".into(), "-c".into(), "echo \"a b\"".into()])
    );
    assert_eq!(s.entrypoint, Some(vec![]));
    let ports: Vec<(u16, Option<&str>, &str)> = s
        .ports
        .iter()
        .map(|p| (p.target, p.published.as_deref(), p.protocol.as_str()))
        .collect();
    assert_eq!(
        ports,
        vec![
            (22, Some("22"), "tcp"),
            (80, Some("8080"), "udp"),
            (4000, Some("3000"), "tcp"),
            (4001, Some("3001"), "tcp")
        ]
    );
    assert_eq!(s.expose, vec!["9000", "9001/udp"]);
    assert_eq!(s.volumes[0].source.as_deref(), Some("/home/u/cache"));
    let parent = dir.path("").parent().map(|p| p.join("up"));
    assert_eq!(s.volumes[1].source.as_deref().map(PathBuf::from), parent);
    assert!(s.volumes[1].read_only);
    assert_eq!(
        s.volumes[2].source.as_deref().map(PathBuf::from),
        Some(dir.path("src"))
    );
    assert_eq!(s.volumes[3].kind, MountType::Tmpfs);
    assert_eq!(
        s.volumes[3].tmpfs.as_ref().and_then(|t| t.size),
        Some(64 << 20)
    );
    assert_eq!(
        (s.volumes[4].kind, s.volumes[4].source.as_deref()),
        (MountType::Volume, None)
    );
    let hc = s.healthcheck.as_ref().expect("hc");
    assert_eq!(
        hc.test,
        Some(vec!["CMD-SHELL".into(), "curl -f http://localhost".into()])
    );
    assert_eq!(hc.interval, Some(Duration::from_secs(90)));
    assert_eq!(hc.start_period, Some(Duration::from_millis(500)));
    assert_eq!(s.networks["back"].aliases, vec!["s1", "s2"]);
    assert_eq!(s.networks["back"].ipv4_address.as_deref(), Some("10.5.0.9"));
    assert_eq!(s.extra_hosts, vec!["db:10.0.0.2", "cache:10.0.0.3"]);
    assert_eq!(s.dns, vec!["1.1.1.1"]);
    assert_eq!(s.tmpfs, vec!["/run"]);
    assert!(s.read_only && s.tty && s.stdin_open && !s.privileged);
    assert_eq!(s.init, Some(true));
    assert_eq!(s.user.as_deref(), Some("1000:1000"));
    assert_eq!(s.restart.as_deref(), Some("on-failure:3"));
    assert_eq!(s.other["mem_limit"], "512m");
    assert_eq!(s.other["ulimits"]["nofile"]["hard"], 2048);

    let t = project.service("t").expect("t");
    assert!(t.networks.is_empty());
    assert!(t.depends_on.contains_key("s"));
    assert_eq!(
        t.healthcheck.as_ref().and_then(|h| h.test.clone()),
        Some(vec!["NONE".to_string()])
    );
    // s before t (network_mode: service:s is a dependency)
    assert_eq!(project.services[0].name, "s");

    let back = &project.networks["back"];
    assert_eq!(back.name, "syn_back");
    assert!(back.internal);
    let pool = &back.ipam.as_ref().expect("ipam").config[0];
    assert_eq!(pool.subnet.as_deref(), Some("10.5.0.0/16"));
    assert_eq!(pool.gateway.as_deref(), Some("10.5.0.1"));
    assert_eq!(back.labels["team"], "a");
    assert_eq!(project.networks["outside"].name, "outside");
    assert!(project.networks["outside"].external);
    assert_eq!(project.networks["named"].name, "custom-name");
    assert_eq!(project.volumes["ext"].name, "real-ext");
    assert!(!project.networks.contains_key("default"));
}

/// Loads `text` as `bad.yaml` and returns the error's message.
fn error_of(text: &str) -> String {
    let dir = Dir::new("bad");
    dir.write("bad.yaml", text);
    let mut options = dir.options();
    options.files = vec!["bad.yaml".into()];
    match load(&options) {
        Ok(_) => panic!("loaded: {text}"),
        Err(e) => {
            let message = e.to_string();
            if let Some(location) = e.location() {
                assert!(location.file.ends_with("bad.yaml"), "{location}");
                assert!(message.starts_with(&location.to_string()), "{message}");
            }
            // every error maps to the engine's Invalid, message whole
            let engine: crate::Error = e.into();
            assert!(matches!(engine, crate::Error::Invalid(ref m) if *m == message));
            message
        }
    }
}

fn assert_at(message: &str, line: usize, word: &str) {
    assert!(
        message.contains(&format!("bad.yaml:{line}:")),
        "no line {line} in {message}"
    );
    assert!(message.contains(&format!("line {line}")), "{message}");
    assert!(message.contains(word), "no {word:?} in {message}");
}

#[test]
fn errors_name_file_and_line() {
    assert_at(
        &error_of("services:\n  web:\n    image: a: b\n    command: [\"sleep\", \"300\"]\n"),
        3,
        "yaml",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: busybox\nfrobnicate: true\n"),
        4,
        "frobnicate",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: busybox\n    frobnicate: true\n"),
        4,
        "frobnicate",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: busybox\n    ports:\n      - \"80:80:80:80\"\n"),
        5,
        "80:80:80:80",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: busybox\n    ports:\n      - 99999\n"),
        5,
        "99999",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: busybox\n    healthcheck:\n      interval: 10\n"),
        5,
        "duration",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: busybox\n    stop_grace_period: soon\n"),
        4,
        "soon",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: ${IMG:?set IMG please}\n"),
        3,
        "set IMG please",
    );
    let message = error_of("services:\n  web:\n    image: ${IMG:?}\n");
    assert!(
        message.contains("required variable IMG is missing a value (line 3)"),
        "{message}"
    );
    assert_at(
        &error_of("services:\n  web:\n    image: busybox\n    depends_on:\n      - nope\n"),
        5,
        "nope",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: busybox\n    env_file: missing.env\n"),
        4,
        "missing.env",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: busybox\n    restart: sometimes\n"),
        4,
        "sometimes",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: busybox\n    networks: [ghost]\n"),
        4,
        "ghost",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: busybox\n    volumes: [ghost:/data]\n"),
        4,
        "ghost",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: ${}\n"),
        3,
        "interpolation",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: busybox\n    tty: maybe\n"),
        4,
        "boolean",
    );
    assert_at(
        &error_of("services:\n  web:\n    image: busybox\n  web2:\n    image: x\n    build:\n      context: .\n      frob: 1\n"),
        8,
        "frob",
    );
    assert_at(
        &error_of("services:\n  web:\n    build: {}\n    image: [x]\n"),
        4,
        "string",
    );
    assert_at(
        &error_of("services:\n  web: {}\n"),
        2,
        "neither an image nor a build",
    );
}

#[test]
fn dependency_cycles_are_named() {
    let message = error_of(
        "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [c]\n  c:\n    image: x\n    depends_on: [a]\n",
    );
    assert!(message.contains("a -> b -> c -> a"), "{message}");
    let message = error_of("services:\n  a:\n    image: x\n    depends_on: [a]\n");
    assert!(message.contains("a -> a"), "{message}");
}

#[test]
fn unset_variables_warn_once() {
    let dir = Dir::new("warn");
    dir.write(
        "compose.yaml",
        "version: '3.8'\nservices:\n  a:\n    image: x${NOPE}\n    labels:\n      l: ${NOPE}$${NOT_A_VAR}\n",
    );
    let project = dir.load().expect("loads");
    let a = project.service("a").expect("a");
    assert_eq!(a.image.as_deref(), Some("x"));
    assert_eq!(a.labels["l"], "${NOT_A_VAR}");
    let nope: Vec<&String> = project
        .warnings
        .iter()
        .filter(|w| w.contains("\"NOPE\" variable is not set"))
        .collect();
    assert_eq!(nope.len(), 1, "{:?}", project.warnings);
    assert!(project
        .warnings
        .iter()
        .any(|w| w.contains("`version` is obsolete")));
}

#[test]
fn keys_are_not_interpolated() {
    let dir = Dir::new("keys");
    dir.write(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    labels:\n      ${KEY}: v\n",
    );
    let mut options = dir.options();
    options.environment = env(&[("KEY", "k")]);
    let project = load(&options).expect("loads");
    assert!(project.services[0].labels.contains_key("${KEY}"));
}

#[test]
fn replicas_and_container_name() {
    let message = error_of(
        "services:\n  a:\n    image: x\n    container_name: fixed\n    deploy:\n      replicas: 2\n",
    );
    assert!(message.contains("container_name"), "{message}");
    let dir = Dir::new("rep");
    dir.write(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    scale: 3\n",
    );
    assert_eq!(dir.load().expect("loads").services[0].replicas, 3);
    let mut options = dir.options();
    options.scale = [("ghost".to_string(), 1)].into_iter().collect();
    assert!(matches!(load(&options), Err(ComposeError::Options(_))));
}

#[test]
fn config_output_reads_back() {
    let dir = accept_dir();
    let project = dir.load().expect("loads");
    let yaml = project.to_yaml();
    // `kiln compose config`'s output is itself a valid compose file giving the same project
    let again = Dir::new("accproj");
    again
        .write("compose.yaml", &yaml)
        .write("web/Dockerfile", "FROM busybox\n");
    let reloaded = again.load().expect("reloads");
    assert_eq!(reloaded.name, "accproj");
    for (a, b) in project.services.iter().zip(&reloaded.services) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.environment, b.environment);
        assert_eq!(a.ports, b.ports);
        assert_eq!(a.command, b.command);
        assert_eq!(a.healthcheck, b.healthcheck);
        assert_eq!(a.replicas, b.replicas);
    }
}

#[test]
fn command_null_empty_and_string() {
    let dir = Dir::new("cmd");
    dir.write(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    command: null\n    entrypoint: ''\n  b:\n    image: x\n    command: []\n    entrypoint: /bin/sh -c\n",
    );
    let project = dir.load().expect("loads");
    let a = project.service("a").expect("a");
    assert_eq!(a.command, None);
    assert_eq!(a.entrypoint, Some(vec![]));
    let b = project.service("b").expect("b");
    assert_eq!(b.command, Some(vec![]));
    assert_eq!(
        b.entrypoint,
        Some(vec!["/bin/sh".to_string(), "-c".to_string()])
    );
}

#[test]
fn override_and_reset_tags_in_a_second_file() {
    let dir = Dir::new("tags");
    dir.write(
        "a.yaml",
        "services:\n  a:\n    image: x\n    ports: ['80:80']\n    environment: {A: '1'}\n    labels: {l: v}\n",
    )
    .write(
        "b.yaml",
        "services:\n  a:\n    ports: !override ['81:81']\n    environment: !reset {}\n",
    );
    let mut options = dir.options();
    options.files = vec!["a.yaml".into(), "b.yaml".into()];
    let project = load(&options).expect("loads");
    let a = project.service("a").expect("a");
    assert_eq!(
        a.ports.iter().map(|p| p.target).collect::<Vec<_>>(),
        vec![81]
    );
    assert!(a.environment.is_empty());
    assert_eq!(a.labels["l"], "v");
}

#[test]
fn several_env_files_later_wins_and_raw_format() {
    let dir = Dir::new("envs2");
    dir.write("one.env", "A=one\nB=one\n")
        .write("two.env", "B=two\n")
        .write("raw.env", "R=\"kept quotes\" $A\n# comment\n")
        .write(
            "compose.yaml",
            "services:\n  s:\n    image: ${A}-${B}\n    env_file:\n      - path: raw.env\n        format: raw\n",
        );
    let mut options = dir.options();
    options.env_files = vec!["one.env".into(), "two.env".into()];
    let project = load(&options).expect("loads");
    let s = &project.services[0];
    assert_eq!(s.image.as_deref(), Some("one-two"));
    assert_eq!(s.environment["R"], "\"kept quotes\" $A");
}

#[test]
fn undefined_secret_and_external_conflicts() {
    assert_at(
        &error_of("services:\n  a:\n    image: x\n    secrets:\n      - nope\n"),
        5,
        "secret \"nope\"",
    );
    assert_at(
        &error_of("services:\n  a:\n    image: x\nnetworks:\n  n:\n    external: true\n    driver: bridge\n"),
        6,
        "conflicting parameters",
    );
    assert_at(
        &error_of("services:\n  a:\n    image: x\nnetworks:\n  n:\n    ipam:\n      config:\n        - subnet: 10.0.0.0/33\n"),
        8,
        "CIDR",
    );
}
