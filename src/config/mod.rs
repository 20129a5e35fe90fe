//! Settings: the command line (gunicorn's names and defaults) parsed into [`Config`].
//!
//! Two steps, as in ripgrep: flags become raw strings first ([`parse_args`]), then
//! [`Config::from_raw`] validates them into the values the program runs on, one section
//! (server socket, workers, timeouts, logging, process, code loading, HTTP limits, proxy)
//! at a time. Every setting is defined once, in [`OPTIONS`] (`options.rs`): its flags,
//! type, default and text; `--help`, docs/settings.md, the readers, `--print-config` and
//! the defaults `from_raw` applies all read it. gunicorn's settings ferricorn lacks are in
//! [`GUNICORN_ONLY`], so they are named, not unknown. What ferricorn does that the
//! settings do not literally say (`--threads` picking the worker, `-k gevent` mapped, a
//! setting ignored) becomes a [`Notice`].

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
pub mod asgi;
mod gunicorn;
pub mod http2;
mod options;
mod sources;

pub use gunicorn::{GunicornOnly, GUNICORN_ONLY};
pub use options::{
    given, help_text, settings_markdown, spec, DefaultValue, Kind, OptionSpec, OPTIONS,
};
pub use sources::{gather, load, parse_args, print_config, RawArgs};

/// The worker types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkerClass {
    /// gunicorn's sync: one connection at a time, `Connection: close`.
    #[default]
    Sync,
    /// One event loop per process: keep-alive, pipelining, slow clients buffered.
    Async,
    /// ASGI apps: the Rust loop's sockets, the app's coroutines on asyncio (gunicorn's
    /// `asgi`; `worker/asgi/`).
    Asgi,
}

impl WorkerClass {
    pub fn name(self) -> &'static str {
        match self {
            WorkerClass::Sync => "sync",
            WorkerClass::Async => "async",
            WorkerClass::Asgi => "asgi",
        }
    }
}

/// Validated settings, what the master and workers run on.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// APP_MODULE, e.g. `myproject.wsgi` or `app:create_app()`.
    pub app: String,
    /// Where to listen; each is bound (or inherited) once, in the master, before forking.
    pub binds: Vec<BindSpec>,
    /// How many worker processes the master keeps alive (TTIN/TTOU change it later).
    pub workers: usize,
    /// Which loop a worker runs, after `--threads` and `-k gevent` have had their say.
    pub worker_class: WorkerClass,
    /// Python threads running the app in an async worker; 1: on the loop thread.
    pub threads: usize,
    /// Most connections one async worker holds; beyond, it stops accepting.
    pub worker_connections: usize,
    /// How long an idle keep-alive connection is kept (gunicorn's `keepalive`).
    pub keepalive: Duration,
    /// `listen(2)`'s queue: connections the kernel holds while every worker is busy.
    pub backlog: i32,
    /// Directory to change to before the app is imported; `None`: where we started.
    pub chdir: Option<PathBuf>,
    /// Directories put first on `sys.path`, after the working directory.
    pub pythonpath: Vec<String>,
    /// `-e KEY=VALUE` pairs, set in the master's environment before any worker forks.
    pub env: Vec<(String, String)>,
    /// How long workers get after TERM to finish in-flight requests before SIGKILL.
    pub graceful_timeout: Duration,
    /// The request-head limits and parser leniency handed to the HTTP layer.
    pub limits: Limits,
    /// `--limit-request-body`: the largest request body in bytes; a larger one gets 413
    /// before the app runs. 0: no limit.
    pub limit_request_body: u64,
    /// The least severe error-log line written.
    pub log_level: LogLevel,
    /// How long a worker may go without a heartbeat; `None`: never killed for silence.
    pub timeout: Option<Duration>,
    /// How long a worker waits on a silent client mid-request (`--read-timeout`).
    pub read_timeout: Duration,
    /// `--request-timeout`: how long a request may run on an app thread before
    /// `RequestTimeout` is raised in it; `None`: off.
    pub request_timeout: Option<Duration>,
    /// Requests before a worker is recycled (0: never), plus up to `jitter` more.
    pub max_requests: u64,
    /// Up to this many extra requests per worker, so workers do not restart together.
    pub max_requests_jitter: u64,
    /// RSS in bytes past which a worker is recycled.
    pub max_worker_memory: Option<u64>,
    /// Import the app in the master, so workers share its memory (and HUP keeps its code).
    pub preload: bool,
    /// Watch the app's source files and reload on change.
    pub reload: bool,
    /// Files outside the app's modules whose change also triggers `--reload`.
    pub reload_extra_files: Vec<PathBuf>,
    /// Where the master writes its pid, for init scripts and USR2 upgrades.
    pub pidfile: Option<PathBuf>,
    /// Detach from the terminal (fork twice, new session) before serving.
    pub daemon: bool,
    /// `-R`: a `--daemon` master keeps the stdout and stderr it was started with.
    pub enable_stdio_inheritance: bool,
    /// The identity workers switch to after fork; the master keeps its own.
    pub user: Option<User>,
    /// The group workers switch to; `--user`'s own group when not given.
    pub group: Option<libc::gid_t>,
    /// Whether workers also take `--user`'s supplementary groups.
    pub initgroups: bool,
    /// Set before binding so unix socket files get it; `None`: left as inherited.
    pub umask: Option<libc::mode_t>,
    /// Where heartbeat files live; `None`: anonymous shared memory.
    pub worker_tmp_dir: Option<PathBuf>,
    /// SO_REUSEPORT, with a socket per worker, so the kernel spreads connections.
    pub reuse_port: bool,
    /// NAME in the process titles.
    pub proc_name: String,
    /// `None`: stderr.
    pub errorlog: Option<PathBuf>,
    /// `None`: no access log; `-`: stdout.
    pub accesslog: Option<PathBuf>,
    /// The access log line, in gunicorn's atoms.
    pub access_log_format: String,
    /// `--statsd-host`: where gunicorn's statsd metrics go; `None`: none are sent.
    pub statsd_host: Option<crate::statsd::Address>,
    /// `--statsd-prefix`, as given (the sender joins it with one `.`).
    pub statsd_prefix: String,
    /// `--dogstatsd-tags`, appended to every statsd line when not empty.
    pub dogstatsd_tags: String,
    /// `--enable-backlog-metric`: the master sends `gunicorn.backlog`.
    pub enable_backlog_metric: bool,
    /// `--control-socket`, `--control-socket-mode`, `--no-control-socket`.
    pub control: crate::control::Settings,
    /// `--metrics-bind` and `--max-queue-time`.
    pub metrics: crate::metrics::Settings,
    /// `--log-syslog`: where both logs also go, and how they are tagged; `None`: off.
    pub syslog: Option<crate::syslog::Settings>,
    /// `--certfile` and the TLS settings, with the server config loaded from them;
    /// `None`: plain HTTP.
    pub tls: Option<crate::tls::Settings>,
    /// `--ssl-version` (read as the lowest), `--ciphers`, `--cert-reqs`, `--ca-certs`.
    pub tls_policy: TlsPolicy,
    /// `--paste`: the app comes from a PasteDeploy ini file.
    pub paste: Option<Paste>,
    /// Send the workers' stdout and stderr into the error log file.
    pub capture_output: bool,
    /// The `fileConfig` ini file for Python's logging, applied before the app loads.
    pub logconfig: Option<PathBuf>,
    /// The JSON `dictConfig` file, merged over gunicorn's default logging config.
    pub logconfig_json: Option<PathBuf>,
    /// `--logger-class` other than gunicorn's default: the logs go through that Python class.
    pub logger_class: Option<String>,
    /// `--check-config`: check the settings and the app, answer, then exit.
    pub check_config: bool,
    /// `--print-config`: print the settings in effect, then exit.
    pub print_config: bool,
    /// Every setting as merged from all sources, for the `cfg` that hooks see.
    pub raw: RawArgs,
    /// Which proxy headers are believed: `--forwarded-allow-ips`, `secure_scheme_headers`,
    /// `--forwarder-headers`, `--header-map`.
    pub forwarded: forwarded::Policy,
    /// `--proxy-protocol` and `--proxy-allow-from`: the PROXY header a connection may start
    /// with, and who may send one.
    pub proxy_protocol: crate::worker::preamble::Settings,
    /// `--protocol`: what requests arrive as; with uwsgi, `--uwsgi-allow-from`.
    pub protocol: Protocol,
    /// The `asgi` worker's settings (`--asgi-lifespan`, `--root-path`, ...).
    pub asgi: asgi::Asgi,
    /// `--http-protocols` and the `--http2-*` settings.
    pub http2: http2::Http2,
    /// What ferricorn does that the settings do not literally say (`--threads` choosing the
    /// worker, `-k gevent` mapped) and the gunicorn settings it ignores: logged at startup,
    /// listed by `--check-config`.
    pub notices: Vec<Notice>,
}

