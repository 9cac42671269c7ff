//! The compose loader on real files: docker/awesome-compose's 39 compose files (see
//! tests/data/awesome-compose/README.md) all load, their `config` output loads back to the
//! same project, and a few are checked in detail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_engine::compose::{self, Project, ProjectOptions};

fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/awesome-compose");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&root).expect("corpus") {
        let dir = entry.expect("entry").path();
        for name in compose::DEFAULT_FILE_NAMES {
            if dir.join(name).is_file() {
                files.push(dir.join(name));
            }
        }
    }
    files.sort();
    files
}

fn load(file: &Path) -> Project {
    let options = ProjectOptions {
        files: vec![file.to_path_buf()],
        cwd: file.parent().map(Path::to_path_buf),
        ..ProjectOptions::default()
    };
    compose::load(&options).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

#[test]
fn every_file_loads_and_round_trips() {
    let files = corpus();
    assert_eq!(files.len(), 39);
    let scratch = tempfile::tempdir().expect("tempdir");
    for file in files {
        let project = load(&file);
        assert!(!project.services.is_empty(), "{}", file.display());
        for service in &project.services {
            assert!(!service.image_name().is_empty());
            // every service is on a network or has a network_mode
            assert!(
                !service.networks.is_empty() || service.network_mode.is_some(),
                "{}: {}",
                file.display(),
                service.name
            );
            for network in service.networks.keys() {
                assert!(project.networks.contains_key(network));
            }
        }
        // dependency order: a service comes after what it depends on
        for (i, service) in project.services.iter().enumerate() {
            for dep in service.depends_on.keys() {
                let j = project.services.iter().position(|s| &s.name == dep);
                assert!(
                    j.is_some_and(|j| j < i),
                    "{}: {dep} before {}",
                    file.display(),
                    service.name
                );
            }
        }
        let yaml = project.to_yaml();
        let dir = scratch.path().join(&project.name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let again = dir.join("compose.yaml");
        std::fs::write(&again, &yaml).expect("write");
        let reloaded = load(&again);
        assert_eq!(reloaded.name, project.name);
        assert_eq!(reloaded.networks, project.networks, "{}", file.display());
        assert_eq!(reloaded.volumes, project.volumes, "{}", file.display());
        for (a, b) in project.services.iter().zip(&reloaded.services) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.environment, b.environment, "{}", file.display());
            assert_eq!(a.ports, b.ports);
            assert_eq!(a.volumes, b.volumes);
            assert_eq!(a.command, b.command);
            assert_eq!(a.healthcheck, b.healthcheck);
            assert_eq!(
                a.config_hash(),
                b.config_hash(),
                "{}: {}",
                file.display(),
                a.name
            );
        }
    }
}

#[test]
fn nginx_flask_mysql_in_detail() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/awesome-compose/nginx-flask-mysql");
    let project = load(&dir.join("compose.yaml"));
    assert_eq!(project.name, "nginx-flask-mysql");
    let names: Vec<&str> = project.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["db", "backend", "proxy"]);
    let db = project.service("db").expect("db");
    assert_eq!(db.expose, vec!["3306", "33060"]);
    assert_eq!(
        db.command.as_deref(),
        Some(&["--default-authentication-plugin=mysql_native_password".to_string()][..])
    );
    let hc = db.healthcheck.as_ref().expect("healthcheck");
    assert_eq!(hc.start_period, Some(Duration::from_secs(30)));
    // `$$` in the file is one `$` in the model
    assert!(hc
        .test
        .as_ref()
        .is_some_and(|t| t[1].contains("$(cat /run/secrets/db-password)")));
    assert_eq!(db.secrets[0].source, "db-password");
    assert_eq!(
        project.secrets["db-password"].file.as_deref(),
        Some(dir.join("db/password.txt").as_path())
    );
    let backend = project.service("backend").expect("backend");
    assert_eq!(backend.image_name(), "nginx-flask-mysql-backend");
    assert_eq!(
        backend.build.as_ref().and_then(|b| b.target.as_deref()),
        Some("builder")
    );
    assert_eq!(
        backend
            .networks
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        vec!["backnet", "frontnet"]
    );
    assert_eq!(
        project.networks["backnet"].name,
        "nginx-flask-mysql_backnet"
    );
    assert_eq!(project.volumes["db-data"].name, "nginx-flask-mysql_db-data");
    assert!(!project.networks.contains_key("default"));
}
