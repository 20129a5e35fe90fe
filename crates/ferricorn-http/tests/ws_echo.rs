//! The WebSocket example serves real connections: `examples/ws_echo.rs` is built, started
//! on a free port, and spoken to over a socket: the handshake and its refusals, echoes,
//! a ping, a fragmented message, the close handshake, and a connection failed for text
//! that is not UTF-8.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, DEADLINE};
use ferricorn_http::fuzzing::mask_frame;
use ferricorn_http::websocket;

/// RFC 6455 §1.3's sample key and its accept key.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Builds and starts the example.
fn start() -> Server {
    common::start("ws_echo")
}

/// Sends a request head and reads the response head back: its status and fields.
fn handshake(server: &Server, fields: &str) -> (TcpStream, u16, Vec<(String, String)>) {
    let mut stream = TcpStream::connect(&server.addr).expect("connects");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // Latin-1: the rows' characters past ASCII are single bytes on the wire.
    let head = format!("GET /echo HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
    stream.write_all(&head.chars().map(|c| c as u8).collect::<Vec<u8>>()).unwrap();
    let mut buf = Vec::new();
    while !buf.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        assert_eq!(stream.read(&mut byte).expect("reads"), 1, "the head ended early");
        buf.push(byte[0]);
    }
    let mut slots = [httparse::EMPTY_HEADER; 16];
    let mut res = httparse::Response::new(&mut slots);
    assert!(res.parse(&buf).expect("a valid response").is_complete());
    let fields = (res.headers.iter())
        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    (stream, res.code.unwrap(), fields)
}

fn upgrade(server: &Server) -> TcpStream {
    let fields = format!(
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: {KEY}\r\n"
    );
    let (stream, status, headers) = handshake(server, &fields);
    assert_eq!(status, 101);
    assert!(headers.contains(&("Sec-WebSocket-Accept".into(), ACCEPT.into())), "{headers:?}");
    stream
}

/// A client frame: `encode` writes it as a server would, then it is masked.
fn send(stream: &mut TcpStream, encode: impl FnOnce(&mut Vec<u8>)) {
    let mut frame = Vec::new();
    encode(&mut frame);
    stream.write_all(&mask_frame(&frame, [1, 2, 3, 4])).unwrap();
}

/// Reads one server frame: its first byte (FIN, opcode) and payload.
fn receive(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).expect("a frame");
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).unwrap();
            u64::from(u16::from_be_bytes(n))
        }
        127 => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n).unwrap();
            u64::from_be_bytes(n)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).unwrap();
    (head[0], payload)
}

/// After the server's close frame, the server closes the connection.
fn assert_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("the server closes");
    assert!(rest.is_empty(), "nothing after the close frame: {rest:?}");
}

#[test]
fn echoes_answers_pings_and_closes() {
    let server = start();
    let mut ws = upgrade(&server);
    send(&mut ws, |o| websocket::encode_text(o, "héllo"));
    assert_eq!(receive(&mut ws), (0x81, "héllo".as_bytes().to_vec()));
    let big = vec![7u8; 100_000];
    send(&mut ws, |o| websocket::encode_binary(o, &big));
    assert_eq!(receive(&mut ws), (0x82, big));
    send(&mut ws, |o| websocket::encode_ping(o, b"are you there"));
    assert_eq!(receive(&mut ws), (0x8A, b"are you there".to_vec()));
    // A fragmented text with a ping between its fragments: the pong comes first.
    let mut frames = Vec::new();
    websocket::encode_text(&mut frames, "frag");
    frames[0] = 0x01; // FIN clear
    let mut middle = Vec::new();
    websocket::encode_ping(&mut middle, b"p");
    let mut last = Vec::new();
    websocket::encode_text(&mut last, "ment");
    last[0] = 0x80; // a continuation, FIN set
    for frame in [frames, middle, last] {
        ws.write_all(&mask_frame(&frame, [9, 8, 7, 6])).unwrap();
    }
    assert_eq!(receive(&mut ws), (0x8A, b"p".to_vec()));
    assert_eq!(receive(&mut ws), (0x81, b"fragment".to_vec()));
    send(&mut ws, |o| websocket::encode_close(o, Some(1000), "bye"));
    assert_eq!(receive(&mut ws), (0x88, 1000u16.to_be_bytes().to_vec()));
    assert_closed(&mut ws);
}

