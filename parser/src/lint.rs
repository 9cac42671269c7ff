//! BuildKit's build checks that can be decided from the Dockerfile's text
//! alone (no base image, no context): the same rule names and messages as
//! `docker build --check`, each with a location.
//!
//! Rules that need the base image (InvalidBaseImagePlatform, UndefinedVar
//! against the image's Env) or the context (CopyIgnoredFile) belong to the
//! build and are not here.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::instructions::{Command, Dockerfile, Instruction};
use crate::shell::{EnvList, Lexer};
use crate::span::Span;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// BuildKit's rule name, e.g. `StageNameCasing`.
    pub rule: &'static str,
    /// What is wrong, in BuildKit's words.
    pub message: String,
    /// Where.
    pub span: Span,
    /// The rule's documentation page.
    pub url: String,
}

/// BuildKit's rule names, for `# check=skip=` and documentation links.
pub const RULES: &[&str] = &[
    "StageNameCasing",
    "FromAsCasing",
    "NoEmptyContinuation",
    "ConsistentInstructionCasing",
    "DuplicateStageName",
    "ReservedStageName",
    "JSONArgsRecommended",
    "MaintainerDeprecated",
    "UndefinedArgInFrom",
    "WorkdirRelativePath",
    "MultipleInstructionsDisallowed",
    "LegacyKeyValueFormat",
    "RedundantTargetPlatform",
    "SecretsUsedInArgOrEnv",
    "InvalidDefaultArgInFrom",
    "FromPlatformFlagConstDisallowed",
    "ExposeProtoCasing",
    "ExposeInvalidFormat",
];

