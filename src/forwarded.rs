//! What a front-end proxy may tell us, as gunicorn decides it.
//!
//! Only a peer in `--forwarded-allow-ips` (or one on a unix socket) is trusted: its
//! `secure_scheme_headers` set `wsgi.url_scheme` (two that disagree: 400), and the
//! `--forwarder-headers` it sends (`SCRIPT_NAME`, ...) may carry an underscore into the
//! environ. Other headers with `_` in their name are dropped, refused or passed on as
//! `--header-map` says, since `X_Forwarded_For` and `X-Forwarded-For` would otherwise
//! map to the same `HTTP_X_FORWARDED_FOR` (RFC 9110 §17.10).

use std::net::IpAddr;

use crate::http::{Error, Head};
use crate::listener::Peer;

/// `--header-map`: what happens to a header whose name holds `_`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMap {
    Drop,
    Refuse,
    Dangerous,
}

/// gunicorn's default `secure_scheme_headers`.
pub const DEFAULT_SECURE_SCHEME_HEADERS: [(&str, &str); 3] =
    [("X-FORWARDED-PROTOCOL", "ssl"), ("X-FORWARDED-PROTO", "https"), ("X-FORWARDED-SSL", "on")];

/// Which peers a setting trusts (`--forwarded-allow-ips`, `--proxy-allow-from`,
/// `--uwsgi-allow-from`): addresses
/// and CIDR networks, or `*`, comma-separated, as gunicorn's `_ip_in_allow_list` reads them.
/// A peer with no address (a unix socket) is always trusted, as in gunicorn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// `*`: every peer is trusted.
    any: bool,
    /// Trusted networks, as (address, prefix length).
    networks: Vec<(IpAddr, u8)>,
}

impl AllowList {
    /// From the setting's text; an error names `flag` and the entry that is no address.
    pub fn parse(flag: &str, text: &str) -> Result<AllowList, String> {
        let mut allow = AllowList::default();
        for entry in list(text) {
            match entry {
                "*" => allow.any = true,
                _ => allow.networks.push(network(entry).map_err(|why| format!("{flag}: {why}"))?),
            }
        }
        Ok(allow)
    }

