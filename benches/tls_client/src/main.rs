//! Connections per second, each new, each with one request: `benches/tls_speed.py`'s
//! handshake figure.
//!
//! `tls-client --port P [--host H] [--connections C] [--duration S] [--plain]`: C threads,
//! each connecting, handshaking (unless `--plain`), sending one `GET /` with
//! `Connection: close`, reading the whole response (by its `Content-Length`) and closing,
//! over and over for S seconds. Resumption is off, so every handshake is a full one; each
//! connection's kind as rustls saw it (full, full after a HelloRetryRequest, resumed) is
//! counted, so that the report shows it. The certificate is not checked (a self-signed one
//! made for the run; the handshake's signature still is, as wrk's OpenSSL does). Prints
//! one JSON object on stdout.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind};

#[path = "../../client_common.rs"]
mod client_common;

use client_common::Common;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

/// What the command line asks for.
struct Args {
    /// Host, port, threads (each with one connection at a time), how long to keep connecting.
    common: Common,
    /// Plain TCP: new connections without TLS, the reference for what TLS adds.
    plain: bool,
}

/// What one thread counted.
#[derive(Default)]
struct Counts {
    /// Connections that got a whole 200 response.
    ok: u64,
    /// Connections that failed anywhere: connect, handshake, I/O, a status other than 200.
    errors: u64,
    /// Full handshakes.
    full: u64,
    /// Full handshakes after a HelloRetryRequest (the server wanted another key share).
    retried: u64,
    /// Resumed handshakes: none expected, resumption is off.
    resumed: u64,
    /// The first error, for the report.
    first_error: Option<String>,
    /// Version, cipher suite and key exchange group of the first handshake.
    negotiated: Option<String>,
}

/// What one connection saw of its handshake (nothing with `--plain`).
struct Handshake {
    /// Full, full after a HelloRetryRequest, or resumed.
    kind: Option<HandshakeKind>,
    /// Version, cipher suite and key exchange group, as rustls names them.
    negotiated: String,
}

/// Accepts the server's certificate without checking its chain or name, and checks the
/// handshake's signatures with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn parse_args() -> Result<Args, String> {
    let (common, rest) = client_common::parse_args(&["--plain"])?;
    let mut args = Args { common, plain: false };
    for (flag, value) in rest {
        match (flag.as_str(), value) {
            ("--plain", None) => args.plain = true,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Reads one response: the head, then `Content-Length` bytes of body (to the end of the
/// stream without one). Returns its status code.
fn read_response(stream: &mut impl Read) -> Result<u16, String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        let head = parse_head(&buf);
        if let Some((status, Some(whole))) = head {
            if buf.len() >= whole {
                return Ok(status);
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return head.map(|(status, _)| status).ok_or("closed before the head".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// The status and, with a `Content-Length`, the whole response's length, once the head is in.
fn parse_head(buf: &[u8]) -> Option<(u16, Option<usize>)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    Some((status, length.map(|n| end + 4 + n)))
}

/// One connection: connect, handshake, request, response, close_notify.
fn one_connection(args: &Args, config: &Arc<ClientConfig>) -> Result<Option<Handshake>, String> {
    let mut sock = client_common::connect(&args.common)?;
    let status = if args.plain {
        sock.write_all(REQUEST).map_err(|e| format!("write: {e}"))?;
        (read_response(&mut sock)?, None)
    } else {
        let name = ServerName::try_from(args.common.host.clone()).map_err(|e| e.to_string())?;
        let mut conn = ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        tls.write_all(REQUEST).map_err(|e| format!("handshake or write: {e}"))?;
        tls.flush().map_err(|e| format!("flush: {e}"))?;
        let status = read_response(&mut tls)?;
        conn.send_close_notify();
        let _ = conn.write_tls(&mut sock); // as wrk's SSL_shutdown; the server may be gone
        (status, Some(Handshake { kind: conn.handshake_kind(), negotiated: negotiated(&conn) }))
    };
    match status {
        (200, handshake) => Ok(handshake),
        (code, _) => Err(format!("status {code}")),
    }
}

fn negotiated(conn: &ClientConnection) -> String {
    let version = conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
    let suite = conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite()));
    let group = conn.negotiated_key_exchange_group().map(|g| format!("{:?}", g.name()));
    format!("{version} {} {}", suite.unwrap_or_default(), group.unwrap_or_default())
}

fn run_thread(args: &Args, config: &Arc<ClientConfig>, deadline: Instant) -> Counts {
    let mut counts = Counts::default();
    while Instant::now() < deadline {
        match one_connection(args, config) {
            Ok(handshake) => {
                counts.ok += 1;
                let Some(handshake) = handshake else { continue };
                counts.negotiated.get_or_insert(handshake.negotiated);
                match handshake.kind {
                    Some(HandshakeKind::Full) => counts.full += 1,
                    Some(HandshakeKind::FullWithHelloRetryRequest) => counts.retried += 1,
                    Some(HandshakeKind::Resumed) => counts.resumed += 1,
                    None => {}
                }
            }
            Err(e) => {
                counts.errors += 1;
                counts.first_error.get_or_insert(e);
            }
        }
    }
    counts
}

fn main() {
    let args = client_common::args_or_exit("tls-client", parse_args());
    let (worker, config) = (args.clone(), client_config());
    let (counts, seconds) = client_common::run_threads(&args.common, move |_, deadline| {
        run_thread(&worker, &config, deadline)
    });
    let mut total = Counts::default();
    for c in counts {
        total.ok += c.ok;
        total.errors += c.errors;
        total.full += c.full;
        total.retried += c.retried;
        total.resumed += c.resumed;
        total.first_error = total.first_error.or(c.first_error);
        total.negotiated = total.negotiated.or(c.negotiated);
    }
    println!(
        "{{\"ok\": {}, \"errors\": {}, \"full\": {}, \"retried\": {}, \"resumed\": {}, \
         \"seconds\": {seconds:.3}, \"negotiated\": {}, \"first_error\": {}}}",
        total.ok,
        total.errors,
        total.full,
        total.retried,
        total.resumed,
        client_common::quoted(total.negotiated),
        client_common::quoted(total.first_error)
    );
}