/// gunicorn's TLS settings that choose what TLS serves, read into rustls's terms.
#[derive(Debug, Clone)]
pub struct TlsPolicy {
    /// `--ssl-version`, read as the lowest version: the versions rustls serves.
    pub versions: Vec<&'static rustls::SupportedProtocolVersion>,
    /// `--ciphers`: every TLS 1.3 suite, then the TLS 1.2 suites the OpenSSL list chose,
    /// in its order; `None`: rustls's default (what Python's default list maps to).
    pub ciphers: Option<Vec<rustls::SupportedCipherSuite>>,
    /// `--cert-reqs`: whether a client certificate is asked for, and required.
    pub cert_reqs: crate::tls::client::CertReqs,
    /// `--ca-certs`: the CAs a client certificate must chain to; `None`: not given.
    /// `crate::tls::client::verifier` reads it (at boot and on HUP).
    pub ca_certs: Option<PathBuf>,
    /// What ALPN offers, most preferred first (`--http-protocols`).
    pub alpn: Vec<Vec<u8>>,
}

impl Default for TlsPolicy {
    fn default() -> TlsPolicy {
        let versions = vec![&rustls::version::TLS13, &rustls::version::TLS12];
        let cert_reqs = crate::tls::client::CertReqs::None;
        let alpn = vec![b"http/1.1".to_vec()];
        TlsPolicy { versions, ciphers: None, cert_reqs, ca_certs: None, alpn }
    }
}

/// `--protocol`: how requests arrive on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.x request heads.
    #[default]
    Http,
    /// uwsgi packets (nginx's `uwsgi_pass`), from the peers `--uwsgi-allow-from` allows.
    Uwsgi(forwarded::AllowList),
}

/// One line about the settings for the operator; see [`Config::notices`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `Warning`: something asked for is not done. `Info`: done another way than gunicorn's
    /// code does it. `Debug`: ignored, losing nothing (shown by `--check-config`).
    pub level: LogLevel,
    /// The line itself, for the error log and `--check-config`.
    pub text: String,
}

impl Notice {
    pub(crate) fn new(level: LogLevel, text: String) -> Notice {
        Notice { level, text }
    }
}

/// `--paste INI[#name]` with its `--paste-global` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paste {
    /// The ini file PasteDeploy reads.
    pub path: PathBuf,
    /// The `[app:NAME]` section; `main` by default.
    pub name: String,
    /// `--paste-global` values, passed as the app's `global_conf`.
    pub globals: Vec<(String, String)>,
}

