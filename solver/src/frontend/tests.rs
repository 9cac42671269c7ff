//! The front end against small Dockerfiles, checked vertex by vertex.

use std::collections::{BTreeMap, HashMap};

use super::*;
use crate::op::{ExecOp, FileAction, MountKind, Op};

fn busybox() -> ImageConfig {
    serde_json::from_str(
        r#"{"architecture":"amd64","os":"linux",
            "config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},
            "history":[{"created_by":"base"}]}"#,
    )
    .unwrap()
}

fn build_with(text: &str, opts: BuildOptions) -> Result<Build, FrontendError> {
    let df = kiln_parser::parse(text, "Dockerfile").expect("test Dockerfiles parse");
    let plan = plan(&df, &opts)?;
    let images: HashMap<String, ResolvedImage> = plan
        .images()
        .iter()
        .map(|r| {
            let mut config = busybox();
            if r.contains("onbuild") {
                config.config.on_build = Some(vec!["RUN echo triggered".into()]);
            }
            (
                r.clone(),
                ResolvedImage {
                    reference: format!("docker.io/library/{r}"),
                    digest: format!("sha256:{:064x}", r.len()),
                    config,
                },
            )
        })
        .collect();
    plan.convert(&images)
}

fn build(text: &str) -> Build {
    build_with(text, BuildOptions::default()).unwrap()
}

