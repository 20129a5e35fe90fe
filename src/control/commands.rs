//! The commands `gunicornc` sends, parsed and answered as gunicorn's control server does.
//!
//! A request is `{"id": .., "command": "show workers", "args": [..]}`; the command is split
//! as a POSIX shell would (gunicorn uses `shlex`), `args` are appended, the first word picks
//! the handler. Answers are `{"id", "status": "ok", "data"}` or `{"id", "status": "error",
//! "error"}` with gunicorn's messages. The master's side is the [`Master`] trait.

use serde_json::{json, Map, Value};

/// One HTTP worker, as `show workers` lists it.
pub struct WorkerView {
    /// Its process id.
    pub pid: i32,
    /// Birth order, from 1.
    pub age: u64,
    /// Whether it has imported the app.
    pub booted: bool,
    /// Whether it was sent SIGABRT for `--timeout`.
    pub aborted: bool,
    /// Seconds since its last heartbeat.
    pub last_heartbeat: f64,
}

/// What the control commands read and do in the master.
pub trait Master {
    /// Every worker process, retiring ones too.
    fn workers(&self) -> Vec<WorkerView>;
    /// `show stats`: gunicorn's keys, in its order.
    fn stats(&self) -> Map<String, Value>;
    /// `show config`: ferricorn's settings under gunicorn's names.
    fn config(&self) -> Map<String, Value>;
    /// `show listeners`: (address, fd, type) per listening socket.
    fn listeners(&self) -> Vec<(String, i32, &'static str)>;
    /// The worker count the master keeps.
    fn num_workers(&self) -> usize;
    /// Sets the worker count (as TTIN/TTOU do, one step at a time).
    fn set_workers(&mut self, count: usize);
    /// Gracefully stops one of our workers; false if `pid` is not one.
    fn kill_worker(&mut self, pid: i32) -> bool;
    /// Queues what a signal would: HUP, USR1, TERM or INT.
    fn signal(&mut self, signal: libc::c_int);
}

/// The answer to one request frame; `None` when it is not a JSON object with a string
/// command (gunicorn closes the connection then, without an answer).
pub fn answer(master: &mut dyn Master, frame: &[u8]) -> Option<Value> {
    let request: Value = serde_json::from_slice(frame).ok()?;
    let request = request.as_object()?;
    let id = request.get("id").cloned().unwrap_or(json!(0));
    let command = match request.get("command") {
        None => "",
        Some(Value::String(s)) => s.trim(),
        Some(_) => return None,
    };
    let args = match request.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(python_str).collect(),
        Some(_) => return None,
    };
    let result = match command {
        "" => Err("Empty command".to_owned()),
        _ => split(command).map_err(invalid).and_then(|mut parts| {
            parts.extend(args);
            execute(master, &parts).map_err(invalid)
        }),
    };
    Some(match result {
        Ok(data) => json!({"id": id, "status": "ok", "data": data}),
        Err(error) => json!({"id": id, "status": "error", "error": error}),
    })
}

/// gunicorn words every `ValueError` so.
fn invalid(e: String) -> String {
    format!("Invalid argument: {e}")
}

/// An argument as Python's `str()` shows it.
fn python_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

/// The command's words, routed to their handler.
fn execute(master: &mut dyn Master, parts: &[String]) -> Result<Value, String> {
    let Some((first, rest)) = parts.split_first() else {
        return Err("Empty command".to_owned());
    };
    match first.to_lowercase().as_str() {
        "show" => show(master, rest),
        "worker" => worker(master, rest),
        "dirty" => dirty(rest),
        "reload" => signal(master, libc::SIGHUP, json!({"status": "reloading"})),
        "reopen" => signal(master, libc::SIGUSR1, json!({"status": "reopening"})),
        "shutdown" => {
            let mode = rest.first().map_or("graceful", String::as_str);
            let sig = if mode == "quick" { libc::SIGINT } else { libc::SIGTERM };
            signal(master, sig, json!({"status": "shutting_down", "mode": mode}))
        }
        "help" => Ok(help()),
        other => Err(format!("Unknown command: {other}")),
    }
}

fn signal(master: &mut dyn Master, sig: libc::c_int, data: Value) -> Result<Value, String> {
    master.signal(sig);
    Ok(data)
}

