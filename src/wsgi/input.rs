//! `wsgi.input`: the request body, decoded as the app reads it.
//!
//! The bytes come from a [`BodySource`] the worker provides, so this module never touches
//! a socket. Nothing is read from it before the app asks: that is when `100 Continue` goes
//! out, and a streamed body is never held whole in memory. What the worker received before
//! calling the app (a whole body of up to 1 MiB, or the start of a chunked one) comes first,
//! from a [`Spool`].

use std::io;
use std::sync::{Mutex, MutexGuard, TryLockError};

use bytes::{Bytes, BytesMut};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::spool::{self, Spool};
use crate::http::{self, BodyDecoder, Decoded};

/// Largest piece decoded per step; bounds the memory one read() call adds.
const READ_CHUNK: usize = 64 * 1024;

pyo3::create_exception!(
    ferricorn,
    ClientDisconnected,
    pyo3::exceptions::PyOSError,
    "The request body ended early or was malformed; no more of it can be read."
);

/// Where body bytes come from: the worker's connection.
pub trait BodySource: Send + Sync {
    /// Appends bytes received from the client to `buf`; `Ok(0)` means the client closed.
    fn fill(&mut self, buf: &mut BytesMut) -> io::Result<usize>;
    /// Sends `HTTP/1.1 100 Continue` (RFC 9110 §10.1.1).
    fn send_continue(&mut self) -> io::Result<()>;
}

/// `wsgi.input`. The app may hand it to any of its threads, and one of them may still be
/// blocked in `read()` when the app returns, so nothing here is borrowed: the state sits
/// behind a lock the reading thread holds while it waits on the socket (the GIL released),
/// and the server only ever tries that lock (see [`Input::complete`]).
#[pyclass(module = "ferricorn", frozen)]
pub struct Input {
    /// Held by the thread reading (the GIL released while it waits on the client).
    state: Mutex<Reader>,
}

/// The body's decoding state, owned by whichever thread is reading.
struct Reader {
    /// Where in the body's framing (length or chunks) the bytes received so far end.
    decoder: BodyDecoder,
    /// Body bytes received before the app was called (in memory or in a temporary file),
    /// read before `raw`.
    spool: Option<Spool>,
    /// Bytes received but not yet decoded (framing included).
    raw: BytesMut,
    /// Decoded bytes the app has not taken yet (what readline() left over).
    decoded: BytesMut,
    /// Where more bytes come from (the connection).
    source: Box<dyn BodySource>,
    /// The client sent `Expect: 100-continue` and has not been answered.
    continue_pending: bool,
    /// The body ended, or the framing broke; either way no more data.
    finished: bool,
    /// Why the body could not be read; the worker answers this status if the app fails.
    error: Option<http::Error>,
    /// The whole body arrived before the app was called: the connection's framing is
    /// intact whether or not the app reads it.
    whole: bool,
    /// `--limit-request-body` (0: none): a chunked body that grows past it fails with 413.
    limit: u64,
    /// Body bytes decoded so far (the spool's included), counted against `limit`.
    received: u64,
}

/// The source of a body that is already in memory: nothing more ever comes.
struct NoMoreBytes;

impl BodySource for NoMoreBytes {
    fn fill(&mut self, _: &mut BytesMut) -> io::Result<usize> {
        Ok(0)
    }

