//! The control socket: gunicorn 25.1's `--control-socket`, served by the master so that
//! gunicorn's own `gunicornc` drives ferricorn (show workers and stats, add and remove
//! workers, reload, reopen the logs, shut down).
//!
//! - [`protocol`]: the framing (4-byte big-endian length, JSON), one bounded,
//!   non-blocking [`protocol::Conn`] per client.
//! - [`commands`]: the requests and gunicorn's answers, over the [`commands::Master`] trait
//!   the arbiter implements (`arbiter/control.rs`).
//!
//! The master's loop polls the listening socket and the clients with its other
//! descriptors ([`ControlServer::poll_fds`]) and calls [`ControlServer::serve`] each pass;
//! nothing here blocks. The socket file is removed on exit only while it is still the one
//! this master bound (after USR2 the new master's socket takes the path).

pub mod commands;
pub mod protocol;

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::listener::AcceptPause;
use commands::Master;
use protocol::{Closed, Conn};

/// Clients served at once; a new one past this closes the one idle longest.
const MAX_CLIENTS: usize = 32;
/// Connections accepted per pass of the master loop.
const ACCEPTS_PER_PASS: usize = 16;
/// How soon the loop comes back while an answer waits to be written.
const RETRY_WRITE: Duration = Duration::from_millis(20);

/// gunicorn's default path: `$XDG_RUNTIME_DIR/gunicorn.ctl` when that is a directory, else
/// `$HOME/.gunicorn/gunicorn.ctl`.
pub fn default_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if dir.is_dir() {
            return dir.join("gunicorn.ctl");
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
    home.join(".gunicorn").join("gunicorn.ctl")
}

/// gunicorn's `auto_int` for `--control-socket-mode`: `0o660`, `0660`, `0x1b0` or `432`.
pub fn parse_mode(value: &str) -> Option<u32> {
    crate::config::auto_int(value).filter(|&mode| mode > 0 && mode <= 0o7777)
}

/// The control socket's settings, as `Config` holds them.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `--control-socket`, or gunicorn's default path.
    pub path: PathBuf,
    /// `--control-socket-mode`: the file's permission bits.
    pub mode: u32,
    /// `--no-control-socket`.
    pub disabled: bool,
}

/// The listening control socket and its clients.
pub struct ControlServer {
    /// Bound, non-blocking.
    listener: UnixListener,
    /// The absolute path it is bound at.
    path: PathBuf,
    /// The socket file's (device, inode): whether the path still holds ours.
    identity: (u64, u64),
    /// The permission bits set on the file.
    mode: u32,
    /// Connected clients.
    clients: Vec<Conn>,
    /// The listener's rest after an accept error (no descriptor left).
    pause: AcceptPause,
}

