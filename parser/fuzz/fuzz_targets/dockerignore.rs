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
        // The walk below re-matches every leading directory: keep it to a
        // few short paths so one run stays cheap.
        if n >= 8 || path.len() > 256 || !is_clean(path) {
            continue;
        }
        // Walking down component by component gives the same answer.
        let mut info = ParentMatch::default();
        let mut walked = false;
        for (i, _) in path.iter().enumerate().filter(|&(_, &c)| c == b'/') {
            let dir = &path[..i];
            let (dir_excluded, next) = m.matches_with_parent(dir, &info);
            assert_eq!(dir_excluded, m.matches(dir));
            // A pruned directory never hides an included file.
            if dir_excluded && m.can_skip_excluded_dir(dir) {
                assert!(excluded, "pruned {:?} but {:?} is included", dir, path);
            }
            info = next;
        }
        let (hit, _) = m.matches_with_parent(path, &info);
        walked |= hit;
        assert_eq!(walked, excluded);
    }
});
