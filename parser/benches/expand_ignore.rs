//! Word expansion and .dockerignore matching at growing sizes: the time
//! per byte should stay flat (linear work), 1k vs 10k vs 100k.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kiln_parser::dockerignore::Matcher;
use kiln_parser::shell::{EnvList, Lexer};

fn expand(c: &mut Criterion) {
    let mut group = c.benchmark_group("expand");
    let lex = Lexer::new('\\');
    for size in [1_000usize, 10_000, 100_000] {
        let env = EnvList::from_entries([format!("V={}", "ab/".repeat(size / 3))]);
        group.throughput(Throughput::Bytes(size as u64));
        for (name, word) in [
            ("replace_all", "${V//b/c}"),
            ("replace_all_glob", "${V//a*\\//x}"),
            ("trim_longest_suffix", "${V%%/*}"),
            ("words", "x${V}y \"$V\""),
        ] {
            group.bench_with_input(BenchmarkId::new(name, size), &word, |b, w| {
                b.iter(|| lex.process_word(black_box(w), &env).unwrap())
            });
        }
    }
    group.finish();
}

fn dockerignore(c: &mut Criterion) {
    let mut group = c.benchmark_group("dockerignore");
    let m = Matcher::from_patterns([
        "**/node_modules",
        "*.log",
        "build/**",
        "!**/keep/*.txt",
        "docs/[a-c]?*",
    ])
    .unwrap();
    for depth in [100usize, 1_000, 10_000] {
        let path = "dir/".repeat(depth) + "file.txt";
        group.throughput(Throughput::Bytes(path.len() as u64));
        group.bench_with_input(BenchmarkId::new("deep_path", depth), &path, |b, p| {
            b.iter(|| m.matches(black_box(p)))
        });
    }
    group.finish();
}

criterion_group!(benches, expand, dockerignore);
criterion_main!(benches);
