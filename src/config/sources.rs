//! Where settings come from, merged with gunicorn's precedence: a Python config file <
//! `FERRICORN_CMD_ARGS` (or `GUNICORN_CMD_ARGS`) < the command line. Each source is read
//! into [`RawArgs`] (setting names and text values); higher sources replace a setting's
//! values from lower ones.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::gunicorn;
use super::options::{DefaultValue, Kind, OptionSpec, OPTIONS};
use super::{Config, EnvDefaults, Error, LogLevel, Notice};

macro_rules! bail {
    ($($arg:tt)*) => { return Err(Error(format!($($arg)*))) };
}

/// The command line as given: (setting name, value) pairs in order, and the app.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RawArgs {
    /// (setting name, value) in the order given; the last one wins, lists keep all.
    pub values: Vec<(&'static str, String)>,
    /// APP_MODULE (or a config file's `wsgi_app`), when given.
    pub app: Option<String>,
}

/// How a config file says a flag is off (`daemon = False`).
pub(super) const OFF: &str = "false";

impl RawArgs {
    pub(super) fn last(&self, name: &str) -> Option<&str> {
        self.values.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.values.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// Whether a flag is on: given on the command line, or true in a config file.
    pub fn has(&self, name: &str) -> bool {
        self.last(name).is_some_and(|v| !v.eq_ignore_ascii_case(OFF))
    }

    fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.values.iter().map(|(n, _)| *n)
    }

    /// `self` with every setting `higher` gives replaced by `higher`'s values.
    pub fn overlay(mut self, higher: RawArgs) -> RawArgs {
        let replaced: Vec<&'static str> = higher.names().collect();
        self.values.retain(|(n, _)| !replaced.contains(n));
        self.values.extend(higher.values);
        RawArgs { values: self.values, app: higher.app.or(self.app) }
    }
}

/// `--opt value`, `--opt=value`, `-o value`, `-ovalue`; `--` ends the options.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<RawArgs, Error> {
    let mut raw = RawArgs::default();
    let mut rest = args.iter().map(AsRef::as_ref).peekable();
    while let Some(arg) = rest.next() {
        let (spec, inline) = if let Some(long) = arg.strip_prefix("--") {
            if long.is_empty() {
                raw.app = rest.next().map(str::to_owned).or(raw.app.take());
                continue;
            }
            let (flag, inline) = long.split_once('=').map_or((long, None), |(f, v)| (f, Some(v)));
            match OPTIONS.iter().find(|o| o.long.contains(&flag)) {
                Some(spec) => (spec, inline.map(str::to_owned)),
                None => {
                    let Some(setting) = gunicorn::by_flag(flag) else {
                        bail!("unrecognized option: --{flag}")
                    };
                    raw.values.push(gunicorn_flag(setting, flag, inline, &mut rest)?);
                    continue;
                }
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
        let flag = spec.kind == Kind::Flag;
        let value = match (inline, flag) {
            (None, true) => String::new(),
            (Some(_), true) => bail!("option --{} takes no value", spec.long[0]),
            (Some(v), false) => v,
            (None, false) if matches!(spec.kind, Kind::Optional(_)) => {
                let Kind::Optional(bare) = spec.kind else { unreachable!() };
                rest.next_if(|next| !next.starts_with('-')).unwrap_or(bare).to_owned()
            }
            (None, false) => match rest.next() {
                Some(v) => v.to_owned(),
                None => bail!(
                    "option --{} needs a value ({})",
                    spec.long[0],
                    spec.metavar.unwrap_or_default()
                ),
            },
        };
        raw.values.push((spec.name, value));
    }
    Ok(raw)
}

/// A gunicorn flag ferricorn lacks: kept (to be listed by `--check-config`) when its value
/// loses nothing, else refused with the one line that says so.
fn gunicorn_flag<'a>(
    setting: &'static gunicorn::GunicornOnly,
    flag: &str,
    inline: Option<&str>,
    rest: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
) -> Result<(&'static str, String), Error> {
    let value = match (setting.arg, inline) {
        (gunicorn::Arg::Sets(_), Some(_)) => bail!("option --{flag} takes no value"),
        (gunicorn::Arg::Sets(v), None) => v.to_owned(),
        (_, Some(v)) => v.to_owned(),
        (gunicorn::Arg::Optional(bare), None) => {
            match rest.next_if(|next| !next.starts_with('-') && setting.is_harmless(next)) {
                Some(v) => v.to_owned(),
                None => bare.to_owned(),
            }
        }
        (gunicorn::Arg::Value, None) => match rest.next() {
            Some(v) => v.to_owned(),
            None => bail!("option --{flag} needs a value"),
        },
    };
    match setting.is_harmless(&value) {
        true => Ok((setting.name, value)),
        false => Err(Error(setting.refusal(&format!("--{flag}")))),
    }
}

