//! Parsing speed: generated Dockerfiles of 1k, 10k and 100k lines, reported
//! in lines per second (criterion's element throughput). Equal per-line
//! throughput across the three sizes shows parsing is linear.
//!
//! `cargo bench -p kiln-parser --bench parse`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// A realistic mix: stages, flags, mounts, continuations, heredocs, JSON.
fn generate(lines: usize) -> String {
    let block = r#"FROM --platform=$BUILDPLATFORM golang:1.22 AS build
ARG VERSION=1.0 TARGETOS
ENV CGO_ENABLED=0 GOFLAGS="-mod=vendor -trimpath" PATH=/go/bin:$PATH
# build the binary
RUN --mount=type=cache,target=/root/.cache/go-build,sharing=locked \
    --mount=type=bind,source=.,target=/src \
    go build -ldflags "-X main.version=${VERSION}" -o /out/app ./cmd/app
COPY --from=build --chown=1000:1000 --chmod=0755 /out/app /usr/local/bin/app
RUN <<EOF
set -eu
echo built
EOF
LABEL org.opencontainers.image.title="app" version=$VERSION
HEALTHCHECK --interval=30s --timeout=3s CMD ["app", "health"]
EXPOSE 8080/tcp
ENTRYPOINT ["/usr/local/bin/app"]
"#;
    let per_block = block.lines().count();
    let mut out = String::with_capacity(lines * 48);
    for _ in 0..lines.div_ceil(per_block) {
        out.push_str(block);
    }
    out
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.sample_size(10);
    for lines in [1_000usize, 10_000, 100_000] {
        let text = generate(lines);
        let actual = text.lines().count();
        group.throughput(Throughput::Elements(actual as u64));
        group.bench_with_input(BenchmarkId::new("typed", lines), &text, |b, text| {
            b.iter(|| kiln_parser::parse(text, "Dockerfile").expect("parses"))
        });
        group.bench_with_input(BenchmarkId::new("raw", lines), &text, |b, text| {
            b.iter(|| kiln_parser::parse_raw(text, "Dockerfile").expect("parses"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
