//! systemd: socket activation (`LISTEN_FDS`/`LISTEN_PID`) and `sd_notify` messages.
//!
//! Written from the protocol (sd_listen_fds(3), sd_notify(3)), without libsystemd: the
//! first passed descriptor is 3, and a notification is one datagram of `KEY=VALUE` lines
//! sent to `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`).

use std::os::fd::RawFd;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The first descriptor systemd passes.
const LISTEN_FDS_START: RawFd = 3;

/// Sockets systemd passed to this process; the variables are removed so that the app and
/// any child do not take them for theirs.
pub fn listen_fds() -> Vec<RawFd> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    let count = std::env::var("LISTEN_FDS").ok().and_then(|n| n.trim().parse::<RawFd>().ok());
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    match (for_us, count) {
        (true, Some(n)) if n > 0 => (LISTEN_FDS_START..LISTEN_FDS_START + n).collect(),
        _ => Vec::new(),
    }
}

/// Where `sd_notify` messages go; does nothing when not started by systemd.
pub struct Notifier {
    /// An unbound datagram socket and `$NOTIFY_SOCKET`'s address; `None` without systemd.
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
            let addr = match bytes.strip_prefix(b"@") {
                Some(name) => {
                    <SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name)
                }
                None => SocketAddr::from_pathname(&path),
            };
            Some((UnixDatagram::unbound().ok()?, addr.ok()?))
        });
        Notifier { target }
    }

    /// Sends one message, e.g. `READY=1`; failures are logged at debug level only, since
    /// the service runs on whether or not systemd listens.
    pub fn send(&self, message: &str) {
        if let Some((socket, addr)) = &self.target {
            if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
                tracing::debug!("sd_notify {message:?} failed: {e}");
            }
        }
    }

    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=Serving");
    }

    /// systemd 253 and later want the time the reload began (Type=notify-reload).
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}",
            crate::process::monotonic().as_micros()
        ));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// After a USR2 upgrade: this process is now the service's main process.
    pub fn main_pid(&self) {
        self.send(&format!("MAINPID={}\nREADY=1", std::process::id()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_reaches_the_socket() {
        let path = std::env::temp_dir().join(format!("ferricorn-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                SocketAddr::from_pathname(&path).unwrap(),
            )),
        };
        notifier.ready();
        notifier.stopping();
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n]).unwrap().starts_with("READY=1\n"));
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        std::fs::remove_file(&path).unwrap();
        Notifier { target: None }.ready();
    }
}