    fn send_continue(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Locks `mutex` without ever waiting for it with the GIL held: its holder may be a thread
/// that waits on the socket with the GIL released and needs the GIL back to unlock.
pub(crate) fn lock<'a, T: Send>(py: Python<'_>, mutex: &'a Mutex<T>) -> MutexGuard<'a, T> {
    loop {
        match mutex.try_lock() {
            Ok(guard) => return guard,
            // A panic while it was held was contained; what it guards is still whole.
            Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => py.detach(|| drop(mutex.lock())),
        }
    }
}

impl Input {
    /// `raw` holds whatever arrived after the head; the rest comes from `source`.
    pub fn new(
        decoder: BodyDecoder,
        raw: BytesMut,
        source: Box<dyn BodySource>,
        expect_continue: bool,
    ) -> Input {
        let reader = Reader {
            continue_pending: expect_continue && !decoder.is_done(),
            decoder,
            spool: None,
            raw,
            decoded: BytesMut::new(),
            source,
            finished: false,
            error: None,
            whole: false,
            limit: 0,
            received: 0,
        };
        Input { state: Mutex::new(reader) }
    }

    /// The start of the body, received (and decoded) before the app was called.
    pub fn with_spool(mut self, spool: Spool) -> Input {
        let reader = self.reader_mut();
        reader.received = spool.len();
        reader.spool = Some(spool);
        self
    }

    /// `--limit-request-body`, for a body that streams while the app reads (0: none).
    pub fn with_limit(mut self, limit: u64) -> Input {
        self.reader_mut().limit = limit;
        self
    }

    /// A body received whole, in memory or in a file, before the app is called.
    pub fn spooled(spool: Spool) -> Input {
        let decoder = BodyDecoder::Length { remaining: 0 };
        let mut input = Input::new(decoder, BytesMut::new(), Box::new(NoMoreBytes), false);
        input.reader_mut().whole = true;
        input.with_spool(spool)
    }

    /// A body received whole (already de-chunked) before the app is called.
    pub fn buffered(body: BytesMut) -> Input {
        let decoder = BodyDecoder::Length { remaining: body.len() as u64 };
        let mut input = Input::new(decoder, body, Box::new(NoMoreBytes), false);
        input.reader_mut().whole = true;
        input
    }

    fn reader_mut(&mut self) -> &mut Reader {
        self.state.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The server's look, which never waits: `None` while an app thread holds the body
    /// (it is reading it, or just did), which counts as "not read to its end".
    fn try_reader(&self) -> Option<MutexGuard<'_, Reader>> {
        match self.state.try_lock() {
            Ok(reader) => Some(reader),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// The framing error met while reading, if any.
    pub fn error(&self) -> Option<http::Error> {
        self.try_reader().and_then(|reader| reader.error)
    }

    /// Whether the body was read to its end (so the connection could carry another
    /// request). False while an app thread is still inside `read()`.
    pub fn complete(&self) -> bool {
        self.try_reader().is_some_and(|reader| reader.complete())
    }

    /// After the response: whether the body was read to its end and, when it streamed
    /// from the connection's buffer, the bytes received after it (a pipelined request).
    /// One look under the lock, so the two answers agree.
    pub fn end_of_body(&self) -> (bool, Option<BytesMut>) {
        let Some(mut reader) = self.try_reader() else { return (false, None) };
        let complete = reader.complete();
        let rest = (complete && !reader.whole).then(|| std::mem::take(&mut reader.raw));
        (complete, rest)
    }

    /// The lock, for the app's calls (from whichever thread).
    fn reader(&self, py: Python<'_>) -> MutexGuard<'_, Reader> {
        lock(py, &self.state)
    }
}

impl Reader {
    fn complete(&self) -> bool {
        self.whole || (self.decoder.is_done() && self.error.is_none())
    }

    /// Decodes more body into `decoded`; false once the body has ended.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        if let Some(error) = &self.error {
            return Err(ClientDisconnected::new_err(error.to_string()));
        }
        if self.fill_from_spool()? {
            return Ok(true);
        }
        while !self.finished {
            let decoded = self.decoder.decode(&mut self.raw, READ_CHUNK);
            if let Ok(Decoded::Data(data)) = &decoded {
                self.received += data.len() as u64;
                if spool::over_limit(self.received, self.limit) {
                    return Err(self.fail(http::Error::BodyTooLarge));
                }
            }
            match decoded {
                Ok(Decoded::Data(data)) if self.decoded.is_empty() => {
                    // The common case: no leftover, so the piece is taken without a copy.
                    self.decoded = data.try_into_mut().unwrap_or_else(|d| BytesMut::from(&d[..]));
                    return Ok(true);
                }
                Ok(Decoded::Data(data)) => {
                    self.decoded.extend_from_slice(&data);
                    return Ok(true);
                }
                Ok(Decoded::End) => self.finished = true,
                Ok(Decoded::NeedMore) => self.receive(py)?,
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(false)
    }

    /// The next piece of what was received before the app was called; false once none is
    /// left (the spool, and its file, are then dropped).
    fn fill_from_spool(&mut self) -> PyResult<bool> {
        let Some(spool) = &mut self.spool else { return Ok(false) };
        match spool.read_chunk(READ_CHUNK) {
            Ok(Some(data)) if self.decoded.is_empty() => self.decoded = data,
            Ok(Some(data)) => self.decoded.extend_from_slice(&data),
            Ok(None) => {
                self.spool = None;
                return Ok(false);
            }
            Err(e) => {
                tracing::error!("Cannot read a spooled request body back: {e}");
                return Err(self.fail(http::Error::IncompleteBody));
            }
        }
        Ok(true)
    }

    /// Waits for bytes from the client, with the GIL released.
    fn receive(&mut self, py: Python<'_>) -> PyResult<()> {
        let (source, raw) = (&mut self.source, &mut self.raw);
        let continue_pending = std::mem::take(&mut self.continue_pending);
        let got = py.detach(|| {
            if continue_pending {
                source.send_continue()?;
            }
            source.fill(raw)
        });
        match got {
            Ok(0) => match self.decoder.eof() {
                Ok(_) => Ok(()),
                Err(e) => Err(self.fail(e)),
            },
            Ok(_) => Ok(()),
            Err(_) => Err(self.fail(http::Error::IncompleteBody)),
        }
    }

    fn fail(&mut self, error: http::Error) -> PyErr {
        self.finished = true;
        let err = ClientDisconnected::new_err(error.to_string());
        self.error = Some(error);
        err
    }

    fn take(&mut self, n: usize) -> Bytes {
        let n = n.min(self.decoded.len());
        self.decoded.split_to(n).freeze()
    }

    fn read_line(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Bytes> {
        let mut scanned = 0;
        loop {
            let window = limit.map_or(self.decoded.len(), |l| l.min(self.decoded.len()));
            if let Some(lf) = self.decoded[scanned..window].iter().position(|&b| b == b'\n') {
                return Ok(self.take(scanned + lf + 1));
            }
            if limit.is_some_and(|l| self.decoded.len() >= l) {
                return Ok(self.take(window));
            }
            scanned = window;
            if !self.fill(py)? {
                return Ok(self.take(self.decoded.len()));
            }
        }
    }
}

/// A negative or absent size means "all" (io.RawIOBase semantics).
fn as_limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl Input {
    /// `read()` reads to the end; `read(n)` returns n bytes, fewer only at the end.
    #[pyo3(signature = (size = None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let limit = as_limit(size);
        let data = {
            let mut reader = self.reader(py);
            while limit.is_none_or(|l| reader.decoded.len() < l) && reader.fill(py)? {}
            reader.take(limit.unwrap_or(usize::MAX))
        };
        // Python objects are made with the lock released: an allocation may run a
        // finalizer, which could read from this input again.
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.reader(py).read_line(py, as_limit(size))?;
        Ok(PyBytes::new(py, &line))
    }

    /// Lines until their total size reaches `hint` (all lines when absent or <= 0).
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(
        &self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = as_limit(hint).filter(|&h| h > 0);
        let mut lines = Vec::new();
        {
            let mut reader = self.reader(py);
            let mut total = 0;
            loop {
                let line = reader.read_line(py, None)?;
                if line.is_empty() {
                    break;
                }
                total += line.len();
                lines.push(line);
                if hint.is_some_and(|h| total >= h) {
                    break;
                }
            }
        }
        Ok(lines.iter().map(|line| PyBytes::new(py, line)).collect())
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.reader(py).read_line(py, None)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bug 3: the server's questions about a body an app thread is still reading get a
    /// defined answer ("not read to its end"), never a borrow panic, never a wait.
    #[test]
    fn regression_body_held_by_an_app_thread_counts_as_unread() {
        let cases = [
            (Input::buffered(BytesMut::from(&b"whole"[..])), (true, None)),
            (
                Input::new(
                    BodyDecoder::Length { remaining: 0 },
                    "next".into(),
                    Box::new(NoMoreBytes),
                    false,
                ),
                (true, Some(BytesMut::from(&b"next"[..]))),
            ),
            (
                Input::new(
                    BodyDecoder::Length { remaining: 9 },
                    BytesMut::new(),
                    Box::new(NoMoreBytes),
                    false,
                ),
                (false, None),
            ),
        ];
        for (input, free) in cases {
            {
                let _reading = input.state.lock().unwrap();
                assert!(!input.complete());
                assert_eq!(input.end_of_body(), (false, None));
                assert!(input.error().is_none());
            }
            assert_eq!(input.complete(), free.0);
            assert_eq!(input.end_of_body(), free);
        }
    }
}
