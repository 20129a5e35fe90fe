//! Exit codes, and the errors that end the process with one: how a worker tells the
//! master why it stopped, and what the master returns.
//!
//! Values match gunicorn's so scripts and supervisors that read them keep working:
//! gunicorn exits 1 when its master cannot start, and its workers exit 3
//! (`WORKER_BOOT_ERROR`) and 4 (`APP_LOAD_ERROR`) to tell the master not to respawn.
//! [`USAGE`] is argparse's 2, which ferricorn also gives a bad config file or a setting
//! that fails when applied; [`WORKER_PANIC`] is ferricorn's own.
//!
//! [`BootError`] is every way the master can fail before its loop runs; the app's own
//! failure is [`LoadError`] (in [`crate::load`]); the loop's are the arbiter's `Halt`.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::config;
use crate::load::LoadError;

/// Clean exit.
pub const OK: i32 = 0;
/// Any failure of the master: a socket that cannot be bound, a fatal signal-setup error.
pub const FAILURE: i32 = 1;
/// Bad command line (argparse's code, which gunicorn inherits).
pub const USAGE: i32 = 2;
/// A worker could not set itself up; the master stops instead of respawning in a loop.
pub const WORKER_BOOT_ERROR: i32 = 3;
/// The app failed to import or is not a WSGI callable; the master stops.
pub const APP_LOAD_ERROR: i32 = 4;
/// A worker panicked (a bug in ferricorn, which the worker contained): the master logs
/// it and replaces the worker, or stops if it had not booted yet. 70 is sysexits.h's
/// `EX_SOFTWARE`, "internal software error"; gunicorn has no such code.
pub const WORKER_PANIC: i32 = 70;

/// Why the master cannot start. Each is one line: those the operator caused by what
/// they typed (`USAGE`) go to stderr as `ferricorn: error: ...`; the rest to the error
/// log, which may be a file by then.
#[derive(Debug)]
pub enum BootError {
    /// The command line or the config file: an unknown flag, a bad value, a config file
    /// that fails to run, a user or group that does not exist.
    Usage(config::Error),
    /// A file a setting names cannot be opened (`--error-logfile`, `--access-logfile`)
    /// or a directory entered (`--chdir`).
    Path {
        /// The flag, as the user typed it.
        flag: &'static str,
        /// The path it names.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// Setting up Python for the app failed: `-e`, `--pythonpath`, `--log-config*`.
    Python(String),
    /// `--daemon`: the forks that detach the master failed.
    Daemonize(io::Error),
    /// A `--bind` address cannot be bound (in use, not permitted, no such interface).
    Bind {
        /// The address, as given.
        spec: String,
        /// What the system said.
        error: io::Error,
    },
    /// Sockets handed over by a USR2 master or by systemd are not listening sockets.
    Inherited {
        /// The descriptors handed over.
        fds: Vec<RawFd>,
        /// What the system said of the first one that failed.
        error: io::Error,
    },
    /// `--pid`: the file names a running process, or cannot be written.
    Pidfile {
        /// The file this master writes (`FILE.2` for a master started by USR2).
        path: PathBuf,
        /// Why not.
        error: io::Error,
    },
    /// The master's own machinery: its signal pipe, `--reload`'s inotify.
    Setup {
        /// Which part.
        what: &'static str,
        /// What the system said.
        error: io::Error,
    },
    /// `--preload`: the app does not load in the master.
    Preload {
        /// `APP_MODULE`, for the report.
        app: String,
        /// Why not.
        error: LoadError,
    },
    /// `--check-config`: the settings are fine, the app does not load.
    Check {
        /// `APP_MODULE`, for the report.
        app: String,
        /// Why not.
        error: LoadError,
    },
}

impl BootError {
    /// The process's exit code: gunicorn's where it has one.
    pub fn exit_code(&self) -> i32 {
        match self {
            BootError::Usage(_) | BootError::Path { .. } | BootError::Python(_) => USAGE,
            BootError::Preload { error, .. } => error.exit_code(),
            // gunicorn's `--check-config` exits 1 whatever failed.
            BootError::Check { .. } => FAILURE,
            BootError::Daemonize(_)
            | BootError::Bind { .. }
            | BootError::Inherited { .. }
            | BootError::Pidfile { .. }
            | BootError::Setup { .. } => FAILURE,
        }
    }