fn url(rule: &str) -> String {
    // StageNameCasing -> stage-name-casing, JSONArgsRecommended -> json-args-recommended.
    let mut out = String::new();
    let chars: Vec<char> = rule.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        let prev_lower = i > 0 && chars[i - 1].is_lowercase();
        if c.is_uppercase() && i > 0 && (prev_lower || next_lower) {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    format!("https://docs.docker.com/go/dockerfile/rule/{out}/")
}

struct Linter {
    findings: Vec<Finding>,
    skip: BTreeSet<String>,
    skip_all: bool,
}

impl Linter {
    fn report(&mut self, rule: &'static str, span: Span, message: String) {
        if self.skip_all || self.skip.contains(rule) {
            return;
        }
        self.findings.push(Finding {
            rule,
            message,
            span,
            url: url(rule),
        });
    }
}

/// Runs every text-only check on `df`, honouring `# check=skip=...`.
pub fn lint(df: &Dockerfile) -> Vec<Finding> {
    let mut l = Linter {
        findings: Vec::new(),
        skip: BTreeSet::new(),
        skip_all: false,
    };
    for d in df.directives.iter().filter(|d| d.name == "check") {
        for part in d.value.split(';') {
            if let Some(list) = part.trim().strip_prefix("skip=") {
                for rule in list.split(',').map(str::trim) {
                    if rule.eq_ignore_ascii_case("all") {
                        l.skip_all = true;
                    }
                    l.skip.insert(rule.to_string());
                }
            }
        }
    }
    for w in &df.warnings {
        if w.message.contains("empty continuation") {
            l.report(
                "NoEmptyContinuation",
                w.span,
                "Empty continuation line found in: the line will be an error in a future release"
                    .into(),
            );
        }
    }

    let all: Vec<&Instruction> = df
        .meta_args
        .iter()
        .chain(
            df.stages
                .iter()
                .flat_map(|s| std::iter::once(&s.from).chain(&s.instructions)),
        )
        .collect();
    casing(&mut l, &all);
    global_args(&mut l, df);

    let mut names: BTreeMap<String, Span> = BTreeMap::new();
    for stage in &df.stages {
        let Command::From(from) = &stage.from.command else {
            continue;
        };
        if let Some(name) = &from.name {
            if name.value.chars().any(|c| c.is_uppercase()) {
                l.report(
                    "StageNameCasing",
                    name.span,
                    format!("Stage name '{}' should be lowercase", name.value),
                );
            }
            let lower = name.value.to_ascii_lowercase();
            if lower == "scratch" || lower == "context" {
                l.report(
                    "ReservedStageName",
                    name.span,
                    format!("Stage name should not use the same name as reserved stage {lower:?}"),
                );
            }
            if names.insert(lower.clone(), name.span).is_some() {
                l.report(
                    "DuplicateStageName",
                    name.span,
                    format!("Duplicate stage name {lower:?}, stage names should be unique"),
                );
            }
        }
        if let Some(as_kw) = &from.as_keyword {
            let from_upper = stage.from.keyword.chars().all(|c| !c.is_lowercase());
            let as_upper = as_kw.value.chars().all(|c| !c.is_lowercase());
            if from_upper != as_upper {
                l.report(
                    "FromAsCasing",
                    as_kw.span,
                    format!(
                        "'{}' and '{}' keywords' casing do not match",
                        as_kw.value, stage.from.keyword
                    ),
                );
            }
        }
        if let Some(p) = &from.platform {
            if p.value.contains("TARGETPLATFORM")
                && p.value.trim_matches(['$', '{', '}']) == "TARGETPLATFORM"
            {
                l.report(
                    "RedundantTargetPlatform",
                    p.span,
                    format!(
                        "Setting platform to predefined {} in FROM is redundant as this is the default behavior",
                        p.value
                    ),
                );
            } else if !p.value.contains('$') {
                l.report(
                    "FromPlatformFlagConstDisallowed",
                    p.span,
                    format!(
                        "FROM --platform flag should not use constant value {:?}",
                        p.value
                    ),
                );
            }
        }
        stage_rules(&mut l, &stage.instructions);
    }
    l.findings.sort_by_key(|f| (f.span.start.offset, f.rule));
    l.findings
}

/// ConsistentInstructionCasing: the minority casing is flagged.
fn casing(l: &mut Linter, all: &[&Instruction]) {
    let upper = all
        .iter()
        .filter(|i| i.keyword.chars().all(|c| !c.is_lowercase()))
        .count();
    let lower = all
        .iter()
        .filter(|i| i.keyword.chars().all(|c| !c.is_uppercase()))
        .count();
    let (want_upper, label) = if upper >= lower {
        (true, "uppercase")
    } else {
        (false, "lowercase")
    };
    for i in all {
        let ok = if want_upper {
            i.keyword.chars().all(|c| !c.is_lowercase())
        } else {
            i.keyword.chars().all(|c| !c.is_uppercase())
        };
        if !ok {
            l.report(
                "ConsistentInstructionCasing",
                i.keyword_span,
                format!(
                    "Command '{}' should match the case of the command majority ({label})",
                    i.keyword
                ),
            );
        }
    }
}

/// UndefinedArgInFrom, InvalidDefaultArgInFrom and secrets in global ARGs.
fn global_args(l: &mut Linter, df: &Dockerfile) {
    let lexer = Lexer::new(df.escape);
    let mut declared: BTreeSet<String> = [
        "TARGETPLATFORM",
        "TARGETOS",
        "TARGETARCH",
        "TARGETVARIANT",
        "BUILDPLATFORM",
        "BUILDOS",
        "BUILDARCH",
        "BUILDVARIANT",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut defaults = EnvList::new();
    for inst in &df.meta_args {
        if let Command::Arg(a) = &inst.command {
            for d in &a.args {
                secret_key(l, "ARG", &d.key, d.span);
                declared.insert(d.key.clone());
                if let Some(v) = &d.default {
                    if let Ok(v) = lexer.process_word(v, &defaults) {
                        defaults.set(&d.key, &v);
                    }
                }
            }
        }
    }
    for stage in &df.stages {
        let Command::From(from) = &stage.from.command else {
            continue;
        };
        let words = std::iter::once(&from.image).chain(from.platform.as_ref());
        for word in words {
            let Ok(expansion) = lexer.process_word_with_matches(&word.value, &defaults) else {
                continue;
            };
            for var in expansion
                .vars
                .unmatched
                .iter()
                .chain(&expansion.vars.matched)
            {
                if !declared.contains(var) {
                    l.report(
                        "UndefinedArgInFrom",
                        word.span,
                        format!("FROM argument '{var}' is not declared"),
                    );
                }
            }
        }
        if from.image.value.contains('$') {
            let image = lexer
                .process_word(&from.image.value, &defaults)
                .unwrap_or_default();
            if image.is_empty()
                || image.starts_with(':')
                || image.starts_with('@')
                || image.ends_with(':')
            {
                l.report(
                    "InvalidDefaultArgInFrom",
                    from.image.span,
                    format!(
                        "Default value for ARG {} results in empty or invalid base image name",
                        from.image.value
                    ),
                );
            }
        }
    }
}

fn secret_key(l: &mut Linter, instruction: &str, key: &str, span: Span) {
    const DENY: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOW: &[&str] = &["public", "file", "version"];
    // BuildKit matches the whole key or its first/last `_`-separated word.
    let lower = key.to_ascii_lowercase();
    let words: Vec<&str> = lower.split('_').collect();
    let edge = |set: &[&str]| {
        set.contains(&lower.as_str())
            || words.first().is_some_and(|w| set.contains(w))
            || words.last().is_some_and(|w| set.contains(w))
            || words.iter().any(|w| set.contains(w))
    };
    if edge(DENY) && !edge(ALLOW) {
        l.report(
            "SecretsUsedInArgOrEnv",
            span,
            format!(
                "Do not use ARG or ENV instructions for sensitive data ({instruction} {key:?})"
            ),
        );
    }
}

fn stage_rules(l: &mut Linter, instructions: &[Instruction]) {
    let mut seen: BTreeMap<&'static str, Vec<Span>> = BTreeMap::new();
    let mut workdir_set = false;
    for inst in instructions {
        match &inst.command {
            Command::Cmd(c) | Command::Entrypoint(c) => {
                seen.entry(inst.command.name()).or_default().push(inst.span);
                if !c.exec_form {
                    l.report(
                        "JSONArgsRecommended",
                        inst.span,
                        format!(
                            "JSON arguments recommended for {} to prevent unintended behavior related to OS signals",
                            inst.command.name()
                        ),
                    );
                }
            }
            Command::Healthcheck(_) => seen.entry("HEALTHCHECK").or_default().push(inst.span),
            Command::Maintainer(_) => l.report(
                "MaintainerDeprecated",
                inst.span,
                "Maintainer instruction is deprecated in favor of using label".into(),
            ),
            Command::Workdir(w) => {
                if !workdir_set
                    && !w.value.value.starts_with('/')
                    && !w.value.value.starts_with('$')
                {
                    l.report(
                        "WorkdirRelativePath",
                        w.value.span,
                        format!(
                            "Relative workdir {:?} can have unexpected results if the base image changes",
                            w.value.value
                        ),
                    );
                }
                workdir_set = true;
            }
            Command::Env(kv) | Command::Label(kv) => {
                let name = inst.command.name();
                for p in &kv.pairs {
                    if p.no_delimiter {
                        l.report(
                            "LegacyKeyValueFormat",
                            inst.span,
                            format!("\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"),
                        );
                    }
                    if name == "ENV" {
                        secret_key(l, "ENV", &p.key.value, p.key.span);
                    }
                }
            }
            Command::Arg(a) => {
                for d in &a.args {
                    secret_key(l, "ARG", &d.key, d.span);
                }
            }
            Command::Expose(e) => {
                for p in &e.ports {
                    if p.value.contains(':') {
                        l.report(
                            "ExposeInvalidFormat",
                            p.span,
                            format!(
                                "EXPOSE instruction should not define an IP address or host-port mapping, found '{}'",
                                p.value
                            ),
                        );
                    }
                    if let Some((_, proto)) = p.value.split_once('/') {
                        if proto.chars().any(|c| c.is_uppercase()) {
                            l.report(
                                "ExposeProtoCasing",
                                p.span,
                                format!("Defined protocol '{}' in EXPOSE instruction should be lowercase", p.value),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for (name, spans) in seen {
        for span in spans.iter().take(spans.len().saturating_sub(1)) {
            l.report(
                "MultipleInstructionsDisallowed",
                *span,
                format!(
                    "Multiple {name} instructions should not be used in the same stage because only the last one will be used"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Vec<(&'static str, usize)> {
        let df = crate::parse(text, "Dockerfile").unwrap();
        lint(&df)
            .into_iter()
            .map(|f| (f.rule, f.span.start.line))
            .collect()
    }

    #[test]
    fn a_clean_dockerfile_has_no_findings() {
        assert_eq!(
            rules("ARG BASE=busybox\nFROM ${BASE} AS build\nWORKDIR /app\nENV A=1\nCMD [\"sh\"]\n"),
            []
        );
    }

    #[test]
    fn casing_rules() {
        assert_eq!(
            rules("FROM busybox as Build\nMAINTAINER someone\nCMD echo hi\n"),
            [
                ("FromAsCasing", 1),
                ("StageNameCasing", 1),
                ("MaintainerDeprecated", 2),
                ("JSONArgsRecommended", 3)
            ]
        );
        assert_eq!(
            rules("FROM busybox\nrun true\nRUN true\n"),
            [("ConsistentInstructionCasing", 2)]
        );
    }

    #[test]
    fn stage_name_rules() {
        assert_eq!(
            rules("FROM busybox AS a\nFROM busybox AS a\nFROM busybox AS scratch\n"),
            [("DuplicateStageName", 2), ("ReservedStageName", 3)]
        );
    }

    #[test]
    fn from_args_must_be_declared_and_give_a_valid_name() {
        assert_eq!(
            rules("FROM $NOPE\n"),
            [("InvalidDefaultArgInFrom", 1), ("UndefinedArgInFrom", 1)]
        );
        assert_eq!(
            rules("ARG TAG\nFROM busybox:${TAG}\n"),
            [("InvalidDefaultArgInFrom", 2)]
        );
        assert_eq!(rules("FROM --platform=$BUILDPLATFORM busybox\n"), []);
        assert_eq!(
            rules("FROM --platform=linux/amd64 busybox\nFROM --platform=$TARGETPLATFORM busybox\n"),
            [
                ("FromPlatformFlagConstDisallowed", 1),
                ("RedundantTargetPlatform", 2)
            ]
        );
    }

    #[test]
    fn stage_level_rules() {
        assert_eq!(
            rules(
                "FROM busybox\nWORKDIR app\nENV A b\nARG GITHUB_TOKEN\nARG PUBLIC_KEY\n\
                 EXPOSE 80/TCP 127.0.0.1:8080:80\nCMD [\"a\"]\nCMD [\"b\"]\n"
            ),
            [
                ("WorkdirRelativePath", 2),
                ("LegacyKeyValueFormat", 3),
                ("SecretsUsedInArgOrEnv", 4),
                ("ExposeProtoCasing", 6),
                ("ExposeInvalidFormat", 6),
                ("MultipleInstructionsDisallowed", 7),
            ]
        );
    }

    #[test]
    fn check_directive_skips_rules() {
        assert_eq!(
            rules("# check=skip=JSONArgsRecommended,MaintainerDeprecated\nFROM busybox\nMAINTAINER x\nCMD echo\n"),
            []
        );
        assert_eq!(rules("# check=skip=all\nFROM busybox AS X\n"), []);
    }

    #[test]
    fn rule_urls_match_the_docs() {
        assert_eq!(
            url("StageNameCasing"),
            "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/"
        );
        assert_eq!(
            url("JSONArgsRecommended"),
            "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
        );
    }
}
