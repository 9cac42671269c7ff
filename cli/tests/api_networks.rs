//! Networks through the Engine API, driven by the real docker CLI 28: `docker network
//! create/ls/inspect/connect/disconnect/rm` and `docker run --network NAME --network-alias`
//! (its `NetworkingConfig.EndpointsConfig`). Skipped (with a note) without that CLI.

mod common;

use std::process::Output;

use common::service::{Service, DOCKER};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(svc: &Service, args: &[&str]) -> String {
    let o = svc.run(args);
    assert!(o.status.success(), "docker {args:?}: {o:?}");
    out(&o)
}

#[test]
fn docker_cli_manages_networks_and_runs_containers_on_them() {
    let Some(svc) = Service::start_for(DOCKER) else {
        return;
    };
    // whatever fails below, no container is left running
    struct Cleanup<'a>(&'a Service);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = self.0.run(&["rm", "-f", "web"]);
            let _ = self.0.run(&["network", "rm", "dnet", "dnet2"]);
        }
    }
    let _cleanup = Cleanup(&svc);
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "hello-api\n").unwrap();
    let vol = format!("{}:/www:ro", www.path().display());
    let id = ok(
        &svc,
        &[
            "network",
            "create",
            "--subnet",
            "10.232.0.0/24",
            "--label",
            "k=v",
            "dnet",
        ],
    );
    assert_eq!(id.trim().len(), 64, "{id}");
    let ls = ok(
        &svc,
        &["network", "ls", "--format", "{{.Name}} {{.Driver}}"],
    );
    assert!(ls.lines().any(|l| l == "dnet bridge"), "{ls}");
    assert!(ls.lines().any(|l| l == "bridge bridge"), "{ls}");
    let filtered = ok(&svc, &["network", "ls", "-q", "--filter", "label=k=v"]);
    assert_eq!(filtered.trim(), &id.trim()[..12]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&svc, &["network", "inspect", "dnet"])).unwrap();
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "10.232.0.0/24");
    assert_eq!(v[0]["Labels"]["k"], "v");
    let dup = svc.run(&["network", "create", "dnet"]);
    assert!(!dup.status.success(), "{dup:?}");

    ok(
        &svc,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "dnet",
            "--network-alias",
            "webby",
            "-v",
            &vol,
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ],
    );
    let get = "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 5 wget -q -O- http://webby/ && exit; sleep 0.3; done";
    let page = ok(
        &svc,
        &[
            "run",
            "--rm",
            "--network",
            "dnet",
            "busybox",
            "sh",
            "-c",
            get,
        ],
    );
    assert_eq!(page, "hello-api\n");
    let ip = ok(
        &svc,
        &[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.dnet.IPAddress}}",
            "web",
        ],
    );
    assert!(ip.trim().starts_with("10.232.0."), "{ip}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&svc, &["network", "inspect", "dnet"])).unwrap();
    let names: Vec<&str> = v[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|c| c["Name"].as_str())
        .collect();
    assert_eq!(names, ["web"]);

    ok(&svc, &["network", "create", "dnet2"]);
    ok(
        &svc,
        &["network", "connect", "--alias", "other", "dnet2", "web"],
    );
    let page = ok(
        &svc,
        &[
            "run",
            "--rm",
            "--network",
            "dnet2",
            "busybox",
            "sh",
            "-c",
            "timeout 5 wget -q -O- http://other/",
        ],
    );
    assert_eq!(page, "hello-api\n");
    ok(&svc, &["network", "disconnect", "dnet2", "web"]);

    let rm = svc.run(&["network", "rm", "dnet"]);
    assert!(!rm.status.success(), "{rm:?}");
    assert!(
        String::from_utf8_lossy(&rm.stderr).contains("has active endpoints"),
        "{rm:?}"
    );
    ok(&svc, &["rm", "-f", "web"]);
    ok(&svc, &["network", "rm", "dnet", "dnet2"]);
    let ls = ok(&svc, &["network", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.lines().any(|l| l.starts_with("dnet")), "{ls}");
}

/// docker-compose 1.29 through the API: its default network (`PROJECT_default`), containers
/// joined with their service names as aliases, one service reaching another by name, and
/// the network gone after `down`.
#[test]
fn compose_1_29_services_reach_each_other_on_the_default_network() {
    let Some(svc) = Service::start_for("/usr/bin/docker-compose") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello-compose\n").unwrap();
    let file = dir.path().join("compose.yml");
    std::fs::write(
        &file,
        format!(
            "version: \"2.4\"\nservices:\n  web:\n    image: busybox:latest\n    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n    volumes: [\"{}:/www:ro\"]\n  client:\n    image: busybox:latest\n    depends_on: [web]\n    command: [\"sh\", \"-c\", \"for i in 1 2 3 4 5 6 7 8 9 10; do timeout 5 wget -q -O- http://web/ && break; sleep 0.3; done; exec sleep 300\"]\n",
            www.display()
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut c = svc.client("/usr/bin/docker-compose");
        c.args(["-p", "cnet", "-f"]).arg(&file).args(args);
        c.output().unwrap()
    };
    struct Down<'a>(&'a dyn Fn(&[&str]) -> Output);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "-t", "1"]);
        }
    }
    let _down = Down(&compose);
    let o = compose(&["up", "-d"]);
    assert!(o.status.success(), "up: {o:?}");
    let nets = svc.kiln.cmd().args(["network", "ls"]).output().unwrap();
    assert!(out(&nets).contains("cnet_default"), "{}", out(&nets));
    let mut logs = String::new();
    for _ in 0..50 {
        logs = out(&compose(&["logs", "--no-color", "client"]));
        if logs.contains("hello-compose") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(logs.contains("hello-compose"), "{logs}");
    let o = compose(&["down", "-t", "1"]);
    assert!(o.status.success(), "down: {o:?}");
    let nets = svc.kiln.cmd().args(["network", "ls"]).output().unwrap();
    assert!(!out(&nets).contains("cnet_default"), "{}", out(&nets));
}
