//! One measurement per process (so peak RSS is that operation's alone), for
//! cache/bench/bench.sh:
//!
//! ```text
//! layer_bench create TREE gzip|zstd|none THREADS [LEVEL]   layer create+compress to a sink
//! layer_bench write  TREE OUT.tar                          the plain layer tar, for apply
//! layer_bench apply  BLOB TARGET                           safe apply into a fresh dir
//! layer_bench digest FILE                                  sha256 throughput
//! ```
//! Prints `op=... bytes=... secs=... mbps=... peak_rss_kb=...`.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::time::Instant;

use kiln_cache::layer::{
    apply_layer, write_layer, ApplyOptions, CompressOptions, Compression, DiffSource, TarOptions,
};

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn report(op: &str, bytes: u64, start: Instant, extra: &str) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "op={op} bytes={bytes} secs={secs:.3} mbps={:.1} peak_rss_kb={}{extra}",
        bytes as f64 / 1e6 / secs,
        peak_rss_kb()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: layer_bench create TREE gzip|zstd|none THREADS [LEVEL] | write TREE OUT | apply BLOB TARGET | digest FILE";
    match args.get(1).map(String::as_str) {
        Some("create") if args.len() >= 5 => {
            let compression: Compression = args[3].parse().expect("compression");
            let opts = CompressOptions {
                compression,
                threads: args[4].parse().expect("threads"),
                level: args.get(5).map(|l| l.parse().expect("level")),
            };
            let start = Instant::now();
            let (_, info) = write_layer(
                DiffSource::Tree(Path::new(&args[2])),
                &TarOptions::default(),
                &opts,
                std::io::sink(),
            )
            .expect("create");
            report(
                &format!("create-{}-t{}", args[3], args[4]),
                info.tar_size,
                start,
                &format!(" compressed={} diff_id={}", info.size, info.diff_id),
            );
        }
        Some("write") if args.len() >= 4 => {
            let out =
                BufWriter::with_capacity(1 << 20, File::create(&args[3]).expect("create output"));
            let opts = CompressOptions {
                compression: Compression::None,
                ..CompressOptions::default()
            };
            let start = Instant::now();
            let (_, info) = write_layer(
                DiffSource::Tree(Path::new(&args[2])),
                &TarOptions::default(),
                &opts,
                out,
            )
            .expect("write");
            report("write-tar", info.tar_size, start, "");
        }
        Some("apply") if args.len() >= 4 => {
            std::fs::create_dir_all(&args[3]).expect("target");
            let f = BufReader::with_capacity(1 << 20, File::open(&args[2]).expect("blob"));
            let start = Instant::now();
            let s = apply_layer(f, Path::new(&args[3]), &ApplyOptions::default()).expect("apply");
            report(
                "apply",
                s.tar_size,
                start,
                &format!(" entries={}", s.entries),
            );
        }
        Some("digest") if args.len() >= 3 => {
            let f = File::open(&args[2]).expect("file");
            let start = Instant::now();
            let (_, n) = kiln_cache::digest::digest_reader(f).expect("read");
            report("digest", n, start, "");
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
