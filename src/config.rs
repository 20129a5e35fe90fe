//! Settings: the command line (gunicorn's names and defaults) parsed into [`Config`].
//!
//! Two steps, as in ripgrep: flags become raw strings first ([`parse_args`]), then
//! [`Config::from_raw`] validates them into the values the program runs on. Every
//! setting is described once, in [`OPTIONS`]; `--help` is generated from it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::http::Limits;
use crate::listener::BindSpec;
use crate::log::LogLevel;

/// A bad command line: one line for the user, exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

macro_rules! bail {
    ($($arg:tt)*) => { return Err(Error(format!($($arg)*))) };
}

/// gunicorn's hard caps on the request limits (message.py).
const MAX_REQUEST_LINE: usize = 8190;
const MAX_HEADERS: usize = 32768;

/// What a flag is called, whether it takes a value, and what `--help` says of it.
pub struct OptionSpec {
    pub name: &'static str,
    pub short: Option<char>,
    pub long: &'static [&'static str],
    pub metavar: Option<&'static str>,
    pub help: &'static str,
}

/// Every flag ferricorn has today. Only flags that work are listed.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "bind",
        short: Some('b'),
        long: &["bind"],
        metavar: Some("ADDRESS"),
        help: "Socket to bind: HOST, HOST:PORT, [::1]:PORT, unix:PATH or fd://N. Repeatable. \
               [127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set]",
    },
    OptionSpec {
        name: "workers",
        short: Some('w'),
        long: &["workers"],
        metavar: Some("INT"),
        help: "Number of worker processes. [1, or $WEB_CONCURRENCY]",
    },
    OptionSpec {
        name: "worker_class",
        short: Some('k'),
        long: &["worker-class"],
        metavar: Some("STRING"),
        help: "Worker type: sync, or async (gthread is accepted as async). [sync]",
    },
    OptionSpec {
        name: "threads",
        short: None,
        long: &["threads"],
        metavar: Some("INT"),
        help: "async worker: Python threads that run the app; 1 runs it on the event loop. [1]",
    },
    OptionSpec {
        name: "worker_connections",
        short: None,
        long: &["worker-connections"],
        metavar: Some("INT"),
        help: "async worker: most open connections per worker. [1000]",
    },
    OptionSpec {
        name: "keepalive",
        short: None,
        long: &["keep-alive"],
        metavar: Some("INT"),
        help: "async worker: seconds an idle keep-alive connection stays open. [2]",
    },
    OptionSpec {
        name: "backlog",
        short: None,
        long: &["backlog"],
        metavar: Some("INT"),
        help: "Maximum number of pending connections. [2048]",
    },
    OptionSpec {
        name: "chdir",
        short: None,
        long: &["chdir"],
        metavar: Some("DIR"),
        help: "Change to this directory before loading the app.",
    },
    OptionSpec {
        name: "pythonpath",
        short: None,
        long: &["pythonpath"],
        metavar: Some("PATHS"),
        help: "Comma-separated directories to add to the Python path.",
    },
    OptionSpec {
        name: "env",
        short: Some('e'),
        long: &["env"],
        metavar: Some("KEY=VALUE"),
        help: "Set an environment variable in the workers. Repeatable.",
    },
    OptionSpec {
        name: "graceful_timeout",
        short: None,
        long: &["graceful-timeout"],
        metavar: Some("INT"),
        help: "Seconds workers get to finish requests after TERM before they are killed. [30]",
    },
    OptionSpec {
        name: "limit_request_line",
        short: None,
        long: &["limit-request-line"],
        metavar: Some("INT"),
        help: "Maximum request line size in bytes, 0 for the cap of 8190. [4094]",
    },
    OptionSpec {
        name: "limit_request_fields",
        short: None,
        long: &["limit-request-fields"],
        metavar: Some("INT"),
        help: "Maximum number of request header fields. [100]",
    },
    OptionSpec {
        name: "limit_request_field_size",
        short: None,
        long: &["limit-request-field_size", "limit-request-field-size"],
        metavar: Some("INT"),
        help: "Maximum size of one request header line in bytes. [8190]",
    },
    OptionSpec {
        name: "loglevel",
        short: None,
        long: &["log-level"],
        metavar: Some("LEVEL"),
        help: "debug, info, warning, error or critical. [info]",
    },
    OptionSpec {
        name: "version",
        short: Some('v'),
        long: &["version"],
        metavar: None,
        help: "Show the version and exit.",
    },
    OptionSpec {
        name: "help",
        short: Some('h'),
        long: &["help"],
        metavar: None,
        help: "Show this help and exit.",
    },
];

/// The command line as given: (setting name, value) pairs in order, and the app.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RawArgs {
    pub values: Vec<(&'static str, String)>,
    pub app: Option<String>,
}

impl RawArgs {
    fn last(&self, name: &str) -> Option<&str> {
        self.values.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.values.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.values.iter().any(|(n, _)| *n == name)
    }
}

