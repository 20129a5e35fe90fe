//! The PROXY protocol (HAProxy's, v1 text and v2 binary): the header a load balancer sends
//! before the first request of a connection, naming the client it accepted.
//!
//! [`parse`] takes the bytes received so far and answers [`Parsed::NeedMore`] until it can
//! tell, then either [`Parsed::NotProxy`] (with `--proxy-protocol auto` a connection may
//! start with a request, as in gunicorn) or the [`ProxyHeader`] and how many bytes it took.
//! The answer is the same however the bytes were split. Which peers may send a header
//! (`--proxy-allow-from`) is the server's business. Lengths are bounded by the protocol:
//! a v1 line is at most 107 bytes, a v2 header at most 16 + 65535.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 header's first 12 bytes.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 line's first 6 bytes.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line, CRLF included (the specification's 107 bytes).
pub const V1_MAX: usize = 107;

/// Which versions a connection may start with (gunicorn's `--proxy-protocol` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The text header only.
    V1,
    /// The binary header only.
    V2,
    /// Either, or none (the connection starts with a request).
    Auto,
}

/// What the header says of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// gunicorn's `proxy_protocol` value: `TCP4`, `TCP6`, `LOCAL` or `UNSPEC`.
    pub kind: &'static str,
    /// The client and the address it connected to; `None` for `LOCAL` and `UNSPEC`
    /// (the proxy's own connection, a health check: the socket's peer stands).
    pub addresses: Option<Addresses>,
    /// v2's type-length-value fields (type, value), bounds-checked; empty for v1.
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

/// The two ends of the proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The client: `REMOTE_ADDR` and `REMOTE_PORT`.
    pub source: SocketAddr,
    /// Where the client connected (the proxy's listening address).
    pub destination: SocketAddr,
}

/// What the bytes so far are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Too few bytes to tell.
    NeedMore,
    /// No PROXY header: the bytes are the request (only with [`Mode::Auto`]).
    NotProxy,
    /// A whole header, and the bytes it took from the front of the buffer.
    Header(ProxyHeader, usize),
}

/// A header that cannot be read: the connection gets 400 and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// gunicorn's `InvalidProxyLine`: a v1 line that does not parse.
    BadLine(&'static str),
    /// gunicorn's `InvalidProxyHeader`: a v2 header that does not parse.
    BadHeader(&'static str),
    /// The mode asks for a header and the connection did not start with one.
    Missing,
}

impl ProxyError {
    /// The answer to it, as gunicorn's: 400.
    pub fn status(&self) -> u16 {
        400
    }
}

/// Reads a PROXY header from the front of `buf` (see the module's documentation).
pub fn parse(buf: &[u8], mode: Mode) -> Result<Parsed, ProxyError> {
    let v2 = mode != Mode::V1 && starts_like(buf, V2_SIGNATURE);
    let v1 = mode != Mode::V2 && starts_like(buf, V1_PREFIX);
    match (v2, v1) {
        (true, _) if buf.len() < V2_SIGNATURE.len() => Ok(Parsed::NeedMore),
        (true, _) => parse_v2(buf),
        (_, true) if buf.len() < V1_PREFIX.len() => Ok(Parsed::NeedMore),
        (_, true) => parse_v1(buf),
        _ if buf.is_empty() => Ok(Parsed::NeedMore),
        _ if mode == Mode::Auto => Ok(Parsed::NotProxy),
        _ => Err(ProxyError::Missing),
    }
}

/// Whether `buf` starts a header `mode` reads, as soon as that can be told: `Some(true)`
/// once the v1 prefix or the v2 signature is whole, `Some(false)` once the bytes differ
/// from every prefix the mode reads. gunicorn checks `--proxy-allow-from` at this point,
/// before it reads the header: a peer not allowed is refused whatever follows.
pub fn announces(buf: &[u8], mode: Mode) -> Option<bool> {
    let v2 = mode != Mode::V1 && starts_like(buf, V2_SIGNATURE);
    let v1 = mode != Mode::V2 && starts_like(buf, V1_PREFIX);
    match (v2, v1) {
        (false, false) => Some(false),
        (true, _) if buf.len() >= V2_SIGNATURE.len() => Some(true),
        (_, true) if buf.len() >= V1_PREFIX.len() => Some(true),
        _ => None,
    }
}

/// Whether `buf` and `prefix` agree on their common length.
fn starts_like(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    buf[..n] == prefix[..n]
}

/// `PROXY TCP4 src dst sport dport\r\n` (or TCP6), as gunicorn reads it: six fields, two
/// addresses of the named family, ports 0..=65535 in decimal.
fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let Some(end) = buf.windows(2).take(V1_MAX - 1).position(|w| w == b"\r\n") else {
        return match buf.len() >= V1_MAX {
            true => Err(ProxyError::BadLine("no CRLF within 107 bytes")),
            false => Ok(Parsed::NeedMore),
        };
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProxyError::BadLine("not text"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let [_, kind, source, destination, source_port, destination_port] = fields[..] else {
        return Err(ProxyError::BadLine("not six fields"));
    };
    let (kind, ip): (&'static str, fn(&str) -> Option<IpAddr>) = match kind {
        "TCP4" => ("TCP4", |s| s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)),
        "TCP6" => ("TCP6", |s| s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)),
        _ => return Err(ProxyError::BadLine("protocol not supported")),
    };
    let address = |ip_text: &str, port_text: &str| -> Result<SocketAddr, ProxyError> {
        let addr = ip(ip_text).ok_or(ProxyError::BadLine("bad address"))?;
        Ok(SocketAddr::new(addr, port(port_text).ok_or(ProxyError::BadLine("invalid port"))?))
    };
    let addresses = Addresses {
        source: address(source, source_port)?,
        destination: address(destination, destination_port)?,
    };
    let header = ProxyHeader { version: 1, kind, addresses: Some(addresses), tlvs: Vec::new() };
    Ok(Parsed::Header(header, end + 2))
}

