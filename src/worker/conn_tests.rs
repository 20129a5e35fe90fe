//! The connection state machine over an in-memory transport, in the hyper style: the
//! client's bytes arrive in the pieces a test chooses, writes take a few bytes at a time
//! with `WouldBlock` in between, and the test plays the event loop (readiness edges) and,
//! for offloaded requests, the app thread.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use super::*;
use crate::worker::transport::Want;

/// What the in-memory client and the connection share.
#[derive(Default)]
struct Wire {
    /// What the client sends, one piece per read at most (a piece longer than the read's
    /// buffer is split).
    incoming: VecDeque<Vec<u8>>,
    /// The client half-closed after `incoming`: once it is empty, reads return 0.
    fin: bool,
    /// Everything the connection wrote.
    written: Vec<u8>,
    /// Bytes one write may take; 0: no limit.
    per_write: usize,
    /// A write took bytes with `per_write` set: the transport is full (writes fail with
    /// `WouldBlock`) until the client takes them, which [`settle`] does before it
    /// reports a writable edge.
    full: bool,
    /// The connection half-closed its side.
    shut: bool,
}

/// The in-memory transport: one [`Wire`] behind a lock, and a condition variable for
/// the waits of `wsgi.input` on a thread.
#[derive(Default, Clone)]
struct Mock(Arc<(Mutex<Wire>, Condvar)>);

impl Mock {
    fn wire(&self) -> std::sync::MutexGuard<'_, Wire> {
        self.0 .0.lock().unwrap()
    }

    /// The client sends `bytes` (as one piece).
    fn send(&self, bytes: &[u8]) {
        self.wire().incoming.push_back(bytes.to_vec());
        self.0 .1.notify_all();
    }

    /// The client half-closes.
    fn close(&self) {
        self.wire().fin = true;
        self.0 .1.notify_all();
    }

    fn written(&self) -> Vec<u8> {
        self.wire().written.clone()
    }

    /// How far the exchange got: what a drive that changed nothing leaves as it was.
    fn progress(&self) -> (usize, usize, bool) {
        let wire = self.wire();
        (wire.written.len(), wire.incoming.iter().map(Vec::len).sum(), wire.shut)
    }
}

impl Transport for Mock {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut wire = self.wire();
        let fin = wire.fin;
        crate::worker::transport::read_pieces(&mut wire.incoming, fin, buf)
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut wire = self.wire();
        if wire.shut {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if wire.full {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = match wire.per_write {
            0 => buf.len(),
            limit => buf.len().min(limit),
        };
        wire.written.extend_from_slice(&buf[..n]);
        wire.full = wire.per_write > 0;
        Ok(n)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.wire().shut = true;
        Ok(())
    }

    fn fd(&self) -> std::os::fd::RawFd {
        -1
    }

    fn wait(&self, want: Want, timeout: Duration) -> io::Result<()> {
        let (lock, ready) = &*self.0;
        let wire = lock.lock().unwrap();
        if want == Want::Write {
            return Ok(());
        }
        let (_wire, waited) =
            ready.wait_timeout_while(wire, timeout, |w| w.incoming.is_empty() && !w.fin).unwrap();
        match waited.timed_out() {
            true => Err(io::ErrorKind::TimedOut.into()),
            false => Ok(()),
        }
    }
}

/// The app every test runs: it reads the whole body and answers what it saw.
const APP: &std::ffi::CStr = c"
def app(environ, start_response):
    path = environ['PATH_INFO']
    if path == '/raise':
        raise RuntimeError('boom before headers')
    if path == '/big':
        parts = [b'a' * 50000, b'b' * 60000, b'tail']
        size = str(sum(map(len, parts)))
        start_response('200 OK', [('Content-Length', size)])
        return parts
    if path == '/file':
        import tempfile
        f = tempfile.TemporaryFile()
        f.write(bytes(range(256)) * 400)
        f.seek(10)
        start_response('200 OK', [('Content-Length', str(256 * 400 - 10))])
        return environ['wsgi.file_wrapper'](f)
    if path == '/write':
        write = start_response('200 OK', [('Content-Length', '10')])
        write(b'hello')
        return [b'world']
    if path == '/ignore-body':
        start_response('200 OK', [('Content-Length', '2')])
        return [b'ok']
    body = environ['wsgi.input'].read()
    answer = ('%s %s %d %d' % (environ['REQUEST_METHOD'], path, len(body), sum(body))).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(answer)))])
    return [answer]
