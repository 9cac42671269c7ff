//! Path rules of the Dockerfile: cleaning, WORKDIR resolution, destination
//! paths relative to the working directory (Go's `path.Clean` semantics,
//! which BuildKit uses, so `a/../b` and trailing slashes behave the same).

/// Go's `path.Clean`: the shortest equivalent path, lexically.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// The working directory after `WORKDIR p` when it was `current`.
pub fn workdir(current: &str, p: &str) -> String {
    if p.starts_with('/') {
        clean(p)
    } else {
        let base = if current.is_empty() { "/" } else { current };
        clean(&format!("{base}/{p}"))
    }
}

/// A COPY/ADD destination made absolute against the working directory,
/// keeping a trailing `/` (it means "into this directory").
pub fn dest(workdir: &str, p: &str) -> String {
    let p = if p == "." || p.is_empty() { "./" } else { p };
    let keep_slash = p.ends_with('/') || p.ends_with("/.");
    let base = if p.starts_with('/') {
        clean(p)
    } else {
        clean(&format!(
            "{}/{p}",
            if workdir.is_empty() { "/" } else { workdir }
        ))
    };
    if keep_slash && base != "/" {
        format!("{base}/")
    } else {
        base
    }
}

/// A COPY source path made absolute and clean inside its source root.
pub fn source(p: &str) -> String {
    clean(&format!("/{p}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        for (i, o) in [
            ("", "."),
            ("a/b/../c", "a/c"),
            ("/../a", "/a"),
            ("../../a", "../../a"),
            ("a/./b/", "a/b"),
            ("//a//b", "/a/b"),
            ("/", "/"),
        ] {
            assert_eq!(clean(i), o, "{i}");
        }
    }

    #[test]
    fn workdir_is_relative_to_the_previous_one() {
        assert_eq!(workdir("/app", "src"), "/app/src");
        assert_eq!(workdir("/app", "/srv/"), "/srv");
        assert_eq!(workdir("", "x/../y"), "/y");
        assert_eq!(workdir("/a", ".."), "/");
    }

    #[test]
    fn dest_keeps_the_directory_slash() {
        assert_eq!(dest("/app", "."), "/app/");
        assert_eq!(dest("/app", "./src/"), "/app/src/");
        assert_eq!(dest("/app", "file"), "/app/file");
        assert_eq!(dest("/", "/out/"), "/out/");
        assert_eq!(dest("/", "/"), "/");
    }

    #[test]
    fn sources_cannot_climb_out_of_their_root() {
        assert_eq!(source("../../etc/passwd"), "/etc/passwd");
        assert_eq!(source("src/"), "/src");
        assert_eq!(source("."), "/");
    }
}
