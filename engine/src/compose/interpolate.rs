//! Variable substitution as compose-go's `template` package does it: `$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`,
//! `${VAR+alt}`, nested (`${A:-${B}}`), `$$` for a literal `$`. An unset variable with no
//! default is empty, and reported so the loader can warn as docker compose does. A `$` not
//! followed by a name or `{` stays as written.

use super::error::ComposeError;
use super::yaml::{Node, Style, Value};

/// Why a template could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubstError {
    /// `${` without a valid expression after it.
    Invalid,
    /// `${NAME:?message}` / `${NAME?message}` with NAME missing (or empty, for `:?`).
    Missing {
        /// The variable.
        name: String,
        /// The message.
        message: String,
    },
}

/// Substitutes `template`. `lookup` gives a variable's value; `unset` collects the variables
/// read with no value and no default.
pub(crate) fn substitute(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<String, SubstError> {
    let bytes = template.as_bytes();
    let mut out = String::with_capacity(template.len());
    let mut i = 0;
    let mut literal_from = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        out.push_str(&template[literal_from..i]);
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let close = closing_brace(bytes, i + 2).ok_or(SubstError::Invalid)?;
                out.push_str(&braced(&template[i + 2..close], lookup, unset)?);
                i = close + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let end = name_end(bytes, i + 1);
                let name = &template[i + 1..end];
                match lookup(name) {
                    Some(value) => out.push_str(&value),
                    None => unset.push(name.to_string()),
                }
                i = end;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
        literal_from = i;
    }
    out.push_str(&template[literal_from..]);
    Ok(out)
}

/// The index of the `}` that closes a `${` whose body starts at `from`.
fn closing_brace(bytes: &[u8], from: usize) -> Option<usize> {
    let mut depth = 1usize;
    for (offset, b) in bytes[from..].iter().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(from + offset);
                }
            }
            _ => {}
        }
    }
    None
}

/// The end of a variable name starting at `from` (`[_a-zA-Z][_a-zA-Z0-9]*`).
fn name_end(bytes: &[u8], from: usize) -> usize {
    let mut end = from;
    while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
        end += 1;
    }
    end
}

