//! The WSGI `environ` dict (PEP 3333 "environ Variables"), built the way gunicorn builds it.

use std::sync::{Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{ffi, intern, Py};

use crate::forwarded::{Policy, Verdict};
use crate::http::Head;
use crate::listener::Peer;
use crate::wsgi::{Errors, FileWrapper, Input};

/// What stays the same for every request a worker serves.
pub struct Globals {
    /// Every key an environ always has, in gunicorn's order, the values that never change
    /// filled in and the others `None`: each environ starts as a copy of it (CPython copies
    /// a dict's table in one go, keys already hashed), then the request's values replace
    /// the placeholders, so no key is hashed or inserted and the table never grows for them.
    template: Py<PyDict>,
    /// The template with SERVER_NAME and SERVER_PORT of the first listener a request came
    /// on: nearly every worker has one, so its requests copy these in with the table.
    listener: OnceLock<Listener>,
    /// The last REMOTE_ADDR made: behind a proxy (or from one client) every request has
    /// the same, so its string is shared rather than made and freed per request.
    last_addr: Mutex<Option<(String, Py<PyString>)>>,
    /// `SCRIPT_NAME` from the server's environment: where the app is mounted.
    script_name: String,
    /// Which proxy headers are believed; the worker judged each request with it.
    pub forwarded: Policy,
}

impl Globals {
    pub fn new(
        py: Python<'_>,
        multiprocess: bool,
        multithread: bool,
        forwarded: Policy,
    ) -> PyResult<Globals> {
        let script_name = std::env::var("SCRIPT_NAME").unwrap_or_default();
        let template = PyDict::new(py);
        let none = py.None();
        for key in PER_REQUEST {
            template.set_item(PyString::intern(py, key), &none)?;
        }
        let software = concat!("ferricorn/", env!("CARGO_PKG_VERSION"));
        template.set_item(intern!(py, "SCRIPT_NAME"), script_name.trim_end_matches('/'))?;
        template.set_item(intern!(py, "SERVER_SOFTWARE"), software)?;
        template.set_item(intern!(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
        template.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "http"))?;
        template.set_item(intern!(py, "wsgi.input"), &none)?;
        template.set_item(intern!(py, "wsgi.errors"), Py::new(py, Errors)?)?;
        template.set_item(intern!(py, "wsgi.multithread"), multithread)?;
        template.set_item(intern!(py, "wsgi.multiprocess"), multiprocess)?;
        template.set_item(intern!(py, "wsgi.run_once"), false)?;
        template.set_item(intern!(py, "wsgi.input_terminated"), true)?;
        template.set_item(intern!(py, "wsgi.file_wrapper"), py.get_type::<FileWrapper>())?;
        Ok(Globals {
            template: template.unbind(),
            listener: OnceLock::new(),
            last_addr: Mutex::new(None),
            script_name,
            forwarded,
        })
    }

    /// Connections come over TLS (`--certfile`): `wsgi.url_scheme` is `https`, as in
    /// gunicorn, before any request copies the template.
    pub fn over_tls(self, py: Python<'_>, tls: bool) -> PyResult<Globals> {
        if tls {
            self.template
                .bind(py)
                .set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "https"))?;
        }
        Ok(self)
    }

    /// A copy of the template, with the listener's address when it is the usual one.
    fn environ<'py>(&self, py: Python<'py>, server: &(String, String)) -> PyResult<Env<'py>> {
        if let Some(listener) = self.listener.get().filter(|l| l.server == *server) {
            return Ok(Env { dict: listener.template.bind(py).copy()?, has_server: true });
        }
        let template = self.template.bind(py).copy()?;
        if self.listener.get().is_none() {
            let mine = template.copy()?;
            mine.set_item(intern!(py, "SERVER_NAME"), &server.0)?;
            mine.set_item(intern!(py, "SERVER_PORT"), &server.1)?;
            let _ = self.listener.set(Listener { server: server.clone(), template: mine.unbind() });
        }
        Ok(Env { dict: template, has_server: false })
    }

    /// REMOTE_ADDR as a Python string, the last one's again when it is the same.
    fn remote_addr<'py>(&self, py: Python<'py>, addr: &str) -> Bound<'py, PyString> {
        let mut last = self.last_addr.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some((text, string)) if text == addr => string.bind(py).clone(),
            _ => {
                let string = PyString::new(py, addr);
                *last = Some((addr.to_owned(), string.clone().unbind()));
                string
            }
        }
    }
}

