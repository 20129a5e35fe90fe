//! A static-response server over `std::net`, one thread per connection: keep-alive,
//! pipelined requests answered in order, and a 400 page for a malformed request.
//!
//! `cargo run -p ferricorn-http --example static_server -- 127.0.0.1:8080`
//! (port 0 picks a free one); it prints `listening on ADDR` once it accepts.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use bytes::BytesMut;
use ferricorn_http::response::{plan, RequestInfo};
use ferricorn_http::{parse_head, BodyDecoder, Decoded, Encoder, Limits};

const BODY: &[u8] = b"Hello from ferricorn-http\n";
const ENCODER: Encoder<'static> = Encoder { server: Some("static_server"), ..Encoder::DEFAULT };

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = stream?;
        std::thread::spawn(move || {
            if let Err(e) = serve(stream) {
                eprintln!("connection: {e}");
            }
        });
    }
    Ok(())
}

/// Answers every request on one connection until the client or the framing ends it.
fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    let limits = Limits::default();
    let mut buf = BytesMut::with_capacity(8192);
    let mut out = Vec::new();
    loop {
        // Every whole request already in the buffer is answered before the next read:
        // that is all pipelining takes.
        let head = match parse_head(&mut buf, &limits) {
            Ok(Some(head)) => head,
            Ok(None) if read_more(&mut stream, &mut buf, &mut out)? => continue,
            Ok(None) => return stream.write_all(&out),
            Err(error) => {
                out.extend_from_slice(&ENCODER.error_page(error.status()));
                return stream.write_all(&out);
            }
        };
        // The body is read and dropped: its end is where the next request starts.
        let mut body = BodyDecoder::new(head.framing);
        loop {
            match body.decode(&mut buf, usize::MAX) {
                Ok(Decoded::Data(_)) => {}
                Ok(Decoded::End) => break,
                Ok(Decoded::NeedMore) if read_more(&mut stream, &mut buf, &mut out)? => {}
                Ok(Decoded::NeedMore) => return stream.write_all(&out),
                Err(error) => {
                    out.extend_from_slice(&ENCODER.error_page(error.status()));
                    return stream.write_all(&out);
                }
            }
        }
        let req = RequestInfo {
            minor: head.minor,
            head_request: head.is_head_request(),
            keep_alive: head.keep_alive,
        };
        let framing = plan(200, Some(BODY.len() as u64), req);
        let headers = [("Content-Type", "text/plain")];
        ENCODER.encode_head(&mut out, "200 OK", headers, 200, framing);
        if !req.head_request {
            out.extend_from_slice(BODY);
        }
        if !framing.keep_alive {
            return stream.write_all(&out);
        }
    }
}

/// Sends the responses so far (those to pipelined requests go out together), then reads
/// what the socket has into `buf`; `false` at the end of the stream.
fn read_more(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
) -> std::io::Result<bool> {
    stream.write_all(out)?;
    out.clear();
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}