    /// Whether `peer` (`None`: a unix socket) is trusted.
    pub fn allows(&self, peer: Option<IpAddr>) -> bool {
        match peer {
            None => true,
            Some(ip) => self.any || self.networks.iter().any(|&(net, len)| contains(net, len, ip)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `--forwarded-allow-ips`: the peers whose forwarding headers are believed.
    allow: AllowList,
    /// Upper-case header name and the value that means https.
    secure_scheme_headers: Vec<(String, String)>,
    /// Upper-case names a trusted peer may send with `_`; `*`: any.
    forwarder_headers: Vec<String>,
    /// `--header-map`: what becomes of other headers with `_` in their name.
    header_map: HeaderMap,
}

impl Default for Policy {
    /// gunicorn's defaults: trust the loopback addresses, its three scheme headers,
    /// `SCRIPT_NAME,PATH_INFO` from forwarders, drop other `_` headers.
    fn default() -> Policy {
        let secure: Vec<(String, String)> = DEFAULT_SECURE_SCHEME_HEADERS
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Policy::parse("127.0.0.1,::1", &secure, "SCRIPT_NAME,PATH_INFO", "drop")
            .expect("the defaults parse")
    }
}

/// The outcome for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The peer may set forwarding headers.
    pub trusted: bool,
    /// A trusted scheme header said https.
    pub https: bool,
    /// A trusted scheme header said something else: `http`, even over TLS, as gunicorn
    /// reads it.
    pub http: bool,
    /// `SCRIPT_NAME` sent by a trusted forwarder: where the app is mounted.
    pub script_name: Option<String>,
    /// The client a uwsgi front end named (`REMOTE_ADDR`, `REMOTE_PORT`): the environ's
    /// instead of the socket's peer.
    pub remote: Option<Peer>,
}

impl Policy {
    /// From the settings' text: `--forwarded-allow-ips`, `secure_scheme_headers`
    /// (`NAME=value` pairs), `--forwarder-headers`, `--header-map`.
    pub fn parse(
        allow_ips: &str,
        secure_scheme_headers: &[(String, String)],
        forwarder_headers: &str,
        header_map: &str,
    ) -> Result<Policy, String> {
        let policy = Policy {
            allow: AllowList::parse("--forwarded-allow-ips", allow_ips)?,
            secure_scheme_headers: secure_scheme_headers
                .iter()
                .map(|(n, v)| (n.trim().to_ascii_uppercase(), v.trim().to_owned()))
                .collect(),
            forwarder_headers: list(forwarder_headers).map(|h| h.to_ascii_uppercase()).collect(),
            header_map: match header_map.trim() {
                "drop" => HeaderMap::Drop,
                "refuse" => HeaderMap::Refuse,
                "dangerous" => HeaderMap::Dangerous,
                other => {
                    return Err(format!(
                        "--header-map {other:?}: expected drop, refuse or dangerous"
                    ))
                }
            },
        };
        Ok(policy)
    }

    /// Whether `peer` is in `--forwarded-allow-ips`.
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        self.allow.allows(peer)
    }

    /// Judges a request's forwarding headers; an error is the 400 gunicorn gives.
    pub fn judge(&self, head: &Head, peer: Option<IpAddr>) -> Result<Verdict, Error> {
        let mut verdict = Verdict { trusted: self.trusts(peer), ..Verdict::default() };
        let mut scheme_seen = false;
        // Every request passes here: names are compared in place, and only the rare one
        // holding `_` is copied.
        for (name, value) in head.fields() {
            if verdict.trusted {
                if let Some((_, secure)) = self
                    .secure_scheme_headers
                    .iter()
                    .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
                {
                    let https = value == secure.as_bytes();
                    if scheme_seen && https != verdict.https {
                        return Err(Error::BadHeader("contradictory scheme headers"));
                    }
                    scheme_seen = true;
                    verdict.https = https;
                    verdict.http = !https;
                }
            }
            if name.contains(&b'_') {
                let name = String::from_utf8_lossy(name).to_ascii_uppercase();
                match self.keeps(&name, verdict.trusted) {
                    true if name == "SCRIPT_NAME" => {
                        verdict.script_name = Some(value.iter().map(|&b| b as char).collect())
                    }
                    true => {}
                    false if self.header_map == HeaderMap::Refuse => {
                        return Err(Error::BadHeaderName)
                    }
                    false => {}
                }
            }
        }
        if let Some(script_name) = &verdict.script_name {
            if !head.path_and_query().0.starts_with(script_name.as_str()) {
                return Err(Error::BadHeader("the path does not start with SCRIPT_NAME"));
            }
        }
        Ok(verdict)
    }

    /// Whether an upper-case header name holding `_` reaches the environ.
    pub fn keeps(&self, name: &str, trusted: bool) -> bool {
        let forwarded = trusted && self.forwarder_headers.iter().any(|h| h == "*" || h == name);
        forwarded || self.header_map == HeaderMap::Dangerous
    }
}

fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `10.0.0.1` (a host) or `10.0.0.0/8`.
/// An address, or a network as address/prefix length. A network with host bits set
/// (`10.0.0.1/8`) is refused, as Python's `ip_network` refuses it for gunicorn: it is
/// likely a typo for an address or for `10.0.0.0/8`.
fn network(entry: &str) -> Result<(IpAddr, u8), String> {
    let no = || format!("{entry:?} is not an IP address or network");
    let (addr, len) = entry.split_once('/').unwrap_or((entry, ""));
    let ip: IpAddr = addr.trim().parse().map_err(|_| no())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len.trim() {
        "" => max,
        n => n.parse().ok().filter(|&n| n <= max).ok_or_else(no)?,
    };
    if masked(ip, len) != ip {
        let net = masked(ip, len);
        return Err(format!("{entry:?} has host bits set (the network is {net}/{len})"));
    }
    Ok((ip, len))
}

/// `ip` with the bits past the first `len` cleared.
fn masked(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & keep).into())
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & keep).into())
        }
    }
}

