//! The `asgi` worker (`-k asgi`, gunicorn 27's name): Rust owns the sockets and parses
//! HTTP/1.1 ([`core`], [`conn`]); an asyncio loop in the worker's main thread runs the
//! app's coroutines (`python/ferricorn/_asgi.py`). They meet in [`Server`], the object
//! the Python side drives.
//!
//! How they meet is the bridge (docs/asgi.md, benches/asgi_bridge/): (A) one thread, the
//! default: the mio poll's descriptor is an asyncio reader, and each time it is readable
//! Python calls [`Server::events`], which polls without waiting and hands back the ASGI
//! events; the app's `send()` writes straight to the socket. (B) `FERRICORN_ASGI_BRIDGE=
//! thread`, kept for the measurement: the mio loop runs on its own thread with the GIL
//! released, and the two meet through queues, an eventfd towards Python and a
//! `mio::Waker` towards Rust.

mod access;
mod conn;
mod core;
mod http2;
mod scope;
mod transport;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Waker};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use self::conn::{Note, Settings};
use self::core::{Command, Core, Id, STOP, TICK, WAKER};
use self::scope::Place;
use super::{Stop, WorkerContext};
use crate::exit;
use crate::listener::Listener;

/// What one turn hands Python, by its first item.
const REQUEST: u8 = 0;
const BODY: u8 = 1;
const DISCONNECT: u8 = 2;
const DRAINED: u8 = 3;
/// A WebSocket upgrade: its `websocket` scope.
const WEBSOCKET: u8 = 4;
/// A WebSocket message: its `websocket.receive` event, made here.
const MESSAGE: u8 = 5;
/// The WebSocket closed: its `websocket.disconnect` event.
const CLOSED: u8 = 6;
/// A command's answer: the response queue is full, `send()` waits for [`DRAINED`].
const FULL: u8 = 1;
/// A command's answer: events are waiting, call [`Server::events`] soon.
const OWED: u8 = 2;

/// Runs the worker: the Python side's `serve` until it returns the exit code.
pub fn serve(py: Python<'_>, ctx: &WorkerContext<'_>, app: &Bound<'_, PyAny>, stop: &Stop) -> i32 {
    let threaded = std::env::var("FERRICORN_ASGI_BRIDGE").is_ok_and(|v| v == "thread");
    let server = match Server::new(ctx, stop.clone(), threaded) {
        Ok(server) => server,
        Err(e) => {
            tracing::error!("Worker failed to boot: {e}");
            return exit::WORKER_BOOT_ERROR;
        }
    };
    let config = ctx.config;
    let settings = [
        ("lifespan", config.asgi.lifespan.name().into_pyobject(py).map(|v| v.into_any())),
        ("loop", config.asgi.event_loop.name().into_pyobject(py).map(|v| v.into_any())),
        (
            "grace",
            config.asgi.disconnect_grace.as_secs_f64().into_pyobject(py).map(|v| v.into_any()),
        ),
        ("boot_error", exit::WORKER_BOOT_ERROR.into_pyobject(py).map(|v| v.into_any())),
        (
            "request_timeout",
            config.request_timeout.map(|t| t.as_secs_f64()).into_pyobject(py).map(|v| v.into_any()),
        ),
        (
            "access_log",
            crate::wsgi::access::enabled().into_pyobject(py).map(|v| v.to_owned().into_any()),
        ),
    ];
    let run = || -> PyResult<i32> {
        let dict = pyo3::types::PyDict::new(py);
        for (key, value) in settings {
            dict.set_item(key, value?)?;
        }
        let module = py.import("ferricorn._asgi")?;
        module.call_method1("serve", (Bound::new(py, server)?, app, dict))?.extract()
    };
    match run() {
        Ok(code) => code,
        Err(e) => {
            e.display(py);
            tracing::error!("The ASGI worker's loop failed: {e}");
            exit::FAILURE
        }
    }
}

/// Where the sockets are driven from.
enum Driver {
    /// (A): here, on the loop's thread, when the poll's descriptor is readable.
    Inline {
        /// The listeners and connections.
        core: Box<Core>,
        /// The mio poll (its descriptor is the asyncio reader).
        poll: Poll,
        /// Events of one poll.
        events: Events,
    },
    /// (B): on a thread of its own.
    Threaded(Box<Threaded>),
}