/// `--opt value`, `--opt=value`, `-o value`, `-ovalue`; `--` ends the options.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<RawArgs, Error> {
    let mut raw = RawArgs::default();
    let mut rest = args.iter().map(AsRef::as_ref);
    while let Some(arg) = rest.next() {
        let (spec, inline) = if let Some(long) = arg.strip_prefix("--") {
            if long.is_empty() {
                raw.app = rest.next().map(str::to_owned).or(raw.app.take());
                continue;
            }
            let (flag, inline) = long.split_once('=').map_or((long, None), |(f, v)| (f, Some(v)));
            match OPTIONS.iter().find(|o| o.long.contains(&flag)) {
                Some(spec) => (spec, inline.map(str::to_owned)),
                None => bail!("unrecognized option: --{flag}"),
            }
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let c = short.chars().next().unwrap_or_default();
            let inline = Some(&short[c.len_utf8()..]).filter(|s| !s.is_empty());
            match OPTIONS.iter().find(|o| o.short == Some(c)) {
                Some(spec) => (spec, inline.map(str::to_owned)),
                None => bail!("unrecognized option: -{c}"),
            }
        } else {
            if raw.app.is_some() {
                bail!("unexpected argument: {arg} (only one APP_MODULE)");
            }
            raw.app = Some(arg.to_owned());
            continue;
        };
        let value = match (spec.metavar, inline) {
            (None, None) => String::new(),
            (None, Some(_)) => bail!("option --{} takes no value", spec.long[0]),
            (Some(_), Some(v)) => v,
            (Some(metavar), None) => match rest.next() {
                Some(v) => v.to_owned(),
                None => bail!("option --{} needs a value ({metavar})", spec.long[0]),
            },
        };
        raw.values.push((spec.name, value));
    }
    Ok(raw)
}

/// The worker types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerClass {
    /// gunicorn's sync: one connection at a time, `Connection: close`.
    Sync,
    /// One event loop per process: keep-alive, pipelining, slow clients buffered.
    Async,
}

impl WorkerClass {
    pub fn name(self) -> &'static str {
        match self {
            WorkerClass::Sync => "sync",
            WorkerClass::Async => "async",
        }
    }
}

/// Validated settings, what the master and workers run on.
#[derive(Debug, Clone)]
pub struct Config {
    /// APP_MODULE, e.g. `myproject.wsgi` or `app:create_app()`.
    pub app: String,
    pub binds: Vec<BindSpec>,
    pub workers: usize,
    pub worker_class: WorkerClass,
    /// Python threads running the app in an async worker; 1: on the loop thread.
    pub threads: usize,
    /// Most connections one async worker holds; beyond, it stops accepting.
    pub worker_connections: usize,
    /// How long an idle keep-alive connection is kept (gunicorn's `keepalive`).
    pub keepalive: Duration,
    pub backlog: i32,
    pub chdir: Option<PathBuf>,
    /// Directories put first on `sys.path`, after the working directory.
    pub pythonpath: Vec<String>,
    /// `-e KEY=VALUE` pairs, set in the master's environment before any worker forks.
    pub env: Vec<(String, String)>,
    pub graceful_timeout: Duration,
    pub limits: Limits,
    pub log_level: LogLevel,
}

/// Environment variables gunicorn reads for defaults.
pub struct EnvDefaults {
    pub port: Option<String>,
    pub web_concurrency: Option<String>,
}

impl EnvDefaults {
    pub fn from_process() -> Self {
        EnvDefaults {
            port: std::env::var("PORT").ok(),
            web_concurrency: std::env::var("WEB_CONCURRENCY").ok(),
        }
    }
}