/// Every source of settings for this command line (without the program name), merged and
/// validated. HUP calls it again, so an edited config file takes effect.
pub fn load<S: AsRef<str>>(py: Python<'_>, args: &[S]) -> Result<Config, Error> {
    let mut raw = gather(py, args)?;
    let subclass = worker_subclass(py, &mut raw)?;
    let mut config = Config::from_raw(&raw, &EnvDefaults::from_process())?;
    config.notices.splice(0..0, subclass);
    Ok(config)
}

/// `-k` naming a subclass of uvicorn's worker (`myproject.workers.Worker`): gunicorn imports
/// it and runs it; ferricorn runs the asgi worker, as for uvicorn's class itself, and takes
/// the `CONFIG_KWARGS` that have a setting here (`loop`, `lifespan`, `root_path`) unless
/// they were given. The notices say so, and which kwargs were ignored.
fn worker_subclass(py: Python<'_>, raw: &mut RawArgs) -> Result<Vec<Notice>, Error> {
    let Some(path) = raw.last("worker_class").map(str::to_owned) else { return Ok(Vec::new()) };
    if !(path.contains('.') || path.contains(':')) || super::requested_is_known(&path) {
        return Ok(Vec::new());
    }
    let found = python_call(py, "worker_base", (path.as_str(),))?;
    let Ok(Some((base, kwargs))) =
        found.extract::<Option<(String, std::collections::BTreeMap<String, String>)>>()
    else {
        return Ok(Vec::new());
    };
    let mut taken = Vec::new();
    let mut ignored = Vec::new();
    for (key, value) in kwargs {
        match super::uvicorn_kwarg(&key) {
            Some(name) if !raw.has(name) => {
                raw.values.push((name, value.clone()));
                taken.push(format!("{key}={value}"));
            }
            Some(_) => taken.push(format!("{key} (the setting given wins)")),
            None => ignored.push(key),
        }
    }
    raw.values.push(("worker_class", base.clone()));
    let mut text = format!("-k {path} is a subclass of {base}; its code is not run");
    if !taken.is_empty() {
        text += &format!("; CONFIG_KWARGS taken: {}", taken.join(", "));
    }
    if !ignored.is_empty() {
        text += &format!("; CONFIG_KWARGS ignored: {}", ignored.join(", "));
    }
    Ok(vec![Notice::new(LogLevel::Info, text)])
}

/// The merged raw settings, before validation.
pub fn gather<S: AsRef<str>>(py: Python<'_>, args: &[S]) -> Result<RawArgs, Error> {
    let cli = parse_args(args)?;
    let env = env_args(py)?;
    let given = cli.last("config").or(env.last("config")).map(str::to_owned);
    let found = match given {
        Some(_) => None,
        None => python_call(py, "default_file", ())?.extract::<Option<String>>().unwrap_or(None),
    };
    let mut from_file = match given.as_ref().or(found.as_ref()) {
        Some(spec) => config_file(py, spec)?,
        None => RawArgs::default(),
    };
    // The file found in the working directory is the one in effect, as gunicorn's
    // `--print-config` shows it (`./gunicorn.conf.py`).
    if let Some(name) = found {
        from_file.values.push(("config", format!("./{name}")));
    }
    Ok(from_file.overlay(env).overlay(cli))
}

