//! What the master loop reacts to ([`Event`]: a signal, a worker's news, a file change)
//! and how it ends ([`Shutdown`]: asked for, or a [`Halt`] with gunicorn's reason and exit
//! code).

use std::fmt;
use std::path::PathBuf;

use crate::exit;
use crate::worker;

/// What wakes the master, as the loop sees it: a signal, a worker's news, a file change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Event {
    /// TERM: finish in-flight requests, then exit.
    Stop,
    /// INT (Ctrl-C): exit now.
    Interrupt,
    /// QUIT: exit now, as INT.
    Quit,
    /// HUP: re-read the settings and replace the workers with a new generation.
    Reload,
    /// USR2: start a new master from the current code, handing it the sockets.
    Reexec,
    /// TTIN: one worker more.
    Incr,
    /// TTOU: one worker fewer, never below one.
    Decr,
    /// USR1: reopen the log file here and in every worker.
    ReopenLogs,
    /// WINCH: stop the workers but keep the sockets (the old master after USR2).
    StopWorkers,
    /// CHLD: a child exited.
    ChildExited,
    /// Not a signal: a worker wrote [`worker::BOOTED_BYTE`] into the queue's pipe.
    WorkerBooted,
    /// Not a signal: `--reload` saw an app source file change, and the writes settled.
    SourceChanged(PathBuf),
}

/// The signals the master queues; the rest keep their default action.
pub(super) const HANDLED: [libc::c_int; 10] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGCHLD,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGWINCH,
];

impl Event {
    /// The event a byte of the signal pipe stands for.
    pub(super) fn from_signal(signal: libc::c_int) -> Option<Event> {
        match signal {
            libc::SIGTERM => Some(Event::Stop),
            libc::SIGINT => Some(Event::Interrupt),
            libc::SIGQUIT => Some(Event::Quit),
            libc::SIGHUP => Some(Event::Reload),
            libc::SIGUSR2 => Some(Event::Reexec),
            libc::SIGTTIN => Some(Event::Incr),
            libc::SIGTTOU => Some(Event::Decr),
            libc::SIGUSR1 => Some(Event::ReopenLogs),
            libc::SIGWINCH => Some(Event::StopWorkers),
            libc::SIGCHLD => Some(Event::ChildExited),
            s if s == libc::c_int::from(worker::BOOTED_BYTE) => Some(Event::WorkerBooted),
            _ => None,
        }
    }

    /// gunicorn's lower-case name, for `Handling signal: NAME`; `None` for what the log
    /// does not announce (CHLD, a worker's news, a file change).
    pub(super) fn signal_name(&self) -> Option<&'static str> {
        match self {
            Event::Stop => Some("term"),
            Event::Interrupt => Some("int"),
            Event::Quit => Some("quit"),
            Event::Reload => Some("hup"),
            Event::Reexec => Some("usr2"),
            Event::Incr => Some("ttin"),
            Event::Decr => Some("ttou"),
            Event::ReopenLogs => Some("usr1"),
            Event::StopWorkers => Some("winch"),
            Event::ChildExited | Event::WorkerBooted | Event::SourceChanged(_) => None,
        }
    }
}

/// Why the master stops on its own: gunicorn's `HaltServer`, its reason and exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Halt {
    /// The workers cannot import the app, and none serves.
    AppLoad,
    /// The workers cannot boot (signals, sockets, `--user`), and none serves.
    WorkerBoot,
    /// The master cannot make a worker (a pipe, a heartbeat file, fork); the cause was
    /// logged where it happened.
    Unable(&'static str),
}

impl Halt {
    pub(super) fn exit_code(self) -> i32 {
        match self {
            Halt::AppLoad => exit::APP_LOAD_ERROR,
            Halt::WorkerBoot => exit::WORKER_BOOT_ERROR,
            Halt::Unable(_) => exit::FAILURE,
        }
    }
}

/// gunicorn's `Reason:` lines.
impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Halt::AppLoad => f.write_str("App failed to load."),
            Halt::WorkerBoot => f.write_str("Worker failed to boot."),
            Halt::Unable(what) => write!(f, "Unable to {what}."),
        }
    }
}

/// Why the master loop ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shutdown {
    /// TERM (graceful), INT or QUIT (not): the operator asked; exit 0.
    Asked {
        /// Whether workers finish the requests in hand.
        graceful: bool,
    },
    /// The master stops on its own.
    Halt(Halt),
}

impl From<Halt> for Shutdown {
    fn from(halt: Halt) -> Shutdown {
        Shutdown::Halt(halt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every signal the master queues has an event, and each is named as gunicorn logs it.
    #[test]
    fn signals_map_to_events_and_names() {
        let rows = [
            (libc::SIGTERM, Event::Stop, Some("term")),
            (libc::SIGINT, Event::Interrupt, Some("int")),
            (libc::SIGQUIT, Event::Quit, Some("quit")),
            (libc::SIGHUP, Event::Reload, Some("hup")),
            (libc::SIGUSR2, Event::Reexec, Some("usr2")),
            (libc::SIGTTIN, Event::Incr, Some("ttin")),
            (libc::SIGTTOU, Event::Decr, Some("ttou")),
            (libc::SIGUSR1, Event::ReopenLogs, Some("usr1")),
            (libc::SIGWINCH, Event::StopWorkers, Some("winch")),
            (libc::SIGCHLD, Event::ChildExited, None),
            (libc::c_int::from(worker::BOOTED_BYTE), Event::WorkerBooted, None),
        ];
        assert_eq!(rows.len(), HANDLED.len() + 1, "one row per handled signal, and booted");
        for (signal, event, name) in rows {
            assert_eq!(Event::from_signal(signal), Some(event.clone()), "signal {signal}");
            assert_eq!(event.signal_name(), name, "{event:?}");
        }
        assert!(HANDLED.iter().all(|&s| Event::from_signal(s).is_some()));
        assert_eq!(Event::from_signal(libc::SIGPIPE), None);
    }

    /// gunicorn's `Reason:` lines and `HaltServer` exit codes.
    #[test]
    fn halts_have_gunicorns_reasons_and_codes() {
        let rows = [
            (Halt::AppLoad, "App failed to load.", 4),
            (Halt::WorkerBoot, "Worker failed to boot.", 3),
            (Halt::Unable("fork a worker"), "Unable to fork a worker.", 1),
        ];
        for (halt, reason, code) in rows {
            assert_eq!(halt.to_string(), reason);
            assert_eq!(halt.exit_code(), code, "{halt:?}");
        }
    }
}
