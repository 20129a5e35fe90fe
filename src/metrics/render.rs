//! The exposition formats: Prometheus text 0.0.4, or OpenMetrics 1.0 when the scraper's
//! `Accept` asks for it (counter families then drop `_total` from their `# TYPE` name
//! and the body ends with `# EOF`). Series whose count is 0 are left out, except the
//! gauges and the restart reasons, which are always there so that dashboards see 0.

use std::fmt::Write as _;

use super::{Counters, Gauges, Histogram, Reason, Totals, BUCKETS, CLASSES, METHODS};

/// `Content-Type` of the Prometheus text format.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of OpenMetrics.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One live worker as the master sees it at scrape time.
pub struct LiveWorker {
    /// Its pid, the RSS series' label.
    pub pid: libc::pid_t,
    /// Its counters so far.
    pub counters: Counters,
    /// Its gauges now.
    pub gauges: Gauges,
    /// Its resident memory, from `/proc` (`None`: could not be read).
    pub rss: Option<u64>,
}

/// Everything one scrape shows.
pub struct Scrape<'a> {
    /// What reaped workers left behind.
    pub totals: &'a Totals,
    /// The workers alive now.
    pub workers: &'a [LiveWorker],
    /// Connections waiting in the listen backlog (TCP listeners; `None`: unknown).
    pub backlog: Option<u64>,
}

/// The body of a scrape, in the format asked for.
pub fn render(scrape: &Scrape<'_>, openmetrics: bool) -> String {
    let mut sum = scrape.totals.counters;
    let mut gauges = Gauges::default();
    for worker in scrape.workers {
        sum.add(&worker.counters);
        gauges.in_flight += worker.gauges.in_flight;
        gauges.connections += worker.gauges.connections;
    }
    let mut out = Writer { out: String::with_capacity(8192), openmetrics };
    requests(&mut out, &sum);
    out.histogram(
        "ferricorn_request_duration_seconds",
        "From the app's call to the response's end.",
        &sum.duration,
    );
    out.histogram(
        "ferricorn_request_queue_seconds",
        "From the connection's accept (a keep-alive request: its complete head) to the app's call.",
        &sum.queue,
    );
    out.counter(
        "ferricorn_queue_rejected_total",
        "Requests answered 503 by --max-queue-time.",
        &[("", sum.queue_rejected)],
    );
    out.counter(
        "ferricorn_received_bytes_total",
        "Bytes read from clients.",
        &[("", sum.bytes_in)],
    );
    out.counter("ferricorn_sent_bytes_total", "Bytes written to clients.", &[("", sum.bytes_out)]);
    out.gauge(
        "ferricorn_requests_in_flight",
        "Requests being answered.",
        &[("", gauges.in_flight)],
    );
    out.gauge("ferricorn_connections", "Client connections open.", &[("", gauges.connections)]);
    occupancy(&mut out, scrape.workers);
    if let Some(backlog) = scrape.backlog {
        out.gauge(
            "ferricorn_listen_backlog",
            "Connections waiting in the listen backlog.",
            &[("", backlog)],
        );
    }
    restarts(&mut out, scrape.totals);
    let rss: Vec<(String, u64)> = scrape
        .workers
        .iter()
        .filter_map(|w| w.rss.map(|rss| (format!("pid=\"{}\"", w.pid), rss)))
        .collect();
    let rss: Vec<(&str, u64)> = rss.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    out.gauge("ferricorn_worker_rss_bytes", "Resident memory of each worker.", &rss);
    if openmetrics {
        out.out.push_str("# EOF\n");
    }
    out.out
}

/// `ferricorn_requests_total{method,status_class}`, the non-zero series.
fn requests(out: &mut Writer, sum: &Counters) {
    let labels: Vec<(String, u64)> = METHODS
        .iter()
        .zip(&sum.requests)
        .flat_map(|(method, row)| {
            CLASSES.iter().zip(row).filter(|(_, &n)| n > 0).map(move |(class, &n)| {
                (format!("method=\"{method}\",status_class=\"{class}\""), n)
            })
        })
        .collect();
    let labels: Vec<(&str, u64)> = labels.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    out.counter("ferricorn_requests_total", "Responses, by method and status class.", &labels);
}

/// Busy and idle workers (busy: a request in flight) and app threads (busy: as many as
/// the worker's requests in flight, at most its threads).
fn occupancy(out: &mut Writer, workers: &[LiveWorker]) {
    let busy = workers.iter().filter(|w| w.gauges.in_flight > 0).count() as u64;
    let idle = workers.len() as u64 - busy;
    out.gauge(
        "ferricorn_workers",
        "Worker processes, busy (a request in flight) or idle.",
        &[("state=\"busy\"", busy), ("state=\"idle\"", idle)],
    );
    let threads: u64 = workers.iter().map(|w| w.gauges.threads).sum();
    let busy: u64 = workers.iter().map(|w| w.gauges.in_flight.min(w.gauges.threads)).sum();
    out.gauge(
        "ferricorn_threads",
        "App threads of all workers, busy or idle.",
        &[("state=\"busy\"", busy), ("state=\"idle\"", threads.saturating_sub(busy))],
    );
}

