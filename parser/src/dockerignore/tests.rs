//! .dockerignore rules, one test per rule.

use super::*;

fn matcher(patterns: &[&str]) -> Matcher {
    Matcher::from_patterns(patterns).unwrap_or_else(|e| panic!("{patterns:?}: {e}"))
}

fn excluded(patterns: &[&str], path: &str) -> bool {
    matcher(patterns).matches(path)
}

fn lines(content: &str) -> Vec<String> {
    read_patterns(content.as_bytes())
        .unwrap()
        .into_iter()
        .map(|l| String::from_utf8(l.pattern).unwrap())
        .collect()
}

#[test]
fn reading_comments_blanks_and_cleaning() {
    assert_eq!(
        lines("\u{FEFF}# comment\n\n  a/b/  \r\n/abs\n./dot\n!  /neg/../x \n #not-a-comment\n\t\n"),
        ["a/b", "abs", "dot", "!x", "#not-a-comment"]
    );
    assert_eq!(lines("/"), ["/"]);
    assert_eq!(lines("!"), ["!"]);
    assert_eq!(lines("a\\ b  "), ["a\\ b"]);
    assert_eq!(lines("no newline"), ["no newline"]);
}

#[test]
fn reading_keeps_line_numbers() {
    let l = read_patterns(b"# c\n\na\r\n\nb").unwrap();
    assert_eq!(l.iter().map(|l| l.line).collect::<Vec<_>>(), [3, 5]);
}

#[test]
fn long_lines_fail_like_moby() {
    let long = vec![b'a'; MAX_LINE];
    let e = read_patterns(&long).unwrap_err();
    assert!(matches!(e.kind, IgnoreErrorKind::LineTooLong));
    assert!(read_patterns(&long[1..]).is_ok());
}

#[test]
fn exact_names_and_parent_directories() {
    assert!(excluded(&["foo"], "foo"));
    assert!(excluded(&["foo"], "foo/bar/baz"));
    assert!(!excluded(&["foo"], "foobar"));
    assert!(!excluded(&["foo"], "a/foo"));
    assert!(excluded(&["a/b"], "a/b/c"));
    assert!(!excluded(&["a/b"], "a"));
}

#[test]
fn star_and_question_stay_in_one_component() {
    assert!(excluded(&["*.log"], "x.log"));
    assert!(!excluded(&["*.log"], "dir/x.log"));
    assert!(excluded(&["*/*.log"], "dir/x.log"));
    assert!(excluded(&["*"], "anything/below"));
    assert!(excluded(&["a?c"], "abc"));
    assert!(!excluded(&["a?c"], "a/c"));
    assert!(!excluded(&["a?c"], "abbc"));
}

#[test]
fn classes_ranges_and_negation() {
    assert!(excluded(&["[abc].txt"], "b.txt"));
    assert!(!excluded(&["[abc].txt"], "d.txt"));
    assert!(excluded(&["file[0-9]"], "file7"));
    assert!(excluded(&["file[^0-9]"], "filex"));
    assert!(!excluded(&["file[^0-9]"], "file7"));
    // patternmatcher hands `[!...]` to Go's regexp, where `!` is literal.
    assert!(excluded(&["file[!0-9]"], "file!"));
    assert!(excluded(&["file[!0-9]"], "file5"));
    assert!(!excluded(&["file[!0-9]"], "filex"));
}

#[test]
fn escapes() {
    assert!(excluded(&["a\\*b"], "a*b"));
    assert!(!excluded(&["a\\*b"], "axb"));
    assert!(excluded(&["a\\?"], "a?"));
    assert!(excluded(&["a.b"], "a.b"));
    assert!(!excluded(&["a.b"], "axb"));
    assert!(excluded(&["a+(b)|{c}$"], "a+(b)|{c}$"));
}

#[test]
fn double_star() {
    assert!(excluded(&["**"], "a/b/c"));
    assert!(excluded(&["**/foo"], "foo"));
    assert!(excluded(&["**/foo"], "a/b/foo"));
    assert!(excluded(&["**/foo"], "a/b/foo/c"));
    assert!(excluded(&["**/*.go"], "a/b/x.go"));
    assert!(excluded(&["**/*.go"], "x.go"));
    assert!(excluded(&["a/**"], "a/b/c"));
    assert!(excluded(&["a/**"], "a/b"));
    assert!(excluded(&["a/**/b"], "a/b"));
    assert!(excluded(&["a/**/b"], "a/x/y/b"));
    assert!(!excluded(&["a/**/b"], "a/xb"));
    assert!(excluded(&["dir/**/*.txt"], "dir/a/b/c.txt"));
    assert!(excluded(&["**foo"], "barfoo"));
    assert!(excluded(&["foo**"], "foobar/x"));
    assert!(excluded(&["a/**/"], "a/x"));
}

#[test]
fn exceptions_and_last_match_wins() {
    let m = matcher(&["*.md", "!README.md"]);
    assert!(m.matches("a.md"));
    assert!(!m.matches("README.md"));
    let m = matcher(&["*.md", "!README.md", "README.md"]);
    assert!(m.matches("README.md"));
    let m = matcher(&["docs", "!docs/keep"]);
    assert!(m.matches("docs/x"));
    assert!(!m.matches("docs/keep"));
    assert!(!m.matches("docs/keep/deep"));
    assert!(m.has_exclusions());
    assert!(!matcher(&["a"]).has_exclusions());
}

