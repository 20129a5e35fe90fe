//! Worker processes: boot (signals, app import), then serve until told to stop.
//!
//! Both loops serve connections over one [`transport::Transport`] (a socket, or [`tls`]) and
//! start every request through [`request::start`]: `sync` one connection at a time,
//! `async_loop` many, each a [`conn::Conn`] state machine, with [`pool`] threads for
//! `--threads` and streamed bodies. [`preamble`] reads what comes before HTTP on the raw
//! socket (a PROXY header), for both. [`io`] holds the waits bounded by `--read-timeout`,
//! [`output`] an async connection's queue of response bytes. [`handoff`] gives a
//! WebSocket upgrade request the connection's socket (`gunicorn.socket`).
//!
//! A worker is forked by the arbiter and never returns into the master's Python stack:
//! [`run`] ends with `_exit`. Boot failures leave with the exit codes in [`crate::exit`]
//! so the master stops instead of respawning in a loop.

mod asgi;
mod async_loop;
mod conn;
mod deadline;
mod front;
mod h2;
mod handoff;
mod io;
mod output;
mod pool;
pub mod preamble;
mod request;
pub mod sync;
pub mod tls;
mod transport;

use std::os::fd::RawFd;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use pyo3::prelude::*;

use crate::config::{Config, WorkerClass};
use crate::exit;
use crate::heartbeat::Pulse;
use crate::hooks::{self, Hook};
use crate::listener::Listener;
use crate::log::{self, LogLevel};
use crate::process;
use crate::signals::{self, ReportToken, SignalQueue};

/// What a worker writes into the master's signal pipe once it has booted; no signal has
/// this number.
pub const BOOTED_BYTE: u8 = 0;
/// How long a stopping worker waits for the first request of a connection it accepted
/// just before the stop (or for the PROXY header of one still reading it): its client may
/// have sent the request already. The async and asgi workers both give it.
pub const NEW_CONNECTION_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// Exit code of a worker the master aborted for a timeout (gunicorn's).
const ABORTED: i32 = 1;

/// What a worker inherits from the master.
pub struct WorkerContext<'a> {
    /// The settings, as the master validated them.
    pub config: &'a Config,
    /// The sockets to accept on (the worker's own copies once booted).
    pub listeners: &'a [Listener],
    /// Shared with sibling workers of the generation: who prints an app load error.
    pub report: &'a ReportToken,
    /// This worker's heartbeat page.
    pub pulse: Pulse,
    /// The app, when the master preloaded it.
    pub app: Option<&'a Py<PyAny>>,
    /// The master's signal pipe, written to once booted.
    pub master_wake: RawFd,
    /// `--reload`: where to report the app's source files.
    pub reload_feed: Option<RawFd>,
    /// Birth order among the master's workers (gunicorn's `age`), for hooks.
    pub age: u64,
}

/// This worker's heartbeat, set once at boot, for the loops deep down to beat and note
/// requests.
static PULSE: OnceLock<Pulse> = OnceLock::new();

pub(crate) fn pulse() -> Option<&'static Pulse> {
    PULSE.get()
}

/// The thread that runs the worker's loop (and, in a sync worker, the app).
static LOOP_THREAD: OnceLock<std::thread::ThreadId> = OnceLock::new();

/// A beat while waiting on a client, from the worker's own thread only: a thread the app
/// left blocked in `wsgi.input` must not keep a stuck worker looking alive.
pub(crate) fn beat_while_waiting() {
    if LOOP_THREAD.get() == Some(&std::thread::current().id()) {
        if let Some(pulse) = pulse() {
            pulse.beat();
        }
    }
    deadline::alive();
}

/// The app produced a piece of its response: the thread running it is not stuck (an app
/// thread streaming slowly must not look silent to `--timeout`).
pub(crate) fn request_alive() {
    deadline::alive();
}

