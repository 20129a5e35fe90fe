//! `--http-protocols` and the `--http2-*` settings, validated as gunicorn 27's
//! `config.py` validates them (issue 14; docs/http2.md).

use super::{text, Error, RawArgs};

/// A protocol `--http-protocols` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpProtocol {
    /// HTTP/1.1 (and 1.0).
    H1,
    /// HTTP/2.
    H2,
}

impl HttpProtocol {
    /// Its name in `--http-protocols`.
    pub fn name(self) -> &'static str {
        match self {
            HttpProtocol::H1 => "h1",
            HttpProtocol::H2 => "h2",
        }
    }

    /// Its ALPN identifier (RFC 7301; `h2` is RFC 9113 §3.2).
    fn alpn(self) -> &'static [u8] {
        match self {
            HttpProtocol::H1 => b"http/1.1",
            HttpProtocol::H2 => b"h2",
        }
    }
}

/// `--http2-cleartext`: how a connection without TLS may speak HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cleartext {
    /// Never.
    #[default]
    Off,
    /// Connections that open with the HTTP/2 preface (RFC 9113 §3.3).
    PriorKnowledge,
    /// An HTTP/1.1 `Upgrade: h2c` request (RFC 7540 §3.2).
    Upgrade,
    /// Either.
    Both,
}

impl Cleartext {
    /// Its name in `--http2-cleartext`.
    pub fn name(self) -> &'static str {
        match self {
            Cleartext::Off => "off",
            Cleartext::PriorKnowledge => "prior-knowledge",
            Cleartext::Upgrade => "upgrade",
            Cleartext::Both => "both",
        }
    }
}

/// `--http-protocols` and the `--http2-*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2 {
    /// `--http-protocols`, most preferred first (`h1` alone by default).
    pub protocols: Vec<HttpProtocol>,
    /// `--http2-cleartext`.
    pub cleartext: Cleartext,
    /// `--http2-initial-window-size` (default 65535).
    pub initial_window_size: u32,
    /// `--http2-max-concurrent-streams` (default 100).
    pub max_concurrent_streams: u32,
    /// `--http2-max-frame-size` (default 16384).
    pub max_frame_size: u32,
    /// `--http2-max-header-list-size` (default 65536; 0: unlimited).
    pub max_header_list_size: u32,
}

impl Default for Http2 {
    fn default() -> Http2 {
        Http2 {
            protocols: vec![HttpProtocol::H1],
            cleartext: Cleartext::Off,
            initial_window_size: 65_535,
            max_concurrent_streams: 100,
            max_frame_size: 16_384,
            max_header_list_size: 65_536,
        }
    }
}

impl Http2 {
    /// h2 is in `--http-protocols`.
    pub fn enabled(&self) -> bool {
        self.protocols.contains(&HttpProtocol::H2)
    }

    /// What TLS offers in ALPN, in `--http-protocols`' order. `h1` is always offered
    /// (last unless named): a client that does not choose h2 is served HTTP/1.1, as
    /// gunicorn 27 serves it.
    pub fn alpn(&self) -> Vec<Vec<u8>> {
        let mut alpn: Vec<Vec<u8>> = self.protocols.iter().map(|p| p.alpn().to_vec()).collect();
        if !self.protocols.contains(&HttpProtocol::H1) {
            alpn.push(HttpProtocol::H1.alpn().to_vec());
        }
        alpn
    }

    /// Cleartext connections opening with the preface are HTTP/2.
    pub fn prior_knowledge(&self) -> bool {
        self.enabled() && matches!(self.cleartext, Cleartext::PriorKnowledge | Cleartext::Both)
    }

    /// Cleartext `Upgrade: h2c` is honoured.
    pub fn upgrade(&self) -> bool {
        self.enabled() && matches!(self.cleartext, Cleartext::Upgrade | Cleartext::Both)
    }

    /// `--http-protocols` as given, for `--print-config`.
    pub fn protocols_shown(&self) -> String {
        self.protocols.iter().map(|p| p.name()).collect::<Vec<_>>().join(",")
    }
}

