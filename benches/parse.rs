//! Micro-benchmarks of the server's per-request hot paths: environ building. Head parsing,
//! chunked decoding and the response encoder are benched in their crate
//! (crates/ferricorn-http/benches/http.rs). `cargo bench --bench parse` (or `make bench`).

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion};
use ferricorn::forwarded::Policy;
use ferricorn::http::{parse_head, Limits};
use ferricorn::listener::Peer;
use ferricorn::wsgi::{environ, Connection, Globals, Input};
use pyo3::prelude::*;

/// A browser's GET (7 fields, 368 bytes), shared by the parser's and the environ's benches.
const BROWSER_GET: &[u8] = include_bytes!("../crates/ferricorn-http/benches/browser_get.http");

fn environ_building(c: &mut Criterion) {
    Python::initialize();
    let head = parse_head(&mut BytesMut::from(BROWSER_GET), &Limits::default()).unwrap().unwrap();
    let peer = Peer::new("127.0.0.1", "50000");
    let server = ("127.0.0.1".to_owned(), "8000".to_owned());
    Python::attach(|py| {
        let globals = Globals::new(py, true, false, Policy::default()).unwrap();
        let conn = Connection {
            peer: &peer,
            server: &server,
            forwarded: &Default::default(),
            queued_since: std::time::Instant::now(),
            client_cert: None,
        };
        c.bench_function("environ/browser_get", |b| {
            b.iter(|| {
                let input = Py::new(py, Input::buffered(BytesMut::new())).unwrap();
                environ::build(py, &head, &conn, &globals, input).unwrap()
            })
        });
    });
}

criterion_group!(benches, environ_building);
criterion_main!(benches);
