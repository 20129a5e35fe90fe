//! The master process: forks workers, keeps their number up, reloads and stops them.
//!
//! Shaped like gunicorn's `Arbiter`: signal handlers only enqueue ([`SignalQueue`]); the
//! loop (`Arbiter::serve`) waits for a signal or a one-second tick, handles each `Event`
//! with one short `handle_*` method (gunicorn's names: `handle_hup`, `handle_term`, ...),
//! then reaps children, kills silent workers and brings the worker count back to target.
//! A handler ends the loop by returning a `Shutdown`: asked for (TERM, INT, QUIT) or a
//! `Halt` (gunicorn's `HaltServer`), each with its exit code. Those three types are in
//! `arbiter/event.rs`.
//!
//! Workers come in generations. Start-up, HUP and `--reload` start a new generation; the
//! previous one keeps serving until every new worker has imported the app, and only then
//! gets a graceful TERM. A new generation that cannot boot is abandoned and the old one
//! keeps serving (gunicorn takes the site down there); at start-up, when nothing serves
//! yet, the master stops instead.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::config::{self, Config};
use crate::exit::{self, BootError};
use crate::heartbeat::Heartbeat;
use crate::hooks::{self, Hook};
use crate::listener::Listener;
use crate::metrics::{self, server::Server as ScrapeServer, Meter, Reason, Totals};
use crate::pidfile::{self, Pidfile};
use crate::process;
use crate::reexec::ReExec;
use crate::reloader::Reloader;
use crate::signals::{self, ReportToken, SignalQueue};
use crate::systemd::Notifier;
use crate::worker::{self, WorkerContext};

mod control;
mod event;

use event::{Event, Halt, Shutdown, HANDLED};

/// How long the loop sleeps when nothing happens.
const TICK: Duration = Duration::from_secs(1);
/// A worker sent SIGABRT for a timeout gets this long before SIGKILL.
const ABORT_GRACE: Duration = Duration::from_secs(1);
/// After a respawned worker fails to boot while others serve, the wait before the next try.
const RESPAWN_BACKOFF: Duration = Duration::from_secs(5);

/// A worker as the master tracks it.
struct Worker {
    /// Birth order from 1, as gunicorn's `age`: TTOU retires the oldest.
    age: u64,
    /// The generation it was forked for: it serves, or replaces, with its siblings.
    generation: u64,
    /// The page it beats: liveness for `--timeout`, boot, the request in hand.
    heartbeat: Heartbeat,
    /// When it was sent TERM (reload, recycling, fewer workers); it no longer counts.
    retiring: Option<Instant>,
    /// When it was sent SIGABRT for a timeout.
    aborted: Option<Instant>,
    /// `--metrics-bind`: the page it counts in, read for scrapes and folded when reaped.
    meter: Option<Meter>,
    /// Retired for `--max-worker-memory` (the restart reason).
    over_memory: bool,
}

/// Workers started together, that replace the previous ones once all of them boot.
struct Generation {
    /// From 1, in order; 0 is "nothing serves yet".
    number: u64,
    /// Whoever takes it prints the app's import error, once for the generation.
    report: ReportToken,
}

impl Generation {
    fn new(number: u64) -> std::io::Result<Generation> {
        Ok(Generation { number, report: ReportToken::new()? })
    }
}

/// What the master starts with, besides the settings.
pub struct Start {
    /// The command line, program first: HUP parses it again.
    pub argv: Vec<String>,
    /// The sockets every worker accepts on, bound (or inherited) once.
    pub listeners: Vec<Listener>,
    /// The sockets came from systemd: never unlinked, handed on as such over USR2.
    pub systemd: bool,
    /// The master that started this one with USR2, while it lives.
    pub old_master: Option<libc::pid_t>,
    /// The app, when `--preload` imported it here.
    pub app: Option<Py<PyAny>>,
    /// The directory the command was started in, where USR2 starts the next master.
    pub start_dir: PathBuf,
}

impl Start {
    /// Removes the unix socket files this master bound, when it fails to start or exits.
    /// Sockets a USR2 predecessor handed over stay: it still serves on them.
    pub fn release_sockets(&self) {
        if self.old_master.is_none() {
            self.listeners.iter().for_each(Listener::unlink);
        }
    }
}

