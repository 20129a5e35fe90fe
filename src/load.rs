//! Loading the WSGI app: `APP_MODULE` (or `--paste`) to a callable, through
//! `ferricorn._loader`.
//!
//! A worker loads the app at boot; the master does with `--preload` and `--check-config`.
//! A failure is a [`LoadError`]: one line to show (its `Display`), the app's own traceback
//! when its code raised, and exit code 4 ([`exit::APP_LOAD_ERROR`], gunicorn's), which
//! tells the master to stop instead of respawning workers that would fail the same way.

use std::fmt;

use pyo3::prelude::*;

use crate::config::Config;
use crate::exit;
use crate::log::{self, LogLevel};

/// Why the app did not load. The Python loader raises `AppLoadError` with a `kind` that
/// picks the variant; any other exception is the app's (or PasteDeploy's) own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// `APP_MODULE` is not `module`, `module:name` or `module:factory(literals)`.
    Spec(String),
    /// The module, or the name in it, does not exist.
    NotFound(String),
    /// The app's own code raised: at import, or in its factory.
    Raised(Traceback),
    /// What `APP_MODULE` names, or what its factory returned, is `None` or not callable.
    NotCallable(String),
    /// `--paste`: PasteDeploy is missing, or the ini file does not give an app.
    Paste(Traceback),
    /// ferricorn's own loader could not be imported: a broken install.
    Loader(String),
}

/// A Python error as the operator reads it: one line, and the whole text when longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traceback {
    /// The exception's own line (`RuntimeError: kaboom`), the last of the traceback.
    summary: String,
    /// The traceback, the app's frames only; equal to `summary` when there is none.
    text: String,
}

impl Traceback {
    /// Splits a formatted traceback: its last line is the exception's.
    pub fn new(text: &str) -> Traceback {
        let text = text.trim_end();
        let summary = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(text);
        Traceback { summary: summary.trim().to_owned(), text: text.to_owned() }
    }
}

impl LoadError {
    /// The code a worker exits with when the app does not load.
    pub fn exit_code(&self) -> i32 {
        exit::APP_LOAD_ERROR
    }

    /// What the log shows: the traceback whole when the app's code raised.
    fn detail(&self) -> String {
        match self {
            LoadError::Raised(tb) | LoadError::Paste(tb) => tb.text.clone(),
            other => other.to_string(),
        }
    }

    /// Writes the error as one block of the error log; a generation of workers does so
    /// once, whichever worker takes its report token.
    pub fn report(&self, app: &str) {
        let detail = self.detail();
        let sep = if detail.contains('\n') { "\n" } else { " " };
        log::write_line(
            LogLevel::Error,
            &format!("Failed to load the application {app:?}:{sep}{detail}"),
        );
    }

    /// Reads the loader's `AppLoadError` (its `kind`), else the exception's traceback.
    fn from_python(py: Python<'_>, err: &PyErr, loader: &Bound<'_, PyModule>, paste: bool) -> Self {
        let ours = loader
            .getattr("AppLoadError")
            .is_ok_and(|cls| err.get_type(py).is_subclass(&cls).unwrap_or(false));
        if !ours {
            let tb = Traceback::new(&crate::wsgi::exchange::traceback(py, err));
            return if paste { LoadError::Paste(tb) } else { LoadError::Raised(tb) };
        }
        let message = err.value(py).to_string();
        let kind: String =
            err.value(py).getattr("kind").and_then(|k| k.extract()).unwrap_or_default();
        match (paste, kind.as_str()) {
            (true, _) => LoadError::Paste(Traceback::new(&message)),
            (false, "not_found") => LoadError::NotFound(message),
            (false, "raised") => LoadError::Raised(Traceback::new(&message)),
            (false, "not_callable") => LoadError::NotCallable(message),
            (false, _) => LoadError::Spec(message),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Spec(m) | LoadError::NotFound(m) | LoadError::NotCallable(m) => {
                f.write_str(m)
            }
            LoadError::Raised(tb) | LoadError::Paste(tb) => f.write_str(&tb.summary),
            LoadError::Loader(m) => write!(f, "ferricorn's app loader failed: {m}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Imports the app that `--paste` or `APP_MODULE` names and returns the WSGI callable.
pub fn load_app(py: Python<'_>, config: &Config) -> Result<Py<PyAny>, LoadError> {
    let loader =
        py.import("ferricorn._loader").map_err(|e| LoadError::Loader(e.value(py).to_string()))?;
    let loaded = match &config.paste {
        None => loader.call_method1("load", (config.app.as_str(),)),
        Some(paste) => py.import("ferricorn._config").and_then(|c| {
            let globals = pyo3::types::PyDict::new(py);
            for (k, v) in &paste.globals {
                globals.set_item(k, v)?;
            }
            c.call_method1("load_paste", (&paste.path, paste.name.as_str(), globals))
        }),
    };
    loaded
        .map(Bound::unbind)
        .map_err(|err| LoadError::from_python(py, &err, &loader, config.paste.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACEBACK: &str = "Traceback (most recent call last):\n  File \"app.py\", line 3, in \
                             <module>\n    raise RuntimeError('kaboom')\nRuntimeError: kaboom\n";

    /// Each variant: its one line, its exit code, and whether the log gets more than the
    /// line.
    #[test]
    fn display_exit_code_and_detail() {
        let rows: [(LoadError, &str, bool); 7] = [
            (
                LoadError::Spec("APP_MODULE ':app' names no module".into()),
                "APP_MODULE ':app' names no module",
                false,
            ),
            (LoadError::NotFound("no module named 'nope'".into()), "no module named 'nope'", false),
            (LoadError::Raised(Traceback::new(TRACEBACK)), "RuntimeError: kaboom", true),
            (
                LoadError::NotCallable("'m:x' is not callable (it is int)".into()),
                "'m:x' is not callable (it is int)",
                false,
            ),
            (
                LoadError::Paste(Traceback::new("--paste needs PasteDeploy")),
                "--paste needs PasteDeploy",
                false,
            ),
            (LoadError::Paste(Traceback::new(TRACEBACK)), "RuntimeError: kaboom", true),
            (
                LoadError::Loader("No module named 'ferricorn'".into()),
                "ferricorn's app loader failed: No module named 'ferricorn'",
                false,
            ),
        ];
        for (error, line, multiline) in rows {
            assert_eq!(error.to_string(), line, "{error:?}");
            assert!(!error.to_string().contains('\n'), "{error:?}");
            assert_eq!(error.exit_code(), 4, "{error:?}");
            assert_eq!(error.detail().contains('\n'), multiline, "{error:?}");
        }
    }

    #[test]
    fn traceback_summary_is_the_exception_line() {
        let syntax = "  File \"bad.py\", line 1\n    x = (\n        ^\nSyntaxError: '(' was never closed\n\n";
        let tb = Traceback::new(syntax);
        assert_eq!(tb.summary, "SyntaxError: '(' was never closed");
        assert_eq!(tb.text, syntax.trim_end());
        assert_eq!(Traceback::new("").summary, "");
    }
}