";

fn shared(py: Python<'_>, threaded: bool) -> Arc<Shared> {
    shared_with(py, threaded, 0, wsgi::spool::MEMORY_BUDGET)
}

/// `shared` with a `--limit-request-body` and a memory budget for bodies.
fn shared_with(py: Python<'_>, threaded: bool, body_limit: u64, budget: usize) -> Arc<Shared> {
    let module = PyModule::from_code(py, APP, c"conn_tests_app.py", c"conn_tests_app").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    Arc::new(Shared {
        app: module.getattr("app").unwrap().unbind(),
        globals: wsgi::Globals::new(py, false, threaded, Default::default()).unwrap(),
        servers: vec![("127.0.0.1".into(), "8000".into())],
        threaded,
        keepalive: Duration::from_secs(2),
        limits: http::Limits::default(),
        protocol: crate::config::Protocol::Http,
        read_timeout: Duration::from_secs(10),
        stopping: Arc::clone(&stop),
        recycler: super::super::Recycler { left: None, stop },
        spooler: wsgi::Spooler::new(budget, BODY_BUFFER, None),
        body_limit,
        http2: None,
    })
}

fn new_conn(mock: &Mock) -> Conn<Mock> {
    let peer = Peer::new("127.0.0.1", "40000");
    Conn::new(mock.clone(), peer, 0, Instant::now(), Duration::from_secs(2))
}

/// Plays the event loop: drives, then reports the edges an epoll would (readable while
/// the client has bytes or its FIN, writable always), until a drive changes nothing.
fn settle(py: Python<'_>, conn: &mut Conn<Mock>, shared: &Shared, mock: &Mock) -> Next {
    let mut scratch = vec![0u8; 4096];
    for _ in 0..100_000 {
        let before = mock.progress();
        match conn.drive(py, shared, &mut scratch, Instant::now()) {
            Next::Wait => {}
            other => return other,
        }
        let (readable, fin, full) = {
            let mut wire = mock.wire();
            // The client takes what was sent: the transport has room again.
            (!wire.incoming.is_empty() || wire.fin, wire.fin, std::mem::take(&mut wire.full))
        };
        if mock.progress() == before && !readable && !full {
            return Next::Wait;
        }
        conn.ready(readable, true, fin);
    }
    panic!("the connection never settled");
}

/// Runs an offloaded request as a pool thread does, while `client` plays the client on
/// this thread (the GIL released).
fn on_thread(
    py: Python<'_>,
    conn: Conn<Mock>,
    shared: &Arc<Shared>,
    next: Next,
    client: impl FnOnce() + Send,
) -> Option<Conn<Mock>> {
    let Next::Offload(request) = next else { panic!("the request was not offloaded") };
    let shared = Arc::clone(shared);
    py.detach(|| {
        let thread =
            std::thread::spawn(move || Python::attach(|py| conn.run(py, &shared, request)));
        client();
        thread.join().unwrap()
    })
}

/// One response: status code, head, body (framed by Content-Length).
struct Answer {
    /// The status code.
    status: u16,
    /// The status line and headers, for `Connection: close`.
    head: String,
    /// The body, as long as its Content-Length.
    body: Vec<u8>,
}

/// Splits what was written into responses (every test response has a Content-Length).
fn answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
        let status = head[9..12].parse().unwrap();
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned)
            })
            .map_or(0, |v| v.parse().unwrap());
        let body = bytes[end + 4..end + 4 + length].to_vec();
        bytes = &bytes[end + 4 + length..];
        out.push(Answer { status, head, body });
    }
    assert!(bytes.is_empty(), "a partial response was left: {:?}", String::from_utf8_lossy(bytes));
    out
}

fn bodies(answers: &[Answer]) -> Vec<String> {
    answers.iter().map(|a| String::from_utf8_lossy(&a.body).into_owned()).collect()
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared(py, false));
        let mut conn = new_conn(&mock);
        mock.send(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /thr");
        mock.send(b"ee HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Wait));
        let got = answers(&mock.written());
        assert_eq!(bodies(&got), ["GET /one 0 0", "POST /two 3 294", "GET /three 0 0"]);
        assert!(got.iter().all(|a| a.status == 200 && !a.head.contains("Connection: close")));
        assert!(conn.is_idle_keep_alive(), "kept for the next request");
        assert!(!mock.wire().shut);
    });
}

