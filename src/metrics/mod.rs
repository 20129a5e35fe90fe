//! `--metrics-bind`: Prometheus metrics, counted by the workers in shared memory and
//! served by the master (no worker is woken to answer a scrape).
//!
//! Each worker gets a [`Meter`] page of its own, mapped by the master before the fork and
//! kept next to its heartbeat; the worker only adds to it (relaxed atomic adds, no lock,
//! no syscall) and no other process writes it. The master reads every live page for a
//! scrape and, when it reaps a worker, folds that page's counters into its own
//! [`Totals`], so counters survive worker restarts. Gauges (in flight, connections) are
//! read from live pages only. [`render`] writes the text exposition format, [`server`]
//! the master's scrape endpoint. Without `--metrics-bind` no page is mapped and every
//! recording call is one branch on an empty `OnceLock`.
//!
//! `--max-queue-time` lives here too: the queue time is measured where the
//! `ferricorn_request_queue_seconds` histogram is fed ([`queued`]).

pub mod render;
pub mod server;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::shared_page::SharedPage;

/// `--metrics-bind` and `--max-queue-time`, as validated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    /// Where the master serves `/metrics`; `None`: off.
    pub bind: Option<std::net::SocketAddr>,
    /// A request that waited longer gets 503; `None`: off.
    pub max_queue_time: Option<Duration>,
}

/// Methods with a label of their own; any other is `other` (labels stay bounded).
pub const METHODS: [&str; 10] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other"];
/// Status classes: `1xx`..`5xx`, and `other` for a status outside 100..=599.
pub const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];
/// Upper bounds (seconds) of the latency and queue-time histogram buckets; `+Inf` follows.
pub const BUCKETS: [f64; 13] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const SLOTS: usize = BUCKETS.len() + 1;

/// A histogram in shared memory: per-bucket counts (not cumulative) and the sum.
#[repr(C)]
struct SharedHistogram {
    /// Observations per bucket; the last is above every bound.
    buckets: [AtomicU64; SLOTS],
    /// Sum of the observations, in microseconds.
    sum_us: AtomicU64,
}

impl SharedHistogram {
    fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let slot = BUCKETS.iter().position(|&b| seconds <= b).unwrap_or(BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(value.as_micros() as u64, Ordering::Relaxed);
    }

    fn read(&self) -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// One worker's page. Only atomics: the worker adds while the master reads.
#[repr(C)]
struct Page {
    /// Responses by method (row) and status class (column).
    requests: [[AtomicU64; CLASSES.len()]; METHODS.len()],
    /// From the app's call to the response's end.
    duration: SharedHistogram,
    /// From the connection's accept (or a keep-alive request's complete head) to the
    /// app's call.
    queue: SharedHistogram,
    /// Requests answered 503 by `--max-queue-time`.
    queue_rejected: AtomicU64,
    /// Bytes read from clients' sockets.
    bytes_in: AtomicU64,
    /// Bytes written to clients' sockets (heads, bodies, sendfile).
    bytes_out: AtomicU64,
    /// Requests the app was called for and whose response has not ended.
    in_flight: AtomicI64,
    /// Client connections open in this worker.
    connections: AtomicI64,
    /// The app threads this worker runs requests on (1, or `--threads`).
    threads: AtomicI64,
}

/// A histogram as read: plain numbers, summed across workers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket, not cumulative.
    pub buckets: [u64; SLOTS],
    /// Sum in microseconds.
    pub sum_us: u64,
}

impl Histogram {
    fn add(&mut self, other: &Histogram) {
        self.buckets.iter_mut().zip(other.buckets).for_each(|(a, b)| *a += b);
        self.sum_us += other.sum_us;
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// The counters of one page (or of many, summed): what the master folds and renders.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    /// Responses by method and status class, as [`METHODS`] and [`CLASSES`] order them.
    pub requests: [[u64; CLASSES.len()]; METHODS.len()],
    /// Request latency.
    pub duration: Histogram,
    /// Queue time.
    pub queue: Histogram,
    /// 503s for `--max-queue-time`.
    pub queue_rejected: u64,
    /// Bytes in from clients.
    pub bytes_in: u64,
    /// Bytes out to clients.
    pub bytes_out: u64,
}

impl Counters {
    /// Adds `other` in (a reaped worker's page into the master's totals).
    pub fn add(&mut self, other: &Counters) {
        for (row, other_row) in self.requests.iter_mut().zip(&other.requests) {
            row.iter_mut().zip(other_row).for_each(|(a, b)| *a += b);
        }
        self.duration.add(&other.duration);
        self.queue.add(&other.queue);
        self.queue_rejected += other.queue_rejected;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }
}

/// A live worker's gauges, as read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Requests in the app or still responding.
    pub in_flight: u64,
    /// Client connections open.
    pub connections: u64,
    /// App threads.
    pub threads: u64,
}

