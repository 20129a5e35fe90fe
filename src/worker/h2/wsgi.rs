//! An HTTP/2 stream as one WSGI request, on an app thread: the request's head as the
//! HTTP/1.1 reader would have parsed it (so the environ, the limits, the forwarding
//! policy and the access log are the same code), `SERVER_PROTOCOL` `HTTP/2`, the body
//! from the stream's DATA frames, and the response as h2 headers and DATA frames instead
//! of HTTP/1.1 framing ([`StreamSink`]).

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::stream::{BodySource, Reset, Stream};
use crate::http::response::{is_hop_by_hop, Plan, RequestInfo};
use crate::http::{self as h1, BodyDecoder, BodyFraming, Head, Limits};
use crate::listener::Peer;
use crate::worker::conn::Shared;
use crate::worker::request::{self, Call};
use crate::wsgi::{self, Exchange, FileSpan, Input, Sink, Step, Wire};

/// The largest piece of a `wsgi.file_wrapper` file read per step.
const FILE_CHUNK: usize = 64 * 1024;
/// The least time a client may keep its window shut before the stream is given up.
const MIN_STALL: Duration = Duration::from_secs(30);

/// One stream for an app thread.
pub struct StreamJob {
    /// Where the body comes from and the response goes.
    pub stream: Arc<Stream>,
    /// The request, as an HTTP/1.1 head of version 2.0.
    pub head: Head,
    /// A body follows the head (no END_STREAM on HEADERS).
    pub body: bool,
    /// The client.
    pub peer: Peer,
    /// The listener it came on.
    pub listener: usize,
    /// The client certificate's environ keys, under TLS.
    pub client_cert: Option<Arc<crate::tls::client::Environ>>,
    /// When it was ready to run: its queue time runs from here.
    pub ready: Instant,
}

