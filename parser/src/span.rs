//! Source positions and spans: byte offsets plus 1-based line and column.

use serde::Serialize;

/// A point in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Position {
    /// Byte offset from the start of the input (a UTF-8 BOM counts).
    pub offset: usize,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in Unicode scalar values.
    pub column: usize,
}

/// A half-open range of source text, `start` inclusive and `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    /// First byte of the range.
    pub start: Position,
    /// One past the last byte of the range.
    pub end: Position,
}

impl Span {
    /// The number of bytes covered.
    pub fn len(&self) -> usize {
        self.end.offset.saturating_sub(self.start.offset)
    }

    /// Whether the span covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The smallest span covering both `self` and `other`.
    pub fn join(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// Turns byte offsets into [`Position`]s for one source text.
#[derive(Debug, Clone)]
pub struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the first byte of every line.
    line_starts: Vec<usize>,
    /// Number of characters before every `BLOCK`-byte boundary, so a column
    /// costs at most one block of counting (keeps span building linear).
    block_chars: Vec<usize>,
    /// Whether the text is all ASCII (then a column is a byte difference).
    ascii: bool,
    /// The line of the previous lookup: spans are made in source order, so
    /// most lookups hit the same line and skip the binary search.
    last_line: std::cell::Cell<usize>,
}

const BLOCK: usize = 64;

fn is_char_start(b: u8) -> bool {
    b & 0xC0 != 0x80
}

impl<'a> LineIndex<'a> {
    /// Indexes the line starts of `text`.
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        let mut block_chars = Vec::with_capacity(text.len() / BLOCK + 1);
        let mut count = 0;
        for chunk in text.as_bytes().chunks(BLOCK) {
            block_chars.push(count);
            count += chunk.iter().filter(|&&b| is_char_start(b)).count();
        }
        // The end of the text may fall on a block boundary.
        block_chars.push(count);
        LineIndex {
            text,
            line_starts,
            block_chars,
            ascii: text.is_ascii(),
            last_line: std::cell::Cell::new(0),
        }
    }

    /// Characters before byte `offset` (a character boundary).
    fn chars_before(&self, offset: usize) -> usize {
        if self.ascii {
            return offset;
        }
        let block = offset / BLOCK;
        let base = self.block_chars.get(block).copied().unwrap_or(0);
        base + self.text.as_bytes()[block * BLOCK..offset]
            .iter()
            .filter(|&&b| is_char_start(b))
            .count()
    }

    /// The position of byte `offset` (clamped to the text, moved back to a
    /// character boundary).
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let last = self.last_line.get();
        let in_last = self.line_starts.get(last).is_some_and(|&s| s <= offset)
            && self.line_starts.get(last + 1).is_none_or(|&e| offset < e);
        let line_idx = if in_last {
            last
        } else {
            match self.line_starts.binary_search(&offset) {
                Ok(i) => i,
                Err(i) => i - 1,
            }
        };
        self.last_line.set(line_idx);
        let line_start = self.line_starts[line_idx];
        let column = self.chars_before(offset) - self.chars_before(line_start) + 1;
        Position {
            offset,
            line: line_idx + 1,
            column,
        }
    }

    /// The span from byte `start` to byte `end`.
    pub fn span(&self, start: usize, end: usize) -> Span {
        Span {
            start: self.position(start),
            end: self.position(end.max(start)),
        }
    }

    /// The byte offset where 1-based `line` starts (the end of the text past the last line).
    pub fn line_start(&self, line: usize) -> usize {
        self.line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(self.text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "ab\néx\n\nz";
        let idx = LineIndex::new(text);
        let at = |o| {
            let p = idx.position(o);
            (p.line, p.column)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(2), (1, 3));
        assert_eq!(at(3), (2, 1));
        assert_eq!(at(5), (2, 2), "é is one column");
        assert_eq!(at(8), (4, 1));
        assert_eq!(at(1), (1, 2), "going back works");
        assert_eq!(at(99), (4, 2), "clamped to the end");
        assert_eq!(at(4), (2, 1), "inside a character moves back to its start");
    }

    #[test]
    fn long_non_ascii_lines_use_block_counts() {
        let text = "é".repeat(1000) + "\nx";
        let idx = LineIndex::new(&text);
        assert_eq!(idx.position(2000).column, 1001);
        assert_eq!(
            idx.position(2001),
            Position {
                offset: 2001,
                line: 2,
                column: 1
            }
        );
        assert_eq!(idx.position(2002).column, 2);
    }
}
