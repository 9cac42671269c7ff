//! The shell patterns of `${v#p}`, `${v%p}` and `${v/p/r}`.
//!
//! BuildKit turns such a pattern into a Go regular expression (`*` becomes
//! `.*` or `.*?`, `?` becomes `.`, everything else is literal) and lets Go's
//! `regexp` package find the leftmost-first match. This module compiles the
//! pattern to a tiny program and runs it on a Pike VM with the same
//! leftmost-first priorities, so the chosen match is exactly Go's.
//!
//! Written by hand rather than with the `regex` crate because the `regex`
//! crate reports leftmost-first matches only for its own syntax and offers no
//! lazy/greedy choice per call without building strings to parse; the
//! language here has three tokens, and a dedicated VM lets us count steps to
//! prove the work stays bounded by `value length x pattern length`.

use std::fmt;

/// Why a shell pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatternError {
    /// The character after the backslash, or `None` for a trailing backslash.
    pub(crate) after: Option<char>,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Go prints the rune EOF (-1) with %c as U+FFFD.
        let c = self.after.unwrap_or('\u{FFFD}');
        write!(f, "invalid escape '\\{c}'")
    }
}

/// One instruction of the matching program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inst {
    /// One exact character.
    Char(char),
    /// Any character but `\n` (Go's `.` without the `s` flag).
    AnyNotNl,
    /// Try `.0` first, then `.1`.
    Split(usize, usize),
    /// Continue at the target.
    Jump(usize),
    /// A match ends here.
    Match,
}

/// The work budget ran out (see [`super::Lexer::with_work_limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverLimit;

/// A compiled shell pattern.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    prog: Vec<Inst>,
    anchored: bool,
}

impl Glob {
    /// Compiles `pattern` as BuildKit's `convertShellPatternToRegex` does.
    ///
    /// `greedy` picks `.*` over `.*?` for `*`; `anchored` ties the match to
    /// the start of the value.
    pub(crate) fn compile(
        pattern: &str,
        greedy: bool,
        anchored: bool,
    ) -> Result<Glob, PatternError> {
        let mut prog = Vec::with_capacity(pattern.len() * 2 + 1);
        let mut chars = pattern.chars().peekable();
        // Go's text/scanner drops a byte order mark at the very start.
        if chars.peek() == Some(&'\u{FEFF}') {
            chars.next();
        }
        while let Some(tok) = chars.next() {
            match tok {
                '*' => {
                    let split = prog.len();
                    // Filled in below once the loop body's size is known.
                    prog.push(Inst::Jump(0));
                    prog.push(Inst::AnyNotNl);
                    prog.push(Inst::Jump(split));
                    let after = prog.len();
                    prog[split] = if greedy {
                        Inst::Split(split + 1, after)
                    } else {
                        Inst::Split(after, split + 1)
                    };
                }
                '?' => prog.push(Inst::AnyNotNl),
                '\\' => {
                    // `\}` and `\/` written inside `${}` only protect the
                    // delimiter; the escape is not part of the pattern.
                    if matches!(chars.peek(), Some('}') | Some('/')) {
                        continue;
                    }
                    match chars.next() {
                        Some(c @ ('*' | '?' | '\\')) => prog.push(Inst::Char(c)),
                        other => return Err(PatternError { after: other }),
                    }
                }
                c => prog.push(Inst::Char(c)),
            }
        }
        prog.push(Inst::Match);
        Ok(Glob { prog, anchored })
    }

    /// The leftmost-first match in `text` starting the search at byte
    /// `from`, as Go's `FindStringIndex` (and each step of
    /// `ReplaceAllString`) reports it. `steps` counts VM work; past `limit`
    /// the search gives up.
    pub(crate) fn find_at(
        &self,
        text: &str,
        from: usize,
        steps: &mut u64,
        limit: u64,
    ) -> Result<Option<(usize, usize)>, OverLimit> {
        let n = self.prog.len();
        let mut clist = Threads::new(n);
        let mut nlist = Threads::new(n);
        let mut matched: Option<(usize, usize)> = None;
        let mut stack = Vec::new();
        let mut pos = from;
        let mut iter = text[from..].char_indices().map(|(i, c)| (i + from, c));
        let mut next = iter.next();
        loop {
            if matched.is_none() && (!self.anchored || pos == from) {
                // A new thread starting here has the lowest priority.
                self.add(&mut clist, 0, pos, &mut stack, steps);
            }
            if clist.is_empty() {
                break;
            }
            let ch = next.map(|(_, c)| c);
            let next_pos = next.map_or(pos, |(i, c)| i + c.len_utf8());
            for k in 0..clist.len() {
                *steps += 1;
                if *steps > limit {
                    return Err(OverLimit);
                }
                let (pc, start) = clist.get(k);
                match self.prog[pc] {
                    Inst::Match => {
                        matched = Some((start, pos));
                        // Lower-priority threads can no longer win.
                        break;
                    }
                    Inst::Char(c) => {
                        if ch == Some(c) {
                            self.add(&mut nlist, pc + 1, start, &mut stack, steps);
                        }
                    }
                    Inst::AnyNotNl => {
                        if matches!(ch, Some(c) if c != '\n') {
                            self.add(&mut nlist, pc + 1, start, &mut stack, steps);
                        }
                    }
                    Inst::Split(..) | Inst::Jump(_) => {}
                }
            }
            if next.is_none() {
                break;
            }
            std::mem::swap(&mut clist, &mut nlist);
            nlist.clear();
            pos = next_pos;
            next = iter.next();
        }
        Ok(matched)
    }

