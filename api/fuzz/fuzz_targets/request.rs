//! Request decoding never panics: the version prefix, routing, the query string (booleans,
//! integers, repeated keys, JSON values, `filters`) and JSON bodies, plus the stream
//! encoders on whatever numbers and bytes come out; the container create body through the
//! service's own decoder and the engine's parsers of docker's syntaxes; log records.
//!
//! Input layout: byte 0 picks the method, then `PATH[?QUERY] \n BODY` (lossy UTF-8 for the
//! first line; the body stays bytes).
#![no_main]

use std::collections::BTreeMap;

use hyper::Method;
use kiln_api::body::{decode_json, decode_json_or_default};
use kiln_api::query::Query;
use kiln_api::router::{percent_decode, strip_version, Router};
use kiln_api::stream::{encode_frames, human_bytes, progress_bar, JsonMessage, StdStream};
use kiln_engine::containers::config;
use libfuzzer_sys::fuzz_target;

const METHODS: [Method; 5] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::DELETE,
    Method::PUT,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let (line, body) = (&rest[..split], rest.get(split + 1..).unwrap_or(&[]));
    let line = String::from_utf8_lossy(line);
    let (path, query) = line.split_once('?').unwrap_or((&line, ""));
    let method = &METHODS[usize::from(pick) % METHODS.len()];

    let router = Router::api();
    match strip_version(path) {
        Ok((version, rest)) => {
            assert!(version >= kiln_api::router::ApiVersion::MIN);
            assert!(version <= kiln_api::router::ApiVersion::MAX);
            assert!(rest.starts_with('/') || rest.is_empty() || !path.starts_with("/v"));
            if let Err(e) = router.find(method, rest) {
                assert_eq!(e.status, 404);
            }
        }
        Err(e) => assert_eq!(e.status, 400),
    }
    let _ = percent_decode(path);

    let q = Query::parse(query);
    for key in ["t", "rm", "force", "tail", "filters", "buildargs", ""] {
        let _ = q.bool(key);
        let _ = q.bool_or(key, true);
        let _ = q.int(key);
        let _ = q.all(key);
        let _ = q.json::<BTreeMap<String, Option<String>>>(key);
    }
    if let Ok(filters) = q.filters() {
        let _ = filters.validate(&["label", "reference"]);
        let _ = filters.match_labels(|k| (k.len() % 2 == 0).then_some("v"));
    }
    if let Ok(filters) = kiln_api::query::Filters::parse(&String::from_utf8_lossy(body)) {
        let _ = filters.get("label");
    }

    if let Err(e) = decode_json::<serde_json::Value>(body) {
        assert_eq!(e.status, 400);
    }
    // The real create body decoder, then the engine's parsers of docker's syntaxes on what it
    // yields (what a create runs before it touches the store).
    match kiln_api::containers::decode_create(body, None) {
        Ok(o) => {
            for p in &o.publish {
                let _ = config::parse_publish(p);
            }
            for u in &o.ulimits {
                let _ = config::parse_ulimit(u);
            }
            for h in &o.add_hosts {
                let _ = config::parse_add_host(h);
            }
            let _ = config::parse_security_opts(&o.security_opt);
            let _ = config::parse_network(&o.network);
        }
        Err(e) => assert_eq!(e.status, 400),
    }
    let _ = decode_json_or_default::<BTreeMap<String, serde_json::Value>>(body);
    // The same syntaxes, and a log record, straight from the input.
    let _ = config::parse_size(&line);
    let _ = config::parse_signal(&line);
    let _ = config::parse_publish(&line);
    let _ = config::parse_ulimit(&line);
    let _ = kiln_engine::containers::log::parse_record(body);
    let _ = kiln_engine::containers::log::parse_rfc3339_nanos(&line);

    // The encoders on numbers and bytes from the input.
    let mut n = [0u8; 16];
    for (slot, b) in n.iter_mut().zip(body) {
        *slot = *b;
    }
    let a = u64::from_le_bytes(n[..8].try_into().unwrap_or_default());
    let b = u64::from_le_bytes(n[8..].try_into().unwrap_or_default());
    let _ = human_bytes(a);
    let _ = progress_bar(a, b);
    let line = JsonMessage::progress("Pushing", line.to_string(), a, b).to_line();
    assert!(line.ends_with(b"\n"));
    assert!(serde_json::from_slice::<serde_json::Value>(&line).is_ok());
    let framed = encode_frames(StdStream::Stderr, body);
    assert_eq!(framed.len(), if body.is_empty() { 0 } else { body.len() + 8 });
});