/// The master's side of one worker's page: owns the mapping.
pub struct Meter {
    /// The shared page.
    page: SharedPage<Page>,
}

impl Meter {
    /// Maps a fresh, zeroed page (anonymous shared memory, inherited across fork).
    pub fn new() -> std::io::Result<Meter> {
        // SAFETY: `Page` is atomics only, valid all zero.
        Ok(Meter { page: unsafe { SharedPage::map(None)? } })
    }

    fn page(&self) -> &Page {
        self.page.get()
    }

    /// In the freshly forked worker: this page is the one every recording call adds to.
    pub fn install(&self) {
        // SAFETY: in the worker the mapping lives as long as the process: the worker
        // never returns into the master's code that would drop this Meter (it `_exit`s).
        let page: &'static Page = unsafe { self.page.ptr().as_ref() };
        let _ = PAGE.set(Installed(page));
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        let page = self.page();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            requests: std::array::from_fn(|m| std::array::from_fn(|c| load(&page.requests[m][c]))),
            duration: page.duration.read(),
            queue: page.queue.read(),
            queue_rejected: load(&page.queue_rejected),
            bytes_in: load(&page.bytes_in),
            bytes_out: load(&page.bytes_out),
        }
    }

    /// The gauges now (a negative value, impossible but for a torn read, is 0).
    pub fn gauges(&self) -> Gauges {
        let page = self.page();
        let load = |a: &AtomicI64| a.load(Ordering::Relaxed).max(0) as u64;
        Gauges {
            in_flight: load(&page.in_flight),
            connections: load(&page.connections),
            threads: load(&page.threads),
        }
    }
}

/// Why a worker left, for `ferricorn_worker_restarts_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// Killed by the master for `--timeout`.
    Timeout,
    /// Left by itself after `--max-requests`.
    MaxRequests,
    /// Replaced for `--max-worker-memory`.
    Memory,
    /// Died unasked: a signal, a panic, a non-zero exit, a failed boot.
    Crash,
    /// Replaced by a new generation (HUP, `--reload`, USR2's new master taking over).
    Reload,
    /// Retired with no replacement (TTOU, WINCH).
    Retire,
}

impl Reason {
    /// Every reason, in label order, so each is rendered even at 0.
    pub const ALL: [Reason; 6] = [
        Reason::Timeout,
        Reason::MaxRequests,
        Reason::Memory,
        Reason::Crash,
        Reason::Reload,
        Reason::Retire,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::MaxRequests => "max_requests",
            Reason::Memory => "memory",
            Reason::Crash => "crash",
            Reason::Reload => "reload",
            Reason::Retire => "retire",
        }
    }
}

/// What the master keeps of workers that are gone.
#[derive(Debug, Default)]
pub struct Totals {
    /// Reaped workers' counters, summed.
    pub counters: Counters,
    /// Workers that left, by reason.
    pub restarts: std::collections::BTreeMap<Reason, u64>,
}

impl Totals {
    /// A worker was reaped: keep its counts and why it left.
    pub fn fold(&mut self, meter: &Meter, reason: Reason) {
        self.counters.add(&meter.counters());
        *self.restarts.entry(reason).or_default() += 1;
    }
}

/// The worker's page, once installed.
struct Installed(&'static Page);

// SAFETY: atomics only, behind a mapping that lives as long as the worker process.
unsafe impl Send for Installed {}
unsafe impl Sync for Installed {}

/// This worker's page; empty in the master and without `--metrics-bind`.
static PAGE: OnceLock<Installed> = OnceLock::new();

#[inline]
fn page() -> Option<&'static Page> {
    PAGE.get().map(|p| p.0)
}

/// Whether this worker counts (`--metrics-bind` is on).
#[inline]
pub fn enabled() -> bool {
    PAGE.get().is_some()
}

/// The method's row: the common ones by name, any other `other`.
fn method_index(method: &str) -> usize {
    METHODS[..METHODS.len() - 1].iter().position(|m| *m == method).unwrap_or(METHODS.len() - 1)
}

/// The status line's class column (`"404 Not Found"` is 4xx).
fn class_index(status: &str) -> usize {
    let code: u16 = status.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(0);
    match code {
        100..=599 => usize::from(code / 100) - 1,
        _ => CLASSES.len() - 1,
    }
}

