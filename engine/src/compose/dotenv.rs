//! Env files (`.env`, `--env-file`, a service's `env_file:`) in the syntax compose-go's dotenv
//! parser reads: `VAR=VAL`, `VAR: VAL`, a bare `VAR` (its value from the environment, or
//! nothing), `export VAR=...`, `#` comments (and ` #` after an unquoted value), single quotes
//! literal, double quotes with `\n \t \" \\ \$` escapes and interpolation, unquoted values
//! interpolated; quoted values may span lines.

use std::path::Path;

use super::error::ComposeError;
use super::interpolate::substitute;

/// The variables of an env file, in file order (a repeated key keeps its first place and its
/// last value). `lookup` gives the environment for `${VAR}` and bare keys; it is asked first,
/// then the file's own earlier variables.
pub(crate) fn parse(
    source: &str,
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, ComposeError> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut rest = source;
    let mut line = 1usize;
    let error = |line: usize, message: String| ComposeError::Dotenv {
        path: path.to_path_buf(),
        line,
        message,
    };
    loop {
        // the next statement: skip blank space and comment lines
        loop {
            let Some(start) = rest.find(|c: char| !c.is_whitespace()) else {
                return Ok(out);
            };
            line += rest[..start].matches('\n').count();
            rest = &rest[start..];
            if !rest.starts_with('#') {
                break;
            }
            match rest.find('\n') {
                Some(end) => rest = &rest[end..],
                None => return Ok(out),
            }
        }
        if let Some(after) = rest.strip_prefix("export") {
            if after.starts_with([' ', '\t']) {
                rest = after.trim_start_matches(is_space);
            }
        }
        // the key, up to `=`, `:` or the line's end (a bare key)
        let mut key_end = None;
        for (i, c) in rest.char_indices() {
            if is_space(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    key_end = Some((i, c));
                    break;
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() => {}
                c => {
                    let first_line = rest.lines().next().unwrap_or_default();
                    return Err(error(
                        line,
                        format!("unexpected character {c:?} in variable name {first_line:?}"),
                    ));
                }
            }
        }
        // a bare key at the end of the file, with no newline after it
        let (key_end, terminator) = key_end.unwrap_or((rest.len(), '\n'));
        let key = rest[..key_end].trim_end();
        if key.contains([' ', '\t']) {
            return Err(error(line, "key cannot contain a space".into()));
        }
        if key.is_empty() {
            return Err(error(line, "missing variable name".into()));
        }
        let key = key.to_string();
        let after = rest.get(key_end + 1..).unwrap_or_default();
        if terminator == '\n' {
            if let Some(value) = lookup(&key) {
                set(&mut out, key, value);
            }
            line += 1;
            rest = after;
            continue;
        }
        rest = after.trim_start_matches(is_space);
        let known = |name: &str| {
            lookup(name).or_else(|| {
                out.iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
        };
        let expand = |text: &str, line: usize| -> Result<String, ComposeError> {
            substitute(text, &known, &mut Vec::new()).map_err(|e| match e {
                super::interpolate::SubstError::Invalid => {
                    error(line, format!("invalid interpolation format in {text:?}"))
                }
                super::interpolate::SubstError::Missing { name, message } => error(
                    line,
                    format!("required variable {name} is missing a value: {message}"),
                ),
            })
        };
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
        let Some(quote) = quote else {
            let (value, next) = rest.split_once('\n').unwrap_or((rest, ""));
            let value = value.split(" #").next().unwrap_or_default().trim_end();
            let value = expand(value, line)?;
            set(&mut out, key, value);
            line += 1;
            rest = next;
            continue;
        };
        // a quoted value: up to the unescaped closing quote, which may be lines later
        let start_line = line;
        let mut chars = String::new();
        let mut escaped = false;
        let mut closed = None;
        for (i, c) in rest.char_indices().skip(1) {
            if c == '\n' {
                line += 1;
            }
            if c != quote {
                if !escaped && c == '\\' {
                    escaped = true;
                    continue;
                }
                if escaped {
                    escaped = false;
                    chars.push('\\');
                }
                chars.push(c);
                continue;
            }
            if escaped {
                escaped = false;
                chars.push(c);
                continue;
            }
            closed = Some(i);
            break;
        }
        let Some(close) = closed else {
            let first_line = rest.lines().next().unwrap_or_default();
            return Err(error(
                start_line,
                format!("unterminated quoted value {first_line}"),
            ));
        };
        let value = if quote == '"' {
            expand(&unescape(&chars), start_line)?
        } else {
            chars
        };
        set(&mut out, key, value);
        rest = &rest[close + 1..];
    }
}

fn set(out: &mut Vec<(String, String)>, key: String, value: String) {
    match out.iter_mut().find(|(k, _)| *k == key) {
        Some(entry) => entry.1 = value,
        None => out.push((key, value)),
    }
}

/// Spaces other than a line break.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

/// A double-quoted value's escapes: `\a \b \f \n \r \t \v \" \\`, `\0NNN` octal, and `\$`
/// (kept as `$$` so interpolation leaves a literal `$`). Others stay as written.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some(e @ ('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '"' | '\\' | '$')) => {
                chars.next();
                out.push_str(match e {
                    'a' => "\u{7}",
                    'b' => "\u{8}",
                    'f' => "\u{c}",
                    'n' => "\n",
                    'r' => "\r",
                    't' => "\t",
                    'v' => "\u{b}",
                    '"' => "\"",
                    '\\' => "\\",
                    _ => "$$",
                });
            }
            Some('0') => {
                chars.next();
                let mut digits = String::new();
                while digits.len() < 3 {
                    match chars.peek() {
                        Some(d @ '0'..='7') => {
                            digits.push(*d);
                            chars.next();
                        }
                        _ => break,
                    }
                }
                let code = u32::from_str_radix(&digits, 8).unwrap_or(0);
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            _ => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(source: &str) -> Vec<(String, String)> {
        let lookup = |k: &str| (k == "FROM_ENV").then(|| "env-value".to_string());
        parse(source, Path::new("t.env"), &lookup).expect("parses")
    }

    fn get(source: &str, key: &str) -> Option<String> {
        vars(source)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    #[test]
    fn plain_lines_comments_and_export() {
        let got = vars(
            "# a comment\n\nA=1\nexport B=two words\nC = spaced  \nD=x # trailing comment\nE=#not-a-comment\nF:yaml-style\nG=\n",
        );
        let want: Vec<(String, String)> = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "spaced"),
            ("D", "x"),
            ("E", "#not-a-comment"),
            ("F", "yaml-style"),
            ("G", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn quotes() {
        assert_eq!(
            get("A='lit $FROM_ENV \\n'\n", "A").as_deref(),
            Some("lit $FROM_ENV \\n")
        );
        assert_eq!(
            get("A=\"a\\nb \\\"q\\\" $FROM_ENV\"\n", "A").as_deref(),
            Some("a\nb \"q\" env-value")
        );
        assert_eq!(
            get("A=\"multi\nline\"\nB=2\n", "A").as_deref(),
            Some("multi\nline")
        );
        assert_eq!(get("A=\"multi\nline\"\nB=2\n", "B").as_deref(), Some("2"));
        assert_eq!(get("A=\"cost \\$5\"\n", "A").as_deref(), Some("cost $5"));
        assert_eq!(get("A=\"x\" # comment\nB=y\n", "B").as_deref(), Some("y"));
    }

    #[test]
    fn interpolation_and_bare_keys() {
        assert_eq!(
            get("A=${FROM_ENV}-x\n", "A").as_deref(),
            Some("env-value-x")
        );
        assert_eq!(get("A=1\nB=${A}2\n", "B").as_deref(), Some("12"));
        assert_eq!(get("A=${NOPE:-dflt}\n", "A").as_deref(), Some("dflt"));
        assert_eq!(get("FROM_ENV\n", "FROM_ENV").as_deref(), Some("env-value"));
        assert_eq!(get("NOT_IN_ENV\nX=1", "NOT_IN_ENV"), None);
        assert_eq!(
            get("X=1\nFROM_ENV", "FROM_ENV").as_deref(),
            Some("env-value")
        );
        assert_eq!(get("\u{feff}A=bom\n", "A").as_deref(), Some("bom"));
        assert_eq!(get("A=1\nA=2\n", "A").as_deref(), Some("2"));
    }

    #[test]
    fn errors_have_lines() {
        let lookup = |_: &str| None;
        let err = parse("A=1\n\nB C=2\n", Path::new("x.env"), &lookup).expect_err("space");
        assert_eq!(err.to_string(), "x.env:3: key cannot contain a space");
        let err = parse("A=1\nB$=2\n", Path::new("x.env"), &lookup).expect_err("char");
        assert!(
            err.to_string()
                .starts_with("x.env:2: unexpected character '$'"),
            "{err}"
        );
        let err = parse("A=\"open\nB=2\n", Path::new("x.env"), &lookup).expect_err("quote");
        assert!(
            err.to_string().starts_with("x.env:1: unterminated"),
            "{err}"
        );
    }
}
