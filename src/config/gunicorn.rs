//! gunicorn 27's settings that ferricorn does not have, so that a command line or config
//! file naming one gets a precise answer instead of "unrecognized option".
//!
//! A setting given a value that loses nothing when ignored (gunicorn's default, or a value
//! that only matters together with another setting ferricorn lacks, like
//! `suppress_ragged_eofs` without `certfile`) is accepted quietly; `--check-config` still
//! lists it. Any other value is refused on the command line (exit 2, naming docs/migrating.md) and warned about in a
//! config file, where the rest of the file still applies.
//!
//! A setting that gains an [`super::OPTIONS`] entry wins over its row here (the lookups
//! try `OPTIONS` first), so the row can be removed at leisure.

/// How a gunicorn flag takes its value on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// `--flag` alone stores this value (`store_true`, `store_const`).
    Sets(&'static str),
    /// `--flag VALUE` or `--flag=VALUE`.
    Value,
    /// argparse's `nargs='?'`: `--flag=VALUE`, or `--flag` alone for this value.
    Optional(&'static str),
}

/// Which values of a setting lose nothing when ferricorn ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Harmless {
    /// Every value: the setting only acts together with another one ferricorn lacks.
    Any,
    /// These (gunicorn's default among them), as a config file's value reads as text.
    Values(&'static [&'static str]),
}

/// One gunicorn setting ferricorn does not implement.
#[derive(Debug)]
pub struct GunicornOnly {
    /// gunicorn's setting name, as a config file spells it.
    pub name: &'static str,
    /// gunicorn's default as a config file's value reads as text; "" when it has none
    /// (`None`, `[]`) or it depends on the machine.
    pub default: &'static str,
    /// Its long flags without `--`; empty for config-file-only settings.
    pub long: &'static [&'static str],
    /// How its flag takes a value, so the next word is not mistaken for APP_MODULE.
    pub arg: Arg,
    /// Which values ferricorn may ignore without losing what the user asked for.
    pub harmless: Harmless,
}

impl GunicornOnly {
    /// Whether ignoring `value` changes nothing a gunicorn user relies on.
    pub fn is_harmless(&self, value: &str) -> bool {
        if self.is_default(value) {
            return true;
        }
        match self.harmless {
            Harmless::Any => true,
            Harmless::Values(values) => values.iter().any(|v| v.eq_ignore_ascii_case(value)),
        }
    }

    /// Whether `value` is gunicorn's default, which needs no mention at all.
    pub fn is_default(&self, value: &str) -> bool {
        !self.default.is_empty() && self.default.eq_ignore_ascii_case(value)
    }

    /// The one line for a value that would lose something.
    pub fn refusal(&self, flag: &str) -> String {
        format!(
            "{flag}: a gunicorn setting ({}) ferricorn does not support yet; \
             see docs/migrating.md for what to use instead",
            self.name
        )
    }
}

/// The setting whose long flag (without `--`) is `flag`.
pub fn by_flag(flag: &str) -> Option<&'static GunicornOnly> {
    GUNICORN_ONLY.iter().find(|g| g.long.contains(&flag))
}

/// The setting a config file calls `name`.
pub fn by_name(name: &str) -> Option<&'static GunicornOnly> {
    GUNICORN_ONLY.iter().find(|g| g.name == name)
}

use Arg::{Sets, Value};
use Harmless::{Any, Values};

const fn row(
    name: &'static str,
    default: &'static str,
    long: &'static [&'static str],
    arg: Arg,
    harmless: Harmless,
) -> GunicornOnly {
    GunicornOnly { name, default, long, arg, harmless }
}

const FALSE: Harmless = Values(&["false"]);
/// What a config file's empty value (`None`, `[]`) reads as: always gunicorn's default.
const NOTHING: Harmless = Values(&[]);

/// Every gunicorn 27 setting (its `config.py`) that is neither in [`super::OPTIONS`] nor a
/// server hook ferricorn calls, nor `logconfig_dict` (applied on the Python side).
pub const GUNICORN_ONLY: &[GunicornOnly] = &[
    row("reload_engine", "auto", &["reload-engine"], Value, Values(&["auto", "inotify"])),
    row("spew", "false", &["spew"], Sets("true"), FALSE),
    // ferricorn sends wsgi.file_wrapper files with sendfile(2) whatever this says.
    row("sendfile", "", &["no-sendfile"], Sets("false"), Values(&["true"])),
    // gunicorn itself never reads it.
    row("tmp_upload_dir", "", &[], Value, Any),
    row("default_proc_name", "gunicorn", &[], Value, Any),
    // ferricorn has one parser; which of gunicorn's to use means nothing here.
    row("http_parser", "auto", &["http-parser"], Value, Any),
    // gunicorn's dirty arbiter: off unless apps and workers are given.
    row("dirty_apps", "", &["dirty-app"], Value, NOTHING),
    row("dirty_workers", "0", &["dirty-workers"], Value, Values(&["0"])),
    row("dirty_timeout", "300", &["dirty-timeout"], Value, Any),
    row("dirty_threads", "1", &["dirty-threads"], Value, Any),
    row("dirty_graceful_timeout", "30", &["dirty-graceful-timeout"], Value, Any),
    row("on_dirty_starting", "", &[], Value, Any),
    row("dirty_post_fork", "", &[], Value, Any),
    row("dirty_worker_init", "", &[], Value, Any),
    row("dirty_worker_exit", "", &[], Value, Any),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_unique_and_not_options() {
        for (i, g) in GUNICORN_ONLY.iter().enumerate() {
            assert!(GUNICORN_ONLY[..i].iter().all(|o| o.name != g.name), "{} twice", g.name);
            // A setting ferricorn has (`limit_request_body`, ferricorn's own) is not lacking.
            let option = super::super::OPTIONS.iter().find(|o| o.name == g.name);
            assert!(option.is_none(), "{} is in OPTIONS too", g.name);
            for flag in g.long {
                let option = super::super::OPTIONS.iter().find(|o| o.long.contains(flag));
                assert!(option.is_none_or(|o| o.name == g.name), "--{flag} names two settings");
            }
        }
    }

    #[test]
    fn harmless_values() {
        let rows = [
            ("spew", "false", true),
            ("spew", "true", false),
            ("tmp_upload_dir", "/var/tmp", true),
            ("reload_engine", "poll", false),
        ];
        for (name, value, want) in rows {
            assert_eq!(by_name(name).unwrap().is_harmless(value), want, "{name} = {value}");
        }
    }
}
