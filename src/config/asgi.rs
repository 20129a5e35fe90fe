//! The `asgi` worker's settings, gunicorn 27's: `--asgi-loop`, `--asgi-lifespan`,
//! `--asgi-disconnect-grace-period`, `--root-path`. They act only with `-k asgi`.

use std::time::Duration;

use super::{int, text, Error, RawArgs};

/// `--asgi-lifespan`: whether the lifespan scope runs (gunicorn's meanings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifespan {
    /// Run it; an app that raises or returns before startup does not support it (a debug
    /// line), one that sends `lifespan.startup.failed` stops the server.
    #[default]
    Auto,
    /// Run it; any failure to complete startup stops the server.
    On,
    /// Never run it.
    Off,
}

impl Lifespan {
    pub fn name(self) -> &'static str {
        match self {
            Lifespan::Auto => "auto",
            Lifespan::On => "on",
            Lifespan::Off => "off",
        }
    }
}

/// `--asgi-loop`: the asyncio event loop the worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventLoop {
    /// uvloop when it imports, else asyncio's own.
    #[default]
    Auto,
    /// asyncio's own loop.
    Asyncio,
    /// uvloop (a warning and asyncio's loop when it is not installed, as gunicorn does).
    Uvloop,
}

impl EventLoop {
    pub fn name(self) -> &'static str {
        match self {
            EventLoop::Auto => "auto",
            EventLoop::Asyncio => "asyncio",
            EventLoop::Uvloop => "uvloop",
        }
    }
}

/// The `asgi` worker's settings, validated.
#[derive(Debug, Clone, Default)]
pub struct Asgi {
    /// `--asgi-lifespan`.
    pub lifespan: Lifespan,
    /// `--asgi-loop`.
    pub event_loop: EventLoop,
    /// `--asgi-disconnect-grace-period`: how long an app that was told `http.disconnect`
    /// may run on before its task is cancelled (0: cancelled at once).
    pub disconnect_grace: Duration,
    /// `--root-path`: the scope's `root_path`, where the app is mounted.
    pub root_path: String,
    /// `--websocket-max-message-size`: the largest whole WebSocket message, in bytes
    /// (0: no limit); more closes the connection with 1009.
    pub websocket_max_message: usize,
}

/// Reads the five settings; a bad value is one line naming the flag.
pub fn read(raw: &RawArgs) -> Result<Asgi, Error> {
    let lifespan = match lowered(raw, "asgi_lifespan").as_str() {
        "auto" => Lifespan::Auto,
        "on" => Lifespan::On,
        "off" => Lifespan::Off,
        other => bail!("--asgi-lifespan {other:?}: expected auto, on or off"),
    };
    let event_loop = match lowered(raw, "asgi_loop").as_str() {
        "auto" => EventLoop::Auto,
        "asyncio" => EventLoop::Asyncio,
        "uvloop" => EventLoop::Uvloop,
        other => bail!("--asgi-loop {other:?}: expected auto, asyncio or uvloop"),
    };
    let grace = int(raw, "asgi_disconnect_grace_period")?;
    let root_path = text(raw, "root_path").unwrap_or_default().to_owned();
    let websocket_max_message = int(raw, "websocket_max_message_size")?;
    Ok(Asgi {
        lifespan,
        event_loop,
        disconnect_grace: Duration::from_secs(grace as u64),
        root_path,
        websocket_max_message,
    })
}

/// gunicorn's validators lower-case and strip these values.
fn lowered(raw: &RawArgs, name: &str) -> String {
    text(raw, name).unwrap_or_default().trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::super::tests::config;
    use super::super::WorkerClass;
    use super::*;

    #[test]
    fn values_as_gunicorn_reads_them() {
        let c = config(&["-k", "asgi", "--asgi-lifespan", " ON ", "--asgi-loop", "AsyncIO", "app"])
            .unwrap();
        assert_eq!((c.asgi.lifespan, c.asgi.event_loop), (Lifespan::On, EventLoop::Asyncio));
        assert_eq!(c.asgi.disconnect_grace, Duration::from_secs(3));
        let c =
            config(&["--root-path", "/api", "--asgi-disconnect-grace-period", "0", "app"]).unwrap();
        assert_eq!((c.asgi.root_path.as_str(), c.asgi.disconnect_grace), ("/api", Duration::ZERO));
        assert_eq!(c.asgi.websocket_max_message, 16 * 1024 * 1024);
        let c = config(&["--websocket-max-message-size", "0", "app"]).unwrap();
        assert_eq!(c.asgi.websocket_max_message, 0);
    }

    #[test]
    fn bad_values_are_one_line_naming_the_flag() {
        let rows: &[(&[&str], &str)] = &[
            (&["--asgi-lifespan", "maybe", "app"], "--asgi-lifespan \"maybe\""),
            (&["--asgi-loop", "trio", "app"], "--asgi-loop \"trio\""),
            (&["--asgi-disconnect-grace-period", "-1", "app"], "--asgi-disconnect-grace-period"),
            (&["--websocket-max-message-size", "big", "app"], "--websocket-max-message-size"),
        ];
        for (args, want) in rows {
            let error = config(args).unwrap_err().0;
            assert!(error.contains(want) && !error.contains('\n'), "{args:?}: {error}");
        }
    }

    #[test]
    fn regression_proxy_protocol_with_asgi_was_refused_at_start() {
        let c = config(&["-k", "asgi", "--proxy-protocol", "v1", "app"]).unwrap();
        assert_eq!(c.proxy_protocol.mode_name(), "v1");
    }

    #[test]
    fn uvicorn_workers_map_to_asgi_with_a_notice() {
        for class in ["asgi", "uvicorn.workers.UvicornWorker", "uvicorn_worker.UvicornWorker"] {
            let c = config(&["-k", class, "app"]).unwrap();
            assert_eq!(c.worker_class, WorkerClass::Asgi, "{class}");
            let said = c.notices.iter().any(|n| n.text.contains("running ferricorn's asgi worker"));
            assert_eq!(said, class != "asgi", "{class}");
        }
        let c = config(&["-k", "asgi", "--threads", "4", "app"]).unwrap();
        assert_eq!(c.threads, 1);
        assert!(c.notices.iter().any(|n| n.text.contains("does not use threads")));
    }
}
