//! ferricorn: a preforking WSGI (and ASGI) HTTP server with gunicorn's command line.
//!
//! # Layout
//!
//! - [`config`]: the command line, parsed then validated into a [`config::Config`].
//! - [`listener`]: `--bind` addresses and the sockets the master binds once.
//! - [`arbiter`]: the master process: forks, reaps, respawns, reloads and stops workers.
//! - [`worker`]: a worker's boot (signals, sockets, identity) and the `sync` and `async`
//!   loops, both over one `Transport` (a socket, or TLS: `worker/tls.rs`) and one way to start
//!   a request; the async connection is a state machine (`worker/conn.rs`) with unit tests
//!   over an in-memory transport. What comes before HTTP on the raw socket (the PROXY
//!   protocol header, `--proxy-protocol`) is `worker/preamble.rs`, for both loops. A
//!   WebSocket upgrade request's socket handed to the app (`gunicorn.socket`) is
//!   `worker/handoff.rs`. HTTP/2 on the async worker is `worker/h2/`: the `h2` crate
//!   polled from the loop (`h2/conn.rs`, over `h2/io.rs`'s adapter and flood counter),
//!   each stream a WSGI request on an app thread (`h2/wsgi.rs`), meeting the loop in
//!   `h2/stream.rs`; `Upgrade: h2c` replays its request to h2 as stream 1
//!   (`h2/upgrade.rs`); docs/http2.md.
//!   The `asgi` worker (`worker/asgi/`) is a third loop: Rust owns the sockets and HTTP/1.1
//!   (`asgi/conn.rs`, a state machine with unit tests; `asgi/core.rs`, the poll;
//!   `asgi/front.rs`, a PROXY header first) and, once the app accepts an upgrade,
//!   WebSocket frames (`asgi/ws.rs`); HTTP/2 on the same `h2/` engine, each stream an
//!   ASGI request that never waits on the loop (`asgi/http2.rs`); an asyncio loop on the
//!   same thread runs the app
//!   (`python/ferricorn/_asgi.py`, with `_asgi_hooks.py` and `_asgi_deadline.py`);
//!   docs/asgi.md.
//! - [`load`]: importing the app (`APP_MODULE`, `--paste`) and [`load::LoadError`].
//! - [`http`]: the `ferricorn-http` crate (`crates/ferricorn-http`), re-exported: HTTP/1.1
//!   bytes (request heads and their limits, body decoding, the response encoder and error
//!   pages). No I/O, no Python, no gunicorn policy.
//! - [`forwarded`]: which front-end proxy headers to trust (`--forwarded-allow-ips`, ...).
//! - [`wsgi`]: the PEP 3333 bridge: environ, input (and `spool`, where bodies received before
//!   the app runs wait: memory within a budget, else a temporary file), start_response,
//!   file_wrapper. No sockets.
//! - [`heartbeat`]: the memory a worker and the master share: liveness, boot, request, and
//!   each app thread's request (for `--timeout`'s report and `--request-timeout`'s watchdog,
//!   `worker/deadline.rs`).
//! - [`shared_page`]: the shared mapping behind a heartbeat and a worker's metrics page.
//! - [`hooks`]: gunicorn's server hooks from the config file.
//! - [`signals`]: signal handlers that only enqueue (self-pipe).
//! - [`reexec`]: USR2, a new master that inherits the sockets.
//! - [`reloader`]: `--reload`, inotify on the app's source files.
//! - [`systemd`]: socket activation and `sd_notify`.
//! - [`tls`]: `--certfile` and the TLS settings, loaded into the `rustls::ServerConfig`
//!   that `worker/tls.rs`'s transport makes each connection's session from: `--ciphers`
//!   and `--ssl-version` as rustls suites and versions, `--ca-certs`/`--cert-reqs` as a
//!   client-certificate verifier, the client certificate's environ keys, and kTLS
//!   (`tls/ktls.rs`: a finished session's keys handed to the kernel, for `sendfile`).
//! - [`pidfile`]: the `--pid` file.
//! - [`process`]: fork, `--daemon`, process titles, `--user`/`--group`.
//! - [`log`]: the error log in gunicorn's layout, to stderr or `--error-logfile`.
//! - [`pylog`]: both logs through Python's `logging` when the config asks for it.
//! - [`syslog`]: `--log-syslog`, both logs also to a syslog receiver, as gunicorn sends them.
//! - [`control`]: `--control-socket`, gunicorn's control protocol (`gunicornc`), served by
//!   the master's loop without blocking.
//! - [`metrics`]: `--metrics-bind`: Prometheus metrics the workers count in shared memory
//!   and the master serves; `--max-queue-time`.
//! - [`statsd`]: `--statsd-host`: gunicorn's statsd metrics, one non-blocking datagram each.
//! - [`exit`]: exit codes shared by master and workers, and [`exit::BootError`]: each way
//!   the master can fail to start, with its code.
//!
//! The Python package (`python/ferricorn`) holds the console script, the app loader, the
//! objects server hooks are handed (`_hooks`, `_settings`: gunicorn's `Arbiter`, `Worker`,
//! `Request`, `Config`) and the worker's timeout handler; `ferricorn.__main__` calls [`run`].

