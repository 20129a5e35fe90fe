//! [`TlsTransport`] against a rustls client over a socket pair: the server side is
//! non-blocking and driven with the workers' own waiting helpers, the client blocks on a
//! thread of its own.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::thread::JoinHandle;

use bytes::BytesMut;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use socket2::{Domain, Type};

use super::*;
use crate::tls::tests::testdata;
use crate::worker::io::{read_waiting, send_file_waiting, write_all_waiting};

const WAIT: Duration = Duration::from_secs(10);

fn server_config() -> Arc<ServerConfig> {
    let policy = crate::config::TlsPolicy::default();
    crate::tls::server_config(&testdata("cert.pem"), Some(&testdata("key.pem")), &policy).unwrap()
}

fn client_config(versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(testdata("ca.pem")).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

type Client = StreamOwned<ClientConnection, Socket>;

fn client_on(socket: Socket, versions: &[&'static rustls::SupportedProtocolVersion]) -> Client {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(client_config(versions), name).unwrap();
    StreamOwned::new(conn, socket)
}

/// A server transport and the client's end of the pair.
fn pair() -> (TlsTransport, Socket) {
    let (server, client) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
    server.set_nonblocking(true).unwrap();
    (TlsTransport::new(server, server_config(), &[]), client)
}

/// Reads on the server until `want` bytes arrived (or the end of stream).
fn read_exactly(server: &TlsTransport, want: usize) -> io::Result<Vec<u8>> {
    let (mut buf, mut scratch) = (BytesMut::new(), vec![0; 65536]);
    while buf.len() < want {
        if read_waiting(server, &mut buf, &mut scratch, WAIT)? == 0 {
            break;
        }
    }
    Ok(buf.to_vec())
}

/// The client thread: sends `request`, then reads to the end of stream.
fn client_thread(mut client: Client, request: &'static [u8]) -> JoinHandle<io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        client.write_all(request)?;
        let mut got = Vec::new();
        client.read_to_end(&mut got)?;
        Ok(got)
    })
}

/// Both versions: the handshake runs inside the server's first read, the request arrives
/// whole, the response and `close_notify` end the client's stream cleanly (a truncation
/// would be an `UnexpectedEof` error in `read_to_end`), and ALPN chose `http/1.1`.
#[test]
fn a_request_and_its_response_over_tls_1_2_and_1_3() {
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let (server, client) = pair();
        let client = client_on(client, &[version]);
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let thread = client_thread(client, request);
        assert_eq!(read_exactly(&server, request.len()).unwrap(), request);
        write_all_waiting(&server, b"HTTP/1.1 200 OK\r\n\r\nhello", WAIT).unwrap();
        server.shutdown_write().unwrap();
        let got = thread.join().unwrap().unwrap();
        assert_eq!(got, b"HTTP/1.1 200 OK\r\n\r\nhello", "{version:?}");
        let session = server.lock();
        let Engine::Rustls(tls) = &session.engine else { panic!("the session left rustls") };
        assert_eq!(tls.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(tls.protocol_version(), Some(version.version));
    }
}

