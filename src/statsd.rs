//! statsd, as gunicorn 27's `gunicorn.instrument.statsd` sends it: one datagram per
//! metric, `PREFIX.NAME:VALUE|TYPE`, with `|#TAGS` appended under `--dogstatsd-tags`.
//!
//! The master connects one datagram socket (UDP, or a unix datagram socket for `unix:`
//! paths) before it forks, so every worker sends on the same one, as gunicorn's shared
//! logger does. Sends never block (`MSG_DONTWAIT`) and their errors are dropped: metrics
//! must never slow or fail a request. A socket that cannot connect at start sends nothing,
//! as gunicorn's `sock = None`.
//!
//! What is sent, and by whom, as in gunicorn: per request (worker) `gunicorn.requests` and
//! `gunicorn.request.status.NNN` counters and the `gunicorn.request.duration` timer in ms;
//! per warning, error, critical or exception log line a `gunicorn.log.LEVEL` counter; from
//! the master, the `gunicorn.workers` gauge when the count changes and, with
//! `--enable-backlog-metric`, the `gunicorn.backlog` histogram once per loop.

use std::net::{ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::config::Error;
use crate::log::LogLevel;

/// Where `--statsd-host` sends, parsed as gunicorn's `validate_statsd_address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `HOST:PORT` (port 8125 when left out), `[v6]:PORT`.
    Udp(String, u16),
    /// `unix:PATH` or `unix://PATH`: a unix datagram socket.
    Unix(PathBuf),
}

impl Address {
    /// gunicorn's `util.parse_address(val, default_port='8125')`, with its special case
    /// `unix:NNNN` meaning host `unix`, port NNNN.
    pub fn parse(value: &str) -> Result<Address, Error> {
        let bad = || Error(format!("--statsd-host {value:?}: expected HOST:PORT or unix:PATH"));
        if let Some(rest) = value.strip_prefix("unix:") {
            if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(Address::Udp("unix".to_owned(), rest.parse().map_err(|_| bad())?));
            }
            let path = rest.strip_prefix("//").unwrap_or(rest);
            return if path.is_empty() { Err(bad()) } else { Ok(Address::Unix(path.into())) };
        }
        let netloc = value.strip_prefix("tcp://").unwrap_or(value);
        let (host, port) = match netloc.strip_prefix('[').and_then(|v6| v6.split_once(']')) {
            Some((host, port)) => (host, port.strip_prefix(':').unwrap_or("8125")),
            None => netloc.split_once(':').unwrap_or((netloc, "8125")),
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        Ok(Address::Udp(host.to_ascii_lowercase(), port))
    }
}

/// The connected socket and what every line carries.
struct Sender {
    /// The connected datagram socket; `None` when connecting failed (nothing is sent).
    socket: Option<OwnedFd>,
    /// `--statsd-prefix` with one trailing `.` (gunicorn's rule), or empty.
    prefix: String,
    /// `--dogstatsd-tags`, appended as `|#TAGS` when not empty.
    tags: String,
}

/// Set once, in the master before the first fork; the workers inherit it.
static SENDER: OnceLock<Sender> = OnceLock::new();

/// Connects the socket for `address`; later calls (HUP) keep the first one.
pub fn configure(address: &Address, prefix: &str, tags: &str) {
    let socket = connect(address).ok();
    let _ = SENDER.set(Sender { socket, prefix: join_prefix(prefix), tags: tags.to_owned() });
}

fn connect(address: &Address) -> std::io::Result<OwnedFd> {
    match address {
        Address::Udp(host, port) => {
            let target = (host.as_str(), *port).to_socket_addrs()?.next();
            let target = target.ok_or(std::io::ErrorKind::NotFound)?;
            let bind = if target.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
            let socket = UdpSocket::bind(bind)?;
            socket.connect(target)?;
            Ok(socket.into())
        }
        Address::Unix(path) => {
            let socket = UnixDatagram::unbound()?;
            socket.connect(path)?;
            Ok(socket.into())
        }
    }
}

/// gunicorn's `sub(r"^(.+[^.]+)\.*$", "\g<1>.", prefix)`: trailing dots become one; a
/// prefix of one character or of dots only is kept as given.
fn join_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('.');
    match trimmed.len() >= 2 {
        true => format!("{trimmed}."),
        false => prefix.to_owned(),
    }
}

