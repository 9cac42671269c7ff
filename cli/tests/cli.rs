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