/// `show all|workers|dirty|config|stats|listeners`.
fn show(master: &mut dyn Master, args: &[String]) -> Result<Value, String> {
    let Some(target) = args.first() else {
        return Err("Missing show target (all|workers|dirty|config|stats|listeners)".to_owned());
    };
    Ok(match target.to_lowercase().as_str() {
        "all" => show_all(master),
        "workers" => {
            let workers: Vec<Value> = sorted_workers(master)
                .iter()
                .map(|w| {
                    json!({"pid": w.pid, "age": w.age, "booted": w.booted,
                           "aborted": w.aborted, "last_heartbeat": w.last_heartbeat})
                })
                .collect();
            json!({"count": workers.len(), "workers": workers})
        }
        "dirty" => json!({"enabled": false, "pid": null, "workers": [], "apps": []}),
        "config" => Value::Object(master.config()),
        "stats" => Value::Object(master.stats()),
        "listeners" => {
            let listeners: Vec<Value> = master
                .listeners()
                .into_iter()
                .map(|(address, fd, kind)| json!({"address": address, "fd": fd, "type": kind}))
                .collect();
            json!({"count": listeners.len(), "listeners": listeners})
        }
        other => return Err(format!("Unknown show target: {other}")),
    })
}

fn sorted_workers(master: &dyn Master) -> Vec<WorkerView> {
    let mut workers = master.workers();
    workers.sort_by_key(|w| w.age);
    workers
}

/// `show all`: the master and its web workers; there is no dirty arbiter.
fn show_all(master: &dyn Master) -> Value {
    let workers: Vec<Value> = sorted_workers(master)
        .iter()
        .map(|w| {
            json!({"pid": w.pid, "type": "web", "age": w.age, "booted": w.booted,
                   "last_heartbeat": w.last_heartbeat})
        })
        .collect();
    json!({
        "arbiter": {"pid": std::process::id(), "type": "arbiter", "role": "master"},
        "web_worker_count": workers.len(),
        "web_workers": workers,
        "dirty_arbiter": null,
        "dirty_workers": [],
        "dirty_worker_count": 0,
    })
}

/// Python's `int()` of a count or pid, with its message.
fn int(word: &str) -> Result<i64, String> {
    word.trim()
        .replace('_', "")
        .parse::<i64>()
        .map_err(|_| format!("invalid literal for int() with base 10: '{word}'"))
}

fn count(args: &[String]) -> Result<usize, String> {
    let n = args.first().map(|w| int(w)).transpose()?.unwrap_or(1);
    Ok(n.clamp(1, 100_000) as usize)
}

/// `worker add [N]`, `worker remove [N]` (never below one), `worker kill PID`.
fn worker(master: &mut dyn Master, args: &[String]) -> Result<Value, String> {
    let Some(action) = args.first() else {
        return Err("Missing worker action (add|remove|kill)".to_owned());
    };
    let rest = &args[1..];
    let previous = master.num_workers();
    match action.to_lowercase().as_str() {
        "add" => {
            let added = count(rest)?;
            master.set_workers(previous + added);
            Ok(json!({"added": added, "previous": previous, "total": previous + added}))
        }
        "remove" => {
            let total = previous.saturating_sub(count(rest)?).max(1);
            master.set_workers(total);
            Ok(
                json!({"removed": previous.saturating_sub(total), "previous": previous, "total": total}),
            )
        }
        "kill" => {
            let word = rest.first().ok_or("Missing PID for worker kill")?;
            let pid = int(word)?;
            match i32::try_from(pid) {
                Ok(pid) if pid > 0 && master.kill_worker(pid) => {
                    Ok(json!({"success": true, "killed": pid}))
                }
                _ => Ok(json!({"success": false, "error": format!("Worker {pid} not found")})),
            }
        }
        other => Err(format!("Unknown worker action: {other}")),
    }
}

/// `dirty add|remove [N]`: ferricorn has no dirty arbiter, as a gunicorn without one says.
fn dirty(args: &[String]) -> Result<Value, String> {
    let Some(action) = args.first() else {
        return Err("Missing dirty action (add|remove)".to_owned());
    };
    match action.to_lowercase().as_str() {
        "add" | "remove" => {
            count(&args[1..])?;
            Ok(json!({"success": false, "error": "Dirty arbiter not running"}))
        }
        other => Err(format!("Unknown dirty action: {other}")),
    }
}

/// `help`: the commands gunicorn's client knows, each with what it does here.
fn help() -> Value {
    json!({"commands": {
        "show all": "The master and its workers",
        "show workers": "Workers: pid, age, booted, seconds since the last heartbeat",
        "show dirty": "Dirty workers (ferricorn has none)",
        "show config": "The settings in force, under gunicorn's names",
        "show stats": "Uptime and counts of workers spawned and killed, and reloads",
        "show listeners": "The listening sockets",
        "worker add [N]": "N more workers (default 1)",
        "worker remove [N]": "N fewer workers (default 1), never below one",
        "worker kill <PID>": "Stop one worker gracefully; it is replaced",
        "dirty add [N]": "No dirty arbiter: refused",
        "dirty remove [N]": "No dirty arbiter: refused",
        "reload": "Reload the workers, as HUP",
        "reopen": "Reopen the log files, as USR1",
        "shutdown [graceful|quick]": "Stop the server, as TERM or INT",
        "help": "This list",
    }})
}

