//! moby's `patternmatcher`: which context paths a list of .dockerignore
//! patterns excludes.

use super::gopath::{self, BadPattern};
use super::regex::{Regex, RegexError};
use super::{IgnoreError, IgnoreErrorKind, IgnoreLine};

/// How one pattern is matched (patternmatcher's `matchType`).
#[derive(Debug, Clone)]
enum Kind {
    /// The path equals the pattern.
    Exact,
    /// `prefix**`: the path starts with `prefix`.
    Prefix(Vec<u8>),
    /// `**suffix`: the path ends with `suffix` (or is it, minus a leading `/`).
    Suffix(Vec<u8>),
    /// Anything else, through Go's regexp semantics.
    Regex(Regex),
}

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: Vec<u8>,
    exclusion: bool,
    line: usize,
    kind: Kind,
}

impl Pattern {
    /// The cleaned pattern, without its `!`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.cleaned
    }

    /// Whether this is a `!` exception (re-includes what it matches).
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// The 1-based line of the .dockerignore file it came from.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Whether the pattern matches exactly `path`.
    fn matches(&self, path: &[u8]) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned.as_slice(),
            Kind::Prefix(p) => path.starts_with(p),
            Kind::Suffix(s) => path.ends_with(s) || (s.first() == Some(&b'/') && path == &s[1..]),
            Kind::Regex(re) => re.is_match(path),
        }
    }

    /// Whether the pattern matches one of the leading directories of
    /// `parent` (`a`, `a/b`, ... `parent` itself), as patternmatcher's parent
    /// loop does; one pass over `parent`.
    fn matches_a_parent(&self, parent: &[u8]) -> bool {
        let boundary = |k: usize| k == parent.len() || parent[k] == b'/';
        match &self.kind {
            Kind::Exact => {
                let n = self.cleaned.len();
                n <= parent.len() && boundary(n) && parent[..n] == self.cleaned[..]
            }
            Kind::Prefix(p) => parent.starts_with(p) && (p.len()..=parent.len()).any(boundary),
            Kind::Suffix(_) => {
                (0..=parent.len()).any(|k| boundary(k) && self.matches(&parent[..k]))
            }
            Kind::Regex(re) => re.match_at_boundaries(parent, boundary),
        }
    }

    /// The pattern without a trailing `/**` or `/*` (fsutil's
    /// `patternWithoutTrailingGlob`).
    fn without_trailing_glob(&self) -> &[u8] {
        let p = self.cleaned.as_slice();
        let p = p.strip_suffix(b"/**").unwrap_or(p);
        p.strip_suffix(b"/*").unwrap_or(p)
    }
}

/// The result of matching a directory, handed to its children so they need
/// not re-check patterns their parent matched (patternmatcher's `MatchInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentMatch {
    matched: Vec<bool>,
}

/// A list of .dockerignore patterns, decided as moby's patternmatcher does:
/// the last pattern that matches a path (or one of its parent directories)
/// wins; `!` patterns re-include.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
    only_prefix_exceptions: bool,
}

