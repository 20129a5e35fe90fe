//! App threads for the async worker: `--threads N` runs every request here, and with one
//! thread a request whose body is too big to buffer (or that awaits `100 Continue`)
//! comes here so the loop keeps serving while its body streams in.
//!
//! A thread calls the app and pumps the response while the socket takes it, then hands
//! the connection back to the loop (through a queue and a `mio::Waker`), which carries
//! on: the rest of a response to a slow reader, or the next keep-alive request.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::BytesMut;
use mio::Waker;
use pyo3::prelude::*;

use super::conn::{Body, Conn, Pumped, Request, Shared};
use super::io::SocketSource;
use crate::wsgi::Input;

pub struct Job {
    pub token: usize,
    pub conn: Conn,
    pub request: Request,
}

/// A connection coming back to the loop; `None` when the thread closed it.
pub type Returned = (usize, Option<Conn>);

pub struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    done: Arc<Mutex<Vec<Returned>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    pub fn new(size: usize, shared: Arc<Shared>, waker: Arc<Waker>) -> Pool {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let done = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..size)
            .map(|i| {
                let (rx, done, shared, waker) =
                    (Arc::clone(&rx), Arc::clone(&done), Arc::clone(&shared), Arc::clone(&waker));
                std::thread::Builder::new()
                    .name(format!("ferricorn-app-{i}"))
                    .spawn(move || work(&rx, &done, &shared, &waker))
                    .expect("spawning an app thread")
            })
            .collect();
        Pool { jobs: Some(tx), done, threads }
    }

    pub fn submit(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(job);
        }
    }

    /// Connections the threads are done with.
    pub fn returned(&self) -> Vec<Returned> {
        std::mem::take(&mut *self.done.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Lets the threads finish their jobs and exit. Call without the GIL held.
    pub fn join(&mut self) {
        self.jobs = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A thread's life: attached to the interpreter throughout (one thread state), the GIL
/// released while it waits for work.
fn work(
    rx: &Mutex<mpsc::Receiver<Job>>,
    done: &Mutex<Vec<Returned>>,
    shared: &Shared,
    waker: &Waker,
) {
    block_abort();
    Python::attach(|py| loop {
        let Ok(job) = py.detach(|| rx.lock().unwrap_or_else(|e| e.into_inner()).recv()) else {
            return;
        };
        let token = job.token;
        // A panic fails this request only (the hook logged it): its connection was
        // dropped, so closed, on the way out; the slot is freed and the thread carries on.
        let conn =
            std::panic::catch_unwind(AssertUnwindSafe(|| run(py, shared, job))).unwrap_or(None);
        done.lock().unwrap_or_else(|e| e.into_inner()).push((token, conn));
        let _ = waker.wake();
    })
}

/// The master's timeout SIGABRT must reach the main thread, where Python runs signal
/// handlers and where a blocking call is interrupted by it.
fn block_abort() {
    // SAFETY: building a signal set in a local and masking it for this thread only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGABRT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Calls the app for one request and writes what the socket takes.
fn run(py: Python<'_>, shared: &Shared, job: Job) -> Option<Conn> {
    let Job { mut conn, request, .. } = job;
    let Request { head, forwarded, body } = request;
    let input = match body {
        Body::Buffered(body) => Input::spooled(body),
        Body::Streaming { decoder, decoded } => {
            let source = SocketSource::new(conn.sock.try_clone().ok()?, shared.read_timeout);
            let raw = std::mem::replace(&mut conn.rbuf, BytesMut::new());
            Input::new(decoder, raw, Box::new(source), head.expect_continue)
                .with_spool(decoded)
                .with_limit(shared.body_limit)
        }
    };
    conn.start(py, shared, head, forwarded, input);
    if !conn.is_responding_phase() {
        return Some(conn); // the app failed before answering: the loop sends the error page
    }
    match conn.pump(py, shared) {
        Ok(Pumped::Done { keep_alive }) => {
            conn.finish_response(py, keep_alive && !shared.stopping());
            Some(conn)
        }
        Ok(Pumped::Blocked) => Some(conn),
        Ok(Pumped::Failed) | Err(_) => {
            conn.abandon(py);
            None
        }
    }
}
