//! USR2: the master starts a new master from the current code, handing it the listening
//! sockets, as gunicorn's `reexec` does.
//!
//! The child of a fork `exec`s the interpreter with the original command line
//! (`sys.orig_argv`) from the directory the command was started in. The sockets survive
//! `exec` (their close-on-exec flag is cleared) and their numbers travel in
//! `FERRICORN_FD`; `FERRICORN_PID` names the old master, which the new one watches to
//! know when it has been promoted.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use pyo3::prelude::*;

use crate::arbiter::Start;

/// Sockets handed to a new master, as a comma-separated list of descriptors.
pub const FD_VAR: &str = "FERRICORN_FD";
/// The pid of the master that started this one.
pub const PID_VAR: &str = "FERRICORN_PID";
/// Set when the handed sockets came from systemd (never unlinked).
pub const SYSTEMD_VAR: &str = "FERRICORN_SYSTEMD";

/// Everything `exec` needs, built before the fork.
pub struct ReExec {
    /// `sys.executable`: the interpreter installed now.
    program: CString,
    /// `sys.orig_argv`: the command line as typed, interpreter options included.
    argv: Vec<CString>,
    /// This process's environment with the sockets and the pid added.
    env: Vec<CString>,
    /// The directory the command was started in (not `--chdir`'s).
    dir: PathBuf,
    /// The listening sockets, kept open across `exec`.
    fds: Vec<libc::c_int>,
}

impl ReExec {
    pub fn prepare(py: Python<'_>, start: &Start) -> PyResult<ReExec> {
        let sys = py.import("sys")?;
        let program: String = sys.getattr("executable")?.extract()?;
        let argv: Vec<String> = sys.getattr("orig_argv")?.extract()?;
        let fds: Vec<libc::c_int> = start.listeners.iter().map(|l| l.fd()).collect();
        let list = fds.iter().map(|fd| fd.to_string()).collect::<Vec<_>>().join(",");
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| ![FD_VAR, PID_VAR, SYSTEMD_VAR].iter().any(|v| k == v))
            .collect();
        env.push((FD_VAR.into(), list.into()));
        env.push((PID_VAR.into(), std::process::id().to_string().into()));
        if start.systemd {
            env.push((SYSTEMD_VAR.into(), "1".into()));
        }
        let c = |s: Vec<u8>| CString::new(s).map_err(|e| io::Error::other(e.to_string()));
        Ok(ReExec {
            program: c(program.into_bytes())?,
            argv: argv.into_iter().map(|a| c(a.into_bytes())).collect::<Result<_, _>>()?,
            env: env
                .into_iter()
                .map(|(k, v)| {
                    let mut pair = k.into_vec();
                    pair.push(b'=');
                    pair.extend_from_slice(v.as_bytes());
                    c(pair)
                })
                .collect::<Result<_, _>>()?,
            dir: start.start_dir.clone(),
            fds,
        })
    }

    /// In the forked child: becomes the new master, or exits 1 saying why not.
    pub fn exec(self) -> ! {
        let _ = std::env::set_current_dir(&self.dir);
        for &fd in &self.fds {
            // SAFETY: clearing FD_CLOEXEC on a listening socket we own, so exec keeps it.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        }
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut env: Vec<*const libc::c_char> = self.env.iter().map(|e| e.as_ptr()).collect();
        env.push(std::ptr::null());
        // SAFETY: NUL-terminated strings in NULL-terminated arrays, alive across the call.
        unsafe { libc::execve(self.program.as_ptr(), argv.as_ptr(), env.as_ptr()) };
        tracing::error!("USR2: can't start {:?}: {}", self.program, io::Error::last_os_error());
        // SAFETY: leaving the forked child without running the master's teardown.
        unsafe { libc::_exit(crate::exit::FAILURE) }
    }
}

/// What a master started by USR2 inherits: its sockets, the old master, and whether the
/// sockets are systemd's. The variables are removed so the app never sees them.
pub struct Inherited {
    /// The listening sockets handed over, none when this master was not started by USR2.
    pub fds: Vec<libc::c_int>,
    /// The master that started this one, if it is still our parent.
    pub old_master: Option<libc::pid_t>,
    /// The sockets are systemd's (never unlinked).
    pub systemd: bool,
}

pub fn inherited() -> Inherited {
    let fds = std::env::var(FD_VAR)
        .map(|list| list.split(',').filter_map(|fd| fd.trim().parse().ok()).collect())
        .unwrap_or_default();
    let parent = std::os::unix::process::parent_id();
    let old_master = std::env::var(PID_VAR)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .filter(|&pid| pid == parent)
        .map(|pid| pid as libc::pid_t);
    let systemd = std::env::var_os(SYSTEMD_VAR).is_some();
    for name in [FD_VAR, PID_VAR, SYSTEMD_VAR] {
        std::env::remove_var(name);
    }
    Inherited { fds, old_master, systemd }
}