/// [`Globals::listener`]: one listener's address and its template.
struct Listener {
    /// SERVER_NAME and SERVER_PORT, as [`Connection::server`] gives them.
    server: (String, String),
    /// The worker's template with those two filled in.
    template: Py<PyDict>,
}

/// A request's environ as copied from a template.
struct Env<'py> {
    /// The environ being filled, a copy of the worker's template.
    dict: Bound<'py, PyDict>,
    /// SERVER_NAME and SERVER_PORT are in already.
    has_server: bool,
}

/// The template's keys whose values every request sets, first in the dict as gunicorn
/// puts them (its order is what an app that prints its environ sees).
const PER_REQUEST: [&str; 10] = [
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "RAW_URI",
    "SERVER_PROTOCOL",
    "SERVER_NAME",
    "SERVER_PORT",
    "REMOTE_ADDR",
    "REMOTE_PORT",
];

/// The connection a request came on.
pub struct Connection<'a> {
    /// The client: REMOTE_ADDR and REMOTE_PORT, and whom forwarded headers are judged by.
    pub peer: &'a Peer,
    /// SERVER_NAME and SERVER_PORT: the listener's address.
    pub server: &'a (String, String),
    /// What a trusted front-end proxy said of this request (judged per request).
    pub forwarded: &'a Verdict,
    /// When the request started to wait for the app (see docs/metrics.md): the environ's
    /// `mod_wsgi.queue_start`, and `--max-queue-time`.
    pub queued_since: std::time::Instant,
    /// On a TLS connection, the client certificate's `SSL_CLIENT_*` keys.
    pub client_cert: Option<std::sync::Arc<crate::tls::client::Environ>>,
}

/// The environ of one request. A hot path: it runs once per request with the GIL held,
/// so strings go from the head's bytes to Python once (no Rust `String` in between) and
/// the common values and header keys are interned.
pub fn build<'py>(
    py: Python<'py>,
    head: &Head,
    conn: &Connection<'_>,
    globals: &Globals,
    input: Py<Input>,
) -> PyResult<Bound<'py, PyDict>> {
    let Env { dict: env, has_server } = globals.environ(py, conn.server)?;
    let target = head.target();
    let (path, query) = crate::http::request::split_target(target);
    let mounted = conn.forwarded.script_name.as_deref();
    let script_name = mounted.unwrap_or(&globals.script_name).trim_end_matches('/');
    let decoded = path.contains('%').then(|| percent_decode(path.as_bytes()));
    let path_info = decoded.as_deref().unwrap_or(path.as_bytes());
    let path_info = match path_info.strip_prefix(script_name.as_bytes()) {
        Some(rest) if !script_name.is_empty() && (rest.is_empty() || rest.starts_with(b"/")) => {
            rest
        }
        _ => path_info,
    };
    // An origin-form target with no query and no escapes is PATH_INFO itself: one string.
    let same = path_info == target.as_bytes();
    let path_info = latin1(py, path_info)?;
    let raw_uri = if same { path_info.clone() } else { PyString::new(py, target) };
    env.set_item(intern!(py, "REQUEST_METHOD"), method(py, head.method()))?;
    if mounted.is_some() {
        env.set_item(intern!(py, "SCRIPT_NAME"), script_name)?;
    }
    env.set_item(intern!(py, "PATH_INFO"), path_info)?;
    let query = if query.is_empty() { intern!(py, "").clone() } else { PyString::new(py, query) };
    env.set_item(intern!(py, "QUERY_STRING"), query)?;
    env.set_item(intern!(py, "RAW_URI"), raw_uri)?;
    env.set_item(intern!(py, "SERVER_PROTOCOL"), protocol(py, head))?;
    if !has_server {
        env.set_item(intern!(py, "SERVER_NAME"), &conn.server.0)?;
        env.set_item(intern!(py, "SERVER_PORT"), &conn.server.1)?;
    }
    let peer = conn.forwarded.remote.as_ref().unwrap_or(conn.peer);
    env.set_item(intern!(py, "REMOTE_ADDR"), globals.remote_addr(py, &peer.addr))?;
    env.set_item(intern!(py, "REMOTE_PORT"), &peer.port)?;
    if let Some(proxy) = &conn.peer.proxy {
        // gunicorn's `proxy_environ`; `LOCAL` and `UNSPEC` name no destination (gunicorn
        // puts None there, which PEP 3333 does not allow: the keys are left out).
        env.set_item(intern!(py, "PROXY_PROTOCOL"), proxy.protocol)?;
        if let Some((addr, port)) = &proxy.destination {
            env.set_item(intern!(py, "PROXY_ADDR"), addr)?;
            env.set_item(intern!(py, "PROXY_PORT"), port)?;
        }
    }
    if conn.forwarded.https {
        env.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "https"))?;
    } else if conn.forwarded.http {
        env.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "http"))?;
    }
    for (key, value) in conn.client_cert.iter().flat_map(|pairs| pairs.iter()) {
        env.set_item(key.as_ref(), value)?;
    }
    env.set_item(intern!(py, "wsgi.input"), input)?;
    add_headers(&env, head, &globals.forwarded, conn.forwarded.trusted)?;
    env.set_item(intern!(py, "mod_wsgi.queue_start"), queue_start(conn.queued_since))?;
    Ok(env)
}