#[test]
fn keep_alive_serves_a_later_request_on_the_same_connection() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared(py, false));
        let mut conn = new_conn(&mock);
        assert!(!conn.served());
        mock.send(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Wait));
        assert!(conn.is_idle_keep_alive());
        assert!(conn.deadline() <= Instant::now() + Duration::from_secs(2), "--keep-alive");
        mock.send(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Wait));
        assert_eq!(bodies(&answers(&mock.written())), ["GET /first 0 0", "GET /second 0 0"]);
        // HTTP/1.0 without keep-alive: answered, then closed.
        mock.send(b"GET /last HTTP/1.0\r\n\r\n");
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Wait));
        let got = answers(&mock.written());
        assert_eq!(got.len(), 3);
        assert!(got[2].head.contains("Connection: close"), "{}", got[2].head);
        assert!(mock.wire().shut, "half-closed after the last response");
    });
}

/// RFC 9112 §9.6: the client's FIN after its requests ends the requests, not the
/// responses owed for them.
#[test]
fn half_close_after_requests_still_gets_every_response() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared(py, false));
        mock.wire().per_write = 5;
        let mut conn = new_conn(&mock);
        mock.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        mock.close();
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Close));
        assert_eq!(bodies(&answers(&mock.written())), ["GET /a 0 0", "GET /b 0 0"]);
        assert!(mock.wire().shut, "our side closed after the responses");
    });
}

#[test]
fn partial_writes_deliver_every_byte_in_order() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared(py, false));
        mock.wire().per_write = 7;
        let mut conn = new_conn(&mock);
        mock.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Wait));
        let got = answers(&mock.written());
        let mut big = vec![b'a'; 50000];
        big.extend_from_slice(&[b'b'; 60000]);
        big.extend_from_slice(b"tail");
        assert_eq!(got.len(), 2);
        assert!(got[0].body == big, "the big body arrived whole and in order");
        assert_eq!(bodies(&got[1..]), ["GET /after 0 0"]);
    });
}

#[test]
fn a_malformed_request_gets_400_and_the_connection_closes() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared(py, false));
        let mut conn = new_conn(&mock);
        mock.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /\x01bad HTTP/1.1\r\n\r\nGET /never HTTP/1.1\r\n\r\n");
        mock.close();
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Close));
        let got = answers(&mock.written());
        assert_eq!(got.iter().map(|a| a.status).collect::<Vec<_>>(), [200, 400]);
        assert!(got[1].head.contains("Connection: close"));
        assert!(mock.wire().shut);
    });
}

/// The sync and async workers answer a request the app fails before its headers the
/// same way: a 500 page, then close.
#[test]
fn an_app_error_before_headers_gets_500_and_the_connection_closes() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared(py, false));
        let mut conn = new_conn(&mock);
        mock.send(b"GET /raise HTTP/1.1\r\nHost: x\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n");
        settle(py, &mut conn, &shared, &mock);
        let got = answers(&mock.written());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].status, 500);
        assert!(got[0].head.contains("Connection: close"));
        assert!(String::from_utf8_lossy(&got[0].body).contains("Internal Server Error"));
        assert!(mock.wire().shut);
    });
}

/// A body too big to buffer goes to a thread with the connection, and streams there
/// while the client sends it; the connection comes back for the next request.
#[test]
fn a_body_too_big_to_buffer_streams_to_a_thread() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared(py, false));
        let mut conn = new_conn(&mock);
        let size = BODY_BUFFER + 100_000;
        let head = format!("PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
        mock.send(head.as_bytes());
        mock.send(&vec![1u8; 1000]);
        let next = settle(py, &mut conn, &shared, &mock);
        let client = || {
            for _ in 0..(size - 1000) / 50_000 {
                mock.send(&vec![1u8; 50_000]);
            }
            mock.send(&vec![1u8; (size - 1000) % 50_000]);
            mock.send(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        };
        let mut conn = on_thread(py, conn, &shared, next, client).expect("handed back");
        conn.ready(true, true, false);
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Wait));
        let expected = format!("PUT /up {size} {size}");
        assert_eq!(bodies(&answers(&mock.written())), [expected.as_str(), "GET /next 0 0"]);
    });
}