/// The master: its settings, its workers by pid, and what tells it to act.
pub struct Arbiter {
    /// The settings in force (HUP replaces them).
    config: Config,
    /// The command line, the sockets, the preloaded app.
    start: Start,
    /// Every live child that is a worker, by pid.
    workers: BTreeMap<libc::pid_t, Worker>,
    /// The `age` the next worker gets.
    next_age: u64,
    /// How many workers each generation keeps: `--workers`, moved by TTIN/TTOU/WINCH.
    num_workers: usize,
    /// The generation serving; number 0 (no workers) until the first one has booted.
    serving: Generation,
    /// A generation booting to replace `serving`.
    pending: Option<Generation>,
    /// The number the last generation started got.
    last_generation: u64,
    /// Signals, and workers' "booted" bytes, as they came.
    signals: SignalQueue,
    /// Events read from the pipe and not yet handled. A stop leaves the rest here for
    /// `stop` to see: an INT that came with the TERM makes the stop fast.
    events: VecDeque<Event>,
    /// `--pid`, while this master holds it.
    pidfile: Option<Pidfile>,
    /// The master started by USR2, while it runs.
    reexec_pid: Option<libc::pid_t>,
    /// No respawn before then: a worker failed to boot while others serve.
    respawn_after: Option<Instant>,
    /// systemd's notify socket, when started by systemd.
    notifier: Notifier,
    /// `--reload`: the watch on the app's source files.
    reloader: Option<Reloader>,
    /// The worker count last sent as statsd's `gunicorn.workers` gauge (sent on change).
    gauged_workers: Option<usize>,
    /// `--control-socket`, once the first workers are forked (as in gunicorn).
    control: Option<crate::control::ControlServer>,
    /// `gunicornc`'s `show stats`: workers spawned and killed, reloads.
    counters: control::Counters,
    /// `--metrics-bind`'s endpoint, served from the loop.
    scrape: Option<ScrapeServer>,
    /// What reaped workers counted, and why they left.
    totals: Totals,
}

impl Arbiter {
    /// The master, ready to run. On failure the unix socket files it was handed are
    /// removed (the process exits next).
    pub fn new(config: Config, start: Start) -> Result<Arbiter, BootError> {
        let scrape = match config.metrics.bind.map(ScrapeServer::bind).transpose() {
            Ok(scrape) => scrape,
            Err(error) => {
                start.release_sockets();
                return Err(BootError::Setup { what: "--metrics-bind", error });
            }
        };
        metrics::set_queue_limit(config.metrics.max_queue_time);
        let (signals, serving, reloader, pidfile) = match machinery(&config, &start) {
            Ok(made) => made,
            Err(error) => {
                start.release_sockets();
                return Err(error);
            }
        };
        Ok(Arbiter {
            num_workers: config.workers,
            config,
            start,
            workers: BTreeMap::new(),
            next_age: 1,
            serving,
            pending: None,
            last_generation: 0,
            signals,
            events: VecDeque::new(),
            pidfile,
            reexec_pid: None,
            respawn_after: None,
            notifier: Notifier::from_env(),
            reloader,
            gauged_workers: None,
            control: None,
            counters: control::Counters::new(),
            scrape,
            totals: Totals::default(),
        })
    }

    /// Runs the master to its end; returns the process exit code.
    pub fn run(mut self) -> i32 {
        self.announce();
        let Err(shutdown) = self.serve();
        match shutdown {
            Shutdown::Asked { graceful } => {
                self.stop(graceful);
                tracing::info!("Shutting down: Master");
                hooks::call_attached(Hook::OnExit, (self.num_workers,));
                exit::OK
            }
            Shutdown::Halt(halt) => {
                self.stop(true);
                tracing::error!("Shutting down: Master");
                tracing::error!("Reason: {halt}");
                hooks::call_attached(Hook::OnExit, (self.num_workers,));
                halt.exit_code()
            }
        }
    }

    /// The master loop: wait for a signal or a tick, handle what came, reap, kill silent
    /// workers, keep the worker count.
    fn serve(&mut self) -> Result<Infallible, Shutdown> {
        self.start_generation()?;
        self.open_control();
        loop {
            self.wait_for_events();
            self.serve_scrapes();
            while let Some(event) = self.events.pop_front() {
                self.handle(event)?;
            }
            self.reap_workers()?;
            self.murder_workers();
            self.check_memory();
            self.promote_pending();
            self.maybe_promote_master();
            self.manage_workers()?;
            self.send_gauges();
        }
    }

    /// gunicorn's master metrics (its `manage_workers`): `gunicorn.workers` when the count
    /// changes, `gunicorn.backlog` each pass with `--enable-backlog-metric`.
    fn send_gauges(&mut self) {
        let count = self.workers.values().filter(|w| w.retiring.is_none()).count();
        if self.gauged_workers != Some(count) {
            self.gauged_workers = Some(count);
            crate::statsd::workers(count);
        }
        if self.config.enable_backlog_metric {
            let fds = self.start.listeners.iter().map(Listener::fd);
            if let Some(waiting) = fds
                .map(|fd| crate::listener::accept_queue_len(fd).map(|n| n as u64))
                .sum::<Option<u64>>()
            {
                crate::statsd::backlog(waiting);
            }
        }
    }

