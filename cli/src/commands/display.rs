//! Docker's ways of showing things: tables, human sizes and durations, and
//! the `--format` subset kiln understands (`json`, `table`, `{{.Field}}`).

use std::io::Write;

/// Sizes as docker's tables print them: SI units, three significant digits ("4.26MB").
pub fn human_size(bytes: u64) -> String {
    kiln_engine::events::human_size(bytes, 3)
}

/// "2 months ago", as docker's go-units HumanDuration words it.
pub fn since(then_unix: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let d = kiln_engine::events::human_duration((now - then_unix).max(0) as u64);
    format!("{d} ago")
}

/// Prints rows as docker's tabwriter does: columns padded to the widest cell plus three spaces.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        s.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for r in rows {
        let _ = writeln!(out, "{}", line(r.iter().map(|s| s.as_str()).collect()));
    }
}

/// Truncates to `n` characters with an ellipsis, as docker's tables do.
pub fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// Renders a Go-template-like format (`{{.A.B}}`, `{{json .A}}`, `{{json .}}`)
/// against a JSON value: the subset scripts use with `docker inspect -f`.
pub fn template(fmt: &str, v: &serde_json::Value) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = fmt;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| anyhow::anyhow!("template: unclosed action in {fmt:?}"))?;
        let action = rest[start + 2..start + end].trim();
        let (json, path) = match action.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, action),
        };
        let path = path
            .strip_prefix('.')
            .ok_or_else(|| anyhow::anyhow!("template: unsupported action {{{{{action}}}}}"))?;
        let mut cur = v;
        for key in path.split('.').filter(|k| !k.is_empty()) {
            cur = cur.get(key).unwrap_or(&serde_json::Value::Null);
        }
        match (json, cur) {
            (true, c) => out.push_str(&serde_json::to_string(c)?),
            (false, serde_json::Value::String(s)) => out.push_str(s),
            (false, serde_json::Value::Null) => out.push_str("<no value>"),
            (false, c) => out.push_str(&c.to_string()),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The engine on the global `--root`.
pub fn engine(g: &crate::Globals) -> kiln_engine::Engine {
    kiln_engine::Engine::new(&g.root)
}

/// Prints an operation's warnings as kiln's CLI does (`kiln: warning: ...`) and drops the
/// other events: for commands that show no progress.
pub fn warnings_only() -> kiln_engine::Progress {
    kiln_engine::Progress::new(|e| {
        if let kiln_engine::Event::Warning(w) = e {
            eprintln!("kiln: warning: {w}");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_look_like_dockers() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(123), "123B");
        assert_eq!(human_size(4_261_234), "4.26MB");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(12_345_678), "12.3MB");
    }

    #[test]
    fn templates_pick_fields() {
        let v = serde_json::json!({"Id": "sha256:x", "Config": {"Env": ["A=1"]}});
        assert_eq!(template("{{.Id}}", &v).unwrap(), "sha256:x");
        assert_eq!(
            template("e={{json .Config.Env}}", &v).unwrap(),
            "e=[\"A=1\"]"
        );
        assert!(template("{{.Id", &v).is_err());
    }
}
