//! The error log, in gunicorn's layout: `[2026-11-25 10:00:00 +0000] [PID] [INFO] message`.
//!
//! Code logs through `tracing`'s macros; this module is the one subscriber, writing each
//! event as one line with a single `write(2)` so lines from workers never interleave.
//! The log goes to stderr, or to `--error-logfile`, which USR1 reopens in place: the new
//! file is `dup2`'d onto the descriptor every writer uses, so no writer sees a gap.
//! When the config asks for Python logging, lines go to [`crate::pylog`] instead; with
//! `--log-syslog` they also go to [`crate::syslog`].

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// gunicorn's `--log-level` names, most verbose first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warning,
    Error,
    Critical,
}

impl LogLevel {
    pub fn parse(name: &str) -> Option<LogLevel> {
        match name.to_ascii_lowercase().as_str() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warning" | "warn" => Some(LogLevel::Warning),
            "error" => Some(LogLevel::Error),
            "critical" => Some(LogLevel::Critical),
            _ => None,
        }
    }

    fn of(level: &Level) -> LogLevel {
        match *level {
            Level::TRACE | Level::DEBUG => LogLevel::Debug,
            Level::INFO => LogLevel::Info,
            Level::WARN => LogLevel::Warning,
            Level::ERROR => LogLevel::Error,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
            LogLevel::Critical => "CRITICAL",
        }
    }
}

/// The threshold, changeable after start (the config is read after logging begins).
static THRESHOLD: AtomicUsize = AtomicUsize::new(LogLevel::Info as usize);

/// Installs the subscriber once per process; later calls only change the level. Once the
/// logs go through Python, the level is the `gunicorn.error` logger's and stays (HUP's
/// `--log-level` does not override the logging config).
pub fn init(level: LogLevel) {
    if !crate::pylog::active() {
        THRESHOLD.store(level as usize, Ordering::Relaxed);
    }
    let _ = tracing::subscriber::set_global_default(ErrorLog);
}

pub fn enabled(level: LogLevel) -> bool {
    level as usize >= THRESHOLD.load(Ordering::Relaxed)
}

struct ErrorLog;

