//! Which images a listing keeps: docker's `--filter` keys for images (`reference`,
//! `dangling`, `label`, `before`, `since`), parsed once here for both faces (the CLI's
//! `kiln images --filter k=v`, the API's `filters` JSON).

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Which images [`crate::Engine::list_images`] lists. Each set field must match; the values
/// of one key are alternatives (as docker's filters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFilter {
    /// Name patterns (`busybox`, `acc/*`, `app:1.*`): an image name matches when the pattern
    /// matches its `repo:tag` or, for a pattern without a tag, its repository, with
    /// `path.Match`'s globs (`*` and `?` stop at `/`, `[a-z]`). Only matching names are
    /// listed.
    pub reference: Vec<String>,
    /// `Some(true)`: only images with no name; `Some(false)`: only named ones. kiln keeps no
    /// unnamed images, so `Some(true)` lists nothing.
    pub dangling: Option<bool>,
    /// `key` or `key=value`: the image's config labels must have every one.
    pub labels: Vec<String>,
    /// Only images created before this image (a name or ID).
    pub before: Option<String>,
    /// Only images created after this image (a name or ID).
    pub since: Option<String>,
}

/// The filter keys [`ImageFilter::parse`] accepts.
pub const IMAGE_FILTER_KEYS: &[&str] = &["reference", "dangling", "label", "before", "since"];

impl ImageFilter {
    /// Only names matching `pattern` (the CLI's positional `kiln images REPO`).
    pub fn reference(pattern: impl Into<String>) -> ImageFilter {
        ImageFilter {
            reference: vec![pattern.into()],
            ..ImageFilter::default()
        }
    }

    /// The filter of docker's `key=value` pairs: an unknown key is `invalid filter 'key'`, a
    /// `dangling` that is not a boolean is `invalid filter 'dangling=value'` (dockerd's words).
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<ImageFilter> {
        let mut filter = ImageFilter::default();
        for (key, value) in pairs {
            match key {
                "reference" => filter.reference.push(value.to_string()),
                "label" => filter.labels.push(value.to_string()),
                "dangling" => filter.dangling = Some(dangling_value(value)?),
                "before" => filter.before = Some(value.to_string()),
                "since" => filter.since = Some(value.to_string()),
                other => return Err(Error::invalid(format!("invalid filter '{other}'"))),
            }
        }
        Ok(filter)
    }

    /// `--filter key=value` as the CLI takes it (the value may hold `=`).
    pub fn parse_cli(items: &[String]) -> Result<ImageFilter> {
        ImageFilter::parse(filter_flag_pairs(items)?)
    }

    /// Whether the name `repo:tag` passes the `reference` patterns (all names pass without).
    pub fn matches_name(&self, name: &str) -> bool {
        if self.reference.is_empty() {
            return true;
        }
        let (repo, _) = kiln_cache::image::split_tag(name);
        self.reference.iter().any(|pattern| {
            let pattern = familiar(pattern);
            let (_, tag) = kiln_cache::image::split_tag(pattern);
            glob_match(pattern, name) || (tag.is_none() && glob_match(pattern, repo))
        })
    }

    /// Whether labels pass the `label` filters.
    pub fn matches_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|want| match want.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(want.as_str()),
        })
    }
}

/// A `dangling` filter's value: docker's booleans, else `invalid filter 'dangling=value'`
/// (dockerd's words), for images and volumes alike.
pub fn dangling_value(value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::invalid(format!("invalid filter 'dangling={value}'"))),
    }
}

/// `--filter key=value` flags (any command's) as pairs; the value may hold `=`, a flag
/// without one is docker's `bad format of filter`.
pub fn filter_flag_pairs(items: &[String]) -> Result<Vec<(&str, &str)>> {
    items
        .iter()
        .map(|item| {
            item.split_once('=').ok_or_else(|| {
                Error::invalid(format!(
                    "bad format of filter (expected name=value): {item}"
                ))
            })
        })
        .collect()
}

/// A pattern as the store names images: docker.io's `library/` forms are the short name.
fn familiar(pattern: &str) -> &str {
    let p = pattern
        .strip_prefix("docker.io/library/")
        .or_else(|| pattern.strip_prefix("docker.io/"))
        .or_else(|| pattern.strip_prefix("index.docker.io/"))
        .unwrap_or(pattern);
    p.strip_prefix("library/").unwrap_or(p)
}

/// Go's `path.Match`: `*` any run of non-`/` characters, `?` one non-`/` character,
/// `[...]` a class (`^` or `!` negates, `a-z` ranges), `\` escapes. A malformed class
/// matches nothing.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_at(&p, &t)
}

