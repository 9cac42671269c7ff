//! `docker save` through the service streams: the archive of a large image goes out while
//! the service's memory stays flat. A test binary of its own, so that no other test's
//! memory is counted.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use common::{tar_of, Service};

#[test]
fn saving_a_large_image_streams_with_flat_memory() {
    let s = Service::start();
    // 64 MiB of incompressible data in one layer, built through the API.
    let big: String = (0..(1 << 20))
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let mut files = vec![(
        "Dockerfile".to_string(),
        "FROM busybox\nCOPY big* /big/\n".to_string(),
    )];
    for i in 0..64 {
        files.push((format!("big{i}"), big.clone()));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (_, body) = s.request("POST", "/build?q=1&t=acc%2Fbig%3A1", &tar_of(&refs));
    assert!(body.contains("sha256:"), "{body}");

    let rss = || -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    };
    let before = rss();
    // Read in small pieces: the writer has to wait for the client, not buffer for it.
    let mut conn = UnixStream::connect(&s.socket).unwrap();
    conn.write_all(b"GET /images/get?names=acc%2Fbig%3A1 HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut total = 0usize;
    let mut peak = before;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        if total % (8 << 20) < n {
            peak = peak.max(rss());
        }
    }
    assert!(total > 64 << 20, "only {total} bytes");
    eprintln!("read {total} bytes; RSS {before} kB before, {peak} kB at most");
    // The service runs in this process: its memory grew by far less than the archive.
    assert!(peak - before < 32 << 10, "RSS grew by {} kB", peak - before);
}