fn execs(b: &Build) -> Vec<&ExecOp> {
    b.graph
        .needed_by(b.target)
        .into_iter()
        .filter_map(|id| match &b.graph.vertex(id).op {
            Op::Exec(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn a_simple_dockerfile_becomes_a_chain_of_vertices() {
    let b = build(
        "FROM busybox\nENV APP_HOME=/app GREETING=hello\nWORKDIR $APP_HOME\nCOPY src/ ./src/\n\
         RUN echo $GREETING > out\nCMD [\"cat\", \"out\"]\n",
    );
    let names: Vec<String> = b
        .graph
        .needed_by(b.target)
        .into_iter()
        .map(|id| b.graph.vertex(id).name.clone())
        .collect();
    assert_eq!(
        names,
        [
            "[1/6] FROM docker.io/library/busybox@sha256:0000000000000000000000000000000000000000000000000000000000000007",
            "[3/6] WORKDIR $APP_HOME",
            "[internal] load build context",
            "[4/6] COPY src/ ./src/",
            "[5/6] RUN echo $GREETING > out",
        ]
    );
    let run = execs(&b)[0];
    assert_eq!(run.args, ["/bin/sh", "-c", "echo $GREETING > out"]);
    assert_eq!(run.cwd, "/app");
    assert!(run.env.contains(&"GREETING=hello".to_string()));
    let copy = b
        .graph
        .iter()
        .find_map(|(_, v)| match &v.op {
            Op::File(f) => match &f.actions[0] {
                FileAction::Copy(c) => Some(c.clone()),
                _ => None,
            },
            _ => None,
        })
        .unwrap();
    assert_eq!(copy.sources, ["src/"]);
    assert_eq!(copy.dest, "/app/src/");
    let c = &b.config.config;
    assert_eq!(c.working_dir.as_deref(), Some("/app"));
    assert_eq!(
        c.cmd.as_deref(),
        Some(&["cat".to_string(), "out".into()][..])
    );
    assert_eq!(c.env_value("APP_HOME"), Some("/app"));
    let history: Vec<(&str, bool)> = b
        .config
        .history
        .iter()
        .map(|h| (h.created_by.as_deref().unwrap(), h.empty_layer))
        .collect();
    assert_eq!(
        history,
        [
            ("base", false),
            ("ENV APP_HOME=/app GREETING=hello", true),
            ("WORKDIR /app", false),
            ("COPY src/ ./src/ # buildkit", false),
            ("RUN /bin/sh -c echo $GREETING > out # buildkit", false),
            ("CMD [\"cat\" \"out\"]", true),
        ]
    );
}

#[test]
fn only_the_stages_the_target_needs_are_built() {
    let text = "FROM alpine AS unused\nRUN exit 1\nFROM busybox AS w1\nRUN echo 1 > /1\n\
                FROM busybox AS w2\nRUN echo 2 > /2\nFROM busybox\nCOPY --from=w1 /1 /\nCOPY --from=1 /x /\n";
    let df = kiln_parser::parse(text, "Dockerfile").unwrap();
    let p = plan(&df, &BuildOptions::default()).unwrap();
    assert_eq!(p.images(), ["busybox"]);
    assert!(!p.needs(0) && !p.needs(2));
    let b = build(text);
    let runs: Vec<_> = execs(&b).iter().map(|e| e.args[2].clone()).collect();
    assert_eq!(runs, ["echo 1 > /1"]);

    let opts = BuildOptions {
        target: Some("W2".into()),
        ..Default::default()
    };
    let b = build_with(text, opts).unwrap();
    assert_eq!(execs(&b)[0].args[2], "echo 2 > /2");
}

#[test]
fn unknown_target_is_an_error_naming_the_stages() {
    let opts = BuildOptions {
        target: Some("nope".into()),
        ..Default::default()
    };
    let err = build_with("FROM busybox AS a\nFROM busybox AS b\n", opts).unwrap_err();
    assert!(err.message.contains("\"nope\""), "{}", err.message);
    assert!(err.message.contains("a, b"), "{}", err.message);
}

#[test]
fn arg_scoping_follows_buildkit() {
    let text = "ARG BASE=busybox\nARG V=global\nFROM ${BASE}\nARG V\nARG W=w-$V\nRUN echo $V $W\n";
    let b = build(text);
    let env = &execs(&b)[0].env;
    assert!(env.contains(&"V=global".to_string()), "{env:?}");
    assert!(env.contains(&"W=w-global".to_string()), "{env:?}");
    assert_eq!(
        b.config.history.last().unwrap().created_by.as_deref(),
        Some("RUN |2 V=global W=w-global /bin/sh -c echo $V $W # buildkit")
    );
    // ARGs are for the build: the image's Env does not get them.
    assert_eq!(b.config.config.env_value("V"), None);

    let opts = BuildOptions {
        build_args: BTreeMap::from([("V".into(), "cli".into()), ("X".into(), "1".into())]),
        ..Default::default()
    };
    let b = build_with(text, opts).unwrap();
    assert!(execs(&b)[0].env.contains(&"W=w-cli".to_string()));
    assert_eq!(b.unused_build_args, ["X"]);
}

#[test]
fn an_arg_not_redeclared_in_the_stage_is_not_visible() {
    let b = build("ARG V=global\nFROM busybox\nRUN echo $V\n");
    assert!(!execs(&b)[0].env.iter().any(|e| e.starts_with("V=")));
}

#[test]
fn env_pairs_of_one_instruction_expand_with_the_values_from_before_it() {
    let b = build("FROM busybox\nENV A=old\nENV A=new B=$A\nLABEL l=$B\nRUN true\n");
    let c = &b.config.config;
    assert_eq!(c.env_value("A"), Some("new"));
    assert_eq!(c.env_value("B"), Some("old"));
    assert_eq!(c.labels.as_ref().unwrap()["l"], "old");
    assert!(execs(&b)[0].env.contains(&"B=old".to_string()));
}

#[test]
fn entrypoint_clears_the_base_cmd_and_shell_changes_shell_form() {
    let b = build("FROM busybox\nSHELL [\"/bin/ash\", \"-eo\", \"pipefail\", \"-c\"]\nENTRYPOINT top -b\nRUN true\n");
    let c = &b.config.config;
    assert_eq!(c.cmd, None);
    assert_eq!(
        c.entrypoint.as_deref().unwrap(),
        ["/bin/ash", "-eo", "pipefail", "-c", "top -b"]
    );
    assert_eq!(execs(&b)[0].args[0], "/bin/ash");
}

#[test]
fn from_a_stage_inherits_its_filesystem_config_and_env() {
    let b =
        build("FROM busybox AS base\nENV A=1\nARG B=2\nRUN touch /a\nFROM base\nRUN echo $A $B\n");
    let runs = execs(&b);
    assert_eq!(runs.len(), 2);
    assert!(runs[1].env.contains(&"A=1".to_string()));
    assert!(runs[1].env.contains(&"B=2".to_string()));
    assert_eq!(b.config.config.env_value("A"), Some("1"));
}

#[test]
fn copy_from_an_image_and_run_mounts_become_inputs() {
    let b = build(
        "FROM busybox\nCOPY --from=alpine:3 /etc/os-release /\n\
         RUN --mount=type=cache,target=/root/.cache --mount=type=bind,target=/src \
             --mount=type=secret,id=tok --mount=type=tmpfs,target=/tmp make\n",
    );
    let run = execs(&b)[0];
    let kinds: Vec<String> = run
        .mounts
        .iter()
        .map(|m| match &m.kind {
            MountKind::Cache { id, .. } => format!("cache {id} {}", m.target),
            MountKind::Bind {
                input, readonly, ..
            } => format!("bind {input} ro={readonly} {}", m.target),
            MountKind::Secret { id, mode, .. } => format!("secret {id} {mode:o} {}", m.target),
            MountKind::Tmpfs { .. } => format!("tmpfs {}", m.target),
            MountKind::Ssh { .. } => "ssh".into(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "cache /root/.cache /root/.cache",
            "bind 1 ro=true /src",
            "secret tok 400 /run/secrets/tok",
            "tmpfs /tmp"
        ]
    );
    let images = b
        .graph
        .iter()
        .filter(|(_, v)| matches!(v.op, Op::Source(SourceOp::Image { .. })))
        .count();
    assert_eq!(images, 2);
}

#[test]
fn onbuild_triggers_of_the_base_run_first_and_are_not_inherited() {
    let b = build("FROM onbuild-base\nRUN echo mine\n");
    let runs: Vec<_> = execs(&b).iter().map(|e| e.args[2].clone()).collect();
    assert_eq!(runs, ["echo triggered", "echo mine"]);
    assert_eq!(b.config.config.on_build, None);
}

#[test]
fn heredocs_run_as_scripts_or_shell_text() {
    let b = build("FROM busybox\nRUN <<EOF\necho one\necho two\nEOF\nRUN <<EOF\n#!/bin/sh -e\necho script\nEOF\n");
    let runs = execs(&b);
    assert_eq!(runs[0].args, ["/bin/sh", "-c", "echo one\necho two\n"]);
    assert_eq!(runs[1].args, ["/dev/pipes/EOF"]);
    assert!(matches!(runs[1].mounts[0].kind, MountKind::Bind { .. }));
}

/// The file actions of the vertices the target needs, in graph order.
fn file_actions(b: &Build) -> Vec<(usize, FileAction)> {
    b.graph
        .needed_by(b.target)
        .into_iter()
        .filter_map(|id| match &b.graph.vertex(id).op {
            Op::File(f) => Some((b.graph.vertex(id).inputs.len(), f.actions.clone())),
            _ => None,
        })
        .flat_map(|(n, acts)| acts.into_iter().map(move |a| (n, a)))
        .collect()
}

#[test]
fn copy_heredoc_is_a_file_in_scratch_copied_to_the_destination() {
    let b = build(
        "FROM busybox\nARG NAME=kiln\nCOPY --chown=1:2 --chmod=0755 <<EOF <<two /new/dir/\nhello $NAME\nEOF\nsecond\ntwo\n",
    );
    let actions = file_actions(&b);
    let mkfiles: Vec<_> = actions
        .iter()
        .filter_map(|(_, a)| match a {
            FileAction::Mkfile {
                path, data, mode, ..
            } => Some((
                path.as_str(),
                String::from_utf8_lossy(data).into_owned(),
                *mode,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        mkfiles,
        [
            ("/EOF", "hello kiln\n".into(), 0o644),
            ("/two", "second\n".into(), 0o644)
        ]
    );
    let copies: Vec<_> = actions
        .iter()
        .filter_map(|(inputs, a)| match a {
            FileAction::Copy(c) => Some((*inputs, c)),
            _ => None,
        })
        .collect();
    assert_eq!(copies.len(), 2);
    for ((inputs, c), name) in copies.iter().zip(["EOF", "two"]) {
        // Input 0 is the stage, input 1 the inline documents.
        assert_eq!((*inputs, c.input), (2, 1));
        assert_eq!(c.sources, [name]);
        assert_eq!(c.dest, "/new/dir/");
        assert_eq!(c.mode.as_deref(), Some("0755"));
        assert_eq!(c.owner.as_ref().unwrap().user, "1");
        assert!(!c.unpack_archives);
    }
}

#[test]
fn other_platforms_are_refused_clearly() {
    let err = build_with(
        "FROM --platform=linux/s390x busybox\n",
        BuildOptions::default(),
    )
    .unwrap_err();
    assert!(err.message.contains("host platform"), "{}", err.message);
    assert_eq!(err.line, 1);
}

#[test]
fn copy_from_with_a_variable_is_refused_at_its_line() {
    for from in ["${STAGE}", "$STAGE", "pre\\$x"] {
        let text =
            format!("ARG STAGE=a\nFROM busybox AS a\nFROM busybox\nCOPY --from={from} /x /y\n");
        let err = build_with(&text, BuildOptions::default()).unwrap_err();
        assert!(
            err.message.contains("not supported for --from"),
            "{from}: {}",
            err.message
        );
        assert_eq!(err.line, 4);
    }
    // A plain name, a stage index and an image reference stay accepted.
    for from in ["a", "0", "alpine:3.20"] {
        let text = format!("FROM busybox AS a\nFROM busybox\nCOPY --from={from} /x /y\n");
        assert!(build_with(&text, BuildOptions::default()).is_ok(), "{from}");
    }
}

#[test]
fn bad_values_point_at_their_line() {
    let err = build_with(
        "FROM busybox\nARG P=80/xyz\nEXPOSE $P\n",
        BuildOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.line, 3);
    assert!(err.message.contains("proto"), "{}", err.message);
    let err = build_with(
        "FROM busybox\nARG M=999\nCOPY --chmod=$M a /\n",
        BuildOptions::default(),
    )
    .unwrap_err();
    assert!(err.message.contains("chmod"), "{}", err.message);
    let err = build_with(
        "FROM busybox\nARG S=SIGNOPE\nSTOPSIGNAL $S\n",
        BuildOptions::default(),
    )
    .unwrap_err();
    assert!(err.message.contains("signal"), "{}", err.message);
}

#[test]
fn no_cache_filter_marks_only_that_stages_steps() {
    let opts = BuildOptions {
        no_cache_filter: vec!["b".into()],
        ..Default::default()
    };
    let b = build_with(
        "FROM busybox AS a\nRUN echo a\nFROM a AS b\nRUN echo b\n",
        opts,
    )
    .unwrap();
    let flags: Vec<(String, bool)> = b
        .graph
        .iter()
        .filter(|(_, v)| matches!(v.op, Op::Exec(_)))
        .map(|(_, v)| (v.name.clone(), v.ignore_cache))
        .collect();
    assert_eq!(
        flags,
        [
            ("[a 2/2] RUN echo a".to_string(), false),
            ("[b 2/2] RUN echo b".to_string(), true)
        ]
    );
}

#[test]
fn every_stage_gets_a_path_as_buildkit_gives_it() {
    let b = build("FROM scratch\nRUN x\n");
    assert_eq!(
        b.config.config.env.as_deref().unwrap(),
        ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    );
    assert!(execs(&b)[0].env[0].starts_with("PATH=/usr/local/sbin"));
    // A base that sets PATH keeps its own.
    let b = build("FROM busybox\n");
    assert_eq!(
        b.config.config.env.as_deref().unwrap(),
        ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    );
}
