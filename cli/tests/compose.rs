//! `kiln compose config` on project directories: the loaded, interpolated project printed,
//! and bad files rejected with their file and line.

use std::path::Path;
use std::process::{Command, Output};

fn kiln_compose(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("compose")
        .args(args)
        .current_dir(dir)
        // the test's own environment must not leak into the project
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_PROFILES")
        .env("CLI_TEST_SHELL_VAR", "from-shell")
        .output()
        .expect("runs kiln")
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("My_Project");
    std::fs::create_dir_all(root.join("web")).expect("mkdir");
    std::fs::write(
        root.join("compose.yaml"),
        "services:\n  web:\n    build: ./web\n    ports:\n      - \"127.0.0.1:${PORT}:80\"\n    environment:\n      MSG: ${MSG:-default-msg}\n      SHELL_VAR: ${CLI_TEST_SHELL_VAR}\n    command: echo $$HOME\n  db:\n    image: busybox\n    profiles: [db]\nvolumes:\n  data:\n",
    )
    .expect("write");
    std::fs::write(root.join(".env"), "PORT=18081\n").expect("write");
    dir
}

#[test]
fn config_prints_the_interpolated_project() {
    let dir = project();
    let root = dir.path().join("My_Project");
    let out = kiln_compose(&root, &["config"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("name: my_project\n"), "{stdout}");
    assert!(stdout.contains("published: \"18081\""), "{stdout}");
    assert!(stdout.contains("MSG: default-msg"), "{stdout}");
    assert!(stdout.contains("SHELL_VAR: from-shell"), "{stdout}");
    assert!(stdout.contains("- $$HOME"), "{stdout}");
    assert!(stdout.contains("name: my_project_default"), "{stdout}");
    assert!(stdout.contains("name: my_project_data"), "{stdout}");
    assert!(!stdout.contains("${"), "{stdout}");
    assert!(
        !stdout.contains("db:"),
        "the db profile is not active: {stdout}"
    );

    let out = kiln_compose(&root, &["--profile", "db", "config", "--services"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "db\nweb\n");
    let out = kiln_compose(&root, &["-p", "other", "config", "--volumes"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "data\n");
    let out = kiln_compose(&root, &["config", "-q"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn config_rejects_bad_files_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text, line, word) in [
        (
            "bad-yaml.yaml",
            "services:\n  web:\n    image: a: b\n",
            3,
            "yaml",
        ),
        (
            "bad-key.yaml",
            "services:\n  web:\n    image: busybox\nfrobnicate: true\n",
            4,
            "frobnicate",
        ),
        (
            "bad-port.yaml",
            "services:\n  web:\n    image: busybox\n    ports:\n      - \"80:80:80:80\"\n",
            5,
            "80:80:80:80",
        ),
    ] {
        std::fs::write(dir.path().join(name), text).expect("write");
        let out = kiln_compose(dir.path(), &["-f", name, "-p", "bad", "config"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}:{line}:")),
            "{name}: {stderr}"
        );
        assert!(stderr.contains(word), "{name}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}