impl ControlServer {
    /// Binds the control socket at `path` (relative to the current directory) with
    /// `mode`. A stale socket file is replaced; one a live server answers on is left to it,
    /// unless `takeover` (a master started by USR2 takes its predecessor's path, as in
    /// gunicorn). Failures are logged and leave the master without a control socket.
    pub fn open(path: &Path, mode: u32, takeover: bool) -> Option<ControlServer> {
        let path = std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.into());
        match bind(&path, mode, takeover) {
            Ok(server) => {
                tracing::info!("Control socket listening at {}", path.display());
                Some(server)
            }
            Err(e) => {
                tracing::warn!("Failed to start control socket at {}: {e}", path.display());
                None
            }
        }
    }

    /// The descriptors the master loop polls for reading. A client whose answer waits to
    /// be written is left out (it is not read until then, and polling it would spin); the
    /// short [`ControlServer::timeout`] brings the loop back to write.
    pub fn poll_fds(&self) -> Vec<RawFd> {
        let mut fds = Vec::new();
        if !self.pause.resting() {
            fds.push(self.listener.as_raw_fd());
        }
        fds.extend(self.clients.iter().filter(|c| !c.has_output()).map(Conn::fd));
        fds
    }

    /// The loop's poll timeout: short while an answer waits to be written.
    pub fn timeout(&self, timeout: Duration) -> Duration {
        match self.clients.iter().any(Conn::has_output) {
            true => timeout.min(RETRY_WRITE),
            false => timeout,
        }
    }

    /// Accepts, reads and answers what is ready; closes clients that hung up, sent a bad
    /// frame or passed their deadline. Never blocks.
    pub fn serve(&mut self, master: &mut dyn Master) {
        let now = Instant::now();
        self.accept(now);
        self.clients.retain_mut(|conn| match serve_one(conn, master, now) {
            Ok(()) => !conn.expired(now),
            Err(Closed::TooLarge(length)) => {
                tracing::debug!("Control client sent a frame of {length} bytes: closed");
                false
            }
            Err(_) => false,
        });
    }

    /// Takes new connections, within the pass's budget and the client bound.
    fn accept(&mut self, now: Instant) {
        if self.pause.holds(now) {
            return;
        }
        for _ in 0..ACCEPTS_PER_PASS {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => return self.pause.rest(now, "Control socket", &e),
            };
            if self.clients.len() >= MAX_CLIENTS {
                let idlest =
                    (0..self.clients.len()).min_by_key(|&i| self.clients[i].last_request());
                idlest.map(|i| self.clients.swap_remove(i));
            }
            if let Ok(conn) = Conn::new(stream, now) {
                self.clients.push(conn);
            }
        }
    }

    /// Whether the path still holds the socket this server bound.
    fn owns_path(&self) -> bool {
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity)
    }

    /// After a USR2 master that took the path has exited: bind the path again if it no
    /// longer holds our socket, so `gunicornc` reaches this master once more.
    pub fn reclaim(&mut self) {
        if self.owns_path() {
            return;
        }
        match bind(&self.path, self.mode, true) {
            Ok(server) => {
                tracing::info!("Control socket listening at {}", self.path.display());
                self.listener = server.listener;
                self.identity = server.identity;
            }
            Err(e) => tracing::warn!("Can't bind the control socket again: {e}"),
        }
    }

    /// On exit: stop listening and remove the file if it is still ours.
    pub fn close(self) {
        if self.owns_path() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Reads one client's frames and answers each; a frame that is not a request closes it.
fn serve_one(conn: &mut Conn, master: &mut dyn Master, now: Instant) -> Result<(), Closed> {
    conn.flush(now)?;
    for frame in conn.read_frames(now)? {
        let Some(reply) = commands::answer(master, &frame) else {
            return Err(Closed::Gone);
        };
        conn.answer(reply.to_string().as_bytes(), now)?;
    }
    Ok(())
}

/// Makes the parent directory, clears a stale file, binds and sets the mode.
fn bind(path: &Path, mode: u32, takeover: bool) -> io::Result<ControlServer> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is there",
            ));
        }
        if !takeover && UnixStream::connect(path).is_ok() {
            let text = "another live server listens there (give it another --control-socket)";
            return Err(io::Error::new(io::ErrorKind::AddrInUse, text));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    let meta = std::fs::symlink_metadata(path)?;
    Ok(ControlServer {
        listener,
        path: path.to_owned(),
        identity: (meta.dev(), meta.ino()),
        mode,
        clients: Vec::new(),
        pause: AcceptPause::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_gunicorns_auto_int() {
        for (text, want) in [("0o660", Some(0o660)), ("0600", Some(0o600)), ("384", Some(384))] {
            assert_eq!(parse_mode(text), want, "{text}");
        }
        for bad in ["0", "-1", "0o99", "x", "0o17777"] {
            assert_eq!(parse_mode(bad), None, "{bad}");
        }
    }

    struct One;

    impl Master for One {
        fn workers(&self) -> Vec<commands::WorkerView> {
            Vec::new()
        }
        fn stats(&self) -> serde_json::Map<String, serde_json::Value> {
            serde_json::Map::new()
        }
        fn config(&self) -> serde_json::Map<String, serde_json::Value> {
            serde_json::Map::new()
        }
        fn listeners(&self) -> Vec<(String, i32, &'static str)> {
            Vec::new()
        }
        fn num_workers(&self) -> usize {
            1
        }
        fn set_workers(&mut self, _: usize) {}
        fn kill_worker(&mut self, _: i32) -> bool {
            false
        }
        fn signal(&mut self, _: libc::c_int) {}
    }

    #[test]
    fn serve_answers_each_client_and_bounds_how_many() {
        use std::io::{Read, Write};
        let dir = std::env::temp_dir().join(format!("ferricorn-ctl-serve-{}", std::process::id()));
        let mut server = bind(&dir.join("s.ctl"), 0o600, false).unwrap();
        let connect = || UnixStream::connect(dir.join("s.ctl")).unwrap();
        let idle: Vec<UnixStream> = (0..MAX_CLIENTS).map(|_| connect()).collect();
        server.serve(&mut One);
        assert_eq!(server.clients.len(), ACCEPTS_PER_PASS, "a bounded number per pass");
        server.serve(&mut One);
        assert_eq!(server.clients.len(), MAX_CLIENTS);
        let mut client = connect();
        client.write_all(&protocol::encode(br#"{"id": 3, "command": "worker remove"}"#)).unwrap();
        server.serve(&mut One);
        assert_eq!(server.clients.len(), MAX_CLIENTS, "the idlest made room");
        let mut length = [0u8; 4];
        client.read_exact(&mut length).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
        client.read_exact(&mut body).unwrap();
        let reply: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(reply["id"], 3);
        assert_eq!(reply["data"]["removed"], 0);
        drop(idle);
        server.serve(&mut One);
        assert_eq!(server.clients.len(), 1, "hung-up clients are dropped");
        server.close();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_live_socket_is_left_to_its_server_and_a_stale_one_replaced() {
        let dir = std::env::temp_dir().join(format!("ferricorn-ctl-{}", std::process::id()));
        let path = dir.join("sub").join("c.ctl");
        let first = bind(&path, 0o600, false).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
        assert!(bind(&path, 0o600, false).is_err());
        let second = bind(&path, 0o660, true).unwrap();
        assert!(!first.owns_path() && second.owns_path());
        first.close();
        assert!(path.exists(), "the old master leaves the new one's socket");
        drop(second.listener);
        let third = bind(&path, 0o600, false).unwrap();
        third.close();
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
