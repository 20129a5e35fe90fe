//! The master process: forks workers, keeps their number up, and stops them.
//!
//! Shaped like gunicorn's `Arbiter`: signal handlers only enqueue ([`SignalQueue`]); the
//! loop waits for a signal or a one-second tick, handles each with one short method,
//! reaps children and brings the worker count back to target.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pyo3::ffi;
use pyo3::prelude::*;

use crate::config::Config;
use crate::exit;
use crate::listener::Listener;
use crate::signals::{ReportToken, SignalQueue};
use crate::worker::{self, WorkerContext};

/// How long the loop sleeps when nothing happens.
const TICK: Duration = Duration::from_secs(1);

/// The signals the master handles, as the loop sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// TERM: finish in-flight requests, then exit. INT, QUIT: exit now.
    Stop { graceful: bool },
    /// CHLD: a worker exited; reaping happens every tick anyway.
    ChildExited,
}

const HANDLED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGCHLD];

impl Signal {
    fn from_raw(signal: libc::c_int) -> Option<Signal> {
        match signal {
            libc::SIGTERM => Some(Signal::Stop { graceful: true }),
            libc::SIGINT | libc::SIGQUIT => Some(Signal::Stop { graceful: false }),
            libc::SIGCHLD => Some(Signal::ChildExited),
            _ => None,
        }
    }
}

/// gunicorn's lower-case signal names for log lines.
fn signal_name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGTERM => "term",
        libc::SIGINT => "int",
        libc::SIGQUIT => "quit",
        libc::SIGCHLD => "chld",
        _ => "unknown",
    }
}

/// Why the master stops on its own: gunicorn's `HaltServer`.
struct Halt {
    reason: &'static str,
    code: i32,
}

pub struct Arbiter {
    config: Config,
    listeners: Vec<Listener>,
    /// Live workers by pid, with the order they were born in (gunicorn's `age`).
    workers: BTreeMap<libc::pid_t, u64>,
    /// Age of the next worker.
    next_age: u64,
    signals: SignalQueue,
    report: ReportToken,
}

impl Arbiter {
    pub fn new(config: Config, listeners: Vec<Listener>) -> std::io::Result<Arbiter> {
        Ok(Arbiter {
            config,
            listeners,
            workers: BTreeMap::new(),
            next_age: 0,
            signals: SignalQueue::new(&HANDLED)?,
            report: ReportToken::new()?,
        })
    }

    /// The master loop; returns the process exit code.
    pub fn run(mut self) -> i32 {
        let pid = std::process::id();
        tracing::info!("Starting ferricorn {}", env!("CARGO_PKG_VERSION"));
        for listener in &self.listeners {
            tracing::info!("Listening at: {} ({pid})", listener.local);
        }
        tracing::info!("Using worker: {}", self.config.worker_class.name());
        let outcome = loop {
            if let Err(halt) = self.reap_workers().and_then(|()| self.manage_workers()) {
                break Err(halt);
            }
            let stop =
                self.signals.wait(TICK).into_iter().find_map(|raw| match Signal::from_raw(raw)? {
                    Signal::Stop { graceful } => {
                        tracing::info!("Handling signal: {}", signal_name(raw));
                        Some(graceful)
                    }
                    Signal::ChildExited => None,
                });
            if let Some(graceful) = stop {
                break Ok(graceful);
            }
        };
        match outcome {
            Ok(graceful) => self.stop(graceful),
            Err(halt) => {
                self.stop(true);
                tracing::error!("Shutting down: Master");
                tracing::error!("Reason: {}", halt.reason);
                return halt.code;
            }
        }
        tracing::info!("Shutting down: Master");
        exit::OK
    }