    /// gunicorn's start-up lines, and `when_ready`.
    fn announce(&self) {
        let pid = std::process::id();
        tracing::info!("Starting ferricorn {}", env!("CARGO_PKG_VERSION"));
        for listener in &self.start.listeners {
            // gunicorn names a TCP listener's scheme https when TLS is on.
            let local = listener.local.to_string();
            let local = match (&self.config.tls, local.strip_prefix("http://")) {
                (Some(_), Some(rest)) => format!("https://{rest}"),
                _ => local,
            };
            tracing::info!("Listening at: {local} ({pid})");
        }
        tracing::info!("Using worker: {}", self.config.worker_class.name());
        if self.config.tls.is_some() {
            crate::tls::ktls::announce();
        }
        if let Some(addr) = self.scrape.as_ref().and_then(|s| s.local_addr().ok()) {
            tracing::info!("Serving metrics at: http://{addr}/metrics");
        }
        Python::attach(|py| hooks::set_listeners(py, &self.start.listeners));
        hooks::call_attached(Hook::WhenReady, (self.num_workers,));
    }

    /// Sleeps until a signal, a worker's news or a file change, at most a tick; queues
    /// what came, in order.
    fn wait_for_events(&mut self) {
        let mut fds = vec![self.signals.fd()];
        let mut timeout = TICK;
        if let Some(reloader) = &self.reloader {
            fds.extend(reloader.poll_fds());
            timeout = reloader.timeout(TICK);
        }
        if let Some(control) = &self.control {
            fds.extend(control.poll_fds());
            timeout = control.timeout(timeout);
        }
        if let Some(scrape) = &self.scrape {
            fds.extend(scrape.poll_fds());
            if scrape.writing() {
                timeout = timeout.min(metrics::server::WRITE_RETRY);
            }
        }
        signals::wait_readable(&fds, timeout);
        let signals = self.signals.drain().into_iter().filter_map(Event::from_signal);
        self.events.extend(signals);
        self.serve_control();
        if let Some(path) = self.reloader.as_mut().and_then(Reloader::settled_change) {
            self.events.push_back(Event::SourceChanged(path));
        }
    }

    /// One event, one `handle_*`; `Err` ends the loop.
    fn handle(&mut self, event: Event) -> Result<(), Shutdown> {
        if let Some(name) = event.signal_name() {
            tracing::info!("Handling signal: {name}");
        }
        match event {
            Event::Stop => self.handle_term(),
            Event::Interrupt => self.handle_int(),
            Event::Quit => self.handle_quit(),
            Event::Reload => self.handle_hup(),
            Event::Reexec => self.handle_usr2(),
            Event::Incr => self.handle_ttin(),
            Event::Decr => self.handle_ttou(),
            Event::ReopenLogs => self.handle_usr1(),
            Event::StopWorkers => self.handle_winch(),
            Event::ChildExited => self.handle_chld(),
            Event::WorkerBooted => self.handle_booted(),
            Event::SourceChanged(path) => self.handle_source_changed(&path),
        }
    }

    /// TERM: workers finish the requests in hand, within `--graceful-timeout`.
    fn handle_term(&mut self) -> Result<(), Shutdown> {
        Err(Shutdown::Asked { graceful: true })
    }

    /// INT: workers stop at once.
    fn handle_int(&mut self) -> Result<(), Shutdown> {
        Err(Shutdown::Asked { graceful: false })
    }

    /// QUIT: as INT.
    fn handle_quit(&mut self) -> Result<(), Shutdown> {
        Err(Shutdown::Asked { graceful: false })
    }

    /// HUP: new settings (from the same command line) and a new generation of workers.
    fn handle_hup(&mut self) -> Result<(), Shutdown> {
        tracing::info!("Hang up: Master");
        self.reread_settings();
        if self.config.preload {
            tracing::warn!(
                "HUP restarts the workers from the app preloaded in the master, so code \
                 changes are not picked up: use USR2 to start a master with the new code"
            );
        }
        // gunicorn sets the count from the new settings before `on_reload`.
        self.set_num_workers(self.config.workers);
        hooks::call_attached(Hook::OnReload, (self.num_workers,));
        // A fork that fails here is logged: the loop's `manage_workers` tries again on
        // this pass and stops the master if it fails too.
        if let Err(halt) = self.reload() {
            tracing::error!("{halt}");
        }
        Ok(())
    }

