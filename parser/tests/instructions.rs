//! One test per instruction, written from the Dockerfile reference: what
//! each form means once parsed, and what is rejected.

use kiln_parser::instructions::{Command, Dockerfile, Instruction, MountType, Sharing};
use kiln_parser::{parse, ErrorKind};

fn ok(text: &str) -> Dockerfile {
    parse(text, "Dockerfile").unwrap_or_else(|e| panic!("{e}"))
}

/// The first instruction after FROM.
fn first(text: &str) -> Instruction {
    let df = ok(&format!("FROM busybox\n{text}"));
    df.stages[0].instructions[0].clone()
}

fn err(text: &str) -> String {
    parse(text, "Dockerfile")
        .expect_err("should fail")
        .to_string()
}

fn values(words: &[kiln_parser::Word]) -> Vec<&str> {
    words.iter().map(|w| w.value.as_str()).collect()
}

#[test]
fn from_with_platform_and_stage_name() {
    let df = ok("FROM --platform=linux/arm64 alpine:3.19 AS Build\nFROM build\n");
    let Command::From(f) = &df.stages[0].from.command else {
        panic!()
    };
    assert_eq!(f.image.value, "alpine:3.19");
    assert_eq!(
        f.platform.as_ref().map(|p| p.value.as_str()),
        Some("linux/arm64")
    );
    assert_eq!(f.as_keyword.as_ref().map(|w| w.value.as_str()), Some("AS"));
    assert_eq!(
        df.stages[0].name.as_deref(),
        Some("build"),
        "stage names are lower-cased"
    );
    assert_eq!(df.stages[1].name, None);
    assert!(err("FROM a b\n").contains("FROM requires either one or three arguments"));
    assert!(err("FROM a AS b.c!\n").contains("invalid name for build stage"));
    assert!(err("FROM --platfrom=x a\n")
        .contains("unknown flag: --platfrom (did you mean --platform?)"));
}

#[test]
fn from_keeps_case_of_as_for_linting() {
    let df = ok("FROM a as b\n");
    let Command::From(f) = &df.stages[0].from.command else {
        panic!()
    };
    assert_eq!(f.as_keyword.as_ref().map(|w| w.value.as_str()), Some("as"));
    assert_eq!(df.stages[0].from.keyword, "FROM");
}

#[test]
fn run_shell_and_exec_forms() {
    let Command::Run(r) = first("RUN echo hi && \\\n  echo there\n").command else {
        panic!()
    };
    assert!(!r.cmd_line.exec_form);
    assert_eq!(values(&r.cmd_line.args), ["echo hi &&   echo there"]);
    let Command::Run(r) = first("RUN [\"echo\", \"a b\"]\n").command else {
        panic!()
    };
    assert!(r.cmd_line.exec_form);
    assert_eq!(values(&r.cmd_line.args), ["echo", "a b"]);
    // Not valid JSON: shell form, as Docker does.
    let Command::Run(r) = first("RUN ['echo', 'x']\n").command else {
        panic!()
    };
    assert!(!r.cmd_line.exec_form);
    assert!(err("FROM a\nRUN [\"a\", 1]\n").contains("arrays must be comprised of strings only"));
}

#[test]
fn run_mounts_network_security() {
    let ins = first(
        "RUN --mount=type=cache,target=/c,sharing=private --mount=type=secret,id=s,dst=/s \\\n    --network=none --security=insecure make\n",
    );
    let Command::Run(r) = ins.command else {
        panic!()
    };
    assert_eq!(r.mounts.len(), 2);
    assert_eq!(r.mounts[0].kind, MountType::Cache);
    assert_eq!(r.mounts[0].sharing, Some(Sharing::Private));
    assert_eq!(r.mounts[1].kind, MountType::Secret);
    assert_eq!(r.mounts[1].target.as_deref(), Some("/s"));
    assert!(r.mounts[1].read_only);
    assert_eq!(r.network.map(|w| w.value), Some("none".into()));
    assert_eq!(r.security.map(|w| w.value), Some("insecure".into()));
    // The mount's span points at its flag on line 2.
    assert_eq!(r.mounts[0].span.start.line, 2);
    assert!(err("FROM a\nRUN --network=bridge x\n").contains("invalid network mode \"bridge\""));
    assert!(err("FROM a\nRUN --security=root x\n").contains("security \"root\" is not valid"));
    assert!(err("FROM a\nRUN --mount=type=tmpfs,uid=1 x\n").contains("uid not allowed"));
    assert!(err("FROM a\nRUN --mout=type=bind x\n").contains("did you mean --mount?"));
}

