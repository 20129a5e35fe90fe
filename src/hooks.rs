//! gunicorn's server hooks, defined in the config file, called at the same moments.
//!
//! The objects hooks receive (`server`, `worker`, `req`) are built on the Python side
//! (`python/ferricorn/_hooks.py`) from plain values passed here, and kept there across
//! calls, as gunicorn keeps its `Arbiter` and `Worker`: a worker's life (`pre_fork`, the
//! fork, `post_fork`, `post_worker_init`, `worker_exit`, `child_exit`) is told to Python
//! whenever any hook exists, so that `server.WORKERS` and the attributes hooks set on a
//! worker are there for whichever hook comes next. Which hooks exist is read once per
//! configuration into a bit set, so an undefined per-request hook costs one atomic load.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::config::{Config, GUNICORN_ONLY, OPTIONS};
use crate::listener::{Listener, LocalAddr};

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

    /// A step of a worker's life, told to Python when any hook exists (see the header).
    fn is_lifecycle(self) -> bool {
        matches!(
            self,
            Hook::PreFork
                | Hook::PostFork
                | Hook::PostWorkerInit
                | Hook::WorkerExit
                | Hook::ChildExit
        )
    }
}

static DEFINED: AtomicU32 = AtomicU32::new(0);

pub fn defined(hook: Hook) -> bool {
    DEFINED.load(Ordering::Relaxed) & hook.bit() != 0
}

fn any_defined() -> bool {
    DEFINED.load(Ordering::Relaxed) != 0
}

/// Whether Python hears of `hook`: when it is defined, or, for a worker's life, when
/// any hook is.
fn wanted(hook: Hook) -> bool {
    match hook.is_lifecycle() {
        true => any_defined(),
        false => defined(hook),
    }
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
    if !wanted(hook) {
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
    if wanted(hook) {
        Python::attach(|py| call(py, hook, args));
    }
}

/// In the master, after a fork: the worker `pre_fork` was handed is now `pid`, in
/// `server.WORKERS` until `child_exit`.
pub fn forked(py: Python<'_>, pid: libc::pid_t) {
    if any_defined() {
        python(py, "forked", (pid,));
    }
}

/// The master's sockets, for `server.LISTENERS` and `worker.sockets` (bound after
/// `on_starting`, as in gunicorn).
pub fn set_listeners(py: Python<'_>, listeners: &[Listener]) {
    if !any_defined() {
        return;
    }
    let described: PyResult<Vec<(i32, Bound<'_, PyAny>, String)>> = listeners
        .iter()
        .map(|listener| {
            let name = match &listener.local {
                LocalAddr::Tcp(std::net::SocketAddr::V4(a)) => {
                    (a.ip().to_string(), a.port()).into_pyobject(py)?.into_any()
                }
                LocalAddr::Tcp(std::net::SocketAddr::V6(a)) => {
                    (a.ip().to_string(), a.port(), a.flowinfo(), a.scope_id())
                        .into_pyobject(py)?
                        .into_any()
                }
                LocalAddr::Unix(path) => path.display().to_string().into_pyobject(py)?.into_any(),
            };
            Ok((listener.fd(), name, listener.local.to_string()))
        })
        .collect();
    match described {
        Ok(described) => python(py, "set_listeners", (described,)),
        Err(e) => tracing::error!("Can't describe the sockets to the hooks: {e}"),
    }
}

/// Requests this process has handed to the app, for `worker.nr`.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// A request is about to reach the app: counted, and `pre_request` called. gunicorn
/// counts it after the hook, which sees the requests before this one.
pub fn request_started(py: Python<'_>, environ: &Bound<'_, PyAny>) {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    call(py, Hook::PreRequest, (environ,));
}

/// A request reached the app of a worker whose hooks are called from Python (the asgi
/// worker's `_asgi_hooks`): counted for `worker.nr`.
pub fn count_request() {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
}

/// `worker.nr`: the requests this worker has handed to the app.
#[pyfunction]
pub fn requests_handled() -> u64 {
    REQUESTS.load(Ordering::Relaxed)
}

fn python<'py>(py: Python<'py>, function: &str, args: impl pyo3::call::PyCallArgs<'py>) {
    let result = py.import("ferricorn._hooks").and_then(|m| m.call_method1(function, args));
    if let Err(e) = result {
        tracing::error!("hooks: {function}: {}", crate::wsgi::exchange::traceback(py, &e));
    }
}

/// The settings for `cfg`, by gunicorn's name: those the command line or config file
/// gave (flags that are on as `True`, numbers as ints, repeatable settings as lists), and
/// the ones ferricorn works out, as serving uses them. The Python side fills the rest
/// with gunicorn's defaults and gives each gunicorn's type.
fn settings<'py>(py: Python<'py>, config: &Config) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for spec in OPTIONS {
        let values: Vec<&str> = config.raw.all(spec.name).collect();
        match (spec.metavar, values.as_slice()) {
            (None, _) if config.raw.has(spec.name) => dict.set_item(spec.name, true)?,
            (None, _) if !spec.gunicorn => dict.set_item(spec.name, false)?,
            (_, []) if !spec.gunicorn => dict.set_item(spec.name, py.None())?,
            (None, _) | (_, []) => {}
            (_, [one]) if !matches!(spec.name, "bind" | "raw_env" | "reload_extra_files") => {
                match one.parse::<i64>() {
                    Ok(n) => dict.set_item(spec.name, n)?,
                    Err(_) => dict.set_item(spec.name, *one)?,
                }
            }
            (_, many) => dict.set_item(spec.name, PyList::new(py, many)?)?,
        }
    }
    // gunicorn settings ferricorn lacks read as the config file set them.
    for setting in GUNICORN_ONLY {
        let values: Vec<&str> = config.raw.all(setting.name).collect();
        match values.as_slice() {
            [] => {}
            [one] => dict.set_item(setting.name, *one)?,
            many => dict.set_item(setting.name, PyList::new(py, many)?)?,
        }
    }
    if !config.raw.has("bind") {
        let binds: Vec<String> = config.binds.iter().map(|b| b.to_string()).collect();
        dict.set_item("bind", binds)?;
    }
    dict.set_item("workers", config.workers)?;
    dict.set_item("threads", config.threads)?;
    dict.set_item("timeout", config.timeout.map_or(0, |t| t.as_secs()))?;
    dict.set_item("graceful_timeout", config.graceful_timeout.as_secs())?;
    dict.set_item("keepalive", config.keepalive.as_secs())?;
    dict.set_item("max_requests", config.max_requests)?;
    dict.set_item("default_proc_name", config.app.as_str())?;
    if let Some(user) = &config.user {
        dict.set_item("user", user.uid)?;
    }
    if let Some(group) = config.group {
        dict.set_item("group", group)?;
    }
    if let Some(umask) = config.umask {
        dict.set_item("umask", umask)?;
    }
    Ok(dict)
}
