//! Expansion tests: one group per operator (from the Dockerfile reference),
//! then a table of BuildKit's observable behaviour on odd inputs.

use std::collections::BTreeSet;

use super::*;

/// The environment most cases use.
fn env() -> EnvList {
    EnvList::from_entries(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="])
}

fn ok(word: &str) -> String {
    Lexer::new('\\')
        .process_word(word, &env())
        .unwrap_or_else(|e| panic!("{word:?}: {e}"))
}

fn err(word: &str) -> ExpandError {
    match Lexer::new('\\').process_word(word, &env()) {
        Ok(w) => panic!("{word:?} expanded to {w:?}, wanted an error"),
        Err(e) => e,
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn plain_and_braced_variables() {
    assert_eq!(ok("$PWD"), "/home");
    assert_eq!(ok("${PWD}"), "/home");
    assert_eq!(ok("a${PWD}b"), "a/homeb");
    assert_eq!(ok("$PWD.x"), "/home.x");
    assert_eq!(ok("$UNSET"), "");
    assert_eq!(ok("$"), "$");
    assert_eq!(ok("$.x"), "$.x");
}

#[test]
fn default_value_operators() {
    // ${v:-w}: w when unset or empty; ${v-w}: w only when unset.
    assert_eq!(ok("${X:-w}"), "w");
    assert_eq!(ok("${NULL:-w}"), "w");
    assert_eq!(ok("${PWD:-w}"), "/home");
    assert_eq!(ok("${X-w}"), "w");
    assert_eq!(ok("${NULL-w}"), "");
    assert_eq!(ok("${PWD-w}"), "/home");
    assert_eq!(ok("${X:-${Y:-$PWD}}"), "/home");
}

#[test]
fn alternate_value_operators() {
    // ${v:+w}: w when set and non-empty; ${v+w}: w when set.
    assert_eq!(ok("${PWD:+w}"), "w");
    assert_eq!(ok("${NULL:+w}"), "");
    assert_eq!(ok("${X:+w}"), "");
    assert_eq!(ok("${PWD+w}"), "w");
    assert_eq!(ok("${NULL+w}"), "w");
    assert_eq!(ok("${X+w}"), "");
}

#[test]
fn required_value_operators() {
    assert_eq!(ok("${PWD:?msg}"), "/home");
    assert_eq!(ok("${PWD?msg}"), "/home");
    assert_eq!(ok("${NULL?msg}"), "");
    let e = err("${NULL:?must be set}");
    assert_eq!(
        e.kind,
        ExpandErrorKind::Unset {
            name: "NULL".into(),
            message: "must be set".into()
        }
    );
    let e = err("ab${X?}");
    assert_eq!(e.kind.to_string(), "X: is not allowed to be unset");
    assert_eq!(e.offset, 2);
    assert_eq!(e.column(), 3);
    assert_eq!(
        err("${NULL:?}").kind.to_string(),
        "NULL: is not allowed to be empty"
    );
    // The message is itself expanded.
    let lex = Lexer::new('\\');
    let e = lex
        .process_word(
            "${VAR:?message here$ARG}",
            &EnvList::from_entries(["VAR=", "ARG=x"]),
        )
        .unwrap_err();
    assert!(e.to_string().contains("message herex"), "{e}");
    let e = lex
        .process_word("${VAR?message here$ARG}", &EnvList::from_entries(["ARG=x"]))
        .unwrap_err();
    assert!(e.to_string().contains("message herex"), "{e}");
    assert_eq!(
        e.to_string(),
        "failed to process \"${VAR?message here$ARG}\": VAR: message herex"
    );
}

fn with(word: &str, entries: &[&str]) -> Result<String, ExpandError> {
    Lexer::new('\\').process_word(word, &EnvList::from_entries(entries))
}

#[test]
fn prefix_removal() {
    let e = ["F=xxyy", "P=a/b/c.tar.gz"];
    assert_eq!(with("${F#x}", &e).unwrap(), "xyy");
    assert_eq!(with("${F#*x}", &e).unwrap(), "xyy");
    assert_eq!(with("${F##*x}", &e).unwrap(), "yy");
    assert_eq!(with("${F#*}", &e).unwrap(), "xxyy");
    assert_eq!(with("${F##*}", &e).unwrap(), "");
    assert_eq!(with("${F#}", &e).unwrap(), "xxyy");
    assert_eq!(with("${F##}", &e).unwrap(), "xxyy");
    assert_eq!(with("${F#y}", &e).unwrap(), "xxyy");
    assert_eq!(with("${F#*x*y}", &e).unwrap(), "y");
    assert_eq!(with("${P#*/}", &e).unwrap(), "b/c.tar.gz");
    assert_eq!(with("${P##*/}", &e).unwrap(), "c.tar.gz");
    assert_eq!(with("${U#x}", &e).unwrap(), "");
    assert_eq!(with("${F#?\\?}", &["F=???y"]).unwrap(), "?y");
    assert_eq!(with("${F#$B}", &["F=xxyy", "B=x"]).unwrap(), "xyy");
    assert_eq!(
        with("${F#()[]{\\}^$.\\*\\?|\\\\}", &["F=()[]{}^$.*?|\\x"]).unwrap(),
        "x"
    );
}

#[test]
fn suffix_removal() {
    let e = ["F=xxyy", "P=a/b/c.tar.gz"];
    assert_eq!(with("${F%y}", &e).unwrap(), "xxy");
    assert_eq!(with("${F%y*}", &e).unwrap(), "xxy");
    assert_eq!(with("${F%%y*}", &e).unwrap(), "xx");
    assert_eq!(with("${F%x}", &e).unwrap(), "xxyy");
    assert_eq!(with("${F%}", &e).unwrap(), "xxyy");
    assert_eq!(with("${P%.*}", &e).unwrap(), "a/b/c.tar");
    assert_eq!(with("${P%%.*}", &e).unwrap(), "a/b/c");
    assert_eq!(with("${F%%\\**}", &["F=xx**"]).unwrap(), "xx");
    assert_eq!(with("${F%%\\**\\*}", &["F=a***yy*"]).unwrap(), "a");
    assert_eq!(with("${F%%$B}", &["F=xxyy", "B="]).unwrap(), "xxyy");
}

#[test]
fn colon_with_prefix_or_suffix_is_unsupported() {
    for w in ["${F:#}", "${F:##}", "${F:%}", "${F:%%}"] {
        let e = with(w, &[]).unwrap_err();
        assert!(
            matches!(e.kind, ExpandErrorKind::UnsupportedModifier(_)),
            "{w}: {e}"
        );
    }
    for w in ["${F=a}", "${F=:a}", "${F=}", "${PWD:=000}"] {
        assert!(with(w, &["F=x", "PWD=/"]).is_err(), "{w}");
    }
}

#[test]
fn replacement() {
    let e = ["F=/tmp/tmp/bar.txt", "N=/tmp"];
    assert_eq!(with("${F/$N/}", &e).unwrap(), "/tmp/bar.txt");
    assert_eq!(with("${F//$N/}", &e).unwrap(), "/bar.txt");
    assert_eq!(with("${F/tmp/x}", &e).unwrap(), "/x/tmp/bar.txt");
    assert_eq!(with("${F//tmp/x}", &e).unwrap(), "/x/x/bar.txt");
    let e = ["F=/foo*/*/*.txt", "N=\\*/"];
    assert_eq!(
        with("${F/$N/.} - ${F//$N/.}", &e).unwrap(),
        "/foo.*/*.txt - /foo..*.txt"
    );
    let e = ["F=/a/foo/b/c.txt", "N=/?/", "R=/"];
    assert_eq!(
        with("${F/$N/$R} - ${F//$N/$R}", &e).unwrap(),
        "/foo/b/c.txt - /foo/c.txt"
    );
    assert_eq!(
        with(
            "${F/$N/$R}",
            &["F=http://google.de", "N=http://", "R=https://"]
        )
        .unwrap(),
        "https://google.de"
    );
    assert_eq!(
        with("${F//\\//\\/}", &["F=/tmp/foo.txt"]).unwrap(),
        "\\/tmp\\/foo.txt"
    );
    assert_eq!(with("${F/$B/ww}", &["F=xxyy", "B="]).unwrap(), "wwxxyy");
    assert_eq!(with("${F///}", &["F=xxyy"]).unwrap(), "xxyy");
    assert_eq!(with("${F///}", &[]).unwrap(), "");
    assert_eq!(with("${F//x*/-}", &["F=axbxc"]).unwrap(), "a-");
    // Go's ReplaceAllString expands $0 in the replacement; a single
    // replacement inserts it as written.
    assert_eq!(with("${F//o/<\\$0>}", &["F=foo"]).unwrap(), "f<\\o><\\o>");
    assert_eq!(with("${F/o/<\\$0>}", &["F=foo"]).unwrap(), "f<\\$0>o");
    assert!(matches!(
        with("${F//ww}", &["F=x"]).unwrap_err().kind,
        ExpandErrorKind::MissingSlash
    ));
    assert!(with("${F//}", &["F=x"]).is_err());
    let e = with("${F/\\x/y}", &["F=x"]).unwrap_err();
    assert_eq!(
        e.kind.to_string(),
        "invalid pattern (\\x) in substitution: invalid escape '\\x'"
    );
}

#[test]
fn quotes_and_escapes() {
    assert_eq!(ok("he'll'o"), "hello");
    assert_eq!(ok("'$PWD'"), "$PWD");
    assert_eq!(ok("\"$PWD\""), "/home");
    assert_eq!(ok("\"he'$PWD'\""), "he'/home'");
    assert_eq!(ok("he\\$PWD"), "he$PWD");
    assert_eq!(ok("\"he\\$PWD\""), "he$PWD");
    assert_eq!(ok("'he\\$PWD'"), "he\\$PWD");
    assert_eq!(ok("\"abc\\tdef\""), "abc\\tdef");
    assert_eq!(ok("abc\\tdef"), "abctdef");
    assert_eq!(ok("hello\\"), "hello");
    let e = err("he'llo");
    assert_eq!(e.kind, ExpandErrorKind::UnterminatedSingleQuote);
    assert_eq!(e.offset, 2);
    assert_eq!(
        err("\"hello").kind,
        ExpandErrorKind::UnterminatedDoubleQuote
    );
}

#[test]
fn backtick_escape() {
    let lex = Lexer::new('`');
    let e = env();
    assert_eq!(lex.process_word("he`$PWD", &e).unwrap(), "he$PWD");
    assert_eq!(
        lex.process_word("c:\\dir\\$PWD", &e).unwrap(),
        "c:\\dir\\/home"
    );
    assert_eq!(lex.process_word("\"a`\"b\"", &e).unwrap(), "a\"b");
    assert_eq!(lex.process_word("a` b", &e).unwrap(), "a b");
    assert_eq!(lex.process_words("a` b c", &e).unwrap(), ["a b", "c"]);
}

#[test]
fn lexer_options() {
    let e = env();
    let raw = Lexer::new('\\').with_raw_quotes(true);
    assert_eq!(raw.process_word("'a'\"$PWD\"", &e).unwrap(), "'a'\"/home\"");
    let keep = Lexer::new('\\').with_raw_escapes(true);
    assert_eq!(keep.process_word("a\\$b", &e).unwrap(), "a\\$b");
    let noq = Lexer::new('\\').with_skip_process_quotes(true);
    assert_eq!(noq.process_word("'$PWD'", &e).unwrap(), "'/home'");
    let skip = Lexer::new('\\').with_skip_unset_env(true);
    assert_eq!(
        skip.process_word("$X ${X} ${X:-d} ${X/a/b} $PWD", &e)
            .unwrap(),
        "$X ${X} ${X:-d} ${X/a/b} /home"
    );
}

#[test]
fn matched_and_unmatched_variables() {
    let lex = Lexer::new('\\');
    let e = EnvList::from_entries(["FOO=xxx", "BAR="]);
    let r = lex
        .process_word_with_matches("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", &e)
        .unwrap();
    assert_eq!(r.word, "xxx  ccc");
    assert_eq!(r.vars.matched, set(&["FOO", "BAR"]));
    assert_eq!(r.vars.unmatched, set(&["BAZ"]));
    let r = lex.process_word_with_matches("x", &e).unwrap();
    assert!(r.vars.matched.is_empty() && r.vars.unmatched.is_empty());
    let r = lex
        .process_word_with_matches("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", &e)
        .unwrap();
    assert_eq!(r.word, "aaa  ");
    // Variables read before an error are still reported.
    let err = lex
        .process_word_with_matches("$FOO${BAZ?ccc}", &e)
        .unwrap_err();
    assert_eq!(err.vars.unmatched, set(&["BAZ"]));
    assert_eq!(err.vars.matched, set(&["FOO"]));
    // Lint's "undefined ARG in FROM" case.
    let r = lex
        .process_word_with_matches(
            "${REPO}/img:${TAG:-latest}",
            &EnvList::from_entries(["REPO=r"]),
        )
        .unwrap();
    assert_eq!(r.word, "r/img:latest");
    assert_eq!(r.vars.unmatched, set(&["TAG"]));
}

#[test]
fn platform_release_names() {
    let lex = Lexer::new('\\');
    let w =
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    let base = ["VERSION=v1.2.3", "TARGETOS=linux"];
    let arm = EnvList::from_entries(
        base.iter()
            .copied()
            .chain(["TARGETARCH=arm", "TARGETVARIANT=v7"]),
    );
    assert_eq!(
        lex.process_word(w, &arm).unwrap(),
        "something-v1.2.3.linux-arm-v7.tar.gz"
    );
    let empty = EnvList::from_entries(
        base.iter()
            .copied()
            .chain(["TARGETARCH=arm64", "TARGETVARIANT="]),
    );
    assert_eq!(
        lex.process_word(w, &empty).unwrap(),
        "something-v1.2.3.linux-arm64.tar.gz"
    );
    let unset = EnvList::from_entries(base.iter().copied().chain(["TARGETARCH=arm64"]));
    assert_eq!(
        lex.process_word(w, &unset).unwrap(),
        "something-v1.2.3.linux-arm64.tar.gz"
    );
}

#[test]
fn env_list_semantics() {
    let e = EnvList::from_entries(["foo=bar", "car=hat", "car=bike", "bare"]);
    assert_eq!(Env::get(&e, "car"), Some("bike"));
    assert_eq!(Env::get(&e, "bare"), Some(""));
    assert_eq!(Env::get(&e, "none"), None);
    assert_eq!(e.keys().len(), 4);
}

/// Cases in the spirit of BuildKit's envVarTest table: (word, expected;
/// `None` = an error), with env PWD=/home SHELL=bash KOREAN=한국어 NULL="".
const WORD_CASES: &[(&str, Option<&str>)] = &[
    ("hello", Some("hello")),
    ("he'llo", None),
    ("he\\'llo", Some("he'llo")),
    ("he\\\\'llo", None),
    ("\"abc\\\\tdef\"", Some("abc\\tdef")),
    ("'abc\\tdef'", Some("abc\\tdef")),
    ("hello\\\\", Some("hello\\")),
    ("\"hello\\\"", None),
    ("\"hel'lo\"", Some("hel'lo")),
    ("'hello", None),
    ("'hello\\'", Some("hello\\")),
    ("'hello\\\\there'", Some("hello\\\\there")),
    ("\"''\"", Some("''")),
    ("he$1x", Some("hex")),
    ("he$.x", Some("he$.x")),
    ("he$pwd.", Some("he.")),
    ("he\\\\$PWD", Some("he\\/home")),
    ("\"he\\\\$PWD\"", Some("he\\/home")),
    ("\\${}", Some("${}")),
    ("\\${}aaa", Some("${}aaa")),
    ("he\\${}xx", Some("he${}xx")),
    ("${}", None),
    ("${}aaa", None),
    ("he${}xx", None),
    ("he${hi}xx", Some("hexx")),
    ("he${.}", None),
    ("he${XXX:YYY}", None),
    ("he${XXX?}", None),
    ("he${XXX:?}", None),
    ("he${PWD?}", Some("he/home")),
    ("he${NULL?}", Some("he")),
    ("he${NULL:?}", None),
    ("he${XXX:+${PWD}}xx", Some("hexx")),
    ("he${PWD:+${XXX}}xx", Some("hexx")),
    ("he${PWD:+${SHELL}}xx", Some("hebashxx")),
    ("'he${XX}'", Some("he${XX}")),
    ("'\"hello\"'", Some("\"hello\"")),
    ("he${PWD", None),
    ("he${PWD:+${PWD}:}xx", Some("he/home:xx")),
    ("he${XXX:-\\$PWD:}xx", Some("he$PWD:xx")),
    ("he${XXX:-\\${PWD}z}xx", Some("he${PWDz}xx")),
    ("안녕하세요", Some("안녕하세요")),
    ("안'녕'하세요", Some("안녕하세요")),
    ("안'녕하세요", None),
    ("안녕\\'하세요", Some("안녕'하세요")),
    ("\"안녕\\t하세요\"", Some("안녕\\t하세요")),
    ("안녕$PWD", Some("안녕/home")),
    ("안녕${XXX:-${YYY:-yyy}}xx", Some("안녕yyyxx")),
    ("$KOREAN", Some("한국어")),
    ("안녕$KOREAN", Some("안녕한국어")),
    ("${{aaa}", None),
    ("${aaa}}", Some("}")),
    ("${aaa", None),
    ("${{aaa:-bbb}", None),
    ("${aaa:-bbb}}", Some("bbb}")),
    ("${aaa:-bbb", None),
    ("${aaa:-${bbb:-ccc}}", Some("ccc")),
    ("${aaa:-bbb ${foo}", None),
    ("${aaa:-bbb {foo}", Some("bbb {foo")),
    ("${:}", None),
    ("${:-bbb}", None),
    ("${:+bbb}", None),
    // Positional and special parameters are never set.
    ("$1", Some("")),
    ("${9:+bbb}", Some("")),
    ("${9:-bbb}", Some("bbb")),
    ("$999aaa", Some("aaa")),
    ("${999:-bbb}aaa", Some("bbbaaa")),
    ("$001aaa", Some("aaa")),
    ("${001:+bbb}aaa", Some("aaa")),
    ("$@@@", Some("@@")),
    ("$@aaa", Some("aaa")),
    ("${@:-bbb}aaa", Some("bbbaaa")),
    ("$*", Some("")),
    ("${#}", Some("")),
    ("${#:-bbb}", Some("bbb")),
    ("$?", Some("")),
    ("${-:+bbb}", Some("")),
    ("$$", Some("")),
    ("${$:-bbb}", Some("bbb")),
    ("$!", Some("")),
    ("${0}", Some("")),
    ("${0:-bbb}", Some("bbb")),
    // Unicode digits count as digits, as Go's unicode.IsDigit says.
    ("$٣x", Some("x")),
    // A byte order mark opening the word is dropped (Go's text/scanner).
    ("\u{FEFF}a\u{FEFF}", Some("a\u{FEFF}")),
];

#[test]
fn word_table() {
    let lex = Lexer::new('\\');
    let e = env();
    for &(word, want) in WORD_CASES {
        let got = lex.process_word(word, &e);
        match (want, got) {
            (Some(w), Ok(g)) => assert_eq!(g, w, "word {word:?}"),
            (None, Err(_)) => {}
            (want, got) => panic!("word {word:?}: want {want:?}, got {got:?}"),
        }
    }
}

/// Word splitting in the spirit of BuildKit's wordsTest: (env entries so
/// far, word, expected words joined by `|`; "error" for an error).
const WORDS_CASES: &[(&[&str], &str, &str)] = &[
    (&[], "hello", "hello"),
    (&[], "hello${hi}bye", "hellobye"),
    (&["hi=hi"], "hello${hi}bye", "hellohibye"),
    (&["space=abc  def"], "hello${space}bye", "helloabc|defbye"),
    (
        &["space=abc  def"],
        "hello\"${space}\"bye",
        "helloabc  defbye",
    ),
    (
        &["space=abc  def"],
        "hello \"${space}\"bye",
        "hello|abc  defbye",
    ),
    (&["leading=  ab c"], "hello${leading}def", "hello|ab|cdef"),
    (
        &["leading=  ab c"],
        "hello\"${leading}\" def",
        "hello  ab c|def",
    ),
    (&["leading=  ab c"], "hello${leading}", "hello|ab|c"),
    (&["trailing=ab c   "], "hello${trailing}", "helloab|c"),
    (&["trailing=ab c   "], "hello${trailing}d", "helloab|c|d"),
    (
        &["trailing=ab c   "],
        "hello\"${trailing}\"d",
        "helloab c   d",
    ),
    (
        &["trailing=ab c   "],
        "hel\"lo${trailing}\"",
        "helloab c   ",
    ),
    (&[], "hello\" there  \"", "hello there  "),
    (&[], "hello there     ", "hello|there"),
    (&[], "hello\\ there", "hello there"),
    (&[], "hello\" there", "error"),
    (&[], "hello\\\" there", "hello\"|there"),
    (&[], "hello\"\\\\there\"", "hello\\there"),
    (&[], "hello\"\\there\"", "hello\\there"),
    (&[], "hello'\\\\there'", "hello\\\\there"),
    (&[], "hello'$there'", "hello$there"),
    (&[], "a \"\" b", "a|b"),
    (&[], "RUN << EOF", "RUN|<< EOF"),
    (&[], "a<b <<-X", "a<b|<<-X"),
    // BuildKit's shared split buffer: an operator inside ${} restarts the
    // current word.
    (&[], "a${X:-b}c d", "bc|d"),
];

#[test]
fn words_table() {
    let lex = Lexer::new('\\');
    for &(entries, word, want) in WORDS_CASES {
        let e = EnvList::from_entries(entries.iter().copied());
        let got = match lex.process_words(word, &e) {
            Ok(ws) => ws.join("|"),
            Err(_) => "error".to_string(),
        };
        assert_eq!(got, want, "word {word:?}");
    }
}

/// `${v//p/r}` on a long value and many references stay bounded: the
/// pattern VM's steps grow with value length x pattern length, not with
/// value length squared.
#[test]
fn expansion_work_is_bounded() {
    let lex = Lexer::new('\\');
    let value = "ab".repeat(100_000);
    let e = EnvList::from_entries([format!("V={value}")]);
    for word in [
        "${V//b/c}",
        "${V//?/c}",
        "${V%%a*}",
        "${V#*b}",
        "${V##*b}",
        "${V//*b/}",
    ] {
        let mut steps = 0;
        let out = lex.process_counting(word, &e, &mut steps).unwrap();
        assert!(
            !out.word.is_empty()
                || word.contains('%')
                || word.contains("//*")
                || word.contains("##")
        );
        let bound = 20 * value.len() as u64;
        assert!(steps <= bound, "{word}: {steps} steps > {bound}");
    }
}

/// Nested replacements can grow a word exponentially; the work limit turns
/// that into an error instead of exhausting memory.
#[test]
fn exponential_growth_hits_the_work_limit() {
    let e = EnvList::from_entries([format!("A={}", "a".repeat(64))]);
    let word = "${A///${A///${A///${A///${A///x}}}}}";
    let err = Lexer::new('\\').process_word(word, &e).unwrap_err();
    assert_eq!(
        err.kind,
        ExpandErrorKind::TooComplex {
            limit: DEFAULT_WORK_LIMIT
        }
    );
    let two = "${A///${A///x}}";
    let out = Lexer::new('\\').process_word(two, &e).unwrap();
    assert_eq!(out.len(), 64 + 65 * (64 + 65));
    let small = Lexer::new('\\').with_work_limit(1000);
    assert!(matches!(
        small.process_word(two, &e).unwrap_err().kind,
        ExpandErrorKind::TooComplex { limit: 1000 }
    ));
}

/// Found by the expand fuzz target: deeply nested `${//}` with long
/// replacement-char runs took milliseconds per run before the work limit.
#[test]
fn fuzz_regression_nested_replacements() {
    let word = "${///]${/\u{FFFD}+/11{V\u{FFFD}}]$\u{FFFD}//]${//~[~$<${%\n>b[~$<${%\n~b}\n8~\n>b}}/]$a{/05{%}J]$//1''$A]${///]$a{/%}J]./\u{FFFD}//}${/?";
    let e = EnvList::from_entries(["=\u{7}]\u{1d}\u{1d}.\u{1d}}????J]"]);
    for flags in 0..32u8 {
        let lex = Lexer::new(if flags & 1 == 0 { '\\' } else { '`' })
            .with_raw_quotes(flags & 2 != 0)
            .with_raw_escapes(flags & 4 != 0)
            .with_skip_process_quotes(flags & 8 != 0)
            .with_skip_unset_env(flags & 16 != 0)
            .with_work_limit(1 << 16);
        let one = lex.process_word(word, &e);
        assert_eq!(one.is_ok(), lex.process_words(word, &e).is_ok());
    }
}
