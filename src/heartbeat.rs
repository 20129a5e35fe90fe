//! Worker heartbeats: a page of memory shared by the master and one worker.
//!
//! gunicorn's workers `fchmod` a temporary file and the master reads its ctime; here the
//! worker stores the monotonic clock (system-wide on Linux, so both processes read the
//! same clock) into a shared mapping, which costs a store instead of a syscall and never
//! touches a disk. The same page says whether the worker has booted (the app imported,
//! which a reload waits for) and which request it is in, so a `WORKER TIMEOUT` line can
//! name it; and, per app thread, the request it runs, when it started and when the thread
//! last showed life in it: the master counts a thread silent past `--timeout` as a stuck
//! worker and names each busy thread, and the worker's `--request-timeout` watchdog reads
//! the same slots. The mapping is anonymous, or backed by an unlinked file in
//! `--worker-tmp-dir`.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::shared_page::SharedPage;

/// Longest request description kept (method, space, path), in bytes.
const REQUEST_BYTES: usize = 128;
const WORDS: usize = REQUEST_BYTES / 8;

/// `Page::state` once the app is imported (a fresh page is 0: booting).
const BOOTED: u32 = 1;

/// App threads whose request the page records one by one (`--threads` beyond this are
/// counted in `request` only).
pub const THREAD_SLOTS: usize = 64;

/// One app thread's request, for the master's timeout report and the worker's
/// `--request-timeout` watchdog. All zero while the thread is idle.
#[repr(C)]
struct Slot {
    /// The thread's identity as Python and faulthandler name it (`pthread_self`).
    ident: AtomicU64,
    /// Monotonic milliseconds when the request entered the thread; 0: idle.
    started_ms: AtomicU64,
    /// Monotonic milliseconds of the thread's last sign of life in this request (its
    /// start, or a wait on the client): what `--timeout` measures for an app thread.
    alive_ms: AtomicU64,
    /// Bytes of `request` in use.
    request_len: AtomicU32,
    /// `METHOD target`, packed in words.
    request: [AtomicU64; WORDS],
}

/// A busy app thread, as the page describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// The slot (the app thread's number).
    pub slot: usize,
    /// The thread's identity (`pthread_self`, Python's `threading.get_ident()`).
    pub ident: u64,
    /// `METHOD target`.
    pub request: String,
    /// When the request entered the thread (monotonic ms): tells one request from the next.
    pub started_ms: u64,
    /// How long the request has run.
    pub running: Duration,
    /// How long the thread has been silent (neither starting nor waiting on the client).
    pub silent: Duration,
}

/// The shared page's layout. Only atomics, so both processes may touch it at any time.
#[repr(C)]
struct Page {
    /// Monotonic milliseconds of the worker's last sign of life.
    beat_ms: AtomicU64,
    /// 0 while the worker boots, `BOOTED` once the app is imported: a new generation
    /// replaces the old only once booted, and a worker that dies before is a boot failure.
    state: AtomicU32,
    /// Bytes of `request` in use; 0 when the worker is between requests.
    request_len: AtomicU32,
    /// The request in hand (`METHOD target`), packed in words, so the master's timeout
    /// line can name it without asking the worker.
    request: [AtomicU64; WORDS],
    /// Per app thread: the request it runs.
    threads: [Slot; THREAD_SLOTS],
}

/// `METHOD target`, cut to [`REQUEST_BYTES`], into `words`; returns its length.
fn pack(words: &[AtomicU64; WORDS], method: &str, target: &str) -> u32 {
    let mut buf = [0u8; REQUEST_BYTES];
    let mut len = 0;
    for part in [method.as_bytes(), b" ", target.as_bytes()] {
        let take = part.len().min(REQUEST_BYTES - len);
        buf[len..len + take].copy_from_slice(&part[..take]);
        len += take;
    }
    for (word, chunk) in words.iter().zip(buf.chunks_exact(8)) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        word.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
    }
    len as u32
}

