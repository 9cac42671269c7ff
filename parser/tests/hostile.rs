//! Hostile inputs generated at test time (too big to check in): huge lines,
//! deep nesting, long continuation chains, junk bytes. The parser must
//! answer each with a result or a located error, never a panic or a hang.

use kiln_parser::{parse, parse_bytes, parse_raw, ErrorKind};

#[test]
fn line_length_limit_matches_buildkit() {
    // 65536 bytes with the newline is the most Go's scanner takes.
    let ok = format!("FROM a\nRUN {}\n", "x".repeat(65536 - 5));
    assert!(parse(&ok, "Dockerfile").is_ok());
    let long = format!("FROM a\nRUN {}\n", "x".repeat(65536 - 4));
    let err = parse(&long, "Dockerfile").unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::LineTooLong);
    assert_eq!(err.line(), 2);
    // Without a final newline one byte less fits.
    let last = format!("FROM a\nRUN {}", "x".repeat(65536 - 4));
    assert_eq!(
        parse(&last, "Dockerfile").unwrap_err().kind(),
        &ErrorKind::LineTooLong
    );
}

#[test]
fn deep_onbuild_chain_is_rejected_without_overflow() {
    let text = format!("FROM a\n{}RUN x\n", "ONBUILD ".repeat(8000));
    let raw = parse_raw(&text, "Dockerfile").expect("line-level parse");
    let dump = raw.dump();
    assert!(dump.starts_with("(from \"a\")\n(onbuild (onbuild (onbuild"));
    assert!(dump
        .trim_end()
        .ends_with(&format!("(run \"x\"{}", ")".repeat(8001))));
    let err = parse(&text, "Dockerfile").unwrap_err();
    assert!(err.to_string().contains("Chaining ONBUILD"));
}

#[test]
fn deep_substitution_nesting_in_heredoc_line() {
    let text = format!(
        "FROM a\nRUN <<EOF {}x{}\nbody\nEOF\n",
        "${a:-".repeat(10000),
        "}".repeat(10000)
    );
    // Too deep to read as a heredoc line: the following lines are instructions.
    let err = parse(&text, "Dockerfile").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::UnknownInstruction(_)));
    let text = format!(
        "FROM a\nRUN <<EOF {}x{}\nbody\nEOF\n",
        "${a:-".repeat(50),
        "}".repeat(50)
    );
    assert!(parse(&text, "Dockerfile").is_ok());
}

#[test]
fn long_continuation_chains() {
    let text = format!(
        "FROM a\nRUN echo \\\n{}done\n",
        "  \\\n# c\n\n".repeat(50_000)
    );
    let df = parse(&text, "Dockerfile").expect("parses");
    assert_eq!(df.stages[0].instructions.len(), 1);
    assert_eq!(df.warnings.len(), 1, "one empty-continuation warning");
    // Lines holding only an escape join into one empty instruction, as in
    // BuildKit (its dump shows `("")`), which the instruction check rejects.
    let only = "\\\n".repeat(100_000);
    assert_eq!(
        parse_raw(&only, "Dockerfile").expect("raw").dump(),
        "(\"\")\n"
    );
    assert_eq!(
        parse(&only, "Dockerfile").unwrap_err().kind(),
        &ErrorKind::UnknownInstruction(String::new())
    );
}

#[test]
fn many_unterminated_heredocs() {
    let text = format!("FROM a\nRUN {}\n", "<<A ".repeat(10_000));
    let err = parse(&text, "Dockerfile").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::UnterminatedHeredoc(_)));
    assert_eq!(err.line(), 2);
}

#[test]
fn junk_bytes_never_panic() {
    // A fixed linear congruential generator: deterministic junk.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let alphabet = b"FROMRUN \\\n\r\t#<<'\"[]=-${}`\xef\xbb\xbf\x00\xc3\xa0\xff";
    for _ in 0..2000 {
        let len = (state >> 50) as usize % 300;
        let mut bytes = Vec::with_capacity(len);
        for _ in 0..len {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            bytes.push(alphabet[(state >> 33) as usize % alphabet.len()]);
        }
        match parse_bytes(&bytes, "junk") {
            Ok(df) => {
                let _ = df.to_json();
            }
            Err(e) => assert!(e.to_string().starts_with("junk:")),
        }
    }
}

#[test]
fn invalid_utf8_names_line_and_column() {
    let err = parse_bytes(b"FROM a\nRUN echo \xff\n", "Dockerfile").unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidUtf8);
    assert_eq!((err.line(), err.column()), (2, 10));
}

#[test]
fn big_file_parses() {
    let mut text = String::from("FROM busybox\n");
    for i in 0..30_000 {
        text.push_str(&format!("RUN echo {i} && \\\n    true\n"));
    }
    let df = parse(&text, "Dockerfile").expect("parses");
    assert_eq!(df.stages[0].instructions.len(), 30_000);
    let last = df.stages[0].instructions.last().expect("last");
    assert_eq!(last.span.start.line, 60_000);
}
