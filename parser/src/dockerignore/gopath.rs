//! Go's `path/filepath` pieces that moby's pattern matcher relies on:
//! `Clean`, `Dir`, `Match` and `strings.TrimSpace`, on bytes, for Unix.

/// Decodes the rune at the start of `b` as Go's `utf8.DecodeRune` does:
/// an invalid byte is U+FFFD with width 1.
pub(crate) fn decode_rune(b: &[u8]) -> (char, usize) {
    let len = match b.first() {
        None => return ('\u{FFFD}', 0),
        Some(&c) if c < 0x80 => return (c as char, 1),
        Some(&c) if c & 0xE0 == 0xC0 => 2,
        Some(&c) if c & 0xF0 == 0xE0 => 3,
        Some(&c) if c & 0xF8 == 0xF0 => 4,
        Some(_) => return ('\u{FFFD}', 1),
    };
    match b.get(..len).and_then(|s| std::str::from_utf8(s).ok()) {
        Some(s) => (s.chars().next().unwrap_or('\u{FFFD}'), len),
        None => ('\u{FFFD}', 1),
    }
}

/// Go's `utf8.DecodeLastRune`.
fn decode_last_rune(b: &[u8]) -> (char, usize) {
    if b.is_empty() {
        return ('\u{FFFD}', 0);
    }
    let lim = b.len().saturating_sub(4);
    let mut start = b.len() - 1;
    while start > lim && b[start] & 0xC0 == 0x80 {
        start -= 1;
    }
    let (r, n) = decode_rune(&b[start..]);
    if start + n != b.len() {
        return ('\u{FFFD}', 1);
    }
    (r, n)
}

/// Go's `strings.TrimSpace` (Unicode white space, invalid bytes kept).
pub(crate) fn trim_space(mut b: &[u8]) -> &[u8] {
    while !b.is_empty() {
        let (r, n) = decode_rune(b);
        if !r.is_whitespace() || (r == '\u{FFFD}' && n == 1) {
            break;
        }
        b = &b[n..];
    }
    while !b.is_empty() {
        let (r, n) = decode_last_rune(b);
        if !r.is_whitespace() || (r == '\u{FFFD}' && n == 1) {
            break;
        }
        b = &b[..b.len() - n];
    }
    b
}