    /// TTIN: one worker more; the loop forks it.
    fn handle_ttin(&mut self) -> Result<(), Shutdown> {
        self.set_num_workers(self.num_workers + 1);
        Ok(())
    }

    /// TTOU: one worker fewer (the oldest retires), never below one.
    fn handle_ttou(&mut self) -> Result<(), Shutdown> {
        if self.num_workers > 1 {
            self.set_num_workers(self.num_workers - 1);
        }
        Ok(())
    }

    /// USR1: reopen the log files, here and in every worker (after logrotate).
    fn handle_usr1(&mut self) -> Result<(), Shutdown> {
        if let Err(e) = crate::log::reopen() {
            tracing::error!("USR1: can't reopen the log file: {e}");
        }
        self.kill_workers(libc::SIGUSR1);
        Ok(())
    }

    /// USR2: a new master from the same command line, inheriting the sockets; a second
    /// USR2 waits until the first one's master has exited or been promoted.
    fn handle_usr2(&mut self) -> Result<(), Shutdown> {
        if let Some(pid) = self.reexec_pid {
            tracing::warn!("USR2 ignored: the master it started (pid:{pid}) still runs");
        } else if let Some(pid) = self.start.old_master {
            tracing::warn!(
                "USR2 ignored: this master is not promoted yet (the old one, pid:{pid}, runs)"
            );
        } else {
            self.reexec();
        }
        Ok(())
    }

    /// WINCH stops the workers and keeps the sockets; HUP brings workers back. A terminal
    /// sends WINCH when its window is resized, so a master in a terminal ignores it.
    fn handle_winch(&mut self) -> Result<(), Shutdown> {
        // SAFETY: isatty only inspects a descriptor.
        if unsafe { libc::isatty(libc::STDIN_FILENO) } == 1 {
            tracing::debug!("SIGWINCH ignored: the master runs in a terminal");
            return Ok(());
        }
        tracing::info!("graceful stop of workers");
        if let Some(abandoned) = self.pending.take() {
            self.retire_generation(abandoned.number);
        }
        self.set_num_workers(0);
        Ok(())
    }

    /// CHLD: reap now. The loop reaps on every pass too, so a CHLD lost to a full pipe
    /// costs at most a tick.
    fn handle_chld(&mut self) -> Result<(), Shutdown> {
        Ok(self.reap_workers()?)
    }

    /// A worker has imported the app: its generation may be complete.
    fn handle_booted(&mut self) -> Result<(), Shutdown> {
        self.promote_pending();
        Ok(())
    }

    /// `--reload`: an app source file changed; reload as HUP does, with the same settings.
    fn handle_source_changed(&mut self, path: &Path) -> Result<(), Shutdown> {
        tracing::info!("Reloading: {} modified", path.display());
        Ok(self.reload()?)
    }

    /// TTIN, TTOU, WINCH and HUP set the worker count; `nworkers_changed` hears of each,
    /// even one that keeps the count (HUP), as in gunicorn.
    fn set_num_workers(&mut self, count: usize) {
        let old = std::mem::replace(&mut self.num_workers, count);
        hooks::call_attached(Hook::NworkersChanged, (count, old));
    }

    /// HUP's settings: the command line, environment and config file read again. Ones
    /// that no longer parse are logged and the running ones kept.
    fn reread_settings(&mut self) {
        let args = self.start.argv.get(1..).unwrap_or_default();
        match Python::attach(|py| config::load(py, args)) {
            Ok(config) => {
                if config.binds != self.config.binds {
                    tracing::warn!(
                        "HUP does not change --bind; USR2 starts a master that binds anew"
                    );
                }
                crate::log::init(config.log_level);
                metrics::set_queue_limit(config.metrics.max_queue_time);
                Python::attach(|py| hooks::configure(py, &config));
                self.config = config;
            }
            Err(e) => {
                tracing::error!("HUP: the settings no longer parse ({e}); keeping the running ones")
            }
        }
    }

    /// Starts a generation that replaces the serving one once it has booted.
    fn reload(&mut self) -> Result<(), Halt> {
        self.counters.reloads += 1;
        self.notifier.reloading();
        self.start_generation()
    }