/// `ferricorn_worker_restarts_total{reason}`, every reason.
fn restarts(out: &mut Writer, totals: &Totals) {
    let labels: Vec<(String, u64)> = Reason::ALL
        .iter()
        .map(|r| {
            (format!("reason=\"{}\"", r.label()), totals.restarts.get(r).copied().unwrap_or(0))
        })
        .collect();
    let labels: Vec<(&str, u64)> = labels.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    out.counter(
        "ferricorn_worker_restarts_total",
        "Workers that left, by reason (timeout, max_requests, memory, crash, reload, retire).",
        &labels,
    );
}

/// Appends families in the chosen format.
struct Writer {
    /// The body so far.
    out: String,
    /// OpenMetrics rather than Prometheus text.
    openmetrics: bool,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let family = match (self.openmetrics, kind) {
            (true, "counter") => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let _ = writeln!(self.out, "# HELP {family} {help}\n# TYPE {family} {kind}");
    }

    fn samples(&mut self, name: &str, samples: &[(&str, u64)]) {
        for (labels, value) in samples {
            match labels.is_empty() {
                true => {
                    let _ = writeln!(self.out, "{name} {value}");
                }
                false => {
                    let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
                }
            }
        }
    }

    fn counter(&mut self, name: &str, help: &str, samples: &[(&str, u64)]) {
        self.family(name, "counter", help);
        self.samples(name, samples);
    }

    fn gauge(&mut self, name: &str, help: &str, samples: &[(&str, u64)]) {
        self.family(name, "gauge", help);
        self.samples(name, samples);
    }

    fn histogram(&mut self, name: &str, help: &str, histogram: &Histogram) {
        self.family(name, "histogram", help);
        let mut cumulative = 0;
        for (i, count) in histogram.buckets.iter().enumerate() {
            cumulative += count;
            let le = BUCKETS.get(i).map_or("+Inf".to_owned(), |b| format!("{b}"));
            let _ = writeln!(self.out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = histogram.sum_us as f64 / 1e6;
        let _ = writeln!(self.out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(openmetrics: bool) -> String {
        let mut totals = Totals::default();
        totals.counters.requests[0][1] = 3;
        totals.restarts.insert(Reason::Timeout, 2);
        let mut counters = Counters::default();
        counters.requests[0][1] = 2;
        counters.requests[2][3] = 1;
        counters.duration.buckets[0] = 3;
        counters.duration.sum_us = 1500;
        let gauges = Gauges { in_flight: 1, connections: 2, threads: 4 };
        let workers = [
            LiveWorker { pid: 7, counters, gauges, rss: Some(4096) },
            LiveWorker {
                pid: 8,
                counters: Counters::default(),
                gauges: Gauges::default(),
                rss: None,
            },
        ];
        render(&Scrape { totals: &totals, workers: &workers, backlog: Some(5) }, openmetrics)
    }

    #[test]
    fn prometheus_text() {
        let text = scrape(false);
        for line in [
            "# TYPE ferricorn_requests_total counter",
            "ferricorn_requests_total{method=\"GET\",status_class=\"2xx\"} 5",
            "ferricorn_requests_total{method=\"POST\",status_class=\"4xx\"} 1",
            "ferricorn_request_duration_seconds_bucket{le=\"0.001\"} 3",
            "ferricorn_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "ferricorn_request_duration_seconds_sum 0.0015",
            "ferricorn_request_duration_seconds_count 3",
            "ferricorn_workers{state=\"busy\"} 1",
            "ferricorn_workers{state=\"idle\"} 1",
            "ferricorn_threads{state=\"busy\"} 1",
            "ferricorn_threads{state=\"idle\"} 3",
            "ferricorn_listen_backlog 5",
            "ferricorn_worker_restarts_total{reason=\"timeout\"} 2",
            "ferricorn_worker_restarts_total{reason=\"crash\"} 0",
            "ferricorn_worker_rss_bytes{pid=\"7\"} 4096",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn openmetrics_names_counter_families_without_total() {
        let text = scrape(true);
        assert!(text.contains("# TYPE ferricorn_requests counter\n"));
        assert!(text.contains("\nferricorn_requests_total{method=\"GET\""));
        assert!(text.ends_with("# EOF\n"));
    }
}