/// The settings from the raw values.
pub fn read(raw: &RawArgs) -> Result<Http2, Error> {
    Ok(Http2 {
        protocols: protocols(text(raw, "http_protocols").unwrap_or_default())?,
        cleartext: cleartext(text(raw, "http2_cleartext").unwrap_or_default())?,
        initial_window_size: bounded(raw, "http2_initial_window_size", 0, (1 << 31) - 1)?,
        max_concurrent_streams: bounded(raw, "http2_max_concurrent_streams", 1, u32::MAX)?,
        max_frame_size: bounded(raw, "http2_max_frame_size", 16_384, 16_777_215)?,
        max_header_list_size: bounded(raw, "http2_max_header_list_size", 0, u32::MAX)?,
    })
}

/// gunicorn's `validate_http_protocols`: a comma-separated list of `h1` and `h2`, no
/// repeats; empty means `h1`.
fn protocols(value: &str) -> Result<Vec<HttpProtocol>, Error> {
    let mut out = Vec::new();
    for name in value.split(',').map(|p| p.trim().to_ascii_lowercase()).filter(|p| !p.is_empty()) {
        let protocol = match name.as_str() {
            "h1" => HttpProtocol::H1,
            "h2" => HttpProtocol::H2,
            _ => {
                return Err(Error(format!(
                    "--http-protocols {value:?}: invalid protocol {name:?}; valid protocols: h1, h2"
                )))
            }
        };
        if out.contains(&protocol) {
            return Err(Error(format!("--http-protocols {value:?}: duplicate protocols")));
        }
        out.push(protocol);
    }
    if out.is_empty() {
        out.push(HttpProtocol::H1);
    }
    Ok(out)
}

/// gunicorn's `validate_http2_cleartext`; a config file's `True`/`False` mean
/// `prior-knowledge`/`off`.
fn cleartext(value: &str) -> Result<Cleartext, Error> {
    Ok(match value.trim().to_ascii_lowercase().as_str() {
        "off" | "" | "false" | "none" => Cleartext::Off,
        "prior-knowledge" | "true" => Cleartext::PriorKnowledge,
        "upgrade" => Cleartext::Upgrade,
        "both" => Cleartext::Both,
        _ => {
            return Err(Error(format!(
                "--http2-cleartext {value:?}: expected off, prior-knowledge, upgrade or both"
            )))
        }
    })
}

/// An integer setting within `[low, high]` (RFC 9113 §6.5.2's bounds for the window and
/// the frame size, gunicorn's for the rest); the error names the flag and the range.
fn bounded(raw: &RawArgs, name: &str, low: u32, high: u32) -> Result<u32, Error> {
    let value = text(raw, name).unwrap_or_default();
    let flag = format!("--{}", name.replace('_', "-"));
    match super::auto_int(value.trim()) {
        Some(n) if (low..=high).contains(&n) => Ok(n),
        _ => Err(Error(format!("{flag} {value:?}: expected an integer from {low} to {high}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_cleartext_read_as_gunicorn_reads_them() {
        use HttpProtocol::*;
        let cases: &[(&str, Option<&[HttpProtocol]>)] = &[
            ("h1", Some(&[H1])),
            ("h2,h1", Some(&[H2, H1])),
            (" H2 , h1 ", Some(&[H2, H1])),
            ("h2", Some(&[H2])),
            ("", Some(&[H1])),
            ("h3", None),
            ("h1,h1", None),
        ];
        for (value, want) in cases {
            assert_eq!(protocols(value).ok().as_deref(), *want, "{value:?}");
        }
        let cases = [
            ("off", Some(Cleartext::Off)),
            ("prior-knowledge", Some(Cleartext::PriorKnowledge)),
            ("True", Some(Cleartext::PriorKnowledge)),
            ("upgrade", Some(Cleartext::Upgrade)),
            ("BOTH", Some(Cleartext::Both)),
            ("yes", None),
        ];
        for (value, want) in cases {
            assert_eq!(cleartext(value).ok(), want, "{value:?}");
        }
    }

    #[test]
    fn alpn_follows_the_preference_and_always_offers_http1() {
        let http2 = |protocols: Vec<HttpProtocol>| Http2 { protocols, ..Http2::default() };
        let cases: [(Vec<HttpProtocol>, &[&[u8]]); 3] = [
            (vec![HttpProtocol::H1], &[b"http/1.1"]),
            (vec![HttpProtocol::H2, HttpProtocol::H1], &[b"h2", b"http/1.1"]),
            (vec![HttpProtocol::H2], &[b"h2", b"http/1.1"]),
        ];
        for (protocols, want) in cases {
            assert_eq!(
                http2(protocols).alpn(),
                want.iter().map(|p| p.to_vec()).collect::<Vec<_>>()
            );
        }
    }
}
