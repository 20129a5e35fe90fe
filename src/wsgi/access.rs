//! The access log: one line per response, in gunicorn's format language.
//!
//! `--access-logformat` is Python %-formatting over gunicorn's atoms (`%(h)s`,
//! `%({user-agent}i)s`, ...). It is parsed once into [`Piece`]s; each line is then
//! rendered from the request's environ and the response, the way gunicorn's
//! `glogging.Logger.atoms` and `SafeAtoms` do it: unknown atoms print `-`, and string
//! values have `"` escaped as `\"`. When the logs go through Python, each response goes
//! to [`crate::pylog::access`] instead, and gunicorn's own code renders it.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::http::Head;
use crate::log::ACCESS_LOG;

/// gunicorn's `access_log_format` default.
pub const DEFAULT_FORMAT: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Atom(Atom),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    /// `h`, `l`, `u`, `t`, `r`, `s`, `m`, `U`, `q`, `H`, `b`, `B`, `f`, `a`, `T`, `M`, `D`,
    /// `L`, `p`: one letter each.
    Letter(char),
    /// `{name}i`: a request header, lower-case; its last value, as gunicorn's dict keeps.
    Request(String),
    /// `{name}o`: a response header, lower-case.
    Response(String),
    /// `{name}e`: an environ variable, lower-case (gunicorn lower-cases both sides).
    Environ(String),
    /// Anything else: gunicorn prints `-`.
    Unknown,
}

static FORMAT: OnceLock<Vec<Piece>> = OnceLock::new();

/// Lines rendered but not yet written (see [`flush`]).
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// A buffer this full is written at once.
const FLUSH_AT: usize = 64 * 1024;

/// Parses `--access-logformat` once, in the master, when the access log is on.
pub fn set_format(format: &str) {
    if ACCESS_LOG.enabled() || crate::syslog::access_on() {
        let _ = FORMAT.set(parse(format));
    }
}

/// Whether requests need what a log line is made from: the native log is on, or the
/// logs go through Python, where gunicorn calls the logger's `access` for every response.
pub fn enabled() -> bool {
    FORMAT.get().is_some() || crate::pylog::active()
}

/// What one line is made from.
pub struct Record<'a, 'py> {
    /// The request's environ: most atoms are read from it.
    pub environ: &'a Bound<'py, PyDict>,
    /// `200 OK`.
    pub status: &'a str,
    /// The response headers, for `{name}o` atoms.
    pub headers: &'a [(String, String)],
    /// Request headers the format names, from [`capture`].
    pub request_headers: &'a [(String, String)],
    /// Body bytes sent.
    pub sent: u64,
    /// From the app's call to the response's end: the `T`, `D`, `M` and `L` atoms.
    pub elapsed: Duration,
}

/// Sends the response's statsd metrics, and writes its line if the access log is on;
/// through the Python logger's `access` when the logs go through Python.
pub fn write(record: &Record<'_, '_>) {
    crate::statsd::request(record.status, record.elapsed);
    if crate::metrics::enabled() {
        count(record);
    }
    if crate::pylog::active() {
        crate::pylog::access(&crate::pylog::Access {
            environ: record.environ,
            status: record.status,
            headers: record.headers,
            request_headers: record.request_headers,
            sent: record.sent,
            micros: record.elapsed.as_micros(),
        });
        return;
    }
    let Some(pieces) = FORMAT.get() else { return };
    LINE.with_borrow_mut(|line| {
        line.clear();
        render(pieces, record, line);
        crate::syslog::access(line);
        if !ACCESS_LOG.enabled() {
            return;
        }
        line.push('\n');
        let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        pending.extend_from_slice(line.as_bytes());
        if pending.len() >= FLUSH_AT {
            ACCESS_LOG.write(&pending);
            pending.clear();
        }
    });
}

/// `--metrics-bind`: the response in this worker's counters (its method from the
/// environ, as the `m` atom reads it).
fn count(record: &Record<'_, '_>) {
    let py = record.environ.py();
    let method = record.environ.get_item(intern!(py, "REQUEST_METHOD")).ok().flatten();
    let method = method.as_ref().and_then(|m| m.cast::<PyString>().ok()?.to_str().ok());
    crate::metrics::request(method.unwrap_or(""), record.status, record.elapsed);
}

