//! Layer compression: gzip (parallel blocks), zstd (multi-threaded) or none,
//! and detection of the three by their magic bytes when reading.

use std::io::{self, BufRead, Read, Write};

use serde::{Deserialize, Serialize};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar (what the store keeps for layers it creates: no time spent
    /// compressing at build time; export compresses once).
    #[default]
    None,
    /// gzip, readable by every registry and docker since forever.
    Gzip,
    /// zstd (`application/vnd.oci.image.layer.v1.tar+zstd`).
    Zstd,
}

impl Compression {
    /// The OCI layer media type for a layer compressed this way.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
    /// The docker schema 2 layer media type (docker has no zstd type; the
    /// zstd one is what docker 23+ and containerd accept).
    pub fn docker_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
            Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Compression::Zstd => "application/vnd.docker.image.rootfs.diff.tar.zstd",
        }
    }
    /// The compression a layer media type names (unknown ones: by content).
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        if mt.ends_with("gzip") {
            Some(Compression::Gzip)
        } else if mt.ends_with("zstd") {
            Some(Compression::Zstd)
        } else if mt.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }
    /// The compression of a stream starting with `magic`.
    pub fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            "none" | "uncompressed" => Ok(Compression::None),
            _ => Err(format!(
                "unknown compression {s:?}: want gzip, zstd or none"
            )),
        }
    }
}

/// The gzip level when none is asked for: libdeflate's level 5, which gives the ratio of
/// zlib's default level 6 (what docker, BuildKit and buildah layers have) in less time than
/// libdeflate's own level 6. Measured on 1 MiB members (bench/RESULTS.md):
///
/// | data | zlib 6 | libdeflate 5 | libdeflate 6 | time, libdeflate 5 / 6 |
/// |---|---|---|---|---|
/// | /usr/bin, 40 MB | 0.2925 | 0.2976 | 0.2916 | 0.81 |
/// | python3.11 tree, 53 MB | 0.2930 | 0.2864 | 0.2842 | 0.82 |
/// | /usr/share/doc + man, 171 MB | 0.6012 | 0.6002 | 0.5992 | 0.94 |
/// | `seq` output, 10 MB | 0.2679 | 0.1542 | 0.1542 | 0.54 |
pub const DEFAULT_GZIP_LEVEL: u32 = 5;

/// How to compress.
#[derive(Debug, Clone, Copy)]
pub struct CompressOptions {
    /// The algorithm.
    pub compression: Compression,
    /// The level (gzip 0-9, default [`DEFAULT_GZIP_LEVEL`]; zstd 1-19, default 3).
    pub level: Option<i32>,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            compression: Compression::Gzip,
            level: None,
            threads: 0,
        }
    }
}

fn threads_or_cores(n: usize) -> usize {
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

/// Wraps `r` in the decompressor its first bytes call for.
pub fn decoder<'a, R: BufRead + Send + 'a>(
    mut r: R,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let magic = r.fill_buf()?;
    let c = Compression::detect(magic);
    let out: Box<dyn Read + Send + 'a> = match c {
        // MultiGzDecoder: parallel gzip writes one member per block.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Compression::None => Box::new(r),
    };
    Ok((c, out))
}

/// A compressing writer; [`Encoder::finish`] flushes the end of the stream.
pub enum Encoder<W: Write> {
    /// No compression.
    Plain(W),
    /// gzip members compressed in parallel.
    ParallelGzip(ParallelGzip<W>),
    /// zstd, with its own worker threads when more than one.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// A compressor writing into `w`.
    pub fn new(w: W, opts: &CompressOptions) -> io::Result<Encoder<W>> {
        let threads = threads_or_cores(opts.threads);
        Ok(match opts.compression {
            Compression::None => Encoder::Plain(w),
            Compression::Gzip => {
                let level = opts
                    .level
                    .map_or(DEFAULT_GZIP_LEVEL, |l| l.clamp(0, 9) as u32);
                let level = flate2::Compression::new(level);
                // Even one worker runs beside the caller, so reading and
                // archiving overlap compression (as `tar | pigz -p1` does).
                Encoder::ParallelGzip(ParallelGzip::new(w, level, threads)?)
            }
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(w, opts.level.unwrap_or(3))?;
                // zstd's workers run asynchronously from the caller even when
                // there is one; `threads` is their number.
                e.multithread(threads as u32)?;
                Encoder::Zstd(e)
            }
        })
    }

    /// Ends the compressed stream and hands back the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::ParallelGzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::ParallelGzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::ParallelGzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

const GZ_BLOCK: usize = 1 << 20;