fn contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    let (net, ip, bits) = match (net, ip.to_canonical()) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n) as u128, u32::from(i) as u128, 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
        _ => return false,
    };
    let shift = bits - u32::from(len);
    shift >= bits || (net >> shift) == (ip >> shift)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::http::{parse_head, Limits};

    fn head(headers: &str) -> Head {
        let raw = format!("GET /app/x HTTP/1.1\r\nHost: h\r\n{headers}\r\n");
        let limits = Limits::default();
        parse_head(&mut BytesMut::from(raw.as_bytes()), &limits).unwrap().unwrap()
    }

    fn defaults(map: &str) -> Policy {
        let secure: Vec<(String, String)> = DEFAULT_SECURE_SCHEME_HEADERS
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Policy::parse("127.0.0.1,::1,10.0.0.0/8", &secure, "SCRIPT_NAME,PATH_INFO", map).unwrap()
    }

    const LOCAL: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    const FAR: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9)));

    #[test]
    fn scheme_headers_from_trusted_peers_only() {
        let p = defaults("drop");
        let https = head("X-Forwarded-Proto: https\r\n");
        assert!(p.judge(&https, LOCAL).unwrap().https);
        assert!(p.judge(&https, Some("10.2.3.4".parse().unwrap())).unwrap().https);
        assert!(p.judge(&https, Some("::ffff:127.0.0.1".parse().unwrap())).unwrap().https);
        assert!(!p.judge(&https, FAR).unwrap().https);
        assert!(p.judge(&https, None).unwrap().https, "unix sockets are trusted");
        let both = head("X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: on\r\n");
        assert!(p.judge(&both, LOCAL).unwrap().https);
        let clash = head("X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n");
        assert_eq!(p.judge(&clash, LOCAL), Err(Error::BadHeader("contradictory scheme headers")));
        assert!(p.judge(&clash, FAR).is_ok(), "an untrusted peer's scheme headers are ignored");
    }

    #[test]
    fn underscore_headers() {
        let mounted = head("SCRIPT_NAME: /app\r\n");
        assert_eq!(
            defaults("drop").judge(&mounted, LOCAL).unwrap().script_name.as_deref(),
            Some("/app")
        );
        assert_eq!(defaults("drop").judge(&mounted, FAR).unwrap().script_name, None);
        assert_eq!(defaults("refuse").judge(&mounted, FAR), Err(Error::BadHeaderName));
        let elsewhere = head("SCRIPT_NAME: /other\r\n");
        assert!(defaults("drop").judge(&elsewhere, LOCAL).is_err());
        let sneaky = head("X_Forwarded_For: 1.2.3.4\r\n");
        assert!(!defaults("drop").keeps("X_FORWARDED_FOR", true));
        assert!(defaults("dangerous").keeps("X_FORWARDED_FOR", false));
        assert_eq!(defaults("refuse").judge(&sneaky, LOCAL), Err(Error::BadHeaderName));
    }

    #[test]
    fn allow_list_forms() {
        assert!(Policy::parse("*", &[], "", "drop").unwrap().trusts(FAR));
        assert!(Policy::parse("192.168.0.0/16, fd00::/8", &[], "", "drop").is_ok());
        for bad in ["nope", "10.0.0.0/33", "::1/129"] {
            assert!(Policy::parse(bad, &[], "", "drop").is_err(), "{bad}");
        }
        assert!(Policy::parse("*", &[], "", "loose").is_err());
        let p = Policy::parse("::1", &[], "", "drop").unwrap();
        assert!(p.trusts(Some("::1".parse().unwrap())) && !p.trusts(LOCAL));
    }

    /// `--uwsgi-allow-from`: hosts, networks, `*`; a unix socket's peer is always allowed.
    #[test]
    fn uwsgi_allow_list() {
        let ip = |s: &str| Some(s.parse().unwrap());
        let allow = AllowList::parse("--uwsgi-allow-from", "127.0.0.1, 10.0.0.0/8,::1").unwrap();
        for (peer, allowed) in [
            (ip("127.0.0.1"), true),
            (ip("10.200.0.3"), true),
            (ip("::1"), true),
            (ip("::ffff:10.1.2.3"), true),
            (ip("127.0.0.2"), false),
            (ip("11.0.0.1"), false),
            (None, true),
        ] {
            assert_eq!(allow.allows(peer), allowed, "{peer:?}");
        }
        assert!(AllowList::parse("f", "*").unwrap().allows(ip("192.0.2.1")));
        assert!(!AllowList::parse("f", "").unwrap().allows(ip("127.0.0.1")));
        let error = AllowList::parse("--uwsgi-allow-from", "10.0.0.1,nope").unwrap_err();
        assert_eq!(error, r#"--uwsgi-allow-from: "nope" is not an IP address or network"#);
    }

    /// gunicorn (Python's strict `ip_network`) refuses `10.0.0.1/8`; it was taken as
    /// 10.0.0.0/8. Networks written right, and `/0`, still parse.
    #[test]
    fn a_network_with_host_bits_set_is_refused() {
        for (text, network) in [
            ("10.0.0.1/8", "10.0.0.0/8"),
            ("192.168.1.1/24", "192.168.1.0/24"),
            ("2001:db8::1/32", "2001:db8::/32"),
            ("1.2.3.4/0", "0.0.0.0/0"),
        ] {
            let error = AllowList::parse("--proxy-allow-from", text).unwrap_err();
            let want = format!(
                "--proxy-allow-from: {text:?} has host bits set (the network is {network})"
            );
            assert_eq!(error, want);
        }
        for good in ["10.0.0.0/8", "10.0.0.1/32", "10.0.0.1", "0.0.0.0/0", "::/0", "2001:db8::/32"]
        {
            AllowList::parse("--proxy-allow-from", good).unwrap();
        }
    }
}
