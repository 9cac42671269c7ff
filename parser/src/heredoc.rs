//! Heredoc detection, as BuildKit's parser does it.
//!
//! BuildKit finds heredocs by running its shell lexer over the whole
//! instruction line with an empty environment, unset variables kept as
//! written, and then matching each resulting word against
//! `^(\d*)<<(-?)\s*([^<]*)$`. Whether the heredoc's content is expanded
//! depends on whether lexing the delimiter with and without raw quotes gives
//! the same number of quote characters.
//!
//! The lexer below is a private, reduced copy of that lexer: with an empty
//! environment no value is ever substituted, so it only needs to reproduce
//! how words are split and how quotes, escapes and `${...}` forms are echoed
//! back. It is written by hand because its quirks (including the shared word
//! buffer noted below) are what decide which words are heredocs; the full
//! expander lives in the `shell` module.

use serde::Serialize;

use crate::span::Span;

/// A heredoc attached to an instruction (`RUN <<EOF`, `COPY <<EOF /dst`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Heredoc {
    /// The delimiter word with quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The file descriptor number written before `<<` (`3<<EOF`), 0 if none.
    pub file_descriptor: u64,
    /// Whether variables in the content are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// Whether leading tabs are stripped (`<<-EOF`).
    pub chomp: bool,
    /// The content exactly as written, line endings included, without the
    /// terminator line; tabs are not stripped here (see [`chomp_heredoc_content`]).
    pub content: String,
    /// The content lines and the terminator line.
    pub span: Span,
}

/// Why the delimiter of a heredoc could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeredocWordError(pub String);

/// Removes leading tabs from every line (what `<<-` does).
pub fn chomp_heredoc_content(content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    for line in content.split_inclusive('\n') {
        out.push_str(line.trim_start_matches('\t'));
    }
    out
}

/// A heredoc word as matched, before its content is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeredocHead {
    /// Delimiter with quotes removed.
    pub name: String,
    /// File descriptor prefix.
    pub file_descriptor: u64,
    /// Whether the content is expanded.
    pub expand: bool,
    /// Whether leading tabs are stripped.
    pub chomp: bool,
}

