//! Listening sockets: `--bind` addresses parsed, bound once by the master, shared by workers.
//!
//! Sockets are non-blocking so a worker can wait on several of them (and on its signal
//! pipe) and accept from whichever is ready.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::config;

/// A master-side listener's rest after an accept error other than "none waiting" (no
/// descriptor left: EMFILE, ENFILE, ENOBUFS). The connection stays in the backlog, so the
/// listener stays readable: polled on, it would spin the master's loop until a
/// descriptor frees. The control socket and the metrics endpoint leave it out of the poll
/// for [`AcceptPause::REST`] instead.
#[derive(Debug, Default)]
pub struct AcceptPause {
    /// When the listener is polled and accepted from again.
    until: Option<Instant>,
}

impl AcceptPause {
    /// How long a listener rests.
    pub const REST: Duration = Duration::from_secs(1);

    /// Whether to leave the listener out of the poll.
    pub fn resting(&self) -> bool {
        self.until.is_some()
    }

    /// Whether accepting must wait still; ends the rest once it is over.
    pub fn holds(&mut self, now: Instant) -> bool {
        match self.until {
            Some(until) if now < until => true,
            _ => {
                self.until = None;
                false
            }
        }
    }

    /// Rests after `error` (logged at debug level, naming `what`).
    pub fn rest(&mut self, now: Instant, what: &str, error: &io::Error) {
        tracing::debug!("{what} accept failed: {error}; paused for a second");
        self.until = Some(now + Self::REST);
    }
}

/// One `--bind` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSpec {
    /// A host name or IP literal, resolved at bind time.
    Tcp {
        /// As written, lower-cased; resolved when bound.
        host: String,
        /// 8000 when the value gives none (gunicorn's default).
        port: u16,
    },
    /// `unix:PATH`: the socket file the master creates (and removes on exit).
    Unix(PathBuf),
    /// A socket already open in this process (`fd://N`), e.g. from a supervisor.
    Fd(RawFd),
}

impl fmt::Display for BindSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindSpec::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            BindSpec::Tcp { host, port } => write!(f, "{host}:{port}"),
            BindSpec::Unix(path) => write!(f, "unix:{}", path.display()),
            BindSpec::Fd(fd) => write!(f, "fd://{fd}"),
        }
    }
}

/// gunicorn's port when `--bind HOST` gives none.
const DEFAULT_PORT: u16 = 8000;

/// What an empty host means (`--bind :8000`, or `--bind ""`): gunicorn binds `("", port)`,
/// every IPv4 interface.
const ANY_HOST: &str = "0.0.0.0";

impl BindSpec {
    /// gunicorn's `util.parse_address`: `unix:PATH` and `unix://PATH` both name PATH as
    /// written (so `unix://tmp/x.sock` is the relative `tmp/x.sock`; `unix:///tmp/x.sock`
    /// the absolute one), `tcp://` is optional, and an empty host (`:8000`, Cloud Run's
    /// `--bind :$PORT`) is every IPv4 interface.
    pub fn parse(s: &str) -> Result<BindSpec, config::Error> {
        let err = |why: &str| config::Error(format!("--bind {s:?}: {why}"));
        if let Some(path) = s.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            return match path.is_empty() {
                true => Err(err("unix: needs a path")),
                false => Ok(BindSpec::Unix(PathBuf::from(path))),
            };
        }
        if let Some(fd) = s.strip_prefix("fd://") {
            return fd.parse().map(BindSpec::Fd).map_err(|_| err("fd:// needs a number"));
        }
        let netloc = s.strip_prefix("tcp://").unwrap_or(s);
        let (host, port) = if let Some(rest) = netloc.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| err("missing ']'"))?;
            match after {
                "" => (host, None),
                p => {
                    (host, Some(p.strip_prefix(':').ok_or_else(|| err("expected ':' after ']'"))?))
                }
            }
        } else {
            match netloc.split_once(':') {
                Some((h, p)) if !p.contains(':') => (h, Some(p)),
                Some(_) => return Err(err("an IPv6 address needs brackets, like [::1]:8000")),
                None => (netloc, None),
            }
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse().map_err(|_| err("the port must be a number from 0 to 65535"))?,
        };
        let host = match host {
            "" if !netloc.starts_with('[') => ANY_HOST,
            h => h,
        };
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
            return Err(err("expected HOST, HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N"));
        }
        Ok(BindSpec::Tcp { host: host.to_ascii_lowercase(), port })
    }
}

/// Where a bound socket actually listens (port 0 resolved to the real port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for LocalAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalAddr::Tcp(addr) => write!(f, "http://{addr}"),
            LocalAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[derive(Debug)]
pub struct Listener {
    /// The listening socket, non-blocking.
    pub socket: Socket,
    /// Where it listens (the real port of a `:0` bind), for logs and SERVER_NAME.
    pub local: LocalAddr,
    /// Whether the master created this socket's file (and so removes it on exit).
    owns_path: bool,
}

