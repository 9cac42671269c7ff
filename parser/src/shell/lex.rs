//! The word lexer: quotes, escapes and `$` expansion, as BuildKit's
//! `frontend/dockerfile/shell` package does them.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use unicode_general_category::{get_general_category, GeneralCategory as Gc};

use super::error::{ExpandError, ExpandErrorKind, VarUse};
use super::glob::{self, Glob};

/// Where variable values come from during expansion.
///
/// Implemented for `HashMap<String, String>`, `BTreeMap<String, String>` and
/// [`EnvList`]; the solver can implement it over its own state.
pub trait Env {
    /// The value of `name`, or `None` when it is not set (set to the empty
    /// string is `Some("")`).
    fn get(&self, name: &str) -> Option<&str>;
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// An environment built from `KEY=VALUE` entries, the later of two equal
/// keys winning (BuildKit's `EnvsFromSlice`). Keeps the keys in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvList {
    keys: Vec<String>,
    values: HashMap<String, String>,
}

impl EnvList {
    /// An empty environment.
    pub fn new() -> EnvList {
        EnvList::default()
    }

    /// Parses `KEY=VALUE` entries; an entry without `=` sets `KEY` to "".
    pub fn from_entries<I, S>(entries: I) -> EnvList
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut env = EnvList::new();
        for e in entries {
            let e = e.as_ref();
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            env.set(k, v);
        }
        env
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn set(&mut self, key: &str, value: &str) {
        self.keys.push(key.to_string());
        self.values.insert(key.to_string(), value.to_string());
    }

    /// The keys in the order they were set (repeats included, as BuildKit keeps them).
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

impl Env for EnvList {
    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// The result of expanding one word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordExpansion {
    /// The word with quotes removed and variables replaced (`ProcessWord`).
    pub word: String,
    /// The same word split on unquoted whitespace (`ProcessWords`).
    pub words: Vec<String>,
    /// Which variables the word read.
    pub vars: VarUse,
}

/// BuildKit's shell lexer: expands `$var`, `${var...}`, quotes and escapes
/// in one word of a Dockerfile.
///
/// ```
/// use kiln_parser::shell::{EnvList, Lexer};
/// let env = EnvList::from_entries(["A=x"]);
/// let lex = Lexer::new('\\');
/// assert_eq!(lex.process_word("${A:-y}${B:-y}", &env).unwrap(), "xy");
/// assert_eq!(lex.process_words("a 'b c'", &env).unwrap(), ["a", "b c"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_process_quotes: bool,
    skip_unset_env: bool,
    work_limit: u64,
}

/// The default for [`Lexer::with_work_limit`]: far above any real
/// Dockerfile word, low enough to fail in well under a second.
pub const DEFAULT_WORK_LIMIT: u64 = 1 << 26;

impl Default for Lexer {
    fn default() -> Lexer {
        Lexer::new('\\')
    }
}

