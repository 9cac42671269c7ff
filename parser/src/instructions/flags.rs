//! Instruction flags (`--name=value`), checked as BuildKit's `BFlags` does:
//! every instruction declares the flags it takes, with a type.

use crate::error::{suggest, ErrorKind};
use crate::node::Word;

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagType {
    /// `--link`, `--link=true`, `--link=false`.
    Bool,
    /// `--from=x`, given at most once.
    String,
    /// `--mount=...`, may be repeated.
    Strings,
}

/// The flags given to one instruction, checked against its declared flags.
#[derive(Debug, Default)]
pub struct ParsedFlags {
    values: Vec<(&'static str, Word, Option<bool>)>,
}

/// A flag error and the flag word it points at.
pub type FlagError = (ErrorKind, Option<Word>, Option<String>);

impl ParsedFlags {
    /// Checks `given` against `defs`.
    pub fn parse(
        given: &[Word],
        defs: &[(&'static str, FlagType)],
    ) -> Result<Self, Box<FlagError>> {
        let mut out = ParsedFlags::default();
        for word in given {
            let a = word.value.as_str();
            if a == "--" {
                break;
            }
            let Some(stripped) = a.strip_prefix("--") else {
                return Err(Box::new((
                    ErrorKind::NotAFlag(a.into()),
                    Some(word.clone()),
                    None,
                )));
            };
            let (name, value) = match stripped.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (stripped, None),
            };
            let flag_name = format!("--{name}");
            let Some(&(def_name, ty)) = defs.iter().find(|(n, _)| *n == name) else {
                let help =
                    suggest(name, defs.iter().map(|d| d.0)).map(|s| format!("did you mean --{s}?"));
                return Err(Box::new((
                    ErrorKind::UnknownFlag(flag_name),
                    Some(word.clone()),
                    help,
                )));
            };
            if ty != FlagType::Strings && out.values.iter().any(|v| v.0 == def_name) {
                return Err(Box::new((
                    ErrorKind::DuplicateFlag(flag_name),
                    Some(word.clone()),
                    None,
                )));
            }
            let value_word = Word {
                value: value.unwrap_or("").to_string(),
                span: word.span,
            };
            match ty {
                FlagType::Bool => {
                    if value == Some("") {
                        return Err(Box::new((
                            ErrorKind::MissingFlagValue(flag_name),
                            Some(word.clone()),
                            None,
                        )));
                    }
                    let b = match value.map(str::to_lowercase).as_deref() {
                        None | Some("true") => true,
                        Some("false") => false,
                        Some(_) => {
                            return Err(Box::new((
                                ErrorKind::BadBool {
                                    flag: flag_name,
                                    value: value.unwrap_or("").into(),
                                },
                                Some(word.clone()),
                                None,
                            )))
                        }
                    };
                    out.values.push((def_name, value_word, Some(b)));
                }
                FlagType::String | FlagType::Strings => {
                    if value.is_none() {
                        return Err(Box::new((
                            ErrorKind::MissingFlagValue(flag_name),
                            Some(word.clone()),
                            None,
                        )));
                    }
                    out.values.push((def_name, value_word, None));
                }
            }
        }
        Ok(out)
    }

    /// The value of a string flag, with the span of the whole flag.
    pub fn string(&self, name: &str) -> Option<Word> {
        self.values
            .iter()
            .find(|v| v.0 == name)
            .map(|v| v.1.clone())
    }

    /// Every value of a repeatable flag, in order.
    pub fn strings(&self, name: &str) -> Vec<Word> {
        self.values
            .iter()
            .filter(|v| v.0 == name)
            .map(|v| v.1.clone())
            .collect()
    }

    /// The value of a bool flag if it was given.
    pub fn bool_opt(&self, name: &str) -> Option<bool> {
        self.values.iter().find(|v| v.0 == name).and_then(|v| v.2)
    }

    /// The value of a bool flag, false if not given.
    pub fn bool(&self, name: &str) -> bool {
        self.bool_opt(name).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Word {
        Word {
            value: s.into(),
            span: Default::default(),
        }
    }

    const DEFS: &[(&str, FlagType)] = &[
        ("link", FlagType::Bool),
        ("from", FlagType::String),
        ("exclude", FlagType::Strings),
    ];

    #[test]
    fn parses_declared_flags() {
        let f = ParsedFlags::parse(
            &[
                w("--link"),
                w("--from=a"),
                w("--exclude=x"),
                w("--exclude=y"),
            ],
            DEFS,
        )
        .unwrap();
        assert!(f.bool("link"));
        assert_eq!(f.string("from").unwrap().value, "a");
        assert_eq!(f.strings("exclude").len(), 2);
        let f = ParsedFlags::parse(&[w("--link=FALSE")], DEFS).unwrap();
        assert_eq!(f.bool_opt("link"), Some(false));
    }

    #[test]
    fn rejects_bad_flags() {
        let e = ParsedFlags::parse(&[w("--form=a")], DEFS).unwrap_err();
        assert_eq!(e.0, ErrorKind::UnknownFlag("--form".into()));
        assert_eq!(e.2.as_deref(), Some("did you mean --from?"));
        let e = ParsedFlags::parse(&[w("--from=a"), w("--from=b")], DEFS).unwrap_err();
        assert_eq!(e.0, ErrorKind::DuplicateFlag("--from".into()));
        let e = ParsedFlags::parse(&[w("--from")], DEFS).unwrap_err();
        assert_eq!(e.0, ErrorKind::MissingFlagValue("--from".into()));
        let e = ParsedFlags::parse(&[w("--link=")], DEFS).unwrap_err();
        assert_eq!(e.0, ErrorKind::MissingFlagValue("--link".into()));
        let e = ParsedFlags::parse(&[w("--link=yes")], DEFS).unwrap_err();
        assert!(matches!(e.0, ErrorKind::BadBool { .. }));
    }
}
