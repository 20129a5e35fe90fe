//! The master's scrape endpoint: `GET /metrics` on `--metrics-bind`, one request per
//! connection, answered from the master's loop.
//!
//! Nothing here may block or crash the master: the sockets are non-blocking, at most
//! [`MAX_CLIENTS`] are open at once (more wait in the kernel's backlog), a client has
//! [`CLIENT_TIME`] to send its head (at most [`MAX_HEAD`] bytes) and take the answer, and
//! every I/O error just drops the client. The head is parsed by the same HTTP crate the
//! workers use; a bad head gets 400, another path 404, another method 405.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::http;
use crate::listener::AcceptPause;

/// Clients served at once.
pub const MAX_CLIENTS: usize = 16;
/// The longest head read from a scraper.
pub const MAX_HEAD: usize = 8192;
/// How long a scraper has, from accept to the answer's last byte.
pub const CLIENT_TIME: Duration = Duration::from_secs(5);
/// The master's poll timeout while an answer waits to be written.
pub const WRITE_RETRY: Duration = Duration::from_millis(10);

/// One scraper's connection.
struct Client {
    /// The accepted socket, non-blocking.
    stream: TcpStream,
    /// The head so far.
    head: BytesMut,
    /// The answer, once the head is in; `sent` bytes of it are written.
    answer: Option<Vec<u8>>,
    /// How much of `answer` went out.
    sent: usize,
    /// Dropped if not done by then.
    deadline: Instant,
}

/// The listening socket and its clients.
pub struct Server {
    /// Bound to `--metrics-bind`, non-blocking.
    listener: TcpListener,
    /// Open scrapes.
    clients: Vec<Client>,
    /// The listener's rest after an accept error (no descriptor left).
    pause: AcceptPause,
}

/// What a complete request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// `/metrics`; `true`: OpenMetrics (the `Accept` header names it).
    Metrics { openmetrics: bool },
    /// The status to answer instead (400, 404, 405).
    Refuse(u16),
}

impl Server {
    /// Binds `--metrics-bind`.
    pub fn bind(addr: SocketAddr) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Server { listener, clients: Vec::new(), pause: AcceptPause::default() })
    }

    /// Where it listens (the port, when bound to 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The descriptors the master's poll waits on: clients reading, and the listener
    /// while there is room for another client and it is not resting after an accept error
    /// (either would leave it readable for good, and the poll spin).
    pub fn poll_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        let reading = self.clients.iter().filter(|c| c.answer.is_none());
        let room = self.clients.len() < MAX_CLIENTS && !self.pause.resting();
        room.then(|| self.listener.as_raw_fd())
            .into_iter()
            .chain(reading.map(|c| c.stream.as_raw_fd()))
    }

    /// Whether an answer waits for room in its socket (the master then polls briefly).
    pub fn writing(&self) -> bool {
        self.clients.iter().any(|c| c.answer.is_some())
    }

    /// Accepts, reads, answers, as far as the sockets allow now. `body` renders the
    /// metrics for a request that asks for them.
    pub fn serve(&mut self, body: &dyn Fn(bool) -> String) {
        self.accept();
        let now = Instant::now();
        self.clients.retain_mut(|client| now < client.deadline && client.advance(body));
    }

    fn accept(&mut self) {
        let now = Instant::now();
        if self.pause.holds(now) {
            return;
        }
        while self.clients.len() < MAX_CLIENTS {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        stream,
                        head: BytesMut::new(),
                        answer: None,
                        sent: 0,
                        deadline: now + CLIENT_TIME,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // The client that gave up before we took it is gone from the backlog.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => return self.pause.rest(now, "Metrics endpoint", &e),
            }
        }
    }
}

