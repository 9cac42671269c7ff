//! Per-instruction argument splitting, as BuildKit's `line_parsers.go` and
//! `split_command.go` do it. Each function gets the argument text of one
//! logical line and the offset of that text in the line, and returns words
//! with their spans.

use crate::node::{RawArg, RawInstruction, Word};
use crate::span::{LineIndex, Span};

/// Why a line's arguments could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// A JSON array held something other than strings (the array's span).
    NotStringArray(Span),
    /// `ENV key` / `LABEL key` without a value (the key's span).
    MissingValue(&'static str, Span),
    /// `ENV a=b c`: a word without `=` after the first (the word's span).
    NoEquals(String, Span),
}

/// Maps offsets in a logical line (continuations joined) back to the source.
#[derive(Debug, Default, Clone)]
pub struct SegmentMap {
    /// `(offset in logical line, offset in source)` for each joined piece.
    segments: Vec<(usize, usize)>,
}

impl SegmentMap {
    /// Starts an empty map.
    pub fn clear(&mut self) {
        self.segments.clear();
    }

    /// Records that the logical line continues at `logical` with source text at `source`.
    pub fn push(&mut self, logical: usize, source: usize) {
        self.segments.push((logical, source));
    }

    /// The source offset of logical offset `pos`.
    pub fn source(&self, pos: usize) -> usize {
        let i = self.segments.partition_point(|&(l, _)| l <= pos);
        match i.checked_sub(1).and_then(|i| self.segments.get(i)) {
            Some(&(l, s)) => s + (pos - l),
            None => pos,
        }
    }

    /// The source offset just past logical offset `end - 1`.
    pub fn source_end(&self, start: usize, end: usize) -> usize {
        if end > start {
            self.source(end - 1) + 1
        } else {
            self.source(start)
        }
    }
}

/// What line parsers need: the escape character and the span maps.
pub struct Cx<'a> {
    /// The escape character in force.
    pub escape: char,
    /// Logical-line-to-source map for the current line.
    pub map: &'a SegmentMap,
    /// Source positions.
    pub index: &'a LineIndex<'a>,
}

impl Cx<'_> {
    /// The source span of logical range `start..end`.
    pub fn span(&self, start: usize, end: usize) -> Span {
        let s = self.map.source(start);
        let e = self.map.source_end(start, end).max(s);
        self.index.span(s, e)
    }

    fn word(&self, value: impl Into<String>, start: usize, end: usize) -> RawArg {
        RawArg::Word(Word {
            value: value.into(),
            span: self.span(start, end),
        })
    }
}

/// BuildKit's `reWhitespace`: `[\t\v\f\r ]`.
pub fn is_re_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Splits `s` at runs of `[\t\v\f\r ]`, like Go's `Regexp.Split(s, n)`
/// (`n == 0` means no limit). Returns `(start, end)` ranges.
pub fn split_ws(s: &str, limit: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let bytes = s.as_bytes();
    while i < bytes.len() {
        if limit != 0 && out.len() + 1 == limit {
            break;
        }
        if is_re_ws(bytes[i] as char) {
            let ws_start = i;
            while i < bytes.len() && is_re_ws(bytes[i] as char) {
                i += 1;
            }
            out.push((start, ws_start));
            start = i;
        } else {
            i += 1;
        }
    }
    out.push((start, s.len()));
    out
}

/// Byte-wise whitespace test for `HEALTHCHECK`'s type word: Go's
/// `unicode.IsSpace(rune(b))` minus the Latin-1 bytes 0x85 and 0xA0, which
/// in UTF-8 are continuation bytes (splitting there would cut a character).
fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// Go's `unicode.IsSpace(rune(b))` exactly, as BuildKit's flag extractor
/// applies it to single bytes: 0x85 and 0xA0 count as spaces, so a flag
/// holding `à` (C3 A0) ends in the middle of that character, in BuildKit too.
fn is_go_space_byte(b: u8) -> bool {
    is_space_byte(b) || b == 0x85 || b == 0xa0
}

/// Moves `pos` forward to a character boundary of `s`.
fn ceil_boundary(s: &str, mut pos: usize) -> usize {
    while pos < s.len() && !s.is_char_boundary(pos) {
        pos += 1;
    }
    pos
}

/// The keyword, flags and argument text of one line.
struct Head<'l> {
    keyword: &'l str,
    lower: String,
    flags: Vec<Word>,
    args_text: &'l str,
    args_at: usize,
    start: usize,
    end: usize,
    cmd_end: usize,
}

