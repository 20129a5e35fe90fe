//! The bytes an async connection owes its client, as a queue of segments: the head and
//! framing copied into small owned buffers, the app's body bytes kept as references to
//! its own `bytes` objects. A slow reader of a big response then costs a reference, not a
//! copy of the response (issue 8, bug 10), and one `writev(2)` sends several segments.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::ops::Range;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use socket2::Socket;

use crate::wsgi::Sink;

/// Body pieces shorter than this are copied next to their framing (one segment, one
/// slice in the `writev`); longer ones are kept by reference.
const COPY_BELOW: usize = 16 * 1024;
/// Slices per `writev` (well under `IOV_MAX`).
const MAX_SLICES: usize = 64;
/// An emptied owned buffer up to this capacity is kept for the next response; a bigger
/// one (an error page, a burst of small pieces) goes back to the allocator.
const KEEP_CAPACITY: usize = 16 * 1024;

enum Segment {
    /// Bytes of our own; `buf[pos..]` is still to send.
    Owned { buf: Vec<u8>, pos: usize },
    /// `bytes[range]` of one of the app's objects (immutable, so safe to send from while
    /// we hold the reference).
    Shared { bytes: Py<PyBytes>, range: Range<usize> },
}

impl Segment {
    fn remaining<'a>(&'a self, py: Python<'_>) -> &'a [u8] {
        match self {
            Segment::Owned { buf, pos } => &buf[*pos..],
            Segment::Shared { bytes, range } => &bytes.as_bytes(py)[range.clone()],
        }
    }

    fn len(&self) -> usize {
        match self {
            Segment::Owned { buf, pos } => buf.len() - pos,
            Segment::Shared { range, .. } => range.len(),
        }
    }
}

/// What is queued for one connection, in order.
#[derive(Default)]
pub struct Output {
    segments: VecDeque<Segment>,
    /// An empty buffer kept from the last flush, reused for the next framing bytes.
    spare: Vec<u8>,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.len() == 0)
    }

    /// Bytes queued, owned and shared: what the high-water mark is measured in.
    pub fn len(&self) -> usize {
        self.segments.iter().map(Segment::len).sum()
    }

    /// Copies `data` in (error pages, interim responses).
    pub fn push(&mut self, data: &[u8]) {
        self.framing().extend_from_slice(data);
    }

    /// Writes what the socket takes; `Ok(true)` once everything is sent. `may_write` is
    /// cleared when the socket is full (edge-triggered: wait for the next writable edge).
    pub fn write_to(
        &mut self,
        py: Python<'_>,
        mut sock: &Socket,
        may_write: &mut bool,
    ) -> io::Result<bool> {
        while !self.is_empty() {
            if !*may_write {
                return Ok(false);
            }
            let slices: Vec<IoSlice<'_>> = self
                .segments
                .iter()
                .filter(|s| s.len() > 0)
                .take(MAX_SLICES)
                .map(|s| IoSlice::new(s.remaining(py)))
                .collect();
            let offered: usize = slices.iter().map(|s| s.len()).sum();
            match sock.write_vectored(&slices) {
                Ok(n) => {
                    *may_write = n == offered;
                    self.advance(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => *may_write = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.clear();
        Ok(true)
    }

    /// Drops what was sent: whole segments (and their references) first.
    fn advance(&mut self, mut n: usize) {
        while let Some(front) = self.segments.front_mut() {
            let len = front.len();
            if n < len {
                match front {
                    Segment::Owned { pos, .. } => *pos += n,
                    Segment::Shared { range, .. } => range.start += n,
                }
                return;
            }
            n -= len;
            if let Some(Segment::Owned { buf, .. }) = self.segments.pop_front() {
                self.recycle(buf);
            }
        }
    }

    /// Empties the queue, keeping one small buffer for the next response.
    pub fn clear(&mut self) {
        while let Some(segment) = self.segments.pop_front() {
            if let Segment::Owned { buf, .. } = segment {
                self.recycle(buf);
            }
        }
    }

    fn recycle(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() <= KEEP_CAPACITY && buf.capacity() > self.spare.capacity() {
            buf.clear();
            self.spare = buf;
        }
    }
}

impl Sink for Output {
    fn framing(&mut self) -> &mut Vec<u8> {
        if !matches!(self.segments.back(), Some(Segment::Owned { .. })) {
            let buf = std::mem::take(&mut self.spare);
            self.segments.push_back(Segment::Owned { buf, pos: 0 });
        }
        match self.segments.back_mut() {
            Some(Segment::Owned { buf, .. }) => buf,
            _ => unreachable!("an owned segment was just pushed"),
        }
    }

    fn body(&mut self, data: &Bound<'_, PyBytes>, range: Range<usize>) {
        if range.len() < COPY_BELOW {
            self.framing().extend_from_slice(&data.as_bytes()[range]);
        } else {
            self.segments.push_back(Segment::Shared { bytes: data.clone().unbind(), range });
        }
    }
}