/// `Expect: 100-continue`: the interim response goes out when the app reads, not
/// before; an app that never reads gets no `100` sent and the connection closes (the
/// unread body would be taken for the next request).
#[test]
fn expect_continue_is_answered_when_the_app_reads() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared(py, false));
        let mut conn = new_conn(&mock);
        let head =
            "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n";
        mock.send(head.as_bytes());
        let next = settle(py, &mut conn, &shared, &mock);
        assert!(mock.written().is_empty(), "nothing before the app reads");
        let client = || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !mock.written().starts_with(b"HTTP/1.1 100 Continue\r\n\r\n") {
                assert!(Instant::now() < deadline, "no 100 Continue");
                std::thread::yield_now();
            }
            mock.send(b"\x01\x02\x03\x04");
        };
        let mut conn = on_thread(py, conn, &shared, next, client).expect("handed back");
        conn.ready(true, true, false);
        settle(py, &mut conn, &shared, &mock);
        let written = mock.written();
        let got = answers(&written[b"HTTP/1.1 100 Continue\r\n\r\n".len()..]);
        assert_eq!(bodies(&got), ["POST /form 4 10"]);
        assert!(!got[0].head.contains("Connection: close"), "the body was read whole");

        let mock = Mock::default();
        let mut conn = new_conn(&mock);
        let head = "POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n";
        mock.send(head.as_bytes());
        let next = settle(py, &mut conn, &shared, &mock);
        let mut conn = on_thread(py, conn, &shared, next, || {}).expect("handed back");
        conn.ready(true, true, false);
        settle(py, &mut conn, &shared, &mock);
        let got = answers(&mock.written());
        assert_eq!(got.len(), 1, "no 100 Continue for a body never read");
        assert!(got[0].head.contains("Connection: close"), "{}", got[0].head);
        assert!(mock.wire().shut);
    });
}

/// `--threads`: every request runs on a thread, its body buffered first; pipelined
/// requests behind it wait in the connection's buffer for the loop.
#[test]
fn with_threads_each_request_runs_on_a_thread_and_comes_back() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared(py, true));
        let mut conn = new_conn(&mock);
        mock.send(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n\x05\x06GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        for _ in 0..2 {
            let next = settle(py, &mut conn, &shared, &mock);
            conn = on_thread(py, conn, &shared, next, || {}).expect("handed back");
            conn.ready(true, true, false);
        }
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Wait));
        assert_eq!(bodies(&answers(&mock.written())), ["POST /a 2 11", "GET /b 0 0"]);
    });
}

/// `wsgi.file_wrapper` over a transport with no `sendfile`: the default `send_file`
/// reads the file and writes it, through partial writes, from the file's position.
#[test]
fn a_file_goes_out_through_the_read_and_write_fallback() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared(py, false));
        mock.wire().per_write = 1000;
        let mut conn = new_conn(&mock);
        mock.send(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Wait));
        let got = answers(&mock.written());
        let file: Vec<u8> = (0..400).flat_map(|_| 0..=255u8).collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].body == file[10..], "the file from its position, whole");
        assert_eq!(bodies(&got[1..]), ["GET /after 0 0"]);
    });
}

/// `write()` sends through the connection's transport (its stream holds it weakly),
/// ahead of the iterable's bytes.
#[test]
fn write_sends_through_the_transport_before_the_iterable() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared(py, false));
        let mut conn = new_conn(&mock);
        mock.send(b"GET /write HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Wait));
        assert_eq!(bodies(&answers(&mock.written())), ["helloworld"]);
        assert!(conn.is_idle_keep_alive());
    });
}