/// Writes the lines waiting in this process. The workers call it before they wait for
/// more work, so a line is never held while the worker is idle, and a busy worker
/// writes many lines with one `write(2)`.
pub fn flush() {
    if !enabled() {
        return;
    }
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    if !pending.is_empty() {
        ACCESS_LOG.write(&pending);
        pending.clear();
    }
}

/// The request headers the format names (lower-case names, latin-1 values), so that
/// `{name}i` shows the last of repeated headers as gunicorn does, not the environ's join.
/// Through Python, every header, names upper-case, as gunicorn's `req.headers`.
pub fn capture(head: &Head) -> Vec<(String, String)> {
    let latin1 = |value: &[u8]| value.iter().map(|&b| b as char).collect();
    if crate::pylog::active() {
        let upper = |name: &[u8]| String::from_utf8_lossy(name).to_ascii_uppercase();
        return head.fields().map(|(name, value)| (upper(name), latin1(value))).collect();
    }
    let Some(pieces) = FORMAT.get() else { return Vec::new() };
    let wanted: Vec<&str> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Atom(Atom::Request(name)) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    head.fields()
        .filter_map(|(name, value)| {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            wanted.contains(&name.as_str()).then(|| (name, latin1(value)))
        })
        .collect()
}

/// The environ gunicorn logs an error page with (`default_environ` and the peer): the
/// request line's parts only, no headers, no path.
pub fn bare_environ<'py>(environ: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
    let bare = PyDict::new(environ.py());
    for (key, value) in environ.iter() {
        let name: String = key.extract()?;
        let keep = name.starts_with("wsgi.")
            || matches!(
                name.as_str(),
                "SERVER_SOFTWARE"
                    | "REQUEST_METHOD"
                    | "QUERY_STRING"
                    | "RAW_URI"
                    | "SERVER_PROTOCOL"
                    | "REMOTE_ADDR"
                    | "REMOTE_PORT"
            );
        if keep {
            bare.set_item(key, value)?;
        }
    }
    Ok(bare)
}

/// `%(name)s` (any conversion letter; flags and width are accepted and ignored), `%%`.
fn parse(format: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        text.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('%') {
            text.push('%');
            rest = after;
            continue;
        }
        let Some(close) = rest.strip_prefix('(').and_then(|r| r.find(')').map(|i| (i, r))) else {
            text.push('%');
            continue;
        };
        let (end, inner) = close;
        let name = &inner[..end];
        let spec = &inner[end + 1..];
        let conv = spec.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(spec.len());
        rest = spec.get(conv + 1..).unwrap_or("");
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Atom(atom(name)));
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

fn atom(name: &str) -> Atom {
    let braced = |suffix: char| {
        name.strip_prefix('{')
            .and_then(|n| n.strip_suffix(suffix))
            .and_then(|n| n.strip_suffix('}'))
    };
    if let Some(header) = braced('i') {
        return Atom::Request(header.to_ascii_lowercase());
    }
    if let Some(header) = braced('o') {
        return Atom::Response(header.to_ascii_lowercase());
    }
    if let Some(var) = braced('e') {
        return Atom::Environ(var.to_lowercase());
    }
    let mut chars = name.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if "hlutrsmUqHbBfaTMDLp".contains(c) => Atom::Letter(c),
        _ => Atom::Unknown,
    }
}

fn render(pieces: &[Piece], record: &Record<'_, '_>, line: &mut String) {
    for piece in pieces {
        match piece {
            Piece::Text(text) => line.push_str(text),
            Piece::Atom(atom) => value(atom, record, line),
        }
    }
}