/// A port in decimal: 1 to 5 ASCII digits, at most 65535.
fn port(text: &str) -> Option<u16> {
    let digits = (1..=5).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
}

/// The binary header: signature, version and command, family and protocol, length, the
/// addresses, then TLVs to the end of the length.
fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let bad = ProxyError::BadHeader;
    if buf.len() < 16 {
        return Ok(Parsed::NeedMore);
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    if version != 2 {
        return Err(bad("unsupported version"));
    }
    if command > 1 {
        return Err(bad("unsupported command"));
    }
    let total = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if buf.len() < total {
        return Ok(Parsed::NeedMore);
    }
    let body = &buf[16..total];
    if command == 0 {
        // LOCAL: the proxy's own connection; what follows the header is ignored.
        let header = ProxyHeader { version: 2, kind: "LOCAL", addresses: None, tlvs: Vec::new() };
        return Ok(Parsed::Header(header, total));
    }
    let (family, protocol) = (buf[13] >> 4, buf[13] & 0x0f);
    if protocol != 1 {
        return Err(bad("only TCP protocol is supported"));
    }
    let (kind, addresses, rest) = match family {
        0 => ("UNSPEC", None, body),
        1 => v2_addresses::<4>(body, "TCP4")?,
        2 => v2_addresses::<16>(body, "TCP6")?,
        _ => return Err(bad("unsupported address family")),
    };
    let header = ProxyHeader { version: 2, kind, addresses, tlvs: tlvs(rest)? };
    Ok(Parsed::Header(header, total))
}

/// Source and destination addresses of `N` bytes each, then their two ports; the rest.
fn v2_addresses<'a, const N: usize>(
    body: &'a [u8],
    kind: &'static str,
) -> Result<(&'static str, Option<Addresses>, &'a [u8]), ProxyError> {
    if body.len() < 2 * N + 4 {
        return Err(ProxyError::BadHeader("insufficient address data"));
    }
    let ip = |bytes: &[u8]| -> IpAddr {
        match N {
            4 => IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()),
            _ => IpAddr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()),
        }
    };
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    let addresses = Addresses {
        source: SocketAddr::new(ip(&body[..N]), port(2 * N)),
        destination: SocketAddr::new(ip(&body[N..2 * N]), port(2 * N + 2)),
    };
    Ok((kind, Some(addresses), &body[2 * N + 4..]))
}