/// BuildKit's `splitCommand`: keyword, then flags, then the trimmed rest.
fn split_head<'l>(line: &'l str, base: usize, cx: &Cx<'_>) -> Head<'l> {
    let lead = line.len() - line.trim_start().len();
    let trimmed = line.trim();
    let t0 = base + lead;
    let (cmd_end, rest_start) = match split_ws(trimmed, 2).as_slice() {
        [(_, e), (s, _)] => (*e, Some(*s)),
        _ => (trimmed.len(), None),
    };
    let keyword = &trimmed[..cmd_end];
    let mut flags = Vec::new();
    let mut args_text = "";
    let mut args_at = t0 + trimmed.len();
    if let Some(rs) = rest_start {
        let rest = &trimmed[rs..];
        let (after_flags, words) = extract_builder_flags(rest, cx.escape);
        for (value, s, e) in words {
            flags.push(Word {
                value,
                span: cx.span(t0 + rs + s, t0 + rs + e),
            });
        }
        let after_at = rs + after_flags;
        let a = &trimmed[after_at..];
        let lead = a.len() - a.trim_start().len();
        args_text = a.trim();
        args_at = t0 + after_at + lead;
    }
    Head {
        keyword,
        lower: crate::node::go_lower(keyword),
        flags,
        args_text,
        args_at,
        start: t0,
        end: t0 + trimmed.len(),
        cmd_end: t0 + cmd_end,
    }
}

fn make_node(
    head: Head<'_>,
    args: Vec<RawArg>,
    json: bool,
    original: String,
    cx: &Cx<'_>,
) -> RawInstruction {
    RawInstruction {
        keyword: head.keyword.to_string(),
        keyword_span: cx.span(head.start, head.cmd_end),
        flags: head.flags,
        args,
        json,
        original,
        heredocs: Vec::new(),
        comments: Vec::new(),
        span: cx.span(head.start, head.end),
        args_span: cx.span(head.args_at, head.args_at + head.args_text.len()),
    }
}

/// Splits a line into keyword, flags and the argument text, then hands the
/// arguments to the instruction's line parser (BuildKit's `newNodeFromLine`).
/// `base` is the offset of `line` in the logical line. `ONBUILD` nests the
/// node of its argument text; that nesting is built in a loop, not by
/// recursion, so `ONBUILD ONBUILD ...` cannot exhaust the stack, and only
/// the outer two levels keep their `original` text (deeper levels are
/// rejected by the instruction checks anyway).
pub fn node_from_line(
    line: &str,
    base: usize,
    cx: &Cx<'_>,
    comments: Vec<String>,
) -> Result<RawInstruction, LineError> {
    let mut chain: Vec<(Head<'_>, String)> = Vec::new();
    let mut cur = (line, base);
    let leaf = loop {
        let head = split_head(cur.0, cur.1, cx);
        let original = if chain.len() < 2 {
            cur.0.to_string()
        } else {
            String::new()
        };
        if head.lower == "onbuild" && !head.args_text.is_empty() {
            cur = (head.args_text, head.args_at);
            chain.push((head, original));
            continue;
        }
        let (args, json) = dispatch(&head, cx)?;
        break make_node(head, args, json, original, cx);
    };
    let mut node = leaf;
    while let Some((head, original)) = chain.pop() {
        node = make_node(head, vec![RawArg::Sub(Box::new(node))], false, original, cx);
    }
    node.comments = comments;
    Ok(node)
}

/// Splits the arguments of every instruction but a non-empty `ONBUILD`.
fn dispatch(head: &Head<'_>, cx: &Cx<'_>) -> Result<(Vec<RawArg>, bool), LineError> {
    let (args_text, args_at) = (head.args_text, head.args_at);
    Ok(match head.lower.as_str() {
        "add" | "copy" | "volume" => parse_maybe_json_to_list(args_text, args_at, cx)?,
        "arg" => (parse_name_or_name_val(args_text, args_at, cx), false),
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(args_text, args_at, cx)?,
        "env" => (parse_name_val(args_text, args_at, cx, "ENV")?, false),
        "label" => (parse_name_val(args_text, args_at, cx, "LABEL")?, false),
        "expose" | "from" => (parse_strings_ws(args_text, args_at, cx), false),
        "healthcheck" => parse_health_config(args_text, args_at, cx)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            (parse_string(args_text, args_at, cx), false)
        }
        "onbuild" => (Vec::new(), false),
        // BuildKit's parser keeps unknown instructions with one empty
        // argument; the instruction layer rejects them.
        _ => (vec![cx.word("", args_at, args_at)], false),
    })
}

