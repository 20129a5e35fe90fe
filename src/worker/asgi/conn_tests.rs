//! The ASGI connection over an in-memory transport: the test plays the loop (edges) and
//! the app (start, body, pull), and reads what the client got.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::RawFd;

use super::*;

/// The client's side of the in-memory transport.
#[derive(Default)]
struct Wire {
    /// What the client sends, one piece per read.
    incoming: VecDeque<Vec<u8>>,
    /// The client half-closed after `incoming`.
    fin: bool,
    /// What the connection wrote.
    written: Vec<u8>,
    /// Bytes the transport takes before it is full; `None`: no limit.
    room: Option<usize>,
}

/// The in-memory transport.
#[derive(Default)]
struct Mock(std::sync::Mutex<RefCell<Wire>>);

impl Transport for Mock {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let guard = self.0.lock().unwrap();
        let mut wire = guard.borrow_mut();
        let fin = wire.fin;
        crate::worker::transport::read_pieces(&mut wire.incoming, fin, buf)
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let guard = self.0.lock().unwrap();
        let mut wire = guard.borrow_mut();
        let n = wire.room.map_or(buf.len(), |room| room.min(buf.len()));
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if let Some(room) = &mut wire.room {
            *room -= n;
        }
        wire.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        Ok(())
    }

    fn fd(&self) -> RawFd {
        -1
    }
}

fn settings() -> Settings {
    Settings {
        limits: http::Limits::default(),
        protocol: crate::config::Protocol::Http,
        forwarded: crate::forwarded::Policy::default(),
        keepalive: Duration::from_secs(2),
        read_timeout: Duration::from_secs(3),
        websocket_max: 1 << 20,

        proxy: Default::default(),
        http2: None,
    }
}

/// A connection, a clock, and the notes so far.
struct Rig {
    conn: Conn<Mock>,
    settings: Settings,
    scratch: Vec<u8>,
    now: Instant,
    notes: Vec<Note>,
}

impl Rig {
    fn new() -> Rig {
        let now = Instant::now();
        let peer = Peer::new("127.0.0.1", "5000");
        let conn = Conn::new(Mock::default(), peer, 0, now, Duration::from_secs(2));
        Rig { conn, settings: settings(), scratch: vec![0; 8], now, notes: Vec::new() }
    }

    fn wire<R>(&self, f: impl FnOnce(&mut Wire) -> R) -> R {
        let guard = self.conn.transport.0.lock().unwrap();
        let mut wire = guard.borrow_mut();
        f(&mut wire)
    }

    /// The client sends `bytes`; the loop reports the edge and drives.
    fn send(&mut self, bytes: &[u8]) {
        self.wire(|w| w.incoming.push_back(bytes.to_vec()));
        self.edge();
    }

    fn edge(&mut self) {
        self.conn.ready(true, true, false);
        self.conn.drive(&self.settings, &mut self.scratch, self.now, &mut self.notes);
    }

    fn written(&self) -> String {
        self.wire(|w| String::from_utf8_lossy(&w.written).into_owned())
    }

    /// The notes since the last call.
    fn take(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }

    fn respond(&mut self, headers: &[(&str, &str)], body: &[u8], more: bool) -> bool {
        let headers: Vec<(Bytes, Bytes)> = headers
            .iter()
            .map(|(n, v)| {
                (Bytes::copy_from_slice(n.as_bytes()), Bytes::copy_from_slice(v.as_bytes()))
            })
            .collect();
        self.conn.start(200, &headers, true).unwrap();
        self.conn.body(body, more, self.now, &mut self.notes).unwrap()
    }
}

fn request(note: &Note) -> &Arrived {
    match note {
        Note::Request(arrived) => arrived,
        other => panic!("expected a request, got {other:?}"),
    }
}

#[test]
fn a_head_in_pieces_is_one_request_with_its_body() {
    let mut rig = Rig::new();
    for piece in [&b"POST /up HTTP/1.1\r\nHo"[..], b"st: x\r\nContent-Length: 5\r\n\r\nhel", b"lo"]
    {
        rig.send(piece);
    }
    let notes = rig.take();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let arrived = request(&notes[0]);
    assert_eq!(arrived.head.target(), "/up");
    // The first read may end before the body's end: what is here, then a pull.
    let mut body = arrived.body.to_vec();
    if arrived.more {
        rig.conn.pull(rig.now, Duration::from_secs(3));
        rig.edge();
        for note in rig.take() {
            if let Note::Body(data, _) = note {
                body.extend_from_slice(&data);
            }
        }
    }
    assert_eq!(body, b"hello");
}

