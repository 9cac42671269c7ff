//! Which parts of which instructions BuildKit expands, and how.
//!
//! Taken from BuildKit's dockerfile2llb (the `Expand` methods of its
//! instruction types and the dispatch code around them). The solver walks
//! this table instead of hard-coding the rules in several places.

/// How one argument of an instruction is expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expansion {
    /// Expanded into exactly one word ([`Lexer::process_word`](super::Lexer::process_word))
    /// with the stage's environment (ENV and ARG in scope).
    Word,
    /// Expanded and split into several words
    /// ([`Lexer::process_words`](super::Lexer::process_words)).
    Words,
    /// Expanded into one word against the global (pre-FROM) ARGs only,
    /// with the variables used reported
    /// ([`Lexer::process_word_with_matches`](super::Lexer::process_word_with_matches)).
    GlobalArgsWord,
    /// Expanded into one word with quotes kept literal (a lexer with
    /// [`Lexer::with_skip_process_quotes`](super::Lexer::with_skip_process_quotes),
    /// escape `\`): heredoc file contents of COPY/ADD whose delimiter is unquoted.
    RawWord,
}

/// One expanded argument of an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpandedArg {
    /// What is expanded: a flag (`--chown`), or a description of the
    /// positional part (`"sources"`, `"key"`).
    pub part: &'static str,
    /// How.
    pub expansion: Expansion,
}

const fn word(part: &'static str) -> ExpandedArg {
    ExpandedArg {
        part,
        expansion: Expansion::Word,
    }
}

const ADD: &[ExpandedArg] = &[
    word("--chown"),
    word("--chmod"),
    word("--checksum"),
    word("sources"),
    word("destination"),
    ExpandedArg {
        part: "heredoc contents",
        expansion: Expansion::RawWord,
    },
];
const COPY: &[ExpandedArg] = &[
    word("--chown"),
    word("--chmod"),
    word("sources"),
    word("destination"),
    ExpandedArg {
        part: "heredoc contents",
        expansion: Expansion::RawWord,
    },
];
const KEY_VALUE: &[ExpandedArg] = &[word("key"), word("value")];
const ARG: &[ExpandedArg] = &[word("name"), word("default value")];
const EXPOSE: &[ExpandedArg] = &[ExpandedArg {
    part: "ports",
    expansion: Expansion::Words,
}];
const FROM: &[ExpandedArg] = &[
    ExpandedArg {
        part: "image",
        expansion: Expansion::GlobalArgsWord,
    },
    ExpandedArg {
        part: "--platform",
        expansion: Expansion::GlobalArgsWord,
    },
];
const RUN: &[ExpandedArg] = &[word("--mount option values")];
const ONE_WORD: &[ExpandedArg] = &[word("argument")];
const VOLUME: &[ExpandedArg] = &[word("each path")];

/// The arguments of `instruction` (any case) that BuildKit expands.
///
/// Empty for instructions whose arguments are never expanded at build time:
/// CMD, ENTRYPOINT, SHELL, HEALTHCHECK and RUN's command (the shell in the
/// container expands those), MAINTAINER, and ONBUILD (its instruction is
/// expanded when a child build triggers it). COPY `--from` is not expanded:
/// BuildKit rejects a `--from` that would change under expansion. ADD/COPY
/// `--exclude`, `--link`, `--parents` and `--keep-git-dir` are not expanded.
/// An unknown instruction also gives an empty list.
pub fn expanded_args(instruction: &str) -> &'static [ExpandedArg] {
    match instruction.to_ascii_uppercase().as_str() {
        "ADD" => ADD,
        "COPY" => COPY,
        "ENV" | "LABEL" => KEY_VALUE,
        "ARG" => ARG,
        "EXPOSE" => EXPOSE,
        "FROM" => FROM,
        "RUN" => RUN,
        "STOPSIGNAL" | "USER" | "WORKDIR" => ONE_WORD,
        "VOLUME" => VOLUME,
        _ => &[],
    }
}

/// Whether BuildKit expands variables in any argument of `instruction`.
pub fn expands(instruction: &str) -> bool {
    !expanded_args(instruction).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expanding_instructions() {
        for i in [
            "ADD",
            "COPY",
            "ENV",
            "EXPOSE",
            "FROM",
            "LABEL",
            "STOPSIGNAL",
            "USER",
            "VOLUME",
            "WORKDIR",
            "ARG",
            "RUN",
        ] {
            assert!(expands(i), "{i}");
            assert!(expands(&i.to_lowercase()), "{i}");
        }
        for i in [
            "ONBUILD",
            "CMD",
            "ENTRYPOINT",
            "SHELL",
            "HEALTHCHECK",
            "MAINTAINER",
            "FORM",
        ] {
            assert!(!expands(i), "{i}");
        }
    }

    #[test]
    fn expose_splits_and_from_uses_global_args() {
        assert_eq!(expanded_args("expose")[0].expansion, Expansion::Words);
        assert!(expanded_args("FROM")
            .iter()
            .all(|a| a.expansion == Expansion::GlobalArgsWord));
        assert!(!expanded_args("COPY").iter().any(|a| a.part == "--from"));
        assert!(expanded_args("ADD").iter().any(|a| a.part == "--checksum"));
        assert!(!expanded_args("COPY").iter().any(|a| a.part == "--checksum"));
    }
}
