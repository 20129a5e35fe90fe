//! Micro-benchmarks of the per-request hot paths: head parsing, chunked decoding and
//! environ building. `cargo bench --bench parse` (or `make bench`).

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferricorn::forwarded::Policy;
use ferricorn::http::{parse_head, BodyDecoder, BodyFraming, Decoded, Limits};
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

fn heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("parse_head");
    group.throughput(Throughput::Bytes(BROWSER_GET.len() as u64));
    group.bench_function("browser_get", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(BROWSER_GET);
            parse_head(&mut buf, &limits).unwrap().unwrap()
        })
    });
    group.bench_function("minimal_get", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
            parse_head(&mut buf, &limits).unwrap().unwrap()
        })
    });
    group.finish();
}

fn chunked(c: &mut Criterion) {
    let mut body = Vec::new();
    for _ in 0..256 {
        body.extend_from_slice(b"1000\r\n");
        body.extend_from_slice(&[b'x'; 0x1000]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let mut group = c.benchmark_group("chunked");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("1MiB_in_4KiB_chunks", |b| {
        b.iter(|| {
            let mut src = BytesMut::from(&body[..]);
            let mut dec = BodyDecoder::new(BodyFraming::Chunked);
            let mut total = 0;
            while let Decoded::Data(d) = dec.decode(&mut src, 64 * 1024).unwrap() {
                total += d.len();
            }
            total
        })
    });
    group.finish();
}

fn environ_building(c: &mut Criterion) {
    Python::initialize();
    let head = parse_head(&mut BytesMut::from(BROWSER_GET), &Limits::default()).unwrap().unwrap();
    let peer = Peer { addr: "127.0.0.1".into(), port: "50000".into() };
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

criterion_group!(benches, heads, chunked, environ_building);
criterion_main!(benches);