pub mod arbiter;
pub mod config;
pub mod control;
pub mod exit;
pub mod forwarded;
pub mod heartbeat;
pub mod hooks;
pub mod listener;
pub mod load;
pub mod log;
pub mod metrics;
pub mod pidfile;
pub mod process;
pub mod pylog;
pub mod reexec;
pub mod reloader;
pub mod shared_page;
pub mod signals;
pub mod statsd;
pub mod syslog;
pub mod systemd;
pub mod tls;
pub mod worker;
pub mod wsgi;

/// The HTTP/1.1 layer, its own crate (`crates/ferricorn-http`): no I/O, no Python.
pub use ferricorn_http as http;

use pyo3::prelude::*;

use crate::arbiter::{Arbiter, Start};
use crate::config::Config;
use crate::exit::BootError;
use crate::listener::Listener;
use crate::log::LogLevel;

/// Runs ferricorn with `argv` (program name first); returns the process exit code.
#[pyfunction]
fn run(py: Python<'_>, argv: Vec<String>) -> i32 {
    log::init(LogLevel::Info);
    match boot(py, argv) {
        Ok(Some(arbiter)) => py.detach(|| arbiter.run()),
        Ok(None) => exit::OK,
        Err(error) => {
            error.report();
            error.exit_code()
        }
    }
}

/// Everything before the master loop, in gunicorn's order: settings, the process's
/// set-up, `on_starting`, `--daemon`, the sockets, `--preload`, the pidfile. `Ok(None)`:
/// nothing to serve (`--help`, `--check-config`, the parent `--daemon` leaves).
fn boot(py: Python<'_>, argv: Vec<String>) -> Result<Option<Arbiter>, BootError> {
    let Some(config) = parse_command_line(py, &argv)? else { return Ok(None) };
    log::init(config.log_level);
    let start_dir = std::env::current_dir().unwrap_or_else(|_| "/".into());
    prepare_process(py, &config)?;
    if config.check_config {
        return check_config(py, &config).map(|()| None);
    }
    hooks::configure(py, &config);
    // gunicorn's Arbiter sets its worker count, `old` None, before `on_starting`.
    hooks::call(py, hooks::Hook::NworkersChanged, (config.workers, None::<usize>));
    hooks::call(py, hooks::Hook::OnStarting, (config.workers,));
    if config.daemon {
        let in_daemon = process::daemonize(py, config.enable_stdio_inheritance)
            .map_err(BootError::Daemonize)?;
        if !in_daemon {
            return Ok(None);
        }
    }
    let inherited = reexec::inherited();
    let (listeners, systemd) = listeners(&config, &inherited)?;
    let old_master = inherited.old_master;
    let mut start = Start { argv, listeners, systemd, old_master, app: None, start_dir };
    if config.preload {
        match load::load_app(py, &config) {
            Ok(app) => start.app = Some(app),
            Err(error) => {
                start.release_sockets();
                return Err(BootError::Preload { app: config.app.clone(), error });
            }
        }
    }
    process::set_title(&format!("ferricorn: master [{}]", config.proc_name));
    Arbiter::new(config, start).map(Some)
}