    /// A new generation of workers, forked now. One that cannot even be set up (no pipe
    /// left) is given up while another generation serves or boots; with none, the
    /// master stops.
    fn start_generation(&mut self) -> Result<(), Halt> {
        // A generation that booted since the last pass serves before another replaces it.
        self.promote_pending();
        let generation = match Generation::new(self.last_generation + 1) {
            Ok(generation) => generation,
            Err(e) if self.serving.number != 0 || self.pending.is_some() => {
                tracing::error!("Can't start new workers: {e}; the running ones keep on");
                return Ok(());
            }
            Err(e) => {
                tracing::error!("Can't start workers: {e}");
                return Err(Halt::Unable("start workers"));
            }
        };
        if let Some(abandoned) = self.pending.replace(generation) {
            self.retire_generation(abandoned.number);
        }
        self.last_generation += 1;
        self.manage_workers()
    }

    /// Once every worker of the pending generation has booted, it serves and the
    /// previous workers stop gracefully.
    fn promote_pending(&mut self) {
        let Some(pending) = &self.pending else { return };
        let number = pending.number;
        let booted = self.live(number).filter(|(_, w)| w.heartbeat.booted()).count();
        if booted < self.num_workers {
            return;
        }
        // Start-up's own generation is 1; any later one came from a reload, even one sent
        // before the first generation had booted.
        let first = number == 1;
        self.serving = self.pending.take().expect("checked above");
        let old: Vec<libc::pid_t> = self
            .workers
            .iter()
            .filter(|(_, w)| w.generation != number && w.retiring.is_none())
            .map(|(&pid, _)| pid)
            .collect();
        for pid in old {
            self.retire(pid);
        }
        if !first {
            tracing::info!("Reloaded: {booted} workers of generation {number} serving");
        }
        self.notifier.ready();
    }

    /// Forks the new master for USR2; the child runs `pre_exec` and execs.
    fn reexec(&mut self) {
        let exec = match Python::attach(|py| ReExec::prepare(py, &self.start)) {
            Ok(exec) => exec,
            Err(e) => {
                tracing::error!("USR2: can't prepare the new master: {e}");
                return;
            }
        };
        let forked = Python::attach(|py| match process::fork(py) {
            Ok(None) => {
                hooks::call(py, Hook::PreExec, (self.num_workers,));
                exec.exec()
            }
            other => other,
        });
        match forked {
            Ok(None) => unreachable!("the child execs or exits"),
            Ok(Some(pid)) => {
                tracing::info!("Started a new master (pid:{pid}) from the current code");
                self.reexec_pid = Some(pid);
            }
            Err(e) => tracing::error!("USR2: fork failed: {e}"),
        }
    }

    /// A master started by USR2 takes over once the old one has exited.
    fn maybe_promote_master(&mut self) {
        let Some(old) = self.start.old_master else { return };
        if std::os::unix::process::parent_id() == old as u32 {
            return;
        }
        self.start.old_master = None;
        tracing::info!("Master has been promoted.");
        if let (Some(pidfile), Some(path)) = (&mut self.pidfile, &self.config.pidfile) {
            if let Err(e) = pidfile.rename(path) {
                tracing::error!("Can't move the pidfile to {}: {e}", path.display());
            }
        }
        self.notifier.main_pid();
    }

