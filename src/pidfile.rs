//! `--pid FILE`: the master's pid, for scripts and init systems.
//!
//! As in gunicorn: a master started by USR2 writes `FILE.2` while the old master lives,
//! and renames it to `FILE` once the old one is gone; a master removes the file on exit
//! only if it still holds its own pid, so the old master never removes the new one's.

use std::io;
use std::path::{Path, PathBuf};

/// The file this master wrote, removed on exit while it still names this master.
pub struct Pidfile {
    /// Where this master's pid is now.
    path: PathBuf,
    /// The pid written, to tell this master's file from a successor's.
    pid: u32,
}

impl Pidfile {
    /// Writes `pid` to `path`; refuses when the file names another live process.
    pub fn create(path: &Path, pid: u32) -> io::Result<Pidfile> {
        if let Some(other) = read_pid(path).filter(|&p| p != pid && alive(p)) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("the file names a running process (pid:{other})"),
            ));
        }
        write_atomically(path, pid)?;
        Ok(Pidfile { path: path.to_owned(), pid })
    }

    /// Moves the file (the promotion of a USR2 master from `FILE.2` to `FILE`).
    pub fn rename(&mut self, to: &Path) -> io::Result<()> {
        write_atomically(to, self.pid)?;
        let _ = std::fs::remove_file(&self.path);
        self.path = to.to_owned();
        Ok(())
    }

    /// Removes the file if it still names this process.
    pub fn unlink(&self) {
        if read_pid(&self.path) == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `FILE.2`, where a master started by USR2 writes its pid until it is promoted.
pub fn upgrade_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".2");
    PathBuf::from(name)
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Readers never see a half-written file: write a sibling, then rename it over.
fn write_atomically(path: &Path, pid: u32) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{pid}"));
    std::fs::write(&tmp, format!("{pid}\n"))?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_rename_unlink() {
        let dir = std::env::temp_dir().join(format!("ferricorn-pidfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let main = dir.join("app.pid");
        let upgrade = upgrade_path(&main);
        assert_eq!(upgrade, dir.join("app.pid.2"));
        let mut file = Pidfile::create(&upgrade, std::process::id()).unwrap();
        assert_eq!(read_pid(&upgrade), Some(std::process::id()));
        file.rename(&main).unwrap();
        assert!(!upgrade.exists());
        assert_eq!(read_pid(&main), Some(std::process::id()));
        // Another live process's pidfile is not taken over; a stale one is.
        std::fs::write(&main, "1\n").unwrap();
        assert!(Pidfile::create(&main, std::process::id()).is_err());
        file.unlink();
        assert!(main.exists(), "unlink removed a file naming another pid");
        std::fs::write(&main, format!("{}\n", i32::MAX)).unwrap();
        Pidfile::create(&main, std::process::id()).unwrap().unlink();
        assert!(!main.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
