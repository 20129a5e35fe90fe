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

const BROWSER_GET: &[u8] = b"GET /static/app.js?v=3 HTTP/1.1\r\n\
Host: example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Cookie: sessionid=abcdef0123456789; csrftoken=0123456789abcdef\r\n\
Connection: keep-alive\r\n\r\n";

fn environ_building(c: &mut Criterion) {
    Python::initialize();
    let head = parse_head(&mut BytesMut::from(BROWSER_GET), &Limits::default()).unwrap().unwrap();
    let peer = Peer::new("127.0.0.1", "50000");
    let server = ("127.0.0.1".to_owned(), "8000".to_owned());
    Python::attach(|py| {
        let globals = Globals::new(py, true, false, Policy::default()).unwrap();
        let conn = Connection { peer: &peer, server: &server, forwarded: &Default::default() };
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