/// Appends one atom's value; strings have `"` escaped, as gunicorn's SafeAtoms does.
/// Over 60 lines on purpose (hot path, run per atom per request): one arm per gunicorn
/// atom, so the table reads whole and dispatches in one match.
fn value(atom: &Atom, record: &Record<'_, '_>, out: &mut String) {
    let py = record.environ.py();
    let env = |key: &Bound<'_, PyString>| environ_str(record.environ, key);
    // Appends an environ string in place, `missing` when the key is absent (hot path:
    // no copy of the value).
    let put = |out: &mut String, key: &Bound<'_, PyString>, missing: &str| match record
        .environ
        .get_item(key)
        .ok()
        .flatten()
    {
        Some(value) => match value.cast::<PyString>() {
            Ok(s) => match s.to_str() {
                Ok(text) => escape_into(out, text),
                Err(_) => escape_into(out, &s.to_string_lossy()),
            },
            Err(_) => out.push_str(&value.str().map(|s| s.to_string()).unwrap_or_default()),
        },
        None => out.push_str(missing),
    };
    let text = |out: &mut String, value: Option<Cow<'_, str>>| match value {
        Some(v) => escape_into(out, &v),
        None => out.push('-'),
    };
    let micros = record.elapsed.as_micros();
    match atom {
        Atom::Letter('h') => put(out, intern!(py, "REMOTE_ADDR"), "-"),
        Atom::Letter('l') => out.push('-'),
        Atom::Letter('u') => {
            text(out, env(intern!(py, "HTTP_AUTHORIZATION")).and_then(|a| basic_user(&a)))
        }
        Atom::Letter('t') => timestamp(out),
        Atom::Letter('r') => {
            put(out, intern!(py, "REQUEST_METHOD"), "None");
            out.push(' ');
            put(out, intern!(py, "RAW_URI"), "None");
            out.push(' ');
            put(out, intern!(py, "SERVER_PROTOCOL"), "None");
        }
        Atom::Letter('s') => {
            escape_into(out, record.status.split_whitespace().next().unwrap_or(""))
        }
        // gunicorn's `environ.get(...)` without a default: a missing key prints `None`.
        Atom::Letter('m') => put(out, intern!(py, "REQUEST_METHOD"), "None"),
        Atom::Letter('U') => put(out, intern!(py, "PATH_INFO"), "None"),
        Atom::Letter('q') => put(out, intern!(py, "QUERY_STRING"), "None"),
        Atom::Letter('H') => put(out, intern!(py, "SERVER_PROTOCOL"), "None"),
        Atom::Letter('b' | 'B') => {
            let _ = write!(out, "{}", record.sent);
        }
        Atom::Letter('f') => put(out, intern!(py, "HTTP_REFERER"), "-"),
        Atom::Letter('a') => put(out, intern!(py, "HTTP_USER_AGENT"), "-"),
        Atom::Letter('T') => {
            let _ = write!(out, "{}", record.elapsed.as_secs());
        }
        Atom::Letter('M') => {
            let _ = write!(out, "{}", micros / 1000);
        }
        Atom::Letter('D') => {
            let _ = write!(out, "{micros}");
        }
        Atom::Letter('L') => {
            let _ = write!(out, "{}.{:06}", micros / 1_000_000, micros % 1_000_000);
        }
        Atom::Letter('p') => {
            let _ = write!(out, "<{}>", std::process::id());
        }
        Atom::Request(name) => {
            let found = record.request_headers.iter().rev().find(|(n, _)| n == name);
            text(out, found.map(|(_, v)| Cow::Borrowed(v.as_str())));
        }
        Atom::Response(name) => {
            let found = record.headers.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name));
            text(out, found.map(|(_, v)| Cow::Borrowed(v.as_str())));
        }
        Atom::Environ(name) => environ_var(record.environ, name, out),
        Atom::Letter(_) | Atom::Unknown => out.push('-'),
    }
}

/// A string environ value; `None` when absent (gunicorn then prints `-`).
fn environ_str<'a>(environ: &Bound<'_, PyDict>, key: &Bound<'_, PyString>) -> Option<Cow<'a, str>> {
    let value = environ.get_item(key).ok().flatten()?;
    let text = match value.cast::<PyString>() {
        Ok(s) => s.to_cow().ok()?.into_owned(),
        Err(_) => value.str().ok()?.to_cow().ok()?.into_owned(),
    };
    Some(Cow::Owned(text))
}

