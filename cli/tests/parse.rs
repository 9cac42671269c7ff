//! `kiln parse` from outside: output formats, standard input, and the
//! pointed error with exit code 1 for a bad Dockerfile.

use std::io::Write;
use std::process::{Command, Stdio};

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-parse-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn dump_prints_buildkit_sexpressions() {
    let path = write_temp(
        "dump.Dockerfile",
        "FROM busybox AS base\nENV X=1 Y=\"two words\"\nRUN echo hi && \\\n    echo there\nONBUILD RUN echo later\nHEALTHCHECK --interval=5s CMD [\"true\"]\n",
    );
    let out = kiln()
        .arg("parse")
        .arg("--dump")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "(from \"busybox\" \"AS\" \"base\")\n(env \"X\" \"1\" \"=\" \"Y\" \"\\\"two words\\\"\" \"=\")\n(run \"echo hi &&     echo there\")\n(onbuild (run \"echo later\"))\n(healthcheck [\"--interval=5s\"] \"CMD\" \"true\")\n"
    );
}

#[test]
fn json_from_stdin_has_schema_version_and_spans() {
    let mut child = kiln()
        .args(["parse", "--json", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox\nRUN true\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schemaVersion"], 1);
    assert_eq!(v["file"], "-");
    let run = &v["stages"][0]["instructions"][0];
    assert_eq!(run["command"]["instruction"], "RUN");
    assert_eq!(run["span"]["start"]["line"], 2);
}

#[test]
fn outline_is_the_default() {
    let path = write_temp("outline.Dockerfile", "FROM a AS one\nRUN x\nFROM one\n");
    let out = kiln().arg("parse").arg("-f").arg(&path).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("stage 0 \"one\":"), "{text}");
    assert!(text.contains("stage 1:"), "{text}");
}

#[test]
fn bad_dockerfile_exits_1_with_pointed_error() {
    let path = write_temp("bad.Dockerfile", "FROM busybox\nRUN true\nFORM busybox\n");
    let out = kiln().arg("parse").arg("-f").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bad.Dockerfile:3:1"), "{err}");
    assert!(err.contains("FORM busybox"), "source line shown: {err}");
    assert!(err.contains("did you mean FROM?"), "{err}");
}

#[test]
fn syntax_only_dump_accepts_what_buildkit_parser_accepts() {
    let path = write_temp("unknown.Dockerfile", "FROM a\nFORM b\n");
    let out = kiln()
        .arg("parse")
        .args(["--dump", "--syntax-only", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "(from \"a\")\n(form \"\")\n"
    );
}

#[test]
fn missing_file_is_an_error() {
    let out = kiln()
        .args(["parse", "-f", "/nonexistent/kiln/Dockerfile"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("/nonexistent/kiln/Dockerfile"));
}
