//! Exit codes: how a worker tells the master why it stopped, and what the master returns.
//!
//! Values match gunicorn's so scripts and supervisors that read them keep working;
//! [`WORKER_PANIC`] is ferricorn's own.

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