/// `Ok(None)`: `--help`, `--version` or `--print-config` was answered.
fn parse_command_line(py: Python<'_>, argv: &[String]) -> Result<Option<Config>, config::Error> {
    let args = argv.get(1..).unwrap_or_default();
    let raw = config::parse_args(args)?;
    if raw.has("help") {
        print!("{}", config::help_text());
        return Ok(None);
    }
    if raw.has("version") {
        println!("ferricorn (version {})", env!("CARGO_PKG_VERSION"));
        return Ok(None);
    }
    let config = config::load(py, args)?;
    if !config.check_config {
        for notice in config.notices.iter().filter(|n| n.level >= config.log_level) {
            log::write_line(notice.level, &notice.text);
        }
    }
    if config.print_config {
        print!("{}", config::print_config(&config));
        return Ok(None);
    }
    Ok(Some(config))
}

/// What `--check-config` says of how requests arrive, beyond the bind line: TLS, a PROXY
/// header, uwsgi packets.
fn fronts(config: &Config) -> Vec<String> {
    let mut fronts = Vec::new();
    if let Some(tls) = &config.tls {
        fronts.push(format!("serve TLS with the certificate {}", tls.certfile.display()));
    }
    if let Some(mode) = config.proxy_protocol.mode {
        let mode = format!("{mode:?}").to_lowercase();
        fronts.push(format!("read a PROXY header ({mode}) first on each connection"));
    }
    if config.protocol != config::Protocol::Http {
        fronts.push("read uwsgi packets, not HTTP requests".to_owned());
    }
    fronts
}

/// `--check-config`: the settings parsed; now the app must load, here. What serving would
/// bind and run is printed, with every notice (a setting ignored, a worker mapped), so
/// "fine" is said only when nothing needs a second look.
fn check_config(py: Python<'_>, config: &Config) -> Result<(), BootError> {
    let binds: Vec<String> = config.binds.iter().map(ToString::to_string).collect();
    let threads = match config.worker_class {
        config::WorkerClass::Async if config.threads > 1 => {
            format!(" with {} app threads", config.threads)
        }
        _ => String::new(),
    };
    println!(
        "ferricorn: would bind {} and run {} {} worker(s){threads}",
        binds.join(", "),
        config.workers,
        config.worker_class.name()
    );
    for front in fronts(config) {
        println!("ferricorn: would {front}");
    }
    for notice in &config.notices {
        let kind = match notice.level {
            LogLevel::Debug => "ignored",
            LogLevel::Info => "note",
            _ => "warning",
        };
        println!("ferricorn: {kind}: {}", notice.text);
    }
    let loaded = load::load_app(py, config)
        .map_err(|error| BootError::Check { app: config.app.clone(), error })?;
    drop(loaded);
    match config.notices.len() {
        0 => println!("ferricorn: the configuration and the app {:?} are fine", config.app),
        n => println!("ferricorn: the app {:?} loads; read the {n} note(s) above", config.app),
    }
    Ok(())
}

/// The sockets: handed over by the master before us (USR2), by systemd, or bound here.
fn listeners(
    config: &Config,
    inherited: &reexec::Inherited,
) -> Result<(Vec<Listener>, bool), BootError> {
    let (fds, systemd) = match inherited.fds.is_empty() {
        false => (inherited.fds.clone(), inherited.systemd),
        true => (systemd::listen_fds(), true),
    };
    if !fds.is_empty() {
        let adopted: std::io::Result<Vec<Listener>> =
            fds.iter().map(|&fd| Listener::adopt(fd, !systemd)).collect();
        return adopted.map(|l| (l, systemd)).map_err(|error| BootError::Inherited { fds, error });
    }
    let mut listeners = Vec::with_capacity(config.binds.len());
    for spec in &config.binds {
        match Listener::bind(spec, config.backlog, config.reuse_port) {
            Ok(listener) => listeners.push(listener),
            Err(error) => {
                listeners.iter().for_each(Listener::unlink);
                return Err(BootError::Bind { spec: spec.to_string(), error });
            }
        }
    }
    Ok((listeners, false))
}

