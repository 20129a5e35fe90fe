//! Settings: the command line (gunicorn's names and defaults) parsed into [`Config`].
//!
//! Two steps, as in ripgrep: flags become raw strings first ([`parse_args`]), then
//! [`Config::from_raw`] validates them into the values the program runs on. Every
//! setting is described once, in [`OPTIONS`]; `--help` is generated from it. gunicorn's
//! settings ferricorn lacks are in [`GUNICORN_ONLY`], so they are named, not unknown.
//! What ferricorn does that the settings do not literally say (`--threads` picking the
//! worker, `-k gevent` mapped, a setting ignored) becomes a [`Notice`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::forwarded;
use crate::http::{Leniency, Limits};
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
mod gunicorn;
mod options;
mod sources;

pub use gunicorn::{GunicornOnly, GUNICORN_ONLY};
pub use options::{help_text, settings_markdown, OptionSpec, OPTIONS};
pub use sources::{gather, load, parse_args, print_config, RawArgs};

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
    /// `--limit-request-body`: larger bodies get 413 (0: no limit).
    pub limit_request_body: u64,
    pub log_level: LogLevel,
    /// How long a worker may go without a heartbeat; `None`: never killed for silence.
    pub timeout: Option<Duration>,
    /// How long a worker waits on a silent client mid-request (`--read-timeout`).
    pub read_timeout: Duration,
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
    /// `-R`: a `--daemon` master keeps the stdout and stderr it was started with.
    pub enable_stdio_inheritance: bool,
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
    /// `--paste`: the app comes from a PasteDeploy ini file.
    pub paste: Option<Paste>,
    pub capture_output: bool,
    /// Python logging configuration files (ini, JSON).
    pub logconfig: Option<PathBuf>,
    pub logconfig_json: Option<PathBuf>,
    /// `--logger-class` other than gunicorn's default: the logs go through that Python class.
    pub logger_class: Option<String>,
    /// `--check-config`, `--print-config`: answer, then exit.
    pub check_config: bool,
    pub print_config: bool,
    /// Every setting as merged from all sources, for the `cfg` that hooks see.
    pub raw: RawArgs,
    /// Which proxy headers are believed: `--forwarded-allow-ips`, `secure_scheme_headers`,
    /// `--forwarder-headers`, `--header-map`.
    pub forwarded: forwarded::Policy,
    /// What ferricorn does that the settings do not literally say (`--threads` choosing the
    /// worker, `-k gevent` mapped) and the gunicorn settings it ignores: logged at startup,
    /// listed by `--check-config`.
    pub notices: Vec<Notice>,
}

/// One line about the settings for the operator; see [`Config::notices`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `Warning`: something asked for is not done. `Info`: done another way than gunicorn's
    /// code does it. `Debug`: ignored, losing nothing (shown by `--check-config`).
    pub level: LogLevel,
    pub text: String,
}

impl Notice {
    fn new(level: LogLevel, text: String) -> Notice {
        Notice { level, text }
    }
}

/// `--paste INI[#name]` with its `--paste-global` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paste {
    pub path: PathBuf,
    /// The `[app:NAME]` section; `main` by default.
    pub name: String,
    pub globals: Vec<(String, String)>,
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
    pub forwarded_allow_ips: Option<String>,
}

impl EnvDefaults {
    pub fn from_process() -> Self {
        EnvDefaults {
            port: std::env::var("PORT").ok(),
            web_concurrency: std::env::var("WEB_CONCURRENCY").ok(),
            forwarded_allow_ips: std::env::var("FORWARDED_ALLOW_IPS").ok(),
        }
    }
}

