//! Reason phrases: every status code of RFC 9110 §15 and the other codes the IANA HTTP
//! Status Code Registry lists.
//!
//! A reason phrase is decoration (RFC 9112 §4: a client should ignore it), so the table
//! matters only for the responses a server writes itself, its error pages. An app's
//! status line is sent as the app wrote it, reason and all, as gunicorn does.

/// The registered reason phrase for `status`; `""` for a code nobody registered (the
/// status line `HTTP/1.1 599 ` is valid: RFC 9112 §4 makes the phrase optional), and for
/// 306 and 418, which RFC 9110 §15.4.7 and §15.5.19 list as "(Unused)".
pub fn reason(status: u16) -> &'static str {
    match status {
        100..=199 => informational(status),
        200..=299 => successful(status),
        300..=399 => redirection(status),
        400..=499 => client_error(status),
        500..=599 => server_error(status),
        _ => "",
    }
}

/// RFC 9110 §15.2, with 102 (RFC 2518) and 103 (RFC 8297).
fn informational(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        _ => "",
    }
}

/// RFC 9110 §15.3, with WebDAV's 207 and 208 and delta encoding's 226 (RFC 3229).
fn successful(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        _ => "",
    }
}

/// RFC 9110 §15.4.
fn redirection(status: u16) -> &'static str {
    match status {
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        _ => "",
    }
}

/// RFC 9110 §15.5, with WebDAV's 423 and 424, 425 (RFC 8470), 428, 429 and 431
/// (RFC 6585) and 451 (RFC 7725).
fn client_error(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        _ => "",
    }
}

/// RFC 9110 §15.6, with 506 (RFC 2295), WebDAV's 507 and 508, 510 (RFC 2774, now
/// obsolete but registered) and 511 (RFC 6585).
fn server_error(status: u16) -> &'static str {
    match status {
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::reason;

    /// The IANA registry (2024-10), every assigned code, as it names them.
    const REGISTERED: &[(u16, &str)] = &[
        (100, "Continue"),
        (101, "Switching Protocols"),
        (102, "Processing"),
        (103, "Early Hints"),
        (200, "OK"),
        (201, "Created"),
        (202, "Accepted"),
        (203, "Non-Authoritative Information"),
        (204, "No Content"),
        (205, "Reset Content"),
        (206, "Partial Content"),
        (207, "Multi-Status"),
        (208, "Already Reported"),
        (226, "IM Used"),
        (300, "Multiple Choices"),
        (301, "Moved Permanently"),
        (302, "Found"),
        (303, "See Other"),
        (304, "Not Modified"),
        (305, "Use Proxy"),
        (307, "Temporary Redirect"),
        (308, "Permanent Redirect"),
        (400, "Bad Request"),
        (401, "Unauthorized"),
        (402, "Payment Required"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (406, "Not Acceptable"),
        (407, "Proxy Authentication Required"),
        (408, "Request Timeout"),
        (409, "Conflict"),
        (410, "Gone"),
        (411, "Length Required"),
        (412, "Precondition Failed"),
        (413, "Content Too Large"),
        (414, "URI Too Long"),
        (415, "Unsupported Media Type"),
        (416, "Range Not Satisfiable"),
        (417, "Expectation Failed"),
        (421, "Misdirected Request"),
        (422, "Unprocessable Content"),
        (423, "Locked"),
        (424, "Failed Dependency"),
        (425, "Too Early"),
        (426, "Upgrade Required"),
        (428, "Precondition Required"),
        (429, "Too Many Requests"),
        (431, "Request Header Fields Too Large"),
        (451, "Unavailable For Legal Reasons"),
        (500, "Internal Server Error"),
        (501, "Not Implemented"),
        (502, "Bad Gateway"),
        (503, "Service Unavailable"),
        (504, "Gateway Timeout"),
        (505, "HTTP Version Not Supported"),
        (506, "Variant Also Negotiates"),
        (507, "Insufficient Storage"),
        (508, "Loop Detected"),
        (510, "Not Extended"),
        (511, "Network Authentication Required"),
    ];

    #[test]
    fn every_registered_code_has_its_phrase() {
        for &(code, phrase) in REGISTERED {
            assert_eq!(reason(code), phrase, "{code}");
        }
    }

    /// Nothing outside the registry gets a phrase: not the "(Unused)" 306 and 418, not an
    /// unassigned code, not a code outside 1xx-5xx.
    #[test]
    fn unregistered_codes_have_an_empty_phrase() {
        for code in 0..=1000u16 {
            if !REGISTERED.iter().any(|&(c, _)| c == code) {
                assert_eq!(reason(code), "", "{code}");
            }
        }
    }
}
