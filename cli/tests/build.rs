//! `kiln build` end to end, as root, on a busybox base image imported from
//! Debian's busybox-static: what lands in the image, what the cache reuses
//! and why, and how failures read.

mod common;

use common::{context, log, Kiln};

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn cached_steps(out: &Output) -> Vec<String> {
    let text = log(out);
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[1].ends_with(" CACHED"))
        .map(|w| w[0].split_once(' ').map_or("", |p| p.1).to_string())
        .collect()
}

const APP: &str = "FROM busybox\nARG MODE=dev\nWORKDIR /app\nCOPY a.txt ./\nCOPY b.txt ./\n\
                   RUN cat a.txt > out-a\nRUN cat b.txt > out-b\nRUN echo $MODE > mode\nCMD [\"cat\", \"out-a\", \"out-b\", \"mode\"]\n";

#[test]
fn a_built_image_runs_with_its_files_and_config() {
    let k = Kiln::new();
    let ctx = context(&[("Dockerfile", APP), ("a.txt", "A\n"), ("b.txt", "B\n")]);
    let out = k.build(ctx.path(), &["-t", "app:1"]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(k.run("app:1", &[]), "A\nB\ndev\n");
    assert_eq!(k.run("app:1", &["pwd"]), "/app\n");
}

#[test]
fn the_cache_keys_on_content_not_on_mtimes_and_reruns_only_what_changed() {
    let k = Kiln::new();
    let ctx = context(&[("Dockerfile", APP), ("a.txt", "A\n"), ("b.txt", "B\n")]);
    assert!(k.build(ctx.path(), &["-t", "app:1"]).status.success());

    // Touching a file keeps every step.
    let f = std::fs::File::options()
        .write(true)
        .open(ctx.path().join("a.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    let out = k.build(ctx.path(), &["-t", "app:1"]);
    assert_eq!(cached_steps(&out).len(), 6, "{}", log(&out));

    // Changing b.txt reruns its COPY and what follows, and nothing before it.
    std::fs::write(ctx.path().join("b.txt"), "B2\n").unwrap();
    let out = k.build(ctx.path(), &["-t", "app:1"]);
    let cached = cached_steps(&out);
    assert_eq!(
        cached,
        ["[3/9] WORKDIR /app", "[4/9] COPY a.txt ./"],
        "{}",
        log(&out)
    );
    assert_eq!(k.run("app:1", &[]), "A\nB2\ndev\n");
}

#[test]
fn a_build_arg_invalidates_only_the_steps_that_see_it() {
    let k = Kiln::new();
    let df = "FROM busybox\nRUN echo base > /base\nARG V=1\nRUN echo $V > /v\nRUN cat /v\n";
    let ctx = context(&[("Dockerfile", df)]);
    assert!(k.build(ctx.path(), &["-t", "arg:1"]).status.success());
    let out = k.build(ctx.path(), &["-t", "arg:1", "--build-arg", "V=2"]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(
        cached_steps(&out),
        ["[2/5] RUN echo base > /base"],
        "{}",
        log(&out)
    );
    assert_eq!(k.run("arg:1", &["cat", "/v"]), "2\n");
}

#[test]
fn a_rebuild_from_cache_gives_the_same_image_id() {
    let k = Kiln::new();
    let ctx = context(&[("Dockerfile", APP), ("a.txt", "A\n"), ("b.txt", "B\n")]);
    let id = |k: &Kiln| {
        let out = k.build(ctx.path(), &["-q", "-t", "app:1"]);
        assert!(out.status.success(), "{}", log(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let first = id(&k);
    assert!(first.starts_with("sha256:"));
    assert_eq!(id(&k), first);
}

#[test]
fn dockerignore_keeps_files_out_of_the_image() {
    let k = Kiln::new();
    let ctx = context(&[
        ("Dockerfile", "FROM busybox\nCOPY . /c/\n"),
        ("keep.txt", "k"),
        ("secret.txt", "s"),
        (".dockerignore", "secret.txt\n"),
    ]);
    assert!(k.build(ctx.path(), &["-t", "ign:1"]).status.success());
    let listing = k.run("ign:1", &["ls", "/c"]);
    assert!(listing.contains("keep.txt"), "{listing}");
    assert!(!listing.contains("secret.txt"), "{listing}");
}

#[test]
fn secrets_reach_run_but_never_a_layer_or_the_store() {
    let k = Kiln::new();
    let secret = "kiln-test-secret-93b1e";
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=secret,id=tok grep -q kiln-test /run/secrets/tok && echo used > /used\n",
        ),
        ("tok.txt", secret),
    ]);
    let src = format!("id=tok,src={}", ctx.path().join("tok.txt").display());
    let out = k.build(ctx.path(), &["-t", "sec:1", "--secret", &src]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(k.run("sec:1", &["cat", "/used"]), "used\n");
    let grep = Command::new("grep")
        .args(["-rqa", secret])
        .arg(k.root.path())
        .status()
        .unwrap();
    assert!(!grep.success(), "the secret is somewhere under --root");
}

#[test]
fn a_cache_mount_with_from_starts_with_that_stages_files() {
    let k = Kiln::new();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox AS seed\nRUN mkdir -p /seed/sub && echo seeded > /seed/sub/s\n\
         FROM busybox\nRUN --mount=type=cache,target=/c,from=seed,source=/seed cat /c/sub/s > /out && echo more > /c/added\n\
         RUN --mount=type=cache,target=/c,from=seed,source=/seed ls /c > /listing\n",
    )]);
    let out = k.build(ctx.path(), &["-t", "seeded:1"]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(k.run("seeded:1", &["cat", "/out"]), "seeded\n");
    // The second step finds the same cache, with what the first one added.
    assert_eq!(k.run("seeded:1", &["cat", "/listing"]), "added\nsub\n");
}

#[test]
fn a_failing_step_names_its_line_command_exit_code_and_output() {
    let k = Kiln::new();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo before\nRUN echo failing-now; exit 3\n",
    )]);
    let out = k.build(ctx.path(), &["-t", "fail:1"]);
    assert_eq!(out.status.code(), Some(1));
    let text = log(&out);
    assert!(text.contains("exit code: 3"), "{text}");
    assert!(text.contains("failing-now"), "{text}");
    assert!(text.contains("Dockerfile:3"), "{text}");
    let images = k.cmd().arg("images").output().unwrap();
    assert!(!String::from_utf8_lossy(&images.stdout).contains("fail"));
}