/// Go's `filepath.Clean` on Unix: the shortest path naming the same file
/// by lexical processing alone.
pub(crate) fn clean(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let n = path.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut r, mut dotdot) = (0, 0);
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    while r < n {
        if path[r] == b'/' || (path[r] == b'.' && (r + 1 == n || path[r + 1] == b'/')) {
            // An empty or `.` element.
            r += 1;
        } else if path[r] == b'.' && path[r + 1] == b'.' && (r + 2 == n || path[r + 2] == b'/') {
            r += 2;
            if out.len() > dotdot {
                // Back up to the previous separator (Go's lazybuf `w`).
                let mut w = out.len() - 1;
                while w > dotdot && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && path[r] != b'/' {
                out.push(path[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Go's `filepath.Dir` on Unix.
pub(crate) fn dir(path: &[u8]) -> Vec<u8> {
    match path.iter().rposition(|&c| c == b'/') {
        Some(i) => clean(&path[..=i]),
        None => b".".to_vec(),
    }
}

/// `filepath.ErrBadPattern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

/// Go's `filepath.Match` on Unix: `*`, `?`, `[...]` (`^` negates,
/// ranges, `\` escapes) and `\` escapes; `*` and `?` never match `/`.
/// Reports a malformed pattern even when the match fails early.
pub fn go_match(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, BadPattern> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing * matches the rest unless it has a /.
            return Ok(!name.contains(&b'/'));
        }
        let (t, ok, err) = match_chunk(chunk, name);
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if let Some(e) = err {
            return Err(e);
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                let (t, ok, err) = match_chunk(chunk, &name[i + 1..]);
                if ok {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
                if let Some(e) = err {
                    return Err(e);
                }
                i += 1;
            }
        }
        // Before failing, check the rest of the pattern is well formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if let (_, _, Some(e)) = match_chunk(chunk, b"") {
                return Err(e);
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let Some(rest) = pattern.strip_prefix(b"*") {
        pattern = rest;
        star = true;
    }
    let mut inrange = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => inrange = true,
            b']' => inrange = false,
            b'*' if !inrange => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Matches one chunk at the start of `s`: (rest of s, matched, error).
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> (&'a [u8], bool, Option<BadPattern>) {
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            b'[' => {
                let mut r = '\0';
                if !failed {
                    let (c, n) = decode_rune(s);
                    r = c;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if chunk.first() == Some(&b'^') {
                    negated = true;
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = match get_esc(chunk) {
                        Ok(v) => v,
                        Err(e) => return (b"", false, Some(e)),
                    };
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        match get_esc(&chunk[1..]) {
                            Ok((h, rest)) => {
                                hi = h;
                                chunk = rest;
                            }
                            Err(e) => return (b"", false, Some(e)),
                        }
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            c => {
                let mut c = c;
                if c == b'\\' {
                    chunk = &chunk[1..];
                    match chunk.first() {
                        None => return (b"", false, Some(BadPattern)),
                        Some(&e) => c = e,
                    }
                }
                if !failed {
                    if c != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    if failed {
        return (b"", false, None);
    }
    (s, true, None)
}

/// One possibly escaped character of a class; errors as Go's `getEsc`.
fn get_esc(mut chunk: &[u8]) -> Result<(char, &[u8]), BadPattern> {
    if chunk.is_empty() || chunk[0] == b'-' || chunk[0] == b']' {
        return Err(BadPattern);
    }
    if chunk[0] == b'\\' {
        chunk = &chunk[1..];
        if chunk.is_empty() {
            return Err(BadPattern);
        }
    }
    let (r, n) = decode_rune(chunk);
    let rest = &chunk[n..];
    if (r == '\u{FFFD}' && n == 1) || rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((r, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(p: &str) -> String {
        String::from_utf8(clean(p.as_bytes())).unwrap()
    }

    #[test]
    fn clean_like_go() {
        for (p, want) in [
            ("", "."),
            ("abc", "abc"),
            ("abc/def/", "abc/def"),
            ("a/b/c/..", "a/b"),
            ("a//b", "a/b"),
            ("./a", "a"),
            ("/../a", "/a"),
            ("../../a", "../../a"),
            ("a/../..", ".."),
            ("a/../../b", "../b"),
            ("/", "/"),
            ("//", "/"),
            ("/abc/..", "/"),
            ("abc/./../def", "def"),
            ("a/b/../../c/", "c"),
            ("**/", "**"),
        ] {
            assert_eq!(c(p), want, "{p:?}");
        }
    }

    #[test]
    fn dir_like_go() {
        assert_eq!(dir(b"a/b/c"), b"a/b");
        assert_eq!(dir(b"c"), b".");
        assert_eq!(dir(b"/c"), b"/");
        assert_eq!(dir(b"a//b//c"), b"a/b");
    }

    #[test]
    fn trim_space_like_go() {
        assert_eq!(trim_space(b" \t a b \r\n"), b"a b");
        assert_eq!(trim_space("\u{a0}x\u{3000}".as_bytes()), b"x");
        assert_eq!(trim_space(b"\xffx \xff"), b"\xffx \xff");
    }

    #[test]
    fn match_like_go() {
        let m = |p: &str, n: &str| go_match(p.as_bytes(), n.as_bytes());
        assert_eq!(m("abc", "abc"), Ok(true));
        assert_eq!(m("*", "abc"), Ok(true));
        assert_eq!(m("*c", "abc"), Ok(true));
        assert_eq!(m("a*", "ab/c"), Ok(false));
        assert_eq!(m("a*/b", "abc/b"), Ok(true));
        assert_eq!(m("a*b*c*d*e*/f", "axbxcxdxe/f"), Ok(true));
        assert_eq!(m("ab[c]", "abc"), Ok(true));
        assert_eq!(m("ab[b-d]", "abc"), Ok(true));
        assert_eq!(m("ab[^c]", "abc"), Ok(false));
        assert_eq!(m("ab[^b-d]", "abe"), Ok(true));
        assert_eq!(m("a\\*b", "a*b"), Ok(true));
        assert_eq!(m("a\\*b", "ab"), Ok(false));
        assert_eq!(m("a?b", "a☺b"), Ok(true));
        assert_eq!(m("a[^a]b", "a☺b"), Ok(true));
        assert_eq!(m("a???b", "a☺b"), Ok(false));
        assert_eq!(m("[\\]a]", "]"), Ok(true));
        assert_eq!(m("[x\\-]", "-"), Ok(true));
        assert_eq!(m("*x", "xxx"), Ok(true));
        assert_eq!(m("[", "a"), Err(BadPattern));
        assert_eq!(m("[^", "a"), Err(BadPattern));
        assert_eq!(m("[^bc", "a"), Err(BadPattern));
        assert_eq!(m("a[", "a"), Err(BadPattern));
        assert_eq!(m("a[", "ab"), Err(BadPattern));
        assert_eq!(m("a[", "x"), Err(BadPattern));
        assert_eq!(m("a/b[", "a/b"), Err(BadPattern));
        assert_eq!(m("[]a]", "]"), Err(BadPattern));
        assert_eq!(m("[-]", "-"), Err(BadPattern));
        assert_eq!(m("[x-]", "x"), Err(BadPattern));
        assert_eq!(m("\\", "a"), Err(BadPattern));
        assert_eq!(m("[a-b-c]", "a"), Err(BadPattern));
        assert_eq!(m("*[a-b-c]", "a"), Err(BadPattern));
        assert_eq!(m("a*b[", "x"), Err(BadPattern));
    }
}
