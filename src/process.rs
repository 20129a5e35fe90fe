//! The process itself: forking an embedded interpreter, daemonizing, the process title,
//! and the identity workers run as.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use pyo3::ffi;
use pyo3::prelude::*;

use crate::config::User;

/// Forks with the GIL held, bracketed as `os.fork()` brackets it, so the child's
/// interpreter state (locks, thread ids) is valid. `None` in the child.
pub fn fork(_py: Python<'_>) -> io::Result<Option<libc::pid_t>> {
    // SAFETY: we hold the GIL (the `py` token), which PyOS_BeforeFork requires; fork() is
    // followed by the matching AfterFork call in each process, exactly as os.fork().
    unsafe {
        ffi::PyOS_BeforeFork();
        match libc::fork() {
            -1 => {
                let err = io::Error::last_os_error();
                ffi::PyOS_AfterFork_Parent();
                Err(err)
            }
            0 => {
                ffi::PyOS_AfterFork_Child();
                Ok(None)
            }
            pid => {
                ffi::PyOS_AfterFork_Parent();
                Ok(Some(pid))
            }
        }
    }
}

/// `--daemon`, as gunicorn's `daemonize`: fork, new session, fork again, stdio to
/// /dev/null (only stdin with `inherit_stdio`, gunicorn's `--enable-stdio-inheritance`).
/// Returns `true` in the daemon; the original process gets `false` and exits.
pub fn daemonize(py: Python<'_>, inherit_stdio: bool) -> io::Result<bool> {
    if fork(py)?.is_some() {
        return Ok(false);
    }
    // SAFETY: setsid in the child of a fork, which is not a group leader.
    unsafe { libc::setsid() };
    if fork(py)?.is_some() {
        // SAFETY: the intermediate process leaves at once, running no Python teardown.
        unsafe { libc::_exit(crate::exit::OK) };
    }
    let devnull = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    let redirected: &[RawFd] = match inherit_stdio {
        true => &[libc::STDIN_FILENO],
        false => &[libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO],
    };
    for &fd in redirected {
        // SAFETY: dup2 of a descriptor we own onto the standard ones.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&devnull), fd) };
    }
    Ok(true)
}

/// Sets what `ps` shows for this process (`/proc/PID/cmdline`) by overwriting the
/// original argument strings in place, as `setproctitle` does. The title is cut to the
/// length of the original command line.
pub fn set_title(title: &str) {
    let Some((start, end)) = argv_area() else { return };
    let len = end.saturating_sub(start);
    if len < 2 {
        return;
    }
    let bytes = title.as_bytes();
    let take = bytes.len().min(len - 1);
    // SAFETY: [start, end) is this process's argv area as the kernel reports it, mapped
    // and writable (the initial stack). CPython keeps its own copies of the arguments
    // (sys.argv, sys.orig_argv), so nothing reads the originals after start-up.
    unsafe {
        let area = std::slice::from_raw_parts_mut(start as *mut u8, len);
        area[..take].copy_from_slice(&bytes[..take]);
        area[take..].fill(0);
    }
    if let Ok(name) = CString::new("ferricorn") {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    }
}

/// `arg_start` and `arg_end` from `/proc/self/stat` (fields 48 and 49).
fn argv_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may itself hold spaces, start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let start = fields.get(48 - 3)?.parse().ok()?;
    let end = fields.get(49 - 3)?.parse().ok()?;
    Some((start, end))
}

/// Switches a worker to `--group`/`--user` (supplementary groups with `--initgroups`).
pub fn switch_user(
    user: Option<&User>,
    group: Option<libc::gid_t>,
    initgroups: bool,
) -> io::Result<()> {
    let check = |rc: libc::c_int, what: &str| match rc {
        0 => Ok(()),
        _ => {
            let e = io::Error::last_os_error();
            Err(io::Error::new(e.kind(), format!("{what}: {e}")))
        }
    };
    if let Some(gid) = group.filter(|&g| g != libc::gid_t::MAX) {
        if let Some(name) =
            user.filter(|_| initgroups).and_then(|u| CString::new(u.name.as_str()).ok())
        {
            // SAFETY: a NUL-terminated user name and a gid.
            check(unsafe { libc::initgroups(name.as_ptr(), gid) }, "initgroups")?;
        }
        // SAFETY: setgid has no memory preconditions.
        check(unsafe { libc::setgid(gid) }, "setgid")?;
    }
    if let Some(user) = user {
        // SAFETY: setuid has no memory preconditions.
        check(unsafe { libc::setuid(user.uid) }, "setuid")?;
    }
    Ok(())
}

/// Resident memory of `pid` in bytes, from `/proc/PID/statm`.
pub fn rss_bytes(pid: libc::pid_t) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size() as u64)
}

pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// CLOCK_MONOTONIC: one clock for every process of the machine (heartbeats compare a
/// worker's reading with the master's).
pub(crate) fn monotonic() -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into a local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_area_is_found() {
        let (start, end) = argv_area().unwrap();
        assert!(end > start);
    }

    #[test]
    fn own_rss() {
        // SAFETY: getpid has no preconditions.
        let rss = rss_bytes(unsafe { libc::getpid() }).unwrap();
        assert!(rss > 1 << 20);
        assert_eq!(rss_bytes(-5), None);
    }
}