/// One metric, one datagram, if statsd is on. `kind` is the statsd type with its suffix
/// (`c|@1.0`, `ms`, `g`, `h`).
fn send(name: &str, value: std::fmt::Arguments<'_>, kind: &str) {
    let Some(Sender { socket: Some(socket), prefix, tags }) = SENDER.get() else { return };
    let mut line = format!("{prefix}{name}:{value}|{kind}");
    if !tags.is_empty() {
        line.push_str("|#");
        line.push_str(tags);
    }
    // SAFETY: sending from a live buffer on our own connected socket; MSG_DONTWAIT so a
    // full socket buffer drops the metric instead of blocking; errors ignored on purpose.
    unsafe { libc::send(socket.as_raw_fd(), line.as_ptr().cast(), line.len(), libc::MSG_DONTWAIT) };
}

/// Whether metrics are sent (the exchange then keeps what the request metrics need).
pub fn enabled() -> bool {
    SENDER.get().is_some()
}

/// gunicorn's `increment(name, 1)`.
pub fn increment(name: &str) {
    send(name, format_args!("1"), "c|@1.0");
}

/// gunicorn's `Statsd.access`: the duration timer, the request counter and the status
/// counter, for one response.
pub fn request(status: &str, elapsed: Duration) {
    if SENDER.get().is_none() {
        return;
    }
    let code = status.split_whitespace().next().and_then(|c| c.parse::<u16>().ok());
    let Some(code) = code else { return };
    send("gunicorn.request.duration", format_args!("{}", milliseconds(elapsed)), "ms");
    increment("gunicorn.requests");
    increment(&format!("gunicorn.request.status.{code}"));
}

/// The duration as gunicorn computes it: `seconds * 1000 + microseconds / 1000`, a float.
fn milliseconds(elapsed: Duration) -> String {
    let ms = elapsed.as_secs() as f64 * 1000.0 + f64::from(elapsed.subsec_micros()) / 1000.0;
    format!("{ms:?}")
}

/// The counter gunicorn's `Statsd` logger bumps for a line at `level`, if any.
pub fn log_line(level: LogLevel) {
    let name = match level {
        LogLevel::Critical => "gunicorn.log.critical",
        LogLevel::Error => "gunicorn.log.error",
        LogLevel::Warning => "gunicorn.log.warning",
        LogLevel::Info | LogLevel::Debug => return,
    };
    increment(name);
}

/// gunicorn's `gunicorn.workers` gauge (the master sends it when the count changes).
pub fn workers(count: usize) {
    send("gunicorn.workers", format_args!("{count}"), "g");
}

/// gunicorn's `gunicorn.backlog` histogram: connections waiting in the listen queues.
pub fn backlog(waiting: u64) {
    send("gunicorn.backlog", format_args!("{waiting}"), "h");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_gunicorn_reads_them() {
        let udp = |h: &str, p| Ok(Address::Udp(h.to_owned(), p));
        assert_eq!(Address::parse("localhost:9125"), udp("localhost", 9125));
        assert_eq!(Address::parse("LocalHost"), udp("localhost", 8125));
        assert_eq!(Address::parse("[::1]:9000"), udp("::1", 9000));
        assert_eq!(Address::parse("unix:1234"), udp("unix", 1234));
        assert_eq!(Address::parse("unix:/run/s.sock"), Ok(Address::Unix("/run/s.sock".into())));
        assert_eq!(Address::parse("unix:///run/s.sock"), Ok(Address::Unix("/run/s.sock".into())));
        assert!(Address::parse("localhost:port").is_err());
        assert!(Address::parse("localhost:99999").is_err());
    }

    #[test]
    fn prefix_joins_as_gunicorn() {
        assert_eq!(join_prefix(""), "");
        assert_eq!(join_prefix("web"), "web.");
        assert_eq!(join_prefix("web..."), "web.");
        assert_eq!(join_prefix("a.b."), "a.b.");
    }

    #[test]
    fn durations_in_float_milliseconds() {
        assert_eq!(milliseconds(Duration::from_micros(1_500)), "1.5");
        assert_eq!(milliseconds(Duration::from_secs(2)), "2000.0");
    }
}