impl Matcher {
    /// Compiles patterns given as plain strings (line numbers count from 1
    /// in the order given).
    pub fn from_patterns<I, S>(patterns: I) -> Result<Matcher, IgnoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let lines: Vec<IgnoreLine> = patterns
            .into_iter()
            .enumerate()
            .map(|(i, p)| IgnoreLine {
                pattern: p.as_ref().to_vec(),
                line: i + 1,
            })
            .collect();
        Matcher::new(&lines)
    }

    /// Compiles the patterns read from a .dockerignore file (patternmatcher's
    /// `New`). Every pattern is checked here: a bad one is an error naming
    /// its line (BuildKit reports some only when a path reaches them).
    pub fn new(lines: &[IgnoreLine]) -> Result<Matcher, IgnoreError> {
        let mut m = Matcher {
            patterns: Vec::with_capacity(lines.len()),
            exclusions: false,
            only_prefix_exceptions: true,
        };
        for l in lines {
            let fail = |kind| IgnoreError {
                file: None,
                line: l.line,
                pattern: String::from_utf8_lossy(&l.pattern).into_owned(),
                kind,
            };
            let p = gopath::trim_space(&l.pattern);
            if p.is_empty() {
                continue;
            }
            let mut p = gopath::clean(p);
            let mut exclusion = false;
            if p[0] == b'!' {
                if p.len() == 1 {
                    return Err(fail(IgnoreErrorKind::IllegalExclusion));
                }
                exclusion = true;
                p.remove(0);
                m.exclusions = true;
            }
            if let Err(BadPattern) = gopath::go_match(&p, b".") {
                return Err(fail(IgnoreErrorKind::BadPattern));
            }
            let kind = compile(&p).map_err(|e| {
                fail(match e {
                    RegexError::Invalid(why) => IgnoreErrorKind::BadRegex(why.to_string()),
                    RegexError::Unsupported(what) => IgnoreErrorKind::Unsupported(what),
                })
            })?;
            let pattern = Pattern {
                cleaned: p,
                exclusion,
                line: l.line,
                kind,
            };
            if exclusion
                && pattern
                    .without_trailing_glob()
                    .iter()
                    .any(|c| b"*[]?^\\".contains(c))
            {
                m.only_prefix_exceptions = false;
            }
            m.patterns.push(pattern);
        }
        Ok(m)
    }

    /// The compiled patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is a `!` exception.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether `path` (clean, relative, `/`-separated) is excluded: it or a
    /// parent directory matches a pattern and no later `!` pattern matching
    /// it or a parent re-includes it (patternmatcher's
    /// `MatchesOrParentMatches`, which BuildKit uses to open single files).
    ///
    /// A context walker must use [`Matcher::matches_with_parent`] instead:
    /// that is what BuildKit's context transfer decides with, and the two
    /// differ in rare cases with exceptions (as they do in patternmatcher).
    pub fn matches(&self, path: impl AsRef<[u8]>) -> bool {
        let path = path.as_ref();
        let parent = gopath::dir(path);
        let mut matched = false;
        for p in &self.patterns {
            // An inclusion cannot change an excluded path, nor an exception
            // a path that is not excluded.
            if p.exclusion != matched {
                continue;
            }
            let hit = p.matches(path) || (parent != b"." && p.matches_a_parent(&parent));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// The same decision for a walker going down the tree: `parent` is what
    /// [`Matcher::matches_with_parent`] returned for the directory holding
    /// `path` (the default value at the top). Returns whether `path` is
    /// excluded and the value to hand to its children if it is a
    /// directory (patternmatcher's `MatchesUsingParentResults`).
    pub fn matches_with_parent(
        &self,
        path: impl AsRef<[u8]>,
        parent: &ParentMatch,
    ) -> (bool, ParentMatch) {
        let path = path.as_ref();
        let known = if parent.matched.len() == self.patterns.len() {
            Some(&parent.matched)
        } else {
            None
        };
        let mut info = ParentMatch {
            matched: vec![false; self.patterns.len()],
        };
        let mut matched = false;
        let mut parent_dir: Option<Vec<u8>> = None;
        for (i, p) in self.patterns.iter().enumerate() {
            let mut hit = known.is_some_and(|k| k[i]);
            if !hit {
                if p.exclusion != matched {
                    continue;
                }
                hit = p.matches(path);
                if !hit && known.is_none() {
                    let parent = parent_dir.get_or_insert_with(|| gopath::dir(path));
                    if parent.as_slice() != b"." {
                        hit = p.matches_a_parent(parent);
                    }
                }
            }
            info.matched[i] = hit;
            if hit {
                matched = !p.exclusion;
            }
        }
        (matched, info)
    }

    /// For an excluded directory `dir`: true when nothing below it can be
    /// re-included, so a context walker may skip it without reading it
    /// (fsutil's rule: no `!` patterns, or every `!` pattern is a plain
    /// path, optionally ending in `/*` or `/**`, outside `dir`).
    pub fn can_skip_excluded_dir(&self, dir: impl AsRef<[u8]>) -> bool {
        if !self.only_prefix_exceptions {
            return false;
        }
        if !self.exclusions {
            return true;
        }
        let mut dir_slash = dir.as_ref().to_vec();
        dir_slash.push(b'/');
        !self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            let mut s = p.without_trailing_glob().to_vec();
            s.push(b'/');
            s.starts_with(&dir_slash)
        })
    }
}

/// patternmatcher's `compile`: the match kind and, for the general case,
/// the Go regular expression it builds.
fn compile(pattern: &[u8]) -> Result<Kind, RegexError> {
    #[derive(PartialEq)]
    enum T {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let mut re = String::from("^");
    let mut kind = T::Exact;
    // Go's text/scanner: runes, invalid bytes as U+FFFD, a leading BOM skipped.
    let mut chars: Vec<char> = Vec::with_capacity(pattern.len());
    let mut rest = pattern;
    while !rest.is_empty() {
        let (c, n) = gopath::decode_rune(rest);
        chars.push(c);
        rest = &rest[n..];
    }
    let mut i = usize::from(chars.first() == Some(&'\u{FEFF}'));
    let mut iteration = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if ch == '*' {
            if chars.get(i) == Some(&'*') {
                i += 1;
                // `**/` is `**`.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if kind == T::Exact {
                        kind = T::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = T::Regexp;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = T::Regexp;
                }
                if iteration == 0 {
                    kind = T::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                kind = T::Regexp;
            }
        } else if ch == '?' {
            re.push_str("[^/]");
            kind = T::Regexp;
        } else if ".+()|{}$".contains(ch) {
            re.push('\\');
            re.push(ch);
        } else if ch == '\\' {
            if i < chars.len() {
                re.push('\\');
                re.push(chars[i]);
                i += 1;
                kind = T::Regexp;
            } else {
                re.push('\\');
            }
        } else if ch == '[' || ch == ']' {
            re.push(ch);
            kind = T::Regexp;
        } else {
            re.push(ch);
        }
        iteration += 1;
    }
    Ok(match kind {
        T::Exact => Kind::Exact,
        T::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_vec()),
        T::Suffix => Kind::Suffix(pattern[2..].to_vec()),
        T::Regexp => {
            re.push('$');
            Kind::Regex(Regex::new(&re)?)
        }
    })
}