fn glob_at(p: &[char], t: &[char]) -> bool {
    let Some((&first, rest)) = p.split_first() else {
        return t.is_empty();
    };
    match first {
        '*' => (0..=t.len())
            .take_while(|&i| i == 0 || t[i - 1] != '/')
            .any(|i| glob_at(rest, &t[i..])),
        '?' => t.first().is_some_and(|&c| c != '/') && glob_at(rest, &t[1..]),
        '[' => {
            let Some((&c, t_rest)) = t.split_first() else {
                return false;
            };
            match class_match(rest, c) {
                Some((true, after)) if c != '/' => glob_at(after, t_rest),
                _ => false,
            }
        }
        '\\' => match rest.split_first() {
            Some((&lit, after)) => t.first() == Some(&lit) && glob_at(after, &t[1..]),
            None => false,
        },
        lit => t.first() == Some(&lit) && glob_at(rest, &t[1..]),
    }
}

/// Matches `c` against the class that starts `p` (after its `[`): whether it matched and the
/// pattern after the closing `]`; `None` when the class never closes.
fn class_match(p: &[char], c: char) -> Option<(bool, &[char])> {
    let (negate, mut i) = match p.first() {
        Some('^') | Some('!') => (true, 1),
        _ => (false, 0),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        let &lo = p.get(i)?;
        if lo == ']' && !first {
            return Some((matched != negate, &p[i + 1..]));
        }
        first = false;
        let lo = if lo == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            lo
        };
        i += 1;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&h| h != ']') {
            let hi = if p[i + 1] == '\\' {
                i += 1;
                *p.get(i + 1)?
            } else {
                p[i + 1]
            };
            i += 2;
            matched |= lo <= c && c <= hi;
        } else {
            matched |= lo == c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_are_go_path_match() {
        assert!(glob_match("busybox", "busybox"));
        assert!(glob_match("acc/*", "acc/x"));
        assert!(!glob_match("acc/*", "acc/x/y"));
        assert!(!glob_match("*", "a/b"));
        assert!(glob_match("app:1.?", "app:1.2"));
        assert!(glob_match("v[0-9]", "v7"));
        assert!(!glob_match("v[^0-9]", "v7"));
        assert!(glob_match("a\\*", "a*"));
        assert!(!glob_match("a\\*", "ab"));
        assert!(!glob_match("[a", "a"));
    }

    #[test]
    fn references_match_names_or_repositories() {
        let f = |p: &str| ImageFilter::reference(p);
        assert!(f("busybox").matches_name("busybox:latest"));
        assert!(f("docker.io/library/busybox").matches_name("busybox:latest"));
        assert!(f("busybox:latest").matches_name("busybox:latest"));
        assert!(!f("busybox:1").matches_name("busybox:latest"));
        assert!(f("acc/*").matches_name("acc/x:1"));
        assert!(f("acc/x:*").matches_name("acc/x:1"));
        assert!(!f("acc").matches_name("acc/x:1"));
        assert!(ImageFilter::default().matches_name("anything:1"));
    }

    #[test]
    fn pairs_parse_with_dockerds_errors() {
        let f = ImageFilter::parse([
            ("reference", "a"),
            ("reference", "b"),
            ("dangling", "false"),
            ("label", "k=v"),
            ("before", "x:1"),
        ])
        .unwrap();
        assert_eq!(f.reference, ["a", "b"]);
        assert_eq!(f.dangling, Some(false));
        assert_eq!(f.before.as_deref(), Some("x:1"));
        let e = ImageFilter::parse([("status", "x")]).unwrap_err();
        assert_eq!(e.to_string(), "invalid filter 'status'");
        assert!(matches!(e, Error::Invalid(_)));
        let e = ImageFilter::parse([("dangling", "maybe")]).unwrap_err();
        assert_eq!(e.to_string(), "invalid filter 'dangling=maybe'");
        let cli = ImageFilter::parse_cli(&["label=a=b".into()]).unwrap();
        assert_eq!(cli.labels, ["a=b"]);
        assert!(ImageFilter::parse_cli(&["nope".into()]).is_err());
    }

    #[test]
    fn labels_need_every_filter() {
        let labels = BTreeMap::from([("a".to_string(), "1".to_string())]);
        let f = |l: &[&str]| ImageFilter {
            labels: l.iter().map(|s| s.to_string()).collect(),
            ..ImageFilter::default()
        };
        assert!(f(&["a"]).matches_labels(&labels));
        assert!(f(&["a=1"]).matches_labels(&labels));
        assert!(!f(&["a=2"]).matches_labels(&labels));
        assert!(!f(&["a", "b"]).matches_labels(&labels));
    }
}
