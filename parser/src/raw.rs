//! The line-level parse: BuildKit's `parser.Parse` loop. Reads physical
//! lines, handles directives, comments, continuations and heredocs, and
//! hands each logical line to the line parsers.

use crate::directives::{Directive, DirectiveError, DirectiveParser};
use crate::error::{ErrorKind, ParseError};
use crate::heredoc::{heredocs_from_line, Heredoc};
use crate::line_parsers::{node_from_line, Cx, LineError, SegmentMap};
use crate::node::{RawArg, RawDockerfile, RawInstruction, Warning};
use crate::span::LineIndex;

/// BuildKit reads lines with Go's `bufio.Scanner`, whose largest token is
/// 64 KiB: a line (newline included) may be at most this long.
const MAX_LINE: usize = 64 * 1024;

/// Physical lines with their byte offsets, newline kept.
struct Lines<'a> {
    text: &'a str,
    pos: usize,
    too_long: bool,
}

impl<'a> Lines<'a> {
    fn next_line(&mut self) -> Option<(usize, &'a str)> {
        if self.too_long || self.pos >= self.text.len() {
            return None;
        }
        let rest = &self.text[self.pos..];
        let line = match rest.find('\n') {
            Some(i) if i < MAX_LINE => &rest[..=i],
            Some(_) => {
                self.too_long = true;
                return None;
            }
            // The last line without a newline must leave room for one.
            None if rest.len() < MAX_LINE => rest,
            None => {
                self.too_long = true;
                return None;
            }
        };
        let at = self.pos;
        self.pos += line.len();
        Some((at, line))
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// Removes a trailing continuation escape (and the blanks after it).
/// Returns the text and whether the logical line ends here. An escaped
/// escape (`\\`) at the end is not a continuation.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    if let Some(before) = t.strip_suffix(escape) {
        if before.is_empty() || !before.ends_with(escape) {
            return (before, false);
        }
    }
    (line, true)
}

fn can_contain_heredoc(node: &RawInstruction) -> bool {
    let mut node = node;
    if node.keyword.eq_ignore_ascii_case("onbuild") {
        if let Some(RawArg::Sub(sub)) = node.args.first() {
            node = sub;
        }
    }
    let k = crate::node::go_lower(&node.keyword);
    matches!(k.as_str(), "add" | "copy" | "run") && !node.json
}

/// Parses `text` (the whole Dockerfile) at the line level. `file` names it in errors.
pub fn parse_raw(text: &str, file: &str) -> Result<RawDockerfile, ParseError> {
    let index = LineIndex::new(text);
    let err = |kind: ErrorKind, start: usize, end: usize| {
        ParseError::new(kind, file, text, index.span(start, end))
    };
    let line_err = |e: LineError| {
        let (kind, span) = match e {
            LineError::NotStringArray(span) => (ErrorKind::NotStringArray, span),
            LineError::MissingValue(k, span) => (ErrorKind::MissingValue(k), span),
            LineError::NoEquals(w, span) => (ErrorKind::NoEquals(w), span),
        };
        ParseError::new(kind, file, text, span)
    };

    let mut lines = Lines {
        text,
        pos: 0,
        too_long: false,
    };
    let mut dp = DirectiveParser::default();
    let mut escape = '\\';
    let mut directives = Vec::new();
    let mut instructions: Vec<RawInstruction> = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut buf = String::new();
    let mut map = SegmentMap::default();
    let mut first = true;

    while let Some((mut off, mut raw)) = lines.next_line() {
        if first {
            first = false;
            if let Some(r) = raw.strip_prefix('\u{feff}') {
                raw = r;
                off += 3;
            }
        }
        if is_comment(raw) {
            // BuildKit drops the first byte, not the `#`, before trimming.
            let body = raw.char_indices().nth(1).map_or("", |(i, _)| &raw[i..]);
            let comment = body.trim();
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment.to_string());
            }
        }
        let t = trim_newline(raw);
        let lead = t.len() - t.trim_start().len();
        let t = t.trim_start();
        let t_off = off + lead;
        let line_end = off + trim_newline(raw).len();
        match dp.parse_line(t) {
            Ok(Some((name, value))) => {
                if name == "escape" {
                    escape = value.chars().next().unwrap_or('\\');
                }
                directives.push(Directive {
                    name,
                    value,
                    span: index.span(t_off, line_end),
                });
                comments.pop();
            }
            Ok(None) => {}
            Err(DirectiveError::Duplicate(n)) => {
                return Err(err(ErrorKind::DuplicateDirective(n), t_off, line_end))
            }
            Err(DirectiveError::InvalidEscape(v)) => {
                return Err(err(ErrorKind::InvalidEscape(v), t_off, line_end))
            }
        }
        let content = if is_comment(t) { "" } else { t };
        let (content, mut eol) = trim_continuation(content, escape);
        if eol && content.is_empty() {
            continue;
        }
        buf.clear();
        map.clear();
        map.push(0, t_off);
        buf.push_str(content);
        let mut last_end = t_off + content.len();
        let mut has_empty = false;
        while !eol {
            let Some((off2, raw2)) = lines.next_line() else {
                break;
            };
            let t2 = trim_newline(raw2);
            if is_comment(raw2) {
                continue;
            }
            if t2.trim_start().is_empty() {
                has_empty = true;
                continue;
            }
            let (c2, e2) = trim_continuation(t2, escape);
            eol = e2;
            map.push(buf.len(), off2);
            buf.push_str(c2);
            last_end = off2 + c2.len();
        }
        let line = buf.as_str();
        let cx = Cx {
            escape,
            map: &map,
            index: &index,
        };
        if has_empty {
            warnings.push(Warning {
                message: format!("Empty continuation line found in: {line}"),
                span: index.span(t_off, last_end),
            });
        }
        let mut node =
            node_from_line(line, 0, &cx, std::mem::take(&mut comments)).map_err(line_err)?;
        let mut end = last_end;
        if can_contain_heredoc(&node) && line.contains("<<") {
            let heads = heredocs_from_line(line)
                .map_err(|e| err(ErrorKind::HeredocWord(e.0), t_off, last_end))?;
            for head in heads {
                let mut content = String::new();
                let mut terminated = false;
                let body_start = lines.pos;
                while let Some((o, raw3)) = lines.next_line() {
                    let mut pt = trim_newline(raw3);
                    if head.chomp {
                        pt = pt.trim_start_matches('\t');
                    }
                    end = o + trim_newline(raw3).len();
                    if pt == head.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw3);
                }
                if !terminated {
                    return Err(err(
                        ErrorKind::UnterminatedHeredoc(head.name),
                        t_off,
                        last_end,
                    ));
                }
                node.heredocs.push(Heredoc {
                    name: head.name,
                    file_descriptor: head.file_descriptor,
                    expand: head.expand,
                    chomp: head.chomp,
                    content,
                    span: index.span(body_start, end),
                });
            }
        }
        node.span = index.span(node.span.start.offset, end);
        instructions.push(node);
    }
    if lines.too_long {
        let at = lines.pos;
        return Err(err(ErrorKind::LineTooLong, at, at + 1));
    }
    if instructions.is_empty() {
        return Err(err(ErrorKind::NoInstructions, text.len(), text.len()));
    }
    Ok(RawDockerfile {
        directives,
        escape,
        instructions,
        warnings,
    })
}
