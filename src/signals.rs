//! Signals as a queue: handlers only write the signal number into a pipe (the self-pipe
//! trick, as gunicorn's arbiter does); the loop reads them when it is ready.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use signal_hook::SigId;

/// Signals as bytes in a pipe, in the order they came.
pub struct SignalQueue {
    /// The loop's end: readable when a signal (or a worker's byte) is waiting.
    read: OwnedFd,
    /// The handlers' end (and the workers', for their "booted" byte); never blocks.
    write: OwnedFd,
    /// The registrations, undone on drop or in a forked child.
    ids: Vec<SigId>,
}

impl SignalQueue {
    /// Starts queueing `signals`; until dropped or forgotten, they no longer kill the process.
    pub fn new(signals: &[libc::c_int]) -> io::Result<SignalQueue> {
        let (read, write) = pipe(true)?;
        let mut queue = SignalQueue { read, write, ids: Vec::new() };
        for &signal in signals {
            let fd = queue.write.as_raw_fd();
            // SAFETY: the action only calls write(2), which is async-signal-safe; the pipe
            // outlives the registration (unregistered in Drop before the fds close).
            let id = unsafe {
                signal_hook::low_level::register(signal, move || {
                    let byte = signal as u8;
                    libc::write(fd, (&byte as *const u8).cast(), 1);
                })
            }?;
            queue.ids.push(id);
        }
        Ok(queue)
    }

    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The pipe's write end: a forked worker writes a byte here to wake the master.
    pub fn wake_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    /// Signals received, waiting up to `timeout` for the first one.
    pub fn wait(&self, timeout: Duration) -> Vec<libc::c_int> {
        wait_readable(&[self.fd()], timeout);
        self.drain()
    }

    /// Signals received so far, without waiting.
    pub fn drain(&self) -> Vec<libc::c_int> {
        let mut buf = [0u8; 64];
        let mut out = Vec::new();
        loop {
            // SAFETY: reading into a stack buffer of the stated length.
            let n = unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return out;
            }
            out.extend(buf[..n as usize].iter().map(|&b| libc::c_int::from(b)));
        }
    }
}

impl SignalQueue {
    /// Stops queueing. A forked child calls this so the parent's handlers no longer write
    /// into the pipe the parent reads.
    pub fn unregister(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

impl Drop for SignalQueue {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// A close-on-exec pipe whose read end never blocks; the write end blocks unless
/// `nonblocking_write` (a writer that must never wait, like a signal handler).
pub(crate) fn pipe(nonblocking_write: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let ends = [Some(&read), nonblocking_write.then_some(&write)];
    for fd in ends.into_iter().flatten() {
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    }
    Ok((read, write))
}

/// poll(2) for readability on `fds`, up to `timeout`; EINTR returns early.
pub fn wait_readable(fds: &[RawFd], timeout: Duration) {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: a valid slice of pollfd for the duration of the call.
    unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
}

/// A pipe holding one byte: the first worker to take it reports an app load error, so the
/// traceback is printed once however many workers fail together.
pub struct ReportToken {
    /// Where the one byte is taken from, in any process sharing it.
    read: OwnedFd,
    /// Kept open so the read end never sees end-of-file.
    _write: OwnedFd,
}

impl ReportToken {
    pub fn new() -> io::Result<ReportToken> {
        let (read, write) = pipe(true)?;
        // SAFETY: writing one byte from a stack value into our own pipe.
        unsafe { libc::write(write.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        Ok(ReportToken { read, _write: write })
    }

    /// True for exactly one caller across all processes sharing the pipe.
    pub fn take(&self) -> bool {
        let mut byte = 0u8;
        // SAFETY: a one-byte read into a stack value.
        unsafe { libc::read(self.read.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) == 1 }
    }
}

/// Restores the default action of signals this process does not handle (after fork).
pub fn reset_default(signals: &[libc::c_int]) {
    for &signal in signals {
        // SAFETY: setting a standard disposition has no memory-safety preconditions.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
}

/// Signals a new worker must not lose before its own handlers are in place: the master
/// blocks them across `fork`, and the worker unblocks them once it handles them, so one
/// sent in between (a TERM right after a HUP) waits instead of vanishing.
pub const WORKER_SIGNALS: [libc::c_int; 4] =
    [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGUSR1];

/// Blocks (`true`) or unblocks `signals` for the calling thread.
pub fn set_blocked(signals: &[libc::c_int], blocked: bool) {
    // SAFETY: a signal set built in a local; pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &signal in signals {
            libc::sigaddset(&mut set, signal);
        }
        let how = if blocked { libc::SIG_BLOCK } else { libc::SIG_UNBLOCK };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}
