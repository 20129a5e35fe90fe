//! What a connection's bytes start a request with, as `--protocol` says: an HTTP head
//! judged by the forwarding policy, or a uwsgi packet from an allowed front end (gunicorn's
//! `get_parser`). Both workers call [`parse_request`] where a head is due, so the rest of a
//! request (body, app, response) is the same for both protocols.

use bytes::BytesMut;

use crate::config::Protocol;
use crate::forwarded::{Policy, Verdict};
use crate::http::{self, uwsgi, Head, Limits};
use crate::listener::Peer;

/// How a worker reads request heads: the settings [`parse_request`] needs.
pub struct Front<'a> {
    /// `--protocol` (with `--uwsgi-allow-from`).
    pub protocol: &'a Protocol,
    /// `--limit-request-line` and friends.
    pub limits: &'a Limits,
    /// Which forwarding headers an HTTP request's peer may set.
    pub forwarded: &'a Policy,
}

/// A request head from the front of `buf` and what the front end said of it; `Ok(None)`:
/// more bytes are needed. An error is answered with its status and a close.
pub fn parse_request(
    buf: &mut BytesMut,
    front: &Front<'_>,
    peer: &Peer,
) -> Result<Option<(Head, Verdict)>, http::Error> {
    match front.protocol {
        Protocol::Http => {
            let Some(head) = http::parse_head(buf, front.limits)? else { return Ok(None) };
            let verdict = front.forwarded.judge(&head, peer.ip())?;
            Ok(Some((head, verdict)))
        }
        Protocol::Uwsgi(allow) => parse_uwsgi(buf, front.limits, allow, peer),
    }
}

/// gunicorn's `UWSGIRequest`: the peer is checked before a byte is read (403 for one not
/// allowed), then the packet. Forwarding headers are not consulted: the packet's `HTTPS`
/// sets the scheme and its `REMOTE_ADDR` the client.
fn parse_uwsgi(
    buf: &mut BytesMut,
    limits: &Limits,
    allow: &crate::forwarded::AllowList,
    peer: &Peer,
) -> Result<Option<(Head, Verdict)>, http::Error> {
    if !allow.allows(peer.ip()) {
        return Err(http::Error::UwsgiForbidden);
    }
    let Some(packet) = uwsgi::parse(buf, limits)? else { return Ok(None) };
    let remote = packet.remote.map(|(addr, port)| Peer::new(&addr, &port));
    let verdict =
        Verdict { trusted: false, https: packet.https, http: false, script_name: None, remote };
    Ok(Some((packet.head, verdict)))
}