impl Config {
    pub fn from_raw(raw: &RawArgs, env: &EnvDefaults) -> Result<Config, Error> {
        let Some(app) = raw.app.clone() else {
            bail!("APP_MODULE is required, e.g. `ferricorn myproject.wsgi` (see --help)");
        };
        let mut binds = raw.all("bind").map(BindSpec::parse).collect::<Result<Vec<_>, _>>()?;
        if binds.is_empty() {
            let default = match &env.port {
                Some(port) => format!("0.0.0.0:{port}"),
                None => "127.0.0.1:8000".to_owned(),
            };
            binds.push(BindSpec::parse(&default).map_err(|e| Error(format!("$PORT: {e}")))?);
        }
        let workers = match (raw.last("workers"), &env.web_concurrency) {
            (Some(w), _) => positive("--workers", w)?,
            (None, Some(w)) => positive("$WEB_CONCURRENCY", w)?,
            (None, None) => 1,
        };
        let worker_class = match raw.last("worker_class").unwrap_or("sync") {
            "sync" => WorkerClass::Sync,
            "async" | "gthread" => WorkerClass::Async,
            other @ ("gevent" | "eventlet" | "tornado") => {
                bail!("--worker-class {other}: not supported; use `-k async`, ferricorn's event-loop worker")
            }
            other => bail!("--worker-class {other:?} is not available (available: sync, async)"),
        };
        let limits = Limits {
            request_line: match int(raw, "limit_request_line", 4094)? {
                0 => MAX_REQUEST_LINE,
                n => n.min(MAX_REQUEST_LINE),
            },
            fields: match int(raw, "limit_request_fields", 100)? {
                0 => MAX_HEADERS,
                n => n.min(MAX_HEADERS),
            },
            field_size: int(raw, "limit_request_field_size", 8190)?,
        };
        let log_level = match raw.last("loglevel") {
            None => LogLevel::Info,
            Some(l) => match LogLevel::parse(l) {
                Some(level) => level,
                None => {
                    bail!("--log-level {l:?}: expected debug, info, warning, error or critical")
                }
            },
        };
        let env_pairs = raw.all("env").map(parse_env).collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            app,
            binds,
            workers,
            worker_class,
            threads: match raw.last("threads") {
                Some(t) => positive("--threads", t)?,
                None => 1,
            },
            worker_connections: match raw.last("worker_connections") {
                Some(c) => positive("--worker-connections", c)?,
                None => 1000,
            },
            keepalive: Duration::from_secs(int(raw, "keepalive", 2)? as u64),
            backlog: i32::try_from(int(raw, "backlog", 2048)?.max(1)).unwrap_or(i32::MAX),
            chdir: raw.last("chdir").map(PathBuf::from),
            pythonpath: raw
                .all("pythonpath")
                .flat_map(|p| p.split(','))
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            env: env_pairs,
            graceful_timeout: Duration::from_secs(int(raw, "graceful_timeout", 30)? as u64),
            limits,
            log_level,
        })
    }

    /// Whether more than one worker process serves (`wsgi.multiprocess`).
    pub fn multiprocess(&self) -> bool {
        self.workers > 1
    }

    /// Whether the app may be called from several threads at once (`wsgi.multithread`).
    pub fn multithread(&self) -> bool {
        self.worker_class == WorkerClass::Async && self.threads > 1
    }
}

fn int(raw: &RawArgs, name: &str, default: usize) -> Result<usize, Error> {
    match raw.last(name) {
        None => Ok(default),
        Some(v) => v.trim().parse::<usize>().map_err(|_| {
            let flag = OPTIONS.iter().find(|o| o.name == name).map_or(name, |o| o.long[0]);
            Error(format!("--{flag} {v:?}: expected a non-negative integer"))
        }),
    }
}

fn positive(what: &str, v: &str) -> Result<usize, Error> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{what} {v:?}: expected a positive integer"),
    }
}

fn parse_env(pair: &str) -> Result<(String, String), Error> {
    match pair.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("--env {pair:?}: expected KEY=VALUE"),
    }
}

/// `--help`, generated from [`OPTIONS`].
pub fn help_text() -> String {
    let mut out = String::from(
        "usage: ferricorn [OPTIONS] APP_MODULE\n\n\
         A preforking WSGI HTTP server, written in Rust, with gunicorn's command line.\n\
         APP_MODULE is `module`, `module:name` or `module:factory(literal args)`.\n\noptions:\n",
    );
    for o in OPTIONS {
        let short = o.short.map(|c| format!("-{c}, ")).unwrap_or_default();
        let long = o.long.iter().map(|l| format!("--{l}")).collect::<Vec<_>>().join(", ");
        let left =
            format!("  {short}{long}{}", o.metavar.map(|m| format!(" {m}")).unwrap_or_default());
        out.push_str(&format!("{left:<44} {}\n", o.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, Error> {
        let env = EnvDefaults { port: None, web_concurrency: None };
        Config::from_raw(&parse_args(args)?, &env)
    }

    #[test]
    fn flag_forms() {
        let c = config(&["-w", "3", "--bind=127.0.0.1:9", "-b127.0.0.1:10", "app:x"]).unwrap();
        assert_eq!((c.workers, c.binds.len(), c.app.as_str()), (3, 2, "app:x"));
        let c = config(&["--limit-request-field_size", "10", "app"]).unwrap();
        assert_eq!(c.limits.field_size, 10);
        let c =
            config(&["--limit-request-field-size=11", "--limit-request-line", "0", "a"]).unwrap();
        assert_eq!((c.limits.field_size, c.limits.request_line), (11, 8190));
    }

    #[test]
    fn bad_command_lines() {
        for args in [
            &["--nope", "app"][..],
            &["-w", "abc", "app"],
            &["-w", "0", "app"],
            &["--workers"],
            &[],
            &["a", "b"],
            &["-k", "gevent", "app"],
            &["-k", "nope", "app"],
            &["--threads", "0", "app"],
            &["--keep-alive", "-1", "app"],
            &["--log-level", "loud", "app"],
            &["-e", "NOEQUALS", "app"],
            &["--bind", "host:port", "app"],
        ] {
            assert!(config(args).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn env_defaults() {
        let env = EnvDefaults { port: Some("5000".into()), web_concurrency: Some("3".into()) };
        let c = Config::from_raw(&parse_args(&["app"]).unwrap(), &env).unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(c.binds, vec![BindSpec::parse("0.0.0.0:5000").unwrap()]);
    }
}