/// A response ended (the access log's record): its method, status and latency.
#[inline]
pub fn request(method: &str, status: &str, elapsed: Duration) {
    let Some(page) = page() else { return };
    page.requests[method_index(method)][class_index(status)].fetch_add(1, Ordering::Relaxed);
    page.duration.observe(elapsed);
}

/// `--max-queue-time` in microseconds; 0: off. Set in the master before the forks
/// (and again on HUP), so workers inherit it.
static QUEUE_LIMIT_US: AtomicU64 = AtomicU64::new(0);

/// Sets `--max-queue-time` (`None`: off).
pub fn set_queue_limit(limit: Option<Duration>) {
    let us = limit.map_or(0, |l| (l.as_micros() as u64).max(1));
    QUEUE_LIMIT_US.store(us, Ordering::Relaxed);
}

/// A request is about to reach the app after waiting `waited`: counts it in the queue
/// histogram; `true` when `--max-queue-time` says it waited too long (503 instead).
#[inline]
pub fn queued(waited: Duration) -> bool {
    let limit = QUEUE_LIMIT_US.load(Ordering::Relaxed);
    let over = limit != 0 && waited.as_micros() as u64 > limit;
    if let Some(page) = page() {
        page.queue.observe(waited);
        if over {
            page.queue_rejected.fetch_add(1, Ordering::Relaxed);
        }
    }
    over
}

/// Bytes read from a client.
#[inline]
pub fn bytes_in(n: usize) {
    if let Some(page) = page() {
        page.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Bytes written to a client.
#[inline]
pub fn bytes_out(n: usize) {
    if let Some(page) = page() {
        page.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The app threads this worker has (the master's busy/idle thread gauges).
pub fn set_threads(threads: usize) {
    if let Some(page) = page() {
        page.threads.store(threads as i64, Ordering::Relaxed);
    }
}

/// Adds `delta` to a gauge while alive and takes it back on drop.
fn gauge_guard(gauge: fn(&Page) -> &AtomicI64) -> Option<&'static AtomicI64> {
    let gauge = gauge(page()?);
    gauge.fetch_add(1, Ordering::Relaxed);
    Some(gauge)
}

/// One unit of a gauge while alive: a request in flight (from the app's call to the
/// response's end), an open client connection.
pub struct Held(Option<&'static AtomicI64>);

impl Held {
    pub fn in_flight() -> Held {
        Held(gauge_guard(|p| &p.in_flight))
    }

    pub fn connection() -> Held {
        Held(gauge_guard(|p| &p.connections))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(gauge) = self.0 {
            gauge.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_bounded() {
        assert_eq!(METHODS[method_index("GET")], "GET");
        assert_eq!(METHODS[method_index("PROPFIND")], "other");
        let classes = ["200 OK", "101 Switching", "404 Not Found", "503 x", "999 odd", "junk", ""];
        let got: Vec<&str> = classes.iter().map(|s| CLASSES[class_index(s)]).collect();
        assert_eq!(got, ["2xx", "1xx", "4xx", "5xx", "other", "other", "other"]);
    }

    #[test]
    fn histogram_buckets_and_sum() {
        let meter = Meter::new().unwrap();
        let page = meter.page();
        for ms in [0, 1, 2, 30, 20_000] {
            page.duration.observe(Duration::from_millis(ms));
        }
        let h = meter.counters().duration;
        assert_eq!(h.count(), 5);
        assert_eq!(h.buckets[0], 2, "0 and 1 ms are <= 1 ms");
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[5], 1, "30 ms is in the 50 ms bucket");
        assert_eq!(h.buckets[SLOTS - 1], 1, "20 s is above every bound");
        assert_eq!(h.sum_us, 20_033_000);
    }

    #[test]
    fn fold_keeps_a_reaped_workers_counts() {
        let (a, b) = (Meter::new().unwrap(), Meter::new().unwrap());
        a.page().requests[0][1].fetch_add(3, Ordering::Relaxed);
        b.page().requests[0][1].fetch_add(4, Ordering::Relaxed);
        b.page().bytes_out.fetch_add(10, Ordering::Relaxed);
        let mut totals = Totals::default();
        totals.fold(&a, Reason::MaxRequests);
        totals.fold(&b, Reason::Timeout);
        assert_eq!(totals.counters.requests[0][1], 7);
        assert_eq!(totals.counters.bytes_out, 10);
        assert_eq!(totals.restarts[&Reason::MaxRequests], 1);
        assert_eq!(totals.restarts[&Reason::Timeout], 1);
    }
}
