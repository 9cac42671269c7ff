//! Arbitrary bytes as a layer: apply must return Ok or an error, never panic,
//! and never write outside its target (the target lives in a sandbox dir whose
//! only other entry is checked after every run).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sandbox = tempfile::tempdir().unwrap();
    let target = sandbox.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(sandbox.path().join("canary"), b"keep").unwrap();
    for mode in [kiln_cache::layer::ApplyMode::Merged, kiln_cache::layer::ApplyMode::Overlay] {
        let opts = kiln_cache::layer::ApplyOptions {
            mode,
            ratio_floor: 1 << 20,
            ..Default::default()
        };
        let _ = kiln_cache::layer::apply_layer(data, &target, &opts);
    }
    let mut names: Vec<_> = std::fs::read_dir(sandbox.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["canary", "target"], "something appeared beside the target");
    assert_eq!(std::fs::read(sandbox.path().join("canary")).unwrap(), b"keep");
});
