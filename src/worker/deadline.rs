//! `--request-timeout`: a watchdog thread that raises `RequestTimeout` in the thread of a
//! request running past its deadline (`PyThreadState_SetAsyncExc`, as mod_wsgi's
//! request-timeout does), after logging that thread's Python stack.
//!
//! Each app thread (and the sync worker's main thread) notes the request it runs in its
//! slot of the heartbeat page ([`enter`], [`leave`]); the master reads the same slots to
//! name the busy threads in a `WORKER TIMEOUT` report, and counts a thread silent in one
//! request longer than `--timeout` as a stuck worker. The watchdog only reads them.
//!
//! The exception is raised when the thread next runs Python bytecode: a thread blocked in
//! one long C call (`time.sleep(60)`, a socket read without a timeout, a C extension
//! holding the GIL) unwinds only when that call returns. Such a thread stays silent in its
//! slot, so `--timeout` replaces the worker (with the stack dump) if it never does.
//!
//! Races: the watchdog checks the slot again with the GIL held, and a thread clears its
//! slot and any exception still pending for it with the GIL held too, before its next
//! request, so the exception never lands in another request.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::heartbeat::{Busy, Pulse};

/// How long a thread has to unwind after its `RequestTimeout` before the log says it
/// did not (and that `--timeout` will deal with it).
const UNWIND_GRACE: Duration = Duration::from_secs(5);

/// Whether the watchdog runs: only then can an exception be pending for a thread.
static WATCHING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread's slot on the heartbeat page while it runs a request.
    static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// This thread (app thread or sync worker's main thread, number `slot`) starts a request.
pub fn enter(slot: usize, method: &str, target: &str) {
    if let Some(pulse) = super::pulse() {
        pulse.enter_thread(slot, method, target);
        SLOT.with(|s| s.set(Some(slot)));
    }
}

/// This thread is done with its request: its slot is cleared, and an exception the
/// watchdog raised too late for the request is dropped. Called with the GIL held.
pub fn leave(_py: Python<'_>) {
    let Some(slot) = SLOT.with(Cell::take) else { return };
    if let Some(pulse) = super::pulse() {
        pulse.leave_thread(slot);
    }
    if WATCHING.load(Ordering::Relaxed) {
        // SAFETY: the GIL is held (`_py`); a NULL exception clears this thread's pending one.
        unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(self_ident() as _, std::ptr::null_mut()) };
    }
}

/// This thread waits on its client: alive, not stuck (what `--timeout` measures).
pub fn alive() {
    if let (Some(slot), Some(pulse)) = (SLOT.with(Cell::get), super::pulse()) {
        pulse.thread_alive(slot);
    }
}

fn self_ident() -> u64 {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as u64 }
}

/// A request the watchdog raised `RequestTimeout` in.
struct Fired {
    /// Its thread's slot.
    slot: usize,
    /// When it started (tells it from the thread's next request).
    started_ms: u64,
    /// When the exception was raised.
    at: Instant,
    /// The log already said it has not unwound.
    warned: bool,
}

/// Starts the watchdog for `limit` (`--request-timeout`); it lives as long as the worker.
pub fn watch(limit: Duration, sync_worker: bool) {
    let Some(pulse) = super::pulse().copied() else { return };
    WATCHING.store(true, Ordering::Relaxed);
    let tick = (limit / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let spawned = std::thread::Builder::new().name("ferricorn-deadline".into()).spawn(move || {
        super::pool::block_abort();
        let mut fired: Vec<Fired> = Vec::new();
        loop {
            std::thread::sleep(tick);
            let busy = pulse.busy_threads();
            fired.retain_mut(|f| still_running(f, &busy));
            for late in busy.iter().filter(|b| b.running > limit) {
                if fired.iter().any(|f| (f.slot, f.started_ms) == (late.slot, late.started_ms)) {
                    continue;
                }
                let (slot, started_ms) = (late.slot, late.started_ms);
                fired.push(Fired { slot, started_ms, at: Instant::now(), warned: false });
                Python::attach(|py| interrupt(py, &pulse, late, limit, sync_worker));
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("--request-timeout: can't start the watchdog thread: {e}");
    }
}

/// Whether a fired request still runs; says once when it is past [`UNWIND_GRACE`].
fn still_running(fired: &mut Fired, busy: &[Busy]) -> bool {
    let Some(b) = busy.iter().find(|b| (b.slot, b.started_ms) == (fired.slot, fired.started_ms))
    else {
        return false;
    };
    if !fired.warned && fired.at.elapsed() >= UNWIND_GRACE {
        fired.warned = true;
        tracing::error!(
            "{} (thread 0x{:016x}) has not unwound {}s after its RequestTimeout (stuck \
             outside Python?); --timeout will replace the worker if it stays stuck",
            b.request,
            b.ident,
            UNWIND_GRACE.as_secs()
        );
    }
    true
}

/// With the GIL: if `late` still runs the same request, logs its stack and raises
/// `RequestTimeout` in its thread.
fn interrupt(py: Python<'_>, pulse: &Pulse, late: &Busy, limit: Duration, sync_worker: bool) {
    let same = pulse
        .busy_threads()
        .into_iter()
        .any(|b| (b.slot, b.started_ms) == (late.slot, late.started_ms));
    if !same {
        return;
    }
    let worker = match py.import("ferricorn._worker") {
        Ok(m) => m,
        Err(e) => return tracing::error!("--request-timeout: {e}"),
    };
    let stack: String = worker
        .call_method1("stack_of", (late.ident,))
        .and_then(|s| s.extract())
        .unwrap_or_default();
    tracing::error!(
        "REQUEST TIMEOUT {} on thread 0x{:016x} ({}) after {:.1}s \
         (--request-timeout {}s): raising RequestTimeout in it\nStack (most recent call last):\n{}",
        late.request,
        late.ident,
        crate::heartbeat::thread_name(late.slot, sync_worker),
        late.running.as_secs_f64(),
        limit.as_secs_f64(),
        stack
    );
    let Ok(exc) = worker.getattr("RequestTimeout") else { return };
    // SAFETY: the GIL is held; the thread id came from the thread itself, and the slot
    // check above (under this GIL) says it is still in the late request.
    unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(late.ident as _, exc.as_ptr()) };
}
