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
    /// One line for `--help`.
    pub help: &'static str,
    /// Whether gunicorn has this setting under `name` (its config-file name too).
    pub gunicorn: bool,
    /// The default, as the settings reference shows it.
    pub default: &'static str,
    /// The settings reference's description (Markdown).
    pub doc: &'static str,
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
        gunicorn: true,
        default: "`127.0.0.1:8000`, or `0.0.0.0:$PORT` when `PORT` is set",
        doc: "Socket to listen on: `HOST`, `HOST:PORT`, `[IPv6]:PORT`, `unix:PATH` or `fd://N`. Repeat to listen on several. A unix socket file is created (a stale one replaced) and removed on exit.",
    },
    OptionSpec {
        name: "workers",
        short: Some('w'),
        long: &["workers"],
        metavar: Some("INT"),
        help: "Number of worker processes. [1, or $WEB_CONCURRENCY]",
        gunicorn: true,
        default: "1, or `$WEB_CONCURRENCY`",
        doc: "Number of worker processes (positive).",
    },
    OptionSpec {
        name: "worker_class",
        short: Some('k'),
        long: &["worker-class"],
        metavar: Some("STRING"),
        help: "Worker type: sync, or async (gthread is accepted as async). [sync]",
        gunicorn: true,
        default: "`sync`",
        doc: "Worker type: `sync` (one request per connection, like gunicorn's) or `async` (an event loop with keep-alive and pipelining; `gthread` is accepted as `async`). `gevent`, `eventlet` and `tornado` are refused with a pointer to `async`.",
    },
    OptionSpec {
        name: "threads",
        short: None,
        long: &["threads"],
        metavar: Some("INT"),
        help: "async worker: Python threads that run the app; 1 runs it on the event loop. [1]",
        gunicorn: true,
        default: "1",
        doc: "`async` only: with 1 the app runs on the event loop thread; with N > 1 on a pool of N Python threads (`wsgi.multithread` is then true).",
    },
    OptionSpec {
        name: "worker_connections",
        short: None,
        long: &["worker-connections"],
        metavar: Some("INT"),
        help: "async worker: most open connections per worker. [1000]",
        gunicorn: true,
        default: "1000",
        doc: "`async` only: most open connections per worker; beyond it the worker stops accepting and the kernel backlog holds new clients.",
    },
    OptionSpec {
        name: "keepalive",
        short: None,
        long: &["keep-alive"],
        metavar: Some("INT"),
        help: "async worker: seconds an idle keep-alive connection stays open. [2]",
        gunicorn: true,
        default: "2",
        doc: "`async` only: seconds an idle keep-alive connection is kept open; 0 disables keep-alive.",
    },
    OptionSpec {
        name: "backlog",
        short: None,
        long: &["backlog"],
        metavar: Some("INT"),
        help: "Maximum number of pending connections. [2048]",
        gunicorn: true,
        default: "2048",
        doc: "Pending-connection queue length passed to `listen(2)`.",
    },
    OptionSpec {
        name: "chdir",
        short: None,
        long: &["chdir"],
        metavar: Some("DIR"),
        help: "Change to this directory before loading the app.",
        gunicorn: true,
        default: "the current directory",
        doc: "Directory to change to before loading the app.",
    },
    OptionSpec {
        name: "pythonpath",
        short: None,
        long: &["pythonpath"],
        metavar: Some("PATHS"),
        help: "Comma-separated directories to add to the Python path.",
        gunicorn: true,
        default: "none",
        doc: "Comma-separated directories put at the front of `sys.path`.",
    },
    OptionSpec {
        name: "raw_env",
        short: Some('e'),
        long: &["env"],
        metavar: Some("KEY=VALUE"),
        help: "Set an environment variable in the workers. Repeatable.",
        gunicorn: true,
        default: "none",
        doc: "Environment variable set for the app (repeatable).",
    },
    OptionSpec {
        name: "graceful_timeout",
        short: None,
        long: &["graceful-timeout"],
        metavar: Some("INT"),
        help: "Seconds workers get to finish requests after TERM before they are killed. [30]",
        gunicorn: true,
        default: "30",
        doc: "Seconds workers get after TERM to finish in-flight requests before they are killed.",
    },
    OptionSpec {
        name: "limit_request_line",
        short: None,
        long: &["limit-request-line"],
        metavar: Some("INT"),
        help: "Maximum request line size in bytes, 0 for the cap of 8190. [4094]",
        gunicorn: true,
        default: "4094",
        doc: "Longest request line in bytes; 0 or anything above 8190 means 8190. Longer lines get 414.",
    },
    OptionSpec {
        name: "limit_request_fields",
        short: None,
        long: &["limit-request-fields"],
        metavar: Some("INT"),
        help: "Maximum number of request header fields. [100]",
        gunicorn: true,
        default: "100",
        doc: "Most header fields per request; 0 or anything above 32768 means 32768. More get 431.",
    },
    OptionSpec {
        name: "limit_request_field_size",
        short: None,
        long: &["limit-request-field_size", "limit-request-field-size"],
        metavar: Some("INT"),
        help: "Maximum size of one request header line in bytes. [8190]",
        gunicorn: true,
        default: "8190",
        doc: "Longest header line in bytes; 0 means 8190. Longer get 431.",
    },
    OptionSpec {
        name: "timeout",
        short: Some('t'),
        long: &["timeout"],
        metavar: Some("INT"),
        help: "Seconds a worker may stay silent (stuck in a request) before it is killed \
               and replaced; 0 disables. [30]",
        gunicorn: true,
        default: "30",
        doc: "Seconds a worker may go without a heartbeat before the master kills it (SIGABRT, which raises `WorkerTimeout` in the app so the client gets a 500, then SIGKILL a second later) and starts another. The log line names the request it was stuck in. 0 disables. Workers beat from their loop, so only a request that holds the loop (any `sync` request, an `async` request with `--threads 1`) can time out.",
    },
    OptionSpec {
        name: "max_requests",
        short: None,
        long: &["max-requests"],
        metavar: Some("INT"),
        help: "Requests a worker serves before it is replaced; 0 disables. [0]",
        gunicorn: true,
        default: "0",
        doc: "A worker that has served this many requests finishes the ones in hand and is replaced. 0 disables.",
    },
    OptionSpec {
        name: "max_requests_jitter",
        short: None,
        long: &["max-requests-jitter"],
        metavar: Some("INT"),
        help: "Random extra requests (0 to INT) added to --max-requests per worker. [0]",
        gunicorn: true,
        default: "0",
        doc: "Each worker adds a random 0 to INT to `--max-requests`, so workers do not restart together.",
    },
    OptionSpec {
        name: "max_worker_memory",
        short: None,
        long: &["max-worker-memory"],
        metavar: Some("MB"),
        help: "A worker whose RSS passes MB MiB finishes its request and is replaced; \
               0 disables. [0]",
        gunicorn: false,
        default: "0",
        doc: "The master reads each worker's RSS every second; a worker over MB MiB gets a graceful TERM and a replacement starts at once. 0 disables.",
    },
    OptionSpec {
        name: "preload_app",
        short: None,
        long: &["preload"],
        metavar: None,
        help: "Load the app in the master before forking workers.",
        gunicorn: true,
        default: "off",
        doc: "Import the app in the master before forking, so workers share its memory. HUP then restarts workers from the same code (a warning says so); use USR2 to load new code.",
    },
    OptionSpec {
        name: "reload",
        short: None,
        long: &["reload"],
        metavar: None,
        help: "Restart workers when the app's Python source files change (development).",
        gunicorn: true,
        default: "off",
        doc: "Development: the master watches the source files of the app's modules (reported by the workers) with inotify and reloads the workers, as HUP does, when one changes. A file that no longer imports leaves the last good workers serving. Refused with `--preload`.",
    },
    OptionSpec {
        name: "reload_extra_files",
        short: None,
        long: &["reload-extra-file"],
        metavar: Some("FILE"),
        help: "Another file whose change triggers --reload. Repeatable.",
        gunicorn: true,
        default: "none",
        doc: "Another file whose change triggers `--reload` (repeatable).",
    },
    OptionSpec {
        name: "pidfile",
        short: Some('p'),
        long: &["pid"],
        metavar: Some("FILE"),
        help: "Write the master's pid to FILE.",
        gunicorn: true,
        default: "none",
        doc: "Write the master's pid to FILE (removed on exit). A master started by USR2 writes `FILE.2` and renames it to `FILE` when the old master exits. Refused if FILE names another running process.",
    },
    OptionSpec {
        name: "daemon",
        short: Some('D'),
        long: &["daemon"],
        metavar: None,
        help: "Detach from the terminal and run in the background.",
        gunicorn: true,
        default: "off",
        doc: "Detach: fork twice, new session, stdin/stdout/stderr to `/dev/null`. Use `--error-logfile` to keep the log.",
    },
    OptionSpec {
        name: "user",
        short: Some('u'),
        long: &["user"],
        metavar: Some("USER"),
        help: "Run workers as this user (name or uid).",
        gunicorn: true,
        default: "the current user",
        doc: "Workers switch to this user (name or uid) after fork; the master keeps its identity to bind and supervise.",
    },
    OptionSpec {
        name: "group",
        short: Some('g'),
        long: &["group"],
        metavar: Some("GROUP"),
        help: "Run workers as this group (name or gid).",
        gunicorn: true,
        default: "the user's group",
        doc: "Workers switch to this group (name or gid).",
    },
    OptionSpec {
        name: "initgroups",
        short: None,
        long: &["initgroups"],
        metavar: None,
        help: "Give workers the supplementary groups of --user.",
        gunicorn: true,
        default: "off",
        doc: "Workers also get the supplementary groups of `--user`.",
    },
    OptionSpec {
        name: "umask",
        short: Some('m'),
        long: &["umask"],
        metavar: Some("INT"),
        help: "File mode creation mask of the server processes (0o22, 022 or 18).",
        gunicorn: true,
        default: "unchanged",
        doc: "File mode creation mask of the master and workers, set before binding (so it applies to unix socket files): `0o22`, `022` or `18`.",
    },
    OptionSpec {
        name: "worker_tmp_dir",
        short: None,
        long: &["worker-tmp-dir"],
        metavar: Some("DIR"),
        help: "Directory for the workers' heartbeat files. [shared memory]",
        gunicorn: true,
        default: "shared memory",
        doc: "Where the workers' heartbeat pages live, as unlinked files. By default they are anonymous shared memory, which never touches a disk.",
    },
    OptionSpec {
        name: "reuse_port",
        short: None,
        long: &["reuse-port"],
        metavar: None,
        help: "Each worker also listens on its own SO_REUSEPORT socket; the kernel balances.",
        gunicorn: true,
        default: "off",
        doc: "Sockets get SO_REUSEPORT and each worker also listens on its own socket at the same TCP address, so the kernel spreads connections over the workers. See [deploy.md](deploy.md) for the caveat on reloads.",
    },
    OptionSpec {
        name: "proc_name",
        short: Some('n'),
        long: &["name"],
        metavar: Some("STRING"),
        help: "Name in the process titles `ferricorn: master [NAME]`. [APP_MODULE]",
        gunicorn: true,
        default: "`APP_MODULE`",
        doc: "Process titles become `ferricorn: master [STRING]` and `ferricorn: worker [STRING]` (cut to the length of the original command line).",
    },
    OptionSpec {
        name: "accesslog",
        short: None,
        long: &["access-logfile"],
        metavar: Some("FILE"),
        help: "Access log file; - is stdout. Off unless given. USR1 reopens it.",
        gunicorn: true,
        default: "none",
        doc: "The access log, one line per response; `-` is stdout. Off unless given. USR1 reopens it.",
    },
    OptionSpec {
        name: "access_log_format",
        short: None,
        long: &["access-logformat"],
        metavar: Some("STRING"),
        help: "Access log line, in gunicorn's atoms: %(h)s %(r)s %(s)s {header}i ...",
        gunicorn: true,
        default: "`%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"`",
        doc: "The access log line, in gunicorn's atoms: `h` remote address, `l` `-`, `u` Basic-auth user, `t` time, `r` request line, `s` status, `m` method, `U` path, `q` query, `H` protocol, `b`/`B` body bytes, `f` referer, `a` user agent, `T`/`M`/`D`/`L` request time in s/ms/µs/decimal s, `p` `<pid>`, `{header}i`, `{header}o`, `{variable}e`. Unknown atoms print `-`; `\"` in values is escaped.",
    },
    OptionSpec {
        name: "errorlog",
        short: None,
        long: &["error-logfile", "log-file"],
        metavar: Some("FILE"),
        help: "Error log file; - is stderr. USR1 reopens it. [-]",
        gunicorn: true,
        default: "`-`",
        doc: "The error log; `-` is stderr. Opened in append mode; USR1 reopens it in the master and every worker.",
    },
    OptionSpec {
        name: "loglevel",
        short: None,
        long: &["log-level"],
        metavar: Some("LEVEL"),
        help: "debug, info, warning, error or critical. [info]",
        gunicorn: true,
        default: "`info`",
        doc: "`debug`, `info`, `warning`, `error` or `critical`.",
    },
    OptionSpec {
        name: "version",
        short: Some('v'),
        long: &["version"],
        metavar: None,
        help: "Show the version and exit.",
        gunicorn: true,
        default: "",
        doc: "Print `ferricorn (version X)` and exit.",
    },
    OptionSpec {
        name: "help",
        short: Some('h'),
        long: &["help"],
        metavar: None,
        help: "Show this help and exit.",
        gunicorn: true,
        default: "",
        doc: "Print the options and exit.",
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
    /// How long a worker may go without a heartbeat; `None`: never killed for silence.
    pub timeout: Option<Duration>,
    /// Requests before a worker is recycled (0: never), plus up to `jitter` more.
    pub max_requests: u64,
    pub max_requests_jitter: u64,
    /// RSS in bytes past which a worker is recycled.
    pub max_worker_memory: Option<u64>,
    /// Import the app in the master, so workers share its memory (and HUP keeps its code).
    pub preload: bool,
    /// Watch the app's source files and reload on change.
    pub reload: bool,
    pub reload_extra_files: Vec<PathBuf>,
    pub pidfile: Option<PathBuf>,
    pub daemon: bool,
    /// The identity workers switch to after fork; the master keeps its own.
    pub user: Option<User>,
    pub group: Option<libc::gid_t>,
    pub initgroups: bool,
    pub umask: Option<libc::mode_t>,
    /// Where heartbeat files live; `None`: anonymous shared memory.
    pub worker_tmp_dir: Option<PathBuf>,
    pub reuse_port: bool,
    /// NAME in the process titles.
    pub proc_name: String,
    /// `None`: stderr.
    pub errorlog: Option<PathBuf>,
    /// `None`: no access log; `-`: stdout.
    pub accesslog: Option<PathBuf>,
    pub access_log_format: String,
}

