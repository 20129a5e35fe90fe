//! The bytes an async connection owes its client, as a queue of segments: the head and
//! framing copied into small owned buffers, the app's body bytes kept as references to
//! its own `bytes` objects. A slow reader of a big response then costs a reference, not a
//! copy of the response (issue 8, bug 10), and one `writev(2)` sends several segments.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::ops::Range;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::transport::Transport;
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
    /// Bytes of our own.
    Owned {
        /// The bytes: head, framing, small body pieces copied next to them.
        buf: Vec<u8>,
        /// `buf[pos..]` is still to send.
        pos: usize,
    },
    /// Part of one of the app's objects (immutable, so safe to send from while we hold
    /// the reference).
    Shared {
        /// The app's object, kept alive until its bytes are sent.
        bytes: Py<PyBytes>,
        /// What of it is still to send.
        range: Range<usize>,
    },
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
    /// What is owed, oldest first.
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
    pub fn write_to<T: Transport>(
        &mut self,
        py: Python<'_>,
        transport: &T,
        may_write: &mut bool,
    ) -> io::Result<bool> {
        while !self.is_empty() {
            if !*may_write {
                return Ok(false);
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for segment in self.segments.iter().filter(|s| s.len() > 0).take(MAX_SLICES) {
                slices[count] = IoSlice::new(segment.remaining(py));
                count += 1;
            }
            let offered: usize = slices[..count].iter().map(|s| s.len()).sum();
            match transport.write_vectored(&slices[..count]) {
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
        if !transport.flush()? {
            *may_write = false;
            return Ok(false);
        }
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
    fn is_empty(&self) -> bool {
        Output::is_empty(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Socket, Type};
    use std::io::Read;

    fn refcnt(obj: &Bound<'_, PyBytes>) -> isize {
        // SAFETY: reading the reference count of a live object, with the GIL held.
        unsafe { pyo3::ffi::Py_REFCNT(obj.as_ptr()) }
    }

    fn pair() -> (Socket, Socket) {
        let (writer, reader) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
        writer.set_nonblocking(true).unwrap();
        (writer, reader)
    }

    /// Writes `out` through a socket pair whose reader drains as it goes; returns the bytes
    /// received and how many writes found the socket full.
    fn send_all(py: Python<'_>, out: &mut Output) -> (Vec<u8>, usize) {
        let (writer, mut reader) = pair();
        writer.set_send_buffer_size(4096).unwrap();
        let (mut received, mut blocked) = (Vec::new(), 0);
        let mut chunk = vec![0; 64 * 1024];
        loop {
            let mut may_write = true;
            if out.write_to(py, &writer, &mut may_write).unwrap() {
                break;
            }
            assert!(!may_write, "write_to stopped with the socket writable");
            blocked += 1;
            let n = reader.read(&mut chunk).unwrap();
            received.extend_from_slice(&chunk[..n]);
        }
        drop(writer);
        reader.read_to_end(&mut received).unwrap();
        (received, blocked)
    }

    #[test]
    fn segments_go_out_in_order_through_partial_writes() {
        Python::initialize();
        Python::attach(|py| {
            let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
            let big = PyBytes::new(py, &big);
            let small = PyBytes::new(py, b"small body");
            let mut out = Output::default();
            out.push(b"HEAD\r\n\r\n");
            out.body(&small, 0..small.as_bytes().len());
            out.framing().extend_from_slice(b"|");
            out.body(&big, 10..big.as_bytes().len());
            out.push(b"END");
            let mut expected = b"HEAD\r\n\r\nsmall body|".to_vec();
            expected.extend_from_slice(&big.as_bytes()[10..]);
            expected.extend_from_slice(b"END");
            assert_eq!(out.len(), expected.len());
            let (received, blocked) = send_all(py, &mut out);
            assert_eq!(received, expected);
            assert!(blocked > 0, "the test meant the socket to fill up");
            assert!(out.is_empty());
            assert_eq!(out.len(), 0);
        });
    }

    #[test]
    fn big_bodies_are_referenced_not_copied() {
        Python::initialize();
        Python::attach(|py| {
            let cases = [(COPY_BELOW - 1, 0), (COPY_BELOW, 1), (8 << 20, 1)];
            for (size, references) in cases {
                let data = PyBytes::new(py, &vec![b'x'; size]);
                let before = refcnt(&data);
                let mut out = Output::default();
                out.push(b"head");
                out.body(&data, 0..size);
                assert_eq!(refcnt(&data) - before, references, "size {size}");
                assert_eq!(out.len(), 4 + size);
                out.clear();
                assert_eq!(refcnt(&data), before, "size {size}: reference kept after clear");
            }
        });
    }

    #[test]
    fn a_sent_reference_is_released_and_a_small_buffer_kept() {
        Python::initialize();
        Python::attach(|py| {
            let data = PyBytes::new(py, &vec![b'y'; 100_000]);
            let before = refcnt(&data);
            let mut out = Output::default();
            out.push(b"head");
            out.body(&data, 0..100_000);
            let (received, _) = send_all(py, &mut out);
            assert_eq!(received.len(), 100_004);
            assert_eq!(refcnt(&data), before);
            assert!(out.spare.capacity() > 0 && out.spare.capacity() <= KEEP_CAPACITY);
            out.push(&vec![b'z'; 4 * KEEP_CAPACITY]);
            out.clear();
            assert!(out.spare.capacity() <= KEEP_CAPACITY, "a big buffer was kept");
        });
    }
}
