//! Micro-benchmarks of the HTTP layer's hot paths: `cargo bench --bench parse` (or `make bench`).

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferricorn::http::{parse_head, BodyDecoder, BodyFraming, Decoded, Limits};

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

criterion_group!(benches, heads, chunked);
criterion_main!(benches);
