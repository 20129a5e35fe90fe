//! ferricorn: a preforking WSGI HTTP server with gunicorn's command line.
//!
//! # Layout
//!
//! - [`config`]: the command line, parsed then validated into a [`config::Config`].
//! - [`listener`]: `--bind` addresses and the sockets the master binds once.
//! - [`arbiter`]: the master process: forks, reaps, respawns and stops workers.
//! - [`worker`]: a worker's boot (signals, app import) and the `sync` worker loop.
//! - [`http`]: HTTP/1.1 bytes: request heads, body decoding, response heads. No I/O, no Python.
//! - [`wsgi`]: the PEP 3333 bridge: environ, input, start_response, file_wrapper. No sockets.
//! - [`signals`]: signal handlers that only enqueue (self-pipe).
//! - [`log`]: the error log in gunicorn's layout.
//! - [`exit`]: exit codes shared by master and workers.
//!
//! The Python package (`python/ferricorn`) holds the console script and the app loader;
//! `ferricorn.__main__` calls [`run`].

pub mod arbiter;
pub mod config;
pub mod exit;
pub mod http;
pub mod listener;
pub mod log;
pub mod signals;
pub mod worker;
pub mod wsgi;

use pyo3::prelude::*;

use crate::config::{Config, EnvDefaults};
use crate::listener::Listener;
use crate::log::LogLevel;

/// Runs ferricorn with `argv` (program name first); returns the process exit code.
#[pyfunction]
fn run(py: Python<'_>, argv: Vec<String>) -> i32 {
    log::init(LogLevel::Info);
    let config = match parse_command_line(&argv) {
        Ok(Some(config)) => config,
        Ok(None) => return exit::OK,
        Err(e) => {
            eprintln!("ferricorn: error: {e}");
            return exit::USAGE;
        }
    };
    log::init(config.log_level);
    if let Err(e) = prepare_process(py, &config) {
        eprintln!("ferricorn: error: {e}");
        return exit::USAGE;
    }
    let mut listeners = Vec::with_capacity(config.binds.len());
    for spec in &config.binds {
        match Listener::bind(spec, config.backlog) {
            Ok(listener) => listeners.push(listener),
            Err(e) => {
                tracing::error!("Can't bind {spec:?}: {e}");
                listeners.iter().for_each(Listener::unlink);
                return exit::FAILURE;
            }
        }
    }
    let arbiter = match arbiter::Arbiter::new(config, listeners) {
        Ok(arbiter) => arbiter,
        Err(e) => {
            tracing::error!("Can't set up signal handling: {e}");
            return exit::FAILURE;
        }
    };
    py.detach(|| arbiter.run())
}

/// `Ok(None)`: `--help` or `--version` was answered.
fn parse_command_line(argv: &[String]) -> Result<Option<Config>, config::Error> {
    let raw = config::parse_args(argv.get(1..).unwrap_or_default())?;
    if raw.has("help") {
        print!("{}", config::help_text());
        return Ok(None);
    }
    if raw.has("version") {
        println!("ferricorn (version {})", env!("CARGO_PKG_VERSION"));
        return Ok(None);
    }
    Config::from_raw(&raw, &EnvDefaults::from_process()).map(Some)
}

/// `--chdir`, `-e` and `--pythonpath`, applied in the master so every worker inherits them.
fn prepare_process(py: Python<'_>, config: &Config) -> Result<(), config::Error> {
    let fail = |what: String| config::Error(what);
    if let Some(dir) = &config.chdir {
        std::env::set_current_dir(dir)
            .map_err(|e| fail(format!("--chdir {}: {e}", dir.display())))?;
    }
    let python = || -> PyResult<()> {
        let environ = py.import("os")?.getattr("environ")?;
        for (key, value) in &config.env {
            environ.set_item(key, value)?;
        }
        let cwd = std::env::current_dir()?.display().to_string();
        let mut paths = vec![cwd];
        paths.extend(config.pythonpath.iter().cloned());
        py.import("ferricorn._loader")?.call_method1("prepend_paths", (paths,))?;
        Ok(())
    };
    python().map_err(|e| fail(format!("setting up Python: {e}")))
}

#[pymodule]
fn _ferricorn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add("ClientDisconnected", m.py().get_type::<wsgi::ClientDisconnected>())?;
    m.add_class::<wsgi::FileWrapper>()?;
    Ok(())
}
