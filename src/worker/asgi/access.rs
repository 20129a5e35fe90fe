//! The access log line of an ASGI response, in gunicorn's atoms: an environ made for the
//! line alone (the request line's parts, the peer, `HTTP_*` headers), as gunicorn's ASGI
//! worker builds one for its logger.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::conn::Logged;
use crate::http::request::split_target;
use crate::wsgi::access;
use crate::wsgi::environ::percent_decode;

/// Writes the line (and statsd's and the metrics' counts) of one response.
pub fn write(py: Python<'_>, logged: &Logged) -> PyResult<()> {
    let head = &logged.head;
    let environ = PyDict::new(py);
    let (path, query) = split_target(head.target());
    let path = String::from_utf8_lossy(&percent_decode(path.as_bytes())).into_owned();
    environ.set_item(intern!(py, "REQUEST_METHOD"), head.method())?;
    environ.set_item(intern!(py, "RAW_URI"), head.target())?;
    environ.set_item(intern!(py, "PATH_INFO"), path)?;
    environ.set_item(intern!(py, "QUERY_STRING"), query)?;
    let protocol = if head.minor == 0 { "HTTP/1.0" } else { "HTTP/1.1" };
    environ.set_item(intern!(py, "SERVER_PROTOCOL"), protocol)?;
    environ.set_item(intern!(py, "REMOTE_ADDR"), &logged.peer.addr)?;
    environ.set_item(intern!(py, "REMOTE_PORT"), &logged.peer.port)?;
    for (name, value) in head.fields() {
        let key: String = name
            .iter()
            .map(|&b| if b == b'-' { '_' } else { b.to_ascii_uppercase() as char })
            .collect();
        let value: String = value.iter().map(|&b| b as char).collect();
        environ.set_item(format!("HTTP_{key}"), value)?;
    }
    let status = format!("{} {}", logged.status, crate::http::reason(logged.status));
    access::write(&access::Record {
        environ: &environ,
        status: &status,
        headers: &logged.headers,
        request_headers: &access::capture(head),
        sent: logged.sent,
        elapsed: logged.started.elapsed(),
    });
    Ok(())
}
