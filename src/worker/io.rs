//! I/O shared by the workers, over any [`Transport`]: reads into buffers, blocking-style
//! writes and `send_file` bounded by `--read-timeout`, waiting on a descriptor (the
//! heartbeat beating meanwhile), the `wsgi.input` source that reads from a connection, and
//! the stream `write()` sends on.

use std::io;
use std::os::fd::RawFd;
use std::sync::Weak;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::transport::{Transport, Want};
use crate::http;
use crate::wsgi::{BodySource, FileSpan, Stream};

pub use crate::listener::accept_queue_len;

/// Size of one socket read.
pub const READ_SIZE: usize = 64 * 1024;
/// How often a worker waiting on a socket beats its heartbeat: waiting on a client is not
/// being stuck (`--read-timeout` bounds it), so the master's `--timeout` must not fire.
const BEAT_EVERY: Duration = Duration::from_millis(500);
/// Unread request body drained before close, so the kernel does not reset the
/// connection under the response (RFC 9112 §9.6).
pub const LINGER_BYTES: usize = 1 << 20;
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// One read appended to `buf`, retried on EINTR. `Ok(0)`: the peer closed.
pub fn read_some<T: Transport>(
    transport: &T,
    buf: &mut BytesMut,
    scratch: &mut [u8],
) -> io::Result<usize> {
    loop {
        match transport.read(scratch) {
            Ok(n) => {
                buf.extend_from_slice(&scratch[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Waits until `fd` is ready for `events` (POLLIN/POLLOUT), up to `timeout`, beating the
/// worker's heartbeat meanwhile (from the worker's own thread).
pub fn wait_fd(fd: RawFd, events: libc::c_short, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "client timed out"));
        }
        let mut pfd = libc::pollfd { fd, events, revents: 0 };
        let slice = left.min(BEAT_EVERY).as_millis().max(1) as i32;
        // SAFETY: one valid pollfd on the stack.
        let n = unsafe { libc::poll(&mut pfd, 1, slice) };
        // Beat whatever poll answered: a client that trickles a byte just inside every
        // slice is still a wait on the client, not a stuck worker.
        super::beat_while_waiting();
        if n > 0 {
            return Ok(());
        }
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(io::Error::last_os_error());
        }
    }
}

/// One read into `buf`, waiting up to `timeout` for bytes. `Ok(0)`: the peer closed.
pub fn read_waiting<T: Transport>(
    transport: &T,
    buf: &mut BytesMut,
    scratch: &mut [u8],
    timeout: Duration,
) -> io::Result<usize> {
    loop {
        match read_some(transport, buf, scratch) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                transport.wait(Want::Read, timeout)?
            }
            other => return other,
        }
    }
}

/// `write_all`, waiting up to `timeout` for room each time the transport is full.
pub fn write_all_waiting<T: Transport>(
    transport: &T,
    mut data: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    while !data.is_empty() {
        match transport.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                transport.wait(Want::Write, timeout)?
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    while !transport.flush()? {
        transport.wait(Want::Write, timeout)?;
    }
    Ok(())
}

/// All of `span`, waiting up to `timeout` each time the transport is full.
pub fn send_file_waiting<T: Transport>(
    transport: &T,
    span: &mut FileSpan,
    timeout: Duration,
) -> io::Result<()> {
    while !transport.send_file(span)? {
        transport.wait(Want::Write, timeout)?;
    }
    Ok(())
}

/// Half-closes, once what the transport holds is out (TLS: `close_notify` first), waiting
/// up to `timeout` for room.
pub fn close_write<T: Transport>(transport: &T, timeout: Duration) {
    if transport.shutdown_write().is_err() {
        return;
    }
    while let Ok(false) = transport.flush() {
        if transport.wait(Want::Write, timeout).is_err() {
            return;
        }
    }
}

/// Half-closes, then reads and drops what the client still sends (bounded), so that
/// closing with unread data does not reset the connection before the client reads.
pub fn linger_close<T: Transport>(transport: &T) {
    let _ = transport.shutdown_write();
    let deadline = Instant::now() + LINGER_TIME;
    let mut drained = 0;
    let mut chunk = [0u8; 16 * 1024];
    while drained < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match transport.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if transport.wait(Want::Read, left.min(Duration::from_millis(200))).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// `wsgi.input`'s bytes, read from the connection by the thread running the app (the
/// loop's, a pool thread, or one of the app's own), waiting with the transport's `wait`
/// (the heartbeat goes on). Weak, as [`TransportStream`]: an app that keeps `wsgi.input`
/// after its request does not keep the connection open; its reads then fail.
pub struct TransportSource<T: Transport> {
    /// The connection's transport, shared (not duplicated) with it.
    transport: Weak<T>,
    /// Where one read lands; allocated on the first read, so a request whose body is
    /// never read costs no buffer.
    scratch: Vec<u8>,
    /// `--read-timeout`: how long the client may stay silent.
    timeout: Duration,
}

impl<T: Transport> TransportSource<T> {
    pub fn new(transport: Weak<T>, timeout: Duration) -> TransportSource<T> {
        TransportSource { transport, scratch: Vec::new(), timeout }
    }
}

impl<T: Transport> BodySource for TransportSource<T> {
    fn fill(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let transport = self.transport.upgrade().ok_or(io::ErrorKind::NotConnected)?;
        if self.scratch.is_empty() {
            self.scratch = vec![0; READ_SIZE];
        }
        read_waiting(&*transport, buf, &mut self.scratch, self.timeout)
    }

    fn send_continue(&mut self) -> io::Result<()> {
        let transport = self.transport.upgrade().ok_or(io::ErrorKind::NotConnected)?;
        write_all_waiting(&*transport, http::response::CONTINUE, self.timeout)
    }
}

/// `write()`'s way to the client: a blocking send on the connection, bounded by
/// `--read-timeout`. Weak, so an app that keeps `write` after the response neither keeps
/// the connection open nor writes on a descriptor reused since.
pub struct TransportStream<T: Transport> {
    /// The connection's transport, shared with it.
    transport: Weak<T>,
    /// `--read-timeout`: how long the client may leave its receive window full.
    timeout: Duration,
}

impl<T: Transport> TransportStream<T> {
    pub fn new(transport: Weak<T>, timeout: Duration) -> TransportStream<T> {
        TransportStream { transport, timeout }
    }
}

impl<T: Transport> Stream for TransportStream<T> {
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let transport = self.transport.upgrade().ok_or(io::ErrorKind::NotConnected)?;
        write_all_waiting(&*transport, data, self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    #[test]
    fn accept_queue_len_counts_waiting_connections() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = listener.as_raw_fd();
        assert_eq!(accept_queue_len(fd), Some(0));
        let addr = listener.local_addr().unwrap();
        let clients: Vec<_> = (0..3).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        assert_eq!(accept_queue_len(fd), Some(clients.len()));
        drop(listener.accept().unwrap());
        assert_eq!(accept_queue_len(fd), Some(2));
        // A connected socket is no listener.
        assert_eq!(accept_queue_len(clients[0].as_raw_fd()), None);
        let dir = std::env::temp_dir().join(format!("ferricorn-queue-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let unix = std::os::unix::net::UnixListener::bind(&dir).unwrap();
        assert_eq!(accept_queue_len(unix.as_raw_fd()), None);
        let _ = std::fs::remove_file(&dir);
    }
}