/// Signals whose default action a worker needs back (the app may wait for children).
/// The master's other signals keep signal-hook's handler with no action left in the
/// worker: ignored here (a HUP or USR2 sent to the whole process group must not kill
/// workers), yet reset to default by `exec` in any program the app starts. USR1 and TERM
/// must keep that handler, since signal-hook never installs a handler twice.
const DEFAULT_IN_WORKER: [libc::c_int; 1] = [libc::SIGCHLD];

/// Runs a freshly forked worker to the end and exits the process.
pub fn run(py: Python<'_>, ctx: &WorkerContext<'_>) -> ! {
    tracing::info!("Booting worker with pid: {}", std::process::id());
    let _ = PULSE.set(ctx.pulse);
    let _ = LOOP_THREAD.set(std::thread::current().id());
    std::panic::set_hook(Box::new(log_panic));
    process::set_title(&format!("ferricorn: worker [{}]", ctx.config.proc_name));
    // A panic that no request-level guard caught ends the worker with its own exit code
    // (the hook has logged it), never unwinding into the master's Python frames.
    let code = std::panic::catch_unwind(AssertUnwindSafe(|| boot_and_serve(py, ctx)))
        .unwrap_or(exit::WORKER_PANIC);
    crate::wsgi::access::flush();
    finalize(py);
    // SAFETY: _exit ends this forked process without unwinding into the master's frames.
    unsafe { libc::_exit(code) }
}

fn boot_and_serve(py: Python<'_>, ctx: &WorkerContext<'_>) -> i32 {
    let (app, stop, listeners) = match boot(py, ctx) {
        Ok(booted) => booted,
        Err(code) => return code,
    };
    let ctx = WorkerContext { listeners: &listeners, ..*ctx };
    if let Some(limit) = ctx.config.request_timeout {
        deadline::watch(limit, ctx.config.worker_class == WorkerClass::Sync);
    }
    crate::metrics::set_threads(match ctx.config.worker_class {
        WorkerClass::Sync | WorkerClass::Asgi => 1,
        WorkerClass::Async => ctx.config.threads.max(1),
    });
    let code = match ctx.config.worker_class {
        WorkerClass::Sync => sync::serve(py, &ctx, app.bind(py), &stop),
        WorkerClass::Async => async_loop::serve(py, &ctx, app.bind(py), &stop),
        WorkerClass::Asgi => asgi::serve(py, &ctx, app.bind(py), &stop),
    };
    tracing::info!("Worker exiting (pid: {})", std::process::id());
    hooks::call(py, Hook::WorkerExit, (std::process::id(), ctx.age));
    code
}

/// A panic, in one line of the error log (Rust's own hook prints two, to stderr).
fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(text), _) => text,
        (None, Some(text)) => text.as_str(),
        (None, None) => "(no message)",
    };
    let thread = std::thread::current();
    let place = info.location().map_or(String::new(), |l| format!(" at {l}"));
    log::write_line(
        LogLevel::Error,
        &format!(
            "Panic on thread {}{place}: {message}",
            thread.name().map_or_else(|| format!("{:?}", thread.id()), str::to_owned)
        ),
    );
}

/// Boot: signal handling, sockets, identity, then the app; tells the master once done.
fn boot(py: Python<'_>, ctx: &WorkerContext<'_>) -> Result<(Py<PyAny>, Stop, Vec<Listener>), i32> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        tracing::error!("Worker failed to boot: {what}: {e}");
        exit::WORKER_BOOT_ERROR
    };
    signals::reset_default(&DEFAULT_IN_WORKER);
    let stop = Stop::install(py, request_budget(ctx.config)).map_err(|e| failed("signals", &e))?;
    // Blocked by the master across fork; any that came meanwhile are delivered now.
    signals::set_blocked(&signals::WORKER_SIGNALS, false);
    let listeners = own_listeners(ctx).map_err(|e| failed("--reuse-port", &e))?;
    process::switch_user(ctx.config.user.as_ref(), ctx.config.group, ctx.config.initgroups)
        .map_err(|e| failed("--user/--group", &e))?;
    let app = match ctx.app {
        Some(app) => app.clone_ref(py),
        None => crate::load::load_app(py, ctx.config).map_err(|error| {
            if ctx.report.take() {
                error.report(&ctx.config.app);
            }
            error.exit_code()
        })?,
    };
    if let Some(fd) = ctx.reload_feed {
        report_source_files(py, fd);
    }
    hooks::call(py, Hook::PostWorkerInit, (std::process::id(), ctx.age, app.bind(py)));
    ctx.pulse.booted();
    // SAFETY: one byte from a stack value into the master's (non-blocking) pipe.
    unsafe { libc::write(ctx.master_wake, [BOOTED_BYTE].as_ptr().cast(), 1) };
    Ok((app, stop, listeners))
}

