//! Go's `strconv.Quote`, so `--dump` output matches BuildKit's byte for byte.

use std::fmt::Write;

/// Whether Go's `strconv.IsPrint` holds: letters, marks, numbers,
/// punctuation, symbols and the ASCII space.
///
/// Rust's `escape_debug` keeps exactly those characters (its printable table
/// is built from the same Unicode categories); a grapheme extender is only
/// escaped at the start of a string, so a leading `a` keeps marks printable.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_ascii() {
        return c.is_ascii_graphic();
    }
    let mut buf = [0u8; 8];
    let probe = format!("a{}", c.encode_utf8(&mut buf));
    !probe.escape_debug().to_string()[1..].starts_with("\\u{")
}

/// Quotes `s` as Go's `strconv.Quote` does.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    push_quoted(&mut out, s);
    out.push('"');
    out
}

fn push_quoted(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
}

/// Formats a list of strings as Go's `fmt.Sprintf("%q", []string{...})`:
/// `["a" "b"]`.
pub fn go_quote_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&go_quote(item));
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\t\n\r\u{7}\u{0}\u{7f}"), r#""\t\n\r\a\x00\x7f""#);
        assert_eq!(go_quote("àöû €"), "\"àöû €\"");
        assert_eq!(go_quote("\u{a0}\u{feff}\u{ad}"), r#""\u00a0\ufeff\u00ad""#);
        assert_eq!(go_quote("e\u{301}"), "\"e\u{301}\"");
        assert_eq!(go_quote("\u{e0001}"), r#""\U000e0001""#);
        assert_eq!(go_quote_list(["--a=1", "x"]), r#"["--a=1" "x"]"#);
        assert_eq!(go_quote_list([]), "[]");
    }
}