/// BuildKit's `extractBuilderFlags`: the leading `--` words, quotes and
/// escapes processed. Returns the offset where the arguments start and the
/// flags with their local ranges. Like BuildKit it works on bytes and turns
/// each byte into a character (so non-ASCII flag text is read as Latin-1,
/// which is what BuildKit then sees too). Where BuildKit would start the
/// arguments inside a character, kiln starts them at the next character.
fn extract_builder_flags(line: &str, escape: char) -> (usize, Vec<(String, usize, usize)>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let bytes = line.as_bytes();
    let esc = escape as u8;
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut buf = String::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut start = 0;
    let mut pos = 0;
    while pos <= bytes.len() {
        let at_end = pos == bytes.len();
        let mut ch = if at_end { 0 } else { bytes[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_go_space_byte(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || pos + 1 == bytes.len() || bytes[pos + 1] != b'-' {
                return (ceil_boundary(line, pos), words);
            }
            phase = Phase::Word;
            start = pos;
        }
        if at_end {
            if buf != "--" && (blank_ok || !buf.is_empty()) {
                words.push((std::mem::take(&mut buf), start, pos));
            }
            break;
        }
        if phase == Phase::Word {
            if is_go_space_byte(ch) {
                phase = Phase::Spaces;
                if buf == "--" {
                    return (ceil_boundary(line, pos), words);
                }
                if blank_ok || !buf.is_empty() {
                    words.push((std::mem::take(&mut buf), start, pos));
                }
                buf.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == esc {
                if pos + 1 == bytes.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = bytes[pos];
            }
            buf.push(ch as char);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == esc {
            if pos + 1 == bytes.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = bytes[pos];
        }
        buf.push(ch as char);
        pos += 1;
    }
    (bytes.len(), words)
}

/// BuildKit's `parseWords`: splits at whitespace, keeping quotes and escapes
/// in the words. Returns words with local ranges.
pub fn parse_words(rest: &str, escape: char) -> Vec<(String, usize, usize)> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut buf = String::new();
    let mut start = 0;
    let mut pos = 0;
    loop {
        let at_end = pos >= rest.len();
        let (mut ch, mut w) = match rest[pos.min(rest.len())..].chars().next() {
            Some(c) => (c, c.len_utf8()),
            None => ('\0', 0),
        };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += w;
                continue;
            }
            phase = Phase::Word;
            start = pos;
        }
        if at_end {
            if blank_ok || !buf.is_empty() {
                words.push((std::mem::take(&mut buf), start, pos));
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !buf.is_empty() {
                    words.push((std::mem::take(&mut buf), start, pos));
                }
                buf.clear();
                blank_ok = false;
                pos += w;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + w == rest.len() {
                    pos += w;
                    continue;
                }
                buf.push(ch);
                pos += w;
                (ch, w) = next_char(rest, pos);
            }
            buf.push(ch);
            pos += w;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + w == rest.len() {
                phase = Phase::Word;
                pos += w;
                continue;
            }
            pos += w;
            buf.push(ch);
            (ch, w) = next_char(rest, pos);
        }
        buf.push(ch);
        pos += w;
    }
    words
}

fn next_char(s: &str, pos: usize) -> (char, usize) {
    match s[pos..].chars().next() {
        Some(c) => (c, c.len_utf8()),
        None => ('\0', 0),
    }
}

/// `ENV`/`LABEL`: `key value` (old form) or `k=v k2=v2 ...`, as
/// `key value sep` triples (`sep` is `=` or empty for the old form).
fn parse_name_val(
    rest: &str,
    at: usize,
    cx: &Cx<'_>,
    key: &'static str,
) -> Result<Vec<RawArg>, LineError> {
    let words = parse_words(rest, cx.escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.0.contains('=') {
        let parts = split_ws(rest, 2);
        let [(ks, ke), (vs, ve)] = parts.as_slice() else {
            return Err(LineError::MissingValue(key, cx.span(at, at + rest.len())));
        };
        return Ok(vec![
            cx.word(&rest[*ks..*ke], at + ks, at + ke),
            cx.word(&rest[*vs..*ve], at + vs, at + ve),
            cx.word("", at + ve, at + ve),
        ]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for (word, s, e) in words {
        let Some(eq) = word.find('=') else {
            return Err(LineError::NoEquals(word, cx.span(at + s, at + e)));
        };
        let (k, v) = (&word[..eq], &word[eq + 1..]);
        out.push(cx.word(k, at + s, at + s + eq));
        out.push(cx.word(v, at + s + eq + 1, at + e));
        out.push(cx.word("=", at + s + eq, at + s + eq + 1));
    }
    Ok(out)
}

/// `ARG`: each word is one node.
fn parse_name_or_name_val(rest: &str, at: usize, cx: &Cx<'_>) -> Vec<RawArg> {
    parse_words(rest, cx.escape)
        .into_iter()
        .map(|(w, s, e)| cx.word(w, at + s, at + e))
        .collect()
}

/// Whitespace-separated words (`FROM`, `EXPOSE`).
fn parse_strings_ws(rest: &str, at: usize, cx: &Cx<'_>) -> Vec<RawArg> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_ws(rest, 0)
        .into_iter()
        .map(|(s, e)| cx.word(&rest[s..e], at + s, at + e))
        .collect()
}

/// The whole argument text as one node.
fn parse_string(rest: &str, at: usize, cx: &Cx<'_>) -> Vec<RawArg> {
    if rest.is_empty() {
        return Vec::new();
    }
    vec![cx.word(rest, at, at + rest.len())]
}

enum JsonOutcome {
    Array(Vec<String>),
    NotJson,
    NotStrings,
}

/// Reads a JSON array of strings, as Go's `json.Unmarshal` into `[]any`.
fn parse_json(rest: &str) -> JsonOutcome {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return JsonOutcome::NotJson;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(t) {
        Err(_) => JsonOutcome::NotJson,
        Ok(values) => {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return JsonOutcome::NotStrings,
                }
            }
            JsonOutcome::Array(out)
        }
    }
}

fn json_words(items: Vec<String>, rest: &str, at: usize, cx: &Cx<'_>) -> Vec<RawArg> {
    items
        .into_iter()
        .map(|s| cx.word(s, at, at + rest.len()))
        .collect()
}

/// Exec form if the text is a JSON array, else the whole text as one node.
fn parse_maybe_json(rest: &str, at: usize, cx: &Cx<'_>) -> Result<(Vec<RawArg>, bool), LineError> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest) {
        JsonOutcome::Array(items) => Ok((json_words(items, rest, at, cx), true)),
        JsonOutcome::NotStrings => Err(LineError::NotStringArray(cx.span(at, at + rest.len()))),
        JsonOutcome::NotJson => Ok((parse_string(rest, at, cx), false)),
    }
}

/// Exec form if the text is a JSON array, else whitespace-separated words.
fn parse_maybe_json_to_list(
    rest: &str,
    at: usize,
    cx: &Cx<'_>,
) -> Result<(Vec<RawArg>, bool), LineError> {
    match parse_json(rest) {
        JsonOutcome::Array(items) => Ok((json_words(items, rest, at, cx), true)),
        JsonOutcome::NotStrings => Err(LineError::NotStringArray(cx.span(at, at + rest.len()))),
        JsonOutcome::NotJson => Ok((parse_strings_ws(rest, at, cx), false)),
    }
}

/// `HEALTHCHECK`: a type word (`CMD`, `NONE`) and then maybe-JSON.
fn parse_health_config(
    rest: &str,
    at: usize,
    cx: &Cx<'_>,
) -> Result<(Vec<RawArg>, bool), LineError> {
    let b = rest.as_bytes();
    let sep = b.iter().position(|&c| is_space_byte(c)).unwrap_or(b.len());
    let next = b[sep..]
        .iter()
        .position(|&c| !is_space_byte(c))
        .map_or(b.len(), |p| sep + p);
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let mut out = vec![cx.word(&rest[..sep], at, at + sep)];
    let (cmd, json) = parse_maybe_json(&rest[next..], at + next, cx)?;
    out.extend(cmd);
    Ok((out, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        parse_words(s, '\\').into_iter().map(|w| w.0).collect()
    }

    #[test]
    fn parse_words_like_buildkit() {
        assert_eq!(words("foo"), ["foo"]);
        assert_eq!(words("foo bar"), ["foo", "bar"]);
        assert_eq!(words("foo\\ bar"), ["foo\\ bar"]);
        assert_eq!(words("foo bar 'abc xyz'"), ["foo", "bar", "'abc xyz'"]);
        assert_eq!(
            words(r#"föo bàr "âbc xÿz""#),
            ["föo", "bàr", r#""âbc xÿz""#]
        );
        assert_eq!(words("a=''"), ["a=''"]);
        assert_eq!(words("a\\"), ["a"]);
    }

    #[test]
    fn flags_like_buildkit() {
        let (at, f) = extract_builder_flags("--a=1 --b='x y' -- --c rest", '\\');
        let vals: Vec<_> = f.iter().map(|w| w.0.as_str()).collect();
        assert_eq!(vals, ["--a=1", "--b=x y"]);
        assert_eq!(&"--a=1 --b='x y' -- --c rest"[at..], " --c rest");
        let (at, f) = extract_builder_flags("--x src dst", '\\');
        assert_eq!(f.len(), 1);
        assert_eq!(at, 4);
    }

    #[test]
    fn split_ws_limits() {
        assert_eq!(split_ws("a  b c", 2), vec![(0, 1), (3, 6)]);
        assert_eq!(split_ws("a  b c", 0), vec![(0, 1), (3, 4), (5, 6)]);
        assert_eq!(split_ws("abc", 2), vec![(0, 3)]);
    }
}
