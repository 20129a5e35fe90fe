//! App threads for the async worker: `--threads N` runs every request here, and with one
//! thread a request whose body is too big to buffer (or that awaits `100 Continue`)
//! comes here so the loop keeps serving while its body streams in.
//!
//! A thread hands the request to its connection ([`Conn::run`]: the connection calls the
//! app and writes what the transport takes), then hands the connection back to the loop
//! (through a queue and a `mio::Waker`), which carries on: the rest of a response to a
//! slow reader, or the next keep-alive request. Nothing here touches a connection's state.
//! An HTTP/2 stream ([`StreamJob`]) runs here whole: its connection stays on the loop,
//! and the stream's response reaches it through the stream itself.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use mio::Waker;
use pyo3::prelude::*;

use super::conn::{Conn, Request, Shared};
use super::deadline;
use super::h2::wsgi::StreamJob;
use super::transport::Transport;

/// One request for a thread, with the connection it came on.
pub struct Job<T: Transport> {
    /// The connection's slot in the loop, where it goes back.
    pub token: usize,
    /// The connection, moved here while the thread has it.
    pub conn: Conn<T>,
    /// The request to run.
    pub request: Request,
}

/// What a thread is given.
// A request moves to a thread without a box of its own, as in `conn::Next`.
#[allow(clippy::large_enum_variant)]
enum Work<T: Transport> {
    /// A request with its connection, which comes back.
    Request(Job<T>),
    /// An HTTP/2 stream.
    Stream(StreamJob),
}

/// A connection coming back to the loop; `None` when the thread closed it.
pub type Returned<T> = (usize, Option<Conn<T>>);

/// The threads, their queue of jobs and the connections they hand back.
pub struct Pool<T: Transport> {
    /// Where jobs go; `None` once the pool is told to finish.
    jobs: Option<mpsc::Sender<Work<T>>>,
    /// Connections done with, for the loop to take when the waker fires.
    done: Arc<Mutex<Vec<Returned<T>>>>,
    /// The threads, joined on the way out.
    threads: Vec<JoinHandle<()>>,
}

impl<T: Transport> Pool<T> {
    pub fn new(size: usize, shared: Arc<Shared>, waker: Arc<Waker>) -> Pool<T> {
        let (tx, rx) = mpsc::channel::<Work<T>>();
        let rx = Arc::new(Mutex::new(rx));
        let done = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..size)
            .map(|i| {
                let (rx, done, shared, waker) =
                    (Arc::clone(&rx), Arc::clone(&done), Arc::clone(&shared), Arc::clone(&waker));
                std::thread::Builder::new()
                    .name(format!("ferricorn-app-{i}"))
                    .spawn(move || work(i, &rx, &done, &shared, &waker))
                    .expect("spawning an app thread")
            })
            .collect();
        Pool { jobs: Some(tx), done, threads }
    }

    pub fn submit(&self, job: Job<T>) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Work::Request(job));
        }
    }

    /// An HTTP/2 stream to run.
    pub fn submit_stream(&self, job: StreamJob) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Work::Stream(job));
        }
    }

    /// Connections the threads are done with.
    pub fn returned(&self) -> Vec<Returned<T>> {
        std::mem::take(&mut *self.done.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Lets the threads finish their jobs and exit, waiting up to `grace` for those still
    /// busy; the others are left to the process's exit. Call without the GIL held.
    pub fn join(&mut self, grace: std::time::Duration) {
        self.jobs = None;
        let deadline = std::time::Instant::now() + grace;
        while self.threads.iter().any(|t| !t.is_finished()) && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for thread in self.threads.drain(..).filter(|t| t.is_finished()) {
            let _ = thread.join();
        }
    }
}

/// A thread's life: attached to the interpreter throughout (one thread state), the GIL
/// released while it waits for work. Each request is noted in the thread's slot of the
/// heartbeat page (`slot` is the thread's number), for `--timeout` and `--request-timeout`.
fn work<T: Transport>(
    slot: usize,
    rx: &Mutex<mpsc::Receiver<Work<T>>>,
    done: &Mutex<Vec<Returned<T>>>,
    shared: &Shared,
    waker: &Waker,
) {
    block_abort();
    Python::attach(|py| loop {
        let Ok(job) = py.detach(|| rx.lock().unwrap_or_else(|e| e.into_inner()).recv()) else {
            return;
        };
        let Job { token, conn, request } = match job {
            Work::Request(job) => job,
            Work::Stream(job) => {
                run_stream(py, slot, shared, job);
                continue;
            }
        };
        deadline::enter(slot, request.head().method(), request.head().target());
        // A panic fails this request only (the hook logged it): its connection was
        // dropped, so closed, on the way out; the slot is freed and the thread carries on.
        let conn = std::panic::catch_unwind(AssertUnwindSafe(|| conn.run(py, shared, request)))
            .unwrap_or(None);
        deadline::leave(py);
        done.lock().unwrap_or_else(|e| e.into_inner()).push((token, conn));
        let _ = waker.wake();
    })
}

/// One HTTP/2 stream on this thread; a panic resets the stream (the hook logged it).
fn run_stream(py: Python<'_>, slot: usize, shared: &Shared, job: StreamJob) {
    deadline::enter(slot, job.head.method(), job.head.target());
    let stream = std::sync::Arc::clone(&job.stream);
    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| super::h2::wsgi::run(py, shared, job)));
    if ran.is_err() {
        stream.abort();
    }
    deadline::leave(py);
}

/// The master's timeout SIGABRT must reach the main thread, where Python runs signal
/// handlers and where a blocking call is interrupted by it.
pub(super) fn block_abort() {
    // SAFETY: building a signal set in a local and masking it for this thread only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGABRT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
