//! The sans-io `shiguredo_http2` crate driven from a single-threaded mio loop.
//!
//! `sans-mio [PORT]`: the same server as `h2_mio` (h2c prior knowledge, 200 "Hello,
//! World!\n" once the request body is read) with the engine that takes bytes in
//! (`feed` + `process`), hands events out (`poll_event`) and bytes to send
//! (`poll_output`). No trait, no waker: the loop owns every byte. What this crate leaves
//! to its caller shows here: WINDOW_UPDATEs for consumed DATA (RFC 9113 section 6.9),
//! and writing out its output buffer.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use shiguredo_http2::{Connection, ErrorCode, Event, HeaderField, Limits, StreamId};

/// The listener's token; connections count up from 1.
const LISTENER: Token = Token(0);

/// The body every request gets.
const HELLO: &[u8] = b"Hello, World!\n";

/// One client connection.
struct Conn {
    /// The connection's socket, registered edge-triggered for both directions.
    sock: TcpStream,
    /// The protocol state: frames in, events and frames out.
    h2: Connection,
    /// Bytes the engine produced that the socket has not taken yet.
    out: Vec<u8>,
    /// Set once the engine failed: flush what it queued (GOAWAY), then close.
    closing: bool,
}

/// The settings `h2_mio` uses, so the two run the same protocol.
fn limits() -> Limits {
    Limits::builder()
        .max_concurrent_streams(Some(100))
        .max_header_list_size(Some(65_536))
        .build()
        .expect("static limits")
}

/// Answers one stream: HEADERS, then DATA with END_STREAM.
fn respond(h2: &mut Connection, id: StreamId) -> shiguredo_http2::Result<()> {
    let field = |n, v| HeaderField::new(n, v).expect("static header");
    let headers = vec![
        field(":status", "200"),
        field("content-type", "text/plain"),
        field("content-length", "14"),
    ];
    h2.send_response(id, headers, false)?;
    h2.send_data(id, HELLO.to_vec(), true)
}

/// Gives back flow-control window the peer spent: the connection's and the stream's.
fn give_back(h2: &mut Connection, id: Option<StreamId>, n: usize) {
    let Ok(n) = u32::try_from(n) else { return };
    if n == 0 {
        return;
    }
    let _ = h2.send_window_update(StreamId::from_wire(0), n);
    if let Some(id) = id {
        let _ = h2.send_window_update(id, n);
    }
}

/// Acts on every event the engine has queued.
fn handle_events(h2: &mut Connection) {
    while let Some(event) = h2.poll_event() {
        match event {
            Event::HeadersReceived { stream_id, end_stream: true, .. }
            | Event::DataReceived { stream_id, end_stream: true, .. }
            | Event::TrailersReceived { stream_id, .. } => {
                if let Event::DataReceived { data, .. } = &event {
                    give_back(h2, None, data.len());
                }
                let _ = respond(h2, stream_id);
            }
            Event::DataReceived { stream_id, data, .. } => {
                give_back(h2, Some(stream_id), data.len());
            }
            Event::StreamReset { connection_window_consumed: n, .. }
            | Event::DataDiscarded { connection_window_consumed: n, .. } => {
                give_back(h2, None, n);
            }
            _ => {}
        }
    }
}

/// Reads until `WouldBlock`, feeding the engine; `false` on EOF or a socket error.
fn read_in(conn: &mut Conn, buf: &mut [u8]) -> bool {
    loop {
        match conn.sock.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                let fed = conn.h2.feed(&buf[..n]).and_then(|_| conn.h2.process());
                handle_events(&mut conn.h2);
                if let Err(e) = fed {
                    // The engine reports a connection error but leaves GOAWAY
                    // (RFC 9113 section 5.4.1) to its caller.
                    let code = e.error_code().unwrap_or(ErrorCode::ProtocolError);
                    let _ = conn.h2.send_goaway(code, Vec::new());
                    conn.closing = true;
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// Moves the engine's output to the socket until it is empty or the socket is full;
/// `false` on a socket error or when a closing connection has flushed.
fn write_out(conn: &mut Conn) -> bool {
    while let Some(bytes) = conn.h2.poll_output() {
        conn.out.extend_from_slice(&bytes);
    }
    let mut sent = 0;
    while sent < conn.out.len() {
        match conn.sock.write(&conn.out[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    conn.out.drain(..sent);
    !(conn.closing && conn.out.is_empty())
}

fn main() -> io::Result<()> {
    let port: u16 = std::env::args().nth(1).map_or(8000, |p| p.parse().expect("port"));
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into())?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("sans-mio listening on 127.0.0.1:{port}");
    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut next = 1;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                while let Ok((mut sock, _)) = listener.accept() {
                    let token = Token(next);
                    next += 1;
                    let _ = sock.set_nodelay(true);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    poll.registry().register(&mut sock, token, interest)?;
                    let mut h2 = Connection::server(limits());
                    let closing = h2.initiate().is_err();
                    let conn = Conn { sock, h2, out: Vec::new(), closing };
                    conns.insert(token, conn);
                }
                continue;
            }
            let token = event.token();
            let Some(conn) = conns.get_mut(&token) else { continue };
            let alive = (!event.is_readable() || read_in(conn, &mut buf)) && write_out(conn);
            if !alive {
                conns.remove(&token);
            }
        }
    }
}
