//! Micro-benchmarks of the per-request hot paths of the HTTP layer: head parsing (and the
//! uwsgi packet that replaces it), chunked decoding, the response encoder, and WebSocket
//! frames. `cargo bench -p ferricorn-http` (or `make bench`).

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferricorn_http::{chunked, uwsgi};
use ferricorn_http::{
    parse_head, BodyDecoder, BodyFraming, BodyMode, Decoded, Encoder, Limits, Plan,
};

/// A browser's GET (7 fields, 368 bytes), shared by the parser's and the environ's benches.
const BROWSER_GET: &[u8] = include_bytes!("browser_get.http");

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

/// What nginx's `uwsgi_params` sends for a browser's GET: the 16 CGI vars and the
/// browser's headers as `HTTP_*`.
fn nginx_packet() -> Vec<u8> {
    let vars: &[(&[u8], &[u8])] = &[
        (b"QUERY_STRING", b"q=rust"),
        (b"REQUEST_METHOD", b"GET"),
        (b"CONTENT_TYPE", b""),
        (b"CONTENT_LENGTH", b""),
        (b"REQUEST_URI", b"/search?q=rust"),
        (b"PATH_INFO", b"/search"),
        (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"REMOTE_ADDR", b"203.0.113.7"),
        (b"REMOTE_PORT", b"40123"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"example.com"),
        (b"HTTP_HOST", b"example.com"),
        (
            b"HTTP_USER_AGENT",
            b"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        ),
        (b"HTTP_ACCEPT", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        (b"HTTP_ACCEPT_LANGUAGE", b"en-US,en;q=0.5"),
        (b"HTTP_ACCEPT_ENCODING", b"gzip, deflate, br"),
        (b"HTTP_CONNECTION", b"keep-alive"),
        (b"HTTP_COOKIE", b"session=abc123"),
    ];
    uwsgi::encode(vars)
}

fn uwsgi_packets(c: &mut Criterion) {
    let limits = Limits::default();
    let packet = nginx_packet();
    let mut group = c.benchmark_group("uwsgi");
    group.throughput(Throughput::Bytes(packet.len() as u64));
    group.bench_function("nginx_get", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&packet[..]);
            uwsgi::parse(&mut buf, &limits).unwrap().unwrap()
        })
    });
    group.finish();
}

fn chunked_decode(c: &mut Criterion) {
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

/// A Django-like response head: the app's status and four headers.
const APP_HEADERS: [(&str, &str); 4] = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("X-Frame-Options", "DENY"),
    ("Vary", "Cookie"),
    ("Set-Cookie", "csrftoken=0123456789abcdef; Path=/; SameSite=Lax"),
];

/// The encoder as ferricorn's server runs it (src/wsgi/exchange.rs `ENCODER`).
const ENCODER: Encoder<'static> = Encoder { server: Some("ferricorn"), ..Encoder::DEFAULT };

fn encoder(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let mut out = Vec::with_capacity(4096);
    group.bench_function("head_length", |b| {
        b.iter(|| {
            out.clear();
            let plan = Plan { body: BodyMode::Length(1234), keep_alive: true };
            ENCODER.encode_head(&mut out, "200 OK", APP_HEADERS, 200, plan);
            out.len()
        })
    });
    group.bench_function("head_chunked", |b| {
        b.iter(|| {
            out.clear();
            let plan = Plan { body: BodyMode::Chunked, keep_alive: true };
            ENCODER.encode_head(&mut out, "200 OK", APP_HEADERS, 200, plan);
            out.len()
        })
    });
    let data = [b'x'; 4096];
    group.bench_function("chunk_4KiB", |b| {
        b.iter(|| {
            out.clear();
            chunked::encode_chunk(&data, &mut out);
            out.len()
        })
    });
    group.bench_function("error_page_400", |b| b.iter(|| ENCODER.error_page(400).len()));
    group.finish();
}

/// Client frames decoded (unmasking, UTF-8 for text) and server frames encoded: the
/// WebSocket codec's per-message work, for a small chat-sized and a 64 KiB message.
fn websocket_frames(c: &mut Criterion) {
    use ferricorn_http::fuzzing::mask_frame;
    use ferricorn_http::websocket::{encode_binary, encode_text, Decoder};
    let mut group = c.benchmark_group("websocket");
    for len in [64usize, 64 * 1024] {
        let text = "a".repeat(len);
        let mut frame = Vec::new();
        encode_text(&mut frame, &text);
        let text_frame = mask_frame(&frame, [0x37, 0xfa, 0x21, 0x3d]);
        frame.clear();
        encode_binary(&mut frame, text.as_bytes());
        let binary_frame = mask_frame(&frame, [0x37, 0xfa, 0x21, 0x3d]);
        group.throughput(Throughput::Bytes(len as u64));
        for (name, input) in [("decode_text", &text_frame), ("decode_binary", &binary_frame)] {
            group.bench_function(format!("{name}_{len}"), |b| {
                b.iter(|| {
                    let mut buf = BytesMut::from(&input[..]);
                    Decoder::new(16 << 20).decode(&mut buf).unwrap().unwrap()
                })
            });
        }
        let mut out = Vec::with_capacity(len + 16);
        group.bench_function(format!("encode_text_{len}"), |b| {
            b.iter(|| {
                out.clear();
                encode_text(&mut out, &text);
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, heads, uwsgi_packets, chunked_decode, encoder, websocket_frames);
criterion_main!(benches);
