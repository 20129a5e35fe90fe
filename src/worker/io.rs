//! Socket I/O shared by the workers: reads into buffers, `sendfile(2)`, waiting on a
//! descriptor, and the `wsgi.input` sources that read from a connection.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use socket2::Socket;

use crate::http;
use crate::wsgi::{BodySource, FileSpan};

/// Size of one socket read.
pub const READ_SIZE: usize = 64 * 1024;
/// How long a client may stay silent while a worker waits on it mid-request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Unread request body drained before close, so the kernel does not reset the
/// connection under the response (RFC 9112 §9.6).
pub const LINGER_BYTES: usize = 1 << 20;
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// One read appended to `buf`, retried on EINTR. `Ok(0)`: the peer closed.
pub fn read_some(mut sock: &Socket, buf: &mut BytesMut, scratch: &mut [u8]) -> io::Result<usize> {
    loop {
        match sock.read(scratch) {
            Ok(n) => {
                buf.extend_from_slice(&scratch[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Waits until `fd` is ready for `events` (POLLIN/POLLOUT), up to `timeout`.
pub fn wait_fd(fd: RawFd, events: libc::c_short, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "client timed out"));
        }
        let mut pfd = libc::pollfd { fd, events, revents: 0 };
        // SAFETY: one valid pollfd on the stack.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
        if n > 0 {
            return Ok(());
        }
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(io::Error::last_os_error());
        }
    }
}

/// `write_all` on a socket that may be non-blocking: waits for room when it is full.
pub fn write_all_waiting(mut sock: &Socket, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match sock.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_fd(sock.as_raw_fd(), libc::POLLOUT, READ_TIMEOUT)?
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends as much of `span` as the socket takes now; the span shrinks by what went out.
/// `Ok(true)` when it is all sent. A file that shrank underneath is an error.
pub fn send_file(sock: &Socket, span: &mut FileSpan, blocking: bool) -> io::Result<bool> {
    // SAFETY: the fd belongs to the app's file object, which the exchange keeps open
    // until close(); borrowing it for this call does not outlive that.
    let file = unsafe { std::os::fd::BorrowedFd::borrow_raw(span.fd) };
    while span.len > 0 {
        let mut offset = span.offset as libc::off64_t;
        let count = span.len.min(1 << 30) as usize;
        match nix::sys::sendfile::sendfile64(sock.as_fd(), file, Some(&mut offset), count) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank")),
            Ok(n) => {
                span.offset += n as u64;
                span.len -= n as u64;
                tracing::debug!("sendfile: {n} bytes");
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) if blocking => {
                wait_fd(sock.as_raw_fd(), libc::POLLOUT, READ_TIMEOUT)?
            }
            Err(nix::errno::Errno::EAGAIN) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// Half-closes, then reads and drops what the client still sends (bounded), so that
/// closing with unread data does not reset the connection before the client reads.
pub fn linger_close(sock: &Socket) {
    let _ = sock.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + LINGER_TIME;
    let mut drained = 0;
    let mut chunk = [0u8; 16 * 1024];
    while drained < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match (&*sock).read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if wait_fd(sock.as_raw_fd(), libc::POLLIN, left.min(Duration::from_millis(200)))
                    .is_err()
                {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// `wsgi.input`'s bytes, read from the connection by the thread running the app; the
/// socket may be non-blocking (event-loop connections), so reads wait with poll(2).
pub struct SocketSource {
    sock: Socket,
    scratch: Box<[u8]>,
}

impl SocketSource {
    pub fn new(sock: Socket) -> SocketSource {
        SocketSource { sock, scratch: vec![0; READ_SIZE].into_boxed_slice() }
    }
}

impl BodySource for SocketSource {
    fn fill(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            match read_some(&self.sock, buf, &mut self.scratch) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_fd(self.sock.as_raw_fd(), libc::POLLIN, READ_TIMEOUT)?
                }
                other => return other,
            }
        }
    }

    fn send_continue(&mut self) -> io::Result<()> {
        write_all_waiting(&self.sock, http::response::CONTINUE)
    }
}