impl Subscriber for ErrorLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        enabled(LogLevel::of(metadata.level()))
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let level = match event.metadata().target() {
            "critical" => LogLevel::Critical,
            _ => LogLevel::of(event.metadata().level()),
        };
        write_line(level, &message.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

/// Where one log goes: a descriptor every writer uses, and the file behind it, if any.
/// USR1 opens the path afresh and `dup2`s it onto the same descriptor, so writers racing
/// with the reopen see the old file or the new one, never a closed descriptor.
pub struct Sink {
    /// The descriptor every writer writes to; USR1 `dup2`s the reopened file onto it.
    fd: AtomicI32,
    /// The file behind `fd`, reopened on USR1; `None` for stderr or stdout.
    path: Mutex<Option<PathBuf>>,
    /// `--capture-output`: stdout and stderr are this file too, and are reopened with it.
    stdio: std::sync::atomic::AtomicBool,
}

impl Sink {
    const fn new(fd: RawFd) -> Sink {
        Sink {
            fd: AtomicI32::new(fd),
            path: Mutex::new(None),
            stdio: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn path(&self) -> Option<PathBuf> {
        self.path.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// From now on, in this process and the ones it forks, lines go to `path` (appended).
    pub fn open_file(&self, path: &Path) -> io::Result<()> {
        let fd = open_append(path)?.into_raw_fd();
        self.fd.store(fd, Ordering::Release);
        *self.path.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.to_owned());
        Ok(())
    }

    /// Lines go to an inherited descriptor (stdout for `--access-logfile -`).
    pub fn use_fd(&self, fd: RawFd) {
        self.fd.store(fd, Ordering::Release);
    }

    pub fn enabled(&self) -> bool {
        self.fd.load(Ordering::Relaxed) >= 0
    }

    fn reopen(&self) -> io::Result<()> {
        let Some(path) = self.path() else { return Ok(()) };
        let file = open_append(&path)?;
        let mut targets = vec![self.fd.load(Ordering::Acquire)];
        if self.stdio.load(Ordering::Relaxed) {
            targets.extend([libc::STDOUT_FILENO, libc::STDERR_FILENO]);
        }
        for target in targets {
            // SAFETY: dup2 onto our own log descriptors (see the type's comment).
            if unsafe { libc::dup2(file.as_raw_fd(), target) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// `--capture-output`: stdout and stderr go to this sink's file from now on.
    pub fn capture_stdio(&self) {
        let fd = self.fd.load(Ordering::Acquire);
        if self.path().is_none() || fd < 0 {
            return;
        }
        for target in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
            // SAFETY: dup2 of our log file onto the standard descriptors.
            unsafe { libc::dup2(fd, target) };
        }
        self.stdio.store(true, Ordering::Relaxed);
    }

    /// The file's descriptor (for `chown` to the workers' user), if the sink is a file.
    pub fn file_fd(&self) -> Option<RawFd> {
        self.path().map(|_| self.fd.load(Ordering::Acquire))
    }

    /// One whole buffer with as few `write(2)` calls as the kernel allows.
    pub fn write(&self, mut data: &[u8]) {
        let fd = self.fd.load(Ordering::Acquire);
        while !data.is_empty() && fd >= 0 {
            // SAFETY: writing from a live slice to our log descriptor.
            let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if n <= 0 {
                return;
            }
            data = &data[n as usize..];
        }
    }
}

/// The error log: stderr, or `--error-logfile`.
pub static ERROR_LOG: Sink = Sink::new(libc::STDERR_FILENO);
/// The access log: off (-1) unless `--access-logfile` is given.
pub static ACCESS_LOG: Sink = Sink::new(-1);

fn open_append(path: &Path) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// USR1: opens both log files afresh (after logrotate moved them) in this process, and
/// the Python logger's files when it is in use (its `reopen_files()`).
pub fn reopen() -> io::Result<()> {
    crate::pylog::reopen();
    ERROR_LOG.reopen()?;
    ACCESS_LOG.reopen()
}

/// One formatted line (or block, for tracebacks) to the error log; through Python's
/// `logging` when the config asks for it ([`crate::pylog`]).
pub fn write_line(level: LogLevel, message: &str) {
    crate::statsd::log_line(level);
    write_uncounted(level, message);
}

/// [`write_line`] without the statsd log counter: for an exception, which gunicorn counts
/// as `gunicorn.log.exception` only.
pub fn write_uncounted(level: LogLevel, message: &str) {
    if crate::pylog::write_line(level, message) {
        return;
    }
    crate::syslog::error(level, message);
    let mut line = String::with_capacity(48 + message.len());
    line.push('[');
    timestamp(&mut line);
    // SAFETY: getpid has no preconditions and cannot fail.
    let pid = unsafe { libc::getpid() };
    let _ = writeln!(line, "] [{pid}] [{}] {message}", level.label());
    ERROR_LOG.write(line.as_bytes());
}

/// Raw text to the error log, as `wsgi.errors` writes it (no prefix, like gunicorn's).
pub fn write_raw(text: &[u8]) {
    ERROR_LOG.write(text);
}

/// The local time now, and its offset from UTC as `+hhmm` (strftime's `%z`).
pub(crate) fn local_now() -> (libc::tm, String) {
    // SAFETY: time(NULL) and localtime_r with valid pointers to stack values are sound.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    let offset = tm.tm_gmtoff / 60;
    let sign = if offset < 0 { '-' } else { '+' };
    (tm, format!("{sign}{:02}{:02}", offset.abs() / 60, offset.abs() % 60))
}

/// Local time as `%Y-%m-%d %H:%M:%S %z`, gunicorn's `[%(asctime)s]` layout.
fn timestamp(out: &mut String) {
    let (tm, zone) = local_now();
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {zone}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
    );
}