/// A response far bigger than the socket's buffer and rustls's: writes stop at
/// `WouldBlock` with records held, `flush` pushes them as the client drains, and the
/// client gets every byte in order. `send_file`'s read-and-write fallback likewise.
#[test]
fn a_big_response_through_a_small_socket_buffer() {
    let (server, client) = pair();
    server.socket.set_send_buffer_size(4096).unwrap();
    let client = client_on(client, &[&rustls::version::TLS13]);
    let thread = client_thread(client, b"GO");
    assert_eq!(read_exactly(&server, 2).unwrap(), b"GO");
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut sent, mut blocked) = (0, 0);
    while sent < body.len() {
        match server.write(&body[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                blocked += 1;
                server.wait(Want::Write, WAIT).unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    while !server.flush().unwrap() {
        server.wait(Want::Write, WAIT).unwrap();
    }
    let path = std::env::temp_dir().join(format!("ferricorn-tls-file-{}", std::process::id()));
    std::fs::write(&path, &body[..500_000]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let mut span = crate::wsgi::FileSpan { fd: file.as_raw_fd(), offset: 0, len: 500_000 };
    send_file_waiting(&server, &mut span, WAIT).unwrap();
    while !server.flush().unwrap() {
        server.wait(Want::Write, WAIT).unwrap();
    }
    server.shutdown_write().unwrap();
    // The socket may be full even for `close_notify`: it and the FIN wait for room.
    while !server.flush().unwrap() {
        server.wait(Want::Write, WAIT).unwrap();
    }
    let got = thread.join().unwrap().unwrap();
    assert!(blocked > 0, "the socket was meant to fill up");
    assert_eq!(got.len(), body.len() + 500_000);
    assert!(got[..body.len()] == body[..], "the written bytes");
    assert!(got[body.len()..] == body[..500_000], "the file's bytes");
}

/// Bytes a PROXY header was followed by are the ClientHello's start: fed first, the
/// handshake completes as if the socket had held them.
#[test]
fn early_ciphertext_is_fed_before_the_socket() {
    let (server, client) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
    let client = client_on(client, &[&rustls::version::TLS13]);
    let thread = client_thread(client, b"PING");
    let mut early = [0u8; 10];
    (&server).read_exact(&mut early).unwrap();
    server.set_nonblocking(true).unwrap();
    let server = TlsTransport::new(server, server_config(), &early);
    assert_eq!(read_exactly(&server, 4).unwrap(), b"PING");
    server.shutdown_write().unwrap();
    assert_eq!(thread.join().unwrap().unwrap(), b"");
}

/// Not TLS (plain HTTP to the TLS port, or noise): the read fails, no panic, and the
/// client gets rustls's alert or nothing, then the close.
#[test]
fn garbage_instead_of_a_client_hello_fails_the_read() {
    for garbage in [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0x16, 3, 1, 0xff, 0xff, 0, 0, 0]] {
        let (server, client) = pair();
        (&client).write_all(garbage).unwrap();
        let error = read_exactly(&server, 1).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{garbage:?}: {error}");
        // Sticky: the session stays failed.
        assert!(read_exactly(&server, 1).is_err());
    }
}

/// A client that opens the connection and stays silent, or stops halfway through its
/// ClientHello, is a read that times out: the wait is bounded like any silent client.
#[test]
fn a_stalled_handshake_is_a_read_timeout() {
    let hello = {
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn =
            ClientConnection::new(client_config(&[&rustls::version::TLS13]), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    };
    for sent in [&[][..], &hello[..hello.len() / 2]] {
        let (server, client) = pair();
        (&client).write_all(sent).unwrap();
        let (mut buf, mut scratch) = (BytesMut::new(), vec![0; 1024]);
        let error =
            read_waiting(&server, &mut buf, &mut scratch, Duration::from_millis(100)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}

/// A client that closes halfway through its ClientHello: the read ends (an end of
/// stream), it does not spin or wait.
#[test]
fn a_close_mid_handshake_ends_the_stream() {
    let (server, client) = pair();
    (&client).write_all(&[0x16, 3, 1, 0, 200, 1, 0]).unwrap();
    client.shutdown(Shutdown::Both).unwrap();
    let (mut buf, mut scratch) = (BytesMut::new(), vec![0; 1024]);
    assert_eq!(read_waiting(&server, &mut buf, &mut scratch, WAIT).unwrap(), 0);
}

/// A TCP close without `close_notify` mid-stream: gunicorn's `suppress_ragged_eofs`
/// (default on) reads it as the end of stream; off, it is an error.
#[test]
fn a_ragged_eof_is_an_end_of_stream_unless_asked_otherwise() {
    for suppress in [true, false] {
        let (server, client) = pair();
        let server = server.ragged_eofs(suppress);
        let mut client = client_on(client, &[&rustls::version::TLS13]);
        let thread = std::thread::spawn(move || {
            client.write_all(b"PART").unwrap();
            client.flush().unwrap();
            client.sock.shutdown(Shutdown::Both).unwrap();
        });
        assert_eq!(read_exactly(&server, 4).unwrap(), b"PART");
        thread.join().unwrap();
        let (mut buf, mut scratch) = (BytesMut::new(), vec![0; 1024]);
        let end = read_waiting(&server, &mut buf, &mut scratch, WAIT);
        match suppress {
            true => assert_eq!(end.unwrap(), 0),
            false => assert_eq!(end.unwrap_err().kind(), io::ErrorKind::UnexpectedEof),
        }
    }
}

/// `buffered` stays on while a read may have left plaintext decrypted above the socket,
/// so an edge-triggered connection reads again rather than waiting for an edge that the
/// socket, already drained into rustls, will never raise.
#[test]
fn plaintext_left_above_the_socket_is_buffered() {
    let (server, client) = pair();
    let client = client_on(client, &[&rustls::version::TLS13]);
    let thread = client_thread(client, b"0123456789");
    let mut small = BytesMut::new();
    let mut scratch = [0u8; 4];
    read_waiting(&server, &mut small, &mut scratch, WAIT).unwrap();
    assert!(server.buffered(), "6 bytes are left in rustls");
    let (mut one, mut scratch) = (BytesMut::new(), vec![0; 64]);
    // The socket is drained: without `buffered` nothing would say these are here.
    let n = read_waiting(&server, &mut one, &mut scratch, WAIT).unwrap();
    assert_eq!(&small[..], b"0123");
    assert_eq!(&one[..n], b"456789");
    server.shutdown_write().unwrap();
    thread.join().unwrap().unwrap();
}

/// A server config whose sessions may move to the kernel.
fn extractable_config() -> Arc<ServerConfig> {
    let mut config = (*server_config()).clone();
    crate::tls::ktls::configure(&mut config);
    Arc::new(config)
}

/// A connected loopback TCP pair (the kernel's TLS goes only on TCP): the server's end
/// non-blocking.
fn tcp_pair() -> (Socket, Socket) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    (Socket::from(server), Socket::from(client))
}

/// The hand-over to kTLS, end to end through the transport, TLS 1.2 and 1.3, once with a
/// ClientHello's first bytes fed early (after a PROXY header): the handshake read record
/// by record, the request, a written response and a file, then `close_notify`. Where the
/// kernel has kTLS (benches/ktls_vm/run.sh boots one) the session moves to it and the
/// file goes by `sendfile(2)`; where it has not, the hand-over is refused and rustls
/// serves the same bytes.
#[test]
fn a_session_handed_to_the_kernel_serves_as_rustls_would() {
    let kernel_can = crate::tls::ktls::probe().is_ok();
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let path = std::env::temp_dir().join(format!("ferricorn-ktls-file-{}", std::process::id()));
    std::fs::write(&path, &body).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    for (version, early_len) in
        [(&rustls::version::TLS13, 0), (&rustls::version::TLS12, 0), (&rustls::version::TLS13, 10)]
    {
        let (server, client) = tcp_pair();
        let client = client_on(client, &[version]);
        let thread = client_thread(client, b"GET / HTTP/1.1\r\n\r\n");
        let mut early = vec![0u8; early_len];
        server.set_nonblocking(false).unwrap();
        (&server).read_exact(&mut early).unwrap();
        server.set_nonblocking(true).unwrap();
        let support = Some(crate::tls::ktls::Support::every());
        let server = TlsTransport::with_kernel(server, extractable_config(), &early, support);
        assert_eq!(read_exactly(&server, 18).unwrap(), b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(server.in_kernel(), kernel_can, "{version:?}");
        write_all_waiting(&server, b"HTTP/1.1 200 OK\r\n\r\n", WAIT).unwrap();
        let mut span = crate::wsgi::FileSpan { fd: file.as_raw_fd(), offset: 0, len: 2_000_000 };
        send_file_waiting(&server, &mut span, WAIT).unwrap();
        server.shutdown_write().unwrap();
        while !server.flush().unwrap() {
            server.wait(Want::Write, WAIT).unwrap();
        }
        let got = thread.join().unwrap().unwrap();
        assert_eq!(&got[..19], b"HTTP/1.1 200 OK\r\n\r\n", "{version:?}");
        assert!(got[19..] == body[..], "{version:?}: the file's bytes");
        // The client's end of stream, after its close_notify.
        assert_eq!(read_exactly(&server, 1).unwrap(), b"", "{version:?}");
    }
}