#[test]
fn errors_name_the_line() {
    let e = Matcher::from_patterns(["ok", "[", "x"]).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(matches!(e.kind, IgnoreErrorKind::BadPattern));
    assert_eq!(e.to_string(), "line 2: syntax error in pattern: \"[\"");
    let e = Matcher::from_patterns(["!"]).unwrap_err();
    assert!(matches!(e.kind, IgnoreErrorKind::IllegalExclusion));
    assert!(e.to_string().contains("line 1"), "{e}");
    for bad in ["a[", "[^", "[]a]", "[x-]", "a\\", "[z-a]"] {
        assert!(Matcher::from_patterns([bad]).is_err(), "{bad}");
    }
    let lines = read_patterns(b"# c\n\n  !  \nx").unwrap();
    let e = Matcher::new(&lines).unwrap_err();
    assert_eq!(e.line, 3);
}

/// Walks `path` down from the top, handing each directory's result to its
/// children, and returns the walker's decision for `path`.
fn walk(m: &Matcher, path: &str) -> bool {
    let mut info = ParentMatch::default();
    let comps: Vec<&str> = path.split('/').collect();
    let mut hit = false;
    for i in 0..comps.len() {
        let (h, next) = m.matches_with_parent(comps[..=i].join("/"), &info);
        hit = h;
        info = next;
    }
    hit
}

#[test]
fn walker_parent_results_agree_with_full_matching() {
    let patterns = ["a", "!a/keep", "*/x*", "**/deep", "!b/**/deep"];
    let m = matcher(&patterns);
    for p in [
        "a",
        "a/keep",
        "a/keep/z",
        "a/y",
        "b",
        "b/xq",
        "b/c",
        "b/c/deep",
        "b/c/deep/e",
        "c/deep",
    ] {
        assert_eq!(walk(&m, p), m.matches(p), "{p}");
        // Without parent results the walker's function is the full check.
        assert_eq!(
            m.matches_with_parent(p, &ParentMatch::default()).0,
            m.matches(p),
            "{p}"
        );
    }
}

/// Found by the dockerignore fuzz target: patternmatcher's two entry
/// points can disagree. An inclusion skipped at a parent (already
/// excluded) is not re-checked against that parent below an exception, so
/// the walker (BuildKit's context transfer) keeps `x/y/z` while the full
/// check excludes it. kiln reproduces both decisions as Go makes them.
#[test]
fn walker_and_full_matching_differ_as_in_patternmatcher() {
    let m = matcher(&["x", "!x/y/z**", "x*"]);
    assert!(walk(&m, "x/y"));
    assert!(!walk(&m, "x/y/z"));
    assert!(m.matches("x/y/z"));
}

#[test]
fn pruning_excluded_directories() {
    let m = matcher(&["node_modules"]);
    assert!(m.can_skip_excluded_dir("node_modules"));
    let m = matcher(&["vendor", "!vendor/keep/**"]);
    assert!(!m.can_skip_excluded_dir("vendor"));
    assert!(m.can_skip_excluded_dir("other"));
    // A glob in an exception could match anywhere: never prune.
    let m = matcher(&["vendor", "!*/keep"]);
    assert!(!m.can_skip_excluded_dir("vendor"));
}

#[test]
fn files_next_to_the_dockerfile_win() {
    let dir = std::env::temp_dir().join(format!("kiln-dockerignore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let dockerfile = dir.join("sub/app.Dockerfile");
    assert_eq!(find_ignore_file(&dir, &dockerfile), None);
    assert!(!load(&dir, &dockerfile).unwrap().matches("x"));
    std::fs::write(dir.join(".dockerignore"), "x\n").unwrap();
    assert_eq!(
        find_ignore_file(&dir, &dockerfile),
        Some(dir.join(".dockerignore"))
    );
    assert!(load(&dir, &dockerfile).unwrap().matches("x"));
    std::fs::write(dir.join("sub/app.Dockerfile.dockerignore"), "y\n[\n").unwrap();
    assert_eq!(
        find_ignore_file(&dir, &dockerfile),
        Some(dir.join("sub/app.Dockerfile.dockerignore"))
    );
    let e = load(&dir, &dockerfile).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(
        e.to_string()
            .contains("app.Dockerfile.dockerignore: line 2"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Matching work is bounded by path length x pattern length: a deep path
/// under `**` patterns is matched in one pass per pattern.
#[test]
fn deep_paths_stay_cheap() {
    let m = matcher(&["**/a/**/b/**/c", "!**/x*y", "**/z"]);
    let path = "d/".repeat(20_000) + "f";
    assert!(!m.matches(&path));
    let path = "a/".repeat(10_000) + "z";
    assert!(m.matches(&path));
}

/// The fuzz input behind the test above (invalid UTF-8 bytes each match a
/// `?`-like U+FFFD, as in Go): the walk keeps the path, the full check
/// excludes it, exactly as patternmatcher decides.
#[test]
fn fuzz_regression_walker_differs_on_invalid_utf8() {
    let content: &[u8] = b"\x8a\x8a\xcd\xa1\xff\xff\xff\xff!\x8a\n\xff'\x8a!\n\x8a\n***\x8a\x8a\n!\x99\x99/@\x99/@**/\n\xc3*\n\x86**\n\xed**\n@\xef";
    let m = Matcher::new(&read_patterns(content).unwrap()).unwrap();
    let mut info = ParentMatch::default();
    let mut walked = Vec::new();
    for prefix in [&b"\x99\x99"[..], b"\x99\x99/@\x99", b"\x99\x99/@\x99/@"] {
        let (hit, next) = m.matches_with_parent(prefix, &info);
        walked.push((hit, m.matches(prefix)));
        info = next;
    }
    assert_eq!(walked, [(true, true), (true, true), (false, true)]);
}
