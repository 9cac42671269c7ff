//! Parses arbitrary bytes as a Dockerfile: the parser must never panic or
//! hang, and a successful parse must dump and serialize without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = kiln_parser::decode(data, "fuzz") else {
        return;
    };
    match kiln_parser::parse_raw(&text, "fuzz") {
        Ok(raw) => {
            let _ = raw.dump();
            if let Ok(tree) = kiln_parser::instructions::from_raw(raw, &text, "fuzz") {
                // Serialize without building the string: same code paths, less work.
                serde_json::to_writer(std::io::sink(), &tree).expect("tree serializes");
                let _ = kiln_parser::outline::outline(&tree);
            }
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
});