#[test]
fn only_the_target_and_what_it_needs_are_built() {
    let k = Kiln::new();
    let df = "FROM busybox AS a\nRUN echo a > /a\nFROM busybox AS broken\nRUN exit 1\nFROM a\nCMD [\"cat\", \"/a\"]\n";
    let ctx = context(&[("Dockerfile", df)]);
    let out = k.build(ctx.path(), &["-t", "t:1"]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(k.run("t:1", &[]), "a\n");
    let out = k.build(ctx.path(), &["--target", "broken"]);
    assert!(!out.status.success());
}

#[test]
fn no_mount_or_rootfs_is_left_after_builds() {
    let k = Kiln::new();
    let ctx = context(&[
        ("Dockerfile", "FROM busybox AS s\nRUN echo s > /s\nFROM busybox\nCOPY --from=s /s /\nRUN --mount=type=bind,from=s,target=/m,rw echo x > /m/y\n"),
    ]);
    assert!(k.build(ctx.path(), &["-t", "m:1"]).status.success());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(&k.root.path().display().to_string()),
        "{mounts}"
    );
    let check = k.cmd().args(["system", "check"]).output().unwrap();
    assert!(check.status.success(), "{}", log(&check));
}

#[test]
fn explain_cache_says_which_file_arg_or_parent_changed() {
    let k = Kiln::new();
    let df = "FROM busybox\nARG V=1\nCOPY data.txt /d\nRUN echo $V > /v\n";
    let ctx = context(&[("Dockerfile", df), ("data.txt", "one")]);
    let explain = |args: &[&str]| {
        let mut all = vec!["--explain-cache"];
        all.extend_from_slice(args);
        let out = k.build(ctx.path(), &all);
        assert!(out.status.success(), "{}", log(&out));
        String::from_utf8(out.stderr).unwrap()
    };
    let first = explain(&[]);
    assert!(
        first.contains("[3/4] COPY data.txt /d: cache miss: no earlier build of this step"),
        "{first}"
    );
    std::fs::write(ctx.path().join("data.txt"), "two").unwrap();
    let second = explain(&[]);
    assert!(
        second.contains("[3/4] COPY data.txt /d: cache miss: context files changed: data.txt"),
        "{second}"
    );
    assert!(
        second.contains("[4/4] RUN echo $V > /v: cache miss: the step before it changed"),
        "{second}"
    );
    let third = explain(&["--build-arg", "V=2"]);
    assert!(!third.contains("COPY data.txt /d: cache miss"), "{third}");
    assert!(third.contains("[4/4] RUN echo $V > /v: cache miss: the instruction changed: exec.env[1] \"V=1\" -> \"V=2\""), "{third}");
}

#[test]
fn concurrent_builds_on_one_root_succeed_and_share_the_cache() {
    let k = Kiln::new();
    let one = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo shared > /s\nRUN echo one > /one\n",
    )]);
    let two = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo shared > /s\nRUN echo two > /two\n",
    )]);
    let spawn = |ctx: &Path, tag: &str| {
        k.cmd()
            .args(["build", "--progress=plain", "--network", "none", "-t", tag])
            .arg(ctx)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(one.path(), "one:1"), spawn(two.path(), "two:1"));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", log(&out));
    }
    assert_eq!(k.run("one:1", &["cat", "/s", "/one"]), "shared\none\n");
    assert_eq!(k.run("two:1", &["cat", "/s", "/two"]), "shared\ntwo\n");
    // Whichever build wrote the shared step, a third build reuses it.
    let three = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo shared > /s\nRUN echo three > /t\n",
    )]);
    let out = k.build(three.path(), &["-t", "three:1"]);
    assert_eq!(
        cached_steps(&out),
        ["[2/3] RUN echo shared > /s"],
        "{}",
        log(&out)
    );
    let check = k.cmd().args(["system", "check"]).output().unwrap();
    assert!(check.status.success(), "{}", log(&check));
}

/// 80 layers: the overlay's lower dirs no longer fit in one page of mount options, which once
/// failed with ENOENT at about 40. RUN, COPY from the deep stage, and `kiln run` all stack them.
#[test]
fn an_image_with_80_layers_builds_copies_and_runs() {
    let k = Kiln::new();
    let mut df = String::from("FROM busybox AS deep\n");
    for i in 0..80 {
        df.push_str(&format!("RUN echo {i} > /f{i}\n"));
    }
    df.push_str("RUN cat /f0 /f79 > /ends\n");
    df.push_str("FROM busybox\nCOPY --from=deep /ends /f40 /\n");
    let ctx = context(&[("Dockerfile", &df)]);
    let out = k.build(ctx.path(), &["--target", "deep", "-t", "deep:1"]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(k.run("deep:1", &["cat", "/ends"]), "0\n79\n");
    let out = k.build(ctx.path(), &["-t", "shallow:1"]);
    assert!(out.status.success(), "{}", log(&out));
    assert_eq!(k.run("shallow:1", &["cat", "/ends", "/f40"]), "0\n79\n40\n");
}
