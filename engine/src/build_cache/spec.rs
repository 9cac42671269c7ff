//! `--cache-to` and `--cache-from` as docker buildx spells them: comma-separated
//! `key=value` attributes, or a bare reference (shorthand for `type=registry,ref=`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::{Error, Result};

/// Which results a cache export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportMode {
    /// Only the steps that make up the final image's chain (buildx's default).
    Min,
    /// Every step of every stage the build needed.
    Max,
}

/// Where a cache export goes (`--cache-to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheTo {
    /// The destination.
    pub target: Location,
    /// Which results go.
    pub mode: ExportMode,
    /// A failed export is a warning, not an error (`ignore-error=true`).
    pub ignore_error: bool,
}

/// Where a cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A manifest in a registry repository: `type=registry,ref=REF`.
    Registry {
        /// The reference as given (`host/repo:tag`).
        reference: String,
    },
    /// An OCI image layout directory: `type=local,dest=DIR` / `src=DIR`.
    Local {
        /// The directory.
        dir: PathBuf,
        /// The tag of the cache manifest inside the layout (default `latest`).
        tag: String,
    },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Registry { reference } => write!(f, "registry {reference}"),
            Location::Local { dir, tag } => write!(f, "local {}:{tag}", dir.display()),
        }
    }
}

fn attributes<'a>(flag: &str, spec: &'a str) -> Result<BTreeMap<&'a str, &'a str>> {
    let mut out = BTreeMap::new();
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').ok_or_else(|| {
            Error::invalid(format!(
                "{flag} {spec}: {field:?} is not a key=value attribute"
            ))
        })?;
        if out.insert(k.trim(), v.trim()).is_some() {
            return Err(Error::invalid(format!(
                "{flag} {spec}: attribute {k} is given twice"
            )));
        }
    }
    Ok(out)
}

fn check_known(flag: &str, spec: &str, attrs: &BTreeMap<&str, &str>, known: &[&str]) -> Result<()> {
    for k in attrs.keys() {
        if !known.contains(k) {
            return Err(Error::invalid(format!(
                "{flag} {spec}: unknown attribute {k:?} for this type (accepted: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

fn kind<'a>(flag: &str, spec: &str, attrs: &BTreeMap<&str, &'a str>) -> Result<&'a str> {
    let kind = attrs.get("type").copied().unwrap_or("registry");
    match kind {
        "registry" | "local" => Ok(kind),
        "inline" => Err(Error::invalid(format!(
            "{flag} {spec}: type=inline is not supported: kiln does not embed cache metadata in \
             images; use type=registry,ref=REPO:TAG (a separate cache manifest) instead"
        ))),
        "gha" | "s3" | "azblob" => Err(Error::invalid(format!(
            "{flag} {spec}: type={kind} is not supported; kiln exports to type=registry or type=local"
        ))),
        other => Err(Error::invalid(format!("{flag} {spec}: unknown cache type {other:?} (use registry or local)"))),
    }
}

fn required<'a>(
    flag: &str,
    spec: &str,
    attrs: &BTreeMap<&str, &'a str>,
    key: &str,
) -> Result<&'a str> {
    match attrs.get(key) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Error::invalid(format!("{flag} {spec}: {key}= is missing"))),
    }
}

fn tag_of(flag: &str, spec: &str, attrs: &BTreeMap<&str, &str>) -> Result<String> {
    let tag = attrs.get("tag").copied().unwrap_or("latest");
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !tag.starts_with(['.', '-']);
    if !valid {
        return Err(Error::invalid(format!(
            "{flag} {spec}: tag {tag:?} is not a valid tag"
        )));
    }
    Ok(tag.to_string())
}

fn is_bare_reference(spec: &str) -> bool {
    !spec.contains('=') && !spec.is_empty()
}

