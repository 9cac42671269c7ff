//! Inputs that once crashed, hung or misparsed (found by fuzzing and by
//! differential runs against BuildKit's parser) stay here as regression
//! tests: every file in `testdata/parser-fuzz-regressions/` must parse or
//! fail cleanly, and its dump and JSON must render. A `NAME.dump` beside an
//! input holds BuildKit's dump of it, which kiln must reproduce.

use std::fs;
use std::path::Path;

#[test]
fn fuzz_regressions_parse_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/parser-fuzz-regressions");
    let mut inputs = 0;
    for entry in fs::read_dir(&root).expect("regressions dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "dump") {
            continue;
        }
        inputs += 1;
        let bytes = fs::read(&path).expect("read input");
        let name = path.display().to_string();
        let Ok(text) = kiln_parser::decode(&bytes, &name) else {
            continue;
        };
        let expected = fs::read_to_string(path.with_extension("dump")).ok();
        match kiln_parser::parse_raw(&text, &name) {
            Ok(raw) => {
                let dump = raw.dump();
                if let Some(want) = expected {
                    assert_eq!(dump, want, "{name}");
                }
                if let Ok(tree) = kiln_parser::instructions::from_raw(raw, &text, &name) {
                    assert!(tree.to_json().starts_with('{'));
                    assert!(!kiln_parser::outline::outline(&tree).is_empty());
                }
            }
            Err(e) => {
                assert!(
                    expected.is_none(),
                    "{name}: BuildKit parses it, kiln says {e}"
                );
                assert!(e.to_string().contains(&name));
            }
        }
    }
    assert!(inputs >= 5, "regression inputs missing");
}
