//! `--reload`: the master watches the app's source files with inotify and reloads the
//! workers (as HUP does) when one changes. No polling: the master sleeps until the
//! kernel reports a write.
//!
//! The master never imports the app, so the workers tell it which files to watch: after
//! booting, each writes the paths of its loaded modules, one per line, into a pipe
//! (writes up to `PIPE_BUF` bytes are atomic, so lines from several workers never mix).
//! Directories are watched rather than files, because editors often save by writing a
//! new file and renaming it over the old one. Editors also write in bursts, so a change
//! is reported ([`Reloader::settled_change`]) a moment after the first write is seen.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// A change is acted on this long after the first write seen, so a burst is one reload.
const SETTLE: Duration = Duration::from_millis(150);

/// Events that mean a file now has new content (or is gone).
fn changed_mask() -> AddWatchFlags {
    AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_DELETE
}

/// The watch on the app's source files, and the pipe workers name them through.
pub struct Reloader {
    /// The kernel's change reports for the watched directories.
    inotify: Inotify,
    /// Watched directories by watch descriptor.
    dirs: HashMap<WatchDescriptor, PathBuf>,
    /// Files whose change triggers a reload.
    files: HashSet<PathBuf>,
    /// The master's end of the feed: paths of loaded modules, one per line.
    feed_read: OwnedFd,
    /// The workers' end, inherited across fork.
    feed_write: OwnedFd,
    /// A line not yet complete in the feed.
    partial: Vec<u8>,
    /// The first change seen, and when it is due: the end of its burst.
    due: Option<(Instant, PathBuf)>,
}

impl Reloader {
    pub fn new(extra_files: &[PathBuf]) -> io::Result<Reloader> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        // Only the master's end is non-blocking: a worker's write waits for the master.
        let (feed_read, feed_write) = crate::signals::pipe(false)?;
        let mut reloader = Reloader {
            inotify,
            dirs: HashMap::new(),
            files: HashSet::new(),
            feed_read,
            feed_write,
            partial: Vec::new(),
            due: None,
        };
        for file in extra_files {
            reloader.watch(file);
        }
        Ok(reloader)
    }

    /// Where workers write the paths of their modules.
    pub fn feed_fd(&self) -> RawFd {
        self.feed_write.as_raw_fd()
    }

    /// The descriptors the master waits on.
    pub fn poll_fds(&self) -> [RawFd; 2] {
        [self.inotify.as_fd().as_raw_fd(), self.feed_read.as_raw_fd()]
    }

    /// How long the master may sleep: `max`, or less when a change is about to be due.
    pub fn timeout(&self, max: Duration) -> Duration {
        match &self.due {
            Some((due, _)) => due.saturating_duration_since(Instant::now()).min(max),
            None => max,
        }
    }

    /// After a wake-up: takes in the paths workers reported and the kernel's events;
    /// returns the changed file once its burst of writes has settled.
    pub fn settled_change(&mut self) -> Option<PathBuf> {
        self.read_feed();
        if let Some(path) = self.changed() {
            self.due.get_or_insert((Instant::now() + SETTLE, path));
        }
        match &self.due {
            Some((due, _)) if Instant::now() >= *due => self.due.take().map(|(_, path)| path),
            _ => None,
        }
    }

    /// Takes in the paths workers reported.
    fn read_feed(&mut self) {
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: reading into a stack buffer of the stated length.
            let n = unsafe {
                libc::read(self.feed_read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
            };
            if n <= 0 {
                break;
            }
            self.partial.extend_from_slice(&buf[..n as usize]);
        }
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else { return };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        for line in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let path = PathBuf::from(<OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(line));
            self.watch(&path);
        }
    }

    fn watch(&mut self, file: &Path) {
        let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
        let Some(dir) = file.parent().map(Path::to_owned) else { return };
        if !self.files.insert(file) || self.dirs.values().any(|d| *d == dir) {
            return;
        }
        match self.inotify.add_watch(&dir, changed_mask()) {
            Ok(wd) => {
                self.dirs.insert(wd, dir);
            }
            Err(e) => tracing::warn!("--reload cannot watch {}: {e}", dir.display()),
        }
    }

    /// The first watched file the kernel reports as changed since the last call.
    fn changed(&mut self) -> Option<PathBuf> {
        let mut found = None;
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for event in events {
                let (Some(dir), Some(name)) = (self.dirs.get(&event.wd), &event.name) else {
                    continue;
                };
                let path = dir.join(name);
                if found.is_none() && self.files.contains(&path) {
                    found = Some(path);
                }
            }
        }
        found
    }
}
