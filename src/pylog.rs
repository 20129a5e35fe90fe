//! The logs through Python's `logging`, when the config asks for it, as gunicorn does.
//!
//! With `logconfig_dict`, `--log-config`, `--log-config-json` or a `--logger-class` of its
//! own, gunicorn's error log and access log are Python loggers (`gunicorn.error`,
//! `gunicorn.access`) behind a logger object (`glogging.Logger` or the class named).
//! `ferricorn._logging` builds that object in the master, before the fork; from then on
//! every error log line goes to its `error`/`info`/... methods and every response to its
//! `access(resp, req, environ, request_time)`. Without such config nothing here is
//! installed: the native logs ([`crate::log`], [`crate::wsgi::access`]) serve, and no
//! Python call is made per request.

use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::config::Config;
use crate::log::LogLevel;

/// `ferricorn._logging`'s entry points, once its logger object exists.
struct Bridge {
    /// `log(level, message)`: one error log line.
    log: Py<PyAny>,
    /// `access(status, headers, sent, request_headers, environ, micros)`.
    access: Py<PyAny>,
    /// `reopen()`: USR1, the logger's `reopen_files()`.
    reopen: Py<PyAny>,
    /// `app_error("GET /path", exception)`: the logger's `exception(...)` for an app's failure.
    app_error: Py<PyAny>,
}

static BRIDGE: OnceLock<Bridge> = OnceLock::new();

/// Whether the logs go through Python (decided once, in the master, inherited by workers).
pub fn active() -> bool {
    BRIDGE.get().is_some()
}

/// Builds the logger object if the config asks for Python logging; the error log's level
/// is then the `gunicorn.error` logger's, as configured. Runs after `--chdir` and
/// `--pythonpath`, so a `--logger-class` or a handler class imports from the app's tree.
pub fn install(py: Python<'_>, config: &Config) -> PyResult<()> {
    let settings = PyDict::new(py);
    settings.set_item("loglevel", config.log_level.label().to_ascii_lowercase())?;
    let errorlog = config.errorlog.as_ref().map(|p| p.display().to_string());
    settings.set_item("errorlog", errorlog.unwrap_or_else(|| "-".into()))?;
    settings.set_item("accesslog", config.accesslog.as_ref().map(|p| p.display().to_string()))?;
    settings.set_item("access_log_format", &config.access_log_format)?;
    settings.set_item("capture_output", config.capture_output)?;
    settings.set_item("logconfig", config.logconfig.as_ref().map(|p| p.display().to_string()))?;
    let json = config.logconfig_json.as_ref().map(|p| p.display().to_string());
    settings.set_item("logconfig_json", json)?;
    settings.set_item("logger_class", config.logger_class.as_deref())?;
    settings.set_item("user", config.user.as_ref().map(|u| u.uid))?;
    settings.set_item("group", config.group)?;
    settings.set_item("proc_name", &config.proc_name)?;
    crate::syslog::python_settings(&settings, &config.raw)?;
    let module = py.import("ferricorn._logging")?;
    let level = module.call_method1("setup", (settings,))?;
    if level.is_none() {
        return Ok(());
    }
    // Before the bridge is set: from then on `log::init` leaves the level alone.
    crate::log::init(python_level(level.extract()?));
    let entry = |name: &str| module.getattr(name).map(Bound::unbind);
    let bridge = Bridge {
        log: entry("log")?,
        access: entry("access")?,
        reopen: entry("reopen")?,
        app_error: entry("app_error")?,
    };
    let _ = BRIDGE.set(bridge);
    Ok(())
}

/// Python's numeric level as ours: a message at `LogLevel` or above may be wanted.
fn python_level(level: i64) -> LogLevel {
    match level {
        ..=10 => LogLevel::Debug,
        11..=20 => LogLevel::Info,
        21..=30 => LogLevel::Warning,
        31..=40 => LogLevel::Error,
        _ => LogLevel::Critical,
    }
}

/// One error log line through the logger object; `false` when Python logging is off or
/// the call failed (the caller then writes the line natively).
pub fn write_line(level: LogLevel, message: &str) -> bool {
    let Some(bridge) = BRIDGE.get() else { return false };
    Python::attach(|py| {
        let name = level.label().to_ascii_lowercase();
        match bridge.log.call1(py, (name, message)) {
            Ok(_) => true,
            Err(e) => {
                e.print(py);
                false
            }
        }
    })
}

/// An app's exception, as gunicorn logs it: `log.exception("Error handling request %s
/// %s", method, uri)`, so the record's `exc_info` is the app's error. `false` when Python
/// logging is off or the call failed.
pub fn app_error(py: Python<'_>, request: &str, err: &PyErr) -> bool {
    let Some(bridge) = BRIDGE.get() else { return false };
    match bridge.app_error.call1(py, (request, err.value(py))) {
        Ok(_) => true,
        Err(e) => {
            e.print(py);
            false
        }
    }
}

/// What gunicorn's `Logger.access` is given for one response.
pub struct Access<'a, 'py> {
    /// The request's environ, gunicorn's `environ` argument.
    pub environ: &'a Bound<'py, PyDict>,
    /// The status line as the app gave it (`200 OK`).
    pub status: &'a str,
    /// The response headers, as the app gave them.
    pub headers: &'a [(String, String)],
    /// Every request header, names upper-case, as gunicorn's `req.headers`.
    pub request_headers: &'a [(String, String)],
    /// Body bytes sent: the response's `sent` for the `B` and `b` atoms.
    pub sent: u64,
    /// The request time in microseconds, gunicorn's `request_time`.
    pub micros: u128,
}

/// The response to the logger object's `access`. Its failure is logged, never raised.
pub fn access(record: &Access<'_, '_>) {
    let Some(bridge) = BRIDGE.get() else { return };
    let py = record.environ.py();
    let pairs = |list: &[(String, String)]| -> PyResult<Bound<'_, PyList>> {
        PyList::new(py, list.iter().map(|(n, v)| PyTuple::new(py, [n, v]).ok()))
    };
    let call = || -> PyResult<()> {
        let args = (
            record.status,
            pairs(record.headers)?,
            record.sent,
            pairs(record.request_headers)?,
            record.environ,
            record.micros,
        );
        bridge.access.call1(py, args).map(drop)
    };
    if let Err(e) = call() {
        let text = crate::wsgi::exchange::traceback(py, &e);
        crate::log::write_line(LogLevel::Error, &format!("Error in the access log:\n{text}"));
    }
}

/// USR1: the logger object's `reopen_files()`, in this process.
pub fn reopen() {
    let Some(bridge) = BRIDGE.get() else { return };
    Python::attach(|py| {
        if let Err(e) = bridge.reopen.call0(py) {
            e.print(py);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_levels() {
        let rows = [
            (0, LogLevel::Debug),
            (10, LogLevel::Debug),
            (20, LogLevel::Info),
            (25, LogLevel::Warning),
            (30, LogLevel::Warning),
            (40, LogLevel::Error),
            (50, LogLevel::Critical),
        ];
        for (level, want) in rows {
            assert_eq!(python_level(level), want, "{level}");
        }
    }
}