/// `--user`, resolved when the command line is read so a typo fails at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The uid workers `setuid` to.
    pub uid: libc::uid_t,
    /// For `--initgroups`, and the group workers get when `--group` is not given.
    pub name: String,
    /// The user's primary group, workers' group when `--group` is not given.
    pub gid: libc::gid_t,
}

/// Environment variables gunicorn reads for defaults.
pub struct EnvDefaults {
    /// `$PORT`: the default bind becomes `0.0.0.0:$PORT` (Heroku, Cloud Run).
    pub port: Option<String>,
    /// `$WEB_CONCURRENCY`: the default worker count.
    pub web_concurrency: Option<String>,
    /// `$FORWARDED_ALLOW_IPS`: the default trusted front ends.
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
    /// Validates the merged settings, one section at a time. A setting no source gives
    /// takes its default from [`OPTIONS`]; nothing here writes a default of its own.
    pub fn from_raw(raw: &RawArgs, env: &EnvDefaults) -> Result<Config, Error> {
        let (paste, app) = app_source(raw)?;
        let forwarded = forwarded_policy(raw, env)?;
        let mut config = Config::blank(app, paste, forwarded, raw);
        config.server_socket(raw, env)?;
        config.workers(raw, env)?;
        config.timeouts(raw)?;
        config.logging(raw)?;
        config.process(raw)?;
        config.syslog(raw)?;
        config.code_loading(raw)?;
        config.http_limits(raw)?;
        config.http2(raw)?;
        config.tls_policy(raw)?;
        config.tls(raw)?;
        config.proxy_protocol(raw)?;
        config.protocol = protocol(raw)?;
        config.asgi = asgi::read(raw)?;
        config.notices.extend(ignored_settings(raw));
        Ok(config)
    }

    /// Every field zero, empty or off (but the app and the proxy policy, read first),
    /// before the sections of [`Config::from_raw`] fill them in. These are not defaults
    /// (those are in [`OPTIONS`]) and are never served from: the unit tests check that
    /// each setting's section sets its field, given and not given.
    fn blank(app: String, paste: Option<Paste>, fwd: forwarded::Policy, raw: &RawArgs) -> Config {
        Config { app, paste, forwarded: fwd, raw: raw.clone(), ..Config::default() }
    }

