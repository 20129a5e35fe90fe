//! Request bodies as the app reads them: Content-Length counted down, or chunked decoded.
//!
//! Decoding is incremental by design: the worker feeds whatever arrived and the app gets
//! at most what it asked for, so a 1 GB upload never sits in memory.

use bytes::{Bytes, BytesMut};

use super::chunked::ChunkedDecoder;
use super::{BodyFraming, Error};

/// One step of body decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes, in order.
    Data(Bytes),
    /// The framing needs bytes that have not arrived.
    NeedMore,
    /// The body is complete; bytes left in the buffer belong to the next request.
    End,
}

/// A request body's decoder, chosen by the head's [`BodyFraming`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyDecoder {
    /// A Content-Length body (or none: a length of 0).
    Length {
        /// Bytes still to come: counted down, so the next request's bytes are never
        /// handed out as body.
        remaining: u64,
    },
    /// A chunked body.
    Chunked(ChunkedDecoder),
}

impl BodyDecoder {
    /// The decoder for a head's framing.
    pub fn new(framing: BodyFraming) -> Self {
        match framing {
            BodyFraming::Empty => BodyDecoder::Length { remaining: 0 },
            BodyFraming::Length(n) => BodyDecoder::Length { remaining: n },
            BodyFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::default()),
        }
    }

    /// Takes up to `max` body bytes out of `src`.
    pub fn decode(&mut self, src: &mut BytesMut, max: usize) -> Result<Decoded, Error> {
        match self {
            BodyDecoder::Length { remaining: 0 } => Ok(Decoded::End),
            BodyDecoder::Length { remaining } => {
                if src.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = (*remaining).min(src.len() as u64).min(max.max(1) as u64) as usize;
                *remaining -= n as u64;
                Ok(Decoded::Data(src.split_to(n).freeze()))
            }
            BodyDecoder::Chunked(chunked) => chunked.decode(src, max),
        }
    }

    /// The whole body has been decoded: whatever follows is the next request.
    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Length { remaining } => *remaining == 0,
            BodyDecoder::Chunked(chunked) => chunked.is_done(),
        }
    }

    /// What the end of input means here: a truncated body, unless it was complete.
    pub fn eof(&self) -> Result<Decoded, Error> {
        match self.is_done() {
            true => Ok(Decoded::End),
            false => Err(Error::IncompleteBody),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_body_stops_at_its_length() {
        let mut dec = BodyDecoder::new(BodyFraming::Length(5));
        let mut src = BytesMut::from(&b"helloGET"[..]);
        assert_eq!(dec.decode(&mut src, 3), Ok(Decoded::Data(Bytes::from_static(b"hel"))));
        assert_eq!(dec.decode(&mut src, 9), Ok(Decoded::Data(Bytes::from_static(b"lo"))));
        assert_eq!(dec.decode(&mut src, 9), Ok(Decoded::End));
        assert_eq!(&src[..], b"GET");
    }

    #[test]
    fn eof_before_the_length_is_an_error() {
        let mut dec = BodyDecoder::new(BodyFraming::Length(5));
        let mut src = BytesMut::from(&b"he"[..]);
        assert!(matches!(dec.decode(&mut src, 9), Ok(Decoded::Data(_))));
        assert_eq!(dec.decode(&mut src, 9), Ok(Decoded::NeedMore));
        assert_eq!(dec.eof(), Err(Error::IncompleteBody));
    }

    #[test]
    fn empty_body_ends_at_once() {
        let dec = BodyDecoder::new(BodyFraming::Empty);
        assert!(dec.is_done());
        assert_eq!(dec.eof(), Ok(Decoded::End));
    }
}