/// The request's head: method, target, `:authority` as `Host` unless the client sent
/// one, cookie crumbs joined (RFC 9113 §8.2.3), parsed by the HTTP/1.1 reader with the
/// worker's limits; version 2.0. h2 has already refused what HTTP/2 forbids (§8.2.2).
pub fn head_of(request: &http::Request<()>, limits: &Limits) -> Result<Head, h1::Error> {
    let uri = request.uri();
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut raw = Vec::with_capacity(256);
    for part in [request.method().as_str(), " ", target, " HTTP/1.1\r\n"] {
        raw.extend_from_slice(part.as_bytes());
    }
    let headers = request.headers();
    if let (Some(authority), false) = (uri.authority(), headers.contains_key(http::header::HOST)) {
        field(&mut raw, b"host", authority.as_str().as_bytes());
    }
    let mut cookies = headers.get_all(http::header::COOKIE).iter().peekable();
    if cookies.peek().is_some() {
        let joined: Vec<&[u8]> = cookies.map(HeaderValue::as_bytes).collect();
        field(&mut raw, b"cookie", &joined.join(&b"; "[..]));
    }
    for (name, value) in headers.iter().filter(|(n, _)| *n != http::header::COOKIE) {
        field(&mut raw, name.as_str().as_bytes(), value.as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    let mut buf = BytesMut::from(&raw[..]);
    let mut head =
        h1::parse_head(&mut buf, limits)?.ok_or(h1::Error::BadRequestLine("incomplete head"))?;
    head.version = (2, 0);
    head.keep_alive = false;
    head.expect_continue = false;
    Ok(head)
}

fn field(raw: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    raw.extend_from_slice(name);
    raw.extend_from_slice(b": ");
    raw.extend_from_slice(value);
    raw.extend_from_slice(b"\r\n");
}

/// Answers a stream the app never sees (its head is refused) with the error page.
pub fn refuse(stream: &Stream, status: u16) {
    let mut sink = StreamSink::default();
    sink.error_page(status);
    let _ = stream.send(sink.head.take(), std::mem::take(&mut sink.chunks), true, MIN_STALL);
}

/// Runs one stream: the environ, the app, and its response pulled into the stream as
/// the client's window allows. A reset stream stops the pull and closes the iterable.
pub fn run(py: Python<'_>, shared: &Shared, job: StreamJob) {
    let StreamJob { stream, head, body, peer, listener, client_cert, ready } = job;
    shared.recycler.count_request();
    let stall = shared.read_timeout.max(MIN_STALL);
    let mut sink = StreamSink::default();
    let forwarded = match shared.globals.forwarded.judge(&head, peer.ip()) {
        Ok(verdict) => verdict,
        Err(error) => {
            sink.error_page(error.status());
            let _ = push(py, &stream, &mut sink, true, stall);
            return;
        }
    };
    let input = match body {
        false => Input::buffered(BytesMut::new()),
        true => {
            let source = BodySource::new(Arc::clone(&stream), shared.read_timeout);
            let decoder = BodyDecoder::new(BodyFraming::Chunked);
            Input::new(decoder, BytesMut::new(), Box::new(source), false)
                .with_limit(shared.body_limit)
        }
    };
    let req = RequestInfo { minor: 0, head_request: head.is_head_request(), keep_alive: false };
    let writer = Writer { stream: Arc::clone(&stream), sink: StreamSink::default(), stall };
    let wire = Wire { req, stopping: None, stream: Some(Box::new(writer)), queued: false };
    let conn = wsgi::Connection {
        peer: &peer,
        server: &shared.servers[listener],
        forwarded: &forwarded,
        queued_since: ready,
        client_cert,
    };
    let app = shared.app.bind(py);
    let call = Call { app, globals: &shared.globals, head: &head, conn: &conn, socket: None };
    match request::start(py, call, input, wire, &mut sink) {
        Some(mut started) => pump(py, &stream, &mut started.exchange, &mut sink, stall),
        None => {
            let _ = push(py, &stream, &mut sink, true, stall);
        }
    }
}

/// Pulls the response into the stream until it ends, fails, or the client resets it.
fn pump(
    py: Python<'_>,
    stream: &Stream,
    exchange: &mut Exchange,
    sink: &mut StreamSink,
    stall: Duration,
) {
    loop {
        let step = exchange.next(py, sink);
        let pushed = match step {
            Step::Send => push(py, stream, sink, false, stall),
            Step::SendFile(span) => push(py, stream, sink, false, stall)
                .and_then(|()| send_file(py, stream, span, stall)),
            Step::Done { .. } => {
                let _ = push(py, stream, sink, true, stall);
                return;
            }
            Step::Abort | Step::Handled => {
                let _ = push(py, stream, sink, false, stall);
                stream.abort();
                return;
            }
        };
        if pushed.is_err() {
            // RST_STREAM: the iterable is closed (PEP 3333), no more of it is pulled.
            if let Err(err) = exchange.close(py) {
                wsgi::exchange::log_app_error(py, "an HTTP/2 stream reset by the client", &err);
            }
            return;
        }
    }
}

/// Queues what the sink holds, waiting (the GIL released) while the stream is full.
fn push(
    py: Python<'_>,
    stream: &Stream,
    sink: &mut StreamSink,
    end: bool,
    stall: Duration,
) -> Result<(), Reset> {
    let head = sink.head.take();
    let data = std::mem::take(&mut sink.chunks);
    sink.framing.clear();
    if head.is_none() && data.is_empty() && !end {
        return match stream.is_reset() {
            true => Err(Reset),
            false => Ok(()),
        };
    }
    py.detach(|| stream.send(head, data, end, stall))
}

/// A `wsgi.file_wrapper` file's span, read in pieces as the window allows (HTTP/2
/// frames it: no `sendfile`).
fn send_file(
    py: Python<'_>,
    stream: &Stream,
    span: FileSpan,
    stall: Duration,
) -> Result<(), Reset> {
    let (mut offset, mut left) = (span.offset, span.len);
    while left > 0 {
        let mut buf = vec![0u8; FILE_CHUNK.min(left as usize)];
        // SAFETY: pread into a buffer of its own length, on the app's open file.
        let n = unsafe {
            libc::pread(span.fd, buf.as_mut_ptr().cast(), buf.len(), offset as libc::off_t)
        };
        if n <= 0 {
            tracing::warn!("HTTP/2: the app's file ended {left} bytes early");
            stream.abort();
            return Err(Reset);
        }
        buf.truncate(n as usize);
        offset += n as u64;
        left -= n as u64;
        py.detach(|| stream.send(None, vec![Bytes::from(buf)], false, stall))?;
    }
    Ok(())
}

/// `write()`'s way to an HTTP/2 stream: what it frames (the head first, once) is queued
/// on the stream at once, waiting (the GIL released) while the stream is full.
struct Writer {
    /// The stream.
    stream: Arc<Stream>,
    /// What one `write()` framed.
    sink: StreamSink,
    /// How long the client may keep its window shut.
    stall: Duration,
}

impl wsgi::start_response::Stream for Writer {
    fn framer(&mut self) -> Option<&mut dyn Sink> {
        Some(&mut self.sink)
    }

    fn send(&mut self, _: &[u8]) -> std::io::Result<()> {
        let head = self.sink.head.take();
        let data = std::mem::take(&mut self.sink.chunks);
        if head.is_none() && data.is_empty() {
            return Ok(());
        }
        Ok(self.stream.send(head, data, false, self.stall)?)
    }
}

/// Where the exchange puts an HTTP/2 response: the head as h2's response, the body as
/// pieces for DATA frames. Under a plan of HTTP/1.0 without keep-alive nothing is ever
/// framed (no chunks), so `framing` stays empty.
#[derive(Default)]
struct StreamSink {
    /// The head, until pushed.
    head: Option<http::Response<()>>,
    /// Body pieces, until pushed.
    chunks: Vec<Bytes>,
    /// What HTTP/1.1 framing the exchange asks for: none under this plan.
    framing: Vec<u8>,
}

impl Sink for StreamSink {
    fn framing(&mut self) -> &mut Vec<u8> {
        &mut self.framing
    }

    fn body(&mut self, data: &Bound<'_, PyBytes>, range: Range<usize>) {
        self.chunks.push(Bytes::copy_from_slice(&data.as_bytes()[range]));
    }

    fn is_empty(&self) -> bool {
        self.head.is_none() && self.chunks.is_empty()
    }

    fn head(&mut self, _status: &str, code: u16, headers: &[(String, String)], _plan: Plan) {
        self.head = Some(response_head(code, headers, true));
    }

    fn error_page(&mut self, status: u16) {
        let body = Bytes::from(crate::http::response::error_body(status));
        let length = body.len().to_string();
        let headers =
            [("content-type".into(), "text/html".into()), ("content-length".into(), length)];
        self.head = Some(response_head(status, &headers, true));
        self.chunks = vec![body];
    }
}

/// An h2 response head from the app's status and headers: names lower-cased, the
/// connection-specific fields HTTP/2 forbids dropped (RFC 9113 §8.2.2), `date` (and with
/// `server`, `server`) added as the HTTP/1.1 encoder adds them.
pub fn response_head(code: u16, headers: &[(String, String)], server: bool) -> http::Response<()> {
    let mut response = http::Response::new(());
    *response.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
    let map = response.headers_mut();
    for (name, value) in headers {
        if is_hop_by_hop(name) || name.eq_ignore_ascii_case("proxy-connection") {
            continue;
        }
        let latin1: Vec<u8> = value.chars().map(|c| c as u32 as u8).collect();
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(&latin1))
        {
            map.append(name, value);
        }
    }
    if server && !map.contains_key(http::header::SERVER) {
        map.insert(http::header::SERVER, HeaderValue::from_static("ferricorn"));
    }
    if !map.contains_key(http::header::DATE) {
        let mut date = Vec::with_capacity(29);
        h1::date::now(&mut date);
        if let Ok(value) = HeaderValue::from_bytes(&date) {
            map.insert(http::header::DATE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (n, v) in headers {
            builder = builder.header(*n, *v);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn a_stream_becomes_the_head_the_environ_is_built_from() {
        let limits = Limits::default();
        // (method, uri, headers sent, fields of the head)
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            ("GET", "https://example.com/a?b=c", &[], &[("host", "example.com")]),
            ("POST", "http://h:8000/up", &[("host", "other")], &[("host", "other")]),
            (
                "GET",
                "http://h/",
                &[("cookie", "a=1"), ("cookie", "b=2"), ("x-y", "z")],
                &[("host", "h"), ("cookie", "a=1; b=2"), ("x-y", "z")],
            ),
        ];
        for (method, uri, headers, fields) in cases {
            let head = head_of(&request(method, uri, headers), &limits).unwrap();
            assert_eq!(head.method(), *method);
            assert_eq!(head.version, (2, 0));
            let got: Vec<(String, String)> = head
                .fields()
                .map(|(n, v)| {
                    (String::from_utf8_lossy(n).into(), String::from_utf8_lossy(v).into())
                })
                .collect();
            let want: Vec<(String, String)> =
                fields.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            assert_eq!(got, want, "{uri}");
        }
        let long = format!("http://h/{}", "a".repeat(limits.request_line + 1));
        assert!(head_of(&request("GET", &long, &[]), &limits).is_err());
    }

    #[test]
    fn response_heads_drop_what_http2_forbids_and_add_server_and_date() {
        let headers: Vec<(String, String)> = [
            ("Content-Type", "text/plain"),
            ("Connection", "close"),
            ("Transfer-Encoding", "chunked"),
            ("Keep-Alive", "5"),
            ("X-Latin", "caf\u{e9}"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let head = response_head(201, &headers, true);
        assert_eq!(head.status(), 201);
        let names: Vec<&str> = head.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["content-type", "x-latin", "server", "date"]);
        assert_eq!(head.headers()["x-latin"].as_bytes(), b"caf\xe9");
    }
}
