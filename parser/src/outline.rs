//! The readable outline `kiln parse` prints by default.

use std::fmt::Write;

use crate::instructions::{Command, Dockerfile, Instruction};

fn line_of(ins: &Instruction, out: &mut String, indent: &str) {
    let text = ins.original.trim();
    let rest = text
        .get(ins.keyword.len()..)
        .map(str::trim_start)
        .unwrap_or(text);
    let mut summary: String = rest.chars().take(100).collect();
    if rest.chars().count() > 100 {
        summary.push('…');
    }
    let _ = write!(
        out,
        "{indent}{:>5}  {:<11} {summary}",
        ins.span.start.line,
        ins.command.name()
    );
    let heredocs = match &ins.command {
        Command::Run(r) => r.cmd_line.heredocs.len(),
        Command::Copy(c) => c.heredoc_sources.len(),
        Command::Add(a) => a.heredoc_sources.len(),
        _ => 0,
    };
    if heredocs > 0 {
        let _ = write!(out, "  [{heredocs} heredoc(s)]");
    }
    if let Command::Run(r) = &ins.command {
        for m in &r.mounts {
            let _ = write!(
                out,
                "  [mount {} -> {}]",
                m.kind.as_str(),
                m.target.as_deref().unwrap_or("?")
            );
        }
    }
    out.push('\n');
}

/// A short human-readable outline: directives, global ARGs, and each stage
/// with its instructions and line numbers.
pub fn outline(df: &Dockerfile) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} stage(s), escape {}",
        df.file,
        df.stages.len(),
        df.escape
    );
    for d in &df.directives {
        let _ = writeln!(out, "  directive {}={}", d.name, d.value);
    }
    for a in &df.meta_args {
        line_of(a, &mut out, "  ");
    }
    for s in &df.stages {
        let name = s
            .name
            .as_deref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let _ = writeln!(out, "stage {}{name}:", s.index);
        line_of(&s.from, &mut out, "");
        for ins in &s.instructions {
            line_of(ins, &mut out, "");
        }
    }
    for w in &df.warnings {
        let _ = writeln!(out, "warning: line {}: {}", w.span.start.line, w.message);
    }
    out
}
