//! What the benchmark clients `benches/tls_client` and `benches/ws_client` share. They are
//! separate crates outside the workspace (each its own, empty `[workspace]`), so each takes
//! this file in with `#[path = "../../client_common.rs"] mod client_common;`.
//!
//! - `parse_args`: the flags both take (`--host`, `--port`, `--connections`, `--duration`),
//!   the others handed back in order for the client to read.
//! - `connect`: a TCP connection with no Nagle delay and the I/O timeouts.
//! - `run_threads`: one thread per connection until the deadline, their counts and the
//!   seconds it took.
//! - `quoted`: an optional text as JSON.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A read or write that waits longer than this fails the connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The flags every client takes.
pub struct Common {
    /// Where the server listens.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Threads, each with one connection at a time.
    pub connections: usize,
    /// How long to keep going.
    pub duration: Duration,
}

/// A flag `parse_args` leaves to the client, and its value (`None` for a switch).
pub type Flag = (String, Option<String>);

/// Reads the command line: the common flags, and the rest in order, where the flags named
/// in `switches` take no value and every other one takes the next argument.
pub fn parse_args(switches: &[&str]) -> Result<(Common, Vec<Flag>), String> {
    let mut common = Common {
        host: "127.0.0.1".into(),
        port: 0,
        connections: 50,
        duration: Duration::from_secs(5),
    };
    let mut rest = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if switches.contains(&flag.as_str()) {
            rest.push((flag, None));
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--host" => common.host = value,
            "--port" => common.port = number(&flag, &value)?,
            "--connections" => common.connections = number(&flag, &value)?,
            "--duration" => common.duration = Duration::from_secs_f64(number(&flag, &value)?),
            _ => rest.push((flag, Some(value))),
        }
    }
    if common.port == 0 || common.connections == 0 {
        return Err("--port and --connections must be positive".into());
    }
    Ok((common, rest))
}

/// A flag's value as a number, or which flag had what instead.
pub fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{flag}: not a number: {value}"))
}

/// Connects to the server, with `TCP_NODELAY` and `IO_TIMEOUT` both ways.
pub fn connect(args: &Common) -> Result<TcpStream, String> {
    let sock =
        TcpStream::connect((args.host.as_str(), args.port)).map_err(|e| format!("connect: {e}"))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    sock.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    Ok(sock)
}

/// Runs `work(index, deadline)` on `args.connections` threads, the deadline `args.duration`
/// from now; returns what each counted and the seconds until the last one ended.
pub fn run_threads<C, W>(args: &Common, work: W) -> (Vec<C>, f64)
where
    C: Send + 'static,
    W: Fn(usize, Instant) -> C + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let start = Instant::now();
    let deadline = start + args.duration;
    let threads: Vec<_> = (0..args.connections)
        .map(|index| {
            let work = work.clone();
            std::thread::spawn(move || work(index, deadline))
        })
        .collect();
    let counts = threads.into_iter().map(|t| t.join().expect("a client thread panicked"));
    let counts = counts.collect();
    (counts, start.elapsed().as_secs_f64())
}

/// `text` as a JSON string (Rust's `Debug` quoting, enough for error messages), or `null`.
pub fn quoted(text: Option<String>) -> String {
    text.map(|t| format!("{t:?}")).unwrap_or("null".into())
}

/// Reads the arguments or exits 2 with one line naming the client and what was wrong.
pub fn args_or_exit<A>(client: &str, parsed: Result<A, String>) -> Arc<A> {
    match parsed {
        Ok(args) => Arc::new(args),
        Err(e) => {
            eprintln!("{client}: {e}");
            std::process::exit(2);
        }
    }
}