    /// Follows jumps and splits from `pc` in priority order.
    fn add(
        &self,
        list: &mut Threads,
        pc: usize,
        start: usize,
        stack: &mut Vec<usize>,
        steps: &mut u64,
    ) {
        // An explicit stack keeps deep patterns from overflowing the call stack.
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            *steps += 1;
            if !list.mark(pc) {
                continue;
            }
            match self.prog[pc] {
                Inst::Jump(t) => stack.push(t),
                Inst::Split(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                _ => list.push(pc, start),
            }
        }
    }
}

/// A sparse set of threads in priority order.
struct Threads {
    seen: Vec<u32>,
    generation: u32,
    list: Vec<(usize, usize)>,
}

impl Threads {
    fn new(n: usize) -> Threads {
        Threads {
            seen: vec![0; n],
            generation: 1,
            list: Vec::new(),
        }
    }
    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    fn len(&self) -> usize {
        self.list.len()
    }
    fn get(&self, k: usize) -> (usize, usize) {
        self.list[k]
    }
    /// Marks `pc` as visited; false when it already was.
    fn mark(&mut self, pc: usize) -> bool {
        if self.seen[pc] == self.generation {
            return false;
        }
        self.seen[pc] = self.generation;
        true
    }
    fn push(&mut self, pc: usize, start: usize) {
        self.list.push((pc, start));
    }
    fn clear(&mut self) {
        self.list.clear();
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.seen.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
    }
}

/// Go's `regexp.ReplaceAllString(value, template)` for a pattern without
/// groups: every non-overlapping match is replaced by `template` with `$0`
/// expanded to the match.
pub(crate) fn replace_all(
    glob: &Glob,
    value: &str,
    template: &str,
    steps: &mut u64,
    limit: u64,
) -> Result<String, OverLimit> {
    let mut out = String::with_capacity(value.len());
    let mut last_end = 0;
    let mut search = 0;
    while search <= value.len() {
        let Some((a, b)) = glob.find_at(value, search, steps, limit)? else {
            break;
        };
        // Each replacement copies the template: count it so nested
        // replacements cannot grow the output without bound.
        *steps += template.len() as u64 + 1;
        if *steps > limit {
            return Err(OverLimit);
        }
        out.push_str(&value[last_end..a]);
        // An empty match right after a match is not replaced again.
        if b > last_end || a == 0 {
            expand_template(&mut out, template, &value[a..b]);
        }
        last_end = b;
        let width = value[search..].chars().next().map_or(0, char::len_utf8);
        if search + width > b {
            search += width;
        } else if search + 1 > b {
            search += 1;
        } else {
            search = b;
        }
    }
    out.push_str(&value[last_end..]);
    Ok(out)
}