#[test]
fn cmd_and_entrypoint() {
    let Command::Cmd(c) = first("CMD [\"nginx\", \"-g\", \"daemon off;\"]\n").command else {
        panic!()
    };
    assert!(c.exec_form);
    assert_eq!(values(&c.args), ["nginx", "-g", "daemon off;"]);
    let Command::Entrypoint(e) = first("ENTRYPOINT exec top -b\n").command else {
        panic!()
    };
    assert!(!e.exec_form);
    assert_eq!(values(&e.args), ["exec top -b"]);
}

#[test]
fn label_pairs() {
    let Command::Label(l) =
        first("LABEL \"com.example.vendor\"=\"ACME\" version=1.0 \\\n  desc=\"x y\"\n").command
    else {
        panic!()
    };
    let pairs: Vec<_> = l
        .pairs
        .iter()
        .map(|p| (p.key.value.as_str(), p.value.value.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("\"com.example.vendor\"", "\"ACME\""),
            ("version", "1.0"),
            ("desc", "\"x y\"")
        ]
    );
    assert!(err("FROM a\nLABEL a=b c\n").contains("can't find = in \"c\""));
}

#[test]
fn expose_ports() {
    let Command::Expose(e) = first("EXPOSE 80/tcp 80/udp 8000-8100 ${PORT}\n").command else {
        panic!()
    };
    assert_eq!(
        values(&e.ports),
        ["80/tcp", "80/udp", "8000-8100", "${PORT}"]
    );
    assert!(err("FROM a\nEXPOSE\n").contains("EXPOSE requires at least one argument"));
    assert!(err("FROM a\nEXPOSE 70000\n").contains("invalid port specification"));
}

#[test]
fn env_both_forms() {
    let Command::Env(e) = first("ENV MY_NAME=\"John Doe\" MY_DOG=Rex\\ The\\ Dog\n").command else {
        panic!()
    };
    assert_eq!(e.pairs.len(), 2);
    assert_eq!(e.pairs[1].value.value, "Rex\\ The\\ Dog");
    assert!(!e.pairs[0].no_delimiter);
    let Command::Env(e) = first("ENV MY_VAR my value here\n").command else {
        panic!()
    };
    assert_eq!(
        (
            e.pairs[0].key.value.as_str(),
            e.pairs[0].value.value.as_str()
        ),
        ("MY_VAR", "my value here")
    );
    assert!(e.pairs[0].no_delimiter);
    assert!(err("FROM a\nENV =x\n").contains("ENV names can not be blank"));
}

#[test]
fn add_flags_and_sources() {
    let Command::Add(a) = first(
        "ADD --checksum=sha256:abc --keep-git-dir --link --chown=1:2 --chmod=600 --exclude=*.md https://example.com/a.tgz git@git.example.com:foo/bar.git /dst/\n",
    )
    .command
    else {
        panic!()
    };
    assert_eq!(
        values(&a.sources),
        [
            "https://example.com/a.tgz",
            "git@git.example.com:foo/bar.git"
        ]
    );
    assert_eq!(a.dest.value, "/dst/");
    assert_eq!(a.keep_git_dir, Some(true));
    assert!(a.link);
    assert_eq!(a.checksum.map(|w| w.value), Some("sha256:abc".into()));
    assert_eq!(values(&a.excludes), ["*.md"]);
    assert_eq!(a.unpack, None);
    assert!(err("FROM a\nADD --parents a b\n").contains("unknown flag: --parents"));
}

#[test]
fn copy_flags_sources_and_heredocs() {
    let Command::Copy(c) =
        first("COPY --from=build --parents --exclude=a --exclude=b <<EOF x y /dst/\nhello\nEOF\n")
            .command
    else {
        panic!()
    };
    assert_eq!(values(&c.sources), ["x", "y"]);
    assert_eq!(c.heredoc_sources.len(), 1);
    assert_eq!(c.heredoc_sources[0].path, "EOF");
    assert_eq!(c.heredoc_sources[0].data, "hello\n");
    assert!(c.parents);
    assert_eq!(c.from.map(|w| w.value), Some("build".into()));
    assert_eq!(values(&c.excludes), ["a", "b"]);
    assert!(
        err("FROM a\nCOPY --from=x --from=y a b\n").contains("duplicate flag specified: --from")
    );
    assert!(err("FROM a\nCOPY --checksum=x a b\n").contains("unknown flag: --checksum"));
}