impl Lexer {
    /// A lexer using `escape` (`\` by default, `` ` `` after `# escape=``)
    /// as its escape character.
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
            work_limit: DEFAULT_WORK_LIMIT,
        }
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Keep quote characters in the output (BuildKit's `RawQuotes`).
    pub fn with_raw_quotes(mut self, on: bool) -> Lexer {
        self.raw_quotes = on;
        self
    }

    /// Keep escape characters in the output (BuildKit's `RawEscapes`).
    pub fn with_raw_escapes(mut self, on: bool) -> Lexer {
        self.raw_escapes = on;
        self
    }

    /// Treat quotes as ordinary characters (BuildKit's `SkipProcessQuotes`,
    /// used for heredoc contents).
    pub fn with_skip_process_quotes(mut self, on: bool) -> Lexer {
        self.skip_process_quotes = on;
        self
    }

    /// Leave references to unset variables as written (BuildKit's
    /// `SkipUnsetEnv`, used for RUN step names).
    pub fn with_skip_unset_env(mut self, on: bool) -> Lexer {
        self.skip_unset_env = on;
        self
    }

    /// Caps the work one word may take: bytes produced at every nesting
    /// level plus pattern-matching steps. Nested `${v//p/r}` can grow a
    /// word's expansion exponentially (BuildKit has no cap and runs out of
    /// memory); past the limit expansion fails with
    /// [`ExpandErrorKind::TooComplex`].
    pub fn with_work_limit(mut self, limit: u64) -> Lexer {
        self.work_limit = limit;
        self
    }

    /// Expands `word` into one string (BuildKit's `ProcessWord`).
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ExpandError> {
        self.process_word_with_matches(word, env).map(|e| e.word)
    }

    /// Expands `word` and splits it on unquoted whitespace (BuildKit's
    /// `ProcessWords`); splitting happens after expansion, so a value with
    /// spaces becomes several words unless quoted.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
        self.process_word_with_matches(word, env).map(|e| e.words)
    }

    /// Expands `word` and reports which variables it read, set or not
    /// (BuildKit's `ProcessWordWithMatches`). On error the variables read
    /// before the error are in [`ExpandError::vars`].
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn Env,
    ) -> Result<WordExpansion, ExpandError> {
        let mut steps = 0;
        self.process_counting(word, env, &mut steps)
    }

    /// As [`Lexer::process_word_with_matches`], adding the pattern matcher's
    /// work to `steps` (tests use it to show the work stays bounded).
    pub(crate) fn process_counting(
        &self,
        word: &str,
        env: &dyn Env,
        steps: &mut u64,
    ) -> Result<WordExpansion, ExpandError> {
        let mut sw = ShellWord {
            lex: *self,
            src: word,
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
            words_buf: String::new(),
            vars: VarUse::default(),
            steps: 0,
        };
        // Go's text/scanner skips a byte order mark at the very start.
        if word.starts_with('\u{FEFF}') {
            sw.pos = '\u{FEFF}'.len_utf8();
        }
        let raw = sw.raw_escapes;
        let out = sw.process_stop_on(None, raw);
        *steps += sw.steps;
        match out {
            Ok((word, words)) => Ok(WordExpansion {
                word,
                words,
                vars: sw.vars,
            }),
            Err((offset, kind)) => Err(ExpandError {
                word: word.to_string(),
                offset,
                kind,
                vars: Box::new(sw.vars),
            }),
        }
    }
}

/// An error inside the lexer: byte offset and what went wrong.
type Fail = (usize, ExpandErrorKind);

/// The state of one expansion.
struct ShellWord<'a> {
    lex: Lexer,
    src: &'a str,
    pos: usize,
    env: &'a dyn Env,
    raw_escapes: bool,
    /// Shared by nested `process_stop_on` calls, as BuildKit's is: a nested
    /// `${v:-w}` clears what the enclosing word had collected for its
    /// current split word. Kept for exact `ProcessWords` compatibility.
    words_buf: String,
    vars: VarUse,
    steps: u64,
}

/// Word splitting state of one `process_stop_on` call.
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
        }
        self.words
    }
}

/// Go's `string(rune)` of a scanner result: EOF prints as U+FFFD.
fn rune_str(ch: Option<char>) -> char {
    ch.unwrap_or('\u{FFFD}')
}

