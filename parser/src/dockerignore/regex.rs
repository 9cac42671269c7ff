//! The part of Go's `regexp` syntax that moby's pattern matcher can
//! generate, compiled to a Thompson NFA and run without backtracking.
//!
//! patternmatcher turns a .dockerignore pattern into a Go regular
//! expression by text substitution, and some user input reaches that
//! expression unchanged (`[`, `]`, `^`, `\x`). To decide exactly as it does,
//! this module parses that expression with Go's rules (Perl flags: `.`
//! excludes `\n`, classes may match `\n`, `^`/`$` anchor the whole text, `[`
//! inside a class is literal, `[:alpha:]` classes, `\d\s\w`). The `regex`
//! crate parses some of these differently (nested classes, Unicode `\d`), so
//! it cannot be used on the same text. Matching is O(text x program).

use super::gopath::decode_rune;

/// A Go regexp feature kiln does not implement (BuildKit accepts it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegexError {
    /// Go rejects the expression too (BuildKit fails at match time).
    Invalid(&'static str),
    /// Go accepts it but kiln does not support it (e.g. `\b`, `\pL`, `\Q`).
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Inst {
    /// A character in (or, negated, not in) the ranges.
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
    /// Any character but `\n`.
    AnyNotNl,
    Split(usize, usize),
    Jump(usize),
    BeginText,
    EndText,
    Match,
}

#[derive(Debug, Clone)]
enum Node {
    Class(Vec<(char, char)>, bool),
    AnyNotNl,
    BeginText,
    EndText,
    Concat(Vec<Node>),
    Star(Box<Node>),
    Plus(Box<Node>),
    Quest(Box<Node>),
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub(crate) struct Regex {
    prog: Vec<Inst>,
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 1000;

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn concat(&mut self, in_group: bool) -> Result<Node, RegexError> {
        let mut items: Vec<Node> = Vec::new();
        // Whether the last item may take a repetition operator.
        let mut last_repeatable = false;
        loop {
            let Some(c) = self.peek() else {
                if in_group {
                    return Err(RegexError::Invalid("missing closing )"));
                }
                break;
            };
            match c {
                ')' => {
                    if !in_group {
                        return Err(RegexError::Invalid("unexpected )"));
                    }
                    self.bump();
                    break;
                }
                '*' | '+' | '?' => {
                    self.bump();
                    if !last_repeatable {
                        return Err(RegexError::Invalid(if items.is_empty() {
                            "missing argument to repetition operator"
                        } else {
                            "invalid nested repetition operator"
                        }));
                    }
                    // A trailing `?` makes it lazy, which does not change
                    // whether a whole text matches.
                    if self.peek() == Some('?') {
                        self.bump();
                    }
                    let Some(last) = items.pop() else {
                        return Err(RegexError::Invalid(
                            "missing argument to repetition operator",
                        ));
                    };
                    items.push(match c {
                        '*' => Node::Star(Box::new(last)),
                        '+' => Node::Plus(Box::new(last)),
                        _ => Node::Quest(Box::new(last)),
                    });
                    last_repeatable = false;
                    continue;
                }
                '|' => return Err(RegexError::Unsupported("|".into())),
                '{' => return Err(RegexError::Unsupported("{".into())),
                '(' => {
                    self.bump();
                    if self.peek() == Some('?') {
                        return Err(RegexError::Unsupported("(?".into()));
                    }
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(RegexError::Invalid("expression nests too deeply"));
                    }
                    let inner = self.concat(true)?;
                    self.depth -= 1;
                    items.push(inner);
                }
                '.' => {
                    self.bump();
                    items.push(Node::AnyNotNl);
                }
                '^' => {
                    self.bump();
                    items.push(Node::BeginText);
                }
                '$' => {
                    self.bump();
                    items.push(Node::EndText);
                }
                '[' => {
                    self.bump();
                    let (ranges, negated) = self.class()?;
                    items.push(Node::Class(ranges, negated));
                }
                '\\' => {
                    self.bump();
                    items.push(self.escape_atom()?);
                }
                _ => {
                    self.bump();
                    items.push(Node::Class(vec![(c, c)], false));
                }
            }
            last_repeatable = true;
        }
        Ok(Node::Concat(items))
    }

    /// After a `\` outside a class.
    fn escape_atom(&mut self) -> Result<Node, RegexError> {
        match self.peek() {
            Some('A') => {
                self.bump();
                return Ok(Node::BeginText);
            }
            Some('z') => {
                self.bump();
                return Ok(Node::EndText);
            }
            Some(c @ ('b' | 'B' | 'C' | 'Q' | 'p' | 'P')) => {
                return Err(RegexError::Unsupported(format!("\\{c}")));
            }
            _ => {}
        }
        if let Some((ranges, negated)) = self.perl_class() {
            return Ok(Node::Class(ranges, negated));
        }
        let c = self.escape_char()?;
        Ok(Node::Class(vec![(c, c)], false))
    }

    /// `\d \D \s \S \w \W` (ASCII, as in Go) after the `\`.
    fn perl_class(&mut self) -> Option<(Vec<(char, char)>, bool)> {
        let (ranges, negated): (&[(char, char)], bool) = match self.peek()? {
            'd' => (&[('0', '9')], false),
            'D' => (&[('0', '9')], true),
            's' => (&[('\t', '\n'), ('\x0c', '\r'), (' ', ' ')], false),
            'S' => (&[('\t', '\n'), ('\x0c', '\r'), (' ', ' ')], true),
            'w' => (&[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')], false),
            'W' => (&[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')], true),
            _ => return None,
        };
        self.bump();
        Some((ranges.to_vec(), negated))
    }

    /// One escaped character after the `\` (Go's `parseEscape`).
    fn escape_char(&mut self) -> Result<char, RegexError> {
        let Some(c) = self.bump() else {
            return Err(RegexError::Invalid(
                "trailing backslash at end of expression",
            ));
        };
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            return Ok(c);
        }
        match c {
            '1'..='7' if !matches!(self.peek(), Some('0'..='7')) => {
                Err(RegexError::Invalid("invalid escape sequence"))
            }
            '0'..='7' => {
                let mut v = c as u32 - '0' as u32;
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ '0'..='7') => {
                            self.bump();
                            v = v * 8 + (d as u32 - '0' as u32);
                        }
                        _ => break,
                    }
                }
                char::from_u32(v).ok_or(RegexError::Invalid("invalid escape sequence"))
            }
            'x' => self.hex_escape(),
            'a' => Ok('\x07'),
            'f' => Ok('\x0c'),
            'n' => Ok('\n'),
            'r' => Ok('\r'),
            't' => Ok('\t'),
            'v' => Ok('\x0b'),
            _ => Err(RegexError::Invalid("invalid escape sequence")),
        }
    }

    fn hex_escape(&mut self) -> Result<char, RegexError> {
        const BAD: RegexError = RegexError::Invalid("invalid escape sequence");
        let digit = |c: Option<char>| c.and_then(|c| c.to_digit(16));
        if self.peek() == Some('{') {
            self.bump();
            let mut v: u32 = 0;
            let mut n = 0;
            loop {
                match self.bump() {
                    Some('}') if n > 0 => break,
                    c => {
                        let d = digit(c).ok_or(BAD)?;
                        v = v
                            .checked_mul(16)
                            .and_then(|v| v.checked_add(d))
                            .ok_or(BAD)?;
                        if v > 0x10FFFF {
                            return Err(BAD);
                        }
                        n += 1;
                    }
                }
            }
            return char::from_u32(v).ok_or(BAD);
        }
        let hi = digit(self.bump()).ok_or(BAD)?;
        let lo = digit(self.bump()).ok_or(BAD)?;
        char::from_u32(hi * 16 + lo).ok_or(BAD)
    }

    /// A class after its `[` (Go's `parseClass` with Perl flags).
    fn class(&mut self) -> Result<(Vec<(char, char)>, bool), RegexError> {
        const MISSING: RegexError = RegexError::Invalid("missing closing ]");
        let mut negated = false;
        if self.peek() == Some('^') {
            self.bump();
            negated = true;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            match self.peek() {
                None => return Err(MISSING),
                Some(']') if !first => {
                    self.bump();
                    break;
                }
                _ => {}
            }
            first = false;
            if self.rest().len() > 2 && self.rest().starts_with("[:") {
                if let Some(i) = self.rest()[2..].find(":]") {
                    let name = &self.rest()[2..2 + i];
                    let set = posix_class(name)
                        .ok_or(RegexError::Invalid("invalid character class range"))?;
                    ranges.extend_from_slice(&set.0);
                    if set.1 {
                        return Err(RegexError::Unsupported(format!("[:{name}:]")));
                    }
                    self.pos += 2 + i + 2;
                    continue;
                }
            }
            if self.rest().starts_with('\\') {
                let save = self.pos;
                self.bump();
                if let Some(c @ ('p' | 'P')) = self.peek() {
                    return Err(RegexError::Unsupported(format!("\\{c}")));
                }
                if let Some((r, neg)) = self.perl_class() {
                    if neg {
                        ranges.extend(negate(&r));
                    } else {
                        ranges.extend(r);
                    }
                    continue;
                }
                self.pos = save;
            }
            let lo = self.class_char()?;
            let mut hi = lo;
            let rest = self.rest().as_bytes();
            if rest.len() >= 2 && rest[0] == b'-' && rest[1] != b']' {
                self.bump();
                hi = self.class_char()?;
                if hi < lo {
                    return Err(RegexError::Invalid("invalid character class range"));
                }
            }
            ranges.push((lo, hi));
        }
        Ok((ranges, negated))
    }

    fn class_char(&mut self) -> Result<char, RegexError> {
        match self.bump() {
            None => Err(RegexError::Invalid("missing closing ]")),
            Some('\\') => self.escape_char(),
            Some(c) => Ok(c),
        }
    }
}

/// POSIX classes Go knows: (ranges, negated-form-unsupported flag).
fn posix_class(name: &str) -> Option<(Vec<(char, char)>, bool)> {
    let (neg, base) = match name.strip_prefix('^') {
        Some(b) => (true, b),
        None => (false, name),
    };
    let r: &[(char, char)] = match base {
        "alnum" => &[('0', '9'), ('A', 'Z'), ('a', 'z')],
        "alpha" => &[('A', 'Z'), ('a', 'z')],
        "ascii" => &[('\x00', '\x7f')],
        "blank" => &[('\t', '\t'), (' ', ' ')],
        "cntrl" => &[('\x00', '\x1f'), ('\x7f', '\x7f')],
        "digit" => &[('0', '9')],
        "graph" => &[('!', '~')],
        "lower" => &[('a', 'z')],
        "print" => &[(' ', '~')],
        "punct" => &[('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
        "space" => &[('\t', '\r'), (' ', ' ')],
        "upper" => &[('A', 'Z')],
        "word" => &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')],
        "xdigit" => &[('0', '9'), ('A', 'F'), ('a', 'f')],
        _ => return None,
    };
    if neg {
        return Some((negate(r), false));
    }
    Some((r.to_vec(), false))
}

/// The complement of sorted, non-overlapping ranges.
fn negate(r: &[(char, char)]) -> Vec<(char, char)> {
    let mut out = Vec::new();
    let mut next: u32 = 0;
    for &(lo, hi) in r {
        if (lo as u32) > next {
            push_range(&mut out, next, lo as u32 - 1);
        }
        next = hi as u32 + 1;
    }
    push_range(&mut out, next, 0x10FFFF);
    out
}

/// Pushes [lo, hi] skipping the surrogate gap.
fn push_range(out: &mut Vec<(char, char)>, lo: u32, hi: u32) {
    if lo > hi {
        return;
    }
    if lo < 0xD800 {
        if let (Some(a), Some(b)) = (char::from_u32(lo), char::from_u32(hi.min(0xD7FF))) {
            out.push((a, b));
        }
    }
    if hi > 0xDFFF {
        if let (Some(a), Some(b)) = (char::from_u32(lo.max(0xE000)), char::from_u32(hi)) {
            out.push((a, b));
        }
    }
}

impl Regex {
    /// Parses and compiles `expr` with Go's rules.
    pub(crate) fn new(expr: &str) -> Result<Regex, RegexError> {
        let mut p = Parser {
            s: expr,
            pos: 0,
            depth: 0,
        };
        let node = p.concat(false)?;
        let mut prog = Vec::new();
        emit(&node, &mut prog);
        prog.push(Inst::Match);
        Ok(Regex { prog })
    }

    /// Whether the expression matches all of `text`... as Go's
    /// `MatchString` on an expression that anchors itself.
    pub(crate) fn is_match(&self, text: &[u8]) -> bool {
        self.match_at_boundaries(text, |k| k == text.len())
    }

    /// Whether the expression matches `text[..k]` for some `k` with
    /// `boundary(k)` true; one pass over `text`.
    pub(crate) fn match_at_boundaries(
        &self,
        text: &[u8],
        boundary: impl Fn(usize) -> bool,
    ) -> bool {
        let n = self.prog.len();
        let mut cur: Vec<usize> = Vec::new();
        let mut next: Vec<usize> = Vec::new();
        let mut seen = vec![usize::MAX; n];
        let mut stamp = 0usize;
        let mut stack = Vec::new();
        let mut tmp = Vec::new();
        // States before following empty-width instructions.
        let mut pending = vec![0usize];
        let mut pos = 0;
        loop {
            let at_end_check = boundary(pos);
            // Closure at this position, assuming not at the end of the text.
            stamp += 2;
            cur.clear();
            for &pc in &pending {
                self.closure(pc, pos, false, &mut seen, stamp, &mut stack, &mut cur);
            }
            if at_end_check {
                // Check for a match of text[..pos]: `$` holds here.
                tmp.clear();
                for &pc in &pending {
                    self.closure(pc, pos, true, &mut seen, stamp + 1, &mut stack, &mut tmp);
                }
                if tmp.iter().any(|&pc| self.prog[pc] == Inst::Match) {
                    return true;
                }
            }
            if pos >= text.len() || cur.is_empty() {
                return false;
            }
            let (ch, w) = decode_rune(&text[pos..]);
            next.clear();
            for &pc in &cur {
                let ok = match &self.prog[pc] {
                    Inst::Class { ranges, negated } => {
                        ranges.iter().any(|&(lo, hi)| lo <= ch && ch <= hi) != *negated
                    }
                    Inst::AnyNotNl => ch != '\n',
                    _ => false,
                };
                if ok {
                    next.push(pc + 1);
                }
            }
            std::mem::swap(&mut pending, &mut next);
            pos += w;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn closure(
        &self,
        pc: usize,
        pos: usize,
        at_end: bool,
        seen: &mut [usize],
        stamp: usize,
        stack: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) {
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if seen[pc] == stamp {
                continue;
            }
            seen[pc] = stamp;
            match self.prog[pc] {
                Inst::Jump(t) => stack.push(t),
                Inst::Split(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Inst::BeginText => {
                    if pos == 0 {
                        stack.push(pc + 1);
                    }
                }
                Inst::EndText => {
                    if at_end {
                        stack.push(pc + 1);
                    }
                }
                _ => out.push(pc),
            }
        }
    }
}

fn emit(node: &Node, prog: &mut Vec<Inst>) {
    match node {
        Node::Class(r, neg) => prog.push(Inst::Class {
            ranges: r.clone(),
            negated: *neg,
        }),
        Node::AnyNotNl => prog.push(Inst::AnyNotNl),
        Node::BeginText => prog.push(Inst::BeginText),
        Node::EndText => prog.push(Inst::EndText),
        Node::Concat(items) => items.iter().for_each(|n| emit(n, prog)),
        Node::Star(inner) => {
            let split = prog.len();
            prog.push(Inst::Jump(0));
            emit(inner, prog);
            prog.push(Inst::Jump(split));
            prog[split] = Inst::Split(split + 1, prog.len());
        }
        Node::Plus(inner) => {
            let start = prog.len();
            emit(inner, prog);
            prog.push(Inst::Split(start, prog.len() + 1));
        }
        Node::Quest(inner) => {
            let split = prog.len();
            prog.push(Inst::Jump(0));
            emit(inner, prog);
            prog[split] = Inst::Split(split + 1, prog.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(re: &str, text: &str) -> bool {
        Regex::new(re).unwrap().is_match(text.as_bytes())
    }

    #[test]
    fn go_syntax_subset() {
        assert!(m("^a[^/]*$", "abc"));
        assert!(!m("^a[^/]*$", "ab/c"));
        assert!(m("^(.*/)?b$", "x/y/b"));
        assert!(m("^(.*/)?b$", "b"));
        assert!(!m("^(.*/)?b$", "x\n/b"));
        assert!(m("^[^/]$", "\n"));
        assert!(m("^\\.$", "."));
        assert!(!m("^\\.$", "x"));
        assert!(m("^[[:alpha:]]$", "q"));
        assert!(!m("^[[:alpha:]]$", "1"));
        assert!(m("^[[^/]*]$", "^^^]"));
        assert!(m("^a\\db$", "a5b"));
        assert!(!m("^a\\db$", "adb"));
        assert!(!m("^a^b$", "ab"));
        assert!(m("^[!a]$", "!"));
        assert!(m("^\\x41$", "A"));
        assert!(m("^\\101$", "A"));
        assert!(m("^é$", "é"));
        assert!(m("^\u{FFFD}$", "\u{FFFD}"));
        assert!(Regex::new("^\\e$").is_err());
        assert!(Regex::new("^[z-a]$").is_err());
        assert!(Regex::new("^[[:nope:]]$").is_err());
        assert!(matches!(
            Regex::new("^\\b$"),
            Err(RegexError::Unsupported(_))
        ));
    }

    #[test]
    fn invalid_utf8_is_one_replacement_char_per_byte() {
        let r = Regex::new("^a[^/][^/]b$").unwrap();
        assert!(r.is_match(b"a\xff\xfeb"));
        let r = Regex::new("^a\u{FFFD}b$").unwrap();
        assert!(r.is_match(b"a\xffb"));
    }

    #[test]
    fn boundaries() {
        let r = Regex::new("^a/[^/]*$").unwrap();
        let text = b"a/b/c/d";
        let at = |k: usize| k == text.len() || text[k] == b'/';
        assert!(r.match_at_boundaries(text, at));
        let r = Regex::new("^q$").unwrap();
        assert!(!r.match_at_boundaries(text, at));
    }
}