/// Microseconds since the epoch, as a string: when the request started to queue, as
/// mod_wsgi's `mod_wsgi.queue_start` says it (APM agents read it; docs/metrics.md says
/// why this key rather than a made-up `X-Request-Start` header).
fn queue_start(queued_since: std::time::Instant) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap_or_default().saturating_sub(queued_since.elapsed()).as_micros().to_string()
}

/// The version the request gets: `HTTP/2` for a stream (gunicorn 27 says `HTTP/2.0`;
/// docs/differences.md).
fn protocol<'py>(py: Python<'py>, head: &Head) -> &'py Bound<'py, PyString> {
    match (head.version.0, head.minor) {
        (2, _) => intern!(py, "HTTP/2"),
        (_, 0) => intern!(py, "HTTP/1.0"),
        _ => intern!(py, "HTTP/1.1"),
    }
}

/// The common methods as interned strings: no new object per request.
fn method<'py>(py: Python<'py>, method: &str) -> Bound<'py, PyString> {
    match method {
        "GET" => intern!(py, "GET").clone(),
        "POST" => intern!(py, "POST").clone(),
        "HEAD" => intern!(py, "HEAD").clone(),
        "PUT" => intern!(py, "PUT").clone(),
        "DELETE" => intern!(py, "DELETE").clone(),
        "PATCH" => intern!(py, "PATCH").clone(),
        "OPTIONS" => intern!(py, "OPTIONS").clone(),
        other => PyString::new(py, other),
    }
}

/// `HTTP_*` keys; repeated fields joined with ","; names with `_` only when `policy`
/// allows them (they could pose as a dash-named header once mapped). A repeat is found by
/// the dict itself (no environ key outside the headers' is `HTTP_*` or `CONTENT_*`), so
/// the usual head costs one dict insert per field and no allocation in Rust.
fn add_headers(
    env: &Bound<'_, PyDict>,
    head: &Head,
    policy: &Policy,
    trusted: bool,
) -> PyResult<()> {
    let py = env.py();
    for (name, value) in head.fields() {
        if name.contains(&b'_')
            && !policy.keeps(&String::from_utf8_lossy(name).to_ascii_uppercase(), trusted)
        {
            continue;
        }
        let value = latin1(py, value)?;
        let key = match known_key(py, name) {
            Some(key) => key.clone(),
            None => PyString::new(py, &header_key(name)),
        };
        let first = set_default(env, &key, &value)?;
        if !first.is(&value) {
            env.set_item(&key, first.add(",")?.add(value)?)?;
        }
    }
    Ok(())
}

/// `dict.setdefault`: the value now under `key`, `value` unless the key was there.
fn set_default<'py>(
    env: &Bound<'py, PyDict>,
    key: &Bound<'py, PyString>,
    value: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: three live objects; PyDict_SetDefault returns a borrowed reference (or NULL
    // with an exception set), which `from_borrowed_ptr_or_err` turns into an owned one.
    unsafe {
        let found = ffi::PyDict_SetDefault(env.as_ptr(), key.as_ptr(), value.as_ptr());
        Bound::from_borrowed_ptr_or_err(env.py(), found)
    }
}

/// `HTTP_` and the name upper-cased, `-` as `_`; Content-Type and Content-Length without
/// the prefix. By the mapped name, so `--header-map dangerous` lets `Content_Length` join
/// CONTENT_LENGTH, as it does in gunicorn.
fn header_key(name: &[u8]) -> String {
    let mut key = String::with_capacity(name.len() + 5);
    key.push_str("HTTP_");
    key.extend(name.iter().map(|&b| if b == b'-' { '_' } else { b.to_ascii_uppercase() as char }));
    if matches!(&key[5..], "CONTENT_TYPE" | "CONTENT_LENGTH") {
        key.drain(..5);
    }
    key
}