#[test]
fn fixed_length_response_then_keep_alive_and_a_pipelined_request() {
    let mut rig = Rig::new();
    rig.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    let notes = rig.take();
    assert_eq!(notes.len(), 1, "the second waits for the first's response");
    rig.respond(&[("content-length", "2")], b"ok", false);
    rig.edge();
    let notes = rig.take();
    assert_eq!(request(&notes[0]).head.target(), "/b");
    let out = rig.written();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(
        out.contains("content-length: 2\r\n") && out.contains("Connection: keep-alive"),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\nok"), "{out}");
}

#[test]
fn unknown_length_is_chunked_and_ends_with_the_last_chunk() {
    let mut rig = Rig::new();
    rig.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    rig.take();
    rig.respond(&[], b"hello", true);
    rig.conn.body(b"", true, rig.now, &mut rig.notes).unwrap();
    rig.conn.body(b"!", false, rig.now, &mut rig.notes).unwrap();
    let out = rig.written();
    assert!(out.contains("Transfer-Encoding: chunked"), "{out}");
    assert!(out.ends_with("\r\n\r\n5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"), "{out}");
}

#[test]
fn http_1_0_without_length_closes_to_end_the_body() {
    let mut rig = Rig::new();
    rig.send(b"GET / HTTP/1.0\r\n\r\n");
    rig.take();
    rig.respond(&[], b"abc", false);
    let out = rig.written();
    assert!(out.contains("Connection: close") && out.ends_with("\r\n\r\nabc"), "{out}");
    assert!(!out.contains("chunked"), "{out}");
}

#[test]
fn the_body_is_read_only_as_far_as_the_app_takes_it() {
    let mut rig = Rig::new();
    rig.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
    let big = vec![b'x'; 200 * 1024];
    rig.wire(|w| w.incoming.push_back(big.clone()));
    rig.edge();
    let held = rig.conn.rbuf.len();
    assert!(held <= READ_AHEAD + rig.scratch.len(), "{held} bytes held");
    assert!(rig.wire(|w| !w.incoming.is_empty()), "the rest stays in the socket");
}

#[test]
fn a_client_gone_mid_request_is_told_once() {
    let mut rig = Rig::new();
    rig.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    rig.take();
    rig.wire(|w| w.fin = true);
    rig.edge();
    rig.edge();
    let gone = rig.take().iter().filter(|n| matches!(n, Note::Disconnect)).count();
    assert_eq!(gone, 1);
}

#[test]
fn regression_a_request_then_the_clients_fin_left_the_connection_open_for_ever() {
    let mut rig = Rig::new();
    rig.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    rig.wire(|w| w.fin = true);
    rig.edge();
    let notes = rig.take();
    assert!(matches!(&notes[..], [Note::Request(_), Note::Disconnect]), "{notes:?}");
    assert!(!rig.conn.is_serving(), "the app's late messages go nowhere");
    assert!(rig.conn.deadline() <= rig.now + CLOSE_TIMEOUT, "a deadline, not NEVER");
    rig.edge();
    assert!(rig.conn.is_done(), "closed once the client's FIN is seen");
}

#[test]
fn an_app_failure_before_the_start_is_a_500_and_a_close() {
    let mut rig = Rig::new();
    rig.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    rig.take();
    rig.conn.fail(rig.now, &mut rig.notes);
    let out = rig.written();
    assert!(out.starts_with("HTTP/1.1 500 Internal Server Error\r\n"), "{out}");
    assert!(matches!(rig.conn.phase, Phase::Linger | Phase::Done));
}

#[test]
fn a_bad_header_from_the_app_is_refused() {
    let mut rig = Rig::new();
    rig.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    rig.take();
    let bad = [(Bytes::from_static(b"x"), Bytes::from_static(b"a\r\nb"))];
    assert!(rig.conn.start(200, &bad, true).is_err());
}

#[test]
fn a_malformed_head_gets_400() {
    let mut rig = Rig::new();
    rig.send(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n");
    assert!(rig.take().is_empty());
    assert!(rig.written().starts_with("HTTP/1.1 400 "), "{}", rig.written());
}

#[test]
fn a_full_socket_throttles_send_until_drained() {
    let mut rig = Rig::new();
    rig.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    rig.take();
    rig.wire(|w| w.room = Some(1000));
    let full = rig.respond(&[], &vec![b'x'; 2 * HIGH_WATER], true);
    assert!(full, "past the high water mark");
    rig.wire(|w| w.room = None);
    rig.edge();
    assert!(rig.take().iter().any(|n| matches!(n, Note::Drained)));
}

#[test]
fn expect_continue_is_answered_when_the_app_asks_for_the_body() {
    let mut rig = Rig::new();
    rig.send(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    assert!(request(&rig.take()[0]).more);
    assert_eq!(rig.written(), "");
    rig.conn.pull(rig.now, Duration::from_secs(3));
    rig.edge();
    assert_eq!(rig.written(), "HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn a_client_stalling_a_body_the_app_awaits_meets_the_read_timeout() {
    let mut rig = Rig::new();
    rig.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    assert!(rig.conn.deadline() > rig.now + Duration::from_secs(3600), "no deadline on the app");
    rig.take();
    rig.conn.pull(rig.now, Duration::from_secs(3));
    assert_eq!(rig.conn.deadline(), rig.now + Duration::from_secs(3));
    rig.send(b"defghij");
    assert!(rig.take().iter().any(|n| matches!(n, Note::Body(_, false))));
    assert!(rig.conn.deadline() > rig.now + Duration::from_secs(3600), "the body came");
}

// --- the WebSocket phase -------------------------------------------------------------------

const UPGRADE: &[u8] =
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Protocol: chat, super\r\n\r\n";

/// A client frame (RFC 6455 §5.2), masked with a fixed key; payloads under 64 KiB.
fn client_frame(opcode: u8, payload: &[u8], fin: bool) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// The server frames in `bytes` as (opcode, payload); server frames are never masked.
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        assert_eq!(bytes[1] & 0x80, 0, "a server frame is not masked");
        let (len, at) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize, 10),
            n => (n as usize, 2),
        };
        frames.push((bytes[0] & 0x0f, bytes[at..at + len].to_vec()));
        bytes = &bytes[at + len..];
    }
    frames
}

