//! Every setting, defined once: its name, flags, type, default, documentation and how
//! `--print-config` shows it. `--help`, the table of `docs/settings.md`, the command-line
//! and config-file readers ([`super::sources`]) and the defaults [`super::Config::from_raw`]
//! applies all read [`OPTIONS`]; a default is written here and nowhere else.

use std::fmt::Display;
use std::path::PathBuf;

use super::sources::OFF;
use super::{Config, RawArgs};
use crate::forwarded;

/// What a setting's values are, and so how they are read and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// On when given; takes no value on the command line (`true`/`false` in a config file).
    Flag,
    /// A non-negative integer, checked when it is read.
    Int,
    /// A positive integer, checked when it is read.
    Positive,
    /// One value, the last one given; its section of `from_raw` parses and checks it
    /// (an address, a user name, a worker class...).
    Text,
    /// Repeatable: every value given counts, in order.
    List,
    /// One value, which the flag may go without (argparse's `nargs='?'`): `--flag` alone
    /// means this one. The next word is the value unless it starts with `-`, as in argparse.
    Optional(&'static str),
}

/// What applies when no source gives a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// A flag: off.
    Off,
    /// Nothing is set; the text (Markdown) says what that means ("none", "the current user").
    Unset(&'static str),
    /// This value, read exactly as a given one is.
    Value(&'static str),
    /// This value unless the environment says otherwise (the note, Markdown, says how).
    ValueOr(&'static str, &'static str),
    /// `NAME=value` pairs: a dict in a config file (`secure_scheme_headers`).
    Pairs(&'static [(&'static str, &'static str)]),
}

impl DefaultValue {
    /// The values that apply when none is given, as a source would give them.
    pub fn values(self) -> Vec<String> {
        match self {
            DefaultValue::Off | DefaultValue::Unset(_) => Vec::new(),
            DefaultValue::Value(v) | DefaultValue::ValueOr(v, _) => vec![v.to_owned()],
            DefaultValue::Pairs(pairs) => pairs.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        }
    }

    /// The single value that applies when none is given, if there is one.
    pub fn value(self) -> Option<&'static str> {
        match self {
            DefaultValue::Value(v) | DefaultValue::ValueOr(v, _) => Some(v),
            _ => None,
        }
    }

    /// As the settings reference shows it: numbers bare, other values as code.
    fn markdown(self) -> String {
        let code = |v: &str| match v.bytes().all(|b| b.is_ascii_digit()) {
            true => v.to_owned(),
            false => format!("`{v}`"),
        };
        match self {
            DefaultValue::Off => "off".to_owned(),
            DefaultValue::Value("") => "empty".to_owned(),
            DefaultValue::Unset(text) => text.to_owned(),
            DefaultValue::Value(v) => code(v),
            DefaultValue::ValueOr(v, note) => format!("{}, {note}", code(v)),
            DefaultValue::Pairs(_) => format!("`{}`", dict(&self.values())),
        }
        .replace('|', "\\|")
    }

    /// As `--help` shows it, after the help line; `None` when there is nothing to say.
    fn help(self) -> Option<String> {
        match self {
            DefaultValue::Off | DefaultValue::Unset("none") => None,
            other => Some(other.markdown().replace('`', "")),
        }
    }
}

/// One setting: what its flags are called, what it holds, what applies when it is not
/// given, and what the help and the settings reference say of it.
pub struct OptionSpec {
    /// gunicorn's setting name (its config-file name); ferricorn's own settings follow suit.
    pub name: &'static str,
    /// The one-letter flag gunicorn gives it, if any.
    pub short: Option<char>,
    /// Long flags without `--`; the first is the one error messages name. Empty: config
    /// file only.
    pub long: &'static [&'static str],
    /// What `--help` calls its value; `None` exactly for [`Kind::Flag`].
    pub metavar: Option<&'static str>,
    /// How its values are read and checked.
    pub kind: Kind,
    /// What applies when no source gives it: the one place a default is written.
    pub default: DefaultValue,
    /// Whether gunicorn has this setting under `name` (its config-file name too).
    pub gunicorn: bool,
    /// One line for `--help`; the default is appended to it from [`Self::default`].
    pub help: &'static str,
    /// The settings reference's description (Markdown).
    pub doc: &'static str,
    /// The value in effect, as `--print-config` prints it (gunicorn's `str()` of the value):
    /// read back from the validated [`Config`], so a test can compare it with the default.
    pub shown: fn(&Config, &OptionSpec) -> String,
}

/// The row for `name`; every name the code asks for is in [`OPTIONS`] (a unit test runs
/// every section).
pub fn spec(name: &str) -> &'static OptionSpec {
    OPTIONS.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("no setting {name:?}"))
}

/// The values in effect for a setting: those the sources gave, else its default's.
pub fn given(raw: &RawArgs, spec: &OptionSpec) -> Vec<String> {
    match raw.all(spec.name).map(str::to_owned).collect::<Vec<_>>() {
        none if none.is_empty() => spec.default.values(),
        some => some,
    }
}

/// How Python prints `None`.
const NONE: &str = "None";

/// A flag as Python prints a bool.
fn on(b: bool) -> String {
    if b { "True" } else { "False" }.to_owned()
}

fn maybe(value: Option<impl Display>) -> String {
    value.map_or_else(|| NONE.to_owned(), |v| v.to_string())
}

fn path(value: &Option<PathBuf>) -> String {
    maybe(value.as_ref().map(|p| p.display()))
}

/// A repeatable setting: one value bare, several as a Python list, none as `[]`.
fn list<T: Display>(values: impl IntoIterator<Item = T>) -> String {
    let values: Vec<String> = values.into_iter().map(|v| v.to_string()).collect();
    match values.as_slice() {
        [one] => one.clone(),
        many => {
            format!("[{}]", many.iter().map(|v| format!("'{v}'")).collect::<Vec<_>>().join(", "))
        }
    }
}

