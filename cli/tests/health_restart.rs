//! Healthchecks and restart policies end to end, as root, on busybox imported into a fresh
//! root: the state machine as `ps` and `inspect` show it, the image's HEALTHCHECK, a check
//! that hangs, each restart policy, a boot's `kiln start --all`, and the Engine API's
//! `Config.Healthcheck` and `HostConfig.RestartPolicy` from the real docker CLI.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::service::{Service, DOCKER};
use common::Kiln;

/// A root with busybox, whose containers are removed at the end (a failing test must not
/// leave one running).
struct Root {
    kiln: Kiln,
}

impl Drop for Root {
    fn drop(&mut self) {
        let ids = self.run(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.run(&["rm", "-f", id]);
        }
    }
}

impl Root {
    fn new() -> Root {
        Root { kiln: Kiln::new() }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.kiln
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `kiln ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "kiln {args:?}: {}", common::log(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `kiln inspect NAME`'s object.
    fn inspect(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        v[0].clone()
    }

    /// The `ps -a` line of the container named `name`.
    fn ps_line(&self, name: &str) -> String {
        self.ok(&["ps", "-a"])
            .lines()
            .find(|l| l.split_whitespace().last() == Some(name))
            .unwrap_or_default()
            .to_string()
    }

    fn health(&self, name: &str) -> String {
        self.inspect(name)["State"]["Health"]["Status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn status_and_restarts(&self, name: &str) -> (String, u64) {
        let v = self.inspect(name);
        (
            v["State"]["Status"].as_str().unwrap_or("").to_string(),
            v["RestartCount"].as_u64().unwrap_or(99),
        )
    }

    fn events(&self) -> String {
        std::fs::read_to_string(self.kiln.root.path().join("events.log")).unwrap_or_default()
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The state stays `want` for `secs` seconds (nothing restarts it behind our back).
fn stays(r: &Root, name: &str, want: (&str, u64), secs: u64) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        let (s, n) = r.status_and_restarts(name);
        assert_eq!((s.as_str(), n), want, "{name}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_healthcheck_goes_starting_unhealthy_healthy_as_ps_and_inspect_show() {
    let r = Root::new();
    r.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--network",
        "none",
        "--health-cmd",
        "test -f /ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "300",
    ]);
    // Reset before the start returns: docker's `starting`, and ps's `(health: starting)`.
    assert_eq!(r.health("hc"), "starting");
    assert!(
        r.ps_line("hc").contains("(health: starting)"),
        "{}",
        r.ps_line("hc")
    );
    wait_for("unhealthy", Duration::from_secs(20), || {
        r.health("hc") == "unhealthy"
    });
    let v = r.inspect("hc");
    let h = &v["State"]["Health"];
    assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h}");
    let log = h["Log"].as_array().unwrap();
    assert!(!log.is_empty() && log.len() <= 5, "{h}");
    assert_eq!(log.last().unwrap()["ExitCode"], 1, "{h}");
    assert!(
        log.last().unwrap()["Start"]
            .as_str()
            .unwrap()
            .starts_with("20"),
        "{h}"
    );
    assert_eq!(
        v["Config"]["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "test -f /ok"], "Interval": 1_000_000_000u64, "Retries": 2})
    );
    let line = r.ps_line("hc");
    assert!(
        line.contains("Up ") && line.contains("(unhealthy)"),
        "{line}"
    );
    assert!(r.ok(&["ps", "--filter", "health=unhealthy"]).contains("hc"));
    assert!(!r.ok(&["ps", "--filter", "health=healthy"]).contains("hc"));
    r.ok(&["exec", "hc", "touch", "/ok"]);
    wait_for("healthy", Duration::from_secs(20), || {
        r.health("hc") == "healthy"
    });
    let v = r.inspect("hc");
    assert_eq!(v["State"]["Health"]["FailingStreak"], 0);
    let line = r.ps_line("hc");
    assert!(line.contains("(healthy)"), "{line}");
    assert!(r.ok(&["ps", "--filter", "health=healthy"]).contains("hc"));
    let events = r.events();
    assert!(events.contains("health_status: unhealthy"), "{events}");
    assert!(events.contains("health_status: healthy"), "{events}");
    // The state begins again at each start.
    r.ok(&["restart", "-t", "1", "hc"]);
    assert_eq!(r.health("hc"), "starting");
    r.ok(&["stop", "-t", "1", "hc"]);
    let line = r.ps_line("hc");
    assert!(
        line.contains("Exited") && !line.contains("health"),
        "{line}"
    );
}

#[test]
fn the_images_healthcheck_applies_and_no_healthcheck_turns_it_off() {
    let r = Root::new();
    let ctx = common::context(&[(
        "Dockerfile",
        "FROM busybox\nHEALTHCHECK --interval=1s --retries=2 CMD test -e /etc/passwd\nCMD [\"sleep\", \"300\"]\n",
    )]);
    let o = r.kiln.build(ctx.path(), &["-t", "hc/img:1"]);
    assert!(o.status.success(), "{}", common::log(&o));
    r.ok(&[
        "run",
        "-d",
        "--name",
        "img",
        "--network",
        "none",
        "hc/img:1",
    ]);
    wait_for("healthy", Duration::from_secs(20), || {
        r.health("img") == "healthy"
    });
    assert_eq!(
        r.inspect("img")["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -e /etc/passwd"])
    );
    // A flag overrides one field, the image's others stay.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "over",
        "--network",
        "none",
        "--health-retries",
        "5",
        "hc/img:1",
    ]);
    let hc = &r.inspect("over")["Config"]["Healthcheck"];
    assert_eq!(
        (hc["Retries"].as_u64(), hc["Interval"].as_u64()),
        (Some(5), Some(1_000_000_000))
    );
    r.ok(&[
        "run",
        "-d",
        "--name",
        "off",
        "--network",
        "none",
        "--no-healthcheck",
        "hc/img:1",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let v = r.inspect("off");
    assert!(v["State"].get("Health").is_none(), "{v}");
    assert_eq!(
        v["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    let line = r.ps_line("off");
    assert!(line.contains("Up ") && !line.contains("health"), "{line}");
    let e = r.run(&[
        "run",
        "-d",
        "--no-healthcheck",
        "--health-cmd",
        "true",
        "--network",
        "none",
        "busybox",
    ]);
    assert!(!e.status.success());
    assert!(
        String::from_utf8_lossy(&e.stderr)
            .contains("--no-healthcheck conflicts with --health-* options"),
        "{}",
        common::log(&e)
    );
}

#[test]
fn a_hanging_check_is_killed_at_its_timeout() {
    let r = Root::new();
    r.ok(&[
        "run",
        "-d",
        "--name",
        "hang",
        "--network",
        "none",
        "--health-cmd",
        "sleep 100",
        "--health-timeout",
        "500ms",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    wait_for("unhealthy", Duration::from_secs(20), || {
        r.health("hang") == "unhealthy"
    });
    let v = r.inspect("hang");
    let first = &v["State"]["Health"]["Log"][0];
    assert_eq!(first["ExitCode"], -1, "{first}");
    assert_eq!(
        first["Output"], "Health check exceeded timeout (500ms)",
        "{first}"
    );
    // Killed at the timeout: the result came after about 500 ms, not 100 s.
    let nanos = |k: &str| {
        kiln_engine::containers::log::parse_rfc3339_nanos(first[k].as_str().unwrap()).unwrap()
    };
    let took = Duration::from_nanos(nanos("End") - nanos("Start"));
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // No check piles up: at most the one running now is left.
    std::thread::sleep(Duration::from_secs(3));
    let ps = r.ok(&["exec", "hang", "ps", "-o", "args"]);
    assert!(ps.matches("sleep 100").count() <= 1, "{ps}");
}

#[test]
fn on_failure_restarts_up_to_its_count_with_every_runs_output_in_the_log() {
    let r = Root::new();
    r.ok(&[
        "run",
        "-d",
        "--name",
        "rf",
        "--network",
        "none",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo try; exit 3",
    ]);
    wait_for("the last exit", Duration::from_secs(30), || {
        r.status_and_restarts("rf") == ("exited".into(), 2)
    });
    stays(&r, "rf", ("exited", 2), 2);
    let v = r.inspect("rf");
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_eq!(
        v["HostConfig"]["RestartPolicy"],
        serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 2})
    );
    let logs = r.ok(&["logs", "rf"]);
    assert_eq!(logs.lines().filter(|l| *l == "try").count(), 3, "{logs}");
    let dies = r
        .events()
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|e| e["Action"] == "die")
        })
        .count();
    assert_eq!(dies, 3);
    // A success is no failure: no restart.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "ok",
        "--network",
        "none",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ]);
    wait_for("exit", Duration::from_secs(20), || {
        r.status_and_restarts("ok").0 == "exited"
    });
    stays(&r, "ok", ("exited", 0), 1);
    // docker refuses a restart policy with --rm, and bad policies.
    for (flags, want) in [
        (
            vec!["--rm", "--restart", "always"],
            "can't create 'AutoRemove' container with restart policy",
        ),
        (
            vec!["--restart", "always:3"],
            "maximum retry count can only be used with 'on-failure'",
        ),
        (vec!["--restart", "sometimes"], "unknown policy 'sometimes'"),
    ] {
        let mut args = vec!["run", "-d"];
        args.extend(flags);
        args.extend(["busybox", "true"]);
        let o = r.run(&args);
        assert_eq!(o.status.code(), Some(125), "{}", common::log(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(want),
            "{}",
            common::log(&o)
        );
    }
}

#[test]
fn always_comes_back_after_a_death_inside_and_stays_down_after_a_users_stop_or_kill() {
    let r = Root::new();
    r.ok(&[
        "run",
        "-d",
        "--name",
        "ra",
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 1' TERM; echo run; sleep 300 & wait",
    ]);
    wait_for("running", Duration::from_secs(10), || {
        r.status_and_restarts("ra") == ("running".into(), 0)
    });
    r.ok(&[
        "exec",
        "ra",
        "sh",
        "-c",
        "(sleep 1; kill 1) >/dev/null 2>&1 &",
    ]);
    wait_for("the restart", Duration::from_secs(20), || {
        r.status_and_restarts("ra") == ("running".into(), 1)
    });
    // The second run has set its trap (it prints after): the stop's SIGTERM ends it with 1.
    wait_for("the second run", Duration::from_secs(10), || {
        r.ok(&["logs", "ra"])
            .lines()
            .filter(|l| *l == "run")
            .count()
            == 2
    });
    r.ok(&["stop", "ra"]);
    stays(&r, "ra", ("exited", 1), 2);
    assert_eq!(r.inspect("ra")["State"]["ExitCode"], 1);
    // A user's start begins the count again; a user's kill is a stop too.
    r.ok(&["start", "ra"]);
    assert_eq!(r.status_and_restarts("ra"), ("running".into(), 0));
    r.ok(&["kill", "ra"]);
    wait_for("the kill", Duration::from_secs(10), || {
        r.status_and_restarts("ra").0 == "exited"
    });
    stays(&r, "ra", ("exited", 0), 2);
    assert_eq!(r.inspect("ra")["State"]["ExitCode"], 137);
}

#[test]
fn unless_stopped_and_a_boots_start_all_follow_docker() {
    let r = Root::new();
    // A program that fails at once: its restarts are seen waiting (`restarting`).
    r.ok(&[
        "run",
        "-d",
        "--name",
        "us",
        "--network",
        "none",
        "--restart",
        "unless-stopped",
        "busybox",
        "sh",
        "-c",
        "sleep 2; exit 2",
    ]);
    wait_for("a restart", Duration::from_secs(20), || {
        r.status_and_restarts("us").1 >= 1
    });
    r.ok(&["stop", "-t", "1", "us"]);
    stays(&r, "us", ("exited", r.status_and_restarts("us").1), 3);
    r.ok(&[
        "run",
        "-d",
        "--name",
        "al",
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "300",
    ]);
    r.ok(&["stop", "-t", "1", "al"]);
    r.ok(&[
        "create",
        "--name",
        "plain",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    // At boot: `always` starts even after the user's stop; `unless-stopped` does not, and a
    // container without a policy never does.
    let started = r.ok(&["start", "--all"]);
    assert_eq!(
        started.split_whitespace().collect::<Vec<_>>(),
        ["al"],
        "{started}"
    );
    assert_eq!(r.status_and_restarts("al").0, "running");
    assert_eq!(r.status_and_restarts("us").0, "exited");
    assert_eq!(r.status_and_restarts("plain").0, "created");
    // A filter narrows it; one that matches nothing starts nothing.
    r.ok(&["stop", "-t", "1", "al"]);
    assert_eq!(
        r.ok(&["start", "--all", "--filter", "restart-policy=on-failure"]),
        ""
    );
    assert_eq!(
        r.ok(&["ps", "-a", "-q", "--filter", "restart-policy=always"])
            .lines()
            .count(),
        1
    );
}

#[test]
fn the_restarting_state_is_shown_as_docker_shows_it() {
    let r = Root::new();
    // Fails at once, over and over: the back-off grows, and between runs ps says
    // `Restarting (4) ... ago`, inspect `restarting` with the last exit code.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 4",
    ]);
    wait_for("restarting", Duration::from_secs(20), || {
        let v = r.inspect("loop");
        v["State"]["Status"] == "restarting" && v["RestartCount"].as_u64() >= Some(4)
    });
    let v = r.inspect("loop");
    assert_eq!(
        (
            v["State"]["Restarting"].as_bool(),
            v["State"]["Running"].as_bool(),
            v["State"]["ExitCode"].as_i64()
        ),
        (Some(true), Some(true), Some(4)),
        "{v}"
    );
    wait_for("ps", Duration::from_secs(10), || {
        r.ps_line("loop").contains("Restarting (4)")
    });
    let o = r.run(&["exec", "loop", "true"]);
    assert!(!o.status.success());
    // A stop in the back-off ends it without a signal to send.
    r.ok(&["stop", "loop"]);
    let (status, count) = r.status_and_restarts("loop");
    assert_eq!(status, "exited");
    stays(&r, "loop", ("exited", count), 2);
}

#[test]
fn the_api_takes_healthcheck_and_restart_policy_from_the_docker_cli() {
    let Some(svc) = Service::start_for(DOCKER) else {
        return;
    };
    let ok = |args: &[&str]| {
        let o = svc.run(args);
        assert!(o.status.success(), "docker {args:?}: {}", common::log(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    ok(&[
        "run",
        "-d",
        "--name",
        "api-hc",
        "--network",
        "none",
        "--health-cmd",
        "test -f /ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "--restart",
        "on-failure:1",
        "busybox",
        "sh",
        "-c",
        "sleep 4; exit 5",
    ]);
    let inspect = |name: &str| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&ok(&["inspect", name])).unwrap();
        v[0].clone()
    };
    let v = inspect("api-hc");
    assert_eq!(
        v["HostConfig"]["RestartPolicy"],
        serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 1})
    );
    assert_eq!(
        v["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -f /ok"])
    );
    wait_for("unhealthy", Duration::from_secs(20), || {
        inspect("api-hc")["State"]["Health"]["Status"] == "unhealthy"
    });
    let ps = ok(&[
        "ps",
        "--filter",
        "health=unhealthy",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    assert!(
        ps.contains("api-hc Up") && ps.contains("(unhealthy)"),
        "{ps}"
    );
    ok(&["exec", "api-hc", "touch", "/ok"]);
    wait_for("healthy", Duration::from_secs(20), || {
        inspect("api-hc")["State"]["Health"]["Status"] == "healthy"
    });
    wait_for("its one restart and end", Duration::from_secs(30), || {
        let v = inspect("api-hc");
        v["State"]["Status"] == "exited" && v["RestartCount"] == 1
    });
    assert_eq!(inspect("api-hc")["State"]["ExitCode"], 5);
    // The API's own shape: nanoseconds, and the policy by name.
    let body = r#"{"Image":"busybox","Cmd":["sleep","300"],"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000},"HostConfig":{"NetworkMode":"none","RestartPolicy":{"Name":"always"}}}"#;
    let (status, text) = svc.http("POST", "/containers/create?name=api-raw", body);
    assert!(status.contains("201"), "{status} {text}");
    let (status, _) = svc.http("POST", "/containers/api-raw/start", "");
    assert!(status.contains("204"), "{status}");
    wait_for("healthy", Duration::from_secs(20), || {
        inspect("api-raw")["State"]["Health"]["Status"] == "healthy"
    });
    let (_, list) = svc.http(
        "GET",
        "/containers/json?filters=%7B%22health%22%3A%5B%22healthy%22%5D%7D",
        "",
    );
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["Names"][0], "/api-raw", "{list}");
    assert_eq!(list[0]["Health"]["Status"], "healthy", "{list}");
    let bad = r#"{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"always","MaximumRetryCount":2}}}"#;
    let (status, text) = svc.http("POST", "/containers/create", bad);
    assert!(status.contains("400"), "{status} {text}");
    ok(&["rm", "-f", "api-hc", "api-raw"]);
}
