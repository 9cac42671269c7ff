//! `kiln debug expand` seen from outside.

use std::process::{Command, Output};

fn expand(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["debug", "expand", "--env", "A=x", "--env", "S=a  b"])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn expands_operators_and_quotes() {
    assert_eq!(stdout(&expand(&["--", "${A:-y}${B:-y}"])), "xy\n");
    assert_eq!(stdout(&expand(&["--", "he'll'o \"$A\""])), "hello x\n");
    assert_eq!(stdout(&expand(&["--", "${A%x}z${S#a}"])), "z  b\n");
}

#[test]
fn words_prints_one_word_per_line() {
    assert_eq!(
        stdout(&expand(&["--words", "--", "hello${S}bye"])),
        "helloa\nbbye\n"
    );
}

#[test]
fn backtick_escape() {
    assert_eq!(
        stdout(&expand(&["--escape", "`", "--", "`$A\\$A"])),
        "$A\\x\n"
    );
}

#[test]
fn bad_word_fails_with_the_error_and_column() {
    let out = expand(&["--", "ab${B:?must be set}"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("B: must be set"), "{err}");
    assert!(err.contains("column 3"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_escape_flag_is_rejected() {
    assert!(!expand(&["--escape", "x", "--", "a"]).status.success());
}