impl Config {
    pub fn from_raw(raw: &RawArgs, env: &EnvDefaults) -> Result<Config, Error> {
        let paste = raw.last("paste").map(|spec| parse_paste(spec, raw)).transpose()?;
        let app = match (&paste, raw.app.clone()) {
            (Some(_), Some(app)) => {
                bail!("--paste replaces APP_MODULE; give one of them, not {app:?} too")
            }
            (Some(paste), None) => paste.path.display().to_string(),
            (None, Some(app)) => app,
            (None, None) => {
                bail!("APP_MODULE is required, e.g. `ferricorn myproject.wsgi` (see --help)")
            }
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
        let mut notices = Vec::new();
        let (worker_class, threads) = worker_model(raw, &mut notices)?;
        notices.extend(ignored_settings(raw));
        // gunicorn's meaning of 0 and its caps are applied by `Limits` itself.
        let limits = Limits {
            request_line: int(raw, "limit_request_line", 4094)?,
            fields: int(raw, "limit_request_fields", 100)?,
            field_size: int(raw, "limit_request_field_size", 8190)?,
            lenient: Leniency {
                casefold_method: raw.has("casefold_http_method"),
                obsolete_folding: raw.has("permit_obsolete_folding"),
                unconventional_method: raw.has("permit_unconventional_http_method"),
                unconventional_version: raw.has("permit_unconventional_http_version"),
                strip_header_spaces: raw.has("strip_header_spaces"),
            },
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
            threads,
            worker_connections: worker_connections(raw)?,
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
            limit_request_body: int(raw, "limit_request_body", 0)? as u64,
            log_level,
            timeout: match int(raw, "timeout", 30)? {
                0 => None,
                n => Some(Duration::from_secs(n as u64)),
            },
            read_timeout: Duration::from_secs(int(raw, "read_timeout", 30)?.max(1) as u64),
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
            enable_stdio_inheritance: raw.has("enable_stdio_inheritance"),
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
            paste,
            capture_output: raw.has("capture_output"),
            logconfig: raw.last("logconfig").map(PathBuf::from),
            logconfig_json: raw.last("logconfig_json").map(PathBuf::from),
            logger_class: raw
                .last("logger_class")
                .filter(|c| !matches!(*c, "gunicorn.glogging.Logger" | "simple" | ""))
                .map(str::to_owned),
            check_config: raw.has("check_config"),
            print_config: raw.has("print_config"),
            raw: raw.clone(),
            forwarded: forwarded_policy(raw, env)?,
            notices,
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

/// Most app threads `-k gevent` or `-k eventlet` gets, however large `--worker-connections`
/// is: each is an OS thread with its own stack, where a greenlet is a few KiB.
pub const GREENLET_THREADS_CAP: usize = 100;

/// What `-k` names, before `--threads` has its say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requested {
    Sync,
    /// gunicorn's `gthread`, and ferricorn's own name for its event loop.
    Threaded,
    /// `gevent` or `eventlet`, by that name.
    Greenlet(&'static str),
}

/// `-k` as gunicorn's `load_class` reads it: a short name, `egg:gunicorn#NAME`, or the
/// class path of one of gunicorn's own workers.
fn requested_class(name: &str) -> Result<Requested, Error> {
    let short = name.strip_prefix("egg:gunicorn#").unwrap_or(name);
    Ok(match short {
        "sync" | "gunicorn.workers.sync.SyncWorker" => Requested::Sync,
        "gthread" | "async" | "gunicorn.workers.gthread.ThreadWorker" => Requested::Threaded,
        "gevent" | "gevent_wsgi" | "gevent_pywsgi" => Requested::Greenlet("gevent"),
        s if s.starts_with("gunicorn.workers.ggevent.") => Requested::Greenlet("gevent"),
        "eventlet" | "gunicorn.workers.geventlet.EventletWorker" => Requested::Greenlet("eventlet"),
        s if s.to_ascii_lowercase().contains("uvicorn") => bail!(
            "--worker-class {s:?}: an ASGI worker; ferricorn serves WSGI only until its ASGI \
             worker lands (issue 13)"
        ),
        s @ ("tornado" | "gunicorn.workers.gtornado.TornadoWorker") => bail!(
            "--worker-class {s}: not supported; use `-k async`, ferricorn's event-loop worker"
        ),
        s if s.contains(':') || s.contains('.') => bail!(
            "--worker-class {s:?}: ferricorn cannot load worker classes; it offers sync, \
             gthread (or async), gevent and eventlet (both run as async with app threads)"
        ),
        s => bail!(
            "--worker-class {s:?} is not available (available: sync, gthread, async, gevent, \
             eventlet)"
        ),
    })
}

/// The worker and its app threads. As gunicorn does, the sync worker with `--threads` > 1
/// becomes gthread (ferricorn's async worker with app threads); gevent and eventlet get
/// app threads sized from `--worker-connections` (capped), and ignore `--threads`.
fn worker_model(raw: &RawArgs, notices: &mut Vec<Notice>) -> Result<(WorkerClass, usize), Error> {
    let name = raw.last("worker_class").unwrap_or("sync");
    let threads = match raw.last("threads") {
        Some(t) => positive("--threads", t)?,
        None => 1,
    };
    Ok(match requested_class(name)? {
        Requested::Sync if threads > 1 => {
            notices.push(Notice::new(
                LogLevel::Info,
                format!(
                    "--threads {threads} with the sync worker: running the async worker with \
                     {threads} app threads, as gunicorn switches to gthread"
                ),
            ));
            (WorkerClass::Async, threads)
        }
        Requested::Sync => (WorkerClass::Sync, 1),
        Requested::Threaded => (WorkerClass::Async, threads),
        Requested::Greenlet(kind) => {
            let connections = worker_connections(raw)?;
            let pool = connections.min(GREENLET_THREADS_CAP);
            if raw.last("threads").is_some() && threads != 1 {
                notices.push(Notice::new(
                    LogLevel::Warning,
                    format!(
                        "--threads {threads} is ignored with -k {kind}, as gunicorn ignores it"
                    ),
                ));
            }
            notices.push(Notice::new(
                LogLevel::Info,
                format!(
                    "-k {kind}: running the async worker with {pool} app threads (from \
                     --worker-connections {connections}, at most {GREENLET_THREADS_CAP}); \
                     nothing is monkey-patched"
                ),
            ));
            (WorkerClass::Async, pool)
        }
    })
}

fn worker_connections(raw: &RawArgs) -> Result<usize, Error> {
    match raw.last("worker_connections") {
        Some(c) => positive("--worker-connections", c),
        None => Ok(1000),
    }
}

/// gunicorn settings given that ferricorn does not have. On the command line only those
/// that lose nothing get this far; a config file's others are warned about here.
fn ignored_settings(raw: &RawArgs) -> Vec<Notice> {
    let mut seen: Vec<&str> = Vec::new();
    let mut notices = Vec::new();
    for (name, value) in &raw.values {
        let Some(setting) = gunicorn::by_name(name) else { continue };
        if OPTIONS.iter().any(|o| o.name == *name) || seen.contains(name) {
            continue;
        }
        seen.push(name);
        if raw.all(name).all(|v| setting.is_default(v)) {
            continue;
        }
        let shown = raw.all(name).collect::<Vec<_>>().join(",");
        notices.push(match raw.all(name).all(|v| setting.is_harmless(v)) {
            true => Notice::new(
                LogLevel::Debug,
                format!("gunicorn setting '{name}' = {shown:?} is ignored; it loses nothing here"),
            ),
            false => Notice::new(
                LogLevel::Warning,
                format!(
                    "config file: setting '{name}' is not supported by ferricorn yet and has \
                     no effect (set to {value:?}; see docs/migrating.md)"
                ),
            ),
        });
    }
    notices
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

fn forwarded_policy(raw: &RawArgs, env: &EnvDefaults) -> Result<forwarded::Policy, Error> {
    let allow = match raw.all("forwarded_allow_ips").collect::<Vec<_>>() {
        given if !given.is_empty() => given.join(","),
        _ => env.forwarded_allow_ips.clone().unwrap_or_else(|| "127.0.0.1,::1".to_owned()),
    };
    let secure: Vec<(String, String)> = match raw.all("secure_scheme_headers").collect::<Vec<_>>() {
        given if !given.is_empty() && given != [sources::OFF] => given
            .iter()
            .map(|pair| {
                pair.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| {
                    Error(format!(
                        "secure_scheme_headers {pair:?}: expected a dict of header: value"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        given if !given.is_empty() => Vec::new(),
        _ => forwarded::DEFAULT_SECURE_SCHEME_HEADERS
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    };
    let forwarders = raw.all("forwarder_headers").collect::<Vec<_>>().join(",");
    let forwarders = if raw.last("forwarder_headers").is_some() {
        forwarders
    } else {
        "SCRIPT_NAME,PATH_INFO".to_owned()
    };
    forwarded::Policy::parse(&allow, &secure, &forwarders, raw.last("header_map").unwrap_or("drop"))
        .map_err(Error)
}

fn parse_paste(spec: &str, raw: &RawArgs) -> Result<Paste, Error> {
    let (path, name) = spec.split_once('#').unwrap_or((spec, "main"));
    if path.is_empty() {
        bail!("--paste {spec:?}: expected INI or INI#name");
    }
    let globals = raw
        .all("raw_paste_global_conf")
        .map(|pair| {
            parse_env(pair)
                .map_err(|_| Error(format!("--paste-global {pair:?}: expected KEY=VALUE")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Paste { path: PathBuf::from(path), name: name.to_owned(), globals })
}

fn parse_env(pair: &str) -> Result<(String, String), Error> {
    match pair.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("--env {pair:?}: expected KEY=VALUE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, Error> {
        let env = EnvDefaults { port: None, web_concurrency: None, forwarded_allow_ips: None };
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
        assert_eq!((c.limits.field_size, c.limits.request_line), (11, 0));
    }

    #[test]
    fn leniency_flags_default_off() {
        let c = config(&["app"]).unwrap();
        assert_eq!(c.limits, Limits::default());
        let flags = [
            "--casefold-http-method",
            "--permit-obsolete-folding",
            "--permit-unconventional-http-method",
            "--permit-unconventional-http-version",
            "--strip-header-spaces",
            "app",
        ];
        let lenient = config(&flags).unwrap().limits.lenient;
        let all = Leniency {
            casefold_method: true,
            obsolete_folding: true,
            unconventional_method: true,
            unconventional_version: true,
            strip_header_spaces: true,
        };
        assert_eq!(lenient, all);
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
            &["-k", "tornado", "app"],
            &["-k", "nope", "app"],
            &["-k", "myproject.workers:CustomWorker", "app"],
            &["-k", "uvicorn.workers.UvicornWorker", "app"],
            &["--statsd-host", "localhost:8125", "app"],
            &["--proxy-protocol", "app"],
            &["--spew", "app"],
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

    /// Cloud Run's `--workers 1 --threads 8` ran one request at a time: gunicorn switches
    /// the sync worker to gthread when threads > 1.
    #[test]
    fn regression_threads_with_the_default_worker_select_threads() {
        let rows: &[(&[&str], WorkerClass, usize)] = &[
            (&["--threads", "8", "app"], WorkerClass::Async, 8),
            (&["-k", "sync", "--threads", "4", "app"], WorkerClass::Async, 4),
            (
                &["-k", "gunicorn.workers.sync.SyncWorker", "--threads", "2", "app"],
                WorkerClass::Async,
                2,
            ),
            (&["--threads", "1", "app"], WorkerClass::Sync, 1),
            (&["-k", "gthread", "app"], WorkerClass::Async, 1),
            (&["-k", "egg:gunicorn#gthread", "--threads", "3", "app"], WorkerClass::Async, 3),
        ];
        for (args, class, threads) in rows {
            let c = config(args).unwrap();
            assert_eq!((c.worker_class, c.threads), (*class, *threads), "{args:?}");
        }
    }

    #[test]
    fn regression_gevent_runs_async_with_a_bounded_thread_pool() {
        let c = config(&["-k", "gevent", "--worker-connections", "40", "app"]).unwrap();
        assert_eq!((c.worker_class, c.threads), (WorkerClass::Async, 40));
        assert!(c.notices.iter().any(|n| n.text.contains("-k gevent")), "{:?}", c.notices);
        let c = config(&["-k", "eventlet", "--threads", "4", "app"]).unwrap();
        assert_eq!(c.threads, GREENLET_THREADS_CAP);
        assert!(c.notices.iter().any(|n| n.level == LogLevel::Warning), "{:?}", c.notices);
        let c = config(&["-k", "gunicorn.workers.ggevent.GeventWorker", "app"]).unwrap();
        assert_eq!(c.threads, GREENLET_THREADS_CAP);
    }

    #[test]
    fn harmless_gunicorn_flags_start_and_are_listed() {
        let c = config(&[
            "--no-control-socket",
            "--reload-engine=inotify",
            "--proxy-protocol",
            "off",
            "app",
        ])
        .unwrap();
        assert_eq!(c.app, "app");
        assert!(c.notices.iter().all(|n| n.level == LogLevel::Debug), "{:?}", c.notices);
        // `--proxy-protocol off` is gunicorn's default: not even a note.
        assert_eq!(c.notices.len(), 2, "{:?}", c.notices);
    }

    #[test]
    fn env_defaults() {
        let env = EnvDefaults {
            port: Some("5000".into()),
            web_concurrency: Some("3".into()),
            forwarded_allow_ips: None,
        };
        let c = Config::from_raw(&parse_args(&["app"]).unwrap(), &env).unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(c.binds, vec![BindSpec::parse("0.0.0.0:5000").unwrap()]);
    }
}
