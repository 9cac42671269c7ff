//! Word expansion never panics, never hangs, and stays bounded in work.
//!
//! Input layout: byte 0 picks the escape character and lexer options, then
//! `word \0 K=V \0 K=V ...` (lossy UTF-8).
#![no_main]

use kiln_parser::shell::{EnvList, Lexer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\0');
    let word = parts.next().unwrap_or("");
    let env = EnvList::from_entries(parts);
    let escape = if flags & 1 == 0 { '\\' } else { '`' };
    let lex = Lexer::new(escape)
        .with_raw_quotes(flags & 2 != 0)
        .with_raw_escapes(flags & 4 != 0)
        .with_skip_process_quotes(flags & 8 != 0)
        .with_skip_unset_env(flags & 16 != 0)
        // Nested ${v//p/r} can grow a word exponentially; keep each run small.
        .with_work_limit(1 << 12);
    let one = lex.process_word(word, &env);
    let many = lex.process_words(word, &env);
    // Both entry points agree on whether the word is valid.
    assert_eq!(one.is_ok(), many.is_ok());
    if let Err(e) = one {
        // Error offsets point inside the word.
        assert!(e.offset <= word.len());
        let _ = e.to_string();
    }
});