impl Rig {
    /// An upgrade, accepted: the frames written from here on.
    fn accepted(max: usize) -> Rig {
        let mut rig = Rig::new();
        rig.send(UPGRADE);
        let notes = rig.take();
        assert_eq!(
            request(&notes[0]).subprotocols.as_deref(),
            Some(&["chat".into(), "super".into()][..])
        );
        rig.conn.ws_accept(Some("super"), &[], max, rig.now, &mut rig.notes).unwrap();
        let head = rig.written();
        assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "RFC 6455's own example: {head}");
        rig.wire(|w| w.written.clear());
        rig
    }

    fn frames(&self) -> Vec<(u8, Vec<u8>)> {
        self.wire(|w| server_frames(&w.written))
    }
}

#[test]
fn an_accepted_websocket_delivers_messages_and_answers_pings_itself() {
    let mut rig = Rig::accepted(1 << 20);
    let mut bytes = client_frame(1, b"hel", false);
    bytes.extend(client_frame(9, b"ping", true));
    bytes.extend(client_frame(0, b"lo", true));
    bytes.extend(client_frame(2, &[0, 1, 2], true));
    rig.send(&bytes);
    let notes = rig.take();
    let messages: Vec<_> = notes.iter().filter(|n| matches!(n, Note::Message(_))).collect();
    assert_eq!(messages.len(), 2, "{notes:?}");
    assert!(matches!(&notes[0], Note::Message(Message::Text(t)) if t == "hello"), "{notes:?}");
    assert!(matches!(&notes[1], Note::Message(Message::Binary(b)) if b[..] == [0, 1, 2]));
    assert_eq!(rig.frames(), vec![(10, b"ping".to_vec())], "the pong, not the app's");
    rig.conn.ws_send("hi".as_bytes(), true, rig.now, &mut rig.notes).unwrap();
    assert_eq!(rig.frames().last(), Some(&(1, b"hi".to_vec())));
}

