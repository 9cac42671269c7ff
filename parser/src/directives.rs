//! Parser directives (`# syntax=`, `# escape=`, `# check=`), with BuildKit's
//! rules: they are only recognised in the comment lines at the very top of the
//! file; the first line that is not a well-formed directive of a known name
//! ends the directive block for good, and a name may be given only once.

use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::satisfy;
use nom::combinator::recognize;
use nom::sequence::pair;
use nom::{IResult, Parser};
use serde::Serialize;

use crate::span::Span;

/// A parser directive found at the top of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// The directive's name, lower-cased (`syntax`, `escape` or `check`).
    pub name: String,
    /// The value, with surrounding whitespace removed.
    pub value: String,
    /// The directive's comment line.
    pub span: Span,
}

/// Why a directive line was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectiveError {
    /// The same directive appeared twice.
    Duplicate(String),
    /// `# escape=` named something other than `\` or `` ` ``.
    InvalidEscape(String),
}

/// Recognises directive lines one at a time, like BuildKit's `DirectiveParser`.
#[derive(Debug, Default)]
pub struct DirectiveParser {
    seen: Vec<String>,
    done: bool,
}

/// Go's regexp `\s`: ASCII whitespace without `\v`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

/// `name \s* = \s*` of `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
fn directive_head(input: &str) -> IResult<&str, &str> {
    let (rest, name) = recognize(pair(
        satisfy(|c: char| c.is_ascii_alphabetic()),
        take_while(|c: char| c.is_ascii_alphanumeric()),
    ))
    .parse(input)?;
    let (rest, _) = take_while(is_re_space).parse(rest)?;
    let (rest, _) = tag("=").parse(rest)?;
    let (rest, _) = take_while(is_re_space).parse(rest)?;
    let (_, _) = take_while1(|_| true).parse(rest)?;
    Ok((rest, name))
}

impl DirectiveParser {
    /// Whether the directive block has ended.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Looks at one line (newline and leading whitespace already removed).
    /// Returns the directive's name and value if the line is one.
    pub fn parse_line(&mut self, line: &str) -> Result<Option<(String, String)>, DirectiveError> {
        if self.done {
            return Ok(None);
        }
        let Some(body) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let body = body.trim_start();
        let Ok((rest, name)) = directive_head(body) else {
            self.done = true;
            return Ok(None);
        };
        let value = rest.trim_end_matches(is_re_space);
        if value.is_empty() {
            self.done = true;
            return Ok(None);
        }
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&name) {
            return Err(DirectiveError::Duplicate(name));
        }
        self.seen.push(name.clone());
        if name == "escape" && value != "\\" && value != "`" {
            return Err(DirectiveError::InvalidEscape(value.to_string()));
        }
        Ok(Some((name, value.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(lines: &[&str]) -> Vec<Result<Option<(String, String)>, DirectiveError>> {
        let mut p = DirectiveParser::default();
        lines.iter().map(|l| p.parse_line(l)).collect()
    }

    fn d(n: &str, v: &str) -> Result<Option<(String, String)>, DirectiveError> {
        Ok(Some((n.into(), v.into())))
    }

    #[test]
    fn recognises_known_directives_at_top() {
        assert_eq!(
            all(&[
                "# syntax=docker/dockerfile:1",
                "#ESCAPE = ` ",
                "# check=skip=all"
            ]),
            vec![
                d("syntax", "docker/dockerfile:1"),
                d("escape", "`"),
                d("check", "skip=all")
            ]
        );
    }

    #[test]
    fn unknown_directive_or_comment_ends_block() {
        assert_eq!(all(&["# foo=bar", "# escape=`"]), vec![Ok(None), Ok(None)]);
        assert_eq!(all(&["# hello", "# escape=`"]), vec![Ok(None), Ok(None)]);
        assert_eq!(all(&["", "# escape=`"]), vec![Ok(None), Ok(None)]);
        assert_eq!(all(&["#escape="]), vec![Ok(None)]);
    }

    #[test]
    fn duplicates_and_bad_escape_are_errors() {
        assert_eq!(
            all(&["# syntax=a", "# syntax=b"])[1],
            Err(DirectiveError::Duplicate("syntax".into()))
        );
        assert_eq!(
            all(&["# escape=x"])[0],
            Err(DirectiveError::InvalidEscape("x".into()))
        );
    }
}
