//! WebSocket (RFC 6455), server side and sans-io: the opening handshake read from a parsed
//! [`Head`](crate::Head) and answered, and the framing of the messages that follow.
//!
//! - [`handshake`]: [`read_offer`] decides whether a request is an upgrade and whether it is
//!   refused before the app sees it (gunicorn 27's rule, status for status);
//!   [`write_accept`] and [`write_refusal`] write the answer.
//! - [`frame`]: the [`Decoder`] turns a client's bytes into whole [`Message`]s, failing the
//!   connection with the close code of its [`Error`]; `encode_*` write server frames.
//!
//! No extension is negotiated (permessage-deflate is not offered, as gunicorn does not):
//! a frame with an RSV bit set is a protocol error. What the codec checks, and how it
//! fares under Autobahn's fuzzingclient, is in docs/websocket-protocol.md.
//!
//! ```
//! use bytes::BytesMut;
//! use ferricorn_http::websocket::{self, Message};
//! use ferricorn_http::{parse_head, Limits};
//!
//! let mut buf = BytesMut::from(
//!     &b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\
//!        \x81\x82\x00\x00\x00\x00hi"[..],
//! );
//! let head = parse_head(&mut buf, &Limits::default()).unwrap().unwrap();
//! let offer = websocket::read_offer(&head).expect("an upgrade").expect("not refused");
//! let mut out = Vec::new();
//! websocket::write_accept(&mut out, &offer, None, &[]).unwrap();
//! assert!(out.ends_with(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
//!
//! let mut decoder = websocket::Decoder::new(16 << 20);
//! assert_eq!(decoder.decode(&mut buf), Ok(Some(Message::Text("hi".into()))));
//! ```

pub mod frame;
pub mod handshake;

pub use frame::{
    encode_binary, encode_close, encode_ping, encode_pong, encode_text, valid_close_code, Close,
    Decoder, Error, Message,
};
pub use handshake::{accept_key, read_offer, write_accept, write_refusal, Offer, Refusal};