impl Listener {
    /// Binds `spec`; with `reuse_port`, TCP sockets get SO_REUSEPORT so that each worker
    /// can bind its own socket to the same address.
    pub fn bind(spec: &BindSpec, backlog: i32, reuse_port: bool) -> io::Result<Listener> {
        let (socket, owns_path) = match spec {
            BindSpec::Tcp { host, port } => {
                let addr = (host.as_str(), *port).to_socket_addrs()?.next().ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{host} resolves to no address"),
                    )
                })?;
                (bind_tcp(addr, backlog, reuse_port)?, false)
            }
            BindSpec::Unix(path) => (bind_unix(path, backlog)?, true),
            // SAFETY: the user handed us this descriptor to own (fd://N); it is checked
            // below to be a socket by local_addr().
            BindSpec::Fd(fd) => (unsafe { Socket::from_raw_fd(*fd) }, false),
        };
        socket.set_nonblocking(true)?;
        let local = local_addr(&socket.local_addr()?)?;
        Ok(Listener { socket, local, owns_path })
    }

    /// A socket inherited from an earlier master (USR2) or from systemd. `owns_path`: a
    /// unix socket file is removed when this master finally exits.
    pub fn adopt(fd: RawFd, owns_path: bool) -> io::Result<Listener> {
        // SAFETY: the descriptor was handed to this process to own (FERRICORN_FD or
        // LISTEN_FDS); local_addr() below checks that it is a socket.
        let socket = unsafe { Socket::from_raw_fd(fd) };
        let local = local_addr(&socket.local_addr()?)?;
        socket.set_nonblocking(true)?;
        // SAFETY: setting close-on-exec on our own descriptor; USR2 clears it when it must.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        Ok(Listener { socket, local, owns_path })
    }

    /// The same socket under a second descriptor, for a worker's own list of listeners.
    pub fn share(&self) -> io::Result<Listener> {
        let socket = self.socket.try_clone()?;
        Ok(Listener { socket, local: self.local.clone(), owns_path: false })
    }

    /// `--reuse-port`: a worker's own socket on this TCP address, in the same
    /// SO_REUSEPORT group, so the kernel spreads new connections over the workers.
    pub fn reuse_port_twin(&self, backlog: i32) -> io::Result<Option<Listener>> {
        let LocalAddr::Tcp(addr) = &self.local else { return Ok(None) };
        let socket = bind_tcp(*addr, backlog, true)?;
        socket.set_nonblocking(true)?;
        Ok(Some(Listener { socket, local: self.local.clone(), owns_path: false }))
    }

    /// Accepts one connection as a non-blocking, close-on-exec socket, the peer's address
    /// with it: one accept4(2), no fcntl, no getpeername (both workers wait on their
    /// sockets themselves, bounded by `--read-timeout`). `WouldBlock` when none is waiting.
    pub fn accept(&self) -> io::Result<(Socket, Peer)> {
        let (sock, addr) = self.socket.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)?;
        Ok((sock, Peer::from(&addr)))
    }

    /// WSGI's SERVER_NAME and SERVER_PORT for requests arriving here.
    pub fn server_name_port(&self) -> (String, String) {
        match &self.local {
            LocalAddr::Tcp(addr) => (addr.ip().to_string(), addr.port().to_string()),
            LocalAddr::Unix(path) => (path.display().to_string(), String::new()),
        }
    }

    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Removes the unix socket file the master created; called once, on exit.
    pub fn unlink(&self) {
        if let (true, LocalAddr::Unix(path)) = (self.owns_path, &self.local) {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn bind_tcp(addr: SocketAddr, backlog: i32, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_tcp_nodelay(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket)
}

fn bind_unix(path: &Path, backlog: i32) -> io::Result<Socket> {
    // A socket file left by a crashed run is replaced, as gunicorn does; anything else is not.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "a non-socket file is there"));
        }
        std::fs::remove_file(path)?;
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(backlog)?;
    Ok(socket)
}

fn local_addr(addr: &SockAddr) -> io::Result<LocalAddr> {
    if let Some(sa) = addr.as_socket() {
        return Ok(LocalAddr::Tcp(sa));
    }
    match addr.as_pathname() {
        Some(path) => Ok(LocalAddr::Unix(path.to_owned())),
        None => Err(io::Error::new(io::ErrorKind::InvalidInput, "not a TCP or unix socket")),
    }
}

/// The client end of a connection: REMOTE_ADDR and REMOTE_PORT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// REMOTE_ADDR; empty on a unix socket.
    pub addr: String,
    /// REMOTE_PORT; empty on a unix socket.
    pub port: String,
    /// The socket's peer address as a number, kept so that judging forwarded headers on
    /// each request of a keep-alive connection does not parse `addr` again. Behind a PROXY
    /// header it stays the socket's (the proxy's): gunicorn judges that one.
    ip: Option<std::net::IpAddr>,
    /// What the connection's PROXY header said (`--proxy-protocol`); `None` without one.
    pub proxy: Option<Box<Proxied>>,
}