/// The TLVs: each a type byte, a big-endian length and that many bytes, exactly filling
/// what the header's length left; anything else is refused.
fn tlvs(mut rest: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, ProxyError> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 3 {
            return Err(ProxyError::BadHeader("truncated TLV"));
        }
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let value = rest.get(3..3 + len).ok_or(ProxyError::BadHeader("TLV past the header"))?;
        out.push((rest[0], value.to_vec()));
        rest = &rest[3 + len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// gunicorn's corpus: tests/corpus/gunicorn-requests.json, valid/pp_04.http's header.
    const V2_IPV4: &[u8] =
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\xa8\x01\x0a\xc0\xa8\x01\x01\x30\x39\x01\xbb";
    /// valid/pp_05.http's header: 2001:db8::1 port 54321 to 2001:db8::2 port 80.
    const V2_IPV6: &[u8] = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24\
        \x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\
        \x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\xd4\x31\x00\x50";

    /// Every prefix of `input` needs more or agrees with the whole (the same answer
    /// however the bytes were split).
    fn whole_and_bytewise(input: &[u8], mode: Mode) -> Result<Parsed, ProxyError> {
        let whole = parse(input, mode);
        for end in 0..input.len() {
            match parse(&input[..end], mode) {
                Ok(Parsed::NeedMore) => {}
                early => assert_eq!(early, whole, "prefix of {end} bytes of {input:?}"),
            }
        }
        whole
    }

    fn addresses(source: &str, destination: &str) -> Option<Addresses> {
        Some(Addresses {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        })
    }

    #[test]
    fn corpus_headers_parse() {
        let cases: &[(&[u8], &str, Option<Addresses>, usize)] = &[
            (
                b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.0\r\n\r\n",
                "TCP4",
                addresses("192.168.0.1:56324", "192.168.0.11:443"),
                47,
            ),
            (V2_IPV4, "TCP4", addresses("192.168.1.10:12345", "192.168.1.1:443"), 28),
            (V2_IPV6, "TCP6", addresses("[2001:db8::1]:54321", "[2001:db8::2]:80"), 52),
            (b"PROXY TCP6 ::1 ::2 1 65535\r\n", "TCP6", addresses("[::1]:1", "[::2]:65535"), 28),
        ];
        for &(input, kind, addrs, taken) in cases {
            let mut with_request = input.to_vec();
            with_request.extend_from_slice(b"GET / HTTP/1.1\r\n");
            match whole_and_bytewise(&with_request, Mode::Auto) {
                Ok(Parsed::Header(header, n)) => {
                    assert_eq!(
                        (header.kind, header.addresses, n),
                        (kind, addrs, taken),
                        "{input:?}"
                    )
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn corpus_bad_lines_are_refused() {
        let cases: &[&[u8]] = &[
            b"PROXY TCP4 192.168.0.1 192.16...\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 65iii 100000\r\n",
            b"PROXY TCP4 not-an-ip 192.168.0.11 56324 443\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 65536\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 +5 443\r\n",
            b"PROXY TCP4 ::1 ::2 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UNKNOWN\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        ];
        for input in cases {
            let result = whole_and_bytewise(input, Mode::Auto);
            assert!(matches!(result, Err(ProxyError::BadLine(_))), "{input:?}: {result:?}");
        }
        let long = [&b"PROXY TCP4 "[..], &[b'1'; 120]].concat();
        assert!(matches!(whole_and_bytewise(&long, Mode::V1), Err(ProxyError::BadLine(_))));
    }

    #[test]
    fn no_header_is_a_request_only_in_auto_mode() {
        let request = b"GET /no/proxy/header HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert_eq!(whole_and_bytewise(request, Mode::Auto), Ok(Parsed::NotProxy));
        assert_eq!(parse(request, Mode::V1), Err(ProxyError::Missing));
        assert_eq!(parse(request, Mode::V2), Err(ProxyError::Missing));
        assert_eq!(parse(b"", Mode::Auto), Ok(Parsed::NeedMore));
        // A request that starts like a header is told apart as soon as it differs.
        assert_eq!(parse(b"PRI * HTTP/2.0\r\n", Mode::Auto), Ok(Parsed::NotProxy));
        assert_eq!(parse(b"\r\nGET", Mode::Auto), Ok(Parsed::NotProxy));
        // Each mode reads only its own version.
        assert_eq!(parse(V2_IPV4, Mode::V1), Err(ProxyError::Missing));
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", Mode::V2),
            Err(ProxyError::Missing)
        );
    }

    #[test]
    fn a_header_is_announced_by_its_prefix() {
        let cases: &[(&[u8], Mode, Option<bool>)] = &[
            (b"", Mode::Auto, None),
            (b"PROX", Mode::Auto, None),
            (b"PROXY ", Mode::Auto, Some(true)),
            (b"PROXY garbage", Mode::V1, Some(true)),
            (b"PROXY ", Mode::V2, Some(false)),
            (b"PRI * HTTP/2.0", Mode::Auto, Some(false)),
            (b"GET / HTTP/1.1", Mode::V1, Some(false)),
            (&V2_SIGNATURE[..11], Mode::Auto, None),
            (V2_SIGNATURE, Mode::V2, Some(true)),
            (V2_SIGNATURE, Mode::V1, Some(false)),
            (b"\r\nGET", Mode::Auto, Some(false)),
        ];
        for &(input, mode, want) in cases {
            assert_eq!(announces(input, mode), want, "{input:?} {mode:?}");
            // Whenever it is told, parse agrees: a header (or a bad one), or not a header.
            let parsed = parse(input, mode);
            if want == Some(false) {
                assert!(matches!(parsed, Ok(Parsed::NotProxy) | Err(ProxyError::Missing)));
            }
        }
    }

    #[test]
    fn v2_local_unspec_tlvs_and_bad_headers() {
        let header = |ver_cmd: u8, fam: u8, body: &[u8]| -> Vec<u8> {
            let len = (body.len() as u16).to_be_bytes();
            [&V2_SIGNATURE[..], &[ver_cmd, fam, len[0], len[1]], body].concat()
        };
        let local = header(0x20, 0x00, b"ignored");
        match whole_and_bytewise(&local, Mode::V2) {
            Ok(Parsed::Header(h, 23)) => assert_eq!((h.kind, h.addresses), ("LOCAL", None)),
            other => panic!("{other:?}"),
        }
        let unspec = header(0x21, 0x01, &[]);
        match whole_and_bytewise(&unspec, Mode::V2) {
            Ok(Parsed::Header(h, 16)) => assert_eq!((h.kind, h.addresses), ("UNSPEC", None)),
            other => panic!("{other:?}"),
        }
        let mut with_tlvs = V2_IPV4[16..].to_vec();
        with_tlvs.extend_from_slice(b"\x04\x00\x02ab\x05\x00\x00");
        match whole_and_bytewise(&header(0x21, 0x11, &with_tlvs), Mode::Auto) {
            Ok(Parsed::Header(h, _)) => assert_eq!(h.tlvs, vec![(4, b"ab".to_vec()), (5, vec![])]),
            other => panic!("{other:?}"),
        }
        let bad: &[(Vec<u8>, &str)] = &[
            (header(0x11, 0x11, &V2_IPV4[16..]), "unsupported version"),
            (header(0x22, 0x11, &V2_IPV4[16..]), "unsupported command"),
            (header(0x21, 0x12, &V2_IPV4[16..]), "only TCP protocol is supported"),
            (header(0x21, 0x31, &[0; 216]), "unsupported address family"),
            (header(0x21, 0x11, &V2_IPV4[16..27]), "insufficient address data"),
            (header(0x21, 0x21, &V2_IPV4[16..]), "insufficient address data"),
            (header(0x21, 0x11, &[&V2_IPV4[16..], &b"\x04\x00"[..]].concat()), "truncated TLV"),
            (
                header(0x21, 0x11, &[&V2_IPV4[16..], &b"\x04\x00\x09ab"[..]].concat()),
                "TLV past the header",
            ),
        ];
        for (input, reason) in bad {
            assert_eq!(whole_and_bytewise(input, Mode::Auto), Err(ProxyError::BadHeader(reason)));
        }
    }
}