impl Client {
    /// Reads, then writes; `false` once done with (answered, gone or broken).
    fn advance(&mut self, body: &dyn Fn(bool) -> String) -> bool {
        if self.answer.is_none() {
            match self.read() {
                Ok(Some(ask)) => self.answer = Some(answer(ask, body)),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
        self.write().unwrap_or(false)
    }

    /// `Ok(None)`: more of the head is needed.
    fn read(&mut self) -> io::Result<Option<Ask>> {
        let mut chunk = [0u8; 2048];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.head.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            match ask(&mut self.head) {
                Some(ask) => return Ok(Some(ask)),
                None if self.head.len() > MAX_HEAD => return Ok(Some(Ask::Refuse(400))),
                None => {}
            }
        }
    }

    /// `Ok(true)`: more to write later.
    fn write(&mut self) -> io::Result<bool> {
        let Some(answer) = &self.answer else { return Ok(true) };
        while self.sent < answer.len() {
            match self.stream.write(&answer[self.sent..]) {
                Ok(0) => return Ok(false),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        Ok(false)
    }
}

/// What the head in `buf` asks for; `None` while it is incomplete.
pub fn ask(buf: &mut BytesMut) -> Option<Ask> {
    let head = match http::parse_head(buf, &http::Limits::default()) {
        Ok(Some(head)) => head,
        Ok(None) => return None,
        Err(_) => return Some(Ask::Refuse(400)),
    };
    let path = head.target().split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Some(Ask::Refuse(404));
    }
    if !matches!(head.method(), "GET" | "HEAD") {
        return Some(Ask::Refuse(405));
    }
    let openmetrics = head.fields().any(|(name, value)| {
        let wanted = b"application/openmetrics-text";
        name.eq_ignore_ascii_case(b"accept")
            && value.windows(wanted.len()).any(|w| w.eq_ignore_ascii_case(wanted))
    });
    Some(Ask::Metrics { openmetrics })
}

/// The whole response, `Connection: close`.
fn answer(ask: Ask, body: &dyn Fn(bool) -> String) -> Vec<u8> {
    match ask {
        Ask::Metrics { openmetrics } => {
            let text = body(openmetrics);
            let kind = if openmetrics { super::render::OPENMETRICS } else { super::render::TEXT };
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                text.len()
            )
            .into_bytes();
            out.extend_from_slice(text.as_bytes());
            out
        }
        Ask::Refuse(status) => crate::wsgi::exchange::error_page(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks() {
        let cases: [(&[u8], Option<Ask>); 7] = [
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", Some(Ask::Metrics { openmetrics: false })),
            (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", Some(Ask::Metrics { openmetrics: false })),
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n",
                Some(Ask::Metrics { openmetrics: true }),
            ),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Some(Ask::Refuse(404))),
            (b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", Some(Ask::Refuse(405))),
            (b"\x00\x01garbage\r\n\r\n", Some(Ask::Refuse(400))),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", None),
        ];
        for (input, want) in cases {
            // Whole, and byte by byte: the answer comes with the last byte.
            assert_eq!(ask(&mut BytesMut::from(input)), want, "{input:?}");
            let mut buf = BytesMut::new();
            let mut got = None;
            for &b in input {
                buf.extend_from_slice(&[b]);
                got = got.or_else(|| ask(&mut buf));
            }
            assert_eq!(got, want, "{input:?} byte by byte");
        }
    }

    #[test]
    fn serves_a_scrape_and_refuses_the_rest() {
        let mut server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let exchange = |server: &mut Server, request: &[u8]| {
            let mut client = TcpStream::connect(addr).unwrap();
            client.write_all(request).unwrap();
            client.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                server.serve(&|om| format!("metrics om={om}\n"));
                let mut chunk = [0u8; 4096];
                match client.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                    Err(_) => {}
                }
            }
            String::from_utf8(got).unwrap()
        };
        let ok = exchange(&mut server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nmetrics om=false\n"), "{ok}");
        assert!(exchange(&mut server, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            .starts_with("HTTP/1.1 404"));
        assert!(exchange(&mut server, b"BAD\r\n\r\n").starts_with("HTTP/1.1 400"));
        let big = [b"GET /metrics HTTP/1.1\r\nX: ".as_ref(), &[b'a'; MAX_HEAD + 10]].concat();
        assert!(exchange(&mut server, &big).starts_with("HTTP/1.1 400"));
        assert!(server.clients.is_empty());
    }

    /// An accept that fails for want of a descriptor leaves the connection in the backlog
    /// and the listener readable: polled on, it spun the master's loop. A listener shut
    /// down underneath fails accept(2) (EINVAL) and stays readable in the same way.
    #[test]
    fn regression_scrape_listener_rests_after_an_accept_error() {
        let mut server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = server.listener.as_raw_fd();
        assert!(server.poll_fds().any(|fd| fd == listener));
        // SAFETY: the fd is the server's own listener, open for the whole test.
        assert_eq!(unsafe { libc::shutdown(listener, libc::SHUT_RDWR) }, 0);
        server.serve(&|_| String::new());
        assert!(!server.poll_fds().any(|fd| fd == listener), "the listener is polled still");
        server.pause = AcceptPause::default();
        assert!(server.poll_fds().any(|fd| fd == listener), "the listener never comes back");
    }
}
