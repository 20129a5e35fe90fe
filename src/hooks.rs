//! gunicorn's server hooks, defined in the config file, called at the same moments.
//!
//! The objects hooks receive (`server`, `worker`, `req`) are built on the Python side
//! (`python/ferricorn/_hooks.py`) from plain values passed here. Which hooks exist is
//! read once per configuration into a bit set, so an undefined hook, the per-request
//! ones above all, costs one atomic load.

use std::sync::atomic::{AtomicU32, Ordering};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::config::{Config, OPTIONS};

/// The hooks, in gunicorn's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    OnStarting,
    OnReload,
    WhenReady,
    PreFork,
    PostFork,
    PostWorkerInit,
    WorkerInt,
    WorkerAbort,
    PreExec,
    PreRequest,
    PostRequest,
    ChildExit,
    WorkerExit,
    NworkersChanged,
    OnExit,
}

const ALL: [Hook; 15] = [
    Hook::OnStarting,
    Hook::OnReload,
    Hook::WhenReady,
    Hook::PreFork,
    Hook::PostFork,
    Hook::PostWorkerInit,
    Hook::WorkerInt,
    Hook::WorkerAbort,
    Hook::PreExec,
    Hook::PreRequest,
    Hook::PostRequest,
    Hook::ChildExit,
    Hook::WorkerExit,
    Hook::NworkersChanged,
    Hook::OnExit,
];

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::OnStarting => "on_starting",
            Hook::OnReload => "on_reload",
            Hook::WhenReady => "when_ready",
            Hook::PreFork => "pre_fork",
            Hook::PostFork => "post_fork",
            Hook::PostWorkerInit => "post_worker_init",
            Hook::WorkerInt => "worker_int",
            Hook::WorkerAbort => "worker_abort",
            Hook::PreExec => "pre_exec",
            Hook::PreRequest => "pre_request",
            Hook::PostRequest => "post_request",
            Hook::ChildExit => "child_exit",
            Hook::WorkerExit => "worker_exit",
            Hook::NworkersChanged => "nworkers_changed",
            Hook::OnExit => "on_exit",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

static DEFINED: AtomicU32 = AtomicU32::new(0);

pub fn defined(hook: Hook) -> bool {
    DEFINED.load(Ordering::Relaxed) & hook.bit() != 0
}

/// After the settings were (re)read: which hooks exist, and the `cfg` hooks see.
pub fn configure(py: Python<'_>, config: &Config) {
    let result = py.import("ferricorn._hooks").and_then(|hooks| {
        let names: Vec<String> = hooks.call_method0("defined")?.extract()?;
        let bits =
            ALL.iter().filter(|h| names.iter().any(|n| n == h.name())).fold(0, |b, h| b | h.bit());
        DEFINED.store(bits, Ordering::Relaxed);
        hooks.call_method1("set_config", (settings(py, config)?, config.workers))?;
        Ok(())
    });
    if let Err(e) = result {
        tracing::error!("Can't set up the server hooks: {e}");
    }
}

/// Calls `hook` with gunicorn's arguments built from `args` (see `_hooks.call`). A hook
/// that raises is logged there; it never stops the server.
pub fn call<'py, A>(py: Python<'py>, hook: Hook, args: A)
where
    A: IntoPyObject<'py, Target = pyo3::types::PyTuple>,
{
    if !defined(hook) {
        return;
    }
    let result =
        py.import("ferricorn._hooks").and_then(|m| m.call_method1("call", (hook.name(), args)));
    if let Err(e) = result {
        tracing::error!("{} hook: {}", hook.name(), crate::wsgi::exchange::traceback(py, &e));
    }
}

/// [`call`] from code that does not hold the GIL (the master's loop): the interpreter
/// is only entered when the hook exists.
pub fn call_attached<A>(hook: Hook, args: A)
where
    A: for<'py> IntoPyObject<'py, Target = pyo3::types::PyTuple>,
{
    if defined(hook) {
        Python::attach(|py| call(py, hook, args));
    }
}

/// Every setting by gunicorn's name for `cfg`: the merged values (flags as booleans,
/// numbers as ints, repeatable settings as lists), and the main ones as resolved.
fn settings<'py>(py: Python<'py>, config: &Config) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for spec in OPTIONS {
        let values: Vec<&str> = config.raw.all(spec.name).collect();
        match (spec.metavar, values.as_slice()) {
            (None, _) => dict.set_item(spec.name, config.raw.has(spec.name))?,
            (_, []) => dict.set_item(spec.name, py.None())?,
            (_, [one]) if !matches!(spec.name, "bind" | "raw_env" | "reload_extra_files") => {
                match one.parse::<i64>() {
                    Ok(n) => dict.set_item(spec.name, n)?,
                    Err(_) => dict.set_item(spec.name, *one)?,
                }
            }
            (_, many) => dict.set_item(spec.name, PyList::new(py, many)?)?,
        }
    }
    let binds: Vec<String> = config.binds.iter().map(|b| b.to_string()).collect();
    dict.set_item("bind", binds)?;
    dict.set_item("workers", config.workers)?;
    dict.set_item("worker_class", config.worker_class.name())?;
    dict.set_item("threads", config.threads)?;
    dict.set_item("timeout", config.timeout.map_or(0, |t| t.as_secs()))?;
    dict.set_item("graceful_timeout", config.graceful_timeout.as_secs())?;
    dict.set_item("keepalive", config.keepalive.as_secs())?;
    dict.set_item("proc_name", config.proc_name.as_str())?;
    dict.set_item("max_requests", config.max_requests)?;
    Ok(dict)
}
