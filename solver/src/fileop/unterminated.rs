//! A plain tar stream that may stop right after its last entry's data, with neither the
//! padding to a 512-byte block nor the two zero blocks that end an archive. The docker CLI
//! sends such a build context whenever `-f` names a Dockerfile outside the context: moby's
//! `ReplaceFileTarWrapper`, which adds the Dockerfile, closes its pipe before the tar writer
//! writes the end. Go's archive/tar reads that as a clean end (dockerd accepts it); the tar
//! crate calls it a truncated archive. [`UnterminatedTar`] completes exactly that case: a
//! stream cut anywhere else (inside a header or an entry's data) still ends early, and the
//! unpacker still fails on it.

use std::io::{self, Read};

const BLOCK: u64 = 512;

/// Reads `inner`, tracking tar headers as they pass, and supplies the missing padding and
/// end-of-archive blocks when `inner` ends where an entry's data does.
pub struct UnterminatedTar<R> {
    inner: R,
    /// Bytes read from `inner`.
    pos: u64,
    /// Where the next header starts.
    next_header: u64,
    /// Where the current entry's data ends (its padding follows).
    data_end: u64,
    /// The header being read.
    header: Vec<u8>,
    /// A zero block was seen: the archive's own end; nothing more is tracked.
    ended: bool,
    /// Zeros still to give once `inner` has ended at an entry's end.
    tail: Option<u64>,
}

impl<R: Read> UnterminatedTar<R> {
    /// Wraps a plain (uncompressed) tar stream.
    pub fn new(inner: R) -> UnterminatedTar<R> {
        UnterminatedTar {
            inner,
            pos: 0,
            next_header: 0,
            data_end: 0,
            header: Vec::with_capacity(BLOCK as usize),
            ended: false,
            tail: None,
        }
    }

    /// Follows the bytes `seen` (just read, starting at `self.pos`) through the headers.
    fn track(&mut self, seen: &[u8]) {
        let mut at = self.pos;
        let mut rest = seen;
        while !self.ended && !rest.is_empty() {
            if at < self.next_header {
                let skip = (self.next_header - at).min(rest.len() as u64) as usize;
                at += skip as u64;
                rest = &rest[skip..];
                continue;
            }
            let want = BLOCK as usize - self.header.len();
            let take = want.min(rest.len());
            self.header.extend_from_slice(&rest[..take]);
            at += take as u64;
            rest = &rest[take..];
            if self.header.len() == BLOCK as usize {
                if self.header.iter().all(|&b| b == 0) {
                    self.ended = true;
                } else {
                    let size = entry_size(&self.header[124..136]).unwrap_or(0);
                    self.data_end = at.saturating_add(size);
                    self.next_header = self.data_end.div_ceil(BLOCK).saturating_mul(BLOCK);
                }
                self.header.clear();
            }
        }
    }
}

/// A header's size field: octal digits, or base-256 when the top bit of its first byte is set.
fn entry_size(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(n);
    }
    let text: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| ('0'..='7').contains(c))
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(&text, 8).ok()
}

impl<R: Read> Read for UnterminatedTar<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.tail.as_mut() {
            let n = (*left).min(buf.len() as u64) as usize;
            buf[..n].fill(0);
            *left -= n as u64;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            // At an entry's end (before or after its padding) with no header begun: what Go
            // takes for the end of the archive. Anywhere else, an early end stays one.
            let at_entry_end = self.header.is_empty()
                && self.pos > 0
                && (self.pos == self.data_end || self.pos == self.next_header);
            if !self.ended && at_entry_end {
                self.tail = Some((self.next_header - self.pos) + 2 * BLOCK);
                return self.read(buf);
            }
            return Ok(0);
        }
        self.track(&buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn names(bytes: Vec<u8>) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut a = tar::Archive::new(UnterminatedTar::new(io::Cursor::new(bytes)));
        let mut out = Vec::new();
        for e in a.entries()? {
            let mut e = e?;
            let mut data = Vec::new();
            e.read_to_end(&mut data)?;
            out.push((e.path()?.display().to_string(), data));
        }
        Ok(out)
    }

    #[test]
    fn a_stream_cut_after_the_last_entrys_data_reads_whole() {
        let full = archive(&[("a", b"alpha"), (".dockerignore", b"x\n")]);
        // What the docker CLI sends: the last entry's data, then nothing.
        let header_of_last = full.len() - 2 * 512 - 512 - 512;
        let cut = full[..header_of_last + 512 + 2].to_vec();
        let got = names(cut).unwrap();
        assert_eq!(
            got,
            [
                ("a".into(), b"alpha".to_vec()),
                (".dockerignore".into(), b"x\n".to_vec())
            ]
        );
        // The complete stream reads the same.
        assert_eq!(names(full.clone()).unwrap().len(), 2);
        // Padded but without the end blocks, too.
        assert_eq!(names(full[..full.len() - 1024].to_vec()).unwrap().len(), 2);
    }

    #[test]
    fn a_stream_cut_inside_data_or_a_header_still_fails() {
        let full = archive(&[("a", b"alpha"), ("b", b"bravo bravo")]);
        let second = 1024; // a's header and its one block of data
        for cut in [second + 512 + 3, second + 100, 300] {
            let r = names(full[..cut].to_vec());
            assert!(
                r.is_err() || r.as_ref().is_ok_and(|v| v.len() < 2),
                "cut at {cut}: {r:?}"
            );
            if let Ok(v) = r {
                // A header cut short ends the archive early, but nothing is made up.
                assert!(v.iter().all(|(_, d)| d == b"alpha"), "{v:?}");
            }
        }
    }
}