/// The environ keys of the fields most requests carry, interned (hashed once per worker).
/// Only dash-named fields: a name with `_` takes [`header_key`], like any other.
fn known_key<'py>(py: Python<'py>, name: &[u8]) -> Option<&'py Bound<'py, PyString>> {
    let mut lower = [0u8; 32];
    let lower = lower.get_mut(..name.len())?;
    for (l, &c) in lower.iter_mut().zip(name) {
        *l = c.to_ascii_lowercase();
    }
    Some(match &*lower {
        b"host" => intern!(py, "HTTP_HOST"),
        b"user-agent" => intern!(py, "HTTP_USER_AGENT"),
        b"accept" => intern!(py, "HTTP_ACCEPT"),
        b"accept-encoding" => intern!(py, "HTTP_ACCEPT_ENCODING"),
        b"accept-language" => intern!(py, "HTTP_ACCEPT_LANGUAGE"),
        b"connection" => intern!(py, "HTTP_CONNECTION"),
        b"cookie" => intern!(py, "HTTP_COOKIE"),
        b"content-type" => intern!(py, "CONTENT_TYPE"),
        b"content-length" => intern!(py, "CONTENT_LENGTH"),
        b"referer" => intern!(py, "HTTP_REFERER"),
        b"origin" => intern!(py, "HTTP_ORIGIN"),
        b"authorization" => intern!(py, "HTTP_AUTHORIZATION"),
        b"cache-control" => intern!(py, "HTTP_CACHE_CONTROL"),
        b"if-none-match" => intern!(py, "HTTP_IF_NONE_MATCH"),
        b"if-modified-since" => intern!(py, "HTTP_IF_MODIFIED_SINCE"),
        b"x-forwarded-for" => intern!(py, "HTTP_X_FORWARDED_FOR"),
        b"x-forwarded-proto" => intern!(py, "HTTP_X_FORWARDED_PROTO"),
        b"x-real-ip" => intern!(py, "HTTP_X_REAL_IP"),
        b"x-request-id" => intern!(py, "HTTP_X_REQUEST_ID"),
        _ => return None,
    })
}

/// Bytes as WSGI "bytes-as-str": each byte one code point (PEP 3333 "Unicode Issues"),
/// decoded by CPython straight from the head's bytes.
fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    // SAFETY: the pointer and length describe `bytes`, which outlives the call; CPython
    // copies them into a new str (a new reference, or NULL with an exception set).
    unsafe {
        let ptr = ffi::PyUnicode_DecodeLatin1(
            bytes.as_ptr().cast(),
            bytes.len() as ffi::Py_ssize_t,
            std::ptr::null(),
        );
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked())
    }
}