/// Bridge (B)'s two queues and their wake-ups, shared by both threads.
#[derive(Clone)]
struct Queues {
    /// The app's messages, for the socket thread.
    commands: Arc<Mutex<Vec<Command>>>,
    /// Notes for the app, from the socket thread.
    inbound: Arc<Mutex<Vec<(Id, Note)>>>,
    /// Readable when `inbound` has notes: the asyncio reader.
    eventfd: Arc<OwnedFd>,
    /// A graceful stop began (the socket thread acts on it).
    stopping: Arc<AtomicBool>,
    /// The socket thread should end.
    quit: Arc<AtomicBool>,
    /// Connections open, as the socket thread last counted.
    open: Arc<AtomicUsize>,
}

/// Bridge (B): the socket thread and how to reach it.
struct Threaded {
    /// What both threads share.
    queues: Queues,
    /// Wakes the socket thread's poll.
    waker: Arc<Waker>,
    /// The socket thread.
    thread: Option<JoinHandle<()>>,
}

/// The worker's sockets as the Python side sees them.
#[pyclass(module = "ferricorn._ferricorn", name = "AsgiServer", unsendable)]
pub struct Server {
    /// Where the sockets are driven from.
    driver: Driver,
    /// The scope's constants.
    place: Place,
    /// Signals, `--max-requests`, the graceful stop.
    stop: Stop,
    /// `--graceful-timeout`.
    graceful: std::time::Duration,
    /// When a graceful stop must end, once one began.
    stop_deadline: Option<Instant>,
    /// The master, to notice being orphaned.
    parent: u32,
}

impl Server {
    fn new(ctx: &WorkerContext<'_>, stop: Stop, threaded: bool) -> std::io::Result<Server> {
        let config = ctx.config;
        let poll = Poll::new()?;
        poll.registry().register(&mut SourceFd(&stop.fd()), STOP, Interest::READABLE)?;
        let listeners =
            ctx.listeners.iter().map(Listener::share).collect::<std::io::Result<Vec<_>>>()?;
        let place = Place {
            root_path: config.asgi.root_path.clone(),
            servers: ctx.listeners.iter().map(Listener::server_name_port).collect(),
            tls: config.tls.is_some(),
        };
        let settings = Settings {
            limits: config.limits,
            protocol: config.protocol.clone(),
            forwarded: config.forwarded.clone(),
            keepalive: config.keepalive,
            read_timeout: config.read_timeout,
            websocket_max: config.asgi.websocket_max_message,
            proxy: config.proxy_protocol.clone(),
            http2: crate::worker::h2::policy(config),
        };
        let registry = poll.registry().try_clone()?;
        let core = Core::new(
            registry,
            listeners,
            settings,
            config.worker_connections,
            stop.recycler(),
            config.tls.clone(),
        )?;
        let driver = match threaded {
            false => {
                Driver::Inline { core: Box::new(core), poll, events: Events::with_capacity(1024) }
            }
            true => Driver::Threaded(Box::new(Threaded::start(core, poll)?)),
        };
        Ok(Server {
            driver,
            place,
            stop,
            graceful: config.graceful_timeout,
            stop_deadline: None,
            parent: std::os::unix::process::parent_id(),
        })
    }

    /// The app's message: applied now (A) or queued for the socket thread (B). What the
    /// Python side must do next, as [`FULL`] and [`OWED`] bits.
    fn command(&mut self, command: Command) -> PyResult<u8> {
        match &mut self.driver {
            Driver::Inline { core, .. } => {
                let full = core
                    .apply(command, Instant::now())
                    .map_err(|e| PyRuntimeError::new_err(e.to_owned()))?;
                // A pipelined request or buffered body the message let through, or HTTP/2
                // connections to drive once the app's batch of messages is in.
                let owed = !core.notes.is_empty() || core.undriven();
                Ok((u8::from(full) * FULL) | (u8::from(owed) * OWED))
            }
            Driver::Threaded(threaded) => {
                threaded.send(command);
                Ok(0)
            }
        }
    }
}

#[pymethods]
impl Server {
    /// The descriptor the asyncio loop watches.
    fn fd(&self) -> RawFd {
        match &self.driver {
            Driver::Inline { poll, .. } => poll.as_raw_fd(),
            Driver::Threaded(threaded) => threaded.queues.eventfd.as_raw_fd(),
        }
    }