/// `NAME=value` pairs as a Python dict.
pub(super) fn dict(pairs: &[String]) -> String {
    let items: Vec<String> = pairs
        .iter()
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .map(|(k, v)| format!("'{k}': '{v}'"))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// A dict setting as Python prints it; a config file's empty dict arrives as [`OFF`].
fn pairs(c: &Config, spec: &OptionSpec) -> String {
    dict(&given(&c.raw, spec).into_iter().filter(|v| v != OFF).collect::<Vec<_>>())
}

/// A setting with no typed field of its own, shown as the sources (or the default) give it.
fn given_text(c: &Config, spec: &OptionSpec) -> String {
    match spec.kind {
        Kind::Flag => on(c.raw.has(spec.name)),
        Kind::List => list(given(&c.raw, spec)),
        _ => maybe(given(&c.raw, spec).pop()),
    }
}

use DefaultValue::{Off, Pairs, Unset, Value, ValueOr};
use Kind::{Flag, Int, List, Optional, Positive, Text};

/// Every setting ferricorn has today. Only settings that work are listed.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "config",
        short: Some('c'),
        long: &["config"],
        metavar: Some("CONFIG"),
        kind: Text,
        default: Unset("`./ferricorn.conf.py`, else `./gunicorn.conf.py`, if present"),
        gunicorn: true,
        help: "Python config file (PATH or python:MODULE).",
        doc: "A gunicorn-style Python config file: a path, or `python:MODULE`. Module-level names that are settings set them (below the command line and `FERRICORN_CMD_ARGS`); hooks are functions named after them; a gunicorn setting ferricorn lacks gets a warning. See [configuration](index.md#configuration).",
        shown: given_text,
    },
    OptionSpec {
        name: "wsgi_app",
        short: None,
        long: &[],
        metavar: Some("STRING"),
        kind: Text,
        default: Unset("none"),
        gunicorn: true,
        help: "",
        doc: "Config file only: the `APP_MODULE` when the command line gives none.",
        shown: given_text,
    },
    OptionSpec {
        name: "check_config",
        short: None,
        long: &["check-config"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Check the settings and that the app loads, then exit (0: fine, 1: not).",
        doc: "Read every setting and import the app in this process, then exit: 0 when both work, 1 (with the reason) when not.",
        shown: |c, _| on(c.check_config),
    },
    OptionSpec {
        name: "print_config",
        short: None,
        long: &["print-config"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Print the settings in effect and exit.",
        doc: "Print every setting as `name = value`, sorted, with the value in effect after all sources are merged, then exit. Values read as gunicorn prints them (`None`, `True`, `[]`), except that one bind or list item is printed bare.",
        shown: |c, _| on(c.print_config),
    },
    OptionSpec {
        name: "paste",
        short: None,
        long: &["paste", "paster"],
        metavar: Some("INI"),
        kind: Text,
        default: Unset("none"),
        gunicorn: true,
        help: "Load the app from a PasteDeploy ini file: INI or INI#name.",
        doc: "Load the app through PasteDeploy (`paste.deploy.loadapp`) from `INI`, or its `[app:NAME]` with `INI#NAME`, instead of `APP_MODULE`; the ini's `[loggers]` sections configure Python logging first. As in gunicorn, the ini's `[server:*]` sections are not read.",
        shown: |c, _| maybe(c.paste.as_ref().map(|p| p.path.display())),
    },
    OptionSpec {
        name: "raw_paste_global_conf",
        short: None,
        long: &["paste-global"],
        metavar: Some("KEY=VALUE"),
        kind: List,
        default: Unset("none"),
        gunicorn: true,
        help: "A global_conf value for --paste. Repeatable.",
        doc: "Passed to the Paste app's `global_conf` (repeatable).",
        shown: |c, _| list(c.paste.iter().flat_map(|p| &p.globals).map(|(k, v)| format!("{k}={v}"))),
    },
    OptionSpec {
        name: "capture_output",
        short: None,
        long: &["capture-output"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Send the workers' stdout and stderr to --error-logfile.",
        doc: "Redirect the workers' stdout and stderr (`print`, tracebacks the app writes) into `--error-logfile`; does nothing when the error log is stderr.",
        shown: |c, _| on(c.capture_output),
    },
    OptionSpec {
        name: "logconfig",
        short: None,
        long: &["log-config"],
        metavar: Some("FILE"),
        kind: Text,
        default: Unset("none"),
        gunicorn: true,
        help: "Configure Python logging from an ini file (logging.config.fileConfig).",
        doc: "Python's `logging.config.fileConfig` file, applied in the master before the app loads; the error and access logs then go through the `gunicorn.error` and `gunicorn.access` loggers, as in gunicorn.",
        shown: |c, _| path(&c.logconfig),
    },
    OptionSpec {
        name: "logconfig_json",
        short: None,
        long: &["log-config-json"],
        metavar: Some("FILE"),
        kind: Text,
        default: Unset("none"),
        gunicorn: true,
        help: "Configure Python logging from a JSON dictConfig file.",
        doc: "A JSON file for Python's `logging.config.dictConfig`, merged over gunicorn's default logging config as gunicorn does; the error and access logs then go through the `gunicorn.error` and `gunicorn.access` loggers. The config file's `logconfig_dict` works the same way and wins over this file, which wins over `--log-config`.",
        shown: |c, _| path(&c.logconfig_json),
    },
    OptionSpec {
        name: "logger_class",
        short: None,
        long: &["logger-class"],
        metavar: Some("STRING"),
        kind: Text,
        default: Value("gunicorn.glogging.Logger"),
        gunicorn: true,
        help: "A gunicorn Logger class (pkg.mod.Class) for the error and access logs.",
        doc: "A subclass of gunicorn's `glogging.Logger` (or a class with its methods), as `pkg.mod.Class`: it is built once in the master with a gunicorn-style `cfg`, its `access(resp, req, environ, request_time)` is called for every response and its `error`/`info`/... for every error log line. The default (also `simple`) is ferricorn's native logs, unless `--log-config`, `--log-config-json` or `logconfig_dict` route both through Python's `logging` as gunicorn's Logger does. See [logging](index.md#logging).",
        shown: given_text,
    },
    OptionSpec {
        name: "bind",
        short: Some('b'),
        long: &["bind"],
        metavar: Some("ADDRESS"),
        kind: List,
        default: ValueOr("127.0.0.1:8000", "or `0.0.0.0:$PORT` when `PORT` is set"),
        gunicorn: true,
        help: "Socket to bind: HOST, HOST:PORT, :PORT, [::1]:PORT, unix:PATH or fd://N. Repeatable.",
        doc: "Socket to listen on: `HOST`, `HOST:PORT`, `:PORT` (every IPv4 interface, as gunicorn), `[IPv6]:PORT`, `unix:PATH` or `fd://N`; `tcp://` may prefix an address. `unix://PATH` is `unix:PATH` as gunicorn reads it: `unix://tmp/x.sock` is the relative `tmp/x.sock`, `unix:///tmp/x.sock` the absolute one. Repeat to listen on several. A unix socket file is created (a stale one replaced) and removed on exit.",
        shown: |c, _| list(&c.binds),
    },
    OptionSpec {
        name: "workers",
        short: Some('w'),
        long: &["workers"],
        metavar: Some("INT"),
        kind: Positive,
        default: ValueOr("1", "or `$WEB_CONCURRENCY`"),
        gunicorn: true,
        help: "Number of worker processes.",
        doc: "Number of worker processes (positive).",
        shown: |c, _| c.workers.to_string(),
    },
    OptionSpec {
        name: "worker_class",
        short: Some('k'),
        long: &["worker-class"],
        metavar: Some("STRING"),
        kind: Text,
        default: Value("sync"),
        gunicorn: true,
        help: "Worker type: sync, gthread (or async), gevent or eventlet (async with threads), asgi.",
        doc: "Worker type: `sync` (one request per connection, like gunicorn's) or `async` (an event loop with keep-alive and pipelining; `gthread` is the same). `gevent` and `eventlet` run `async` with a pool of app threads sized from `--worker-connections`, at most 100, and patch nothing (see [migrating.md](migrating.md#worker-classes)). gunicorn's class paths for these (`gunicorn.workers.ggevent.GeventWorker`, `egg:gunicorn#gthread`, ...) are accepted. `asgi` runs ASGI apps (gunicorn 27's name; `uvicorn.workers.UvicornWorker` and `uvicorn_worker.UvicornWorker`, and subclasses of them, map to it with a log line; see [asgi.md](asgi.md)). `tornado` and other class paths are refused with one line saying what is offered.",
        shown: |c, _| c.worker_class.name().to_owned(),
    },
    OptionSpec {
        name: "threads",
        short: None,
        long: &["threads"],
        metavar: Some("INT"),
        kind: Positive,
        default: Value("1"),
        gunicorn: true,
        help: "Python threads that run the app; > 1 with the sync worker selects async, as gunicorn's gthread.",
        doc: "With N > 1 the app runs on a pool of N Python threads (`wsgi.multithread` is then true); with 1 on the event loop thread. As in gunicorn, N > 1 with the `sync` worker (the default) switches to the threaded worker: ferricorn's `async`. Ignored with `gevent` and `eventlet`, as gunicorn ignores it.",
        shown: |c, _| c.threads.to_string(),
    },
    OptionSpec {
        name: "worker_connections",
        short: None,
        long: &["worker-connections"],
        metavar: Some("INT"),
        kind: Positive,
        default: Value("1000"),
        gunicorn: true,
        help: "async worker: most open connections per worker.",
        doc: "`async` only: most open connections per worker; beyond it the worker stops accepting and the kernel backlog holds new clients. With `-k gevent` or `eventlet` it also sizes the app thread pool (at most 100).",
        shown: |c, _| c.worker_connections.to_string(),
    },
    OptionSpec {
        name: "keepalive",
        short: None,
        long: &["keep-alive"],
        metavar: Some("INT"),
        kind: Int,
        default: Value("2"),
        gunicorn: true,
        help: "async worker: seconds an idle keep-alive connection stays open.",
        doc: "`async` only: seconds an idle keep-alive connection is kept open; 0 disables keep-alive.",
        shown: |c, _| c.keepalive.as_secs().to_string(),
    },
    OptionSpec {
        name: "backlog",
        short: None,
        long: &["backlog"],
        metavar: Some("INT"),
        kind: Int,
        default: Value("2048"),
        gunicorn: true,
        help: "Maximum number of pending connections.",
        doc: "Pending-connection queue length passed to `listen(2)`.",
        shown: |c, _| c.backlog.to_string(),
    },
    // TLS (issue 12): these five rows stay together; --ca-certs, --cert-reqs, --ciphers
    // and --ssl-version join them.
    OptionSpec {
        name: "certfile",
        short: None,
        long: &["certfile"],
        metavar: Some("FILE"),
        kind: Text,
        default: Unset("none"),
        gunicorn: true,
        help: "TLS certificate file (PEM); serve HTTPS.",
        doc: "Serve HTTPS on every `--bind`, with this PEM certificate chain (leaf first; the private key may follow it in the same file). The master reads it at boot and on HUP; a file that is missing, unreadable or does not match the key is one line and exit 2 at boot, and on HUP an error line while the running certificate keeps serving. See [TLS](tls.md).",
        shown: |c, _| maybe(c.tls.as_ref().map(|t| t.certfile.display())),
    },
    OptionSpec {
        name: "keyfile",
        short: None,
        long: &["keyfile"],
        metavar: Some("FILE"),
        kind: Text,
        default: Unset("none"),
        gunicorn: true,
        help: "TLS private key file (PEM).",
        doc: "Without it, the key is in `--certfile`. The certificate's private key, PEM (PKCS#8, PKCS#1 RSA or SEC1 EC). Read with `--certfile`, by the master, before `--user` applies. See [TLS](tls.md).",
        shown: |c, _| maybe(c.tls.as_ref().and_then(|t| t.keyfile.as_ref()).map(|k| k.display())),
    },
    OptionSpec {
        name: "do_handshake_on_connect",
        short: None,
        long: &["do-handshake-on-connect"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Accepted as gunicorn's; the handshake always runs first, off the Python path.",
        doc: "gunicorn: whether Python's `ssl` module does the handshake when the socket is wrapped or at the first read. In ferricorn the handshake is the first thing a connection does either way, before its first request is read, on the worker's loop (never in the app's thread), bounded by `--read-timeout` (sync) or the first request's wait (async). See [TLS](tls.md).",
        shown: given_text,
    },
    OptionSpec {
        name: "suppress_ragged_eofs",
        short: None,
        long: &["suppress-ragged-eofs"],
        metavar: None,
        kind: Flag,
        default: Value("true"),
        gunicorn: true,
        help: "A TLS client's close without close_notify reads as an end of stream.",
        doc: "gunicorn's meaning: a client that closes TCP without TLS's `close_notify` alert has ended its stream (on, the default), rather than cut it short. Off (`suppress_ragged_eofs = False` in a config file), such a close is an error: a request body cut by it is a broken connection, not a short body. See [TLS](tls.md).",
        shown: |c, _| on(super::suppress_ragged_eofs(&c.raw)),
    },
    OptionSpec {
        name: "ssl_context",
        short: None,
        long: &[],
        metavar: Some("FUNCTION"),
        kind: Text,
        default: Unset("none"),
        gunicorn: true,
        help: "",
        doc: "Config file only. gunicorn calls `ssl_context(config, default_ssl_context_factory)` for a Python `ssl.SSLContext`; ferricorn's TLS is rustls and cannot use one. With `--certfile`, a config file that defines it is refused (exit 2) naming the settings that say the same; without, it is never called in gunicorn either, and ignored. See [TLS](tls.md#ssl_context).",
        shown: |c, _| maybe(c.raw.last("ssl_context").map(|_| "<function>")),
    },
    OptionSpec {
        name: "chdir",
        short: None,
        long: &["chdir"],
        metavar: Some("DIR"),
        kind: Text,
        default: Unset("the current directory"),
        gunicorn: true,
        help: "Change to this directory before loading the app.",
        doc: "Directory to change to before loading the app.",
        shown: |c, _| path(&c.chdir),
    },
    OptionSpec {
        name: "pythonpath",
        short: None,
        long: &["pythonpath"],
        metavar: Some("PATHS"),
        kind: List,
        default: Unset("none"),
        gunicorn: true,
        help: "Comma-separated directories to add to the Python path.",
        doc: "Comma-separated directories put at the front of `sys.path`.",
        shown: |c, _| if c.pythonpath.is_empty() { NONE.to_owned() } else { c.pythonpath.join(",") },
    },
    OptionSpec {
        name: "raw_env",
        short: Some('e'),
        long: &["env"],
        metavar: Some("KEY=VALUE"),
        kind: List,
        default: Unset("none"),
        gunicorn: true,
        help: "Set an environment variable in the workers. Repeatable.",
        doc: "Environment variable set for the app (repeatable).",
        shown: |c, _| list(c.env.iter().map(|(k, v)| format!("{k}={v}"))),
    },
    OptionSpec {
        name: "forwarded_allow_ips",
        short: None,
        long: &["forwarded-allow-ips"],
        metavar: Some("STRING"),
        kind: List,
        default: ValueOr("127.0.0.1,::1", "or `$FORWARDED_ALLOW_IPS`"),
        gunicorn: true,
        help: "Front-end IPs or networks allowed to set proxy headers; * for any.",
        doc: "Comma-separated addresses and CIDR networks (or `*`) of the front ends whose `secure_scheme_headers` and `--forwarder-headers` are believed. Peers on a unix socket are always trusted, as in gunicorn.",
        shown: given_text,
    },
    OptionSpec {
        name: "secure_scheme_headers",
        short: None,
        long: &[],
        metavar: Some("DICT"),
        kind: List,
        default: Pairs(&forwarded::DEFAULT_SECURE_SCHEME_HEADERS),
        gunicorn: true,
        help: "",
        doc: "Config file only: headers a trusted front end sets to say the request came over https (`wsgi.url_scheme`). Two of them that disagree get 400.",
        shown: pairs,
    },
    OptionSpec {
        name: "forwarder_headers",
        short: None,
        long: &["forwarder-headers"],
        metavar: Some("STRING"),
        kind: List,
        default: Value("SCRIPT_NAME,PATH_INFO"),
        gunicorn: true,
        help: "Headers with _ a trusted front end may set (SCRIPT_NAME...).",
        doc: "Comma-separated header names containing `_` that a trusted front end may send into the environ; `SCRIPT_NAME` from it sets where the app is mounted (the path must start with it, else 400).",
        shown: given_text,
    },
    OptionSpec {
        name: "header_map",
        short: None,
        long: &["header-map"],
        metavar: Some("STRING"),
        kind: Text,
        default: Value("drop"),
        gunicorn: true,
        help: "Other headers with _ in their name: drop, refuse (400) or dangerous (keep).",
        doc: "What happens to a header whose name holds `_` (which would map onto the same environ key as its `-` twin) when it is not a trusted forwarder header: `drop` it, `refuse` the request with 400, or pass it on (`dangerous`).",
        shown: given_text,
    },
    // Issue 12: the uwsgi protocol (nginx's `uwsgi_pass`).
    OptionSpec {
        name: "protocol",
        short: None,
        long: &["protocol"],
        metavar: Some("STRING"),
        kind: Text,
        default: Value("http"),
        gunicorn: true,
        help: "What connections speak: http, or uwsgi (nginx's uwsgi_pass).",
        doc: "`http`, or `uwsgi`: each request arrives as a uwsgi packet (nginx's `uwsgi_pass` with `include uwsgi_params;`), its CGI variables read as gunicorn reads them, from the peers `--uwsgi-allow-from` names. The response is an HTTP/1.1 head and a body never chunked. See [deploying behind nginx with uwsgi](deploy.md#nginx-with-uwsgi_pass).",
        shown: given_text,
    },
    OptionSpec {
        name: "uwsgi_allow_ips",
        short: None,
        long: &["uwsgi-allow-from"],
        metavar: Some("STRING"),
        kind: List,
        default: Value("127.0.0.1,::1"),
        gunicorn: true,
        help: "Front-end IPs or networks allowed to send uwsgi requests; * for any.",
        doc: "With `--protocol uwsgi`: comma-separated addresses and CIDR networks (or `*`) of the front ends that may send requests; another peer gets 403 and a close. Peers on a unix socket are always allowed, as in gunicorn. Their `REMOTE_ADDR` and `REMOTE_PORT` become the environ's.",
        shown: given_text,
    },
    OptionSpec {
        name: "proxy_protocol",
        short: None,
        long: &["proxy-protocol"],
        metavar: Some("[MODE]"),
        kind: Optional("auto"),
        default: Value("off"),
        gunicorn: true,
        help: "Read a PROXY protocol header first: off, v1, v2 or auto (the flag alone).",
        doc: "Whether a connection may start with HAProxy's PROXY protocol header, read before anything else on it (before TLS, before the first request): `off`, `v1` (text), `v2` (binary) or `auto` (either); the flag alone means `auto`, and `true`/`false` in a config file mean `auto`/`off`, as in gunicorn. A connection without a header is served as it is, in every mode. The header's client becomes `REMOTE_ADDR`/`REMOTE_PORT` for every request of the connection (`LOCAL` and `UNSPEC` keep the socket's peer), and the environ gets `PROXY_PROTOCOL`, `PROXY_ADDR` and `PROXY_PORT`. A header that does not parse gets 400. See [deploy](deploy.md#the-proxy-protocol).",
        shown: |c, _| c.proxy_protocol.mode_name().to_owned(),
    },
    OptionSpec {
        name: "proxy_allow_ips",
        short: None,
        long: &["proxy-allow-from"],
        metavar: Some("STRING"),
        kind: List,
        default: Value("127.0.0.1,::1"),
        gunicorn: true,
        help: "Front-end IPs or networks allowed to send a PROXY header; * for any.",
        doc: "Comma-separated addresses and CIDR networks (or `*`) of the front ends that may send a PROXY protocol header; a header from any other peer gets 403. Peers on a unix socket are always allowed, as in gunicorn. `--forwarded-allow-ips` still judges the socket's peer (the proxy), not the header's client.",
        shown: given_text,
    },
    // Issue 13: the asgi worker's settings (gunicorn 27's; they act only with -k asgi).
    OptionSpec {
        name: "http_protocols",
        short: None,
        long: &["http-protocols"],
        metavar: Some("STRING"),
        kind: Text,
        default: Value("h1"),
        gunicorn: true,
        help: "HTTP versions to serve, most preferred first: h1, h2 (comma-separated).",
        doc: "Comma-separated, most preferred first: `h1` (HTTP/1.1), `h2` (HTTP/2). With `h2`, TLS offers `h2` in ALPN in this order (HTTP/1.1 stays offered, so a client that does not choose `h2` is served HTTP/1.1, as in gunicorn), and cleartext HTTP/2 is what `--http2-cleartext` says. HTTP/2 is served by the `async` worker (and `gthread`, its name) and the `asgi` worker; the `sync` worker serves HTTP/1.1 only, as gunicorn's does. See [http2.md](http2.md).",
        shown: |c, _| c.http2.protocols_shown(),
    },
    OptionSpec {
        name: "http2_cleartext",
        short: None,
        long: &["http2-cleartext"],
        metavar: Some("STRING"),
        kind: Text,
        default: Value("off"),
        gunicorn: true,
        help: "HTTP/2 without TLS: off, prior-knowledge, upgrade or both (trusted peers only).",
        doc: "How a connection without TLS may speak HTTP/2 when `--http-protocols` has `h2`: `off`; `prior-knowledge` (the connection opens with the HTTP/2 preface, RFC 9113 §3.3); `upgrade` (an HTTP/1.1 `Upgrade: h2c` request); `both`. As in gunicorn 27, only peers in `--forwarded-allow-ips` are considered (others get HTTP/1.1), and with `prior-knowledge` alone such a peer that sends HTTP/1.x gets a 400. `True`/`False` in a config file mean `prior-knowledge`/`off`. Ignored under TLS, where ALPN decides. See [http2.md](http2.md).",
        shown: |c, _| c.http2.cleartext.name().to_owned(),
    },
    OptionSpec {
        name: "http2_max_concurrent_streams",
        short: None,
        long: &["http2-max-concurrent-streams"],
        metavar: Some("INT"),
        kind: Text,
        default: Value("100"),
        gunicorn: true,
        help: "HTTP/2: most streams open at once on one connection.",
        doc: "SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §6.5.2): how many requests one HTTP/2 connection may have in flight; at least 1. Streams beyond the app threads wait for a thread.",
        shown: |c, _| c.http2.max_concurrent_streams.to_string(),
    },
    OptionSpec {
        name: "http2_initial_window_size",
        short: None,
        long: &["http2-initial-window-size"],
        metavar: Some("INT"),
        kind: Text,
        default: Value("65535"),
        gunicorn: true,
        help: "HTTP/2: each stream's initial flow-control window, in bytes.",
        doc: "SETTINGS_INITIAL_WINDOW_SIZE (RFC 9113 §6.9.2): how much of a request body a client may send before the app reads it; at most 2147483647. The window is handed back only as the app reads `wsgi.input`.",
        shown: |c, _| c.http2.initial_window_size.to_string(),
    },
    OptionSpec {
        name: "http2_max_frame_size",
        short: None,
        long: &["http2-max-frame-size"],
        metavar: Some("INT"),
        kind: Text,
        default: Value("16384"),
        gunicorn: true,
        help: "HTTP/2: the largest frame payload accepted, 16384 to 16777215.",
        doc: "SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2): the largest frame payload the server accepts, from 16384 to 16777215.",
        shown: |c, _| c.http2.max_frame_size.to_string(),
    },
    OptionSpec {
        name: "http2_max_header_list_size",
        short: None,
        long: &["http2-max-header-list-size"],
        metavar: Some("INT"),
        kind: Text,
        default: Value("65536"),
        gunicorn: true,
        help: "HTTP/2: the largest header list accepted, decoded (0: unlimited).",
        doc: "SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2): the largest request header list, counted after HPACK decoding (the HPACK-bomb and CONTINUATION-flood bound); 0: unlimited. A request over it is refused and, sent anyway, ends the connection.",
        shown: |c, _| c.http2.max_header_list_size.to_string(),
    },
    OptionSpec {
        name: "asgi_loop",
        short: None,
        long: &["asgi-loop"],
        metavar: Some("STRING"),
        kind: Text,
        default: Value("auto"),
        gunicorn: true,
        help: "The asgi worker's event loop: auto (uvloop if installed), asyncio or uvloop.",
        doc: "The asyncio event loop the `asgi` worker runs the app's coroutines on: `auto` (uvloop when it imports, else asyncio's own), `asyncio`, or `uvloop` (asyncio's loop and a warning when uvloop is not installed, as gunicorn does). The sockets are ferricorn's either way; see [asgi.md](asgi.md).",
        shown: |c, _| c.asgi.event_loop.name().to_owned(),
    },
    OptionSpec {
        name: "asgi_lifespan",
        short: None,
        long: &["asgi-lifespan"],
        metavar: Some("STRING"),
        kind: Text,
        default: Value("auto"),
        gunicorn: true,
        help: "The ASGI lifespan scope: auto (if the app supports it), on or off.",
        doc: "Whether each `asgi` worker runs the app's lifespan scope before it serves and after its last request: `auto` runs it and, when the app raises or returns before `lifespan.startup.complete`, takes that as no lifespan support (a debug line) and serves; `on` runs it and any failure to start stops the server; `off` never runs it. In `auto` and `on`, an app that sends `lifespan.startup.failed` stops the server (the worker exits with the boot-failure code and the master stops, as gunicorn's does). The lifespan `state` dict reaches each request's scope as a shallow copy.",
        shown: |c, _| c.asgi.lifespan.name().to_owned(),
    },
    OptionSpec {
        name: "asgi_disconnect_grace_period",
        short: None,
        long: &["asgi-disconnect-grace-period"],
        metavar: Some("INT"),
        kind: Int,
        default: Value("3"),
        gunicorn: true,
        help: "Seconds an ASGI app may run on after http.disconnect before it is cancelled.",
        doc: "When a client goes away while the `asgi` worker's app still serves its request, the app's `receive()` returns `http.disconnect`, and the app has this many seconds to clean up before its task is cancelled; 0 cancels it at once.",
        shown: |c, _| c.asgi.disconnect_grace.as_secs().to_string(),
    },
    OptionSpec {
        name: "root_path",
        short: None,
        long: &["root-path"],
        metavar: Some("STRING"),
        kind: Text,
        default: Value(""),
        gunicorn: true,
        help: "The ASGI scope's root_path: where the app is mounted behind a proxy.",
        doc: "The `root_path` of every ASGI scope the `asgi` worker makes: the path the app is mounted at behind a reverse proxy (`/api`). A trusted forwarder's `SCRIPT_NAME` header wins over it, as for WSGI. `path` is the request's path as sent.",
        shown: given_text,
    },
    OptionSpec {
        name: "websocket_max_message_size",
        short: None,
        long: &["websocket-max-message-size"],
        metavar: Some("INT"),
        kind: Int,
        default: Value("16777216"),
        gunicorn: true,
        help: "Largest WebSocket message, in bytes, the asgi worker accepts (0: no limit).",
        doc: "The `asgi` worker hands the app whole WebSocket messages, so each one is held in memory until its last frame arrives. A frame or a fragmented message larger than this closes the connection with code 1009 (message too big, RFC 6455 section 7.4.1), before its payload is buffered. 0: no limit. gunicorn 27's default, 16 MiB.",
        shown: |c, _| c.asgi.websocket_max_message.to_string(),
    },
    OptionSpec {
        name: "graceful_timeout",
        short: None,
        long: &["graceful-timeout"],
        metavar: Some("INT"),
        kind: Int,
        default: Value("30"),
        gunicorn: true,
        help: "Seconds workers get to finish requests after TERM before they are killed.",
        doc: "Seconds workers get after TERM to finish in-flight requests before they are killed.",
        shown: |c, _| c.graceful_timeout.as_secs().to_string(),
    },
    OptionSpec {
        name: "limit_request_line",
        short: None,
        long: &["limit-request-line"],
        metavar: Some("INT"),
        kind: Int,
        default: Value("4094"),
        gunicorn: true,
        help: "Maximum request line size in bytes (up to 8190), 0 for no limit of its own.",
        doc: "Longest request line in bytes, without its CRLF; anything above 8190 means 8190. Longer lines get 414. 0 means no limit of its own, as in gunicorn 27; the line then counts against the head's budget (`--limit-request-fields` × (`--limit-request-field_size` + 2) + 4 bytes, 819,204 by default) instead of being read without end.",
        shown: |c, _| c.limits.request_line.to_string(),
    },
    OptionSpec {
        name: "limit_request_fields",
        short: None,
        long: &["limit-request-fields"],
        metavar: Some("INT"),
        kind: Int,
        default: Value("100"),
        gunicorn: true,
        help: "Maximum number of request header fields.",
        doc: "Most header fields per request; 0 or anything above 32768 means 32768. More get 431. Every field counts, also one that `--header-map drop` drops.",
        shown: |c, _| c.limits.fields.to_string(),
    },
    OptionSpec {
        name: "limit_request_field_size",
        short: None,
        long: &["limit-request-field_size", "limit-request-field-size"],
        metavar: Some("INT"),
        kind: Int,
        default: Value("8190"),
        gunicorn: true,
        help: "Maximum size of one request header field in bytes, 0 for 8190.",
        doc: "Longest header field in bytes, its CRLF included (and its continuation lines, with `--permit-obsolete-folding`); 0 means 8190, as gunicorn 27's parser reads it (its documentation says unlimited). Longer get 431.",
        shown: |c, _| c.limits.field_size.to_string(),
    },
    OptionSpec {
        name: "limit_request_body",
        short: None,
        long: &["limit-request-body"],
        metavar: Some("INT"),
        kind: Int,
        default: Value("0"),
        gunicorn: false,
        help: "Largest request body in bytes; a larger one gets 413 before the app runs. 0: no limit.",
        doc: "Largest request body in bytes, as nginx's `client_max_body_size`. A request whose Content-Length is larger gets 413 before the app runs, and the connection closes. A chunked body that grows past it is cut off: with 413 while nothing of the response has gone out (the app's `wsgi.input.read()` raises `ClientDisconnected`, an `OSError`; if the app lets it propagate the client gets 413), else the connection closes. Both worker classes. 0 means no limit. ferricorn only: gunicorn 27 has no such setting.",
        shown: |c, _| c.limit_request_body.to_string(),
    },
    OptionSpec {
        name: "casefold_http_method",
        short: None,
        long: &["casefold-http-method"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Upper-case the request method (with --permit-unconventional-http-method).",
        doc: "Upper-case the method after it is checked, so `get` reaches the app as `GET`. Methods are case-sensitive (RFC 9110 §9.1); without `--permit-unconventional-http-method` a lower-case method is refused before this applies.",
        shown: |c, _| on(c.limits.lenient.casefold_method),
    },
    OptionSpec {
        name: "permit_obsolete_folding",
        short: None,
        long: &["permit-obsolete-folding"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Accept obsolete header line folding, joining folded lines with a space.",
        doc: "Accept a header line that starts with a space or tab as the continuation of the field before it (obs-fold, RFC 9112 §5.2): the pieces are trimmed and joined with one space, and count together against `--limit-request-field_size`. Off: such a request gets 400.",
        shown: |c, _| on(c.limits.lenient.obsolete_folding),
    },
    OptionSpec {
        name: "permit_unconventional_http_method",
        short: None,
        long: &["permit-unconventional-http-method"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Accept any token as a method, not only 3-20 characters without lower case or #.",
        doc: "Accept any token (RFC 9110 §5.6.2) as the method. Off, as in gunicorn, a method must also be 3 to 20 characters long with no lower-case letter and no `#`, or the request gets 400.",
        shown: |c, _| on(c.limits.lenient.unconventional_method),
    },
    OptionSpec {
        name: "permit_unconventional_http_version",
        short: None,
        long: &["permit-unconventional-http-version"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Accept any HTTP/d.d version, not only HTTP/1.0 and HTTP/1.1.",
        doc: "Accept any `HTTP/d.d` version in the request line. A version below 1.1 is served as HTTP/1.0 and any other as HTTP/1.1 (`SERVER_PROTOCOL` says which). Off: anything but HTTP/1.0 and HTTP/1.1 gets 400.",
        shown: |c, _| on(c.limits.lenient.unconventional_version),
    },
    OptionSpec {
        name: "strip_header_spaces",
        short: None,
        long: &["strip-header-spaces"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Remove spaces between a header name and its colon (unsafe, as in gunicorn).",
        doc: "Accept `Name : value` by removing spaces and tabs before the colon. RFC 9112 §5.1 requires a 400 for it, and a proxy that reads the line differently is a request-smuggling seam. Off: 400.",
        shown: |c, _| on(c.limits.lenient.strip_header_spaces),
    },
    OptionSpec {
        name: "timeout",
        short: Some('t'),
        long: &["timeout"],
        metavar: Some("INT"),
        kind: Int,
        default: Value("30"),
        gunicorn: true,
        help: "Seconds a worker may stay silent (stuck in a request) before it is killed and replaced; 0 disables.",
        doc: "Seconds a worker may go without a heartbeat before the master kills it (SIGABRT, which raises `WorkerTimeout` in the app so the client gets a 500, then SIGKILL a second later) and starts another. The log lines name the request it was stuck in (every busy app thread's, with `--threads`), and the worker dumps every thread's Python stack to the error log before the kill. 0 disables. Workers beat from their loop, and app threads note their own signs of life (a piece of response, a wait on the client), so a request that holds the loop (any `sync` request, an `async` request with `--threads 1`) or an app thread silent in one request for this long times out. See [Timeouts](timeouts.md).",
        shown: |c, _| c.timeout.map_or(0, |t| t.as_secs()).to_string(),
    },
    OptionSpec {
        name: "read_timeout",
        short: None,
        long: &["read-timeout"],
        metavar: Some("INT"),
        kind: Int,
        default: Value("30"),
        gunicorn: false,
        help: "Seconds a client may stay silent mid-request, or take nothing of a response, before it is disconnected.",
        doc: "How long a worker waits on a client that sends nothing more of a request it began (head or body) or takes nothing of its response; then the connection is closed (with 400 if the app was reading the body). Both worker classes honour it, and a worker waiting on a client keeps its heartbeat, so a slow upload never reaches `--timeout`, which is for stuck apps. gunicorn has no such setting: its sync worker waits until `--timeout` kills it. 0 means 1.",
        shown: |c, _| c.read_timeout.as_secs().to_string(),
    },
    OptionSpec {
        name: "request_timeout",
        short: None,
        long: &["request-timeout"],
        metavar: Some("SECONDS"),
        kind: Text,
        default: Value("0"),
        gunicorn: false,
        help: "Seconds a request may run on an app thread before RequestTimeout is raised in it (504 to the client, the worker lives on); 0 disables.",
        doc: "A per-request deadline (fractions allowed). A request still running after this long gets `ferricorn.RequestTimeout` (a `BaseException`) raised in its thread, as mod_wsgi's request-timeout does; its stack is logged; the client gets 504 if no header went out yet, else the response is cut off; the worker carries on. Applies to app threads (`--threads` > 1, and the `sync` worker's main thread); the exception lands when the thread next runs Python, so a thread blocked in one long C call is left to `--timeout`. With `-k asgi` the request's task is cancelled instead (the same 504 and log line). See [Timeouts](timeouts.md). gunicorn has no such setting. 0 disables.",
        shown: |c, _| c.request_timeout.map_or(0.0, |t| t.as_secs_f64()).to_string(),
    },
    OptionSpec {
        name: "max_requests",
        short: None,
        long: &["max-requests"],
        metavar: Some("INT"),
        kind: Int,
        default: Value("0"),
        gunicorn: true,
        help: "Requests a worker serves before it is replaced; 0 disables.",
        doc: "A worker that has served this many requests finishes the ones in hand and is replaced. 0 disables.",
        shown: |c, _| c.max_requests.to_string(),
    },
    OptionSpec {
        name: "max_requests_jitter",
        short: None,
        long: &["max-requests-jitter"],
        metavar: Some("INT"),
        kind: Int,
        default: Value("0"),
        gunicorn: true,
        help: "Random extra requests (0 to INT) added to --max-requests per worker.",
        doc: "Each worker adds a random 0 to INT to `--max-requests`, so workers do not restart together.",
        shown: |c, _| c.max_requests_jitter.to_string(),
    },
    OptionSpec {
        name: "max_worker_memory",
        short: None,
        long: &["max-worker-memory"],
        metavar: Some("MB"),
        kind: Int,
        default: Value("0"),
        gunicorn: false,
        help: "A worker whose RSS passes MB MiB finishes its request and is replaced; 0 disables.",
        doc: "The master reads each worker's RSS every second; a worker over MB MiB gets a graceful TERM and a replacement starts at once. 0 disables.",
        shown: |c, _| c.max_worker_memory.map_or(0, |bytes| bytes >> 20).to_string(),
    },
    OptionSpec {
        name: "preload_app",
        short: None,
        long: &["preload"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Load the app in the master before forking workers.",
        doc: "Import the app in the master before forking, so workers share its memory. HUP then restarts workers from the same code (a warning says so); use USR2 to load new code.",
        shown: |c, _| on(c.preload),
    },
    OptionSpec {
        name: "reload",
        short: None,
        long: &["reload"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Restart workers when the app's Python source files change (development).",
        doc: "Development: the master watches the source files of the app's modules (reported by the workers) with inotify and reloads the workers, as HUP does, when one changes. A file that no longer imports leaves the last good workers serving. Refused with `--preload`.",
        shown: |c, _| on(c.reload),
    },
    OptionSpec {
        name: "reload_extra_files",
        short: None,
        long: &["reload-extra-file"],
        metavar: Some("FILE"),
        kind: List,
        default: Unset("none"),
        gunicorn: true,
        help: "Another file whose change triggers --reload. Repeatable.",
        doc: "Another file whose change triggers `--reload` (repeatable).",
        shown: |c, _| list(c.reload_extra_files.iter().map(|p| p.display())),
    },
    OptionSpec {
        name: "pidfile",
        short: Some('p'),
        long: &["pid"],
        metavar: Some("FILE"),
        kind: Text,
        default: Unset("none"),
        gunicorn: true,
        help: "Write the master's pid to FILE.",
        doc: "Write the master's pid to FILE (removed on exit). A master started by USR2 writes `FILE.2` and renames it to `FILE` when the old master exits. Refused if FILE names another running process.",
        shown: |c, _| path(&c.pidfile),
    },
    OptionSpec {
        name: "daemon",
        short: Some('D'),
        long: &["daemon"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Detach from the terminal and run in the background.",
        doc: "Detach: fork twice, new session, stdin/stdout/stderr to `/dev/null`. Use `--error-logfile` to keep the log.",
        shown: |c, _| on(c.daemon),
    },
    OptionSpec {
        name: "enable_stdio_inheritance",
        short: Some('R'),
        long: &["enable-stdio-inheritance"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "With --daemon, keep stdout and stderr (stdin still goes to /dev/null).",
        doc: "With `--daemon`, the detached master and its workers keep the stdout and stderr they were started with (a shell redirection, say) instead of `/dev/null`; stdin still reads `/dev/null`. Without `--daemon` stdio is always inherited.",
        shown: |c, _| on(c.enable_stdio_inheritance),
    },
    OptionSpec {
        name: "user",
        short: Some('u'),
        long: &["user"],
        metavar: Some("USER"),
        kind: Text,
        default: Unset("the current user"),
        gunicorn: true,
        help: "Run workers as this user (name or uid).",
        doc: "Workers switch to this user (name or uid) after fork; the master keeps its identity to bind and supervise.",
        shown: |c, _| maybe(c.user.as_ref().map(|u| u.uid)),
    },
    OptionSpec {
        name: "group",
        short: Some('g'),
        long: &["group"],
        metavar: Some("GROUP"),
        kind: Text,
        default: Unset("the user's group"),
        gunicorn: true,
        help: "Run workers as this group (name or gid).",
        doc: "Workers switch to this group (name or gid).",
        shown: |c, _| maybe(c.group),
    },
    OptionSpec {
        name: "initgroups",
        short: None,
        long: &["initgroups"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Give workers the supplementary groups of --user.",
        doc: "Workers also get the supplementary groups of `--user`.",
        shown: |c, _| on(c.initgroups),
    },
    OptionSpec {
        name: "umask",
        short: Some('m'),
        long: &["umask"],
        metavar: Some("INT"),
        kind: Text,
        default: Unset("unchanged"),
        gunicorn: true,
        help: "File mode creation mask of the server processes (0o22, 022 or 18).",
        doc: "File mode creation mask of the master and workers, set before binding (so it applies to unix socket files): `0o22`, `022` or `18`.",
        shown: |c, _| maybe(c.umask),
    },
    OptionSpec {
        name: "worker_tmp_dir",
        short: None,
        long: &["worker-tmp-dir"],
        metavar: Some("DIR"),
        kind: Text,
        default: Unset("shared memory"),
        gunicorn: true,
        help: "Directory for the workers' heartbeat files.",
        doc: "Where the workers' heartbeat pages live, as unlinked files. By default they are anonymous shared memory, which never touches a disk. The `async` worker also spools request bodies there (unlinked files too) once its memory budget for bodies is spent; by default those go to the system's temporary directory. See [bodies](http.md#bodies).",
        shown: |c, _| path(&c.worker_tmp_dir),
    },
    OptionSpec {
        name: "reuse_port",
        short: None,
        long: &["reuse-port"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Each worker also listens on its own SO_REUSEPORT socket; the kernel balances.",
        doc: "Sockets get SO_REUSEPORT and each worker also listens on its own socket at the same TCP address, so the kernel spreads connections over the workers. See [deploy.md](deploy.md) for the caveat on reloads.",
        shown: |c, _| on(c.reuse_port),
    },
    OptionSpec {
        name: "proc_name",
        short: Some('n'),
        long: &["name"],
        metavar: Some("STRING"),
        kind: Text,
        default: Unset("`APP_MODULE`"),
        gunicorn: true,
        help: "Name in the process titles `ferricorn: master [NAME]`.",
        doc: "Process titles become `ferricorn: master [STRING]` and `ferricorn: worker [STRING]` (cut to the length of the original command line).",
        shown: |c, _| c.proc_name.clone(),
    },
    // TLS (gunicorn's SSL section), the settings read into rustls terms by src/tls/ciphers.rs
    // and src/tls/client.rs: these rows stay together.
    OptionSpec {
        name: "ca_certs",
        short: None,
        long: &["ca-certs"],
        metavar: Some("FILE"),
        kind: Text,
        default: Unset("none"),
        gunicorn: true,
        help: "PEM file of the CAs client certificates must chain to (--cert-reqs 1 or 2).",
        doc: "The CA certificates (PEM) a client certificate must chain to. Read with `--certfile`, even with `--cert-reqs 0` (as gunicorn's `create_default_context(cafile=...)` reads it): a file that cannot be read or holds no certificate exits 2. Unlike gunicorn, `--cert-reqs 1` or `2` without it exits 2 instead of trusting the system's CA store. See [tls-client-certs](tls-client-certs.md).",
        shown: |c, _| path(&c.tls_policy.ca_certs),
    },
    OptionSpec {
        name: "cert_reqs",
        short: None,
        long: &["cert-reqs"],
        metavar: Some("CERT_REQS"),
        kind: Text,
        default: Value("0"),
        gunicorn: true,
        help: "Client certificates: 0 none, 1 optional, 2 required (or CERT_NONE...).",
        doc: "Mutual TLS, Python's `ssl.VerifyMode`: `0` asks for no client certificate; `1` (`CERT_OPTIONAL`) asks, serves a client without one and refuses a bad one; `2` (`CERT_REQUIRED`) refuses a client without a good one. Read as gunicorn reads it (`int(value, 0)`); the names are accepted too. The app sees the certificate as mod_ssl's `SSL_CLIENT_*` environ keys ([tls-client-certs](tls-client-certs.md)).",
        shown: |c, _| c.tls_policy.cert_reqs.number().to_string(),
    },
    OptionSpec {
        name: "ciphers",
        short: None,
        long: &["ciphers"],
        metavar: Some("CIPHERS"),
        kind: Text,
        default: Unset("none"),
        gunicorn: true,
        help: "OpenSSL cipher list (TLS 1.2 suites; TLS 1.3's are always on), as gunicorn.",
        doc: "An OpenSSL cipher list (`ECDHE+AESGCM:!aNULL`, `HIGH:!aNULL:!MD5`, names, aliases, `!` `-` `+`, `@STRENGTH`, `@SECLEVEL=n`), read with OpenSSL's rules over rustls's six TLS 1.2 suites (ECDHE with AES-GCM or ChaCha20-Poly1305), in OpenSSL's order; unset, all six (what Python's default list chooses of them). As with gunicorn (Python's `set_ciphers`), it leaves the TLS 1.3 suites on. Parts choosing only suites rustls lacks (CBC, RSA or DHE key exchange) get a warning; a list choosing none of the six, or one OpenSSL refuses, exits 2.",
        shown: given_text,
    },
    OptionSpec {
        name: "ssl_version",
        short: None,
        long: &["ssl-version"],
        metavar: Some("SSL_VERSION"),
        kind: Text,
        default: Value("2"),
        gunicorn: true,
        help: "Lowest TLS version: TLS (2, the default: 1.2 and 1.3), TLSv1_2, TLSv1_3.",
        doc: "The lowest TLS version served, as Python's `ssl.PROTOCOL_*` name or number: `TLS` (2, the default), `SSLv23`, `TLS_SERVER` (17) and `TLSv1_2` (5) serve TLS 1.2 and 1.3; `TLSv1_3` serves 1.3 only. gunicorn 27 ignores this setting (with a warning) and always serves 1.2 and 1.3; `TLSv1`, `TLSv1_1` and `SSLv3`, which rustls lacks, exit 2. See [differences](differences.md).",
        shown: given_text,
    },
    OptionSpec {
        name: "accesslog",
        short: None,
        long: &["access-logfile"],
        metavar: Some("FILE"),
        kind: Text,
        default: Unset("none"),
        gunicorn: true,
        help: "Access log file; - is stdout. Off unless given. USR1 reopens it.",
        doc: "The access log, one line per response; `-` is stdout. Off unless given. USR1 reopens it.",
        shown: |c, _| path(&c.accesslog),
    },
    OptionSpec {
        name: "access_log_format",
        short: None,
        long: &["access-logformat"],
        metavar: Some("STRING"),
        kind: Text,
        default: Value(crate::wsgi::access::DEFAULT_FORMAT),
        gunicorn: true,
        help: "Access log line, in gunicorn's atoms: %(h)s %(r)s %(s)s {header}i ...",
        doc: "The access log line, in gunicorn's atoms: `h` remote address, `l` `-`, `u` Basic-auth user, `t` time, `r` request line, `s` status, `m` method, `U` path, `q` query, `H` protocol, `b`/`B` body bytes, `f` referer, `a` user agent, `T`/`M`/`D`/`L` request time in s/ms/µs/decimal s, `p` `<pid>`, `{header}i`, `{header}o`, `{variable}e`. Unknown atoms print `-`; `\"` in values is escaped.",
        shown: |c, _| c.access_log_format.clone(),
    },
    OptionSpec {
        name: "errorlog",
        short: None,
        long: &["error-logfile", "log-file"],
        metavar: Some("FILE"),
        kind: Text,
        default: Value("-"),
        gunicorn: true,
        help: "Error log file; - is stderr. USR1 reopens it.",
        doc: "The error log; `-` is stderr. Opened in append mode; USR1 reopens it in the master and every worker.",
        shown: |c, _| c.errorlog.as_ref().map_or("-".to_owned(), |p| p.display().to_string()),
    },
    OptionSpec {
        name: "statsd_host",
        short: None,
        long: &["statsd-host"],
        metavar: Some("STATSD_ADDR"),
        kind: Text,
        default: Unset("none"),
        gunicorn: true,
        help: "Send gunicorn's statsd metrics to HOST:PORT or unix:PATH.",
        doc: "Send gunicorn's statsd metrics, one UDP (or, for `unix:PATH` / `unix://PATH`, unix datagram) packet each: per request `gunicorn.requests` and `gunicorn.request.status.NNN` counters and the `gunicorn.request.duration` timer (ms); a `gunicorn.log.warning`/`error`/`critical`/`exception` counter per such log line; the master's `gunicorn.workers` gauge. `HOST` alone is port 8125. Sends never block and their errors are ignored, as in gunicorn.",
        shown: |c, _| match &c.statsd_host {
            None => "None".to_owned(),
            Some(crate::statsd::Address::Udp(host, port)) => format!("('{host}', {port})"),
            Some(crate::statsd::Address::Unix(path)) => path.display().to_string(),
        },
    },
    OptionSpec {
        name: "metrics_bind",
        short: None,
        long: &["metrics-bind"],
        metavar: Some("ADDR"),
        kind: Text,
        default: Unset("none"),
        gunicorn: false,
        help: "Serve Prometheus metrics at http://ADDR/metrics (HOST:PORT), from the master.",
        doc: "The master serves Prometheus text (OpenMetrics when `Accept` asks) at `/metrics` on `HOST:PORT`: requests, latency and queue-time histograms, workers and threads busy or idle, the listen backlog, restarts by reason, RSS per worker, connections, bytes. Workers count in shared memory; a scrape wakes none of them. See [metrics](metrics.md).",
        shown: |c, _| c.metrics.bind.map_or("None".to_owned(), |a| a.to_string()),
    },
    OptionSpec {
        name: "max_queue_time",
        short: None,
        long: &["max-queue-time"],
        metavar: Some("SECONDS"),
        kind: Int,
        default: Value("0"),
        gunicorn: false,
        help: "Answer 503 instead of running a request that waited longer than SECONDS; 0 disables.",
        doc: "A request that waited longer than this between being ready (accepted by the sync worker; its head and buffered body in, for the async worker) and the app's call gets a 503 and the connection closes; the access log has the line. 0 disables. See [metrics](metrics.md).",
        shown: |c, _| c.metrics.max_queue_time.map_or(0, |d| d.as_secs()).to_string(),
    },
    OptionSpec {
        name: "statsd_prefix",
        short: None,
        long: &["statsd-prefix"],
        metavar: Some("STATSD_PREFIX"),
        kind: Text,
        default: Value(""),
        gunicorn: true,
        help: "Prefix of every statsd metric name (a trailing . is added).",
        doc: "Put before every statsd metric name, joined with one `.` (added if missing, as in gunicorn).",
        shown: |c, _| c.statsd_prefix.clone(),
    },
    OptionSpec {
        name: "dogstatsd_tags",
        short: None,
        long: &["dogstatsd-tags"],
        metavar: Some("DOGSTATSD_TAGS"),
        kind: Text,
        default: Value(""),
        gunicorn: true,
        help: "Datadog tags (tag1:value1,tag2:value2) appended to every statsd metric.",
        doc: "A comma-separated list of Datadog tags, `tag1:value1,tag2:value2`, appended to every statsd line in the dogstatsd form (after `#`).",
        shown: |c, _| c.dogstatsd_tags.clone(),
    },
    OptionSpec {
        name: "enable_backlog_metric",
        short: None,
        long: &["enable-backlog-metric"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Send the gunicorn.backlog statsd histogram (Linux).",
        doc: "With `--statsd-host`, the master sends the `gunicorn.backlog` histogram once a second: connections waiting in the TCP listen queues.",
        shown: |c, _| on(c.enable_backlog_metric),
    },
    OptionSpec {
        name: "control_socket",
        short: None,
        long: &["control-socket"],
        metavar: Some("PATH"),
        kind: Text,
        default: Unset("`$XDG_RUNTIME_DIR/gunicorn.ctl`, else `$HOME/.gunicorn/gunicorn.ctl`"),
        gunicorn: true,
        help: "Unix socket where gunicorn's gunicornc client controls the master.",
        doc: "The master's control socket, in gunicorn's protocol: gunicorn's own `gunicornc` (`gunicornc -s PATH -c 'show workers'`) lists the workers and stats, adds and removes workers, reloads, reopens the logs and shuts down. A relative path is taken from the working directory; a missing parent directory is created (mode 0700). A stale socket file is replaced; one another live server answers on is left to it (ferricorn then runs without one and says so). See [control.md](control.md).",
        shown: |c, _| c.control.path.display().to_string(),
    },
    OptionSpec {
        name: "control_socket_mode",
        short: None,
        long: &["control-socket-mode"],
        metavar: Some("INT"),
        kind: Text,
        default: Value("384"),
        gunicorn: true,
        help: "Permission bits of the control socket file (0o660, 0660 or 432; 384 is 0o600).",
        doc: "The control socket file's permission bits, read as gunicorn reads them (`0o660`, `0660`, `0x1b0` or `432`). The default, 384, is `0o600`: only the owner can connect; `0o660` lets the group in too. `--print-config` prints the number in decimal, as gunicorn does.",
        shown: |c, _| c.control.mode.to_string(),
    },
    OptionSpec {
        name: "control_socket_disable",
        short: None,
        long: &["no-control-socket"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "No control socket.",
        doc: "Open no control socket: no file is created and `gunicornc` cannot reach this master.",
        shown: |c, _| on(c.control.disabled),
    },
    OptionSpec {
        name: "loglevel",
        short: None,
        long: &["log-level"],
        metavar: Some("LEVEL"),
        kind: Text,
        default: Value("info"),
        gunicorn: true,
        help: "debug, info, warning, error or critical.",
        doc: "`debug`, `info`, `warning`, `error` or `critical`.",
        shown: |c, _| c.log_level.label().to_ascii_lowercase(),
    },
    // syslog: these five rows stay together.
    OptionSpec {
        name: "syslog",
        short: None,
        long: &["log-syslog"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Also send the error and access logs to syslog (--log-syslog-to).",
        doc: "The error log's lines, and the access log's unless `--disable-redirect-access-to-syslog`, also go to syslog, as gunicorn's `SysLogHandler` sends them: `<PRI>gunicorn.PREFIX.error: [PID] message` (`.access` for access lines), one datagram per line, PRI being the facility times 8 plus the line's severity. The master opens the socket; a receiver that is not there yet is tried again with each line. See [differences](differences.md).",
        shown: |c, _| on(c.syslog.is_some()),
    },
    OptionSpec {
        name: "syslog_addr",
        short: None,
        long: &["log-syslog-to"],
        metavar: Some("SYSLOG_ADDR"),
        kind: Text,
        default: Value("udp://localhost:514"),
        gunicorn: true,
        help: "Where syslog lines go: udp://HOST:PORT, tcp://HOST:PORT, unix://PATH[#dgram|#stream].",
        doc: "`udp://HOST:PORT` (port 514 when left out), `tcp://HOST:PORT` (lines end in NUL, as Python sends them) or `unix://PATH`: a datagram socket, else a stream one; `#dgram` allows only the datagram one. gunicorn's default on Linux (it is `unix:///var/run/syslog` on macOS, `unix:///var/run/log` on FreeBSD, `unix:///dev/log` on OpenBSD). Read only with `--log-syslog`; a bad one exits 2.",
        shown: given_text,
    },
    OptionSpec {
        name: "syslog_prefix",
        short: None,
        long: &["log-syslog-prefix"],
        metavar: Some("SYSLOG_PREFIX"),
        kind: Text,
        default: Unset("none"),
        gunicorn: true,
        help: "The program name in syslog lines: gunicorn.PREFIX.error.",
        doc: "Syslog lines are tagged `gunicorn.PREFIX.error` and `gunicorn.PREFIX.access`; by default PREFIX is `--name` (the app, `APP_MODULE`) with `:` as `.`, as in gunicorn.",
        shown: given_text,
    },
    OptionSpec {
        name: "syslog_facility",
        short: None,
        long: &["log-syslog-facility"],
        metavar: Some("SYSLOG_FACILITY"),
        kind: Text,
        default: Value("user"),
        gunicorn: true,
        help: "Syslog facility name: user, daemon, local0 ... local7, ...",
        doc: "gunicorn's names: `auth`, `authpriv`, `cron`, `daemon`, `ftp`, `kern`, `lpr`, `mail`, `news`, `security`, `syslog`, `user`, `uucp`, `local0` to `local7` (any case). Read only with `--log-syslog`; an unknown one exits 2.",
        shown: given_text,
    },
    OptionSpec {
        name: "disable_redirect_access_to_syslog",
        short: None,
        long: &["disable-redirect-access-to-syslog"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "With --log-syslog, keep access lines out of syslog.",
        doc: "With `--log-syslog`, only the error log goes to syslog; the access log stays where `--access-logfile` puts it.",
        shown: given_text,
    },
    OptionSpec {
        name: "version",
        short: Some('v'),
        long: &["version"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Show the version and exit.",
        doc: "Print `ferricorn (version X)` and exit.",
        shown: given_text,
    },
    OptionSpec {
        name: "help",
        short: Some('h'),
        long: &["help"],
        metavar: None,
        kind: Flag,
        default: Off,
        gunicorn: true,
        help: "Show this help and exit.",
        doc: "Print the options and exit.",
        shown: given_text,
    },
];

/// The settings table of `docs/settings.md`, generated from [`OPTIONS`] (`make docs`; a
/// test fails when the page drifts from the code).
pub fn settings_markdown() -> String {
    let mut out = String::from("| flag | setting | default | meaning |\n|---|---|---|---|\n");
    for o in OPTIONS {
        let arg = o.metavar.map(|m| format!(" {m}")).unwrap_or_default();
        let mut flags: Vec<String> = o.short.map(|c| format!("`-{c}{arg}`")).into_iter().collect();
        flags.extend(o.long.iter().map(|l| format!("`--{l}{arg}`")));
        if flags.is_empty() {
            flags.push("(config file)".to_owned());
        }
        let setting = match o.gunicorn {
            true => format!("`{}`", o.name),
            false => format!("`{}` (ferricorn only)", o.name),
        };
        let default = o.default.markdown();
        out.push_str(&format!("| {} | {setting} | {default} | {} |\n", flags.join(", "), o.doc));
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
    for o in OPTIONS.iter().filter(|o| !o.long.is_empty()) {
        let short = o.short.map(|c| format!("-{c}, ")).unwrap_or_default();
        let long = o.long.iter().map(|l| format!("--{l}")).collect::<Vec<_>>().join(", ");
        let left =
            format!("  {short}{long}{}", o.metavar.map(|m| format!(" {m}")).unwrap_or_default());
        let default = o.default.help().map(|d| format!(" [{d}]")).unwrap_or_default();
        out.push_str(&format!("{left:<44} {}{default}\n", o.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's own consistency: the rules the readers rely on.
    #[test]
    fn rows_are_consistent() {
        for (i, o) in OPTIONS.iter().enumerate() {
            assert!(OPTIONS[..i].iter().all(|p| p.name != o.name), "{} twice", o.name);
            assert_eq!(o.kind == Kind::Flag, o.metavar.is_none(), "{}: metavar", o.name);
            // A flag is off unless given, but for gunicorn's flags that default to on.
            let on = o.default == DefaultValue::Value("true");
            assert_eq!(o.kind == Kind::Flag, o.default == DefaultValue::Off || on, "{}", o.name);
            assert!(!o.help.ends_with(']'), "{}: the default is appended from the table", o.name);
            assert!(!o.long.is_empty() || o.help.is_empty(), "{}: help without a flag", o.name);
        }
    }
}
