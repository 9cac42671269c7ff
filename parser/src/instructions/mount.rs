//! `RUN --mount=...` values: CSV fields, checked as BuildKit's
//! `commands_runmount.go` checks them.
//!
//! Values stay as written (variables are expanded by the solver); a value
//! holding a `$` is therefore not checked here, except that `type` must be
//! literal.

use serde::Serialize;

use crate::error::suggest;
use crate::instructions::units::ram_in_bytes;
use crate::span::Span;

/// The kind of a `--mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A read-only (by default) view of the context or another stage.
    Bind,
    /// A persistent cache directory.
    Cache,
    /// An empty in-memory filesystem.
    Tmpfs,
    /// A build secret as a file or variable.
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl MountType {
    /// The name as written in Dockerfiles.
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// How a cache mount is shared between concurrent builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Used by all writers at once.
    Shared,
    /// A new copy per concurrent writer.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// One `--mount` of a RUN instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// `type=` (default `bind`).
    #[serde(rename = "type")]
    pub kind: MountType,
    /// `from=`: a stage or image to mount from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `source=`/`src=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `target=`/`dst=`/`destination=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Read-only: given by `ro`/`rw`, else true for bind, secret and ssh.
    pub read_only: bool,
    /// `size=` of a tmpfs, as written (bytes once parsed, see `sizeBytes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// `size=` in bytes, when it holds no variable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// `id=` of a cache or secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `sharing=` of a cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sharing: Option<Sharing>,
    /// `required` of a secret or ssh mount.
    pub required: bool,
    /// `env=`: the variable a secret is exposed as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// `mode=` (octal, as written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `uid=`, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// `gid=`, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// The `--mount=...` flag.
    pub span: Span,
}

/// Splits one CSV record (Go's `encoding/csv` rules: `"` quotes a whole
/// field, `""` is a quote inside it, a bare quote elsewhere is an error).
pub fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("extraneous or missing \" in quoted-field".into()),
                    Some('"') => match chars.peek() {
                        Some('"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some(',') | None => break,
                        Some(_) => return Err("extraneous or missing \" in quoted-field".into()),
                    },
                    Some(c) => field.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err("bare \" in non-quoted-field".into());
                }
                field.push(c);
                chars.next();
            }
        }
        fields.push(field);
        match chars.next() {
            Some(',') => continue,
            _ => break,
        }
    }
    Ok(fields)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    // Go's strconv.ParseBool.
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid value for {key}: {value}")),
    }
}

const ALL_KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

fn with_suggestion(msg: String, word: &str, options: &[&str]) -> String {
    match suggest(word, options.iter().copied()) {
        Some(s) => format!("{msg} (did you mean {s}?)"),
        None => msg,
    }
}