/// Go's `Regexp.Expand` for a pattern with no groups: `$$` is `$`, `$0` and
/// `${0}` are the match, any other well-formed `$name` is empty, and a
/// malformed `$` stays as it is.
fn expand_template(out: &mut String, template: &str, matched: &str) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        match extract_name(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.push_str(matched);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// The name after a `$` in a replacement template and the rest, if well formed.
fn extract_name(s: &str) -> Option<(&str, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !(super::lex::is_go_letter(c) || super::lex::is_go_digit(c) || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    if brace {
        let after = body[end..].strip_prefix('}')?;
        Some((name, after))
    } else {
        Some((name, &body[end..]))
    }
}

/// Reverses a pattern while keeping each `\x` escape in front of its
/// character (BuildKit's `reversePattern`).
pub(crate) fn reverse_pattern(pattern: &str) -> String {
    let runes: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; runes.len()];
    let Some(last) = runes.len().checked_sub(1) else {
        return String::new();
    };
    let mut i = 0;
    while i <= last {
        let tok = runes[i];
        let out_idx = last - i;
        if tok == '\\' && i != last {
            out[out_idx - 1] = tok;
            out[out_idx] = runes[i + 1];
            i += 2;
        } else {
            out[out_idx] = tok;
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// The characters of `s` in reverse order.
pub(crate) fn reverse_string(s: &str) -> String {
    s.chars().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(p: &str, greedy: bool, anchored: bool, v: &str) -> Option<(usize, usize)> {
        let mut steps = 0;
        Glob::compile(p, greedy, anchored)
            .unwrap()
            .find_at(v, 0, &mut steps, u64::MAX)
            .unwrap()
    }

    #[test]
    fn star_is_greedy_or_lazy() {
        assert_eq!(find("*x", true, true, "axbxc"), Some((0, 4)));
        assert_eq!(find("*x", false, true, "axbxc"), Some((0, 2)));
        assert_eq!(find("*", false, true, "abc"), Some((0, 0)));
        assert_eq!(find("*", true, true, "abc"), Some((0, 3)));
    }

    #[test]
    fn star_and_question_do_not_cross_newlines() {
        assert_eq!(find("*", true, true, "ab\ncd"), Some((0, 2)));
        assert_eq!(find("a?c", true, false, "a\nc abc"), Some((4, 7)));
    }

    #[test]
    fn unanchored_finds_leftmost() {
        assert_eq!(find("b*", true, false, "abcb"), Some((1, 4)));
        assert_eq!(find("z", true, false, "abc"), None);
        assert_eq!(find("", true, false, "abc"), Some((0, 0)));
    }

    #[test]
    fn anchored_needs_the_start() {
        assert_eq!(find("b", true, true, "ab"), None);
        assert_eq!(find("a", true, true, "ab"), Some((0, 1)));
    }

    #[test]
    fn escapes() {
        assert_eq!(find("\\*", true, true, "*a"), Some((0, 1)));
        assert_eq!(find("\\}", true, true, "}"), Some((0, 1)));
        assert_eq!(find("\\/", true, true, "/"), Some((0, 1)));
        assert!(Glob::compile("\\", true, true).is_err());
        assert!(Glob::compile("\\x", true, true).is_err());
        assert!(Glob::compile("\\\\\\", true, true).is_err());
        let e = Glob::compile("\\x", true, true).unwrap_err();
        assert_eq!(e.to_string(), "invalid escape '\\x'");
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        assert_eq!(find("(.)[{+|^$", true, true, "(.)[{+|^$!"), Some((0, 9)));
        assert_eq!(find(".", true, true, "a"), None);
    }

    #[test]
    fn reverse_keeps_escapes_in_front() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("👽\\🚀🖖"), "🖖\\🚀👽");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
        assert_eq!(reverse_string("🖖🚀👽"), "👽🚀🖖");
    }

    #[test]
    fn replace_all_like_go() {
        let mut steps = 0;
        let g = Glob::compile("o", true, false).unwrap();
        assert_eq!(
            replace_all(&g, "foo", "0", &mut steps, u64::MAX).unwrap(),
            "f00"
        );
        assert_eq!(
            replace_all(&g, "foo", "[$0$$]", &mut steps, u64::MAX).unwrap(),
            "f[o$][o$]"
        );
        assert_eq!(
            replace_all(&g, "foo", "${0}$1$x${y", &mut steps, u64::MAX).unwrap(),
            "fo${yo${y"
        );
        let empty = Glob::compile("", true, false).unwrap();
        assert_eq!(
            replace_all(&empty, "ab", "-", &mut steps, u64::MAX).unwrap(),
            "-a-b-"
        );
        let star = Glob::compile("*", true, false).unwrap();
        assert_eq!(
            replace_all(&star, "ab", "-", &mut steps, u64::MAX).unwrap(),
            "-"
        );
        assert_eq!(
            replace_all(&star, "a\nb", "-", &mut steps, u64::MAX).unwrap(),
            "-\n-"
        );
    }

    /// The VM's work is bounded by value length x pattern length: a long
    /// value with a short pattern costs a small constant per character, so
    /// `${v//p/r}` stays linear in the value (a quadratic scan would need
    /// millions of steps more here).
    #[test]
    fn replace_all_work_is_linear_in_the_value() {
        let value = "ab".repeat(50_000) + "\n" + &"x".repeat(100_000);
        for pattern in ["b", "a?", "*b", "?", "", "x*", "*"] {
            let g = Glob::compile(pattern, true, false).unwrap();
            let mut steps = 0;
            replace_all(&g, &value, "r", &mut steps, u64::MAX).unwrap();
            let bound = 16 * (value.len() as u64) * (pattern.len() as u64 + 1);
            assert!(steps <= bound, "{pattern:?}: {steps} steps > {bound}");
        }
    }
}