    /// `--http-protocols` and `--http2-*`. The `async` and `asgi` workers serve HTTP/2:
    /// with `sync`, h2 is neither offered in ALPN nor taken in cleartext, and a warning
    /// says so.
    fn http2(&mut self, raw: &RawArgs) -> Result<(), Error> {
        self.http2 = http2::read(raw)?;
        let serves_h2 = matches!(self.worker_class, WorkerClass::Async | WorkerClass::Asgi);
        if self.http2.enabled() && !serves_h2 {
            self.notices.push(Notice::new(
                LogLevel::Warning,
                format!(
                    "--http-protocols h2: the {} worker serves HTTP/1.1 only; HTTP/2 needs -k \
                     async (or gthread) or -k asgi",
                    self.worker_class.name()
                ),
            ));
            self.http2.protocols = vec![http2::HttpProtocol::H1];
        } else if self.http2.enabled()
            && !tls_asked(raw)
            && self.http2.cleartext == http2::Cleartext::Off
        {
            self.notices.push(Notice::new(
                LogLevel::Warning,
                "--http-protocols includes h2 but there is no TLS and --http2-cleartext is \
                 off, so HTTP/2 will never be used"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The PROXY protocol: whether a connection may start with a header, and from whom.
    fn proxy_protocol(&mut self, raw: &RawArgs) -> Result<(), Error> {
        let mode = text(raw, "proxy_protocol").unwrap_or_default();
        let allow = given(raw, spec("proxy_allow_ips")).join(",");
        self.proxy_protocol =
            crate::worker::preamble::Settings::parse(mode, &allow).map_err(Error)?;
        Ok(())
    }

    /// Server socket: where to listen and how.
    fn server_socket(&mut self, raw: &RawArgs, env: &EnvDefaults) -> Result<(), Error> {
        self.binds = match (raw.last("bind"), &env.port) {
            (None, Some(port)) => vec![BindSpec::parse(&format!("0.0.0.0:{port}"))
                .map_err(|e| Error(format!("$PORT: {e}")))?],
            _ => given(raw, spec("bind"))
                .iter()
                .map(|b| BindSpec::parse(b))
                .collect::<Result<_, _>>()?,
        };
        self.backlog = i32::try_from(int(raw, "backlog")?.max(1)).unwrap_or(i32::MAX);
        self.reuse_port = raw.has("reuse_port");
        Ok(())
    }

    /// TLS: `--certfile` turns it on. The certificate and key are read here (after
    /// `--chdir`, which relative paths are from, as in gunicorn), so a bad one is one line:
    /// exit 2 at boot; on HUP the running settings, and certificate, stay.
    fn tls(&mut self, raw: &RawArgs) -> Result<(), Error> {
        let file = |name| raw.last(name).filter(|f| !f.is_empty() && *f != "None");
        let Some(certfile) = file("certfile") else {
            if let Some(keyfile) = file("keyfile") {
                bail!("--keyfile {keyfile}: needs --certfile, the certificate it is the key of");
            }
            if raw.last("ssl_context").is_some() {
                self.notices.push(Notice::new(
                    LogLevel::Debug,
                    "config file: ssl_context is ignored; gunicorn calls it only with --certfile"
                        .into(),
                ));
            }
            self.tls = None;
            return Ok(());
        };
        if raw.last("ssl_context").is_some() {
            bail!(
                "config file: ssl_context cannot be used: it builds a Python ssl.SSLContext and \
                 ferricorn's TLS is rustls; set --keyfile, --ca-certs, --cert-reqs, --ciphers, \
                 --ssl-version instead (see docs/tls.md)"
            );
        }
        let at = |f: &str| match &self.chdir {
            Some(dir) => dir.join(f),
            None => PathBuf::from(f),
        };
        let (certfile, keyfile) = (at(certfile), file("keyfile").map(at));
        let server = crate::tls::server_config(&certfile, keyfile.as_deref(), &self.tls_policy)?;
        let suppress = suppress_ragged_eofs(raw);
        self.tls = Some(crate::tls::Settings {
            certfile,
            keyfile,
            suppress_ragged_eofs: suppress,
            do_handshake_on_connect: raw.has("do_handshake_on_connect"),
            server,
        });
        Ok(())
    }

    /// Workers: how many, which kind, how many app threads and connections each.
    fn workers(&mut self, raw: &RawArgs, env: &EnvDefaults) -> Result<(), Error> {
        self.workers = match (raw.last("workers"), &env.web_concurrency) {
            (None, Some(w)) => number("$WEB_CONCURRENCY", w, Kind::Positive)?,
            _ => int(raw, "workers")?,
        };
        (self.worker_class, self.threads) = worker_model(raw, &mut self.notices)?;
        self.worker_connections = int(raw, "worker_connections")?;
        self.worker_tmp_dir = raw.last("worker_tmp_dir").map(PathBuf::from);
        Ok(())
    }

    /// Timeouts, and the limits on how long a worker serves.
    fn timeouts(&mut self, raw: &RawArgs) -> Result<(), Error> {
        self.keepalive = seconds(raw, "keepalive")?;
        self.graceful_timeout = seconds(raw, "graceful_timeout")?;
        self.timeout = Some(seconds(raw, "timeout")?).filter(|t| !t.is_zero());
        self.read_timeout = seconds(raw, "read_timeout")?.max(Duration::from_secs(1));
        self.request_timeout = fractional_seconds(raw, "request_timeout")?;
        self.max_requests = int(raw, "max_requests")? as u64;
        self.max_requests_jitter = int(raw, "max_requests_jitter")? as u64;
        self.max_worker_memory = match int(raw, "max_worker_memory")? as u64 {
            0 => None,
            mib => Some(mib.saturating_mul(1024 * 1024)),
        };
        Ok(())
    }

    /// Logging: the error and access logs, and Python's logging configuration.
    fn logging(&mut self, raw: &RawArgs) -> Result<(), Error> {
        let level = text(raw, "loglevel").unwrap_or_default();
        self.log_level = match LogLevel::parse(level) {
            Some(level) => level,
            None => {
                bail!("--log-level {level:?}: expected debug, info, warning, error or critical")
            }
        };
        self.errorlog = text(raw, "errorlog").filter(|p| *p != "-").map(PathBuf::from);
        self.accesslog = raw.last("accesslog").map(PathBuf::from);
        self.access_log_format = text(raw, "access_log_format").unwrap_or_default().to_owned();
        self.capture_output = raw.has("capture_output");
        self.statsd(raw)?;
        self.logconfig = raw.last("logconfig").map(PathBuf::from);
        self.logconfig_json = raw.last("logconfig_json").map(PathBuf::from);
        // The default class (or `simple`) is ferricorn's native logs.
        let native = |c: &str| Some(c) == spec("logger_class").default.value() || c == "simple";
        self.logger_class =
            raw.last("logger_class").filter(|c| !c.is_empty() && !native(c)).map(str::to_owned);
        Ok(())
    }

    /// statsd: gunicorn's `validate_statsd_address`; the rest are taken as given.
    fn statsd(&mut self, raw: &RawArgs) -> Result<(), Error> {
        let host = raw.last("statsd_host").filter(|h| !h.is_empty() && *h != "None");
        self.statsd_host = host.map(crate::statsd::Address::parse).transpose()?;
        self.statsd_prefix = text(raw, "statsd_prefix").unwrap_or_default().to_owned();
        self.dogstatsd_tags = text(raw, "dogstatsd_tags").unwrap_or_default().to_owned();
        self.enable_backlog_metric = raw.has("enable_backlog_metric");
        self.metrics = metrics_settings(raw)?;
        Ok(())
    }

    /// `--log-syslog` and its settings (after `--name`, the default prefix). As in gunicorn,
    /// the other four are read only when it is on, so a config file gunicorn starts with
    /// starts here too.
    fn syslog(&mut self, raw: &RawArgs) -> Result<(), Error> {
        if !raw.has("syslog") {
            self.syslog = None;
            return Ok(());
        }
        let to = text(raw, "syslog_addr").unwrap_or_default();
        let address = match crate::syslog::parse_address(to) {
            Ok(address) => address,
            Err(e) => bail!("--log-syslog-to {to:?}: {e}"),
        };
        let name = text(raw, "syslog_facility").unwrap_or_default();
        let Some(facility) = crate::syslog::facility(name) else {
            bail!(
                "--log-syslog-facility {name:?}: unknown facility name; expected one of {}",
                crate::syslog::facility_names()
            )
        };
        let prefix = text(raw, "syslog_prefix").filter(|p| !p.is_empty());
        let program = prefix.map_or_else(|| self.proc_name.replace(':', "."), str::to_owned);
        self.syslog = Some(crate::syslog::Settings {
            address,
            facility,
            program: format!("gunicorn.{program}"),
            access: !raw.has("disable_redirect_access_to_syslog"),
        });
        Ok(())
    }

    /// The process: identity, files, detaching, the app's environment, what to do.
    fn process(&mut self, raw: &RawArgs) -> Result<(), Error> {
        self.user = raw.last("user").map(parse_user).transpose()?;
        self.group = match raw.last("group") {
            Some(g) => Some(parse_group(g)?),
            None => self.user.as_ref().map(|u| u.gid),
        };
        self.initgroups = raw.has("initgroups");
        self.umask = raw.last("umask").map(parse_umask).transpose()?;
        self.pidfile = raw.last("pidfile").map(PathBuf::from);
        self.daemon = raw.has("daemon");
        self.enable_stdio_inheritance = raw.has("enable_stdio_inheritance");
        self.proc_name = raw.last("proc_name").unwrap_or(&self.app).to_owned();
        self.check_config = raw.has("check_config");
        self.print_config = raw.has("print_config");
        self.chdir = raw.last("chdir").map(PathBuf::from);
        self.env = raw.all("raw_env").map(parse_env).collect::<Result<_, _>>()?;
        let text_mode = text(raw, "control_socket_mode").unwrap_or_default();
        let Some(mode) = crate::control::parse_mode(text_mode) else {
            bail!(
                "--control-socket-mode {text_mode:?}: expected permission bits like 0o600 or 0660"
            )
        };
        let path = raw.last("control_socket").map(PathBuf::from);
        let path = path.unwrap_or_else(crate::control::default_path);
        let disabled = raw.has("control_socket_disable");
        self.control = crate::control::Settings { path, mode, disabled };
        Ok(())
    }

    /// Loading the app's code: `sys.path`, preloading, reloading on change.
    fn code_loading(&mut self, raw: &RawArgs) -> Result<(), Error> {
        self.pythonpath = raw
            .all("pythonpath")
            .flat_map(|p| p.split(','))
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        self.preload = raw.has("preload_app");
        self.reload = raw.has("reload");
        if self.preload && self.reload {
            bail!("--reload cannot be used with --preload: the master would hold the old code");
        }
        self.reload_extra_files = raw.all("reload_extra_files").map(PathBuf::from).collect();
        Ok(())
    }

    /// HTTP limits and parser leniency. gunicorn's meaning of 0 and its caps are applied
    /// by `Limits` itself.
    fn http_limits(&mut self, raw: &RawArgs) -> Result<(), Error> {
        self.limits = Limits {
            request_line: int(raw, "limit_request_line")?,
            fields: int(raw, "limit_request_fields")?,
            field_size: int(raw, "limit_request_field_size")?,
            lenient: Leniency {
                casefold_method: raw.has("casefold_http_method"),
                obsolete_folding: raw.has("permit_obsolete_folding"),
                unconventional_method: raw.has("permit_unconventional_http_method"),
                unconventional_version: raw.has("permit_unconventional_http_version"),
                strip_header_spaces: raw.has("strip_header_spaces"),
            },
        };
        self.limit_request_body = int(raw, "limit_request_body")? as u64;
        Ok(())
    }

    /// TLS: each value is checked here (one line, exit 2), with `crate::tls`'s readers. The
    /// CA file and `--cert-reqs` needing it are checked only with `--certfile`, as gunicorn
    /// builds its `SSLContext` only then.
    fn tls_policy(&mut self, raw: &RawArgs) -> Result<(), Error> {
        use crate::tls::{ciphers, client};
        let version = text(raw, "ssl_version").unwrap_or_default();
        let versions = ciphers::versions(version)
            .map_err(|e| Error(format!("--ssl-version {version:?}: {e}")))?;
        let ciphers = match raw.last("ciphers").filter(|c| !c.is_empty() && *c != "None") {
            None => None,
            Some(list) => {
                let selection =
                    ciphers::select(list).map_err(|e| Error(format!("--ciphers {list:?}: {e}")))?;
                for word in &selection.unmapped {
                    self.notices.push(Notice::new(
                        LogLevel::Warning,
                        format!(
                            "--ciphers: {word} chooses no cipher rustls has; left out (rustls's \
                             TLS 1.2 suites are ECDHE with AES-GCM or ChaCha20-Poly1305)"
                        ),
                    ));
                }
                Some(selection.suites)
            }
        };
        let reqs = text(raw, "cert_reqs").unwrap_or_default();
        let cert_reqs = client::CertReqs::parse(reqs)
            .map_err(|e| Error(format!("--cert-reqs {reqs:?}: {e}")))?;
        let ca_certs = raw.last("ca_certs").filter(|p| !p.is_empty() && *p != "None");
        let ca_certs = ca_certs.map(PathBuf::from);
        // The CA file is read (and `--cert-reqs` without it refused) with the certificate,
        // by `tls::server_config`: only with --certfile, as gunicorn builds no context else.
        let alpn = self.http2.alpn();
        self.tls_policy = TlsPolicy { versions, ciphers, cert_reqs, ca_certs, alpn };
        Ok(())
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

/// The app: `APP_MODULE`, or the `--paste` ini that replaces it.
fn app_source(raw: &RawArgs) -> Result<(Option<Paste>, String), Error> {
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
    Ok((paste, app))
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
    /// gunicorn's `asgi`; `Some`: uvicorn's worker class, by that name, mapped to it.
    Asgi(Option<&'static str>),
}

/// Whether `-k` names a class this table knows (no Python import is needed for it).
fn requested_is_known(name: &str) -> bool {
    requested_class(name).is_ok()
}

/// A uvicorn worker subclass's `CONFIG_KWARGS` key, as the setting it maps to.
fn uvicorn_kwarg(key: &str) -> Option<&'static str> {
    match key {
        "loop" => Some("asgi_loop"),
        "lifespan" => Some("asgi_lifespan"),
        "root_path" => Some("root_path"),
        _ => None,
    }
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
        "asgi" | "gunicorn.workers.gasgi.ASGIWorker" => Requested::Asgi(None),
        "uvicorn.workers.UvicornWorker" | "uvicorn.workers.UvicornH11Worker" => {
            Requested::Asgi(Some("uvicorn.workers.UvicornWorker"))
        }
        "uvicorn_worker.UvicornWorker" | "uvicorn_worker.UvicornH11Worker" => {
            Requested::Asgi(Some("uvicorn_worker.UvicornWorker"))
        }
        s @ ("tornado" | "gunicorn.workers.gtornado.TornadoWorker") => bail!(
            "--worker-class {s}: not supported; use `-k async`, ferricorn's event-loop worker"
        ),
        s if s.contains(':') || s.contains('.') => bail!(
            "--worker-class {s:?}: ferricorn cannot load worker classes; it offers sync, \
             gthread (or async), gevent and eventlet (both run as async with app threads), \
             and asgi"
        ),
        s => bail!(
            "--worker-class {s:?} is not available (available: sync, gthread, async, gevent, \
             eventlet, asgi)"
        ),
    })
}

/// The worker and its app threads. As gunicorn does, the sync worker with `--threads` > 1
/// becomes gthread (ferricorn's async worker with app threads); gevent and eventlet get
/// app threads sized from `--worker-connections` (capped), and ignore `--threads`.
fn worker_model(raw: &RawArgs, notices: &mut Vec<Notice>) -> Result<(WorkerClass, usize), Error> {
    let name = text(raw, "worker_class").unwrap_or_default();
    let threads = int(raw, "threads")?;
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
            let connections = int(raw, "worker_connections")?;
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
        Requested::Asgi(mapped) => {
            if let Some(class) = mapped {
                notices.push(Notice::new(
                    LogLevel::Info,
                    format!("-k {class}: running ferricorn's asgi worker (gunicorn's -k asgi)"),
                ));
            }
            if threads > 1 {
                // gunicorn's ASGIWorker.check_config says the same.
                notices.push(Notice::new(
                    LogLevel::Warning,
                    "ASGI worker does not use threads configuration. Use worker_connections \
                     instead."
                        .to_owned(),
                ));
            }
            (WorkerClass::Asgi, 1)
        }
    })
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

/// `--certfile` was given (the TLS section reads it after the HTTP/2 one).
fn tls_asked(raw: &RawArgs) -> bool {
    raw.last("certfile").is_some_and(|c| !c.is_empty() && c != "None")
}

/// `--suppress-ragged-eofs`: on unless a config file turns it off (the flag only turns it
/// on, as gunicorn's `store_true` with a default of `True`).
fn suppress_ragged_eofs(raw: &RawArgs) -> bool {
    raw.last("suppress_ragged_eofs").is_none_or(|v| !v.eq_ignore_ascii_case(sources::OFF))
}

/// The value in effect for a one-value setting: the last one given, else its default.
fn text<'a>(raw: &'a RawArgs, name: &str) -> Option<&'a str> {
    raw.last(name).or(spec(name).default.value())
}

/// An integer setting, checked as its [`Kind`] says; the error names its flag.
fn int(raw: &RawArgs, name: &str) -> Result<usize, Error> {
    let spec = spec(name);
    let flag = format!("--{}", spec.long.first().unwrap_or(&name));
    number(&flag, text(raw, name).unwrap_or_default(), spec.kind)
}

/// A number of seconds, fractions allowed (as gunicorn's timeouts are floats); 0 is
/// `None`: off.
fn fractional_seconds(raw: &RawArgs, name: &str) -> Result<Option<Duration>, Error> {
    let v = text(raw, name).unwrap_or_default();
    match v.trim().parse::<f64>() {
        Ok(0.0) => Ok(None),
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Some(Duration::from_secs_f64(s))),
        _ => bail!("--{} {v:?}: expected a non-negative number of seconds", name.replace('_', "-")),
    }
}

