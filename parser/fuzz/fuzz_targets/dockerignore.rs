//! .dockerignore reading and matching never panic, and the walker's
//! shortcuts agree with full matching.
//!
//! Input layout: `.dockerignore content \0 path \0 path ...`.
#![no_main]

use kiln_parser::dockerignore::{read_patterns, Matcher, ParentMatch};
use libfuzzer_sys::fuzz_target;

/// A relative path with no empty, `.` or `..` components (what a context
/// walker produces).
fn is_clean(p: &[u8]) -> bool {
    !p.is_empty()
        && p
            .split(|&c| c == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&c| c == 0);
    let content = parts.next().unwrap_or(b"");
    let Ok(lines) = read_patterns(content) else {
        return;
    };
    let Ok(m) = Matcher::new(&lines) else {
        return;
    };
    for (n, path) in parts.enumerate() {
        let excluded = m.matches(path);
        // Without parent results the walker's function is the full check.
        assert_eq!(m.matches_with_parent(path, &ParentMatch::default()).0, excluded);
        // The walk below re-matches every leading directory: keep it to a
        // few short paths so one run stays cheap.
        if n >= 8 || path.len() > 256 || !is_clean(path) {
            continue;
        }
        // Walk down component by component as a context walker does. (The
        // walk may differ from `matches`, as patternmatcher's entry points
        // do; see the dockerignore unit tests.)
        let mut info = ParentMatch::default();
        let mut pruned = None;
        for (i, _) in path.iter().enumerate().filter(|&(_, &c)| c == b'/') {
            let dir = &path[..i];
            let (dir_excluded, next) = m.matches_with_parent(dir, &info);
            if pruned.is_none() && dir_excluded && m.can_skip_excluded_dir(dir) {
                pruned = Some(dir);
            }
            info = next;
        }
        let (walked, _) = m.matches_with_parent(path, &info);
        // A pruned directory never hides a file the walk would include.
        if let Some(dir) = pruned {
            assert!(walked, "pruned {dir:?} but the walk includes {path:?}");
        }
    }
});