/// The first `len` bytes packed in `words`, as text.
fn unpack(words: &[AtomicU64; WORDS], len: u32) -> String {
    let mut bytes = Vec::with_capacity(REQUEST_BYTES);
    for word in words {
        bytes.extend_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
    }
    bytes.truncate((len as usize).min(REQUEST_BYTES));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The busy app threads of `page`, oldest request first.
fn busy_threads(page: &Page) -> Vec<Busy> {
    let now = now_ms();
    let mut busy: Vec<Busy> = page
        .threads
        .iter()
        .enumerate()
        .filter_map(|(slot, s)| {
            let started = s.started_ms.load(Ordering::Acquire);
            if started == 0 {
                return None;
            }
            let alive = s.alive_ms.load(Ordering::Acquire);
            Some(Busy {
                slot,
                ident: s.ident.load(Ordering::Relaxed),
                request: unpack(&s.request, s.request_len.load(Ordering::Acquire)),
                started_ms: started,
                running: Duration::from_millis(now.saturating_sub(started)),
                silent: Duration::from_millis(now.saturating_sub(alive)),
            })
        })
        .collect();
    busy.sort_by_key(|b| std::cmp::Reverse(b.running));
    busy
}

/// The master's side: owns the mapping.
pub struct Heartbeat {
    /// The shared page.
    page: SharedPage<Page>,
}

impl Heartbeat {
    /// Maps a fresh page, stamped "booting, alive now".
    pub fn new(dir: Option<&Path>) -> io::Result<Heartbeat> {
        let file = match dir {
            Some(dir) => Some(unlinked_file(dir, SharedPage::<Page>::size_for())?),
            None => None,
        };
        // SAFETY: `Page` is atomics only, valid all zero.
        let page = unsafe { SharedPage::map(file.as_ref().map(AsRawFd::as_raw_fd))? };
        let heartbeat = Heartbeat { page };
        heartbeat.pulse().beat();
        Ok(heartbeat)
    }

    /// The worker's handle to the same page.
    pub fn pulse(&self) -> Pulse {
        Pulse { page: self.page.ptr() }
    }

    /// How long ago the worker last beat.
    pub fn silent_for(&self) -> Duration {
        let last = self.page().beat_ms.load(Ordering::Acquire);
        Duration::from_millis(now_ms().saturating_sub(last))
    }

    /// How long the worker has been stuck: silent itself, or with an app thread silent
    /// in one request (a request holding an app thread is what `--timeout` bounds).
    /// The master asks this of every worker on every tick: it reads the slots' clocks
    /// and copies no request text.
    pub fn stuck_for(&self) -> Duration {
        let now = now_ms();
        let silent = self.page().threads.iter().filter_map(|s| {
            let busy = s.started_ms.load(Ordering::Acquire) != 0;
            busy.then(|| now.saturating_sub(s.alive_ms.load(Ordering::Acquire)))
        });
        self.silent_for().max(Duration::from_millis(silent.max().unwrap_or(0)))
    }

    /// The app threads in a request, oldest first.
    pub fn busy_threads(&self) -> Vec<Busy> {
        busy_threads(self.page())
    }

    pub fn booted(&self) -> bool {
        self.page().state.load(Ordering::Acquire) == BOOTED
    }

    /// The request the worker is in, as `METHOD /path`.
    pub fn request(&self) -> Option<String> {
        let page = self.page();
        let len = page.request_len.load(Ordering::Acquire);
        (len > 0).then(|| unpack(&page.request, len))
    }

    fn page(&self) -> &Page {
        self.page.get()
    }
}

/// The worker's side: cheap to copy, used from the loop (and app threads).
#[derive(Clone, Copy)]
pub struct Pulse {
    /// The page the master mapped before the fork; it outlives the worker.
    page: NonNull<Page>,
}

// SAFETY: as for Heartbeat: only atomics behind a pointer that stays mapped in the worker
// until it exits.
unsafe impl Send for Pulse {}
unsafe impl Sync for Pulse {}

impl Pulse {
    fn page(&self) -> &Page {
        // SAFETY: the worker never unmaps its page before it exits.
        unsafe { self.page.as_ref() }
    }

    /// "Still alive."
    pub fn beat(&self) {
        self.page().beat_ms.store(now_ms(), Ordering::Release);
    }

    /// The app is imported: this worker can take traffic.
    pub fn booted(&self) {
        self.beat();
        self.page().state.store(BOOTED, Ordering::Release);
    }

    /// Notes the request the app is about to run (a beat as well).
    pub fn enter(&self, method: &str, target: &str) {
        let page = self.page();
        let len = pack(&page.request, method, target);
        page.request_len.store(len, Ordering::Release);
        self.beat();
    }

    /// App thread `slot` (this thread) starts a request. Slots past [`THREAD_SLOTS`] are
    /// not recorded.
    pub fn enter_thread(&self, slot: usize, method: &str, target: &str) {
        let Some(s) = self.page().threads.get(slot) else { return };
        // SAFETY: pthread_self has no preconditions.
        let ident = unsafe { libc::pthread_self() } as u64;
        s.ident.store(ident, Ordering::Relaxed);
        let len = pack(&s.request, method, target);
        s.request_len.store(len, Ordering::Relaxed);
        let now = now_ms().max(1);
        s.alive_ms.store(now, Ordering::Release);
        s.started_ms.store(now, Ordering::Release);
    }

    /// App thread `slot` is alive in its request (waiting on the client, not stuck).
    pub fn thread_alive(&self, slot: usize) {
        if let Some(s) = self.page().threads.get(slot) {
            s.alive_ms.store(now_ms(), Ordering::Release);
        }
    }

    /// App thread `slot` is done with its request.
    pub fn leave_thread(&self, slot: usize) {
        if let Some(s) = self.page().threads.get(slot) {
            s.started_ms.store(0, Ordering::Release);
            s.request_len.store(0, Ordering::Release);
        }
    }

    /// The busy app threads, as the master sees them (for the worker's watchdog).
    pub fn busy_threads(&self) -> Vec<Busy> {
        busy_threads(self.page())
    }

    /// Back between requests (a beat as well).
    pub fn leave(&self) {
        self.page().request_len.store(0, Ordering::Release);
        self.beat();
    }
}

/// The signal the master sends a worker, just before its timeout SIGABRT, for every
/// thread's Python stack (faulthandler's handler for it needs no GIL). A real-time signal:
/// none is sent to a process group by a terminal, and SIGABRT itself is one faulthandler
/// keeps for its fatal-error dump.
pub fn dump_signal() -> libc::c_int {
    libc::SIGRTMIN() + 3
}

/// Milliseconds on CLOCK_MONOTONIC, the same clock in every process of the machine.
fn now_ms() -> u64 {
    crate::process::monotonic().as_millis() as u64
}

/// A file of `size` bytes in `dir`, already unlinked: only the mapping keeps it.
fn unlinked_file(dir: &Path, size: usize) -> io::Result<std::fs::File> {
    let mut template = dir.join("ferricorn-heartbeat-XXXXXX").as_os_str().as_bytes().to_vec();
    template.push(0);
    let template = CString::from_vec_with_nul(template).map_err(io::Error::other)?;
    let mut raw = template.into_bytes_with_nul();
    // SAFETY: mkstemp rewrites the XXXXXX of a NUL-terminated buffer we own.
    let fd = unsafe { libc::mkstemp(raw.as_mut_ptr().cast()) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display())));
    }
    // SAFETY: mkstemp returned a new descriptor we own; the path is NUL-terminated.
    let file = unsafe {
        libc::unlink(raw.as_ptr().cast());
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd)
    };
    file.set_len(size as u64)?;
    Ok(file)
}