fn seconds(raw: &RawArgs, name: &str) -> Result<Duration, Error> {
    Ok(Duration::from_secs(int(raw, name)? as u64))
}

/// `v` as a [`Kind::Int`] (non-negative) or [`Kind::Positive`] integer; `what` names where
/// it came from (`--workers`, `$WEB_CONCURRENCY`).
fn number(what: &str, v: &str, kind: Kind) -> Result<usize, Error> {
    match (v.trim().parse::<usize>(), kind) {
        (Ok(n), Kind::Positive) if n > 0 => Ok(n),
        (_, Kind::Positive) => bail!("{what} {v:?}: expected a positive integer"),
        (Ok(n), _) => Ok(n),
        _ => bail!("{what} {v:?}: expected a non-negative integer"),
    }
}

/// `--metrics-bind` and `--max-queue-time` from the raw values; a bad address is an error.
fn metrics_settings(raw: &RawArgs) -> Result<crate::metrics::Settings, Error> {
    let bind = raw.last("metrics_bind").filter(|a| !a.is_empty() && *a != "None");
    Ok(crate::metrics::Settings {
        bind: bind.map(metrics_address).transpose()?,
        max_queue_time: Some(seconds(raw, "max_queue_time")?).filter(|t| !t.is_zero()),
    })
}