/// Parses and checks one `--mount` value.
pub fn parse_mount(value: &str, span: Span) -> Result<Mount, String> {
    let fields = csv_fields(value).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    let mut m = Mount {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: None,
        read_only: false,
        size: None,
        size_bytes: None,
        id: None,
        sharing: None,
        required: false,
        env: None,
        mode: None,
        uid: None,
        gid: None,
        span,
    };
    let mut ro_auto = true;
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                }
                "required" => {
                    if matches!(m.kind, MountType::Secret | MountType::Ssh) {
                        m.required = true;
                    } else {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind.as_str()
                        ));
                    }
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let dynamic = value.contains('$');
        match key.as_str() {
            "type" => {
                m.kind = match value.to_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        return Err(with_suggestion(
                            format!("unsupported mount type {value:?}"),
                            value,
                            &["bind", "cache", "tmpfs", "secret", "ssh"],
                        ))
                    }
                }
            }
            "from" => {
                if let Some(i) = value.find('$') {
                    if i != value.len() - 1 {
                        return Err(format!(
                            "'{key}' doesn't support variable expansion, define alias stage instead"
                        ));
                    }
                }
                m.from = Some(value.into());
            }
            "source" | "src" => m.source = Some(value.into()),
            "target" | "dst" | "destination" => m.target = Some(value.into()),
            "readonly" | "ro" => {
                if !dynamic {
                    m.read_only = parse_bool(&key, value)?;
                }
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                if !dynamic {
                    m.read_only = !parse_bool(&key, value)?;
                }
                ro_auto = false;
            }
            "required" => {
                if matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    if !dynamic {
                        m.required = parse_bool(&key, value)?;
                    }
                } else {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.as_str()
                    ));
                }
            }
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.as_str()
                    ));
                }
                if !dynamic {
                    m.size_bytes = Some(
                        ram_in_bytes(value)
                            .map_err(|_| format!("invalid value for {key}: {value}"))?,
                    );
                }
                m.size = Some(value.into());
            }
            "id" => m.id = Some(value.into()),
            "sharing" => {
                m.sharing = Some(match value.to_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        return Err(with_suggestion(
                            format!("unsupported sharing value {value:?}"),
                            value,
                            &["shared", "private", "locked"],
                        ))
                    }
                })
            }
            "mode" => {
                if !dynamic && u32::from_str_radix(value, 8).is_err() {
                    return Err(format!("invalid value {value} for mode"));
                }
                m.mode = Some(value.into());
            }
            "uid" | "gid" => {
                if !dynamic && value.parse::<u32>().is_err() {
                    return Err(format!("invalid value {value} for {key}"));
                }
                if key == "uid" {
                    m.uid = Some(value.into());
                } else {
                    m.gid = Some(value.into());
                }
            }
            "env" => m.env = Some(value.into()),
            _ => {
                return Err(with_suggestion(
                    format!("unexpected key '{key}' in '{field}'"),
                    &key,
                    ALL_KEYS,
                ))
            }
        }
    }
    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(format!(
                    "{name} not allowed for {:?} type mounts",
                    m.kind.as_str()
                ));
            }
        }
    }
    if ro_auto {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".into());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".into());
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            m.kind.as_str()
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Mount, String> {
        parse_mount(s, Span::default())
    }

    #[test]
    fn csv_rules() {
        assert_eq!(csv_fields("a,b=c").unwrap(), ["a", "b=c"]);
        assert_eq!(csv_fields("\"a,b\",c").unwrap(), ["a,b", "c"]);
        assert_eq!(csv_fields("\"a\"\"b\"").unwrap(), ["a\"b"]);
        assert_eq!(csv_fields("").unwrap(), [""]);
        assert!(csv_fields("a\"b").is_err());
        assert!(csv_fields("\"ab").is_err());
    }

    #[test]
    fn mount_defaults() {
        let m = p("target=/x").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.read_only);
        let m = p("type=cache,target=/root/.cache,sharing=locked,id=x,mode=0755,uid=1").unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert!(!m.read_only);
        assert_eq!(m.sharing, Some(Sharing::Locked));
        let m = p("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(m.size_bytes, Some(64 << 20));
        let m = p("type=secret,id=tok,required,env=TOKEN").unwrap();
        assert!(m.required && m.read_only);
        let m = p("type=bind,source=.,target=/src,rw").unwrap();
        assert!(!m.read_only);
        let m = p("type=ssh").unwrap();
        assert_eq!(m.kind, MountType::Ssh);
    }

    #[test]
    fn mount_errors() {
        assert!(p("type=cahce").unwrap_err().contains("did you mean cache?"));
        assert!(p("type=bind,mode=0700")
            .unwrap_err()
            .contains("mode not allowed"));
        assert!(p("type=cache,required")
            .unwrap_err()
            .contains("unexpected key 'required'"));
        assert!(p("type=secret")
            .unwrap_err()
            .contains("one of source, target"));
        assert!(p("type=tmpfs,size=lots")
            .unwrap_err()
            .contains("invalid value for size"));
        assert!(p("type=bind,sharing=shared")
            .unwrap_err()
            .contains("invalid cache sharing"));
        assert!(p("targte=/x").unwrap_err().contains("did you mean target?"));
        assert!(p("from=$X/y").unwrap_err().contains("variable expansion"));
        assert!(p("type=cache,uid=abc")
            .unwrap_err()
            .contains("invalid value abc for uid"));
        assert!(p("foo").unwrap_err().contains("key=value"));
    }
}