    /// Collects every exited child; a worker that could not boot stops the master.
    fn reap_workers(&mut self) -> Result<(), Halt> {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with WNOHANG on our own children, status into a local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return Ok(());
            }
            if self.workers.remove(&pid).is_none() {
                continue;
            }
            if libc::WIFEXITED(status) {
                match libc::WEXITSTATUS(status) {
                    exit::OK => {}
                    exit::WORKER_BOOT_ERROR => {
                        return Err(Halt {
                            reason: "Worker failed to boot.",
                            code: exit::WORKER_BOOT_ERROR,
                        })
                    }
                    exit::APP_LOAD_ERROR => {
                        return Err(Halt {
                            reason: "App failed to load.",
                            code: exit::APP_LOAD_ERROR,
                        })
                    }
                    code => tracing::error!("Worker (pid:{pid}) exited with code {code}"),
                }
            } else if libc::WIFSIGNALED(status) {
                match libc::WTERMSIG(status) {
                    libc::SIGKILL => tracing::error!(
                        "Worker (pid:{pid}) was sent SIGKILL! Perhaps out of memory?"
                    ),
                    sig => tracing::error!("Worker (pid:{pid}) was sent signal {sig}!"),
                }
            }
        }
    }

    /// Forks workers until there are as many as configured.
    fn manage_workers(&mut self) -> Result<(), Halt> {
        while self.workers.len() < self.config.workers {
            self.spawn_worker()?;
        }
        Ok(())
    }

    fn spawn_worker(&mut self) -> Result<(), Halt> {
        let pid = Python::attach(|py| fork(py, |py| self.become_worker(py)));
        match pid {
            Ok(pid) => {
                self.workers.insert(pid, self.next_age);
                self.next_age += 1;
                Ok(())
            }
            Err(e) => {
                tracing::error!("fork failed: {e}");
                Err(Halt { reason: "Unable to fork a worker.", code: exit::FAILURE })
            }
        }
    }

    /// In the child: drop the master's signal handling and run the worker to its end.
    fn become_worker(&mut self, py: Python<'_>) -> ! {
        self.signals.unregister();
        let ctx = WorkerContext {
            config: &self.config,
            listeners: &self.listeners,
            report: &self.report,
        };
        worker::run(py, &ctx)
    }

    /// TERM (graceful) or QUIT to every worker, wait up to `--graceful-timeout`, then KILL.
    fn stop(&mut self, graceful: bool) {
        for listener in &self.listeners {
            listener.unlink();
        }
        self.listeners.clear();
        self.kill_workers(if graceful { libc::SIGTERM } else { libc::SIGQUIT });
        let deadline = Instant::now() + self.config.graceful_timeout;
        while !self.workers.is_empty() && Instant::now() < deadline {
            let _ = self.reap_workers();
            if self.workers.is_empty() {
                break;
            }
            let faster = self
                .signals
                .wait(Duration::from_millis(100))
                .into_iter()
                .any(|s| matches!(Signal::from_raw(s), Some(Signal::Stop { graceful: false })));
            if faster {
                self.kill_workers(libc::SIGQUIT);
            }
        }
        self.kill_workers(libc::SIGKILL);
        for pid in std::mem::take(&mut self.workers).into_keys() {
            // SAFETY: blocking wait for our own, already killed, child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
    }

    fn kill_workers(&self, signal: libc::c_int) {
        for &pid in self.workers.keys() {
            // SAFETY: signalling our own children; ESRCH for one already gone is harmless.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

/// Forks with the GIL held, bracketed as `os.fork()` brackets it, so the child's
/// interpreter state (locks, thread ids) is valid. Runs `child` in the child, which
/// must exit the process itself.
fn fork(py: Python<'_>, child: impl FnOnce(Python<'_>)) -> std::io::Result<libc::pid_t> {
    // SAFETY: we hold the GIL (the `py` token), which PyOS_BeforeFork requires; fork()
    // is followed by the matching AfterFork call in each process, exactly as os.fork().
    unsafe {
        ffi::PyOS_BeforeFork();
        match libc::fork() {
            -1 => {
                let err = std::io::Error::last_os_error();
                ffi::PyOS_AfterFork_Parent();
                Err(err)
            }
            0 => {
                ffi::PyOS_AfterFork_Child();
                child(py);
                libc::_exit(exit::WORKER_BOOT_ERROR)
            }
            pid => {
                ffi::PyOS_AfterFork_Parent();
                Ok(pid)
            }
        }
    }
}
