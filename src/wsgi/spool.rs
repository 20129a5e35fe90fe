//! A request body received before the app runs, held until `wsgi.input` reads it back.
//!
//! The async worker receives a body of up to 1 MiB whole on its loop before it calls the
//! app, so a slow uploader never holds Python. Held in memory, 256 such uploads cost a
//! worker 256 MiB and more. A [`Spool`] keeps a body in memory only while the worker's
//! [`Spooler`] grants it room from a budget shared by all its connections; a body the
//! budget cannot hold goes to an unlinked temporary file under `--worker-tmp-dir` (or the
//! system's temporary directory), as nginx's `client_body_temp` does. The worker's memory
//! for bodies is thus bounded whatever the number of uploads; past the budget they cost
//! page cache, which the kernel may write out, instead of RSS.
//!
//! The file is unlinked from the start (`O_TMPFILE`, or created and removed at once where
//! the file system lacks it), so it disappears with its descriptor however the connection
//! ends: a crash or a client gone mid-upload leaves nothing behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::http::{self, BodyFraming, Head};

/// Body bytes one worker keeps in memory at most, across all its connections. Sized so
/// that a benchmark's 25 concurrent 1 MiB uploads per worker stay in memory (a file costs
/// a write and a read of every byte), while 256 of them cost at most this much RSS.
pub const MEMORY_BUDGET: usize = 32 << 20;

/// Keeps freed body buffers in the worker's heap for the next bodies (glibc). A body of up
/// to 1 MiB gets a buffer of its own, freed with it so that a connection that goes on
/// holds nothing of it. glibc's own thresholds then return that memory to the kernel
/// almost every time (its trim threshold follows the largest freed block: about 2 MiB),
/// so the next body faults in and zeroes 1 MiB of fresh pages: the 1 MiB POST echo ran at
/// a third of its speed. Bodies under 4 MiB come from the heap, and up to twice the budget
/// of free heap stays mapped for reuse.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, under the allocator's own lock;
    // called once per worker at boot.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, (2 * MEMORY_BUDGET) as libc::c_int);
    }
}

/// Answers 413 before the app runs when the declared length is over `--limit-request-body`
/// (0: no limit), as nginx's `client_max_body_size` does.
pub fn check_length(head: &Head, limit: u64) -> Result<(), http::Error> {
    match head.framing {
        BodyFraming::Length(n) if over_limit(n, limit) => Err(http::Error::BodyTooLarge),
        _ => Ok(()),
    }
}

/// Whether `len` body bytes break `--limit-request-body` (0: no limit).
pub fn over_limit(len: u64, limit: u64) -> bool {
    limit > 0 && len > limit
}

/// What the spools of one worker share: the memory left for bodies and where files go.
#[derive(Debug)]
pub struct Spooler {
    /// Bytes of the budget not held by any spool.
    left: AtomicUsize,
    /// Largest body kept in memory; a bigger one goes to a file whatever the budget.
    max_in_memory: usize,
    /// `--worker-tmp-dir`; `None`: the system's temporary directory.
    dir: Option<PathBuf>,
    /// Bodies spilled to a file so far, for the debug log and the tests.
    spilled: AtomicU64,
}

impl Spooler {
    pub fn new(budget: usize, max_in_memory: usize, dir: Option<PathBuf>) -> Arc<Spooler> {
        let spilled = AtomicU64::new(0);
        Arc::new(Spooler { left: AtomicUsize::new(budget), max_in_memory, dir, spilled })
    }

    /// A spool for a body of `expected` bytes (`None`: chunked, size unknown). A known
    /// size that fits is granted its memory at once, so it can be received in place.
    pub fn spool(self: &Arc<Self>, expected: Option<u64>) -> Spool {
        let mut spool = Spool::empty();
        spool.spooler = Some(Arc::clone(self));
        if let Some(n) = expected.and_then(|n| usize::try_from(n).ok()) {
            if n <= self.max_in_memory && self.take(n) {
                spool.held = n;
            } else {
                spool.spill_pending = true;
            }
        }
        spool
    }