/// The sockets this worker accepts on: the master's, and with `--reuse-port` one of its
/// own per TCP address (bound before any `--user` switch: the group needs one owner).
fn own_listeners(ctx: &WorkerContext<'_>) -> std::io::Result<Vec<Listener>> {
    let mut own = Vec::new();
    for listener in ctx.listeners {
        own.push(listener.share()?);
        if ctx.config.reuse_port {
            own.extend(listener.reuse_port_twin(ctx.config.backlog)?);
        }
    }
    Ok(own)
}

/// `--reload`: the paths of the app's modules, one per line, to the master.
fn report_source_files(py: Python<'_>, fd: RawFd) {
    let files: Vec<String> = match py
        .import("ferricorn._loader")
        .and_then(|l| l.call_method0("module_files"))
        .and_then(|f| f.extract())
    {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!("--reload: can't list the app's modules: {e}");
            return;
        }
    };
    for file in files {
        let line = format!("{file}\n");
        if line.len() <= libc::PIPE_BUF {
            // SAFETY: writing a live buffer to the master's feed pipe; one write of at
            // most PIPE_BUF bytes is atomic, so lines from several workers never mix.
            unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
        }
    }
}

/// `--max-requests` plus this worker's share of `--max-requests-jitter`; `None`: no limit.
fn request_budget(config: &Config) -> Option<u64> {
    if config.max_requests == 0 {
        return None;
    }
    let jitter = match config.max_requests_jitter {
        0 => 0,
        j => random_seed() % j.saturating_add(1),
    };
    Some(config.max_requests.saturating_add(jitter))
}

/// Good enough randomness for spreading restarts: the pid and the clock, mixed.
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mut x = (u64::from(std::process::id()) << 32) ^ nanos ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
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

/// A worker's signals and its reasons to stop. TERM stops gracefully after the current
/// requests; INT and QUIT end the process at once; USR1 asks for the log to be reopened;
/// SIGABRT (the master's timeout) raises an exception in the app, then ends the worker.
/// `Clone` (one signal pipe behind an `Arc`) so the `asgi` worker's Python-facing server
/// can hold it.
#[derive(Clone)]
pub struct Stop {
    /// The self-pipe TERM, USR1, INT and QUIT write to, so a wait in poll(2) wakes up.
    queue: Arc<SignalQueue>,
    /// TERM or `--max-requests`: finish the requests in flight, take no new ones.
    graceful: Arc<AtomicBool>,
    /// TERM itself, not `--max-requests`: the master wants this worker gone and no
    /// sibling may be left to take the connections waiting in the listen backlog.
    terminated: Arc<AtomicBool>,
    /// USR1: reopen the log files between requests.
    reopen: Arc<AtomicBool>,
    /// The master's timeout SIGABRT: leave with gunicorn's exit code once the app is out.
    aborted: Arc<AtomicBool>,
    /// INT or QUIT when a `worker_int` hook is defined (else they end the process at once).
    interrupted: Arc<AtomicBool>,
    /// `--max-requests`, counted by whichever loop serves the request.
    recycler: Recycler,
}