/// A PROXY header's word on the connection, beyond the client's address: the environ's
/// `PROXY_PROTOCOL`, `PROXY_ADDR` and `PROXY_PORT`, as gunicorn sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxied {
    /// `TCP4`, `TCP6`, `LOCAL` or `UNSPEC`.
    pub protocol: &'static str,
    /// The address and port the client connected to (the proxy's front); `None` for
    /// `LOCAL` and `UNSPEC`.
    pub destination: Option<(String, String)>,
}

impl Peer {
    /// A peer from REMOTE_ADDR and REMOTE_PORT as text (empty on a unix socket).
    pub fn new(addr: &str, port: &str) -> Peer {
        Peer { addr: addr.to_owned(), port: port.to_owned(), ip: addr.parse().ok(), proxy: None }
    }

    /// The socket's peer IP address, whom `--forwarded-allow-ips` and `--proxy-allow-from`
    /// judge; `None` on a unix socket.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.ip
    }

    /// The peer a PROXY header names: its client is REMOTE_ADDR and REMOTE_PORT; `LOCAL`
    /// and `UNSPEC` (a health check, the proxy's own connection) keep the socket's.
    pub fn behind(mut self, header: &crate::http::proxy::ProxyHeader) -> Peer {
        let text = |a: std::net::SocketAddr| (a.ip().to_string(), a.port().to_string());
        let destination = header.addresses.map(|a| text(a.destination));
        if let Some(addresses) = header.addresses {
            (self.addr, self.port) = text(addresses.source);
        }
        self.proxy = Some(Box::new(Proxied { protocol: header.kind, destination }));
        self
    }
}

impl From<&SockAddr> for Peer {
    fn from(addr: &SockAddr) -> Peer {
        match addr.as_socket() {
            Some(sa) => {
                let (addr, port) = (sa.ip().to_string(), sa.port().to_string());
                Peer { addr, port, ip: Some(sa.ip()), proxy: None }
            }
            None => Peer::new("", ""),
        }
    }
}

/// `tcpi_state` of a listening socket (the kernel's `TCP_LISTEN`).
const TCP_LISTEN: u8 = 10;

/// How many connections wait in a TCP listener's accept queue (Linux reports it as the
/// `tcpi_unacked` of a listening socket); `None` for other sockets. The sync worker drains
/// this many on TERM; the master sends it as statsd's `gunicorn.backlog`, as gunicorn's
/// `get_backlog` reads it.
pub fn accept_queue_len(fd: std::os::fd::RawFd) -> Option<usize> {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid pointer and length for the option's buffer; a bad fd returns -1.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0 && info.tcpi_state == TCP_LISTEN).then_some(info.tcpi_unacked as usize)
}

#[cfg(test)]
mod tests {
    use super::BindSpec::{self, *};

    /// Cloud Run's quickstart and many Procfiles run `--bind :$PORT`; gunicorn binds every
    /// interface, ferricorn refused it.
    #[test]
    fn regression_empty_host_binds_every_interface() {
        let any = |p| Tcp { host: "0.0.0.0".to_owned(), port: p };
        assert_eq!(BindSpec::parse(":8080").unwrap(), any(8080));
        assert_eq!(BindSpec::parse("tcp://:8081").unwrap(), any(8081));
    }

    /// gunicorn strips `unix:` and an optional `//`: `unix://tmp/x.sock` is relative.
    #[test]
    fn regression_unix_double_slash_is_relative() {
        for (input, path) in [
            ("unix://tmp/x.sock", "tmp/x.sock"),
            ("unix:///tmp/x.sock", "/tmp/x.sock"),
            ("unix:tmp/x.sock", "tmp/x.sock"),
        ] {
            assert_eq!(BindSpec::parse(input).unwrap(), Unix(path.into()), "{input}");
        }
    }

    #[test]
    fn bind_forms() {
        let tcp = |h: &str, p| Tcp { host: h.to_owned(), port: p };
        let rows: &[(&str, BindSpec)] = &[
            ("127.0.0.1:9000", tcp("127.0.0.1", 9000)),
            ("localhost", tcp("localhost", 8000)),
            ("[::1]:8080", tcp("::1", 8080)),
            ("[::1]", tcp("::1", 8000)),
            ("0.0.0.0:0", tcp("0.0.0.0", 0)),
            ("unix:/tmp/f.sock", Unix("/tmp/f.sock".into())),
            ("fd://3", Fd(3)),
            ("LocalHost:80", tcp("localhost", 80)),
            ("tcp://127.0.0.1:81", tcp("127.0.0.1", 81)),
            ("", tcp("0.0.0.0", 8000)),
        ];
        for (input, want) in rows {
            assert_eq!(&BindSpec::parse(input).unwrap(), want, "{input}");
        }
        for bad in
            ["::1:80", "host:port", "h:99999", "unix:", "unix://", "fd://x", ":", "[::1", "[]:80"]
        {
            assert!(BindSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