/// `--user`, resolved when the command line is read so a typo fails at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: libc::uid_t,
    /// For `--initgroups`, and the group workers get when `--group` is not given.
    pub name: String,
    pub gid: libc::gid_t,
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
        let env_pairs = raw.all("raw_env").map(parse_env).collect::<Result<Vec<_>, _>>()?;
        let preload = raw.has("preload_app");
        let reload = raw.has("reload");
        if preload && reload {
            bail!("--reload cannot be used with --preload: the master would hold the old code");
        }
        let user = raw.last("user").map(parse_user).transpose()?;
        Ok(Config {
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
            timeout: match int(raw, "timeout", 30)? {
                0 => None,
                n => Some(Duration::from_secs(n as u64)),
            },
            max_requests: int(raw, "max_requests", 0)? as u64,
            max_requests_jitter: int(raw, "max_requests_jitter", 0)? as u64,
            max_worker_memory: match int(raw, "max_worker_memory", 0)? as u64 {
                0 => None,
                mib => Some(mib.saturating_mul(1024 * 1024)),
            },
            preload,
            reload,
            reload_extra_files: raw.all("reload_extra_files").map(PathBuf::from).collect(),
            pidfile: raw.last("pidfile").map(PathBuf::from),
            daemon: raw.has("daemon"),
            group: match raw.last("group") {
                Some(g) => Some(parse_group(g)?),
                None => user.as_ref().map(|u| u.gid),
            },
            user,
            initgroups: raw.has("initgroups"),
            umask: raw.last("umask").map(parse_umask).transpose()?,
            worker_tmp_dir: raw.last("worker_tmp_dir").map(PathBuf::from),
            reuse_port: raw.has("reuse_port"),
            proc_name: raw.last("proc_name").unwrap_or(&app).to_owned(),
            errorlog: raw.last("errorlog").filter(|p| *p != "-").map(PathBuf::from),
            accesslog: raw.last("accesslog").map(PathBuf::from),
            access_log_format: raw
                .last("access_log_format")
                .unwrap_or(crate::wsgi::access::DEFAULT_FORMAT)
                .to_owned(),
            app,
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

/// A user name or uid, as gunicorn's `--user`.
fn parse_user(v: &str) -> Result<User, Error> {
    let found = match v.parse::<libc::uid_t>() {
        Ok(uid) => nix::unistd::User::from_uid(uid.into()),
        Err(_) => nix::unistd::User::from_name(v),
    };
    match found {
        Ok(Some(u)) => Ok(User { uid: u.uid.as_raw(), name: u.name, gid: u.gid.as_raw() }),
        Ok(None) | Err(_) => match v.parse::<libc::uid_t>() {
            // A bare uid need not be in the password database.
            Ok(uid) => Ok(User { uid, name: String::new(), gid: libc::gid_t::MAX }),
            Err(_) => bail!("--user {v:?}: no such user"),
        },
    }
}

fn parse_group(v: &str) -> Result<libc::gid_t, Error> {
    if let Ok(gid) = v.parse::<libc::gid_t>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(v) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => bail!("--group {v:?}: no such group"),
    }
}

/// gunicorn reads the umask with `int(value, 0)`; a leading 0 alone also means octal here,
/// since `077` is what people write.
fn parse_umask(v: &str) -> Result<libc::mode_t, Error> {
    let t = v.trim();
    let parsed = if let Some(oct) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
        u32::from_str_radix(oct, 8)
    } else if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16)
    } else if t.len() > 1 && t.starts_with('0') {
        u32::from_str_radix(&t[1..], 8)
    } else {
        t.parse::<u32>()
    };
    match parsed {
        Ok(mask) if mask <= 0o777 => Ok(mask as libc::mode_t),
        _ => bail!("--umask {v:?}: expected a mask from 0 to 0o777, like 0o22 or 077"),
    }
}