    /// How many bodies went to a file.
    pub fn spilled(&self) -> u64 {
        self.spilled.load(Ordering::Relaxed)
    }

    /// Bytes of the budget no spool holds.
    pub fn left(&self) -> usize {
        self.left.load(Ordering::Relaxed)
    }

    fn take(&self, n: usize) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(n))
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.left.fetch_add(n, Ordering::AcqRel);
    }

    /// An unlinked read-write file in the spool directory.
    fn create(&self) -> io::Result<File> {
        let dir = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        let tmpfile = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(&dir);
        match tmpfile {
            Ok(file) => Ok(file),
            // The file system has no O_TMPFILE: a named file, removed at once.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
                let n = self.spilled.load(Ordering::Relaxed);
                let path = dir.join(format!("ferricorn-body-{}-{n}", std::process::id()));
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&path)?;
                std::fs::remove_file(&path)?;
                Ok(file)
            }
            Err(e) => Err(e),
        }
    }
}

/// One request body: written as it arrives, then read back once, in order.
#[derive(Debug)]
pub struct Spool {
    /// Where memory comes from and goes back to; `None` for a body known to be empty.
    spooler: Option<Arc<Spooler>>,
    /// The body while it is in memory; what is left of it to read, once reading began.
    mem: BytesMut,
    /// Bytes of the budget this spool holds: at least `mem`'s length while in memory.
    held: usize,
    /// The whole body once it went to a file (memory and budget then given back).
    file: Option<File>,
    /// The body's size was known and did not get memory: the first write creates the file.
    spill_pending: bool,
    /// Bytes written.
    len: u64,
    /// Bytes of the file read back.
    read: u64,
}

impl Spool {
    /// A spool that never holds anything (a request without a body).
    pub fn empty() -> Spool {
        Spool {
            spooler: None,
            mem: BytesMut::new(),
            held: 0,
            file: None,
            spill_pending: false,
            len: 0,
            read: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the body is (or will be) in a file.
    pub fn on_disk(&self) -> bool {
        self.file.is_some() || self.spill_pending
    }

    /// Whether `n` more bytes are granted memory already: the worker may then receive them
    /// in its read buffer and hand them over whole with [`Spool::put`], without a copy.
    pub fn holds(&self, n: u64) -> bool {
        !self.on_disk() && self.mem.len() as u64 + n <= self.held as u64
    }

    /// Appends `data`, taking it without a copy when it is the whole body so far.
    pub fn put(&mut self, data: BytesMut) -> io::Result<()> {
        if self.mem.is_empty() && self.holds(data.len() as u64) {
            self.len = data.len() as u64;
            self.mem = data;
            return Ok(());
        }
        self.write(&data)
    }

    /// Appends a decoded piece (shared with the read buffer, so always copied).
    pub fn put_bytes(&mut self, data: &Bytes) -> io::Result<()> {
        self.write(data)
    }

    /// Appends `data`: to memory while the budget grants it, else to the file.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if !self.on_disk() && !self.holds(data.len() as u64) && !self.grow(data.len()) {
            self.spill_pending = true;
        }
        if self.spill_pending {
            self.spill()?;
        }
        match &mut self.file {
            Some(file) => file.write_all(data).inspect_err(|e| {
                tracing::error!("Cannot spool a request body: {e}");
            })?,
            None => self.mem.extend_from_slice(data),
        }
        self.len += data.len() as u64;
        Ok(())
    }

    /// More budget for a body of unknown size, in steps of at least 64 KiB.
    fn grow(&mut self, n: usize) -> bool {
        let Some(spooler) = &self.spooler else { return false };
        let want = self.mem.len() + n;
        if want > spooler.max_in_memory {
            return false;
        }
        let step = (want - self.held).max(64 * 1024).min(spooler.max_in_memory - self.held);
        if !spooler.take(step) {
            return false;
        }
        self.held += step;
        true
    }