/// `%XX` decoding of a path; malformed escapes stay as they are.
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            input[i],
            input.get(i + 1).and_then(|&b| hex(b)),
            input.get(i + 2).and_then(|&b| hex(b)),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_head, Limits};
    use bytes::BytesMut;

    /// The environ of `raw` from 10.0.0.1, as (key, value) strings for the keys asked.
    fn environ_of(raw: &str, header_map: &str, keys: &[&str]) -> Vec<Option<String>> {
        Python::initialize();
        let head = parse_head(&mut BytesMut::from(raw), &Limits::default()).unwrap().unwrap();
        let policy = Policy::parse("127.0.0.1", &[], "", header_map).unwrap();
        let peer = Peer::new("10.0.0.1", "5000");
        let server = ("localhost".to_owned(), "8000".to_owned());
        Python::attach(|py| {
            let globals = Globals::new(py, true, false, policy).unwrap();
            let verdict = Verdict::default();
            let conn = Connection {
                peer: &peer,
                server: &server,
                forwarded: &verdict,
                queued_since: std::time::Instant::now(),
                client_cert: None,
            };
            let input = Py::new(py, Input::buffered(BytesMut::new())).unwrap();
            let env = build(py, &head, &conn, &globals, input).unwrap();
            let get = |k: &&str| env.get_item(k).unwrap().map(|v| v.extract::<String>().unwrap());
            keys.iter().map(get).collect()
        })
    }

    /// The request, `--header-map`, the keys looked at and their expected values.
    type Row<'a> = (&'a str, &'a str, &'a [&'a str], Vec<Option<String>>);

    #[test]
    fn request_keys_and_headers() {
        let some = |s: &str| Some(s.to_owned());
        #[rustfmt::skip]
        let rows: &[Row] = &[
            ("GET /a%20b?x=1 HTTP/1.0\r\nHost: h\r\n\r\n", "drop",
             &["REQUEST_METHOD", "PATH_INFO", "RAW_URI", "QUERY_STRING", "SERVER_PROTOCOL"],
             vec![some("GET"), some("/a b"), some("/a%20b?x=1"), some("x=1"), some("HTTP/1.0")]),
            ("BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", "drop",
             &["REQUEST_METHOD", "PATH_INFO", "RAW_URI", "QUERY_STRING", "REMOTE_ADDR"],
             vec![some("BREW"), some("/pot"), some("/pot"), some(""), some("10.0.0.1")]),
            // Repeats join in wire order whatever their case; a known and an unknown name.
            ("GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\nX-Dup: 1\r\naccept: b\r\nx-dup: 2\r\nX-DUP: 3\r\n\r\n",
             "drop", &["HTTP_ACCEPT", "HTTP_X_DUP"], vec![some("a,b"), some("1,2,3")]),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Type: t\r\nContent-Length: 0\r\n\r\n", "drop",
             &["CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_CONTENT_TYPE"],
             vec![some("t"), some("0"), None]),
            // A name with `_` is dropped, or with `dangerous` joins the dash-named field.
            ("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX_A: 2\r\n\r\n", "drop", &["HTTP_X_A"], vec![some("1")]),
            ("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX_A: 2\r\n\r\n", "dangerous", &["HTTP_X_A"],
             vec![some("1,2")]),
            ("GET / HTTP/1.1\r\nHost: h\r\nVery-Long-Unusual-Header-Name-Here: v\r\n\r\n", "drop",
             &["HTTP_VERY_LONG_UNUSUAL_HEADER_NAME_HERE"], vec![some("v")]),
        ];
        for (raw, map, keys, want) in rows {
            assert_eq!(&environ_of(raw, map, keys), want, "{raw:?}");
        }
    }

    /// The cached listener template and REMOTE_ADDR serve only the connection they match.
    #[test]
    fn cached_addresses_follow_the_connection() {
        Python::initialize();
        let raw: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let head = parse_head(&mut BytesMut::from(raw), &Limits::default()).unwrap().unwrap();
        Python::attach(|py| {
            let globals = Globals::new(py, true, false, Policy::default()).unwrap();
            let verdict = Verdict::default();
            let rows = [("a", "1", "10.0.0.1"), ("a", "1", "10.0.0.2"), ("b", "2", "10.0.0.2")];
            for (name, port, addr) in rows.iter().chain(rows.iter().rev()) {
                let peer = Peer::new(addr, "5000");
                let server = ((*name).to_owned(), (*port).to_owned());
                let conn = Connection {
                    peer: &peer,
                    server: &server,
                    forwarded: &verdict,
                    queued_since: std::time::Instant::now(),
                    client_cert: None,
                };
                let input = Py::new(py, Input::buffered(BytesMut::new())).unwrap();
                let env = build(py, &head, &conn, &globals, input).unwrap();
                let get = |k: &str| env.get_item(k).unwrap().unwrap().extract::<String>().unwrap();
                assert_eq!((get("SERVER_NAME"), get("SERVER_PORT")), (server.0, server.1));
                assert_eq!(get("REMOTE_ADDR"), *addr);
            }
        });
    }

    #[test]
    fn header_values_are_latin1() {
        Python::initialize();
        let raw: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\nX-V: caf\xc3\xa9\r\n\r\n";
        let head = parse_head(&mut BytesMut::from(raw), &Limits::default()).unwrap().unwrap();
        let peer = Peer::new("10.0.0.1", "5000");
        let server = ("localhost".to_owned(), "8000".to_owned());
        Python::attach(|py| {
            let globals = Globals::new(py, true, false, Policy::default()).unwrap();
            let verdict = Verdict::default();
            let conn = Connection {
                peer: &peer,
                server: &server,
                forwarded: &verdict,
                queued_since: std::time::Instant::now(),
                client_cert: None,
            };
            let input = Py::new(py, Input::buffered(BytesMut::new())).unwrap();
            let env = build(py, &head, &conn, &globals, input).unwrap();
            let value: String = env.get_item("HTTP_X_V").unwrap().unwrap().extract().unwrap();
            assert_eq!(value, "caf\u{c3}\u{a9}");
        });
    }

    #[test]
    fn percent_decoding() {
        let rows: &[(&str, &[u8])] = &[
            ("/a%20b", b"/a b"),
            ("/%C3%A0", b"/\xc3\xa0"),
            ("/100%", b"/100%"),
            ("/%zz%4", b"/%zz%4"),
            ("/%2F", b"//"),
        ];
        for (input, want) in rows {
            assert_eq!(super::percent_decode(input.as_bytes()), *want, "{input}");
        }
    }
}