#[test]
fn fails_the_connection_with_the_errors_close_code() {
    let server = start();
    // (a client frame, the close code the server answers with)
    let rows: [(Vec<u8>, u16); 3] = [
        (mask_frame(b"\x81\x01\xff", [1, 2, 3, 4]), 1007),
        (b"\x81\x01a".to_vec(), 1002),                 // not masked
        (mask_frame(b"\x83\x00", [1, 2, 3, 4]), 1002), // a reserved opcode
    ];
    for (frame, code) in rows {
        let mut ws = upgrade(&server);
        ws.write_all(&frame).unwrap();
        assert_eq!(receive(&mut ws), (0x88, code.to_be_bytes().to_vec()), "{frame:?}");
        assert_closed(&mut ws);
    }
}

/// gunicorn 27 `-k asgi` on autobahn/asgi_echo.py, from the repository's .venv; None
/// (the comparison is skipped, and says so) where that Python has no gunicorn.
fn start_gunicorn() -> Option<Server> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("../../.venv/bin/python");
    let has = Command::new(&python).args(["-c", "import gunicorn.workers.gasgi"]).status();
    if !has.is_ok_and(|s| s.success()) {
        eprintln!("skipping gunicorn: no gunicorn 27 in {}", python.display());
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(&python)
        .args(["-m", "gunicorn", "-k", "asgi", "-w", "1", "-b", &addr, "--chdir"])
        .arg(root.join("autobahn"))
        .arg("asgi_echo:app")
        .stderr(Stdio::null())
        .spawn()
        .expect("gunicorn starts");
    let server = Server { child, addr };
    let deadline = Instant::now() + DEADLINE;
    while TcpStream::connect(&server.addr).is_err() {
        assert!(Instant::now() < deadline, "gunicorn did not listen on {}", server.addr);
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(server)
}

/// What a client learns from the answer to a handshake.
fn verdict(server: &Server, fields: &str) -> (u16, Option<String>, Option<String>) {
    let (_, status, headers) = handshake(server, fields);
    let get = |name: &str| {
        headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    };
    (status, get("Sec-WebSocket-Version"), get("Sec-WebSocket-Accept"))
}

#[test]
fn refuses_as_gunicorn_does() {
    let server = start();
    let up = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    let v13 = "Sec-WebSocket-Version: 13\r\n";
    // (fields, the status ws_echo answers)
    let rows = [
        (format!("{up}{v13}Sec-WebSocket-Key: {KEY}\r\n"), 101),
        (format!("{up}Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: {KEY}\r\n"), 426),
        (format!("{up}Sec-WebSocket-Key: {KEY}\r\n"), 426),
        (format!("{up}{v13}Sec-WebSocket-Key: short\r\n"), 400),
        (format!("{up}{v13}"), 400),
        (format!("{up}{v13}Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAB==\r\n"), 101),
        (format!("{up}{v13}Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=\r\n"), 400),
        // Python's strip(): NBSP is whitespace.
        (format!("{up}Sec-WebSocket-Version: 13\u{a0}\r\nSec-WebSocket-Key: {KEY}\r\n"), 101),
        (format!("Upgrade: WebSocket\r\nConnection: keep-alive, upgrade\r\n{v13}Sec-WebSocket-Key: {KEY}\r\n"), 101),
    ];
    for (fields, want) in &rows {
        let (mut stream, status, headers) = handshake(&server, fields);
        assert_eq!(status, *want, "{fields:?}");
        let version = ("Sec-WebSocket-Version".to_owned(), "13".to_owned());
        assert_eq!(headers.contains(&version), *want == 426, "{headers:?}");
        if status != 101 {
            assert_closed(&mut stream);
        }
    }
    // The same requests get the same answers from gunicorn 27 (its refusals add a body).
    let Some(gunicorn) = start_gunicorn() else { return };
    for (fields, _) in &rows {
        assert_eq!(verdict(&server, fields), verdict(&gunicorn, fields), "{fields:?}");
    }
}