/// One `${...}` body.
fn braced(
    body: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<String, SubstError> {
    let bytes = body.as_bytes();
    if !bytes
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
    {
        return Err(SubstError::Invalid);
    }
    let end = name_end(bytes, 0);
    let name = &body[..end];
    let rest = &body[end..];
    let value = lookup(name);
    let (operator, argument) = if rest.is_empty() {
        ("", "")
    } else if let Some(op) = ["-", ":-", "?", ":?", "+", ":+"]
        .iter()
        .filter(|op| rest.starts_with(**op))
        .max_by_key(|op| op.len())
    {
        (*op, &rest[op.len()..])
    } else {
        return Err(SubstError::Invalid);
    };
    let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    match operator {
        "" => match value {
            Some(value) => Ok(value),
            None => {
                unset.push(name.to_string());
                Ok(String::new())
            }
        },
        ":-" if !set_nonempty => substitute(argument, lookup, unset),
        "-" if value.is_none() => substitute(argument, lookup, unset),
        ":?" if !set_nonempty => Err(SubstError::Missing {
            name: name.to_string(),
            message: substitute(argument, lookup, unset)?,
        }),
        "?" if value.is_none() => Err(SubstError::Missing {
            name: name.to_string(),
            message: substitute(argument, lookup, unset)?,
        }),
        ":+" if set_nonempty => substitute(argument, lookup, unset),
        "+" if value.is_some() => substitute(argument, lookup, unset),
        ":+" | "+" => Ok(String::new()),
        _ => Ok(value.unwrap_or_default()),
    }
}

/// Substitutes every scalar value of `node` (keys are never interpolated), `path` naming it
/// for errors. Variables read while unset are added to `unset`.
pub(crate) fn interpolate_tree(
    node: &mut Node,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<(), ComposeError> {
    match &mut node.value {
        Value::Scalar(text, style) => {
            if text.contains('$') {
                match substitute(text, lookup, unset) {
                    Ok(value) => {
                        *text = value;
                        // the result is a string, whatever it looks like
                        *style = Style::Quoted;
                    }
                    Err(SubstError::Invalid) => {
                        return Err(ComposeError::BadInterpolation {
                            location: node.location.clone(),
                            path: path.to_string(),
                            template: text.clone(),
                        })
                    }
                    Err(SubstError::Missing { name, message }) => {
                        return Err(ComposeError::MissingVariable {
                            location: node.location.clone(),
                            name,
                            message,
                        })
                    }
                }
            }
            Ok(())
        }
        Value::Null => Ok(()),
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, &format!("{path}[{i}]"), lookup, unset)?;
            }
            Ok(())
        }
        Value::Map(entries) => {
            for (key, value) in entries.iter_mut() {
                let child = if path.is_empty() {
                    key.name.clone()
                } else {
                    format!("{path}.{}", key.name)
                };
                interpolate_tree(value, &child, lookup, unset)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run(template: &str) -> (Result<String, SubstError>, Vec<String>) {
        let env: BTreeMap<&str, &str> = [("SET", "value"), ("EMPTY", ""), ("INNER", "in")]
            .into_iter()
            .collect();
        let lookup = move |k: &str| env.get(k).map(|v| v.to_string());
        let mut unset = Vec::new();
        (substitute(template, &lookup, &mut unset), unset)
    }

    fn ok(template: &str) -> String {
        run(template).0.expect("substitutes")
    }

    #[test]
    fn plain_forms() {
        assert_eq!(ok("a ${SET} b"), "a value b");
        assert_eq!(ok("$SET/x"), "value/x");
        assert_eq!(ok("$SET_more"), "");
        assert_eq!(ok("cost: $$5 and $$SET"), "cost: $5 and $SET");
        assert_eq!(ok("$1 and $ alone and $"), "$1 and $ alone and $");
        assert_eq!(ok("no vars"), "no vars");
    }

    #[test]
    fn defaults() {
        assert_eq!(ok("${UNSET:-d}"), "d");
        assert_eq!(ok("${EMPTY:-d}"), "d");
        assert_eq!(ok("${EMPTY-d}"), "");
        assert_eq!(ok("${UNSET-d}"), "d");
        assert_eq!(ok("${SET:-d}"), "value");
        assert_eq!(ok("${UNSET:-}"), "");
    }

    #[test]
    fn alternatives() {
        assert_eq!(ok("${SET:+alt}"), "alt");
        assert_eq!(ok("${EMPTY:+alt}"), "");
        assert_eq!(ok("${EMPTY+alt}"), "alt");
        assert_eq!(ok("${UNSET+alt}"), "");
    }

    #[test]
    fn nesting() {
        assert_eq!(ok("${UNSET:-${INNER}}"), "in");
        assert_eq!(ok("${UNSET:-a${UNSET2:-${SET}}b}"), "avalueb");
        assert_eq!(ok("${SET:+x-${INNER}}"), "x-in");
    }

    #[test]
    fn required() {
        assert_eq!(
            run("${UNSET:?must be set}").0,
            Err(SubstError::Missing {
                name: "UNSET".into(),
                message: "must be set".into()
            })
        );
        assert!(run("${EMPTY:?e}").0.is_err());
        assert_eq!(ok("${EMPTY?e}"), "");
        assert!(run("${UNSET?e}").0.is_err());
        assert_eq!(ok("${SET:?e}"), "value");
    }

    #[test]
    fn unset_is_empty_and_reported() {
        let (result, unset) = run("x${NOPE}y$ALSO_NOPE");
        assert_eq!(result, Ok("xy".to_string()));
        assert_eq!(unset, vec!["NOPE".to_string(), "ALSO_NOPE".to_string()]);
        // a default means no report
        assert!(run("${NOPE:-d}").1.is_empty());
    }

    #[test]
    fn invalid() {
        for bad in ["${}", "${SET", "${1X}", "${SET:x}", "${SET!}"] {
            assert_eq!(run(bad).0, Err(SubstError::Invalid), "{bad}");
        }
    }
}
