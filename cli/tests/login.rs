//! `kiln login` / `kiln logout` against a real registry with htpasswd basic auth
//! (Debian's docker-registry and apache2-utils; see scripts/deps.sh).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Registry;

fn start_htpasswd_registry() -> Registry {
    Registry::start_with(|dir| {
        let out = Command::new("htpasswd")
            .args(["-Bbn", "acc", "pa55-w0rd"])
            .output()
            .expect("htpasswd is installed (scripts/deps.sh: apache2-utils)");
        std::fs::write(dir.join("htpasswd"), out.stdout).unwrap();
        format!(
            "auth:\n  htpasswd:\n    realm: acc\n    path: {}\n",
            dir.join("htpasswd").display()
        )
    })
}

fn kiln(docker_config: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("REGISTRY_AUTH_FILE")
        .env(
            "KILN_REGISTRIES_CONFIG",
            docker_config.join("no-registries.json"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // kiln may exit (on a flag error) before reading: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn login_checks_the_password_writes_docker_config_and_logout_removes_it() {
    let reg = start_htpasswd_registry();
    let home = tempfile::tempdir().unwrap();
    let cfg_dir = home.path().join("docker");
    let cfg = cfg_dir.join("config.json");
    let host = reg.addr.as_str();

    let out = kiln(
        &cfg_dir,
        &["login", "-u", "acc", "--password-stdin", host],
        "wrong\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("login to {host} failed")), "{err}");
    // dockerd's words for a refused login.
    assert!(
        err.contains(&format!(
            "login attempt to http://{host}/v2/ failed with status: 401 Unauthorized"
        )),
        "{err}"
    );
    assert!(!cfg.exists(), "nothing written on a failed login");

    let out = kiln(
        &cfg_dir,
        &["login", "-u", "acc", "--password-stdin", host],
        "pa55-w0rd\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Login Succeeded"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    // base64("acc:pa55-w0rd"), exactly what docker writes.
    assert_eq!(json["auths"][host]["auth"], "YWNjOnBhNTUtdzByZA==");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let out = kiln(&cfg_dir, &["logout", host], "");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Removing login credentials"));
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(!text.contains(host), "{text}");
    let out = kiln(&cfg_dir, &["logout", host], "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Not logged in"));
}

#[test]
fn login_flag_errors_are_clear() {
    let home = tempfile::tempdir().unwrap();
    let out = kiln(
        home.path(),
        &["login", "--password-stdin", "127.0.0.1:1"],
        "x",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--username"));
    let out = kiln(home.path(), &["login", "-u", "a", "127.0.0.1:1"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("password"));
}