/// `--metrics-bind HOST:PORT`, resolved (a name resolves to its first address).
fn metrics_address(value: &str) -> Result<std::net::SocketAddr, Error> {
    use std::net::ToSocketAddrs;
    let bad = || Error(format!("--metrics-bind {value:?}: expected HOST:PORT"));
    value.to_socket_addrs().map_err(|_| bad())?.next().ok_or_else(bad)
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

/// A number as gunicorn's `auto_int` reads it (`int(value, 0)`): `0o22`, `0x12`, `18`; a
/// leading 0 alone also means octal, since `077` and `0660` are what people write.
pub fn auto_int(v: &str) -> Option<u32> {
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
    parsed.ok()
}

/// gunicorn reads the umask with `int(value, 0)`.
fn parse_umask(v: &str) -> Result<libc::mode_t, Error> {
    match auto_int(v) {
        Some(mask) if mask <= 0o777 => Ok(mask as libc::mode_t),
        _ => bail!("--umask {v:?}: expected a mask from 0 to 0o777, like 0o22 or 077"),
    }
}

/// Proxy: which front ends are believed, and about which headers.
/// `--protocol` and, for uwsgi, `--uwsgi-allow-from` (gunicorn: `protocol`,
/// `uwsgi_allow_ips`).
fn protocol(raw: &RawArgs) -> Result<Protocol, Error> {
    match text(raw, "protocol").unwrap_or_default() {
        "http" => Ok(Protocol::Http),
        "uwsgi" => {
            let allow = given(raw, spec("uwsgi_allow_ips")).join(",");
            forwarded::AllowList::parse("--uwsgi-allow-from", &allow)
                .map(Protocol::Uwsgi)
                .map_err(Error)
        }
        other => bail!("--protocol {other:?}: expected http or uwsgi"),
    }
}

fn forwarded_policy(raw: &RawArgs, env: &EnvDefaults) -> Result<forwarded::Policy, Error> {
    let allow = match (raw.last("forwarded_allow_ips"), &env.forwarded_allow_ips) {
        (None, Some(from_env)) => from_env.clone(),
        _ => given(raw, spec("forwarded_allow_ips")).join(","),
    };
    // `secure_scheme_headers = {}` in a config file arrives as OFF: trust no header.
    let secure = match given(raw, spec("secure_scheme_headers")) {
        off if off == [sources::OFF] => Vec::new(),
        pairs => pairs
            .iter()
            .map(|pair| {
                pair.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| {
                    Error(format!(
                        "secure_scheme_headers {pair:?}: expected a dict of header: value"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let forwarders = given(raw, spec("forwarder_headers")).join(",");
    let header_map = text(raw, "header_map").unwrap_or_default();
    forwarded::Policy::parse(&allow, &secure, &forwarders, header_map).map_err(Error)
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
pub(super) mod tests {
    use super::*;

    pub(super) fn config(args: &[&str]) -> Result<Config, Error> {
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
            &["--statsd-host", "localhost:port", "app"],
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

    /// The TLS settings' bad values are one line each; the CA file is read only with
    /// `--certfile`, which a config file can give before ferricorn serves TLS itself.
    #[test]
    fn tls_settings() {
        let rows = [
            (
                &["--ciphers", "AES256-SHA", "app"][..],
                "--ciphers \"AES256-SHA\": chooses no TLS 1.2",
            ),
            (&["--ciphers", "@FOO", "app"], "--ciphers \"@FOO\": unknown command @FOO"),
            (&["--ssl-version", "TLSv1", "app"], "--ssl-version \"TLSv1\": TLS 1.0 is older"),
            (&["--cert-reqs", "3", "app"], "--cert-reqs \"3\": expected 0 (CERT_NONE)"),
        ];
        for (args, want) in rows {
            let error = config(args).unwrap_err().0;
            assert!(error.starts_with(want), "{args:?}: {error}");
        }
        let c = config(&["--ciphers", "ECDHE+AESGCM:DHE+AESGCM", "--cert-reqs", "2", "app"]);
        let c = c.unwrap();
        assert_eq!(c.tls_policy.ciphers.as_ref().map(Vec::len), Some(3 + 4));
        assert_eq!(c.tls_policy.cert_reqs, crate::tls::client::CertReqs::Required);
        let warned = c.notices.iter().filter(|n| n.level == LogLevel::Warning);
        assert_eq!(warned.map(|n| n.text.as_str()).collect::<Vec<_>>().len(), 1);
        let env = EnvDefaults { port: None, web_concurrency: None, forwarded_allow_ips: None };
        let (cert, key) =
            (crate::tls::tests::testdata("cert.pem"), crate::tls::tests::testdata("key.pem"));
        let key = key.to_str().unwrap();
        let mut raw = parse_args(&["--cert-reqs", "2", "--keyfile", key, "app"]).unwrap();
        raw.values.push(("certfile", cert.to_str().unwrap().to_owned()));
        let error = Config::from_raw(&raw, &env).unwrap_err().0;
        assert!(error.starts_with("--cert-reqs 2: needs --ca-certs FILE"), "{error}");
        raw.values.push(("ca_certs", "/nonexistent/ca.pem".to_owned()));
        let error = Config::from_raw(&raw, &env).unwrap_err().0;
        assert!(error.starts_with("--ca-certs /nonexistent/ca.pem: No such file"), "{error}");
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
        let c = config(&["--reload-engine=inotify", "--proxy-protocol", "off", "app"]).unwrap();
        assert_eq!(c.app, "app");
        assert!(c.notices.iter().all(|n| n.level == LogLevel::Debug), "{:?}", c.notices);
        // `--proxy-protocol off` is gunicorn's default: not even a note.
        assert_eq!(c.notices.len(), 1, "{:?}", c.notices);
    }

    /// Item 4 of issue 10: the defaults applied are the ones the table (and so `--help`
    /// and docs/settings.md) states. Each row's value is read back from the `Config` built
    /// from no settings at all.
    #[test]
    fn applied_defaults_are_the_table_defaults() {
        let c = config(&["app"]).unwrap();
        for spec in OPTIONS {
            let shown = (spec.shown)(&c, spec);
            let want = match spec.default {
                DefaultValue::Off => "False".to_owned(),
                DefaultValue::Value("true") if spec.kind == Kind::Flag => "True".to_owned(),
                DefaultValue::Value(v) | DefaultValue::ValueOr(v, _) => v.to_owned(),
                DefaultValue::Pairs(_) => options::dict(&spec.default.values()),
                DefaultValue::Unset(_) if spec.name == "proc_name" => "app".to_owned(),
                DefaultValue::Unset(_) if spec.name == "control_socket" => {
                    crate::control::default_path().display().to_string()
                }
                DefaultValue::Unset(_) if shown == "[]" => "[]".to_owned(),
                DefaultValue::Unset(_) => "None".to_owned(),
            };
            assert_eq!(shown, want, "{}: applied default differs from the table", spec.name);
        }
    }

    /// Each setting given on the command line reaches its field (a section that forgot
    /// one would leave it blank).
    #[test]
    fn given_values_reach_their_fields() {
        let samples = [
            ("bind", "127.0.0.1:9"),
            ("worker_class", "async"),
            ("pythonpath", "/p"),
            ("raw_env", "A=1"),
            ("forwarded_allow_ips", "10.0.0.1"),
            ("forwarder_headers", "X_USER"),
            ("header_map", "refuse"),
            ("user", "0"),
            ("group", "0"),
            ("umask", "18"),
            ("control_socket_mode", "432"),
            ("proc_name", "web"),
            ("access_log_format", "%(h)s"),
            ("loglevel", "debug"),
            ("logger_class", "pkg.mod.Logger"),
            ("config", "x.py"),
            ("request_timeout", "2.5"),
            ("metrics_bind", "127.0.0.1:9100"),
            ("proxy_protocol", "v2"),
            ("proxy_allow_ips", "10.0.0.0/8"),
            ("ciphers", "ECDHE+AESGCM"),
            ("ssl_version", "TLSv1_3"),
            ("cert_reqs", "1"),
            ("protocol", "uwsgi"),
            ("uwsgi_allow_ips", "10.0.0.0/8"),
            ("asgi_loop", "uvloop"),
            ("asgi_lifespan", "on"),
            // h2 is taken out with the sync worker (the default); see `http2`.
            ("http_protocols", "h1"),
            ("http2_cleartext", "both"),
            ("http2_max_concurrent_streams", "7"),
            ("http2_initial_window_size", "7"),
            ("http2_max_frame_size", "20000"),
            ("http2_max_header_list_size", "7"),
        ];
        // The Paste pair needs an ini file instead of APP_MODULE; tests/test_paste covers it.
        let skipped = ["paste", "raw_paste_global_conf", "wsgi_app", "secure_scheme_headers"];
        // statsd_host prints the parsed address, as gunicorn does: checked below. The TLS
        // files must be real ones: `tls_settings` checks them.
        let tls = ["certfile", "keyfile", "suppress_ragged_eofs", "ssl_context"];
        let skipped = [&skipped[..], &["statsd_host"], &tls[..]].concat();
        for spec in OPTIONS.iter().filter(|o| !skipped.contains(&o.name)) {
            let flag = format!("--{}", spec.long[0]);
            let value = match spec.kind {
                Kind::Flag => None,
                Kind::Int | Kind::Positive => Some("7"),
                _ if samples.iter().all(|(n, _)| *n != spec.name) => Some("/tmp/x"),
                _ => samples.iter().find(|(n, _)| *n == spec.name).map(|(_, v)| *v),
            };
            let args: Vec<&str> = [flag.as_str()].into_iter().chain(value).chain(["app"]).collect();
            let c = config(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let shown = (spec.shown)(&c, spec);
            assert_eq!(shown, value.unwrap_or("True"), "{args:?} did not reach its field");
        }
        let shown = |args: &[&str]| {
            (spec("statsd_host").shown)(&config(args).unwrap(), spec("statsd_host"))
        };
        assert_eq!(shown(&["--statsd-host", "Stats:9125", "app"]), "('stats', 9125)");
        assert_eq!(shown(&["--statsd-host", "unix:///run/s", "app"]), "/run/s");
    }

    /// `--certfile` loads the pair into the config; what goes with it is checked with it.
    #[test]
    fn tls_certificate_settings() {
        let (cert, key) =
            (crate::tls::tests::testdata("cert.pem"), crate::tls::tests::testdata("key.pem"));
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        assert!(config(&["app"]).unwrap().tls.is_none());
        let c = config(&["--certfile", cert, "--keyfile", key, "--do-handshake-on-connect", "app"])
            .unwrap();
        let tls = c.tls.as_ref().unwrap();
        assert_eq!((tls.suppress_ragged_eofs, tls.do_handshake_on_connect), (true, true));
        assert_eq!((spec("certfile").shown)(&c, spec("certfile")), cert);
        assert_eq!((spec("keyfile").shown)(&c, spec("keyfile")), key);
        let error = |args: &[&str]| config(args).unwrap_err().0;
        assert!(error(&["--keyfile", key, "app"]).contains("needs --certfile"));
        assert!(
            error(&["--certfile", cert, "--keyfile", cert, "app"]).contains("no PEM private key")
        );
        // --ciphers goes into the server config: TLS 1.3's three, then the list's.
        let ciphers = ["--certfile", cert, "--keyfile", key, "--ciphers", "ECDHE+CHACHA20", "app"];
        let tls = config(&ciphers).unwrap().tls.unwrap();
        assert_eq!(tls.server.crypto_provider().cipher_suites.len(), 3 + 2);
        // Regression: a config file's `suppress_ragged_eofs = False` printed as True
        // without --certfile.
        let mut raw = parse_args(&["app"]).unwrap();
        raw.values.push(("suppress_ragged_eofs", "false".into()));
        let env = EnvDefaults { port: None, web_concurrency: None, forwarded_allow_ips: None };
        let off = Config::from_raw(&raw, &env).unwrap();
        let shown = (spec("suppress_ragged_eofs").shown)(&off, spec("suppress_ragged_eofs"));
        assert_eq!(shown, "False");
    }

    #[test]
    fn limit_request_body() {
        assert_eq!(config(&["app"]).unwrap().limit_request_body, 0);
        let c = config(&["--limit-request-body", "1048576", "app"]).unwrap();
        assert_eq!(c.limit_request_body, 1 << 20);
        assert!(config(&["--limit-request-body", "-1", "app"]).is_err());
        assert!(gunicorn::by_name("limit_request_body").is_none(), "a ferricorn setting");
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