    /// Collects every exited child; a worker that could not boot may stop the master.
    fn reap_workers(&mut self) -> Result<(), Halt> {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with WNOHANG on our own children, status into a local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return Ok(());
            }
            if Some(pid) == self.reexec_pid {
                tracing::warn!("The master started by USR2 (pid:{pid}) exited");
                self.reexec_pid = None;
                self.reclaim_control();
                continue;
            }
            let Some(worker) = self.workers.remove(&pid) else { continue };
            hooks::call_attached(Hook::ChildExit, (pid, worker.age));
            let code = log_exit(pid, &worker, status);
            if let Some(meter) = &worker.meter {
                let reason = self.restart_reason(&worker, code);
                self.totals.fold(meter, reason);
            }
            // Only a worker's own verdict is a boot failure; one killed from outside while
            // booting is replaced like any other (as gunicorn does).
            // A panic while booting would recur in every replacement.
            let failed_boot = matches!(code, exit::WORKER_BOOT_ERROR | exit::APP_LOAD_ERROR)
                || (code == exit::WORKER_PANIC && !worker.heartbeat.booted());
            if failed_boot && worker.retiring.is_none() {
                self.boot_failed(&worker, code)?;
            }
        }
    }

    /// A worker could not boot: the reload it belonged to is abandoned, or, at start-up
    /// or when no worker serves any more, the master stops.
    fn boot_failed(&mut self, worker: &Worker, code: i32) -> Result<(), Halt> {
        let halt = match code {
            exit::APP_LOAD_ERROR => Halt::AppLoad,
            _ => Halt::WorkerBoot,
        };
        if self.pending.as_ref().is_some_and(|p| p.number == worker.generation) {
            if self.serving.number == 0 {
                return Err(halt);
            }
            let abandoned = self.pending.take().expect("checked above");
            self.retire_generation(abandoned.number);
            tracing::error!(
                "Reload failed: the new workers could not boot; the old workers keep serving"
            );
            self.notifier.ready();
            return Ok(());
        }
        if worker.generation != self.serving.number {
            return Ok(());
        }
        let serving = self.live(self.serving.number).filter(|(_, w)| w.heartbeat.booted()).count();
        if serving == 0 {
            return Err(halt);
        }
        tracing::error!(
            "A new worker failed to boot; {serving} keep serving; next try in {}s",
            RESPAWN_BACKOFF.as_secs()
        );
        self.respawn_after = Some(Instant::now() + RESPAWN_BACKOFF);
        Ok(())
    }

    /// `--timeout`: SIGABRT to a silent worker (the app sees an exception, the client a
    /// 500), SIGKILL if it is still there a moment later. Retiring workers past
    /// `--graceful-timeout` are killed too.
    fn murder_workers(&mut self) {
        let now = Instant::now();
        for (&pid, worker) in &mut self.workers {
            if let Some(since) = worker.retiring {
                if now.duration_since(since) > self.config.graceful_timeout {
                    kill(pid, libc::SIGKILL);
                }
            }
            let Some(timeout) = self.config.timeout else { continue };
            match worker.aborted {
                None if worker.heartbeat.stuck_for() > timeout => {
                    match worker.heartbeat.request() {
                        Some(request) => {
                            tracing::error!(target: "critical", "WORKER TIMEOUT (pid:{pid}) handling {request}")
                        }
                        None => tracing::error!(target: "critical", "WORKER TIMEOUT (pid:{pid})"),
                    }
                    // A booted worker dumps every thread's stack on the dump signal
                    // (faulthandler, no GIL needed); these lines say which request each busy thread is in.
                    let sync = self.config.worker_class == config::WorkerClass::Sync;
                    for busy in worker.heartbeat.busy_threads() {
                        tracing::error!(target: "critical",
                            "WORKER TIMEOUT (pid:{pid}) thread 0x{:016x} ({}) handling {} for {:.1}s",
                            busy.ident, crate::heartbeat::thread_name(busy.slot, sync),
                            busy.request, busy.running.as_secs_f64());
                    }
                    if worker.heartbeat.booted() {
                        kill(pid, crate::heartbeat::dump_signal());
                    }
                    kill(pid, libc::SIGABRT);
                    worker.aborted = Some(now);
                }
                Some(at) if now.duration_since(at) > ABORT_GRACE => kill(pid, libc::SIGKILL),
                _ => {}
            }
        }
    }

    /// `--max-worker-memory`: a worker past the bound finishes its requests and is replaced.
    fn check_memory(&mut self) {
        let Some(limit) = self.config.max_worker_memory else { return };
        let over: Vec<(libc::pid_t, u64)> = self
            .workers
            .iter()
            .filter(|(_, w)| w.retiring.is_none())
            .filter_map(|(&pid, _)| {
                process::rss_bytes(pid).filter(|&rss| rss > limit).map(|rss| (pid, rss))
            })
            .collect();
        for (pid, rss) in over {
            tracing::info!(
                "Worker (pid:{pid}) uses {} MiB, over --max-worker-memory {} MiB: replacing it",
                rss >> 20,
                limit >> 20
            );
            if let Some(worker) = self.workers.get_mut(&pid) {
                worker.over_memory = true;
            }
            self.retire(pid);
        }
    }

    /// Why a reaped worker left, for `ferricorn_worker_restarts_total`. A worker leaves by
    /// itself with code 0 only after `--max-requests` (or when its master is gone).
    fn restart_reason(&self, worker: &Worker, code: i32) -> Reason {
        match () {
            _ if worker.aborted.is_some() => Reason::Timeout,
            _ if worker.over_memory => Reason::Memory,
            _ if worker.retiring.is_some() && worker.generation != self.serving.number => {
                Reason::Reload
            }
            _ if worker.retiring.is_some() => Reason::Retire,
            _ if code == exit::OK => Reason::MaxRequests,
            _ => Reason::Crash,
        }
    }

    /// Answers the scrapes the metrics endpoint has ready (never blocks).
    fn serve_scrapes(&mut self) {
        let Some(mut scrape) = self.scrape.take() else { return };
        scrape.serve(&|openmetrics| self.render_metrics(openmetrics));
        self.scrape = Some(scrape);
    }

    /// The metrics: reaped workers' totals, every live page, RSS and the backlog.
    fn render_metrics(&self, openmetrics: bool) -> String {
        let workers: Vec<metrics::render::LiveWorker> = self
            .workers
            .iter()
            .filter_map(|(&pid, w)| {
                let meter = w.meter.as_ref()?;
                Some(metrics::render::LiveWorker {
                    pid,
                    counters: meter.counters(),
                    gauges: meter.gauges(),
                    rss: process::rss_bytes(pid),
                })
            })
            .collect();
        let fds = self.start.listeners.iter().map(Listener::fd);
        let backlog = fds.filter_map(crate::listener::accept_queue_len).map(|n| n as u64);
        let backlog = backlog.reduce(|a, b| a + b);
        let scrape = metrics::render::Scrape { totals: &self.totals, workers: &workers, backlog };
        metrics::render::render(&scrape, openmetrics)
    }

    /// Forks or retires workers until each live generation has `num_workers`.
    fn manage_workers(&mut self) -> Result<(), Halt> {
        if let Some(number) = self.pending.as_ref().map(|p| p.number) {
            while self.live(number).count() < self.num_workers {
                self.spawn_worker(number)?;
            }
        }
        let number = self.serving.number;
        if number == 0 {
            return Ok(());
        }
        let mut live: Vec<(u64, libc::pid_t)> =
            self.live(number).map(|(&pid, w)| (w.age, pid)).collect();
        if live.len() > self.num_workers {
            live.sort_unstable();
            for &(_, pid) in &live[..live.len() - self.num_workers] {
                self.retire(pid);
            }
            return Ok(());
        }
        if self.respawn_after.is_some_and(|after| Instant::now() < after) {
            return Ok(());
        }
        self.respawn_after = None;
        for _ in live.len()..self.num_workers {
            self.spawn_worker(number)?;
        }
        Ok(())
    }

    /// Workers of `generation` that are not on their way out.
    fn live(&self, generation: u64) -> impl Iterator<Item = (&libc::pid_t, &Worker)> {
        self.workers.iter().filter(move |(_, w)| w.generation == generation && w.retiring.is_none())
    }

    /// Forks one worker of `generation`, with `pre_fork` before and `post_fork` after.
    fn spawn_worker(&mut self, generation: u64) -> Result<(), Halt> {
        let heartbeat = Heartbeat::new(self.config.worker_tmp_dir.as_deref()).map_err(|e| {
            tracing::error!("Can't create a worker heartbeat: {e}");
            Halt::Unable("start a worker")
        })?;
        let meter = match self.scrape.is_some().then(Meter::new).transpose() {
            Ok(meter) => meter,
            Err(e) => {
                tracing::error!("Can't map a worker's metrics page: {e}");
                return Err(Halt::Unable("start a worker"));
            }
        };
        let age = self.next_age;
        let forked = Python::attach(|py| {
            hooks::call(py, Hook::PreFork, (0, age));
            signals::set_blocked(&signals::WORKER_SIGNALS, true);
            let forked = process::fork(py);
            if let Ok(None) = forked {
                if let Some(meter) = &meter {
                    meter.install();
                }
                self.become_worker(py, generation, age, &heartbeat);
            }
            signals::set_blocked(&signals::WORKER_SIGNALS, false);
            forked
        });
        match forked {
            Ok(Some(pid)) => {
                Python::attach(|py| hooks::forked(py, pid));
                let worker = Worker {
                    age,
                    generation,
                    heartbeat,
                    retiring: None,
                    aborted: None,
                    meter,
                    over_memory: false,
                };
                self.workers.insert(pid, worker);
                self.next_age += 1;
                self.counters.spawned += 1;
                Ok(())
            }
            Ok(None) => unreachable!("the child never returns"),
            Err(e) => {
                tracing::error!("fork failed: {e}");
                Err(Halt::Unable("fork a worker"))
            }
        }
    }

    /// In the child: drop the master's signal handling and run the worker to its end.
    fn become_worker(
        &mut self,
        py: Python<'_>,
        generation: u64,
        age: u64,
        heartbeat: &Heartbeat,
    ) -> ! {
        self.signals.unregister();
        drop(self.control.take()); // the descriptors only: the file stays the master's
        hooks::call(py, Hook::PostFork, (std::process::id(), age));
        let report = match &self.pending {
            Some(p) if p.number == generation => &p.report,
            _ => &self.serving.report,
        };
        let ctx = WorkerContext {
            config: &self.config,
            listeners: &self.start.listeners,
            report,
            pulse: heartbeat.pulse(),
            app: self.start.app.as_ref(),
            master_wake: self.signals.wake_fd(),
            reload_feed: self.reloader.as_ref().map(Reloader::feed_fd),
            age,
        };
        worker::run(py, &ctx)
    }

    /// A graceful TERM; the worker no longer counts and is replaced.
    fn retire(&mut self, pid: libc::pid_t) {
        if let Some(worker) = self.workers.get_mut(&pid) {
            if worker.retiring.is_none() {
                worker.retiring = Some(Instant::now());
                kill(pid, libc::SIGTERM);
                self.counters.killed += 1;
            }
        }
    }

    /// Retires every worker of `generation` (an abandoned reload, a replaced one).
    fn retire_generation(&mut self, generation: u64) {
        let pids: Vec<libc::pid_t> = self
            .workers
            .iter()
            .filter(|(_, w)| w.generation == generation)
            .map(|(&p, _)| p)
            .collect();
        for pid in pids {
            self.retire(pid);
        }
    }

    /// TERM (graceful) or QUIT to every worker, wait up to `--graceful-timeout`, then KILL.
    /// An INT or QUIT while waiting turns a graceful stop into a fast one.
    fn stop(&mut self, graceful: bool) {
        self.close_control();
        self.notifier.stopping();
        // Sockets a USR2 master shares are left in place, as are systemd's.
        if self.reexec_pid.is_none() {
            self.start.release_sockets();
        }
        self.start.listeners.clear();
        self.kill_workers(if graceful { libc::SIGTERM } else { libc::SIGQUIT });
        let deadline = Instant::now() + self.config.graceful_timeout;
        let mut came: Vec<Event> = self.events.drain(..).collect();
        while !self.workers.is_empty() && Instant::now() < deadline {
            if came.iter().any(|e| matches!(e, Event::Interrupt | Event::Quit)) {
                self.kill_workers(libc::SIGQUIT);
            }
            let _ = self.reap_workers();
            if self.workers.is_empty() {
                break;
            }
            let signals = self.signals.wait(Duration::from_millis(100)).into_iter();
            came = signals.filter_map(Event::from_signal).collect();
        }
        self.kill_workers(libc::SIGKILL);
        for pid in std::mem::take(&mut self.workers).into_keys() {
            // SAFETY: blocking wait for our own, already killed, child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
        if let Some(pidfile) = &self.pidfile {
            pidfile.unlink();
        }
    }

    /// Sends `signal` to every worker, retiring or not.
    fn kill_workers(&self, signal: libc::c_int) {
        for &pid in self.workers.keys() {
            kill(pid, signal);
        }
    }
}

