//! gunicorn's request limits and parser leniency settings, and how a head is measured
//! against the limits.
//!
//! The verdict depends only on the bytes, never on how they arrived (bug 7): `scan` walks
//! the head line by line from its start on every call, and each limit is broken at a byte
//! fixed by the bytes before it. A head sent whole and the same head sent byte by byte
//! therefore break the same limit in the same line, or none.

use super::Error;

/// gunicorn's cap on `limit_request_line` (message.py `MAX_REQUEST_LINE`).
pub const MAX_REQUEST_LINE: usize = 8190;
/// gunicorn's cap on `limit_request_fields` (message.py `MAX_HEADERS`).
pub const MAX_HEADERS: usize = 32768;
/// What gunicorn uses for a `limit_request_field_size` of 0 (`DEFAULT_MAX_HEADERFIELD_SIZE`).
pub const DEFAULT_FIELD_SIZE: usize = 8190;

/// gunicorn's request limits, as the settings give them (raw values, gunicorn's meaning of
/// 0 applied by `Limits::effective`), and its parser leniency settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line in bytes, without its CRLF (`limit_request_line`). 0: no limit
    /// of its own, as in gunicorn 27 (the line then counts against the head's budget);
    /// above 8190: 8190.
    pub request_line: usize,
    /// Most header fields in one request (`limit_request_fields`); 0 or above 32768: 32768.
    pub fields: usize,
    /// Longest header field in bytes, its CRLF and any continuation lines included
    /// (`limit_request_field_size`); 0: 8190, as gunicorn 27's message.py reads it.
    pub field_size: usize,
    /// gunicorn's parser leniency settings; all off by default.
    pub lenient: Leniency,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { request_line: 4094, fields: 100, field_size: 8190, lenient: Leniency::default() }
    }
}

/// gunicorn's settings that relax its request parser, each off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leniency {
    /// `--casefold-http-method`: the method is upper-cased after it is checked.
    pub casefold_method: bool,
    /// `--permit-obsolete-folding`: a header line starting with SP or HTAB continues the
    /// previous field (RFC 9112 §5.2), joined to it with one SP.
    pub obsolete_folding: bool,
    /// `--permit-unconventional-http-method`: any token is a method, not only 3 to 20
    /// characters without lower-case letters or `#`.
    pub unconventional_method: bool,
    /// `--permit-unconventional-http-version`: any `HTTP/d.d`, not only 1.0 and 1.1.
    pub unconventional_version: bool,
    /// `--strip-header-spaces`: whitespace between a field name and its colon is removed
    /// (a request-smuggling seam; gunicorn deprecates it).
    pub strip_header_spaces: bool,
}

/// The limits with gunicorn's meaning of 0 and its caps applied, and the head's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Effective {
    /// `None`: the request line has no limit of its own.
    pub(crate) request_line: Option<usize>,
    /// Most header fields: `limit_request_fields` with 0 and the cap applied.
    pub(crate) fields: usize,
    /// Longest field in bytes with its CRLF: `limit_request_field_size`, 0 as 8190.
    pub(crate) field_size: usize,
    /// The most bytes a whole head may take: every line at its limit (gunicorn's
    /// `max_buffer_headers`, plus the request line when it has a limit).
    pub(crate) head: usize,
}

impl Limits {
    /// Settings from the network's point of view are hostile too: huge values saturate.
    pub(crate) fn effective(&self) -> Effective {
        let request_line = match self.request_line {
            0 => None,
            n => Some(n.min(MAX_REQUEST_LINE)),
        };
        let fields = match self.fields {
            0 => MAX_HEADERS,
            n => n.min(MAX_HEADERS),
        };
        let field_size = match self.field_size {
            0 => DEFAULT_FIELD_SIZE,
            n => n,
        };
        let line_budget = request_line.map_or(0, |n| n + 2);
        let head = fields.saturating_mul(field_size.saturating_add(2)).saturating_add(4);
        Effective { request_line, fields, field_size, head: head.saturating_add(line_budget) }
    }

    /// Largest head accepted: every line at its limit.
    pub fn max_head(&self) -> usize {
        self.effective().head
    }
}

/// Where a head stands against the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Not complete yet: the first `lines_end` bytes are whole lines, holding `fields`
    /// header fields.
    Partial { lines_end: usize, fields: usize },
    /// The head, through its empty line, is the first `len` bytes; `fields` header fields.
    Complete { len: usize, fields: usize },
    /// A limit is broken in the line that starts at `line_start`.
    Broken { error: Error, line_start: usize },
}