impl Stop {
    fn install(py: Python<'_>, budget: Option<u64>) -> std::io::Result<Stop> {
        let graceful = Arc::new(AtomicBool::new(false));
        let reopen = Arc::new(AtomicBool::new(false));
        let aborted = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(libc::SIGTERM, Arc::clone(&graceful))?;
        let terminated = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(libc::SIGTERM, Arc::clone(&terminated))?;
        signal_hook::flag::register(libc::SIGUSR1, Arc::clone(&reopen))?;
        let interrupted = Arc::new(AtomicBool::new(false));
        for signal in [libc::SIGINT, libc::SIGQUIT] {
            if hooks::defined(Hook::WorkerInt) {
                // The loop runs the hook, then exits, at its next turn.
                signal_hook::flag::register(signal, Arc::clone(&interrupted))?;
            } else {
                // SAFETY: _exit is async-signal-safe; a fast stop abandons the request in
                // flight.
                unsafe { signal_hook::low_level::register(signal, || libc::_exit(exit::OK)) }?;
            }
        }
        // Python's handler first (it raises WorkerTimeout in the app); signal-hook's flag
        // then runs ahead of it and chains to it.
        py.import("ferricorn._worker")
            .and_then(|m| m.call_method0("install_abort_handler"))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        signal_hook::flag::register(libc::SIGABRT, Arc::clone(&aborted))?;
        // The master's stack-dump signal, sent just before its SIGABRT: every thread's
        // stack to the error log.
        let log_fd = log::ERROR_LOG.file_fd().unwrap_or(libc::STDERR_FILENO);
        py.import("ferricorn._worker")
            .and_then(|m| {
                m.call_method1("install_stack_dump", (log_fd, crate::heartbeat::dump_signal()))
            })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let left = budget.map(|b| Arc::new(AtomicU64::new(b)));
        Ok(Stop {
            queue: Arc::new(SignalQueue::new(&[
                libc::SIGTERM,
                libc::SIGUSR1,
                libc::SIGINT,
                libc::SIGQUIT,
            ])?),
            interrupted,
            recycler: Recycler { left, stop: Arc::clone(&graceful) },
            graceful,
            terminated,
            reopen,
            aborted,
        })
    }

    /// Whether the stop came from TERM (rather than `--max-requests`, whose replacement
    /// shares the listeners).
    pub fn terminated(&self) -> bool {
        self.terminated.load(Ordering::Relaxed)
    }

    pub fn requested(&self) -> bool {
        self.graceful.load(Ordering::Relaxed)
    }

    /// The flag TERM sets, for code that must see a stop the moment it is asked for.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.graceful)
    }

    /// Readable when a signal arrives, so a worker waiting in poll(2) wakes up.
    pub fn fd(&self) -> RawFd {
        self.queue.fd()
    }

    /// Empties the signal pipe (it only wakes the loop; the flags carry the news).
    pub fn drain(&self) {
        self.queue.drain();
    }

    /// What the loops do between events: beat, reopen the log if USR1 asked. Returns the
    /// exit code when the master aborted this worker.
    pub fn between_requests(&self, py: Python<'_>) -> Option<i32> {
        if self.interrupted.load(Ordering::Relaxed) {
            hooks::call(py, Hook::WorkerInt, (std::process::id(), 0));
            return Some(exit::OK);
        }
        if let Some(pulse) = pulse() {
            pulse.leave();
        }
        if self.reopen.swap(false, Ordering::Relaxed) {
            crate::wsgi::access::flush();
            if let Err(e) = log::reopen() {
                tracing::error!("USR1: can't reopen the log file: {e}");
            }
        }
        self.aborted.load(Ordering::Relaxed).then_some(ABORTED)
    }

    pub fn recycler(&self) -> Recycler {
        self.recycler.clone()
    }
}

/// `--max-requests`: counts requests; the last one starts a graceful stop.
#[derive(Clone)]
pub struct Recycler {
    /// Requests left; `None`: no limit.
    left: Option<Arc<AtomicU64>>,
    /// The graceful-stop flag the last request sets.
    stop: Arc<AtomicBool>,
}

impl Recycler {
    pub fn count_request(&self) {
        let Some(left) = &self.left else { return };
        if left.fetch_sub(1, Ordering::Relaxed) == 1 {
            tracing::info!("Autorestarting worker after current request.");
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}
