//! `kiln compose up -d`, `ps`, `exec` and `down -v` on a two-service project (one service
//! built, one from an image, a named volume shared through the project's network), and a bad
//! file that must start nothing (root).

mod common;

use std::path::Path;
use std::process::Output;

use common::Machine;

fn compose(m: &Machine, dir: &Path, args: &[&str]) -> Output {
    m.cmd()
        .arg("compose")
        .args(args)
        .current_dir(dir)
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_PROFILES")
        .output()
        .unwrap()
}

fn compose_ok(m: &Machine, dir: &Path, args: &[&str]) -> String {
    let out = compose(m, dir, args);
    assert!(
        out.status.success(),
        "compose {args:?}: {}",
        common::log(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn up_ps_exec_down() {
    let m = Machine::new();
    common::import_busybox(m.cmd(), "busybox");
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("cproj");
    common::write_files(
        &project,
        &[
            (
                "app/Dockerfile",
                "FROM busybox\nCOPY msg /msg\nCMD [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 300 & wait\"]\n",
            ),
            ("app/msg", "built here\n"),
            (
                "compose.yaml",
                "services:\n  app:\n    build: ./app\n    volumes:\n      - data:/data\n    environment:\n      GREETING: hi\n  side:\n    image: busybox\n    depends_on: [app]\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 300 & wait\"]\nvolumes:\n  data:\n",
            ),
        ],
    );
    let up = compose(&m, &project, &["up", "-d"]);
    assert!(up.status.success(), "{}", common::log(&up));
    let log = common::log(&up);
    assert!(log.contains("Container cproj-app-1  Started"), "{log}");

    let ps = compose_ok(&m, &project, &["ps"]);
    assert!(ps.starts_with("NAME"), "{ps}");
    assert!(
        ps.contains("cproj-app-1") && ps.contains("cproj-side-1"),
        "{ps}"
    );
    assert!(m.ok(&["network", "ls"]).contains("cproj_default"));
    assert!(m.ok(&["volume", "ls"]).contains("cproj_data"));

    let msg = compose_ok(&m, &project, &["exec", "-T", "app", "cat", "/msg"]);
    assert_eq!(msg, "built here\n");
    let env = compose_ok(
        &m,
        &project,
        &["exec", "-T", "app", "sh", "-c", "echo $GREETING"],
    );
    assert_eq!(env, "hi\n");
    compose_ok(
        &m,
        &project,
        &["exec", "-T", "app", "sh", "-c", "echo kept >/data/f"],
    );
    // the service name resolves on the project's network
    let ping = compose(&m, &project, &["exec", "-T", "side", "nslookup", "app"]);
    assert!(ping.status.success(), "{}", common::log(&ping));

    // a second up keeps the unchanged containers
    let again = compose(&m, &project, &["up", "-d"]);
    assert!(
        common::log(&again).contains("Container cproj-app-1  Running"),
        "{}",
        common::log(&again)
    );

    compose_ok(&m, &project, &["down", "-v"]);
    assert!(!m.ok(&["ps", "-a"]).contains("cproj-"));
    assert!(!m.ok(&["network", "ls"]).contains("cproj_default"));
    assert!(!m.ok(&["volume", "ls"]).contains("cproj_data"));
}

#[test]
fn a_bad_file_starts_nothing() {
    let m = Machine::new();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("badproj");
    common::write_files(
        &project,
        &[(
            "compose.yaml",
            "services:\n  web:\n    image: busybox\n    ports:\n      - \"80:80:80:80\"\n",
        )],
    );
    let out = compose(&m, &project, &["up", "-d"]);
    assert!(!out.status.success());
    assert!(
        common::log(&out).contains("compose.yaml"),
        "{}",
        common::log(&out)
    );
    assert!(!m.ok(&["ps", "-a"]).contains("badproj"));
    assert!(!m.ok(&["network", "ls"]).contains("badproj"));
}