/// Parallel gzip: the input is cut into 1 MiB blocks, each compressed on a
/// rayon pool as an independent gzip member while the caller goes on producing
/// the next blocks, and the members are written in order. A concatenation of
/// gzip members is a valid gzip file (RFC 1952 §2.2; gzip, Go's compress/gzip
/// and containerd read it whole).
///
/// Written here rather than taken from a crate: pigz's single-member scheme
/// (blocks primed with the previous 32 KiB, CRCs combined) is what `gzp`
/// does, with more threads and channels than these few lines need, and
/// independent members lose well under 1% of ratio at 1 MiB blocks. Memory is
/// bounded: at most `2 * threads` blocks are in flight.
pub struct ParallelGzip<W: Write> {
    out: W,
    level: flate2::Compression,
    pool: rayon::ThreadPool,
    in_flight: std::collections::VecDeque<std::sync::mpsc::Receiver<io::Result<Vec<u8>>>>,
    current: Vec<u8>,
    max_in_flight: usize,
    wrote_any: bool,
}

impl<W: Write> ParallelGzip<W> {
    fn new(out: W, level: flate2::Compression, threads: usize) -> io::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kiln-gzip-{i}"))
            .build()
            .map_err(io::Error::other)?;
        Ok(ParallelGzip {
            out,
            level,
            pool,
            in_flight: Default::default(),
            current: Vec::with_capacity(GZ_BLOCK),
            max_in_flight: threads * 2,
            wrote_any: false,
        })
    }

    /// Hands the current block to the pool.
    fn submit(&mut self) -> io::Result<()> {
        let block = std::mem::replace(&mut self.current, Vec::with_capacity(GZ_BLOCK));
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let level = self.level;
        self.pool.spawn(move || {
            let _ = tx.send(gzip_member(&block, level));
        });
        self.in_flight.push_back(rx);
        self.wrote_any = true;
        while self.in_flight.len() >= self.max_in_flight {
            self.write_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest block in flight and writes it.
    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.in_flight.pop_front() {
            let member = rx
                .recv()
                .map_err(|_| io::Error::other("gzip worker vanished"))??;
            self.out.write_all(&member)?;
        }
        Ok(())
    }

    /// Compresses what is left and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.current.is_empty() || !self.wrote_any {
            // An empty input still yields one (empty) member: a valid gzip file.
            self.submit()?;
        }
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One block as a whole gzip member. libdeflate compresses a whole buffer at a time, which is
/// all an independent member needs, and at a given level runs about twice as fast as zlib for
/// the same ratio: layer compression is what a push of a big image waits on.
fn gzip_member(block: &[u8], level: flate2::Compression) -> io::Result<Vec<u8>> {
    let level = match member_method(block, level.level()) {
        Method::Literals => return Ok(super::literals::gzip_member(block)),
        Method::Level(l) => l,
    };
    let lvl = libdeflater::CompressionLvl::new(level as i32)
        .map_err(|e| io::Error::other(format!("gzip level {level}: {e:?}")))?;
    let mut c = libdeflater::Compressor::new(lvl);
    let mut out = vec![0u8; c.gzip_compress_bound(block.len())];
    let n = c
        .gzip_compress(block, &mut out)
        .map_err(|e| io::Error::other(format!("gzip: {e:?}")))?;
    out.truncate(n);
    Ok(out)
}

/// How one block is compressed.
#[derive(Debug, PartialEq, Eq)]
enum Method {
    /// libdeflate at this level (0: stored).
    Level(u32),
    /// Literals only, coded by their frequencies ([`super::literals`]).
    Literals,
}

/// The method follows what a 64 KiB sample of the block gives at libdeflate's fastest level:
/// - it does not shrink (random or already compressed data): stored (level 0), since searching
///   it for matches costs the most time per byte and saves nothing;
/// - it keeps more than 70% (base64, float weights, packed data, whose gain is entropy coding,
///   not repeats): literals only when that codes the sample within 1% of level 1's size (base64
///   of random bytes: 0.7564 against 0.7555 at level 1 and 0.7552 at level 6), else level 1;
/// - otherwise (text, binaries) the level asked for.
///
/// The choice depends only on the input, so the output stays reproducible.
fn member_method(block: &[u8], asked: u32) -> Method {
    const SAMPLE: usize = 64 << 10;
    if asked <= 1 || block.len() < SAMPLE {
        return Method::Level(asked);
    }
    let sample = &block[..SAMPLE];
    let fastest = level1_size(sample);
    if fastest * 100 >= SAMPLE * 99 {
        Method::Level(0)
    } else if fastest * 100 > SAMPLE * 70 {
        let literals = super::literals::coded_size(&super::literals::histogram(sample)) as usize;
        if literals * 100 <= fastest * 101 {
            Method::Literals
        } else {
            Method::Level(1)
        }
    } else {
        Method::Level(asked)
    }
}