    /// What happened since the last call, as `(kind, id, scope, body, more)` tuples. A
    /// hot path.
    fn events<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let notes = match &mut self.driver {
            Driver::Inline { core, poll, events } => {
                if let Err(e) = poll.poll(events, Some(std::time::Duration::ZERO)) {
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(e.into());
                    }
                }
                let now = Instant::now();
                core.drive_undriven(now);
                core.handle(events, now);
                if std::mem::take(&mut core.signalled) {
                    self.stop.drain();
                }
                std::mem::take(&mut core.notes)
            }
            Driver::Threaded(threaded) => threaded.take(),
        };
        let list = PyList::empty(py);
        for (id, note) in notes {
            let event = match note {
                Note::Request(arrived) => {
                    crate::hooks::count_request();
                    let scope =
                        scope::of(py, &arrived, &arrived.peer, arrived.listener, &self.place)?;
                    let body = PyBytes::new(py, &arrived.body);
                    let kind = if arrived.subprotocols.is_some() { WEBSOCKET } else { REQUEST };
                    (kind, id, scope.into_any(), body.into_any(), arrived.more)
                }
                Note::Message(message) => {
                    let event = scope::message(py, message)?;
                    (MESSAGE, id, event.into_any(), py.None().into_bound(py), false)
                }
                Note::Closed { code, reason, reply_due } => {
                    let event = scope::disconnect(py, code, &reason)?;
                    (CLOSED, id, event.into_any(), py.None().into_bound(py), reply_due)
                }
                Note::Body(data, more) => {
                    (BODY, id, py.None().into_bound(py), PyBytes::new(py, &data).into_any(), more)
                }
                Note::Disconnect => {
                    (DISCONNECT, id, py.None().into_bound(py), py.None().into_bound(py), false)
                }
                Note::Drained => {
                    (DRAINED, id, py.None().into_bound(py), py.None().into_bound(py), false)
                }
                Note::Finished(logged) => {
                    if let Err(e) = access::write(py, &logged) {
                        tracing::error!("access log: {e}");
                    }
                    continue;
                }
            };
            list.append(PyTuple::new(
                py,
                [
                    event.0.into_pyobject(py)?.into_any(),
                    event.1.into_pyobject(py)?.into_any(),
                    event.2,
                    event.3,
                    pyo3::types::PyBool::new(py, event.4).to_owned().into_any(),
                ],
            )?)?;
        }
        Ok(list)
    }

    /// `http.response.start`: the status and `[(name, value), ...]` as bytes.
    fn start(&mut self, id: Id, status: u16, headers: Vec<(Vec<u8>, Vec<u8>)>) -> PyResult<u8> {
        let headers = headers.into_iter().map(|(n, v)| (Bytes::from(n), Bytes::from(v))).collect();
        self.command(Command::Start { id, status, headers })
    }

    /// `http.response.body`; the answer's [`FULL`] bit: wait for the queue to drain.
    fn body(&mut self, id: Id, data: &[u8], more: bool) -> PyResult<u8> {
        self.command(Command::Body { id, data: Bytes::copy_from_slice(data), more })
    }

    /// `receive()` wants more of the request body.
    fn pull(&mut self, id: Id) -> PyResult<u8> {
        self.command(Command::Pull(id))
    }

    /// The app failed.
    fn fail(&mut self, id: Id) -> PyResult<u8> {
        self.command(Command::Fail(id))
    }

    /// `websocket.accept`, with the app's subprotocol and extra headers as bytes.
    #[pyo3(signature = (id, subprotocol, headers))]
    fn accept(
        &mut self,
        id: Id,
        subprotocol: Option<String>,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> PyResult<u8> {
        let headers = headers.into_iter().map(|(n, v)| (Bytes::from(n), Bytes::from(v))).collect();
        self.command(Command::Accept { id, subprotocol, headers })
    }

    /// `websocket.send` of `text`; the answer's [`FULL`] bit: wait for the queue to drain.
    fn send_text(&mut self, id: Id, text: &str) -> PyResult<u8> {
        self.command(Command::Send {
            id,
            data: Bytes::copy_from_slice(text.as_bytes()),
            text: true,
        })
    }

    /// `websocket.send` of `bytes`.
    fn send_bytes(&mut self, id: Id, data: &[u8]) -> PyResult<u8> {
        self.command(Command::Send { id, data: Bytes::copy_from_slice(data), text: false })
    }

    /// `websocket.close` (`code`, `reason`), or before accept the refusal with status
    /// `code` (403; 500 when the app raised).
    fn close(&mut self, id: Id, code: u16, reason: String) -> PyResult<u8> {
        self.command(Command::Close { id, code, reason })
    }

    /// The app's unread WebSocket messages passed the high-water mark, or caught up.
    fn flow(&mut self, id: Id, paused: bool) -> PyResult<u8> {
        self.command(Command::Flow(id, paused))
    }

    /// `--request-timeout` passed for the request (its task is being cancelled).
    fn timed_out(&mut self, id: Id) -> PyResult<u8> {
        self.command(Command::TimedOut(id))
    }

    /// The loop's periodic turn: the heartbeat, USR1, deadlines, a graceful stop.
    /// `None`: go on; a number: leave the loop with this exit code.
    fn tick(&mut self, py: Python<'_>) -> Option<i32> {
        crate::wsgi::access::flush();
        if let Some(code) = self.stop.between_requests(py) {
            return Some(code);
        }
        let now = Instant::now();
        if std::os::unix::process::parent_id() != self.parent {
            tracing::info!("Parent changed, shutting down");
            return Some(exit::OK);
        }
        let stopping = self.stop.requested() && self.stop_deadline.is_none();
        if stopping {
            self.stop_deadline = Some(now + self.graceful);
        }
        let busy = match &mut self.driver {
            Driver::Inline { core, .. } => {
                if stopping {
                    core.begin_stop(now, self.stop.terminated());
                }
                core.sweep(now);
                core.busy()
            }
            Driver::Threaded(threaded) => {
                if stopping {
                    threaded.queues.stopping.store(true, Ordering::Relaxed);
                    let _ = threaded.waker.wake();
                }
                threaded.queues.open.load(Ordering::Relaxed) > 0
            }
        };
        match self.stop_deadline {
            Some(deadline) if !busy || now >= deadline => Some(exit::OK),
            _ => None,
        }
    }

    /// Whether a graceful stop began (the loop stops taking new work).
    fn stopping(&self) -> bool {
        self.stop_deadline.is_some()
    }

    /// How often the Python side should call [`Server::tick`], in seconds.
    #[getter]
    fn tick_seconds(&self) -> f64 {
        TICK.as_secs_f64()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Driver::Threaded(threaded) = &mut self.driver {
            threaded.queues.quit.store(true, Ordering::Relaxed);
            let _ = threaded.waker.wake();
            if let Some(thread) = threaded.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Threaded {
    /// Starts the socket thread over `core`.
    fn start(core: Core, poll: Poll) -> std::io::Result<Threaded> {
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        // SAFETY: eventfd has no memory preconditions; a negative result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let queues = Queues {
            commands: Arc::default(),
            inbound: Arc::default(),
            // SAFETY: a fresh descriptor nothing else owns.
            eventfd: Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }),
            stopping: Arc::default(),
            quit: Arc::default(),
            open: Arc::default(),
        };
        let theirs = queues.clone();
        let thread = std::thread::Builder::new()
            .name("asgi-sockets".into())
            .spawn(move || socket_thread(core, poll, &theirs))?;
        Ok(Threaded { queues, waker, thread: Some(thread) })
    }

    /// Queues one of the app's messages; the first of a batch wakes the socket thread.
    fn send(&self, command: Command) {
        let mut commands = lock(&self.queues.commands);
        let was_empty = commands.is_empty();
        commands.push(command);
        drop(commands);
        if was_empty {
            let _ = self.waker.wake();
        }
    }

    /// The notes queued so far (the eventfd read back to not-readable first).
    fn take(&self) -> Vec<(Id, Note)> {
        let mut count = 0u64;
        // SAFETY: reading 8 bytes into a live u64 from our own non-blocking eventfd.
        unsafe { libc::read(self.queues.eventfd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
        std::mem::take(&mut *lock(&self.queues.inbound))
    }
}

/// Bridge (B)'s socket thread: poll, drive, apply the app's messages, hand notes over.
fn socket_thread(mut core: Core, mut poll: Poll, queues: &Queues) {
    let mut events = Events::with_capacity(1024);
    let mut next_sweep = Instant::now() + TICK;
    let mut stop_begun = false;
    while !queues.quit.load(Ordering::Relaxed) {
        if let Err(e) = poll.poll(&mut events, Some(TICK)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                tracing::error!("poll failed: {e}");
                return;
            }
        }
        let now = Instant::now();
        core.handle(&events, now);
        core.signalled = false;
        let queued = std::mem::take(&mut *lock(&queues.commands));
        for command in queued {
            let _ = core.apply(command, now);
        }
        core.drive_undriven(now);
        if queues.stopping.load(Ordering::Relaxed) && !stop_begun {
            stop_begun = true;
            // (B) is for measuring: it drains the backlog on every stop.
            core.begin_stop(now, true);
        }
        if now >= next_sweep {
            next_sweep = now + TICK;
            core.sweep(now);
        }
        queues.open.store(core.open, Ordering::Relaxed);
        if !core.notes.is_empty() {
            let mut inbound = lock(&queues.inbound);
            let was_empty = inbound.is_empty();
            inbound.append(&mut core.notes);
            drop(inbound);
            if was_empty {
                let one = 1u64;
                // SAFETY: 8 bytes from a live u64 into our own eventfd.
                unsafe { libc::write(queues.eventfd.as_raw_fd(), (&one as *const u64).cast(), 8) };
            }
        }
    }
}

/// A queue's lock; a panic elsewhere does not make the queue unusable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
