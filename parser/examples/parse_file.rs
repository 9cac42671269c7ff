//! Parses a Dockerfile `N` times and prints how long it took, for profiling:
//! `cargo run --release -p kiln-parser --example parse_file -- FILE [N]`.

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: parse_file FILE [N]");
        std::process::exit(2);
    };
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let lines = text.lines().count();
    let start = Instant::now();
    for _ in 0..n {
        if let Err(e) = kiln_parser::parse(&text, &path) {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} x {lines} lines in {secs:.3} s: {:.0} lines/s",
        (n * lines) as f64 / secs
    );
}