/// The deflate size of `sample` at libdeflate's fastest level.
fn level1_size(sample: &[u8]) -> usize {
    let mut c = libdeflater::Compressor::new(
        libdeflater::CompressionLvl::new(1).expect("level 1 is valid"),
    );
    let mut out = vec![0u8; c.deflate_compress_bound(sample.len())];
    // A failure (never seen: the bound is libdeflate's own) counts as incompressible.
    c.deflate_compress(sample, &mut out).unwrap_or(sample.len())
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = GZ_BLOCK - self.current.len();
        let n = room.min(buf.len());
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() == GZ_BLOCK {
            self.submit()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::xorshift;

    fn roundtrip(c: Compression, threads: usize, data: &[u8]) {
        let opts = CompressOptions {
            compression: c,
            level: Some(1),
            threads,
        };
        let mut e = Encoder::new(Vec::new(), &opts).unwrap();
        e.write_all(data).unwrap();
        let z = e.finish().unwrap();
        let (got_c, mut d) = decoder(&z[..]).unwrap();
        assert_eq!(got_c, c);
        let mut back = Vec::new();
        d.read_to_end(&mut back).unwrap();
        assert!(
            back == data,
            "{c:?} x{threads}: {} bytes back of {}",
            back.len(),
            data.len()
        );
    }

    #[test]
    fn every_codec_roundtrips() {
        let data: Vec<u8> = (0..(2 * GZ_BLOCK + 123))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            for t in [1, 2, 3] {
                roundtrip(c, t, &data);
                roundtrip(c, t, b"");
            }
        }
    }

    #[test]
    fn parallel_gzip_is_read_by_system_gzip() {
        if std::process::Command::new("gzip")
            .arg("--version")
            .output()
            .is_err()
        {
            return;
        }
        let data = vec![b'k'; 2 * GZ_BLOCK + 5];
        let mut e = Encoder::new(
            Vec::new(),
            &CompressOptions {
                compression: Compression::Gzip,
                level: None,
                threads: 2,
            },
        )
        .unwrap();
        e.write_all(&data).unwrap();
        let z = e.finish().unwrap();
        let mut child = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let t = std::thread::spawn(move || stdin.write_all(&z).unwrap());
        let out = child.wait_with_output().unwrap();
        t.join().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), data.len());
    }

    #[test]
    fn base64_like_blocks_are_coded_as_literals() {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut rnd = xorshift(0x2545f4914f6cdd1d);
        let b64: Vec<u8> = (0..GZ_BLOCK).map(|_| B64[(rnd() >> 58) as usize]).collect();
        assert_eq!(member_method(&b64, DEFAULT_GZIP_LEVEL), Method::Literals);
        let member = gzip_member(&b64, flate2::Compression::new(6)).unwrap();
        let level1 = gzip_member(&b64, flate2::Compression::new(1)).unwrap();
        // 6 bits of 8 carry information; level 1 finds next to nothing more.
        assert!(member.len() < b64.len() * 76 / 100, "{}", member.len());
        assert!(
            member.len() * 100 < level1.len() * 101,
            "{} {}",
            member.len(),
            level1.len()
        );
        roundtrip(Compression::Gzip, 2, &b64);
    }

    #[test]
    fn high_entropy_blocks_with_repeats_take_level_1() {
        // Random bytes where every fourth 128-byte run repeats the one before: level 1
        // finds the repeats (about 0.76), literals alone could not (about 1.0).
        let mut rnd = xorshift(7);
        let mut data = Vec::with_capacity(GZ_BLOCK);
        while data.len() < GZ_BLOCK {
            let run: Vec<u8> = (0..128).map(|_| rnd() as u8).collect();
            data.extend_from_slice(&run);
            if (data.len() / 128) % 4 == 3 {
                data.extend_from_slice(&run);
            }
        }
        data.truncate(GZ_BLOCK);
        assert_eq!(member_method(&data, DEFAULT_GZIP_LEVEL), Method::Level(1));
        roundtrip(Compression::Gzip, 2, &data);
    }

    #[test]
    fn random_blocks_are_stored_and_text_blocks_compressed() {
        let mut rnd = xorshift(0x9e3779b97f4a7c15);
        let random: Vec<u8> = (0..GZ_BLOCK).map(|_| rnd() as u8).collect();
        assert_eq!(member_method(&random, DEFAULT_GZIP_LEVEL), Method::Level(0));
        let member = gzip_member(&random, flate2::Compression::new(6)).unwrap();
        // Stored: the size plus headers (5 bytes per 64 KiB stored block, 18 of gzip).
        assert!(member.len() <= random.len() + random.len() / 65535 * 5 + 64);
        let text: Vec<u8> = (0..GZ_BLOCK).map(|i| b"kiln layer "[i % 11]).collect();
        assert_eq!(member_method(&text, 6), Method::Level(6));
        assert!(
            gzip_member(&text, flate2::Compression::new(6))
                .unwrap()
                .len()
                < text.len() / 50
        );
        let mut both = random.clone();
        both.extend_from_slice(&text);
        roundtrip(Compression::Gzip, 2, &both);
    }
}