    /// Moves the body to a new file and gives its memory back.
    fn spill(&mut self) -> io::Result<()> {
        self.spill_pending = false;
        let spooler = self.spooler.as_ref().ok_or(io::ErrorKind::Unsupported)?;
        let mut file = spooler.create().inspect_err(|e| {
            let dir = spooler.dir.clone().unwrap_or_else(std::env::temp_dir);
            tracing::error!("Cannot spool a request body to {}: {e}", dir.display());
        })?;
        spooler.spilled.fetch_add(1, Ordering::Relaxed);
        file.write_all(&self.mem)?;
        self.mem = BytesMut::new();
        self.release();
        self.file = Some(file);
        Ok(())
    }

    fn release(&mut self) {
        if let Some(spooler) = &self.spooler {
            spooler.give(std::mem::take(&mut self.held));
        }
    }

    /// The next at most `max` bytes of the body, in order; `None` at its end.
    pub fn read_chunk(&mut self, max: usize) -> io::Result<Option<BytesMut>> {
        let Some(file) = &self.file else {
            if self.mem.is_empty() {
                return Ok(None);
            }
            let n = max.max(1).min(self.mem.len());
            return Ok(Some(self.mem.split_to(n)));
        };
        let n = (self.len - self.read).min(max.max(1) as u64) as usize;
        if n == 0 {
            return Ok(None);
        }
        let mut chunk = BytesMut::zeroed(n);
        file.read_exact_at(&mut chunk, self.read)?;
        self.read += n as u64;
        Ok(Some(chunk))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn read_all(spool: &mut Spool, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = spool.read_chunk(step).unwrap() {
            assert!(!chunk.is_empty() && chunk.len() <= step.max(1), "chunk of {}", chunk.len());
            out.extend_from_slice(&chunk);
        }
        assert!(spool.read_chunk(step).unwrap().is_none(), "read past the end");
        out
    }

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferricorn-spool-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Sizes below, at and above the per-body threshold and the budget, written in
    /// pieces of several sizes and read back in several sizes: the bytes come back whole,
    /// in memory or on disk as the budget says, and the budget is whole again after.
    #[test]
    fn bodies_round_trip_in_memory_or_on_disk() {
        // (size, known length, budget, max in memory, expected on disk)
        let cases = [
            (0, true, 64 * KIB, 64 * KIB, false),
            (1, true, 64 * KIB, 64 * KIB, false),
            (64 * KIB - 1, true, 64 * KIB, 64 * KIB, false),
            (64 * KIB, true, 64 * KIB, 64 * KIB, false),
            (64 * KIB + 1, true, 64 * KIB, 64 * KIB, true),
            (64 * KIB, true, 32 * KIB, 64 * KIB, true),
            (1, false, 64 * KIB, 64 * KIB, false),
            (64 * KIB, false, 64 * KIB, 64 * KIB, false),
            (64 * KIB + 1, false, 64 * KIB, 64 * KIB, true),
            (100 * KIB, false, 1024 * KIB, 1024 * KIB, false),
            (100 * KIB, false, 90 * KIB, 1024 * KIB, true),
            (3 * 1024 * KIB + 5, false, 1024 * KIB, 1024 * KIB, true),
        ];
        for (size, known, budget, max, on_disk) in cases {
            for write_step in [1, 1000, 64 * KIB, usize::MAX] {
                if write_step == 1 && size > 70 * KIB {
                    continue;
                }
                for read_step in [1, 4096, 64 * KIB + 3] {
                    if read_step == 1 && size > 70 * KIB {
                        continue;
                    }
                    let spooler = Spooler::new(budget, max, Some(dir()));
                    let body = pattern(size);
                    let mut spool = spooler.spool(known.then_some(size as u64));
                    for piece in body.chunks(write_step.min(size.max(1))) {
                        spool.write(piece).unwrap();
                    }
                    let case = format!("{size} known={known} budget={budget} max={max} w={write_step} r={read_step}");
                    assert_eq!(spool.len(), size as u64, "{case}");
                    assert_eq!(spool.file.is_some(), on_disk && size > 0, "{case}");
                    assert_eq!(spooler.spilled(), u64::from(on_disk && size > 0), "{case}");
                    assert!(read_all(&mut spool, read_step) == body, "{case}: bytes differ");
                    drop(spool);
                    assert_eq!(spooler.left(), budget, "{case}: budget not given back");
                }
            }
        }
    }

    /// A body received whole in the read buffer is taken without a copy.
    #[test]
    fn a_granted_body_is_taken_in_place() {
        let spooler = Spooler::new(MEMORY_BUDGET, 1024 * KIB, None);
        let mut spool = spooler.spool(Some(10));
        assert!(spool.holds(10) && !spool.holds(11));
        assert_eq!(spooler.left(), MEMORY_BUDGET - 10);
        let body = BytesMut::from(&b"0123456789"[..]);
        let at = body.as_ptr();
        spool.put(body).unwrap();
        let chunk = spool.read_chunk(usize::MAX).unwrap().unwrap();
        assert_eq!((&chunk[..], chunk.as_ptr()), (&b"0123456789"[..], at));
    }

    /// The budget is shared: while bodies hold it, the next goes to disk; once they are
    /// gone, memory again.
    #[test]
    fn the_budget_bounds_memory_across_bodies() {
        let spooler = Spooler::new(256 * KIB, 1024 * KIB, Some(dir()));
        let held: Vec<Spool> = (0..4).map(|_| spooler.spool(Some(64 * KIB as u64))).collect();
        assert!(held.iter().all(|s| !s.on_disk()));
        assert_eq!(spooler.left(), 0);
        let mut late = spooler.spool(Some(1));
        assert!(late.on_disk());
        late.write(b"x").unwrap();
        let mut chunked = spooler.spool(None);
        chunked.write(b"y").unwrap();
        assert!(chunked.on_disk());
        drop(held);
        assert_eq!(spooler.left(), 256 * KIB);
        assert!(!spooler.spool(Some(64 * KIB as u64)).on_disk());
        assert_eq!(
            (read_all(&mut late, 10), read_all(&mut chunked, 10)),
            (b"x".to_vec(), b"y".to_vec())
        );
    }

    /// The file is unlinked from the start: nothing is ever left in the directory.
    #[test]
    fn spilled_bodies_leave_no_file() {
        let dir = dir().join("leave-no-file");
        std::fs::create_dir_all(&dir).unwrap();
        let spooler = Spooler::new(0, 0, Some(dir.clone()));
        let mut spool = spooler.spool(None);
        spool.write(&pattern(200 * KIB)).unwrap();
        assert!(spool.on_disk());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert_eq!(read_all(&mut spool, 64 * KIB), pattern(200 * KIB));
        drop(spool);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    /// A directory that cannot hold files fails the write (the worker refuses the
    /// request), and the budget is not lost.
    #[test]
    fn an_unusable_directory_fails_the_write() {
        let spooler = Spooler::new(16, 16, Some(PathBuf::from("/nonexistent/ferricorn")));
        let mut spool = spooler.spool(None);
        spool.write(b"fits").unwrap();
        assert!(spool.write(&[0; 100]).is_err());
        drop(spool);
        assert_eq!(spooler.left(), 16);
    }

    #[test]
    fn the_limit_is_checked_on_the_declared_length() {
        use crate::http::{parse_head, Limits};
        let cases = [
            ("Content-Length: 10", 0, true),
            ("Content-Length: 10", 10, true),
            ("Content-Length: 11", 10, false),
            ("Transfer-Encoding: chunked", 10, true),
            ("X-None: 1", 1, true),
        ];
        for (header, limit, passes) in cases {
            let raw = format!("POST / HTTP/1.1\r\nHost: h\r\n{header}\r\n\r\n");
            let head = parse_head(&mut BytesMut::from(raw.as_bytes()), &Limits::default())
                .unwrap()
                .unwrap();
            assert_eq!(check_length(&head, limit).is_ok(), passes, "{header} limit {limit}");
        }
        assert!(!over_limit(5, 0) && !over_limit(5, 5) && over_limit(6, 5));
    }
}