#[test]
fn volume_forms() {
    let Command::Volume(v) = first("VOLUME [\"/data\", \"/logs\"]\n").command else {
        panic!()
    };
    assert_eq!(values(&v.paths), ["/data", "/logs"]);
    assert!(v.json);
    let Command::Volume(v) = first("VOLUME /var/log /var/db\n").command else {
        panic!()
    };
    assert_eq!(values(&v.paths), ["/var/log", "/var/db"]);
    assert!(err("FROM a\nVOLUME [\"\"]\n").contains("VOLUME specified can not be an empty string"));
}

#[test]
fn user_workdir_stopsignal_maintainer() {
    let Command::User(u) = first("USER patrick:staff\n").command else {
        panic!()
    };
    assert_eq!(u.value.value, "patrick:staff");
    let Command::Workdir(w) = first("WORKDIR /path/to/workdir\n").command else {
        panic!()
    };
    assert_eq!(w.value.value, "/path/to/workdir");
    let Command::StopSignal(s) = first("STOPSIGNAL SIGKILL\n").command else {
        panic!()
    };
    assert_eq!(s.value.value, "SIGKILL");
    let Command::Maintainer(m) = first("MAINTAINER Someone <a@b.c>\n").command else {
        panic!()
    };
    assert_eq!(m.value.value, "Someone <a@b.c>");
    assert!(err("FROM a\nUSER\n").contains("USER requires exactly one argument"));
    assert!(err("FROM a\nWORKDIR --x=1 /a\n").contains("unknown flag: --x"));
}

#[test]
fn arg_definitions_and_meta_args() {
    let df = ok("ARG BASE=alpine\nARG A B=2 C=\nFROM $BASE\nARG A\n");
    assert_eq!(df.meta_args.len(), 2);
    let Command::Arg(a) = &df.meta_args[1].command else {
        panic!()
    };
    let defs: Vec<_> = a
        .args
        .iter()
        .map(|d| (d.key.as_str(), d.default.as_deref()))
        .collect();
    assert_eq!(defs, [("A", None), ("B", Some("2")), ("C", Some(""))]);
    assert_eq!(df.stages[0].instructions.len(), 1);
    assert!(err("ARG =x\nFROM a\n").contains("ARG names can not be blank"));
    assert!(err("ENV A=1\nFROM a\n").contains("no build stage in current context"));
}

#[test]
fn onbuild_triggers() {
    let Command::Onbuild(o) =
        first("ONBUILD RUN /usr/local/bin/python-build --dir /app/src\n").command
    else {
        panic!()
    };
    assert!(matches!(o.trigger.command, Command::Run(_)));
    assert!(err("FROM a\nONBUILD FROM b\n").contains("FROM isn't allowed as an ONBUILD trigger"));
    assert!(err("FROM a\nONBUILD MAINTAINER x\n").contains("MAINTAINER isn't allowed"));
    assert!(err("FROM a\nONBUILD\n").contains("ONBUILD requires at least one argument"));
    assert!(err("FROM a\nONBUILD COPY --bad=1 a b\n").contains("unknown flag: --bad"));
}

#[test]
fn healthcheck_forms() {
    let Command::Healthcheck(h) =
        first("HEALTHCHECK --interval=5m --timeout=3s --start-period=1m30s --start-interval=500ms --retries=3 CMD curl -f http://localhost/ || exit 1\n")
            .command
    else {
        panic!()
    };
    assert_eq!(h.interval.map(|d| d.nanos), Some(300_000_000_000));
    assert_eq!(h.timeout.map(|d| d.nanos), Some(3_000_000_000));
    assert_eq!(h.start_period.map(|d| d.nanos), Some(90_000_000_000));
    assert_eq!(h.start_interval.map(|d| d.nanos), Some(500_000_000));
    assert_eq!(h.retries, Some(3));
    let test = h.test.expect("CMD");
    assert!(!test.exec_form);
    let Command::Healthcheck(h) = first("HEALTHCHECK NONE\n").command else {
        panic!()
    };
    assert!(h.test.is_none());
    assert!(err("FROM a\nHEALTHCHECK NONE x\n").contains("HEALTHCHECK NONE takes no arguments"));
    assert!(err("FROM a\nHEALTHCHECK --interval=1ns CMD x\n").contains("cannot be less than 1ms"));
    assert!(
        err("FROM a\nHEALTHCHECK --retries=-1 CMD x\n").contains("--retries cannot be negative")
    );
    assert!(err("FROM a\nHEALTHCHECK CMD\n").contains("Missing command after HEALTHCHECK CMD"));
}

