//! The arbiter's side of the control socket (`crate::control`): what `gunicornc`'s
//! commands read (workers, counters, settings, sockets) and the actions they map onto
//! (the worker count as TTIN/TTOU set it, a graceful stop of one worker, HUP, USR1,
//! TERM, INT queued as if signalled).

use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use super::{Arbiter, Event};
use crate::control::commands::{Master, WorkerView};
use crate::control::ControlServer;
use crate::listener::LocalAddr;

/// What `show stats` counts, as gunicorn's arbiter `_stats` does.
pub(super) struct Counters {
    /// When the master started (wall clock: gunicorn's `uptime`).
    started: SystemTime,
    /// Workers forked.
    pub(super) spawned: u64,
    /// Workers the master told to stop (TERM).
    pub(super) killed: u64,
    /// Reloads (HUP, `reload`, `--reload`).
    pub(super) reloads: u64,
}

impl Counters {
    pub(super) fn new() -> Counters {
        Counters { started: SystemTime::now(), spawned: 0, killed: 0, reloads: 0 }
    }
}

/// Seconds with two decimals, as gunicorn rounds them.
fn round2(seconds: f64) -> f64 {
    (seconds * 100.0).round() / 100.0
}

/// A duration setting as gunicorn holds it: whole seconds as an int.
fn secs(d: Duration) -> Value {
    match d.subsec_nanos() {
        0 => json!(d.as_secs()),
        _ => json!(d.as_secs_f64()),
    }
}

impl Arbiter {
    /// Opens the control socket unless `--no-control-socket`; a master started by USR2
    /// takes the path over from its predecessor, as gunicorn's does.
    pub(super) fn open_control(&mut self) {
        if self.config.control.disabled || self.control.is_some() {
            return;
        }
        let takeover = self.start.old_master.is_some();
        let (path, mode) = (&self.config.control.path, self.config.control.mode);
        self.control = ControlServer::open(path, mode, takeover);
    }

    /// One pass over the control clients: what they ask is answered now, and what they
    /// ask the master to do is queued as events.
    pub(super) fn serve_control(&mut self) {
        if let Some(mut control) = self.control.take() {
            control.serve(self);
            self.control = Some(control);
        }
    }

    /// A USR2 master that took the socket has exited: bind the path again.
    pub(super) fn reclaim_control(&mut self) {
        if let Some(control) = &mut self.control {
            control.reclaim();
        }
    }

    /// On exit: the socket file goes, if it is still ours.
    pub(super) fn close_control(&mut self) {
        if let Some(control) = self.control.take() {
            control.close();
        }
    }
}

impl Master for Arbiter {
    fn workers(&self) -> Vec<WorkerView> {
        let view = |(&pid, w): (&libc::pid_t, &super::Worker)| WorkerView {
            pid,
            age: w.age,
            booted: w.heartbeat.booted(),
            aborted: w.aborted.is_some(),
            last_heartbeat: round2(w.heartbeat.silent_for().as_secs_f64()),
        };
        self.workers.iter().map(view).collect()
    }

    fn stats(&self) -> Map<String, Value> {
        let uptime = self.counters.started.elapsed().unwrap_or_default().as_secs_f64();
        let stats = json!({
            "uptime": round2(uptime),
            "pid": std::process::id(),
            "workers_current": self.workers.len(),
            "workers_target": self.num_workers,
            "workers_spawned": self.counters.spawned,
            "workers_killed": self.counters.killed,
            "reloads": self.counters.reloads,
            "dirty_arbiter_pid": null,
        });
        stats.as_object().cloned().unwrap_or_default()
    }

    fn config(&self) -> Map<String, Value> {
        let c = &self.config;
        let binds: Vec<String> = c.binds.iter().map(ToString::to_string).collect();
        let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let config = json!({
            "bind": binds,
            "workers": c.workers,
            "worker_class": c.worker_class.name(),
            "threads": c.threads,
            "timeout": c.timeout.map_or(json!(0), secs),
            "graceful_timeout": secs(c.graceful_timeout),
            "keepalive": secs(c.keepalive),
            "max_requests": c.max_requests,
            "max_requests_jitter": c.max_requests_jitter,
            "worker_connections": c.worker_connections,
            "preload_app": c.preload,
            "daemon": c.daemon,
            "pidfile": path(&c.pidfile),
            "proc_name": c.proc_name,
            "reload": c.reload,
            "dirty_workers": 0,
            "dirty_apps": [],
            "dirty_timeout": 300,
            "control_socket": c.control.path.display().to_string(),
            "control_socket_disable": c.control.disabled,
        });
        config.as_object().cloned().unwrap_or_default()
    }

    fn listeners(&self) -> Vec<(String, i32, &'static str)> {
        let kind = |local: &LocalAddr| match local {
            LocalAddr::Tcp(addr) if addr.is_ipv6() => "tcp6",
            LocalAddr::Tcp(_) => "tcp",
            LocalAddr::Unix(_) => "unix",
        };
        self.start.listeners.iter().map(|l| (l.local.to_string(), l.fd(), kind(&l.local))).collect()
    }

    fn num_workers(&self) -> usize {
        self.num_workers
    }

    fn set_workers(&mut self, count: usize) {
        self.set_num_workers(count);
    }

    fn kill_worker(&mut self, pid: i32) -> bool {
        let ours = self.workers.contains_key(&pid);
        if ours {
            self.retire(pid);
        }
        ours
    }

    fn signal(&mut self, signal: libc::c_int) {
        self.events.extend(Event::from_signal(signal));
    }
}
