//! A WebSocket echo server over `std::net` on the crate's codec, one thread per connection:
//! the handshake as gunicorn 27 judges it, text and binary echoed, pings answered, the
//! close handshake completed, and a protocol error failing the connection with its close
//! code. It is what Autobahn's fuzzingclient runs against (docs/websocket-protocol.md).
//!
//! `cargo run --release -p ferricorn-http --example ws_echo -- 127.0.0.1:9001`
//! (port 0 picks a free one); it prints `listening on ADDR` once it accepts.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use ferricorn_http::websocket::{self, Decoder, Message};
use ferricorn_http::{parse_head, Encoder, Head, Limits};

/// gunicorn's `--websocket-max-message-size` default.
const MAX_MESSAGE: usize = 16 << 20;
/// How long a closing connection waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(2);

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
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

/// One connection: the opening handshake, then frames until either side closes.
fn serve(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let Some(head) = read_head(&mut stream, &mut buf)? else { return Ok(()) };
    let mut out = Vec::new();
    match websocket::read_offer(&head) {
        None => {
            out.extend_from_slice(b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n");
            out.extend_from_slice(b"Content-Length: 0\r\nConnection: close\r\n\r\n");
            return stream.write_all(&out);
        }
        Some(Err(refusal)) => {
            websocket::write_refusal(&mut out, &refusal);
            return stream.write_all(&out);
        }
        Some(Ok(offer)) => {
            let ok = websocket::write_accept(&mut out, &offer, None, &[]);
            ok.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        }
    }
    echo(&mut stream, &mut buf, out)
}

/// Reads the request head; `None` when the client left first or sent a malformed one
/// (then answered with the crate's error page).
fn read_head(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<Option<Head>> {
    loop {
        match parse_head(buf, &Limits::default()) {
            Ok(Some(head)) => return Ok(Some(head)),
            Ok(None) if read_more(stream, buf)? => {}
            Ok(None) => return Ok(None),
            Err(e) => {
                stream.write_all(&Encoder::DEFAULT.error_page(e.status()))?;
                return Ok(None);
            }
        }
    }
}

/// Echoes messages until a close. Replies go out whenever the decoder needs more bytes,
/// so a burst of small messages is answered in one write.
fn echo(stream: &mut TcpStream, buf: &mut BytesMut, mut out: Vec<u8>) -> io::Result<()> {
    let mut decoder = Decoder::new(MAX_MESSAGE);
    loop {
        match decoder.decode(buf) {
            Ok(Some(Message::Text(text))) => websocket::encode_text(&mut out, &text),
            Ok(Some(Message::Binary(data))) => websocket::encode_binary(&mut out, &data),
            Ok(Some(Message::Ping(data))) => websocket::encode_pong(&mut out, &data),
            Ok(Some(Message::Pong(_))) => {}
            Ok(Some(Message::Close(close))) => {
                // RFC 6455 §5.5.1: echo the status code; no code is answered with none.
                let code = close.map(|c| c.code);
                websocket::encode_close(&mut out, code, "");
                return finish(stream, &out);
            }
            Ok(None) => {
                stream.write_all(&out)?;
                out.clear();
                if !read_more(stream, buf)? {
                    return Ok(());
                }
            }
            Err(e) => {
                // §7.1.7: fail the connection, with the close code of what was wrong.
                websocket::encode_close(&mut out, Some(e.close_code()), "");
                return finish(stream, &out);
            }
        }
    }
}

/// Sends the last bytes and closes: the server ends the TCP connection first (§7.1.1),
/// then reads what the client still sends until it closes too, so that nothing unread
/// turns the close into a reset that could lose the close frame.
fn finish(stream: &mut TcpStream, out: &[u8]) -> io::Result<()> {
    stream.write_all(out)?;
    stream.shutdown(Shutdown::Write)?;
    stream.set_read_timeout(Some(LINGER))?;
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}

/// Reads once more into `buf`; false at the end of the stream.
fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<bool> {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(true);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
