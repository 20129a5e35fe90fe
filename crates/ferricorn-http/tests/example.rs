//! The crate's example serves real requests: `examples/static_server.rs` is built, started
//! on a free port, and spoken to over a socket (keep-alive, pipelining, a 400, HTTP/1.0).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{Server, DEADLINE};

const BODY: &[u8] = b"Hello from ferricorn-http\n";

/// Builds and starts the example.
fn start() -> Server {
    common::start("static_server")
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(&server.addr).expect("connects");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// A response read back: status, headers, body.
type Response = (u16, Vec<(String, String)>, Vec<u8>);

/// Reads `n` responses framed by their Content-Length.
fn responses(stream: &mut TcpStream, n: usize) -> Vec<Response> {
    let (mut buf, mut got) = (Vec::new(), Vec::new());
    while got.len() < n {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut res = httparse::Response::new(&mut slots);
        if let httparse::Status::Complete(len) = res.parse(&buf).expect("a valid response") {
            let headers: Vec<(String, String)> = res
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
                .collect();
            let length = headers.iter().find(|(n, _)| n == "Content-Length").unwrap().1.clone();
            let end = len + length.parse::<usize>().unwrap();
            if buf.len() >= end {
                got.push((res.code.unwrap(), headers, buf[len..end].to_vec()));
                buf.drain(..end);
                continue;
            }
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).expect("reads");
        assert!(read > 0, "closed after {} responses: {buf:?}", got.len());
        buf.extend_from_slice(&chunk[..read]);
    }
    got
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    &headers.iter().find(|(n, _)| n == name).expect(name).1
}

/// What is left before the server closes the connection.
fn rest(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("closes");
    rest
}

#[test]
fn example_serves_keep_alive_pipelined_and_refused_requests() {
    let server = start();
    // Two requests one after the other on one connection, then two pipelined in one write.
    let mut conn = connect(&server);
    for _ in 0..2 {
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (status, headers, body) = responses(&mut conn, 1).remove(0);
        assert_eq!((status, body.as_slice()), (200, BODY));
        assert_eq!(header(&headers, "Connection"), "keep-alive");
        assert_eq!(header(&headers, "Server"), "static_server");
    }
    conn.write_all(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\n\
                     Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .unwrap();
    let both = responses(&mut conn, 2);
    assert!(both.iter().all(|(status, _, body)| *status == 200 && body == BODY), "{both:?}");
    // A malformed request: gunicorn's 400 page, then the close.
    conn.write_all(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n").unwrap();
    let (status, headers, body) = responses(&mut conn, 1).remove(0);
    assert_eq!(status, 400);
    assert_eq!(header(&headers, "Connection"), "close");
    assert!(String::from_utf8(body).unwrap().contains("<title>Bad Request</title>"));
    assert_eq!(rest(&mut conn), b"");
    // HTTP/1.0 without keep-alive: one response, then the close.
    let mut old = connect(&server);
    old.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let (status, headers, _) = responses(&mut old, 1).remove(0);
    assert_eq!((status, header(&headers, "Connection")), (200, "close"));
    assert_eq!(rest(&mut old), b"");
}
