//! A gzip member of literals only: one dynamic-Huffman deflate block (RFC 1951 §3.2.7) that
//! codes each byte by its frequency and looks for no matches.
//!
//! For data whose redundancy is in which bytes occur, not in repeats (base64 and hex text,
//! float weights, sensor samples), a match search finds almost nothing: libdeflate's fastest
//! level gives base64 of random bytes 0.7555 of its size at ~110 MB/s per core, this gives
//! 0.7564 at several times the speed. libdeflate has no literals-only mode and zlib's
//! (`Z_HUFFMAN_ONLY`, through zlib-rs) runs no faster than libdeflate's level 1, hence this
//! module. [`super::compress`] picks it per block from a sample.

/// Deflate's longest literal/length code.
const MAX_CODE_BITS: u8 = 15;
/// The longest code of the code-length alphabet.
const MAX_CL_BITS: u8 = 7;
/// End of block.
const EOB: usize = 256;
/// The order code-length code lengths are sent in (RFC 1951 §3.2.7).
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Byte counts of `data`, and the end-of-block symbol once.
pub(crate) fn histogram(data: &[u8]) -> [u64; 257] {
    // Four tables: consecutive equal bytes would otherwise wait on each other's increment.
    let mut h = [[0u32; 256]; 4];
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        h[0][c[0] as usize] += 1;
        h[1][c[1] as usize] += 1;
        h[2][c[2] as usize] += 1;
        h[3][c[3] as usize] += 1;
    }
    for &b in chunks.remainder() {
        h[0][b as usize] += 1;
    }
    let mut freq = [0u64; 257];
    for (i, f) in freq.iter_mut().take(256).enumerate() {
        *f = h.iter().map(|t| t[i] as u64).sum();
    }
    freq[EOB] = 1;
    freq
}

/// Huffman code lengths for `freq`, none longer than `max_bits`; 0 for unused symbols.
/// At least two symbols get a code (a lone one gets a partner), so the code is complete.
fn code_lengths(freq: &[u64], max_bits: u8) -> Vec<u8> {
    let mut freq: Vec<u64> = freq.to_vec();
    let used = freq.iter().filter(|&&f| f > 0).count();
    if used < 2 {
        let other = if freq[0] == 0 { 0 } else { 1 };
        freq[other] = 1;
    }
    loop {
        let lens = unlimited_lengths(&freq);
        if lens.iter().all(|&l| l <= max_bits) {
            return lens;
        }
        // Too deep: flatten the counts and build again (zlib's trees.c fixes the depths up in
        // place instead; halving converges in a few rounds and costs nothing at 257 symbols).
        for f in freq.iter_mut().filter(|f| **f > 0) {
            *f = (*f >> 1).max(1);
        }
    }
}

/// Plain Huffman code lengths (two-queue construction over symbols sorted by count).
fn unlimited_lengths(freq: &[u64]) -> Vec<u8> {
    let mut leaves: Vec<(u64, usize)> = freq
        .iter()
        .enumerate()
        .filter(|(_, &f)| f > 0)
        .map(|(s, &f)| (f, s))
        .collect();
    leaves.sort_unstable();
    let n = leaves.len();
    // Nodes 0..n are leaves, n.. are merged; parent[i] links upwards.
    let mut weight: Vec<u64> = leaves.iter().map(|l| l.0).collect();
    let mut parent = vec![usize::MAX; 2 * n - 1];
    let (mut next_leaf, mut next_node) = (0, n);
    let pick = |weight: &Vec<u64>, next_leaf: &mut usize, next_node: &mut usize| {
        let take_leaf = *next_leaf < n
            && (*next_node >= weight.len() || weight[*next_leaf] <= weight[*next_node]);
        if take_leaf {
            *next_leaf += 1;
            *next_leaf - 1
        } else {
            *next_node += 1;
            *next_node - 1
        }
    };
    for _ in 0..n - 1 {
        let a = pick(&weight, &mut next_leaf, &mut next_node);
        let b = pick(&weight, &mut next_leaf, &mut next_node);
        let id = weight.len();
        weight.push(weight[a] + weight[b]);
        parent[a] = id;
        parent[b] = id;
    }
    // Depths from the root down: a parent always has a higher index than its children.
    let mut depth = vec![0u8; 2 * n - 1];
    for i in (0..2 * n - 2).rev() {
        // Saturating: anything past 15 is flattened by the caller anyway.
        depth[i] = depth[parent[i]].saturating_add(1);
    }
    let mut lens = vec![0u8; freq.len()];
    for (i, &(_, sym)) in leaves.iter().enumerate() {
        lens[sym] = depth[i];
    }
    lens
}

