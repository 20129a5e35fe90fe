//! Worker processes: boot (signals, app import), then serve until told to stop.
//!
//! A worker is forked by the arbiter and never returns into the master's Python stack:
//! [`run`] ends with `_exit`. Boot failures leave with the exit codes in [`crate::exit`]
//! so the master stops instead of respawning in a loop.

mod async_loop;
mod conn;
mod io;
mod pool;
pub mod sync;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;

use crate::config::{Config, WorkerClass};
use crate::exit;
use crate::listener::Listener;
use crate::log::{self, LogLevel};
use crate::signals::{self, ReportToken, SignalQueue};

/// What a worker inherits from the master.
pub struct WorkerContext<'a> {
    pub config: &'a Config,
    pub listeners: &'a [Listener],
    /// Shared with sibling workers: who prints an app load error.
    pub report: &'a ReportToken,
}

/// Signals the master's handlers no longer serve in a worker; default action restored.
const DEFAULT_IN_WORKER: [libc::c_int; 7] = [
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGWINCH,
    libc::SIGCHLD,
];

/// Runs a freshly forked worker to the end and exits the process.
pub fn run(py: Python<'_>, ctx: &WorkerContext<'_>) -> ! {
    tracing::info!("Booting worker with pid: {}", std::process::id());
    let code = match boot(py, ctx) {
        Ok((app, stop)) => {
            let code = match ctx.config.worker_class {
                WorkerClass::Sync => sync::serve(py, ctx, app.bind(py), &stop),
                WorkerClass::Async => async_loop::serve(py, ctx, app.bind(py), &stop),
            };
            tracing::info!("Worker exiting (pid: {})", std::process::id());
            code
        }
        Err(code) => code,
    };
    finalize(py);
    // SAFETY: _exit ends this forked process without unwinding into the master's frames.
    unsafe { libc::_exit(code) }
}

/// Boot: signal handling, then the app. The queue lives as long as the worker.
fn boot(py: Python<'_>, ctx: &WorkerContext<'_>) -> Result<(Py<PyAny>, Stop), i32> {
    signals::reset_default(&DEFAULT_IN_WORKER);
    let stop = Stop::install().map_err(|e| {
        tracing::error!("Worker failed to set up signals: {e}");
        exit::WORKER_BOOT_ERROR
    })?;
    let app = load_app(py, &ctx.config.app).map_err(|message| {
        if ctx.report.take() {
            let sep = if message.contains('\n') { "\n" } else { " " };
            let line =
                format!("Failed to load the application {:?}:{sep}{message}", ctx.config.app);
            log::write_line(LogLevel::Error, &line);
        }
        exit::APP_LOAD_ERROR
    })?;
    Ok((app, stop))
}

/// Imports the app through `ferricorn._loader`; the error is the text to show the user.
fn load_app(py: Python<'_>, spec: &str) -> Result<Py<PyAny>, String> {
    let loader = py.import("ferricorn._loader").map_err(|e| e.to_string())?;
    loader.call_method1("load", (spec,)).map(Bound::unbind).map_err(|err| {
        let is_ours = loader
            .getattr("AppLoadError")
            .is_ok_and(|cls| err.get_type(py).is_subclass(&cls).unwrap_or(false));
        match is_ours {
            true => err.value(py).to_string(),
            false => crate::wsgi::exchange::traceback(py, &err),
        }
    })
}

/// Runs the app's `atexit` handlers and flushes its stdio, as a Python process would.
fn finalize(py: Python<'_>) {
    if let Ok(atexit) = py.import("atexit") {
        let _ = atexit.call_method0("_run_exitfuncs");
    }
    if let Ok(sys) = py.import("sys") {
        for stream in ["stdout", "stderr"] {
            let _ = sys.getattr(stream).and_then(|s| s.call_method0("flush"));
        }
    }
}

/// A worker's stop signals: TERM stops gracefully after the current request;
/// INT and QUIT end the process at once.
pub struct Stop {
    queue: SignalQueue,
    graceful: Arc<AtomicBool>,
}

impl Stop {
    fn install() -> std::io::Result<Stop> {
        let graceful = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(libc::SIGTERM, Arc::clone(&graceful))?;
        for signal in [libc::SIGINT, libc::SIGQUIT] {
            // SAFETY: _exit is async-signal-safe; a fast stop abandons the request in flight.
            unsafe { signal_hook::low_level::register(signal, || libc::_exit(exit::OK)) }?;
        }
        Ok(Stop { queue: SignalQueue::new(&[libc::SIGTERM])?, graceful })
    }

    pub fn requested(&self) -> bool {
        self.graceful.load(Ordering::Relaxed)
    }

    /// The flag TERM sets, for code that must see a stop the moment it is asked for.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.graceful)
    }

    /// Readable when a stop signal arrives, so a worker waiting in poll(2) wakes up.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.queue.fd()
    }
}