/// `FERRICORN_CMD_ARGS`, or gunicorn's `GUNICORN_CMD_ARGS` when that is unset, split as a
/// shell would.
fn env_args(py: Python<'_>) -> Result<RawArgs, Error> {
    let Some((var, text)) = ["FERRICORN_CMD_ARGS", "GUNICORN_CMD_ARGS"]
        .iter()
        .find_map(|var| std::env::var(var).ok().map(|text| (*var, text)))
    else {
        return Ok(RawArgs::default());
    };
    let words: Vec<String> = py
        .import("shlex")
        .and_then(|shlex| shlex.call_method1("split", (text.as_str(),)))
        .and_then(|words| words.extract())
        .map_err(|e| Error(format!("${var}: {e}")))?;
    let raw = parse_args(&words).map_err(|e| Error(format!("${var}: {e}")))?;
    if raw.app.is_some() {
        bail!("${var} holds settings only, not APP_MODULE");
    }
    Ok(raw)
}

/// A gunicorn-style Python config file (`-c PATH` or `-c python:module`). A name set to
/// `None` is left out on the Python side: it means the default, as in gunicorn's example
/// config (`user = None`).
fn config_file(py: Python<'_>, spec: &str) -> Result<RawArgs, Error> {
    let known: Vec<&str> = OPTIONS
        .iter()
        .map(|o| o.name)
        .chain(gunicorn::GUNICORN_ONLY.iter().map(|g| g.name))
        .collect();
    let values = python_call(py, "read_file", (spec, known))?;
    let values = values.cast::<PyDict>().map_err(|e| Error(e.to_string()))?;
    let mut raw = RawArgs::default();
    for (name, value) in values.iter() {
        let name: String = name.extract().map_err(|e: PyErr| Error(e.to_string()))?;
        let texts: Vec<String> = python_call(py, "stringify", (value,))?
            .extract()
            .map_err(|e: PyErr| Error(e.to_string()))?;
        let Some(spec) = OPTIONS.iter().find(|o| o.name == name) else {
            // A gunicorn setting ferricorn lacks; `[]` or `{}` is its default.
            if let Some(setting) = gunicorn::by_name(&name) {
                raw.values.extend(texts.into_iter().map(|t| (setting.name, t)));
            }
            continue;
        };
        if spec.name == "wsgi_app" {
            raw.app = texts.into_iter().next();
            continue;
        }
        // An empty dict (`secure_scheme_headers = {}`) replaces the default pairs: trust
        // no header. Any other empty list (gunicorn's example config has `raw_env = []`)
        // is the default.
        if texts.is_empty() && matches!(spec.default, DefaultValue::Pairs(_)) {
            raw.values.push((spec.name, OFF.to_owned()));
        }
        raw.values.extend(texts.into_iter().map(|t| (spec.name, t)));
    }
    Ok(raw)
}

/// Calls `ferricorn._config.NAME`; its `ConfigError` becomes our one-line error.
fn python_call<'py>(
    py: Python<'py>,
    name: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> Result<Bound<'py, PyAny>, Error> {
    py.import("ferricorn._config")
        .and_then(|m| m.call_method1(name, args))
        .map_err(|e| Error(e.value(py).to_string()))
}

/// `--print-config`: every setting as gunicorn prints them, `name = value`, sorted, each
/// value read back from the validated [`Config`] by its row's `shown`. The ones ferricorn
/// works out (binds from `$PORT`, workers from `$WEB_CONCURRENCY`, the worker `--threads`
/// or `-k gevent` select) are shown as serving will use them.
pub fn print_config(config: &Config) -> String {
    let mut specs: Vec<&OptionSpec> = OPTIONS.iter().collect();
    specs.sort_unstable_by_key(|o| o.name);
    let width = specs.iter().map(|o| o.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for spec in specs {
        out.push_str(&format!("{:<width$} = {}\n", spec.name, (spec.shown)(config, spec)));
    }
    out
}