/// Canonical codes for `lens` (RFC 1951 §3.2.2), bit-reversed for deflate's LSB-first stream.
fn canonical_codes(lens: &[u8]) -> Vec<u16> {
    let mut count = [0u16; 16];
    for &l in lens {
        count[l as usize] += 1;
    }
    count[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for bits in 1..16 {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    lens.iter()
        .map(|&l| {
            if l == 0 {
                return 0;
            }
            let c = next[l as usize];
            next[l as usize] += 1;
            c.reverse_bits() >> (16 - l)
        })
        .collect()
}

/// An LSB-first bit writer.
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, bits: u32) {
        self.acc |= value << self.n;
        self.n += bits;
        if self.n >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }
    fn finish(mut self) -> Vec<u8> {
        while self.n > 0 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n = self.n.saturating_sub(8);
        }
        self.out
    }
}

/// The bytes a literals-only block of a block with byte counts `freq` takes, header aside.
pub(crate) fn coded_size(freq: &[u64; 257]) -> u64 {
    let lens = code_lengths(freq, MAX_CODE_BITS);
    let bits: u64 = freq.iter().zip(&lens).map(|(&f, &l)| f * l as u64).sum();
    bits.div_ceil(8)
}

/// `data` as one gzip member of literals only.
pub(crate) fn gzip_member(data: &[u8]) -> Vec<u8> {
    let freq = histogram(data);
    let lens = code_lengths(&freq, MAX_CODE_BITS);
    let codes = canonical_codes(&lens);

    // The code lengths of the block's two alphabets: 257 literal/length codes (HLIT 0), then
    // one distance code of length 0 (no distance is used; HDIST 0).
    let mut all_lens: Vec<u8> = lens.clone();
    all_lens.push(0);
    let mut cl_freq = [0u64; 19];
    for &l in &all_lens {
        cl_freq[l as usize] += 1;
    }
    let cl_lens = code_lengths(&cl_freq, MAX_CL_BITS);
    let cl_codes = canonical_codes(&cl_lens);
    let hclen = CL_ORDER
        .iter()
        .rposition(|&s| cl_lens[s] != 0)
        .map_or(4, |p| (p + 1).max(4));

    let mut bits = Bits {
        out: Vec::with_capacity(data.len() + data.len() / 4 + 64),
        acc: 0,
        n: 0,
    };
    // gzip header (RFC 1952): deflate, no flags, no mtime, no extra flags, OS unknown.
    bits.out
        .extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    bits.put(1, 1); // BFINAL
    bits.put(2, 2); // BTYPE: dynamic Huffman
    bits.put(0, 5); // HLIT: 257 codes
    bits.put(0, 5); // HDIST: 1 code
    bits.put((hclen - 4) as u64, 4);
    for &s in &CL_ORDER[..hclen] {
        bits.put(cl_lens[s] as u64, 3);
    }
    for &l in &all_lens {
        bits.put(cl_codes[l as usize] as u64, cl_lens[l as usize] as u32);
    }
    for &b in data {
        bits.put(codes[b as usize] as u64, lens[b as usize] as u32);
    }
    bits.put(codes[EOB] as u64, lens[EOB] as u32);
    let mut out = bits.finish();
    out.extend_from_slice(&libdeflater::crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::xorshift;
    use std::io::Read;

    fn gunzip(member: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(member)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn members_decode_to_their_input() {
        let mut rnd = xorshift(0x9e3779b97f4a7c15);
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b64: Vec<u8> = (0..200_000).map(|_| B64[(rnd() >> 58) as usize]).collect();
        let random: Vec<u8> = (0..100_000).map(|_| rnd() as u8).collect();
        // Counts that double from byte to byte: a plain Huffman tree would be 40 deep.
        let mut skewed = Vec::new();
        for i in 0..20u32 {
            skewed.extend(std::iter::repeat_n(i as u8, 1 << (i / 2 + 1)));
        }
        // Fibonacci counts from 2 (end-of-block is the 1): the plain tree is a chain 22 deep,
        // so the depth limit must act.
        let mut fib = Vec::new();
        let (mut a, mut b) = (2usize, 3usize);
        for v in 0..22u8 {
            fib.extend(std::iter::repeat_n(v, a));
            (a, b) = (b, a + b);
        }
        assert!(unlimited_lengths(&histogram(&fib))
            .iter()
            .any(|&l| l > MAX_CODE_BITS));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("fibonacci", fib),
            ("base64", b64),
            ("random", random),
            ("skewed", skewed),
            ("one byte value", vec![b'x'; 5000]),
            ("two values", (0..5000).map(|i| (i % 2) as u8).collect()),
            ("every value", (0..=255u8).cycle().take(70_000).collect()),
            ("a single byte", vec![7]),
            ("empty", Vec::new()),
        ];
        for (name, data) in cases {
            let member = gzip_member(&data);
            assert_eq!(gunzip(&member), data, "{name}");
        }
    }

    #[test]
    fn random_alphabets_and_skews_decode() {
        let mut rnd = xorshift(0x5eed);
        for case in 0..300 {
            let len = (rnd() % 6000) as usize;
            let alphabet = 1 + (rnd() % 256) as usize;
            let skew = (rnd() % 8) as u32;
            // A value's chance falls off as 2^-(skew * value / alphabet): some cases are flat,
            // some put most bytes on a few values and force the depth limit.
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    let v = (rnd() % alphabet as u64) as u32;
                    let keep = rnd() % (1u64 << (skew * v / alphabet as u32).min(40)) == 0;
                    if keep {
                        v as u8
                    } else {
                        (v / 8) as u8
                    }
                })
                .collect();
            assert_eq!(gunzip(&gzip_member(&data)), data, "case {case}");
        }
    }

    #[test]
    fn system_gzip_reads_a_member() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let data: Vec<u8> = (0..100_000u32)
            .map(|i| b"0123456789abcdef"[(i * 7 % 16) as usize])
            .collect();
        let mut child = Command::new("gzip")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let member = gzip_member(&data);
        let mut stdin = child.stdin.take().unwrap();
        let t = std::thread::spawn(move || stdin.write_all(&member).unwrap());
        let out = child.wait_with_output().unwrap();
        t.join().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, data);
    }

    #[test]
    fn depths_are_limited_and_the_code_is_complete() {
        let mut freq = [0u64; 257];
        let (mut a, mut b) = (2u64, 3u64);
        for f in freq.iter_mut().take(40) {
            *f = a;
            (a, b) = (b, a + b);
        }
        freq[EOB] = 1;
        assert!(unlimited_lengths(&freq).iter().any(|&l| l > MAX_CODE_BITS));
        let lens = code_lengths(&freq, MAX_CODE_BITS);
        assert!(lens.iter().all(|&l| l <= MAX_CODE_BITS));
        // Kraft equality: a complete prefix code, as inflate demands.
        let kraft: u64 = lens
            .iter()
            .filter(|&&l| l > 0)
            .map(|&l| 1u64 << (MAX_CODE_BITS - l))
            .sum();
        assert_eq!(kraft, 1 << MAX_CODE_BITS);
    }

    #[test]
    fn base64_codes_to_six_bits_a_byte() {
        let mut rnd = xorshift(42);
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let data: Vec<u8> = (0..1 << 20).map(|_| B64[(rnd() >> 58) as usize]).collect();
        let member = gzip_member(&data);
        let ratio = member.len() as f64 / data.len() as f64;
        // 6 bits for 63 of the letters; the 64th shares a 7-bit pair with end-of-block.
        assert!((0.75..0.7525).contains(&ratio), "{ratio}");
        let estimate = coded_size(&histogram(&data)) as f64 / data.len() as f64;
        assert!((estimate - ratio).abs() < 0.001, "{estimate} vs {ratio}");
    }
}
