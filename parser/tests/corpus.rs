//! Runs every Dockerfile under `testdata/parser/` and compares with the
//! expected files beside it:
//!
//! - `dump`: BuildKit's s-expression dump of the line-level parse (present
//!   when that parse succeeds; every one was checked against BuildKit's own
//!   parser dumper),
//! - `json`: the typed tree (present when the whole parse succeeds),
//! - `error`: the error, `file:line:column: message (hint)` (present when
//!   either layer fails).
//!
//! `KILN_BLESS=1 cargo test -p kiln-parser --test corpus` rewrites them.

use std::fs;
use std::path::{Path, PathBuf};

fn corpus_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// What the parser produces for one Dockerfile: (dump, json, error).
fn outputs(bytes: &[u8]) -> (Option<String>, Option<String>, Option<String>) {
    let text = match kiln_parser::decode(bytes, "Dockerfile") {
        Ok(t) => t,
        Err(e) => return (None, None, Some(e.to_string())),
    };
    let raw = match kiln_parser::parse_raw(&text, "Dockerfile") {
        Ok(r) => r,
        Err(e) => return (None, None, Some(e.to_string())),
    };
    let dump = raw.dump();
    match kiln_parser::instructions::from_raw(raw, &text, "Dockerfile") {
        Ok(tree) => (Some(dump), Some(tree.to_json() + "\n"), None),
        Err(e) => (Some(dump), None, Some(e.to_string() + "\n")),
    }
}

fn check(dir: &Path, name: &str, got: Option<String>, bless: bool, failures: &mut Vec<String>) {
    let path = dir.join(name);
    if bless {
        match &got {
            Some(g) => fs::write(&path, g).expect("writing expected file"),
            None => {
                let _ = fs::remove_file(&path);
            }
        }
        return;
    }
    let want = fs::read_to_string(&path).ok();
    if want != got {
        failures.push(format!(
            "{}: {name} differs\n--- expected\n{}\n--- got\n{}",
            dir.display(),
            want.as_deref().unwrap_or("<none>"),
            got.as_deref().unwrap_or("<none>")
        ));
    }
}

fn run_corpus(root: &Path, min: usize) {
    let bless = std::env::var_os("KILN_BLESS").is_some();
    let dirs = corpus_dirs(root);
    assert!(
        dirs.len() >= min,
        "expected at least {min} cases in {}",
        root.display()
    );
    let mut failures = Vec::new();
    for dir in &dirs {
        let bytes = fs::read(dir.join("Dockerfile")).expect("reading Dockerfile");
        let (dump, json, error) = outputs(&bytes);
        check(dir, "dump", dump, bless, &mut failures);
        check(dir, "json", json, bless, &mut failures);
        check(
            dir,
            "error",
            error.map(|e| if e.ends_with('\n') { e } else { e + "\n" }),
            bless,
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn parser_corpus_matches_expected_outputs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/parser");
    run_corpus(&root, 40);
}