/// The heredocs named on an instruction line, in order.
pub fn heredocs_from_line(line: &str) -> Result<Vec<HeredocHead>, HeredocWordError> {
    // BuildKit ignores a lexing error here: the line then has no heredocs.
    let words = Lexer::new(line, true, true).words().unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Go's regexp `\s`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

/// Matches one word against `^(\d*)<<(-?)\s*([^<]*)$` and reads its delimiter.
pub fn parse_heredoc(word: &str) -> Result<Option<HeredocHead>, HeredocWordError> {
    let digits_end = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let digits = &word[..digits_end];
    let Some(after) = word[digits_end..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start_matches(is_re_space);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    // Go's ParseUint saturates on overflow (the error is ignored).
    let file_descriptor = if digits.is_empty() {
        0
    } else {
        digits.parse::<u64>().unwrap_or(u64::MAX)
    };
    let words = Lexer::new(rest, false, false).words()?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = Lexer::new(rest, true, false).words()?;
    if raw.len() != words.len() {
        return Err(HeredocWordError(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        )));
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    Ok(Some(HeredocHead {
        expand: quotes(&words[0]) == quotes(&raw[0]),
        name: words[0].clone(),
        file_descriptor,
        chomp,
    }))
}

/// The reduced shell lexer (escape token always `\`, as BuildKit uses here).
struct Lexer {
    chars: Vec<char>,
    pos: usize,
    raw_quotes: bool,
    raw_escapes: bool,
    /// BuildKit's lexer shares one word buffer between nested `${...}` scans;
    /// a nested scan resets it, dropping the outer word's pending text. The
    /// heredoc decision depends on that, so it is kept.
    words_buf: String,
    /// Nesting of `${...}` scans. Go's growable stacks have no practical
    /// limit; kiln stops at [`MAX_NESTING`] with an error (the line then has
    /// no heredocs) so hostile input cannot exhaust the stack.
    depth: usize,
}

/// How deeply `${a:-${b:-...}}` may nest in a heredoc line.
const MAX_NESTING: usize = 256;

#[derive(Default)]
struct Words {
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, buf: &mut String, ch: char) {
        if ch.is_whitespace() && self.in_word {
            if !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else if !ch.is_whitespace() {
            self.add_raw_char(buf, ch);
        }
    }
    fn add_raw_char(&mut self, buf: &mut String, ch: char) {
        buf.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, buf: &mut String, s: &str) {
        for ch in s.chars() {
            self.add_char(buf, ch);
        }
    }
    fn add_raw_string(&mut self, buf: &mut String, s: &str) {
        buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
            self.in_word = false;
        }
        self.words
    }
}

type LexResult<T> = Result<T, HeredocWordError>;

fn lex_err<T>(msg: &str) -> LexResult<T> {
    Err(HeredocWordError(msg.to_string()))
}

const ESCAPE: char = '\\';

impl Lexer {
    fn new(input: &str, raw_quotes: bool, raw_escapes: bool) -> Self {
        let mut chars: Vec<char> = input.chars().collect();
        // Go's text/scanner skips a byte-order mark at the very start.
        if chars.first() == Some(&'\u{feff}') {
            chars.remove(0);
        }
        Lexer {
            chars,
            pos: 0,
            raw_quotes,
            raw_escapes,
            words_buf: String::new(),
            depth: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn words(mut self) -> LexResult<Vec<String>> {
        let raw = self.raw_escapes;
        Ok(self.process_stop_on(None, raw)?.1)
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> LexResult<(String, Vec<String>)> {
        if self.depth >= MAX_NESTING {
            return lex_err("variable substitutions nested too deeply");
        }
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        self.depth += 1;
        let out = self.stop_on_inner(stop);
        self.depth -= 1;
        self.raw_escapes = saved;
        out
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> LexResult<(String, Vec<String>)> {
        let mut result = String::new();
        self.words_buf.clear();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                let mut buf = std::mem::take(&mut self.words_buf);
                let w = words.finish(&mut buf);
                self.words_buf = buf;
                return Ok((result, w));
            }
            match ch {
                '$' => {
                    let tmp = self.process_dollar()?;
                    result.push_str(&tmp);
                    words.add_string(&mut self.words_buf, &tmp);
                }
                '<' => {
                    let tmp = self.process_possible_heredoc();
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.words_buf, &tmp);
                }
                '\'' => {
                    let tmp = self.process_single_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.words_buf, &tmp);
                }
                '"' => {
                    let tmp = self.process_double_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.words_buf, &tmp);
                }
                _ => {
                    self.next();
                    if ch == ESCAPE {
                        if self.raw_escapes {
                            words.add_raw_char(&mut self.words_buf, ch);
                            result.push(ch);
                        }
                        let Some(c) = self.next() else { break };
                        words.add_raw_char(&mut self.words_buf, c);
                        result.push(c);
                    } else {
                        words.add_char(&mut self.words_buf, ch);
                        result.push(ch);
                    }
                }
            }
        }
        if stop.is_some() {
            return lex_err(
                "unexpected end of statement while looking for matching stop character",
            );
        }
        let mut buf = std::mem::take(&mut self.words_buf);
        let w = words.finish(&mut buf);
        self.words_buf = buf;
        Ok((result, w))
    }

    fn process_single_quote(&mut self) -> LexResult<String> {
        let mut out = String::new();
        let q = self.next();
        if self.raw_quotes {
            out.extend(q);
        }
        loop {
            match self.next() {
                None => {
                    return lex_err(
                        "unexpected end of statement while looking for matching single-quote",
                    )
                }
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> LexResult<String> {
        let mut out = String::new();
        let q = self.next();
        if self.raw_quotes {
            out.extend(q);
        }
        loop {
            match self.peek() {
                None => {
                    return lex_err(
                        "unexpected end of statement while looking for matching double-quote",
                    )
                }
                Some('"') => {
                    self.next();
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    out.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or(ESCAPE);
                    if ch == ESCAPE {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some('"') | Some('$') | Some(ESCAPE) => {
                                ch = self.next().unwrap_or(ESCAPE);
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> LexResult<String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(format!("${name}"));
        }
        self.next();
        match self.peek() {
            None => return lex_err("syntax error: missing '}'"),
            Some('{') | Some('}') | Some(':') => return lex_err("syntax error: bad substitution"),
            _ => {}
        }
        let name = self.process_name();
        let first = self.next();
        // Go turns EOF (-1) into U+FFFD when making it a string.
        let mut chs: String = first.unwrap_or('\u{fffd}').to_string();
        let mut ch = first;
        let mut null_is_unset = false;
        match first {
            Some('}') => return Ok(format!("${{{name}}}")),
            Some(':') => {
                null_is_unset = true;
                ch = self.next();
                chs.push(ch.unwrap_or('\u{fffd}'));
            }
            Some('+' | '-' | '?' | '#' | '%') => {}
            Some('/') => {
                if self.peek() == Some('/') {
                    self.next();
                }
                let pattern = self.process_stop_on(Some('/'), true);
                let pattern = match pattern {
                    Ok((p, _)) => p,
                    Err(e) => {
                        if self.peek().is_none() {
                            return lex_err("syntax error: missing '/' in ${}");
                        }
                        return Err(e);
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((r, _)) => r,
                    Err(e) => {
                        if self.peek().is_none() {
                            return lex_err("syntax error: missing '}'");
                        }
                        return Err(e);
                    }
                };
                return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
            }
            _ => {
                return Err(HeredocWordError(format!(
                    "unsupported modifier ({chs}) in substitution"
                )))
            }
        }
        let raw_escapes = matches!(ch, Some('#') | Some('%'));
        if null_is_unset && raw_escapes {
            return Err(HeredocWordError(format!(
                "unsupported modifier ({chs}) in substitution"
            )));
        }
        let word = match self.process_stop_on(Some('}'), raw_escapes) {
            Ok((w, _)) => w,
            Err(e) => {
                if self.peek().is_none() {
                    return lex_err("syntax error: missing '}'");
                }
                return Err(e);
            }
        };
        Ok(format!("${{{name}{chs}{word}}}"))
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(d) = self.peek().filter(|&c| is_digit(c)) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphabetic() && !is_digit(ch) && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            out.push(c);
            self.next();
        }
        out
    }
}

/// Go's `unicode.IsDigit` (decimal digits); Rust's `is_numeric` is the
/// closest std predicate for non-ASCII.
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<(String, bool, bool)> {
        heredocs_from_line(line)
            .unwrap()
            .into_iter()
            .map(|h| (h.name, h.expand, h.chomp))
            .collect()
    }

    #[test]
    fn finds_heredocs_like_buildkit() {
        assert_eq!(names("RUN <<EOF"), vec![("EOF".into(), true, false)]);
        assert_eq!(names("RUN <<-EOF"), vec![("EOF".into(), true, true)]);
        assert_eq!(names("RUN <<'EOF'"), vec![("EOF".into(), false, false)]);
        assert_eq!(names("RUN <<\"EOF\""), vec![("EOF".into(), false, false)]);
        assert_eq!(names("RUN << EOF"), vec![("EOF".into(), true, false)]);
        assert_eq!(
            names("RUN 3<<A cat /proc/self/fd/3 <<-B"),
            vec![("A".into(), true, false), ("B".into(), true, true)]
        );
        assert_eq!(names("COPY <<EOF /dst"), vec![("EOF".into(), true, false)]);
        assert!(names("RUN echo '<<EOF").is_empty());
        assert!(names("RUN a<<EOF").is_empty());
        assert!(names("RUN <<").is_empty());
        assert!(names("RUN echo <<<EOF").is_empty());
    }

    #[test]
    fn chomps_tabs() {
        assert_eq!(chomp_heredoc_content("\t\ta\n\tb\n c\n"), "a\nb\n c\n");
    }
}
