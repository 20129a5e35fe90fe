//! The WSGI `environ` dict (PEP 3333 "environ Variables"), built the way gunicorn builds it.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{intern, Py};

use crate::forwarded::{Policy, Verdict};
use crate::http::Head;
use crate::listener::Peer;
use crate::wsgi::{Errors, FileWrapper, Input};

/// What stays the same for every request a worker serves.
pub struct Globals {
    errors: Py<Errors>,
    file_wrapper: Py<PyAny>,
    version: Py<PyTuple>,
    software: Py<PyString>,
    /// `SCRIPT_NAME` from the server's environment: where the app is mounted.
    script_name: String,
    multiprocess: bool,
    multithread: bool,
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
        Ok(Globals {
            errors: Py::new(py, Errors)?,
            file_wrapper: py.get_type::<FileWrapper>().into_any().unbind(),
            version: PyTuple::new(py, [1, 0])?.unbind(),
            software: PyString::new(py, concat!("ferricorn/", env!("CARGO_PKG_VERSION"))).unbind(),
            script_name: std::env::var("SCRIPT_NAME").unwrap_or_default(),
            multiprocess,
            multithread,
            forwarded,
        })
    }
}

/// The connection a request came on.
pub struct Connection<'a> {
    pub peer: &'a Peer,
    /// SERVER_NAME and SERVER_PORT: the listener's address.
    pub server: &'a (String, String),
    /// What a trusted front-end proxy said of this request (judged per request).
    pub forwarded: &'a Verdict,
}

pub fn build<'py>(
    py: Python<'py>,
    head: &Head,
    conn: &Connection<'_>,
    globals: &Globals,
    input: Py<Input>,
) -> PyResult<Bound<'py, PyDict>> {
    let env = PyDict::new(py);
    let (path, query) = head.path_and_query();
    let path_info = latin1(&percent_decode(path.as_bytes()));
    let mounted = conn.forwarded.script_name.as_deref().unwrap_or(&globals.script_name);
    let script_name = mounted.trim_end_matches('/');
    let path_info = match path_info.strip_prefix(script_name) {
        Some(rest) if !script_name.is_empty() && (rest.is_empty() || rest.starts_with('/')) => rest,
        _ => path_info.as_str(),
    };
    env.set_item(intern!(py, "REQUEST_METHOD"), head.method())?;
    env.set_item(intern!(py, "SCRIPT_NAME"), script_name)?;
    env.set_item(intern!(py, "PATH_INFO"), path_info)?;
    env.set_item(intern!(py, "QUERY_STRING"), query)?;
    env.set_item(intern!(py, "RAW_URI"), head.target())?;
    env.set_item(intern!(py, "SERVER_PROTOCOL"), protocol(py, head.minor))?;
    env.set_item(intern!(py, "SERVER_NAME"), &conn.server.0)?;
    env.set_item(intern!(py, "SERVER_PORT"), &conn.server.1)?;
    env.set_item(intern!(py, "REMOTE_ADDR"), &conn.peer.addr)?;
    env.set_item(intern!(py, "REMOTE_PORT"), &conn.peer.port)?;
    env.set_item(intern!(py, "SERVER_SOFTWARE"), globals.software.bind(py))?;
    env.set_item(intern!(py, "wsgi.version"), globals.version.bind(py))?;
    let scheme = if conn.forwarded.https { intern!(py, "https") } else { intern!(py, "http") };
    env.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
    env.set_item(intern!(py, "wsgi.input"), input)?;
    env.set_item(intern!(py, "wsgi.errors"), globals.errors.bind(py))?;
    env.set_item(intern!(py, "wsgi.multithread"), globals.multithread)?;
    env.set_item(intern!(py, "wsgi.multiprocess"), globals.multiprocess)?;
    env.set_item(intern!(py, "wsgi.run_once"), false)?;
    env.set_item(intern!(py, "wsgi.input_terminated"), true)?;
    env.set_item(intern!(py, "wsgi.file_wrapper"), globals.file_wrapper.bind(py))?;
    add_headers(&env, head, &globals.forwarded, conn.forwarded.trusted)?;
    Ok(env)
}

fn protocol(py: Python<'_>, minor: u8) -> &Bound<'_, PyString> {
    match minor {
        0 => intern!(py, "HTTP/1.0"),
        _ => intern!(py, "HTTP/1.1"),
    }
}

/// `HTTP_*` keys; repeated fields joined with ","; names with `_` only when `policy`
/// allows them (they could pose as a dash-named header once mapped).
fn add_headers(
    env: &Bound<'_, PyDict>,
    head: &Head,
    policy: &Policy,
    trusted: bool,
) -> PyResult<()> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for (name, value) in head.fields() {
        if name.contains(&b'_')
            && !policy.keeps(&String::from_utf8_lossy(name).to_ascii_uppercase(), trusted)
        {
            continue;
        }
        let mut key = String::with_capacity(name.len() + 5);
        key.push_str("HTTP_");
        key.extend(
            name.iter().map(|&b| if b == b'-' { '_' } else { b.to_ascii_uppercase() as char }),
        );
        // By the mapped name, so `--header-map dangerous` lets `Content_Length` join
        // CONTENT_LENGTH, as it does in gunicorn.
        if matches!(&key[5..], "CONTENT_TYPE" | "CONTENT_LENGTH") {
            key.drain(..5);
        }
        let value = latin1(value);
        match keys.iter_mut().find(|(k, _)| *k == key) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            None => keys.push((key, value)),
        }
    }
    for (key, value) in keys {
        env.set_item(key, value)?;
    }
    Ok(())
}

/// Bytes as WSGI "bytes-as-str": each byte one code point (PEP 3333 "Unicode Issues").
fn latin1(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => s.to_owned(),
        _ => bytes.iter().map(|&b| b as char).collect(),
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
