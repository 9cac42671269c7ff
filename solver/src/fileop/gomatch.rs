//! COPY/ADD source wildcards: BuildKit matches them with plain Go
//! `filepath.Match`, one directory level at a time; kiln-parser's
//! implementation of it (the one under .dockerignore) serves here too.

pub(crate) use kiln_parser::dockerignore::gopath::go_match;

/// Whether `p` holds a wildcard (`*`, `?`, `[`), skipping `\`-escaped
/// characters, as fsutil's `containsWildcards`.
pub(crate) fn has_wildcards(p: &[u8]) -> bool {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_parser::dockerignore::gopath::BadPattern;

    #[test]
    fn matches_like_go() {
        let m = |p: &str, n: &str| go_match(p.as_bytes(), n.as_bytes());
        assert_eq!(m("*.png", "a.png"), Ok(true));
        assert_eq!(m("*.png", "dir/a.png"), Ok(false));
        assert_eq!(m("index.?s", "index.js"), Ok(true));
        assert_eq!(m("arr[[]0].txt", "arr[0].txt"), Ok(true));
        assert_eq!(m("[^a]x", "bx"), Ok(true));
        assert_eq!(m("[a-c]x", "dx"), Ok(false));
        assert_eq!(m("\\*", "*"), Ok(true));
        assert_eq!(m("[", "a"), Err(BadPattern));
        assert!(has_wildcards(b"a/*.txt"));
        assert!(!has_wildcards(b"a\\*.txt"));
    }
}
