//! ferricorn: a preforking WSGI HTTP server with gunicorn's command line.
//!
//! # Layout
//!
//! - [`config`]: the command line, parsed then validated into a [`config::Config`].
//! - [`listener`]: `--bind` addresses and the sockets the master binds once.
//! - [`arbiter`]: the master process: forks, reaps, respawns, reloads and stops workers.
//! - [`worker`]: a worker's boot (signals, app import) and the `sync` and `async` loops.
//! - [`http`]: the `ferricorn-http` crate (`crates/ferricorn-http`), re-exported: HTTP/1.1
//!   bytes (request heads and their limits, body decoding, response heads). No I/O, no
//!   Python, no gunicorn policy.
//! - [`forwarded`]: which front-end proxy headers to trust (`--forwarded-allow-ips`, ...).
//! - [`wsgi`]: the PEP 3333 bridge: environ, input (and `spool`, where bodies received before
//!   the app runs wait: memory within a budget, else a temporary file), start_response,
//!   file_wrapper. No sockets.
//! - [`heartbeat`]: the memory a worker and the master share: liveness, boot, request.
//! - [`hooks`]: gunicorn's server hooks from the config file.
//! - [`signals`]: signal handlers that only enqueue (self-pipe).
//! - [`reexec`]: USR2, a new master that inherits the sockets.
//! - [`reloader`]: `--reload`, inotify on the app's source files.
//! - [`systemd`]: socket activation and `sd_notify`.
//! - [`pidfile`]: the `--pid` file.
//! - [`process`]: fork, `--daemon`, process titles, `--user`/`--group`.
//! - [`log`]: the error log in gunicorn's layout, to stderr or `--error-logfile`.
//! - [`pylog`]: both logs through Python's `logging` when the config asks for it.
//! - [`exit`]: exit codes shared by master and workers.
//!
//! The Python package (`python/ferricorn`) holds the console script, the app loader, the
//! objects server hooks are handed (`_hooks`, `_settings`: gunicorn's `Arbiter`, `Worker`,
//! `Request`, `Config`) and the worker's timeout handler; `ferricorn.__main__` calls [`run`].

pub mod arbiter;
pub mod config;
pub mod exit;
pub mod forwarded;
pub mod heartbeat;
pub mod hooks;
pub mod listener;
pub mod log;
pub mod pidfile;
pub mod process;
pub mod pylog;
pub mod reexec;
pub mod reloader;
pub mod signals;
pub mod systemd;
pub mod worker;
pub mod wsgi;

/// The HTTP/1.1 layer, its own crate (`crates/ferricorn-http`): no I/O, no Python.
pub use ferricorn_http as http;

use pyo3::prelude::*;

use crate::arbiter::{Arbiter, Start};
use crate::config::Config;
use crate::listener::Listener;
use crate::log::LogLevel;

/// Runs ferricorn with `argv` (program name first); returns the process exit code.
#[pyfunction]
fn run(py: Python<'_>, argv: Vec<String>) -> i32 {
    log::init(LogLevel::Info);
    let config = match parse_command_line(py, &argv) {
        Ok(Some(config)) => config,
        Ok(None) => return exit::OK,
        Err(e) => {
            eprintln!("ferricorn: error: {e}");
            return exit::USAGE;
        }
    };
    log::init(config.log_level);
    let start_dir = std::env::current_dir().unwrap_or_else(|_| "/".into());
    if let Err(e) = prepare_process(py, &config) {
        eprintln!("ferricorn: error: {e}");
        return exit::USAGE;
    }
    if config.check_config {
        return check_config(py, &config);
    }
    hooks::configure(py, &config);
    // gunicorn's Arbiter sets its worker count, `old` None, before `on_starting`.
    hooks::call(py, hooks::Hook::NworkersChanged, (config.workers, None::<usize>));
    hooks::call(py, hooks::Hook::OnStarting, (config.workers,));
    if config.daemon {
        match process::daemonize(py, config.enable_stdio_inheritance) {
            Ok(true) => {}
            Ok(false) => return exit::OK,
            Err(e) => {
                eprintln!("ferricorn: error: --daemon: {e}");
                return exit::FAILURE;
            }
        }
    }
    let inherited = reexec::inherited();
    let (listeners, systemd) = match listeners(&config, &inherited) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let app = match config.preload {
        true => match worker::load_app(py, &config) {
            Ok(app) => Some(app),
            Err(message) => {
                worker::report_load_error(&config.app, &message);
                listeners.iter().for_each(Listener::unlink);
                return exit::APP_LOAD_ERROR;
            }
        },
        false => None,
    };
    process::set_title(&format!("ferricorn: master [{}]", config.proc_name));
    let start =
        Start { argv, listeners, systemd, old_master: inherited.old_master, app, start_dir };
    let arbiter = match Arbiter::new(config, start) {
        Ok(arbiter) => arbiter,
        Err(e) => {
            tracing::error!("Can't start the master: {e}");
            return exit::FAILURE;
        }
    };
    py.detach(|| arbiter.run())
}

