//! Containers through the Engine API: `kiln system service` on a temp socket and root,
//! driven by the real docker CLI 28 (/usr/local/bin/docker) and by raw HTTP. Skipped (with a
//! note) when that CLI is not installed.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::service::{Service, DOCKER};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn docker_run_streams_exit_codes_stdin_and_removal() {
    let Some(svc) = Service::start_for(DOCKER) else {
        return;
    };
    let o = svc.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert_eq!(out(&o), "to-out\n");
    assert_eq!(err(&o), "to-err\n");
    // stdin through the hijacked connection, its end the program's end of input
    let mut child = svc
        .docker()
        .args(["run", "-i", "--rm", "busybox", "wc", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&vec![b'x'; 300_000])
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(out(&o).trim(), "300000");
    // a program that is not there: docker's 127
    let o = svc.run(&["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(o.status.code(), Some(127), "{o:?}");
    assert!(err(&o).contains("executable file not found"), "{o:?}");
    // a missing image: the create's 404 is what makes the CLI try a pull
    let o = svc.run(&["create", "acc/nosuch:1"]);
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    assert!(err(&o).contains("Unable to find image"), "{o:?}");
    // --rm left nothing
    let o = svc.run(&["ps", "-a", "-q"]);
    assert_eq!(out(&o), "", "{o:?}");
    assert_eq!(
        svc.kiln
            .cmd()
            .args(["ps", "-a", "-q"])
            .output()
            .unwrap()
            .stdout,
        b""
    );
}

#[test]
fn detached_container_lifecycle_through_the_api() {
    let Some(svc) = Service::start_for(DOCKER) else {
        return;
    };
    let o = svc.run(&[
        "run",
        "-d",
        "--name",
        "web",
        "-l",
        "role=web",
        "busybox",
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; echo started; echo warn >&2; while true; do sleep 0.1; done",
    ]);
    assert!(o.status.success(), "{o:?}");
    let id = out(&o).trim().to_string();
    assert_eq!(id.len(), 64, "{o:?}");
    // the name is taken: 125 and the first keeps running
    let o = svc.run(&["run", "-d", "--name", "web", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(err(&o).contains("\"/web\" is already in use"), "{o:?}");
    let o = svc.run(&[
        "ps",
        "--filter",
        "label=role=web",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    assert!(out(&o).starts_with("web Up"), "{o:?}");
    let o = svc.run(&["ps", "--filter", "label=role=db", "-q"]);
    assert_eq!(out(&o), "", "{o:?}");
    // a running container is not removed without -f
    let o = svc.run(&["rm", "web"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    // exec, with input and an exit code
    let o = svc.run(&["exec", "web", "echo", "in-ok"]);
    assert_eq!(out(&o), "in-ok\n", "{o:?}");
    let mut child = svc
        .docker()
        .args(["exec", "-i", "web", "sh", "-c", "cat; exit 6"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!((o.status.code(), out(&o).as_str()), (Some(6), "piped\n"));
    // logs keep the streams apart; the kiln CLI sees the same container
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let o = svc.run(&["logs", "web"]);
        if out(&o) == "started\n" && err(&o) == "warn\n" {
            break;
        }
        assert!(Instant::now() < deadline, "{o:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = svc.kiln.cmd().args(["logs", "web"]).output().unwrap();
    assert_eq!(out(&o), "started\n");
    let o = svc.run(&[
        "inspect",
        "-f",
        "{{.State.Running}} {{.Name}} {{.Config.Image}} {{.Id}}",
        "web",
    ]);
    assert_eq!(out(&o), format!("true /web busybox {id}\n"), "{o:?}");
    // stop: the TERM trap runs, the exit is 0, and wait of a stopped one answers at once
    let t0 = Instant::now();
    let o = svc.run(&["stop", "web"]);
    assert_eq!(out(&o), "web\n", "{o:?}");
    assert!(t0.elapsed() < Duration::from_secs(8));
    let o = svc.run(&[
        "inspect",
        "-f",
        "{{.State.Running}} {{.State.ExitCode}}",
        "web",
    ]);
    assert_eq!(out(&o), "false 0\n", "{o:?}");
    let o = svc.run(&["wait", "web"]);
    assert_eq!(out(&o), "0\n", "{o:?}");
    let o = svc.run(&["logs", "--tail", "1", "web"]);
    assert_eq!(out(&o), "bye\n", "{o:?}");
    // start again: the same container, its output appended
    let o = svc.run(&["start", "web"]);
    assert!(o.status.success(), "{o:?}");
    let o = svc.run(&["rm", "-f", "web"]);
    assert!(o.status.success(), "{o:?}");
    let (status, body) = svc.http("GET", "/v1.41/containers/web/json", "");
    assert!(status.contains(" 404 "), "{status} {body}");
    assert!(body.contains("No such container: web"), "{body}");
}

#[test]
fn wait_answers_headers_first_and_the_code_at_exit() {
    let Some(svc) = Service::start_for(DOCKER) else {
        return;
    };
    let (status, body) = svc.http(
        "POST",
        "/v1.41/containers/create?name=ww",
        r#"{"Image":"busybox","Cmd":["sh","-c","sleep 1; exit 5"]}"#,
    );
    assert!(status.contains(" 201 "), "{status} {body}");
    // The wait's headers come before the start, as `docker run` needs.
    let mut wait = UnixStream::connect(&svc.socket).unwrap();
    write!(
        wait,
        "POST /v1.41/containers/ww/wait?condition=next-exit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    wait.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let (status, _) = svc.http("POST", "/v1.41/containers/ww/start", "");
    assert!(status.contains(" 204 "), "{status}");
    let (status, _) = svc.http("POST", "/v1.41/containers/ww/start", "");
    assert!(status.contains(" 304 "), "{status}");
    let mut rest = String::new();
    wait.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while !rest.contains("StatusCode") {
        let n = wait.read(&mut buf).unwrap();
        assert!(n > 0, "{rest}");
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(rest.contains(r#"{"Error":null,"StatusCode":5}"#), "{rest}");
    let (status, body) = svc.http("POST", "/v1.41/containers/ww/kill", "");
    assert!(status.contains(" 409 "), "{status} {body}");
    let (status, body) = svc.http(
        "POST",
        "/v1.41/containers/create",
        r#"{"Image":"busybox","HostConfig":{"NetworkMode":"nosuch"}}"#,
    );
    assert!(status.contains(" 400 "), "{status} {body}");
    let (_, body) = svc.http("POST", "/v1.41/containers/prune", "");
    assert!(body.contains("ContainersDeleted"), "{body}");
    let (_, body) = svc.http("GET", "/v1.41/containers/json?all=1", "");
    assert_eq!(body.trim(), "[]");
}

#[test]
fn docker_build_takes_a_dockerfile_from_outside_the_context() {
    let Some(svc) = Service::start_for(DOCKER) else {
        return;
    };
    // The CLI adds such a Dockerfile to the context's tar and sends the tar unterminated.
    let ctx = common::context(&[("f.txt", "from-ctx\n")]);
    let df = common::context(&[(
        "Dockerfile",
        "FROM busybox\nCOPY f.txt /f\nCMD [\"cat\", \"/f\"]\n",
    )]);
    let o = svc.run(&[
        "build",
        "-q",
        "-t",
        "outside:1",
        "-f",
        &df.path().join("Dockerfile").display().to_string(),
        &ctx.path().display().to_string(),
    ]);
    assert!(o.status.success(), "{o:?}");
    let o = svc.run(&["run", "--rm", "outside:1"]);
    assert_eq!(out(&o), "from-ctx\n", "{o:?}");
}
