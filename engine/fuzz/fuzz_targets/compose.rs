//! The compose loader on arbitrary input: the bytes before the first NUL are the `.env`
//! file, the rest the compose file (both in memory, so nothing touches the disk). Loading
//! must never panic, and a project that loads must load again from its own `config`
//! output with the same services, networks and volumes.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_engine::compose::{load, ProjectOptions};
use libfuzzer_sys::fuzz_target;

const DIR: &str = "/nonexistent/kiln-fuzz/proj";

fn options(compose: String, dotenv: Option<String>) -> ProjectOptions {
    let dir = PathBuf::from(DIR);
    let file = dir.join("compose.yaml");
    let mut contents = BTreeMap::new();
    contents.insert(file.clone(), compose);
    if let Some(dotenv) = dotenv {
        contents.insert(dir.join(".env"), dotenv);
    }
    ProjectOptions {
        files: vec![file],
        cwd: Some(dir),
        environment: [("HOME".to_string(), "/home/fuzz".to_string())].into_iter().collect(),
        contents,
        ..ProjectOptions::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (dotenv, compose) = match text.split_once('\0') {
        Some((env, compose)) => (Some(env.to_string()), compose.to_string()),
        None => (None, text.to_string()),
    };
    let Ok(project) = load(&options(compose, dotenv)) else {
        return;
    };
    let yaml = project.to_yaml();
    let again = match load(&options(yaml.clone(), None)) {
        Ok(again) => again,
        Err(e) => panic!("config output does not load: {e}\n{yaml}"),
    };
    let names = |p: &kiln_engine::compose::Project| {
        p.services.iter().map(|s| s.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&project), names(&again), "{yaml}");
    assert_eq!(project.networks, again.networks, "{yaml}");
    assert_eq!(project.volumes, again.volumes, "{yaml}");
    for (a, b) in project.services.iter().zip(&again.services) {
        assert_eq!(a.environment, b.environment, "{yaml}");
        assert_eq!(a.command, b.command, "{yaml}");
        assert_eq!(a.ports, b.ports, "{yaml}");
    }
});
