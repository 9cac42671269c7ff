//! The `kiln` binary seen from outside: flags and exit codes a user relies on.

use std::process::Command;

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

#[test]
fn version_names_the_package_version_and_root() {
    let out = kiln()
        .args(["--root", "/tmp/kiln-version-test", "version"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    assert!(text.contains("root: /tmp/kiln-version-test"), "{text}");
}

#[test]
fn completion_scripts_cover_every_shell_docker_users_have() {
    for shell in ["bash", "zsh", "fish"] {
        let out = kiln().args(["completion", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("completion"), "{shell}: {text}");
    }
}

#[test]
fn unknown_command_fails_with_usage_exit_code() {
    let out = kiln().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn lint_reports_rules_with_locations_and_exits_1() {
    let path = write_temp(
        "lint.Dockerfile",
        "FROM busybox as Build\nMAINTAINER someone\n",
    );
    let out = kiln().arg("lint").arg("-f").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("lint.Dockerfile:1:17: warning: StageNameCasing: Stage name 'Build' should be lowercase"), "{text}");
    assert!(
        text.contains("lint.Dockerfile:2:1: warning: MaintainerDeprecated"),
        "{text}"
    );
    let json = kiln()
        .args(["lint", "--format", "json", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    let findings: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(findings.as_array().unwrap().len(), 3);
}

#[test]
fn lint_of_a_clean_file_exits_0() {
    let path = write_temp("clean.Dockerfile", "FROM busybox\nCMD [\"sh\"]\n");
    let out = kiln().arg("lint").arg("-f").arg(&path).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