/// `{var}e`: the environ key whose lower-case form is `name`.
fn environ_var(environ: &Bound<'_, PyDict>, name: &str, out: &mut String) {
    let direct = [name.to_uppercase(), name.to_owned()];
    let key = direct.into_iter().find(|k| environ.contains(k).unwrap_or(false)).or_else(|| {
        environ
            .keys()
            .iter()
            .filter_map(|k| k.extract::<String>().ok())
            .find(|k| k.to_lowercase() == name)
    });
    let Some(value) = key.and_then(|k| environ.get_item(k).ok().flatten()) else {
        out.push('-');
        return;
    };
    match value.cast::<PyString>() {
        Ok(s) => escape_into(out, &s.to_cow().map(|c| c.into_owned()).unwrap_or_default()),
        Err(_) => out.push_str(&value.str().map(|s| s.to_string()).unwrap_or_default()),
    }
}

/// The user of `Authorization: Basic ...`, as gunicorn's `_get_user`.
fn basic_user(header: &str) -> Option<Cow<'static, str>> {
    if !header.to_ascii_lowercase().starts_with("basic") {
        return None;
    }
    let (_, encoded) = header.split_once(' ')?;
    let decoded =
        crate::http::base64::decode(encoded.trim(), crate::http::base64::Alphabet::Standard)?;
    let user = decoded.split(|&b| b == b':').next()?;
    String::from_utf8(user.to_vec()).ok().map(Cow::Owned)
}

fn escape_into(out: &mut String, value: &str) {
    if value.contains('"') {
        out.push_str(&value.replace('"', "\\\""));
    } else {
        out.push_str(value);
    }
}

thread_local! {
    /// The line being rendered, reused from request to request.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    /// The last `t` rendered and the second it is for: it changes once a second.
    static STAMP: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

/// `[10/Oct/2026:13:55:36 +0000]`, gunicorn's `now()`, in local time.
fn timestamp(out: &mut String) {
    // SAFETY: time(NULL) has no preconditions.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    STAMP.with_borrow_mut(|(second, stamp)| {
        if *second != now {
            stamp.clear();
            render_timestamp(stamp);
            *second = now;
        }
        out.push_str(stamp);
    });
}

fn render_timestamp(out: &mut String) {
    use crate::http::date::MONTHS;
    let (tm, zone) = crate::log::local_now();
    let _ = write!(
        out,
        "[{:02}/{}/{:04}:{:02}:{:02}:{:02} {zone}]",
        tm.tm_mday,
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gunicorn_formats() {
        let pieces = parse(DEFAULT_FORMAT);
        assert_eq!(pieces[0], Piece::Atom(Atom::Letter('h')));
        assert_eq!(pieces[1], Piece::Text(" ".into()));
        assert_eq!(pieces.len(), 18);
        let pieces = parse("%% %({User-Agent}i)s %({X-App}o)-10s %({path_info}e)d %(zz)s %");
        assert_eq!(
            pieces,
            vec![
                Piece::Text("% ".into()),
                Piece::Atom(Atom::Request("user-agent".into())),
                Piece::Text(" ".into()),
                Piece::Atom(Atom::Response("x-app".into())),
                Piece::Text(" ".into()),
                Piece::Atom(Atom::Environ("path_info".into())),
                Piece::Text(" ".into()),
                Piece::Atom(Atom::Unknown),
                Piece::Text(" %".into()),
            ]
        );
        assert_eq!(
            parse("%({Content-Type}i)s"),
            vec![Piece::Atom(Atom::Request("content-type".into()))]
        );
    }

    #[test]
    fn basic_auth_user() {
        assert_eq!(basic_user("Basic dXNlcjpwYXNz").as_deref(), Some("user"));
        assert_eq!(basic_user("basic YWxpY2U=").as_deref(), Some("alice"));
        assert_eq!(basic_user("Bearer dXNlcjpwYXNz"), None);
        assert_eq!(basic_user("Basic !!!"), None);
    }

    #[test]
    fn escapes_quotes() {
        let mut out = String::new();
        escape_into(&mut out, r#"say "hi""#);
        assert_eq!(out, r#"say \"hi\""#);
    }
}