/// Parses one `--cache-to` value.
pub fn parse_cache_to(spec: &str) -> Result<CacheTo> {
    let flag = "--cache-to";
    if is_bare_reference(spec) {
        return Ok(CacheTo {
            target: Location::Registry {
                reference: spec.to_string(),
            },
            mode: ExportMode::Min,
            ignore_error: false,
        });
    }
    let attrs = attributes(flag, spec)?;
    let target = match kind(flag, spec, &attrs)? {
        "registry" => {
            check_known(flag, spec, &attrs, &["type", "ref", "mode", "ignore-error"])?;
            Location::Registry {
                reference: required(flag, spec, &attrs, "ref")?.to_string(),
            }
        }
        _ => {
            check_known(
                flag,
                spec,
                &attrs,
                &["type", "dest", "tag", "mode", "ignore-error"],
            )?;
            Location::Local {
                dir: PathBuf::from(required(flag, spec, &attrs, "dest")?),
                tag: tag_of(flag, spec, &attrs)?,
            }
        }
    };
    let mode = match attrs.get("mode").copied() {
        None | Some("min") => ExportMode::Min,
        Some("max") => ExportMode::Max,
        Some(other) => {
            return Err(Error::invalid(format!(
                "{flag} {spec}: mode={other} is not min or max"
            )))
        }
    };
    let ignore_error = match attrs.get("ignore-error").copied() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Error::invalid(format!(
                "{flag} {spec}: ignore-error={other} is not true or false"
            )))
        }
    };
    Ok(CacheTo {
        target,
        mode,
        ignore_error,
    })
}

/// Parses one `--cache-from` value.
pub fn parse_cache_from(spec: &str) -> Result<Location> {
    let flag = "--cache-from";
    if is_bare_reference(spec) {
        return Ok(Location::Registry {
            reference: spec.to_string(),
        });
    }
    let attrs = attributes(flag, spec)?;
    Ok(match kind(flag, spec, &attrs)? {
        "registry" => {
            check_known(flag, spec, &attrs, &["type", "ref"])?;
            Location::Registry {
                reference: required(flag, spec, &attrs, "ref")?.to_string(),
            }
        }
        _ => {
            check_known(flag, spec, &attrs, &["type", "src", "tag"])?;
            Location::Local {
                dir: PathBuf::from(required(flag, spec, &attrs, "src")?),
                tag: tag_of(flag, spec, &attrs)?,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_forms_parse() {
        assert_eq!(
            parse_cache_to("type=registry,ref=r:5000/a/c:1,mode=max").unwrap(),
            CacheTo {
                target: Location::Registry {
                    reference: "r:5000/a/c:1".into()
                },
                mode: ExportMode::Max,
                ignore_error: false,
            }
        );
        let local = parse_cache_to("type=local,dest=/tmp/c").unwrap();
        assert_eq!(
            local.mode,
            ExportMode::Min,
            "min is the default, as in buildx"
        );
        assert_eq!(
            local.target,
            Location::Local {
                dir: "/tmp/c".into(),
                tag: "latest".into()
            }
        );
        assert_eq!(
            parse_cache_from("r:5000/a/c:1").unwrap(),
            Location::Registry {
                reference: "r:5000/a/c:1".into()
            }
        );
        assert_eq!(
            parse_cache_from("type=local,src=/c,tag=v2").unwrap(),
            Location::Local {
                dir: "/c".into(),
                tag: "v2".into()
            }
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let err = |r: Result<CacheTo>| r.unwrap_err().to_string();
        assert!(err(parse_cache_to("type=inline")).contains("type=inline is not supported"));
        assert!(err(parse_cache_to("type=bogus,ref=x")).contains("unknown cache type \"bogus\""));
        assert!(err(parse_cache_to("type=registry")).contains("ref= is missing"));
        assert!(err(parse_cache_to("type=registry,ref=x,mode=all")).contains("mode=all"));
        assert!(
            err(parse_cache_to("type=local,dest=/d,ref=x")).contains("unknown attribute \"ref\"")
        );
        assert!(parse_cache_from("type=registry,ref=x,mode=max")
            .unwrap_err()
            .to_string()
            .contains("unknown attribute \"mode\""));
        assert!(parse_cache_from("type=local,dest=/d")
            .unwrap_err()
            .to_string()
            .contains("unknown attribute \"dest\""));
        assert!(parse_cache_from("type=local,src=/d,tag=../x")
            .unwrap_err()
            .to_string()
            .contains("not a valid tag"));
    }
}