/// How the timeout logs name the thread in `slot`: the `sync` worker runs its requests on
/// the main thread (slot 0), the `async` worker on app thread `ferricorn-app-SLOT`.
pub fn thread_name(slot: usize, sync_worker: bool) -> String {
    match sync_worker {
        true => "main thread".to_owned(),
        false => format!("ferricorn-app-{slot}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let heartbeat = Heartbeat::new(None).unwrap();
        assert!(!heartbeat.booted());
        assert_eq!(heartbeat.request(), None);
        let pulse = heartbeat.pulse();
        pulse.booted();
        pulse.enter("GET", "/slow?x=1");
        assert!(heartbeat.booted());
        assert_eq!(heartbeat.request().as_deref(), Some("GET /slow?x=1"));
        pulse.enter("POST", &"/a".repeat(100));
        assert_eq!(heartbeat.request().map(|r| r.len()), Some(REQUEST_BYTES));
        pulse.leave();
        assert_eq!(heartbeat.request(), None);
        assert!(heartbeat.silent_for() < Duration::from_secs(5));
    }

    #[test]
    fn file_backed() {
        let dir = std::env::temp_dir();
        let heartbeat = Heartbeat::new(Some(&dir)).unwrap();
        heartbeat.pulse().enter("GET", "/");
        assert_eq!(heartbeat.request().as_deref(), Some("GET /"));
        assert!(Heartbeat::new(Some(Path::new("/no/such/dir"))).is_err());
    }

    #[test]
    fn thread_slots() {
        let heartbeat = Heartbeat::new(None).unwrap();
        let pulse = heartbeat.pulse();
        assert!(heartbeat.busy_threads().is_empty());
        pulse.enter_thread(3, "GET", "/stuck");
        pulse.enter_thread(THREAD_SLOTS, "GET", "/unrecorded");
        let busy = heartbeat.busy_threads();
        assert_eq!(busy.len(), 1);
        assert_eq!((busy[0].slot, busy[0].request.as_str()), (3, "GET /stuck"));
        // SAFETY: pthread_self has no preconditions.
        assert_eq!(busy[0].ident, unsafe { libc::pthread_self() } as u64);
        assert!(heartbeat.stuck_for() < Duration::from_secs(5));
        pulse.thread_alive(3);
        pulse.leave_thread(3);
        assert!(pulse.busy_threads().is_empty());
    }

    /// A worker that beats while one app thread sits silent in its request is stuck for
    /// as long as that thread, and no longer once it leaves.
    #[test]
    fn stuck_for_is_the_silentest_busy_thread() {
        let heartbeat = Heartbeat::new(None).unwrap();
        let pulse = heartbeat.pulse();
        pulse.beat();
        pulse.enter_thread(5, "GET", "/stuck");
        heartbeat.page().threads[5].alive_ms.store(now_ms() - 10_000, Ordering::Release);
        assert!(heartbeat.stuck_for() >= Duration::from_secs(10));
        pulse.leave_thread(5);
        assert!(heartbeat.stuck_for() < Duration::from_secs(5));
    }
}
