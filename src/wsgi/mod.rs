//! The PEP 3333 bridge: environ, `wsgi.input`, `start_response`, `write()`,
//! `wsgi.errors`, `wsgi.file_wrapper`, and driving the app's iterable.
//!
//! Bodies the worker receives before the app runs wait in a [`Spool`]: in memory within a
//! per-worker budget, else in an unlinked temporary file.
//! Python errors stop here: they are logged with their traceback and become a 500 (or a
//! closed connection once headers are out). This layer never touches sockets: bytes in
//! come through [`BodySource`], bytes out go back to the worker through [`Exchange`]
//! (and, for `write()`, through the worker's [`Stream`]).
//! Every object the app can hold is frozen, its state behind a lock, since the app may
//! pass it to its own threads. [`test_panic`] is the tests' way to make Rust panic.

pub mod access;
pub mod environ;
pub mod errors;
pub mod exchange;
pub mod file_wrapper;
pub mod input;
pub mod spool;
pub mod start_response;
pub mod test_panic;

pub use environ::{Connection, Globals};
pub use errors::Errors;
pub use exchange::{Exchange, FileSpan, Sink, Step};
pub use file_wrapper::FileWrapper;
pub use input::{BodySource, ClientDisconnected, Input};
pub use spool::{Spool, Spooler};
pub use start_response::{StartResponse, Stream, Wire, Writer};