/// `--umask`, `--error-logfile`, `--chdir`, `-e` and `--pythonpath`, applied in the master
/// so every worker inherits them.
fn prepare_process(py: Python<'_>, config: &Config) -> Result<(), BootError> {
    if let Some(mask) = config.umask {
        // SAFETY: umask has no preconditions.
        unsafe { libc::umask(mask) };
    }
    if let Some(path) = &config.errorlog {
        log::ERROR_LOG.open_file(path).map_err(path_error("--error-logfile", path))?;
    }
    match &config.accesslog {
        None => {}
        Some(path) if path.as_os_str() == "-" => log::ACCESS_LOG.use_fd(libc::STDOUT_FILENO),
        Some(path) => {
            log::ACCESS_LOG.open_file(path).map_err(path_error("--access-logfile", path))?
        }
    }
    for sink in [&log::ERROR_LOG, &log::ACCESS_LOG] {
        if let (Some(fd), Some(user)) = (sink.file_fd(), &config.user) {
            // SAFETY: fchown of our own log descriptor, so workers can reopen it on USR1.
            unsafe { libc::fchown(fd, user.uid, config.group.unwrap_or(libc::gid_t::MAX)) };
        }
    }
    if let Some(settings) = &config.syslog {
        syslog::open(settings);
    }
    wsgi::access::set_format(&config.access_log_format);
    if let Some(address) = &config.statsd_host {
        statsd::configure(address, &config.statsd_prefix, &config.dogstatsd_tags);
    }
    if config.capture_output && config.errorlog.is_some() {
        log::ERROR_LOG.capture_stdio();
    }
    if let Some(dir) = &config.chdir {
        std::env::set_current_dir(dir).map_err(path_error("--chdir", dir))?;
    }
    prepare_python(py, config).map_err(|e| BootError::Python(e.value(py).to_string()))
}

/// `-e` into `os.environ`, the working directory and `--pythonpath` onto `sys.path`, and
/// `--log-config*` into `logging`.
fn prepare_python(py: Python<'_>, config: &Config) -> PyResult<()> {
    let environ = py.import("os")?.getattr("environ")?;
    for (key, value) in &config.env {
        environ.set_item(key, value)?;
    }
    let cwd = std::env::current_dir()?.display().to_string();
    let mut paths = vec![cwd];
    paths.extend(config.pythonpath.iter().cloned());
    py.import("ferricorn._loader")?.call_method1("prepend_paths", (paths,))?;
    pylog::install(py, config)
}

/// The error of a setting that names a path the system refused.
fn path_error(
    flag: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> BootError {
    let path = path.to_owned();
    move |error| BootError::Path { flag, path, error }
}

/// A log line from the Python side (config warnings, hook errors), in our layout.
#[pyfunction(name = "log")]
fn log_line(level: &str, message: &str) {
    let level = LogLevel::parse(level).unwrap_or(LogLevel::Error);
    if log::enabled(level) {
        log::write_line(level, message);
    }
}

/// An exception's line in the error log, counted as gunicorn counts `log.exception(...)`
/// (`gunicorn.log.exception` only): for the asgi worker's Python side.
#[pyfunction]
fn log_exception(message: &str) {
    crate::statsd::increment("gunicorn.log.exception");
    log::write_uncounted(LogLevel::Error, message);
}

/// The settings reference table, for `make docs` and the test that keeps the page true.
#[pyfunction]
fn settings_markdown() -> String {
    config::settings_markdown()
}

#[pymodule]
fn _ferricorn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(settings_markdown, m)?)?;
    m.add_function(wrap_pyfunction!(log_line, m)?)?;
    m.add_function(wrap_pyfunction!(log_exception, m)?)?;
    m.add_function(wrap_pyfunction!(hooks::requests_handled, m)?)?;
    m.add("ClientDisconnected", m.py().get_type::<wsgi::ClientDisconnected>())?;
    m.add_class::<wsgi::FileWrapper>()?;
    m.add_function(wrap_pyfunction!(wsgi::test_panic::panic_after_app, m)?)?;
    Ok(())
}