#[test]
fn shell_requires_json() {
    let Command::Shell(s) = first("SHELL [\"powershell\", \"-command\"]\n").command else {
        panic!()
    };
    assert_eq!(values(&s.args), ["powershell", "-command"]);
    assert!(err("FROM a\nSHELL powershell\n")
        .contains("SHELL requires the arguments to be in JSON form"));
}

#[test]
fn instructions_are_case_insensitive_and_keep_their_spelling() {
    let df = ok("from a\nrUn echo\nCoPy a b\n");
    assert_eq!(df.stages[0].from.keyword, "from");
    assert_eq!(df.stages[0].instructions[0].keyword, "rUn");
    assert!(matches!(
        df.stages[0].instructions[1].command,
        Command::Copy(_)
    ));
}

#[test]
fn unknown_instruction_suggests_nearest() {
    let e = parse("FROM busybox\nRUN true\nFORM busybox\n", "bad.Dockerfile").unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::UnknownInstruction("FORM".into()));
    assert_eq!((e.line(), e.column()), (3, 1));
    assert_eq!(e.help(), Some("did you mean FROM?"));
    assert!(e
        .to_string()
        .starts_with("bad.Dockerfile:3:1: unknown instruction: FORM"));
    let e = parse("FROM a\nXYZZY b\n", "Dockerfile").unwrap_err();
    assert_eq!(e.help(), None);
}

#[test]
fn spans_point_at_source() {
    let text = "FROM a\n  COPY --chown=1:1 \\\n     src /dst\n";
    let df = ok(text);
    let ins = &df.stages[0].instructions[0];
    assert_eq!((ins.span.start.line, ins.span.start.column), (2, 3));
    assert_eq!(ins.span.end.line, 3);
    assert_eq!(
        &text[ins.keyword_span.start.offset..ins.keyword_span.end.offset],
        "COPY"
    );
    let Command::Copy(c) = &ins.command else {
        panic!()
    };
    assert_eq!(
        &text[c.dest.span.start.offset..c.dest.span.end.offset],
        "/dst"
    );
    assert_eq!(
        &text[c.sources[0].span.start.offset..c.sources[0].span.end.offset],
        "src"
    );
    assert_eq!(
        &text[ins.flags[0].span.start.offset..ins.flags[0].span.end.offset],
        "--chown=1:1"
    );
}

#[test]
fn directives_and_escape() {
    let df = ok("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN dir c:\\ `\n  /s\n");
    assert_eq!(df.escape, '`');
    assert_eq!(df.directives.len(), 2);
    let Command::Run(r) = &df.stages[0].instructions[0].command else {
        panic!()
    };
    assert_eq!(values(&r.cmd_line.args), ["dir c:\\   /s"]);
}

#[test]
fn heredoc_semantics() {
    let Command::Run(r) = first("RUN <<-EOT sh\n\techo a\n\tEOT\n").command else {
        panic!()
    };
    let h = &r.cmd_line.heredocs[0];
    assert!(h.chomp && h.expand);
    assert_eq!(
        h.content, "\techo a\n",
        "RUN keeps tabs; the solver strips them"
    );
    let Command::Run(r) = first("RUN <<'A' <<\"B\"\n$x\nA\n$y\nB\n").command else {
        panic!()
    };
    assert_eq!(r.cmd_line.heredocs.len(), 2);
    assert!(!r.cmd_line.heredocs[0].expand && !r.cmd_line.heredocs[1].expand);
    assert_eq!(r.cmd_line.heredocs[1].content, "$y\n");
}

#[test]
fn repeated_heredoc_names_take_the_last_body_like_buildkit() {
    let Command::Copy(c) = first("COPY <<EOF <<EOF /x/\none\nEOF\ntwo\nEOF\n").command else {
        panic!()
    };
    let data: Vec<_> = c.heredoc_sources.iter().map(|h| h.data.as_str()).collect();
    assert_eq!(data, ["two\n", "two\n"]);
    assert!(err("FROM a\nCOPY\n").contains("COPY requires at least two arguments"));
}