/// A command line split as POSIX `shlex.split` does: quotes group, a backslash escapes
/// outside single quotes; errors in shlex's words.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("No closing quotation".to_owned()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => w.push(c),
                            Some(c) => w.extend(['\\', c]),
                            None => return Err("No closing quotation".to_owned()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("No closing quotation".to_owned()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("No escaped character".to_owned()),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Fake {
        workers: usize,
        signals: Vec<libc::c_int>,
    }

    impl Master for Fake {
        fn workers(&self) -> Vec<WorkerView> {
            let view = |pid, age| WorkerView {
                pid,
                age,
                booted: true,
                aborted: false,
                last_heartbeat: 0.5,
            };
            vec![view(20, 2), view(10, 1)]
        }
        fn stats(&self) -> Map<String, Value> {
            Map::new()
        }
        fn config(&self) -> Map<String, Value> {
            Map::new()
        }
        fn listeners(&self) -> Vec<(String, i32, &'static str)> {
            vec![("http://127.0.0.1:1".to_owned(), 3, "tcp")]
        }
        fn num_workers(&self) -> usize {
            self.workers
        }
        fn set_workers(&mut self, count: usize) {
            self.workers = count;
        }
        fn kill_worker(&mut self, pid: i32) -> bool {
            pid == 10
        }
        fn signal(&mut self, signal: libc::c_int) {
            self.signals.push(signal);
        }
    }

    fn ask(master: &mut Fake, command: &str, args: Value) -> Value {
        let frame = json!({"id": 7, "command": command, "args": args}).to_string();
        answer(master, frame.as_bytes()).expect("an answer")
    }

    #[test]
    fn workers_are_listed_oldest_first() {
        let reply = ask(&mut Fake::default(), "show workers", json!([]));
        assert_eq!(reply["status"], "ok");
        assert_eq!(reply["id"], 7);
        assert_eq!(reply["data"]["count"], 2);
        assert_eq!(reply["data"]["workers"][0]["pid"], 10);
    }

    #[test]
    fn worker_counts_move_and_never_drop_below_one() {
        let mut master = Fake { workers: 2, ..Fake::default() };
        let reply = ask(&mut master, "worker add", json!(["3"]));
        assert_eq!(reply["data"], json!({"added": 3, "previous": 2, "total": 5}));
        let reply = ask(&mut master, "worker remove 9", json!([]));
        assert_eq!(reply["data"], json!({"removed": 4, "previous": 5, "total": 1}));
        let reply = ask(&mut master, "worker add x", json!([]));
        assert_eq!(reply["error"], "Invalid argument: invalid literal for int() with base 10: 'x'");
        assert_eq!(ask(&mut master, "worker kill 10", json!([]))["data"]["success"], true);
        let reply = ask(&mut master, "worker kill", json!([11]));
        assert_eq!(reply["data"]["error"], "Worker 11 not found");
    }

    #[test]
    fn signals_and_errors_in_gunicorns_words() {
        let mut master = Fake::default();
        ask(&mut master, "reload", json!([]));
        ask(&mut master, "shutdown quick", json!([]));
        ask(&mut master, "SHUTDOWN", json!([]));
        assert_eq!(master.signals, vec![libc::SIGHUP, libc::SIGINT, libc::SIGTERM]);
        assert_eq!(ask(&mut master, "", json!([]))["error"], "Empty command");
        assert_eq!(
            ask(&mut master, "bogus", json!([]))["error"],
            "Invalid argument: Unknown command: bogus"
        );
        assert_eq!(
            ask(&mut master, "show \"x", json!([]))["error"],
            "Invalid argument: No closing quotation"
        );
        assert_eq!(ask(&mut master, "dirty add", json!([]))["data"]["success"], false);
    }

    #[test]
    fn frames_that_are_not_requests_get_no_answer() {
        let mut master = Fake::default();
        for frame in [&b"not json"[..], b"[1]", b"{\"command\": 5}", b"\xff"] {
            assert!(answer(&mut master, frame).is_none(), "{frame:?}");
        }
    }

    #[test]
    fn split_is_posix_shlex() {
        assert_eq!(split("  show   workers ").unwrap(), ["show", "workers"]);
        assert_eq!(split("a 'b c' \"d\\\"e\" f\\ g").unwrap(), ["a", "b c", "d\"e", "f g"]);
        assert_eq!(split("''").unwrap(), [""]);
        assert_eq!(split("a\\").unwrap_err(), "No escaped character");
    }
}