fn parse_env(pair: &str) -> Result<(String, String), Error> {
    match pair.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("--env {pair:?}: expected KEY=VALUE"),
    }
}

/// The command line (without the program name) read into settings: for HUP, which reads
/// it again.
pub fn load<S: AsRef<str>>(args: &[S]) -> Result<Config, Error> {
    Config::from_raw(&parse_args(args)?, &EnvDefaults::from_process())
}

/// The settings table of `docs/settings.md`, generated from [`OPTIONS`] (`make docs`; a
/// test fails when the page drifts from the code).
pub fn settings_markdown() -> String {
    let mut out =
        String::from("| flag | gunicorn setting | default | meaning |\n|---|---|---|---|\n");
    for o in OPTIONS {
        let arg = o.metavar.map(|m| format!(" {m}")).unwrap_or_default();
        let mut flags: Vec<String> = o.short.map(|c| format!("`-{c}{arg}`")).into_iter().collect();
        flags.extend(o.long.iter().map(|l| format!("`--{l}{arg}`")));
        let setting = if o.gunicorn { format!("`{}`", o.name) } else { "(none)".to_owned() };
        out.push_str(&format!(
            "| {} | {setting} | {} | {} |\n",
            flags.join(", "),
            o.default,
            o.doc
        ));
    }
    out
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
            &["--reload", "--preload", "app"],
            &["--umask", "0o1000", "app"],
            &["--umask", "08", "app"],
            &["--user", "no-such-user-here", "app"],
            &["--group", "no-such-group-here", "app"],
            &["--timeout", "soon", "app"],
        ] {
            assert!(config(args).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn supervision_settings() {
        let c = config(&["app:x"]).unwrap();
        assert_eq!(
            (c.timeout, c.max_requests, c.proc_name.as_str()),
            (Some(Duration::from_secs(30)), 0, "app:x")
        );
        let c = config(&["-t", "0", "--max-worker-memory", "2", "-n", "web", "app"]).unwrap();
        assert_eq!(
            (c.timeout, c.max_worker_memory, c.proc_name.as_str()),
            (None, Some(2 << 20), "web")
        );
        for (mask, want) in [("0o22", 0o22), ("077", 0o77), ("18", 18), ("0x12", 0x12), ("0", 0)] {
            assert_eq!(config(&["-m", mask, "app"]).unwrap().umask, Some(want), "{mask}");
        }
        let c = config(&["-u", "0", "--log-file", "-", "app"]).unwrap();
        assert_eq!((c.user.map(|u| u.uid), c.group, c.errorlog), (Some(0), Some(0), None));
    }

    #[test]
    fn env_defaults() {
        let env = EnvDefaults { port: Some("5000".into()), web_concurrency: Some("3".into()) };
        let c = Config::from_raw(&parse_args(&["app"]).unwrap(), &env).unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(c.binds, vec![BindSpec::parse("0.0.0.0:5000").unwrap()]);
    }
}
