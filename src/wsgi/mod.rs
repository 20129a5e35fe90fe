//! The PEP 3333 bridge: environ, `wsgi.input`, `start_response`, `write()`,
//! `wsgi.errors`, `wsgi.file_wrapper`, and driving the app's iterable.
//!
//! Python errors stop here: they are logged with their traceback and become a 500 (or a
//! closed connection once headers are out). This layer never touches sockets: bytes in
//! come through [`BodySource`], bytes out go back to the worker through [`Exchange`].

pub mod access;
pub mod environ;
pub mod errors;
pub mod exchange;
pub mod file_wrapper;
pub mod input;
pub mod start_response;

pub use environ::{Connection, Globals};
pub use errors::Errors;
pub use exchange::{Exchange, FileSpan, Sink, Step};
pub use file_wrapper::FileWrapper;
pub use input::{BodySource, ClientDisconnected, Input};
pub use start_response::{StartResponse, Writer};