#[test]
fn a_websocket_client_close_is_echoed_and_told_to_the_app() {
    let mut rig = Rig::accepted(1 << 20);
    let mut payload = 4000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    rig.send(&client_frame(8, &payload, true));
    let notes = rig.take();
    let told = matches!(&notes[..], [Note::Closed { code: 4000, reason, reply_due: false }] if reason == "bye");
    assert!(told, "{notes:?}");
    assert_eq!(rig.frames(), vec![(8, 4000u16.to_be_bytes().to_vec())]);
    assert!(!rig.conn.is_serving(), "the server closes the TCP connection");
}

#[test]
fn a_websocket_app_close_waits_for_the_clients_answer() {
    let mut rig = Rig::accepted(1 << 20);
    rig.conn.ws_close(4001, "done", rig.now, &mut rig.notes);
    let mut want = 4001u16.to_be_bytes().to_vec();
    want.extend_from_slice(b"done");
    assert_eq!(rig.frames(), vec![(8, want)]);
    assert!(rig.conn.is_serving(), "open until the client answers");
    rig.conn.ws_send(b"late", false, rig.now, &mut rig.notes).unwrap();
    assert_eq!(rig.frames().len(), 1, "nothing after our close frame");
    rig.send(&client_frame(8, &4001u16.to_be_bytes(), true));
    assert!(rig.take().iter().any(|n| matches!(n, Note::Closed { code: 4001, .. })));
    assert!(!rig.conn.is_serving());
}

#[test]
fn a_websocket_protocol_error_closes_with_its_code_after_the_apps_replies() {
    let rows: &[(&[u8], u16)] = &[
        (&[0x81, 0x02, b'h', b'i'], 1002),             // unmasked
        (&client_frame(1, &[0xff], true), 1007),       // not UTF-8
        (&client_frame(0, b"stray", true), 1002),      // nothing to continue
        (&client_frame(2, &[b'x'; 2000], true), 1009), // over the limit
    ];
    for (bad, code) in rows {
        let mut rig = Rig::accepted(1000);
        let mut bytes = client_frame(1, b"before", true);
        bytes.extend_from_slice(bad);
        rig.send(&bytes);
        let notes = rig.take();
        let failed = matches!(&notes[..], [Note::Message(_), Note::Closed { code: c, reply_due: true, .. }] if c == code);
        assert!(failed, "{code}: {notes:?}");
        assert_eq!(rig.frames(), vec![], "{code}: no close frame before the app heard");
        rig.conn.ws_send(b"before", true, rig.now, &mut rig.notes).unwrap();
        rig.conn.ws_close(*code, "", rig.now, &mut rig.notes);
        let want = vec![(1, b"before".to_vec()), (8, code.to_be_bytes().to_vec())];
        assert_eq!(rig.frames(), want, "{code}: the app's reply, then the close");
        assert!(!rig.conn.is_serving(), "{code}");
    }
}

#[test]
fn a_websocket_lost_without_a_close_is_1006() {
    let mut rig = Rig::accepted(1 << 20);
    rig.wire(|w| w.fin = true);
    rig.edge();
    assert!(matches!(&rig.take()[..], [Note::Closed { code: 1006, reply_due: false, .. }]));
}

#[test]
fn a_paused_websocket_reads_nothing_until_resumed() {
    let mut rig = Rig::accepted(1 << 20);
    rig.conn.ws_flow(true);
    rig.send(&client_frame(1, b"wait", true));
    assert!(rig.take().is_empty());
    rig.conn.ws_flow(false);
    rig.edge();
    assert!(matches!(&rig.take()[..], [Note::Message(Message::Text(t))] if t == "wait"));
}

#[test]
fn a_websocket_refused_by_the_app_is_a_403_and_a_bad_version_a_426() {
    let mut rig = Rig::new();
    rig.send(UPGRADE);
    rig.take();
    rig.conn.fail_with(403, rig.now, &mut rig.notes);
    assert!(rig.written().starts_with("HTTP/1.1 403 "), "{}", rig.written());
    let mut rig = Rig::new();
    let old = String::from_utf8_lossy(UPGRADE).replace("Version: 13", "Version: 8");
    rig.send(old.as_bytes());
    assert!(rig.take().is_empty(), "the app never sees it");
    let out = rig.written();
    assert!(out.starts_with("HTTP/1.1 426 ") && out.contains("Sec-WebSocket-Version: 13"), "{out}");
}

