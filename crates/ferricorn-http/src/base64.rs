//! Base64 (RFC 4648), the two ways the server meets it: encoded for a WebSocket accept
//! key and a client certificate's PEM, decoded for a `Basic` user name and an
//! `HTTP2-Settings` payload, each as the Python that gunicorn runs reads it.

/// RFC 4648 §4's alphabet.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4).
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            let c = match i <= chunk.len() {
                true => ALPHABET[(n >> (18 - 6 * i) & 63) as usize],
                false => b'=',
            };
            out.push(char::from(c));
        }
    }
    out
}

/// Which text [`decode`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// RFC 4648 §4 with its padding, as Python's `b64decode(text, validate=True)`.
    Standard,
    /// RFC 4648 §5 (`-` and `_`, the standard `+` and `/` too) with the padding optional,
    /// as gunicorn reads `HTTP2-Settings`: `b64decode(text + pad, altchars=b"-_",
    /// validate=True)`.
    UrlSafe,
}

/// The bytes `text` encodes; `None` for a byte outside the alphabet or a bad length.
pub fn decode(text: &str, alphabet: Alphabet) -> Option<Vec<u8>> {
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        b'-' if alphabet == Alphabet::UrlSafe => Some(62),
        b'_' if alphabet == Alphabet::UrlSafe => Some(63),
        _ => None,
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let padded = match alphabet {
        Alphabet::Standard => text.len(),
        Alphabet::UrlSafe => text.len().next_multiple_of(4),
    };
    if padded % 4 != 0 || bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let values = chunk.iter().map(|&c| sextet(c)).collect::<Option<Vec<u8>>>()?;
        let n = values.iter().fold(0u32, |acc, &v| (acc << 6) | u32::from(v))
            << (6 * (4 - values.len()));
        let take = values.len().saturating_sub(1);
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_rfc_4648_vectors_and_decoding_reverses_it() {
        // RFC 4648 §10.
        let rows = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (data, want) in rows {
            assert_eq!(encode(data.as_bytes()), want, "{data:?}");
            assert_eq!(decode(want, Alphabet::Standard).as_deref(), Some(data.as_bytes()));
            let bare = want.trim_end_matches('=');
            assert_eq!(decode(bare, Alphabet::UrlSafe).as_deref(), Some(data.as_bytes()));
        }
    }

    #[test]
    fn decoding_refuses_what_python_refuses() {
        assert_eq!(decode("Zg", Alphabet::Standard), None); // unpadded
        assert_eq!(decode("Z", Alphabet::UrlSafe), None); // one sextet is no byte
        assert_eq!(decode("Zm9v!A==", Alphabet::Standard), None);
        assert_eq!(decode("-_8", Alphabet::Standard), None);
        assert_eq!(decode("-_8", Alphabet::UrlSafe), Some(vec![0xfb, 0xff]));
    }
}