    /// Says it once, where the operator looks: stderr for what they typed, the error log
    /// for the rest, the app's traceback whole for a load error.
    pub fn report(&self) {
        match self {
            BootError::Preload { app, error } | BootError::Check { app, error } => {
                error.report(app)
            }
            BootError::Bind { .. }
            | BootError::Inherited { .. }
            | BootError::Pidfile { .. }
            | BootError::Setup { .. } => tracing::error!("{self}"),
            _ => eprintln!("ferricorn: error: {self}"),
        }
    }
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::Usage(e) => write!(f, "{e}"),
            BootError::Path { flag, path, error } => {
                write!(f, "{flag} {}: {error}", path.display())
            }
            BootError::Python(message) => f.write_str(message),
            BootError::Daemonize(e) => write!(f, "--daemon: {e}"),
            BootError::Bind { spec, error } => write!(f, "Can't bind {spec:?}: {error}"),
            BootError::Inherited { fds, error } => {
                write!(f, "Can't use the inherited sockets {fds:?}: {error}")
            }
            BootError::Pidfile { path, error } => {
                write!(f, "Can't start the master: --pid {}: {error}", path.display())
            }
            BootError::Setup { what, error } => {
                write!(f, "Can't start the master: {what}: {error}")
            }
            BootError::Preload { app, error } => {
                write!(f, "--preload: {app:?} does not load: {error}")
            }
            BootError::Check { app, error } => {
                write!(f, "--check-config: {app:?} does not load: {error}")
            }
        }
    }
}

impl std::error::Error for BootError {}

impl From<config::Error> for BootError {
    fn from(e: config::Error) -> BootError {
        BootError::Usage(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    /// Every variant: its exit code and its one line.
    #[test]
    fn boot_errors_exit_codes_and_lines() {
        let not_found = || LoadError::NotFound("no module named 'nope'".into());
        let rows: Vec<(BootError, i32, &str)> = vec![
            (BootError::Usage(config::Error("unrecognized option '--nope'".into())), 2, "unrecognized option '--nope'"),
            (BootError::Path { flag: "--chdir", path: "/nowhere".into(), error: os(libc::ENOENT) }, 2, "--chdir /nowhere: No such file or directory (os error 2)"),
            (BootError::Python("logging configuration failed: bad".into()), 2, "logging configuration failed: bad"),
            (BootError::Daemonize(os(libc::EAGAIN)), 1, "--daemon: Resource temporarily unavailable (os error 11)"),
            (BootError::Bind { spec: "127.0.0.1:80".into(), error: os(libc::EACCES) }, 1, "Can't bind \"127.0.0.1:80\": Permission denied (os error 13)"),
            (BootError::Inherited { fds: vec![3, 4], error: os(libc::ENOTSOCK) }, 1, "Can't use the inherited sockets [3, 4]: Socket operation on non-socket (os error 88)"),
            (BootError::Pidfile { path: "/run/app.pid".into(), error: os(libc::EACCES) }, 1, "Can't start the master: --pid /run/app.pid: Permission denied (os error 13)"),
            (BootError::Setup { what: "signals", error: os(libc::EMFILE) }, 1, "Can't start the master: signals: Too many open files (os error 24)"),
            (BootError::Preload { app: "nope:app".into(), error: not_found() }, 4, "--preload: \"nope:app\" does not load: no module named 'nope'"),
            (BootError::Check { app: "nope:app".into(), error: not_found() }, 1, "--check-config: \"nope:app\" does not load: no module named 'nope'"),
        ];
        for (error, code, line) in rows {
            assert_eq!(error.exit_code(), code, "{error:?}");
            assert_eq!(error.to_string(), line);
        }
    }

    /// The protocol between worker and master, and gunicorn's values for it.
    #[test]
    fn codes_match_gunicorn() {
        let codes =
            [(OK, 0), (FAILURE, 1), (USAGE, 2), (WORKER_BOOT_ERROR, 3), (APP_LOAD_ERROR, 4)];
        for (ours, gunicorns) in codes {
            assert_eq!(ours, gunicorns);
        }
        assert_eq!(WORKER_PANIC, 70);
    }
}
