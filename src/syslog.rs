//! `--log-syslog`: the error log's lines, and the access log's unless
//! `--disable-redirect-access-to-syslog`, also go to a syslog receiver, byte for byte as
//! gunicorn's `logging.handlers.SysLogHandler` sends them:
//! `<PRI>gunicorn.PREFIX.error: [PID] message\0`, one datagram (or one write on a stream)
//! per line, PRI being `facility * 8 + severity`.
//!
//! The master opens the socket before forking, so every worker inherits it; a line is one
//! `send(2)` on a shared descriptor, with no lock, so lines never interleave and a fork
//! never inherits a held lock. A receiver that is not there yet is tried again on the next
//! line (as Python's handler reconnects a unix socket).

use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{IntoRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use crate::log::LogLevel;

/// gunicorn's `SYSLOG_FACILITIES`: the names `--log-syslog-facility` accepts.
const FACILITIES: &[(&str, u8)] = &[
    ("auth", 4),
    ("authpriv", 10),
    ("cron", 9),
    ("daemon", 3),
    ("ftp", 11),
    ("kern", 0),
    ("lpr", 6),
    ("mail", 2),
    ("news", 7),
    ("security", 4),
    ("syslog", 5),
    ("user", 1),
    ("uucp", 8),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Where the lines go, parsed from `--log-syslog-to` as gunicorn's `parse_syslog_address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `udp://HOST:PORT` (port 514 when left out).
    Udp(String, u16),
    /// `tcp://HOST:PORT`: the lines on one stream, each ending in NUL, as Python sends them.
    Tcp(String, u16),
    /// `unix://PATH`; `#dgram` allows only a datagram socket, otherwise a datagram socket
    /// is tried first and a stream second, as Python's handler does.
    Unix {
        /// The receiver's socket file (`/dev/log`).
        path: PathBuf,
        /// `#dgram`: no fall-back to a stream socket.
        dgram_only: bool,
    },
}

/// The syslog settings, checked when the config is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `--log-syslog-to`.
    pub address: Address,
    /// `--log-syslog-facility`, as its number.
    pub facility: u8,
    /// `gunicorn.PREFIX`: `--log-syslog-prefix`, else `--name` with `:` as `.`.
    pub program: String,
    /// Access lines go too (no `--disable-redirect-access-to-syslog`).
    pub access: bool,
}

/// `--log-syslog-to`'s value as gunicorn reads it; the error names what is wrong.
pub fn parse_address(addr: &str) -> Result<Address, String> {
    if let Some(rest) = addr.strip_prefix("unix://") {
        let (path, kind) = rest.split_once('#').unwrap_or((rest, ""));
        return Ok(Address::Unix { path: path.into(), dgram_only: kind == "dgram" });
    }
    let (rest, tcp) = match (addr.strip_prefix("udp://"), addr.strip_prefix("tcp://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return Err("invalid syslog address: expected udp://, tcp:// or unix://".into()),
    };
    let host = if rest.contains('[') && rest.contains(']') {
        rest.split(']').next().unwrap_or_default().get(1..).unwrap_or_default()
    } else {
        rest.split(':').next().unwrap_or_default()
    };
    let host = match host {
        "" => "localhost".to_owned(),
        host => host.to_ascii_lowercase(),
    };
    let tail = rest.rsplit(']').next().unwrap_or_default();
    let port = match tail.split_once(':') {
        None => 514,
        Some((_, port)) => match port.parse::<u16>() {
            Ok(n) if port.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(format!("{port:?} is not a valid port number")),
        },
    };
    Ok(if tcp { Address::Tcp(host, port) } else { Address::Udp(host, port) })
}

/// `--log-syslog-facility`'s number (case-insensitive, as gunicorn's lookup).
pub fn facility(name: &str) -> Option<u8> {
    let name = name.to_ascii_lowercase();
    FACILITIES.iter().find(|(n, _)| *n == name).map(|&(_, code)| code)
}

/// The facility names, for the error a bad one gets.
pub fn facility_names() -> String {
    FACILITIES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// The receiver, once `--log-syslog` is on.
struct Syslog {
    /// What the config asked for.
    settings: Settings,
    /// The connected socket every process sends on; -1 until a connect succeeds.
    fd: AtomicI32,
}

/// Set once, in the master, before the workers are forked.
static SYSLOG: OnceLock<Syslog> = OnceLock::new();

/// Turns syslog on for this process and the workers it forks. A receiver that cannot be
/// reached now is tried again with each line.
pub fn open(settings: &Settings) {
    let fd = connect(&settings.address).unwrap_or(-1);
    let _ = SYSLOG.set(Syslog { settings: settings.clone(), fd: AtomicI32::new(fd) });
}

/// Whether access lines go to syslog (so they are rendered even with no access log).
pub fn access_on() -> bool {
    SYSLOG.get().is_some_and(|s| s.settings.access)
}

/// One error log line, at its level.
pub fn error(level: LogLevel, message: &str) {
    if let Some(syslog) = SYSLOG.get() {
        syslog.send(severity(level), "error", message);
    }
}

/// One access log line (without its newline), at `info` as gunicorn logs it.
pub fn access(line: &str) {
    if let Some(syslog) = SYSLOG.get().filter(|s| s.settings.access) {
        syslog.send(6, "access", line);
    }
}

/// The five settings as given, for the `cfg` of a Python Logger (which adds gunicorn's
/// own `SysLogHandler` when the logs go through Python); absent ones read as gunicorn's
/// defaults there.
pub fn python_settings(
    settings: &pyo3::Bound<'_, pyo3::types::PyDict>,
    raw: &crate::config::RawArgs,
) -> pyo3::PyResult<()> {
    use pyo3::types::PyDictMethods;
    for flag in ["syslog", "disable_redirect_access_to_syslog"] {
        settings.set_item(flag, raw.has(flag))?;
    }
    for name in ["syslog_addr", "syslog_prefix", "syslog_facility"] {
        if let Some(value) = raw.all(name).last() {
            settings.set_item(name, value)?;
        }
    }
    Ok(())
}

/// Python's `SysLogHandler.mapPriority`: the severity for a level name.
fn severity(level: LogLevel) -> u8 {
    match level {
        LogLevel::Debug => 7,
        LogLevel::Info => 6,
        LogLevel::Warning => 4,
        LogLevel::Error => 3,
        LogLevel::Critical => 2,
    }
}

impl Syslog {
    /// One line; a failed send on a stream drops the socket so the next line reconnects.
    fn send(&self, severity: u8, log: &str, message: &str) {
        // SAFETY: getpid has no preconditions and cannot fail.
        let pid = unsafe { libc::getpid() };
        let pri = u32::from(self.settings.facility) * 8 + u32::from(severity);
        let program = &self.settings.program;
        let line = format!("<{pri}>{program}.{log}: [{pid}] {message}\0");
        let mut fd = self.fd.load(Ordering::Acquire);
        if fd < 0 {
            fd = self.reconnect(-1);
        }
        if fd >= 0
            && !send(fd, line.as_bytes())
            && !matches!(self.settings.address, Address::Udp(..))
        {
            let fd = self.reconnect(fd);
            if fd >= 0 {
                send(fd, line.as_bytes());
            }
        }
    }

    /// Replaces `old` (closed) by a new connection, unless another thread did already.
    fn reconnect(&self, old: RawFd) -> RawFd {
        let new = connect(&self.settings.address).unwrap_or(-1);
        match self.fd.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                if old >= 0 {
                    // SAFETY: `old` was our socket and no longer published.
                    unsafe { libc::close(old) };
                }
                new
            }
            Err(current) => {
                if new >= 0 {
                    // SAFETY: `new` was never published.
                    unsafe { libc::close(new) };
                }
                current
            }
        }
    }
}

