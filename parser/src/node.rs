//! The line-level syntax tree: what BuildKit's `parser.Node` holds, with
//! source spans, and its s-expression dump.

use serde::Serialize;

use crate::directives::Directive;
use crate::heredoc::Heredoc;
use crate::quote::{go_quote, go_quote_list};
use crate::span::Span;

/// A word of an instruction line (a flag, an argument) with where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Word {
    /// The word as BuildKit's line parser produced it (quotes kept where it keeps them).
    pub value: String,
    /// Where the word was written. Words of a JSON array all carry the span
    /// of the whole array.
    pub span: Span,
}

/// One argument node of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawArg {
    /// A plain string argument.
    Word(Word),
    /// The instruction an `ONBUILD` wraps.
    Sub(Box<RawInstruction>),
}

/// One instruction as the line parser sees it (BuildKit's `parser.Node`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawInstruction {
    /// The instruction keyword exactly as written (`run`, `RUN`, `Run`...).
    pub keyword: String,
    /// Where the keyword was written.
    pub keyword_span: Span,
    /// The leading `--name[=value]` words, quotes and escapes removed.
    pub flags: Vec<Word>,
    /// The arguments, split as BuildKit splits them for this instruction.
    pub args: Vec<RawArg>,
    /// Whether the arguments were a JSON array (exec form).
    pub json: bool,
    /// The whole logical line (continuations joined, comments dropped).
    pub original: String,
    /// Heredocs attached to this instruction, in order.
    pub heredocs: Vec<Heredoc>,
    /// Comment lines directly above the instruction (`#` and one space removed... trimmed).
    pub comments: Vec<String>,
    /// From the keyword to the end of the last line of the instruction,
    /// heredoc bodies included.
    pub span: Span,
    /// The arguments' part of the line (after the flags).
    pub args_span: Span,
}

/// A non-fatal finding of the line parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// What was found.
    pub message: String,
    /// Where.
    pub span: Span,
}

/// The result of the line-level parse of a whole Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDockerfile {
    /// Parser directives from the top of the file.
    pub directives: Vec<Directive>,
    /// The escape character in force (`\` or `` ` ``).
    pub escape: char,
    /// The instructions in order.
    pub instructions: Vec<RawInstruction>,
    /// Non-fatal findings (empty continuation lines).
    pub warnings: Vec<Warning>,
}

impl RawInstruction {
    /// This instruction as one s-expression (`(run "echo hi")`), exactly as
    /// BuildKit's `Node.Dump` prints it.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        self.dump_into(&mut s);
        s
    }

    /// Appends the dump to `s`. Nested `ONBUILD`s are walked in a loop
    /// writing into the same buffer, so the dump stays linear in the input
    /// and `ONBUILD ONBUILD ...` cannot exhaust the stack.
    fn dump_into(&self, s: &mut String) {
        let mut node = self;
        let mut closers = 0;
        loop {
            let start = s.len();
            s.push_str(&go_lower(&node.keyword));
            if !node.flags.is_empty() {
                s.push(' ');
                s.push_str(&go_quote_list(node.flags.iter().map(|f| f.value.as_str())));
            }
            let mut sub_node = None;
            for arg in &node.args {
                s.push(' ');
                match arg {
                    RawArg::Word(w) => s.push_str(&go_quote(&w.value)),
                    RawArg::Sub(sub) => {
                        // A sub-instruction is always the only argument (ONBUILD's).
                        s.push('(');
                        sub_node = Some(&**sub);
                    }
                }
            }
            // Go trims the dump of every node. It never ends in whitespace,
            // and only starts with a space when the keyword is empty (a line
            // holding just a continuation).
            if s[start..].starts_with(' ') {
                s.remove(start);
            }
            match sub_node {
                Some(sub) => {
                    closers += 1;
                    node = sub;
                }
                None => break,
            }
        }
        for _ in 0..closers {
            s.push(')');
        }
    }
}

impl Drop for RawInstruction {
    /// Unrolls nested `ONBUILD` chains so dropping them cannot exhaust the stack.
    fn drop(&mut self) {
        let mut stack: Vec<Box<RawInstruction>> = Vec::new();
        let take = |args: &mut Vec<RawArg>, stack: &mut Vec<Box<RawInstruction>>| {
            for arg in args.drain(..) {
                if let RawArg::Sub(sub) = arg {
                    stack.push(sub);
                }
            }
        };
        take(&mut self.args, &mut stack);
        while let Some(mut sub) = stack.pop() {
            take(&mut sub.args, &mut stack);
        }
    }
}

impl RawDockerfile {
    /// The whole file in BuildKit's dump format, one instruction a line,
    /// with a trailing newline (what its dumper prints).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for ins in &self.instructions {
            out.push('(');
            ins.dump_into(&mut out);
            out.push_str(")\n");
        }
        out
    }
}

/// Go's `strings.ToLower`: per-character simple lower-casing.
pub(crate) fn go_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut l = c.to_lowercase();
            match (l.next(), l.next()) {
                (Some(one), None) => one,
                // Multi-character lowercase forms (U+0130) map to their first
                // character in Go's simple case mapping.
                (Some(first), Some(_)) => first,
                _ => c,
            }
        })
        .collect()
}