/// What the master sets up before its loop, the pidfile last so that no failure leaves
/// one behind: the signal queue, the first report token, `--reload`'s watch, `--pid`.
fn machinery(
    config: &Config,
    start: &Start,
) -> Result<(SignalQueue, Generation, Option<Reloader>, Option<Pidfile>), BootError> {
    let setup = |what| move |error| BootError::Setup { what, error };
    let signals = SignalQueue::new(&HANDLED).map_err(setup("the signal pipe"))?;
    let serving = Generation::new(0).map_err(setup("a report pipe"))?;
    let reloader = match config.reload {
        true => Some(Reloader::new(&config.reload_extra_files).map_err(setup("--reload"))?),
        false => None,
    };
    let pidfile = match &config.pidfile {
        None => None,
        Some(path) => {
            let path = match start.old_master {
                Some(_) => pidfile::upgrade_path(path),
                None => path.clone(),
            };
            let created = Pidfile::create(&path, std::process::id());
            Some(created.map_err(|error| BootError::Pidfile { path, error })?)
        }
    };
    Ok((signals, serving, reloader, pidfile))
}

/// Logs how a worker ended, as gunicorn words it; returns its exit code (-1: a signal).
fn log_exit(pid: libc::pid_t, worker: &Worker, status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        match libc::WTERMSIG(status) {
            libc::SIGKILL if worker.retiring.is_none() && worker.aborted.is_none() => {
                tracing::error!("Worker (pid:{pid}) was sent SIGKILL! Perhaps out of memory?")
            }
            sig => tracing::error!("Worker (pid:{pid}) was sent signal {sig}!"),
        }
        return -1;
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    if code == exit::WORKER_PANIC {
        tracing::error!("Worker (pid:{pid}) panicked (exit code {code})");
    } else if !matches!(code, exit::OK | exit::WORKER_BOOT_ERROR | exit::APP_LOAD_ERROR) {
        tracing::error!("Worker (pid:{pid}) exited with code {code}");
    }
    code
}

/// Sends `signal` to a worker.
fn kill(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: signalling our own child; ESRCH for one already gone is harmless.
    unsafe { libc::kill(pid, signal) };
}
