//! The error log, in gunicorn's layout: `[2026-11-25 10:00:00 +0000] [PID] [INFO] message`.
//!
//! Code logs through `tracing`'s macros; this module is the one subscriber, writing each
//! event as one line to stderr with a single `write` so lines from workers never interleave.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// gunicorn's `--log-level` names, most verbose first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
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

    fn label(self) -> &'static str {
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

/// Installs the subscriber once per process; later calls only change the level.
pub fn init(level: LogLevel) {
    THRESHOLD.store(level as usize, Ordering::Relaxed);
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

/// One formatted line (or block, for tracebacks) to stderr.
pub fn write_line(level: LogLevel, message: &str) {
    let mut line = String::with_capacity(48 + message.len());
    line.push('[');
    timestamp(&mut line);
    // SAFETY: getpid has no preconditions and cannot fail.
    let pid = unsafe { libc::getpid() };
    let _ = writeln!(line, "] [{pid}] [{}] {message}", level.label());
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Raw text to the error log, as `wsgi.errors` writes it (no prefix, like gunicorn's).
pub fn write_raw(text: &[u8]) {
    let _ = std::io::stderr().lock().write_all(text);
}

/// Local time as `%Y-%m-%d %H:%M:%S %z`, gunicorn's `[%(asctime)s]` layout.
fn timestamp(out: &mut String) {
    // SAFETY: time(NULL) and localtime_r with valid pointers to stack values are sound.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    let offset = tm.tm_gmtoff / 60;
    let sign = if offset < 0 { '-' } else { '+' };
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        offset.abs() / 60,
        offset.abs() % 60
    );
}