#[test]
fn a_graceful_stop_closes_an_open_websocket_with_1001() {
    let mut rig = Rig::accepted(1 << 20);
    rig.conn.going_away(rig.now, &mut rig.notes);
    assert_eq!(rig.frames(), vec![(8, 1001u16.to_be_bytes().to_vec())]);
}

/// Behind a PROXY header: the bytes after it are the first request's; a refused header
/// gets its page and the close, and never reaches the app.
#[test]
fn a_connection_opened_behind_a_proxy_header() {
    let rows: &[(Option<u16>, &str)] =
        &[(None, ""), (Some(403), "HTTP/1.1 403 Forbidden"), (Some(400), "HTTP/1.1 400 Bad")];
    for &(refused, page) in rows {
        let mut rig = Rig::new();
        let conn = std::mem::replace(
            &mut rig.conn,
            Conn::new(Mock::default(), Peer::new("", ""), 0, rig.now, Duration::ZERO),
        );
        rig.conn = match refused {
            None => {
                conn.with_received(BytesMut::from(&b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n"[..]))
            }
            Some(status) => conn.refused(status, rig.now),
        };
        rig.edge();
        let notes = rig.take();
        match refused {
            None => assert_eq!(request(&notes[0]).head.target(), "/after"),
            Some(_) => {
                assert!(notes.is_empty(), "{notes:?}");
                assert!(rig.written().starts_with(page), "{}", rig.written());
            }
        }
    }
}

/// `--request-timeout`: its page (504) when the response had not started; a response that
/// had is cut (no last chunk), as when the app fails mid-response.
#[test]
fn a_request_past_its_deadline_is_a_504_or_a_cut() {
    for started in [false, true] {
        let mut rig = Rig::new();
        rig.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        rig.take();
        if started {
            rig.respond(&[], b"first", true);
        }
        rig.conn.fail_with(504, rig.now, &mut rig.notes);
        let out = rig.written();
        let page = out.starts_with("HTTP/1.1 504 Gateway Timeout\r\n");
        assert_eq!(page, !started, "{out}");
        assert!(!out.ends_with("0\r\n\r\n"), "{out}");
        assert!(matches!(rig.conn.phase, Phase::Linger | Phase::Done));
    }
}

/// `Upgrade: h2c` with a body that follows the head: `100 Continue` if the client waits
/// for it, then the switch once the whole body is here (the `101` is h2's to write).
#[test]
fn an_h2c_upgrade_waits_for_its_body_then_switches() {
    let mut rig = Rig::new();
    let h2 = crate::worker::h2::Settings {
        initial_window_size: 65_535,
        max_concurrent_streams: 100,
        max_frame_size: 16_384,
        max_header_list_size: 65_536,
        idle: Duration::from_secs(5),
    };
    let policy = crate::worker::h2::Policy {
        settings: h2,
        prior_knowledge: false,
        strict: false,
        upgrade: true,
    };
    rig.settings.http2 = Some(policy);
    rig.send(
        b"POST /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\
          Expect: 100-continue\r\nContent-Length: 5\r\n\r\nab",
    );
    assert!(rig.take().is_empty());
    assert_eq!(rig.written(), "HTTP/1.1 100 Continue\r\n\r\n");
    assert!(matches!(rig.conn.phase, Phase::Upgrading { .. }));
    rig.send(b"cdePRI * HTTP/2.0\r\n");
    assert!(rig.conn.is_http2());
    assert_eq!(rig.written(), "HTTP/1.1 100 Continue\r\n\r\n");
    let (_, (replay, upgraded), _, _) = rig.conn.into_http2();
    // What followed the body is the preface's start, for h2 to read.
    assert_eq!(&replay[..], b"PRI * HTTP/2.0\r\n");
    let upgraded = upgraded.expect("the switch");
    assert_eq!(&upgraded.prelude[..], crate::worker::h2::upgrade::SWITCHING);
    // Stream 1 ends with the body as DATA, END_STREAM set.
    let splice = &upgraded.splice[..];
    let data = &splice[splice.len() - 14..];
    assert_eq!(data, b"\x00\x00\x05\x00\x01\x00\x00\x00\x01abcde");
}