impl ShellWord<'_> {
    /// Counts `n` units of work against the limit.
    fn charge(&mut self, n: usize) -> Result<(), Fail> {
        self.steps += n as u64;
        if self.steps > self.lex.work_limit {
            return Err((
                self.pos,
                ExpandErrorKind::TooComplex {
                    limit: self.lex.work_limit,
                },
            ));
        }
        Ok(())
    }

    fn over_limit(&self) -> Fail {
        (
            self.pos,
            ExpandErrorKind::TooComplex {
                limit: self.lex.work_limit,
            },
        )
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Reads up to `stop` (consumed) or the end of the word.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), Fail> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let out = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        out
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), Fail> {
        let mut result = String::new();
        self.words_buf.clear();
        let mut words = Words::default();
        let quotes = !self.lex.skip_process_quotes;

        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish(&mut self.words_buf)));
            }
            match ch {
                '$' => {
                    let tmp = self.process_dollar()?;
                    self.charge(tmp.len())?;
                    result.push_str(&tmp);
                    words.add_string(&mut self.words_buf, &tmp);
                }
                '<' => {
                    let tmp = self.process_possible_heredoc();
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.words_buf, &tmp);
                }
                '\'' if quotes => {
                    let tmp = self.process_single_quote()?;
                    self.charge(tmp.len())?;
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.words_buf, &tmp);
                }
                '"' if quotes => {
                    let tmp = self.process_double_quote()?;
                    self.charge(tmp.len())?;
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.words_buf, &tmp);
                }
                _ => {
                    self.next();
                    let mut ch = ch;
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            words.add_raw_char(&mut self.words_buf, ch);
                            result.push(ch);
                        }
                        // The escape protects the next character; a
                        // trailing escape is dropped.
                        match self.next() {
                            None => break,
                            Some(c) => {
                                ch = c;
                                words.add_raw_char(&mut self.words_buf, c);
                            }
                        }
                    } else {
                        words.add_char(&mut self.words_buf, ch);
                    }
                    result.push(ch);
                }
            }
        }
        if let Some(stop) = stop {
            return Err((self.pos, ExpandErrorKind::UnexpectedEnd(stop)));
        }
        Ok((result, words.finish(&mut self.words_buf)))
    }

    fn process_single_quote(&mut self) -> Result<String, Fail> {
        // Everything up to the next ' is literal; a ' cannot be escaped.
        let start = self.pos;
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => return Err((start, ExpandErrorKind::UnterminatedSingleQuote)),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, Fail> {
        // Literal except `$` and the escape, which protects only `"`, `$`
        // and itself; other escapes stay as written.
        let start = self.pos;
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err((start, ExpandErrorKind::UnterminatedDoubleQuote)),
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    self.charge(v.len())?;
                    result.push_str(&v);
                }
                Some(mut ch) => {
                    self.next();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                self.next();
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(v) => {
                self.vars.matched.insert(name.to_string());
                Some(v.to_string())
            }
            None => {
                self.vars.unmatched.insert(name.to_string());
                None
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, Fail> {
        let start = self.pos;
        self.next();

        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }

        self.next();
        match self.peek() {
            None => return Err((start, ExpandErrorKind::MissingBrace)),
            Some('{' | '}' | ':') => return Err((start, ExpandErrorKind::BadSubstitution)),
            Some(_) => {}
        }
        let name = self.process_name();
        let first = self.next();
        let mut chs = String::from(rune_str(first));
        let mut ch = first;
        let mut null_is_unset = false;

        match first {
            Some('}') => {
                return Ok(match self.get_env(&name) {
                    Some(v) => v,
                    None if self.lex.skip_unset_env => format!("${{{name}}}"),
                    None => String::new(),
                });
            }
            Some('/') => return self.process_replace(start, name),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {}
            _ => return Err((start, ExpandErrorKind::UnsupportedModifier(chs))),
        }

        if first == Some(':') {
            null_is_unset = true;
            ch = self.next();
            chs.push(rune_str(ch));
        }
        let raw_escapes = matches!(ch, Some('#' | '%'));
        if null_is_unset && raw_escapes {
            return Err((start, ExpandErrorKind::UnsupportedModifier(chs)));
        }
        let word = match self.process_stop_on(Some('}'), raw_escapes) {
            Ok((w, _)) => w,
            Err(e) => {
                if self.peek().is_none() {
                    return Err((start, ExpandErrorKind::MissingBrace));
                }
                return Err(e);
            }
        };

        let value = self.get_env(&name);
        if self.lex.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}{chs}{word}}}"));
        }
        let empty = value.as_deref() == Some("");

        match ch {
            Some('-') => match value {
                Some(v) if !(null_is_unset && v.is_empty()) => Ok(v),
                _ => Ok(word),
            },
            Some('+') => match value {
                Some(v) if !(null_is_unset && v.is_empty()) => Ok(word),
                _ => Ok(String::new()),
            },
            Some('?') => match value {
                None => Err((
                    start,
                    ExpandErrorKind::Unset {
                        name,
                        message: if word.is_empty() {
                            "is not allowed to be unset".to_string()
                        } else {
                            word
                        },
                    },
                )),
                Some(_) if null_is_unset && empty => Err((
                    start,
                    ExpandErrorKind::Unset {
                        name,
                        message: if word.is_empty() {
                            "is not allowed to be empty".to_string()
                        } else {
                            word
                        },
                    },
                )),
                Some(v) => Ok(v),
            },
            Some(op @ ('%' | '#')) => {
                // `%`/`#` take the shortest match, `%%`/`##` the longest.
                let (pattern, greedy) = match word.strip_prefix(op) {
                    Some(p) => (p.to_string(), true),
                    None => (word, false),
                };
                let value = value.unwrap_or_default();
                if op == '%' {
                    self.trim_suffix(start, &pattern, &value, greedy)
                } else {
                    self.trim_prefix(start, &pattern, &value, greedy)
                }
            }
            _ => Err((start, ExpandErrorKind::UnsupportedModifier(chs))),
        }
    }

    fn process_replace(&mut self, start: usize, name: String) -> Result<String, Fail> {
        let replace_all = self.peek() == Some('/');
        if replace_all {
            self.next();
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(e) => {
                if self.peek().is_none() {
                    return Err((start, ExpandErrorKind::MissingSlash));
                }
                return Err(e);
            }
        };
        let replacement = match self.process_stop_on(Some('}'), true) {
            Ok((r, _)) => r,
            Err(e) => {
                if self.peek().is_none() {
                    return Err((start, ExpandErrorKind::MissingBrace));
                }
                return Err(e);
            }
        };
        let value = self.get_env(&name);
        if self.lex.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        let value = value.unwrap_or_default();
        self.charge(value.len() + pattern.len() + replacement.len())?;
        let re = Glob::compile(&pattern, true, false).map_err(|e| {
            (
                start,
                ExpandErrorKind::InvalidPattern {
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                },
            )
        })?;
        let limit = self.lex.work_limit;
        if replace_all {
            glob::replace_all(&re, &value, &replacement, &mut self.steps, limit)
                .map_err(|_| self.over_limit())
        } else {
            let found = re
                .find_at(&value, 0, &mut self.steps, limit)
                .map_err(|_| self.over_limit())?;
            Ok(match found {
                Some((a, b)) => format!("{}{}{}", &value[..a], replacement, &value[b..]),
                None => value,
            })
        }
    }

    fn trim_prefix(
        &mut self,
        start: usize,
        pattern: &str,
        value: &str,
        greedy: bool,
    ) -> Result<String, Fail> {
        self.charge(value.len() + pattern.len())?;
        let re = Glob::compile(pattern, greedy, true).map_err(|e| {
            (
                start,
                ExpandErrorKind::InvalidPattern {
                    pattern: pattern.to_string(),
                    reason: e.to_string(),
                },
            )
        })?;
        let found = re
            .find_at(value, 0, &mut self.steps, self.lex.work_limit)
            .map_err(|_| self.over_limit())?;
        Ok(match found {
            Some((_, end)) => value[end..].to_string(),
            None => value.to_string(),
        })
    }

    fn trim_suffix(
        &mut self,
        start: usize,
        pattern: &str,
        value: &str,
        greedy: bool,
    ) -> Result<String, Fail> {
        // Matching the reversed pattern on the reversed value turns "shortest
        // rightmost" into a leftmost search, as BuildKit does.
        let pattern = glob::reverse_pattern(pattern);
        let value = glob::reverse_string(value);
        let trimmed = self.trim_prefix(start, &pattern, &value, greedy)?;
        Ok(glob::reverse_string(&trimmed))
    }

    /// Reads a variable name: letters, digits and `_`; a leading digit reads
    /// digits only; a special parameter (`@*#?-$!0`) is one character.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_go_digit(ch) {
                while let Some(c) = self.peek().filter(|&c| is_go_digit(c)) {
                    self.next();
                    name.push(c);
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.next();
                return ch.to_string();
            }
            if !is_go_letter(ch) && !is_go_digit(ch) && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    /// `<<` (with any following blanks) is kept together so a heredoc
    /// marker stays one word.
    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|&c| matches!(c, '\t' | '\r' | ' ')) {
            out.push(c);
            self.next();
        }
        out
    }
}

/// POSIX special parameters, which never have a value in a Dockerfile.
fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// Go's `unicode.IsLetter`: general category L.
pub(crate) fn is_go_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        Gc::UppercaseLetter
            | Gc::LowercaseLetter
            | Gc::TitlecaseLetter
            | Gc::ModifierLetter
            | Gc::OtherLetter
    )
}

/// Go's `unicode.IsDigit`: general category Nd.
pub(crate) fn is_go_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    get_general_category(c) == Gc::DecimalNumber
}