/// One whole datagram (or stream write); false when the socket failed.
fn send(fd: RawFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        // SAFETY: sending from a live slice on our socket; MSG_NOSIGNAL spares us SIGPIPE.
        let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return false;
        }
        data = &data[n as usize..];
    }
    true
}

/// A connected socket to the receiver, as its descriptor.
fn connect(address: &Address) -> std::io::Result<RawFd> {
    Ok(match address {
        Address::Udp(host, port) => {
            let target = (host.as_str(), *port).to_socket_addrs()?.next();
            let target = target.ok_or_else(|| std::io::Error::other("no address"))?;
            let local = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let socket = UdpSocket::bind(local)?;
            socket.connect(target)?;
            socket.into_raw_fd()
        }
        Address::Tcp(host, port) => TcpStream::connect((host.as_str(), *port))?.into_raw_fd(),
        Address::Unix { path, dgram_only } => {
            let dgram = UnixDatagram::unbound().and_then(|s| s.connect(path).map(|()| s));
            match (dgram, dgram_only) {
                (Ok(socket), _) => socket.into_raw_fd(),
                (Err(e), true) => return Err(e),
                (Err(_), false) => UnixStream::connect(path)?.into_raw_fd(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_gunicorn_parses_them() {
        let udp = |h: &str, p| Ok(Address::Udp(h.to_owned(), p));
        assert_eq!(parse_address("udp://localhost:514"), udp("localhost", 514));
        assert_eq!(parse_address("udp://LogHost"), udp("loghost", 514));
        assert_eq!(parse_address("udp://:600"), udp("localhost", 600));
        assert_eq!(parse_address("udp://[::1]:5514"), udp("::1", 5514));
        assert_eq!(parse_address("tcp://10.0.0.1:6514"), Ok(Address::Tcp("10.0.0.1".into(), 6514)));
        let unix = |p: &str, d| Ok(Address::Unix { path: p.into(), dgram_only: d });
        assert_eq!(parse_address("unix:///dev/log"), unix("/dev/log", false));
        assert_eq!(parse_address("unix:///dev/log#dgram"), unix("/dev/log", true));
        assert_eq!(parse_address("unix:///dev/log#stream"), unix("/dev/log", false));
        assert!(parse_address("udp://host:abc").unwrap_err().contains("\"abc\""));
        assert!(parse_address("foo://x").is_err());
        assert!(parse_address("localhost:514").is_err());
    }

    #[test]
    fn facilities_and_severities() {
        assert_eq!(facility("user"), Some(1));
        assert_eq!(facility("LOCAL7"), Some(23));
        assert_eq!(facility("bogus"), None);
        assert_eq!(severity(LogLevel::Info), 6);
        assert_eq!(severity(LogLevel::Critical), 2);
    }
}