/// `Ok(None)`: `--help` or `--version` was answered.
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
    let raw = config::gather(py, args)?;
    let config = Config::from_raw(&raw, &config::EnvDefaults::from_process())?;
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

/// `--check-config`: the settings parsed; now the app must load, here. What serving would
/// bind and run is printed, with every notice (a setting ignored, a worker mapped), so
/// "fine" is said only when nothing needs a second look.
fn check_config(py: Python<'_>, config: &Config) -> i32 {
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
    for notice in &config.notices {
        let kind = match notice.level {
            LogLevel::Debug => "ignored",
            LogLevel::Info => "note",
            _ => "warning",
        };
        println!("ferricorn: {kind}: {}", notice.text);
    }
    match worker::load_app(py, config) {
        Ok(_) if config.notices.is_empty() => {
            println!("ferricorn: the configuration and the app {:?} are fine", config.app);
            exit::OK
        }
        Ok(_) => {
            let n = config.notices.len();
            println!("ferricorn: the app {:?} loads; read the {n} note(s) above", config.app);
            exit::OK
        }
        Err(message) => {
            worker::report_load_error(&config.app, &message);
            exit::FAILURE
        }
    }
}

/// The sockets: handed over by the master before us (USR2), by systemd, or bound here.
/// `Err` is the exit code, the reason already logged.
fn listeners(config: &Config, inherited: &reexec::Inherited) -> Result<(Vec<Listener>, bool), i32> {
    let (fds, systemd) = match inherited.fds.is_empty() {
        false => (inherited.fds.clone(), inherited.systemd),
        true => (systemd::listen_fds(), true),
    };
    if !fds.is_empty() {
        let adopted: std::io::Result<Vec<Listener>> =
            fds.iter().map(|&fd| Listener::adopt(fd, !systemd)).collect();
        return adopted.map(|l| (l, systemd)).map_err(|e| {
            tracing::error!("Can't use the inherited sockets {fds:?}: {e}");
            exit::FAILURE
        });
    }
    let mut listeners = Vec::with_capacity(config.binds.len());
    for spec in &config.binds {
        match Listener::bind(spec, config.backlog, config.reuse_port) {
            Ok(listener) => listeners.push(listener),
            Err(e) => {
                tracing::error!("Can't bind {spec:?}: {e}");
                listeners.iter().for_each(Listener::unlink);
                return Err(exit::FAILURE);
            }
        }
    }
    Ok((listeners, false))
}

/// `--umask`, `--error-logfile`, `--chdir`, `-e` and `--pythonpath`, applied in the master
/// so every worker inherits them.
fn prepare_process(py: Python<'_>, config: &Config) -> Result<(), config::Error> {
    let fail = |what: String| config::Error(what);
    if let Some(mask) = config.umask {
        // SAFETY: umask has no preconditions.
        unsafe { libc::umask(mask) };
    }
    if let Some(path) = &config.errorlog {
        log::ERROR_LOG
            .open_file(path)
            .map_err(|e| fail(format!("--error-logfile {}: {e}", path.display())))?;
    }
    match &config.accesslog {
        None => {}
        Some(path) if path.as_os_str() == "-" => log::ACCESS_LOG.use_fd(libc::STDOUT_FILENO),
        Some(path) => log::ACCESS_LOG
            .open_file(path)
            .map_err(|e| fail(format!("--access-logfile {}: {e}", path.display())))?,
    }
    for sink in [&log::ERROR_LOG, &log::ACCESS_LOG] {
        if let (Some(fd), Some(user)) = (sink.file_fd(), &config.user) {
            // SAFETY: fchown of our own log descriptor, so workers can reopen it on USR1.
            unsafe { libc::fchown(fd, user.uid, config.group.unwrap_or(libc::gid_t::MAX)) };
        }
    }
    wsgi::access::set_format(&config.access_log_format);
    if config.capture_output && config.errorlog.is_some() {
        log::ERROR_LOG.capture_stdio();
    }
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
        pylog::install(py, config)
    };
    python().map_err(|e| fail(e.value(py).to_string()))
}

/// A log line from the Python side (config warnings, hook errors), in our layout.
#[pyfunction(name = "log")]
fn log_line(level: &str, message: &str) {
    let level = LogLevel::parse(level).unwrap_or(LogLevel::Error);
    if log::enabled(level) {
        log::write_line(level, message);
    }
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
    m.add_function(wrap_pyfunction!(hooks::requests_handled, m)?)?;
    m.add("ClientDisconnected", m.py().get_type::<wsgi::ClientDisconnected>())?;
    m.add_class::<wsgi::FileWrapper>()?;
    m.add_function(wrap_pyfunction!(wsgi::test_panic::panic_after_app, m)?)?;
    Ok(())
}
