//! What the example tests share: build an example, start it on a free port, and kill it
//! (or any server process a test started) when the test ends.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Bounds every wait, so a broken example fails the test instead of hanging it.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A running example, killed when the test ends however it ends.
pub struct Server {
    /// The server's process.
    pub child: Child,
    /// Where it listens, from its first line of output.
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the example `name` (into the target directory this test runs from) and starts
/// it on 127.0.0.1, port 0; its first line of output says where it listens.
pub fn start(name: &str) -> Server {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let binary: PathBuf = deps.parent().unwrap().join("examples").join(name);
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let built = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", name, "--manifest-path", manifest])
        .status()
        .expect("cargo runs");
    assert!(built.success() && binary.exists(), "no {}", binary.display());
    let mut child =
        Command::new(&binary).arg("127.0.0.1:0").stdout(Stdio::piped()).spawn().expect("starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let mut server = Server { child, addr: String::new() };
    let line = rx.recv_timeout(DEADLINE).expect("the example says where it listens");
    server.addr = line.trim().strip_prefix("listening on ").expect(&line).to_owned();
    server
}