/// Measures `buf` (a head from its request line on) line by line. A line's length is a
/// lower bound while its LF has not arrived (a last CR may yet be its terminator), so a
/// limit once broken stays broken as bytes arrive, in the same line.
pub(crate) fn scan(buf: &[u8], limits: &Effective, folding: bool) -> Scan {
    let (mut start, mut fields, mut field_len) = (0usize, 0usize, 0usize);
    loop {
        let rest = &buf[start..];
        let lf = rest.iter().position(|&b| b == b'\n');
        let line = &rest[..lf.unwrap_or(rest.len())];
        let content = line.strip_suffix(b"\r").unwrap_or(line);
        let end = start + lf.map_or(rest.len(), |i| i + 1);
        let broken = |error| Scan::Broken { error, line_start: start };
        if start == 0 {
            if limits.request_line.is_some_and(|max| content.len() > max) || end > limits.head {
                return broken(Error::RequestLineTooLong);
            }
        } else if content.is_empty() {
            if end > limits.head {
                return broken(Error::HeaderTooLarge);
            }
            match lf {
                Some(_) => return Scan::Complete { len: end, fields },
                None => return Scan::Partial { lines_end: start, fields },
            }
        } else {
            let continuation = folding && fields > 0 && matches!(content[0], b' ' | b'\t');
            if !continuation {
                fields += 1;
                field_len = 0;
            }
            if fields > limits.fields {
                return broken(Error::TooManyHeaders);
            }
            // gunicorn counts each line of a field with its CRLF.
            field_len = field_len.saturating_add(content.len() + 2);
            if field_len > limits.field_size || end > limits.head {
                return broken(Error::HeaderTooLarge);
            }
        }
        if lf.is_none() {
            return Scan::Partial { lines_end: start, fields };
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_caps_have_gunicorn_27s_meaning() {
        let rows = [
            // (request_line, fields, field_size) -> (line, fields, field_size)
            ((4094, 100, 8190), (Some(4094), 100, 8190)),
            ((0, 0, 0), (None, MAX_HEADERS, DEFAULT_FIELD_SIZE)),
            ((9000, 40000, 20000), (Some(MAX_REQUEST_LINE), MAX_HEADERS, 20000)),
        ];
        for ((request_line, fields, field_size), want) in rows {
            let limits = Limits { request_line, fields, field_size, ..Limits::default() };
            let e = limits.effective();
            assert_eq!((e.request_line, e.fields, e.field_size), want);
        }
    }

    /// The budget is built from settings: huge ones saturate instead of wrapping to a
    /// small budget (which would refuse every request) or panicking in a debug build.
    #[test]
    fn regression_huge_limits_do_not_overflow_the_head_budget() {
        let rows = [
            (usize::MAX, usize::MAX, usize::MAX),
            (0, MAX_HEADERS, usize::MAX),
            (0, MAX_HEADERS, usize::MAX - 1),
            (MAX_REQUEST_LINE, MAX_HEADERS, usize::MAX / MAX_HEADERS),
        ];
        for (request_line, fields, field_size) in rows {
            let limits = Limits { request_line, fields, field_size, ..Limits::default() };
            assert_eq!(limits.max_head(), usize::MAX, "{limits:?}");
        }
        let default = Limits::default();
        assert_eq!(default.max_head(), 4094 + 2 + 100 * 8192 + 4);
    }

    #[test]
    fn scan_finds_the_line_that_breaks_a_limit() {
        let small = Limits { request_line: 16, fields: 2, field_size: 20, ..Limits::default() };
        let e = small.effective();
        let broken = |error, line_start| Scan::Broken { error, line_start };
        let rows: &[(&[u8], Scan)] = &[
            (b"GET / HTTP/1.1\r\nA: 1\r\n\r\nbody", Scan::Complete { len: 24, fields: 1 }),
            (b"GET / HTTP/1.1\r\nA: 1\r\n", Scan::Partial { lines_end: 22, fields: 1 }),
            (b"GET / HTTP/1.1\r\nA: 1\r\n\r", Scan::Partial { lines_end: 22, fields: 1 }),
            (b"GET /0123456789 HTTP/1.1\r\n", broken(Error::RequestLineTooLong, 0)),
            (b"GET /0123456789", Scan::Partial { lines_end: 0, fields: 0 }),
            (b"GET /0123456789 H", broken(Error::RequestLineTooLong, 0)),
            (b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC", broken(Error::TooManyHeaders, 28)),
            (b"GET / HTTP/1.1\r\nA: 0123456789012345\r\n", broken(Error::HeaderTooLarge, 16)),
            // 18 bytes and the CR: the CR may end it at exactly 20 with its LF.
            (b"GET / HTTP/1.1\r\nA: 012345678901234\r", Scan::Partial { lines_end: 16, fields: 1 }),
        ];
        for (input, want) in rows {
            assert_eq!(scan(input, &e, false), *want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn folded_lines_count_toward_one_field() {
        let limits = Limits { fields: 1, field_size: 20, ..Limits::default() }.effective();
        let head = b"GET / HTTP/1.1\r\nA: 0123\r\n 4567\r\n\r\n";
        assert_eq!(scan(head, &limits, true), Scan::Complete { len: head.len(), fields: 1 });
        assert_eq!(
            scan(head, &limits, false),
            Scan::Broken { error: Error::TooManyHeaders, line_start: 25 }
        );
        let long = b"GET / HTTP/1.1\r\nA: 0123\r\n 456789012345\r\n\r\n";
        assert_eq!(
            scan(long, &limits, true),
            Scan::Broken { error: Error::HeaderTooLarge, line_start: 25 }
        );
    }
}