#[test]
fn body_over_the_limit_gets_413_before_the_app_and_a_close() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared_with(py, false, 10, 1 << 20));
        let mut conn = new_conn(&mock);
        mock.send(b"POST /at HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
        mock.send(b"POST /over HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890");
        settle(py, &mut conn, &shared, &mock);
        let got = answers(&mock.written());
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].status, bodies(&got)[0].as_str()), (200, "POST /at 10 525"));
        assert_eq!(got[1].status, 413, "{}", got[1].head);
        assert!(got[1].head.contains("Connection: close"), "{}", got[1].head);
        assert!(!bodies(&got)[1].contains("POST /over"), "the app was not called");
    });
}

/// A body the worker's memory budget cannot hold goes to an unlinked file as it arrives,
/// a few bytes at a time, and the app reads it back whole.
#[test]
fn body_past_the_memory_budget_spills_to_a_file_and_reads_back() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared_with(py, false, 0, 0));
        let mut conn = new_conn(&mock);
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
        mock.send(b"POST /spilled HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
        for piece in body.chunks(7_001) {
            mock.send(piece);
            settle(py, &mut conn, &shared, &mock);
        }
        settle(py, &mut conn, &shared, &mock);
        assert_eq!(bodies(&answers(&mock.written())), [format!("POST /spilled 100000 {sum}")]);
        assert!(shared.spooler.spilled() >= 1, "the body went to a file");
        assert!(conn.is_idle_keep_alive());
    });
}

/// What followed a PROXY header starts the first request: served without a read.
#[test]
fn bytes_received_before_the_connection_start_its_first_request() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared(py, false));
        let received = BytesMut::from(&b"GET /early HTTP/1.1\r\nHost: x\r\n\r\nGET /la"[..]);
        let mut conn = new_conn(&mock).with_received(received);
        mock.send(b"ter HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Wait));
        assert_eq!(bodies(&answers(&mock.written())), ["GET /early 0 0", "GET /later 0 0"]);
    });
}

/// A PROXY header refused: its error page, the half-close, nothing of the request served.
#[test]
fn a_refused_connection_gets_its_page_and_closes() {
    Python::initialize();
    Python::attach(|py| {
        let (mock, shared) = (Mock::default(), shared(py, false));
        let mut conn = new_conn(&mock).refused(403);
        mock.send(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
        mock.close();
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Close));
        let got = answers(&mock.written());
        assert_eq!(got.iter().map(|a| a.status).collect::<Vec<_>>(), [403]);
        assert!(got[0].head.contains("Connection: close"), "{}", got[0].head);
        assert!(mock.wire().shut);
    });
}

/// `shared` with `--protocol uwsgi --uwsgi-allow-from allow`.
fn uwsgi_shared(py: Python<'_>, allow: &str) -> Arc<Shared> {
    let mut shared = shared(py, false);
    let allow = crate::forwarded::AllowList::parse("--uwsgi-allow-from", allow).unwrap();
    Arc::get_mut(&mut shared).unwrap().protocol = crate::config::Protocol::Uwsgi(allow);
    shared
}

/// `--protocol uwsgi`: packets arriving 5 bytes at a time, each with its body, answered in
/// order on one connection; a peer outside `--uwsgi-allow-from` gets 403 and a close.
#[test]
fn uwsgi_packets_in_pieces_and_a_peer_not_allowed() {
    Python::initialize();
    Python::attach(|py| {
        let post = http::uwsgi::encode(&[
            (b"REQUEST_METHOD", b"POST"),
            (b"PATH_INFO", b"/up"),
            (b"CONTENT_LENGTH", b"3"),
        ]);
        let get = http::uwsgi::encode(&[(b"PATH_INFO", b"/next")]);
        let (mock, shared) = (Mock::default(), uwsgi_shared(py, "127.0.0.1"));
        let mut conn = new_conn(&mock);
        for piece in [&post[..], b"abc", &get[..]].concat().chunks(5) {
            mock.send(piece);
        }
        assert!(matches!(settle(py, &mut conn, &shared, &mock), Next::Wait));
        assert_eq!(bodies(&answers(&mock.written())), ["POST /up 3 294", "GET /next 0 0"]);

        let (mock, shared) = (Mock::default(), uwsgi_shared(py, "10.0.0.1"));
        let mut conn = new_conn(&mock);
        mock.send(&get);
        let _ = settle(py, &mut conn, &shared, &mock);
        let got = answers(&mock.written());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].status, 403);
        assert!(got[0].head.contains("Connection: close"), "{}", got[0].head);
    });
}
