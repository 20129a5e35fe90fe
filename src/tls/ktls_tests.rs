//! kTLS's unit tests: the layouts against linux/tls.h, the probe, and the keys a session
//! hands over, checked by sealing and opening records as the kernel does (no kTLS needed).
//! `sendfile_over_ktls_reaches_a_rustls_client` needs a kernel with kTLS:
//! `benches/ktls_vm/run.sh` boots one (docs/ktls.md).

use std::io::{Read, Write};
use std::mem::offset_of;
use std::sync::Arc;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::crypto::aws_lc_rs::{cipher_suite as suites, default_provider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, ClientConnection, SupportedCipherSuite, SupportedProtocolVersion};
use socket2::{Domain, Type};

use super::*;

const CERT: &[u8] = include_bytes!("testdata/ktls-cert.pem");
const KEY: &[u8] = include_bytes!("testdata/ktls-key.pem");

/// What the end-to-end test's client asks for.
const REQUEST: &[u8] = b"GET /file HTTP/1.1\r\n\r\n";

/// Every suite rustls has that the kernel can take, with its version.
fn cases() -> Vec<(SupportedCipherSuite, &'static SupportedProtocolVersion)> {
    use rustls::version::{TLS12, TLS13};
    vec![
        (suites::TLS13_AES_128_GCM_SHA256, &TLS13),
        (suites::TLS13_AES_256_GCM_SHA384, &TLS13),
        (suites::TLS13_CHACHA20_POLY1305_SHA256, &TLS13),
        (suites::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, &TLS12),
        (suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, &TLS12),
        (suites::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, &TLS12),
    ]
}

fn server_config() -> Arc<ServerConfig> {
    let certs: Vec<CertificateDer> =
        CertificateDer::pem_slice_iter(CERT).map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    configure(&mut config);
    Arc::new(config)
}

/// A client that offers only `suite`.
fn client_config(
    suite: SupportedCipherSuite,
    version: &'static SupportedProtocolVersion,
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(CERT) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider =
        rustls::crypto::CryptoProvider { cipher_suites: vec![suite], ..default_provider() };
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn all() -> Support {
    Support::every()
}

#[test]
fn layouts_and_numbers_match_linux_tls_h() {
    use libc::tls12_crypto_info_chacha20_poly1305 as C20;
    use libc::{tls12_crypto_info_aes_gcm_128 as G128, tls12_crypto_info_aes_gcm_256 as G256};
    // include/uapi/linux/tls.h and linux/socket.h, linux/tcp.h.
    assert_eq!((libc::SOL_TLS, libc::TCP_ULP, libc::TLS_TX, libc::TLS_RX), (282, 31, 1, 2));
    assert_eq!((libc::TLS_SET_RECORD_TYPE, libc::TLS_GET_RECORD_TYPE), (1, 2));
    assert_eq!((libc::TLS_1_2_VERSION, libc::TLS_1_3_VERSION), (0x0303, 0x0304));
    let ciphers = (
        libc::TLS_CIPHER_AES_GCM_128,
        libc::TLS_CIPHER_AES_GCM_256,
        libc::TLS_CIPHER_CHACHA20_POLY1305,
    );
    assert_eq!(ciphers, (51, 52, 54));
    assert_eq!(size_of::<libc::tls_crypto_info>(), 4);
    // (size, iv, key, salt, rec_seq) offsets.
    let g128 =
        (size_of::<G128>(), offset_of!(G128, iv), offset_of!(G128, key), offset_of!(G128, salt));
    assert_eq!((g128, offset_of!(G128, rec_seq)), ((40, 4, 12, 28), 32));
    let g256 =
        (size_of::<G256>(), offset_of!(G256, iv), offset_of!(G256, key), offset_of!(G256, salt));
    assert_eq!((g256, offset_of!(G256, rec_seq)), ((56, 4, 12, 44), 48));
    let c20 = (size_of::<C20>(), offset_of!(C20, iv), offset_of!(C20, key), offset_of!(C20, salt));
    assert_eq!((c20, offset_of!(C20, rec_seq)), ((56, 4, 16, 48), 48));
    assert_eq!(size_of::<Control>(), 32);
    // SAFETY: CMSG_SPACE is arithmetic.
    assert!(unsafe { libc::CMSG_SPACE(1) } as usize <= size_of::<Control>());
}

/// The probe agrees with the kernel's own list of upper-layer protocols (read after the
/// probe, which may have loaded the module): "tls" listed, the probe says yes; not
/// listed (this machine's 6.18 without CONFIG_TLS), no, and the reason names the fix.
#[test]
fn probe_agrees_with_the_kernels_ulp_list() {
    let probed = probe();
    let ulps = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp").unwrap_or_default();
    match ulps.split_whitespace().any(|ulp| ulp == "tls") {
        true => assert!(probed.unwrap().takes(Cipher::Aes128Gcm)),
        false => {
            let why = probed.unwrap_err();
            assert!(why.contains("no `tls` module") && why.contains("modprobe tls"), "{why}");
        }
    }
    assert_eq!(support(), probe().ok(), "support() is the probe's answer, kept");
}

#[test]
fn each_refusal_of_the_ulp_says_why() {
    let cases = [
        (libc::ENOENT, "`modprobe tls` loads it"),
        (libc::ENOPROTOOPT, "older than 4.13"),
        (libc::ENOTCONN, "the client has closed its side"),
        (libc::EPERM, "refused the `tls` upper-layer protocol"),
    ];
    for (errno, says) in cases {
        let why = ulp_refused(&io::Error::from_raw_os_error(errno));
        assert!(why.contains(says), "{errno}: {why}");
    }
}

/// TLS 1.2 AES-GCM: the kernel's first explicit nonce is past every `iv ^ s`, `s < sent`.
#[test]
fn tls12_gcm_sends_start_past_every_nonce_rustls_used() {
    let cases: [(u64, u64, u64); 7] = [
        (0x10, 0, 0x10),
        (0x10, 1, 0x11),
        (0x11, 1, 0x12), // counting from 0x11 - 1 would reach 0x11 ^ 0 again
        (0x13, 2, 0x14),
        (0x13, 3, 0x14),
        (0x13, 5, 0x18),
        (u64::MAX, 1, 0),
    ];
    for (explicit, sent, first) in cases {
        let got = u64::from_be_bytes(first_unused_nonce(explicit.to_be_bytes(), sent));
        assert_eq!(got, first, "explicit {explicit:#x}, {sent} sent");
        for s in 0..sent {
            for j in 0..64 {
                assert_ne!(got.wrapping_add(j), explicit ^ s, "{explicit:#x}: nonce {s} again");
            }
        }
    }
}

/// A nonblocking connected pair; the server end is the one with kTLS.
fn pair() -> (Socket, Socket) {
    let (client, server) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
    client.set_nonblocking(true).unwrap();
    server.set_nonblocking(true).unwrap();
    (client, server)
}

fn ignore_would_block(r: io::Result<usize>) -> usize {
    match r {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => panic!("{e}"),
    }
}

/// Runs a handshake over `pair()`, the server reading through a [`RecordReader`], the
/// client having written `early` before it ended (so it rides with the client's last
/// flight). Returns once both are done and nothing is left to send.
fn handshake(
    suite: SupportedCipherSuite,
    version: &'static SupportedProtocolVersion,
    early: &[u8],
) -> (ClientConnection, ServerConnection, RecordReader, Socket, Socket) {
    let (client_end, server_end) = pair();
    let name = "localhost".try_into().unwrap();
    let mut client = ClientConnection::new(client_config(suite, version), name).unwrap();
    let mut server = ServerConnection::new(server_config()).unwrap();
    let mut reader = RecordReader::default();
    client.writer().write_all(early).unwrap();
    for _ in 0..1000 {
        while client.wants_write() {
            client.write_tls(&mut &client_end).unwrap();
        }
        while server.wants_write() {
            server.write_tls(&mut &server_end).unwrap();
        }
        if !client.is_handshaking() && ready(&server, &reader, &all()).is_ok() {
            return (client, server, reader, client_end, server_end);
        }
        if ignore_would_block(reader.read_tls(&server_end, &mut server)) > 0 {
            server.process_new_packets().unwrap();
        }
        if ignore_would_block(client.read_tls(&mut &client_end)) > 0 {
            client.process_new_packets().unwrap();
        }
    }
    panic!("the handshake did not finish");
}

/// One direction of a session as the kernel runs it from a [`CryptoInfo`] (tls_sw.c):
/// the nonce, additional data and record layout of each version and cipher.
struct Emulated {
    /// The AEAD with the session's key.
    key: LessSafeKey,
    /// `salt || iv` (ChaCha20: `iv`).
    nonce: [u8; 12],
    /// The record number (`rec_seq`).
    seq: u64,
    /// `TLS_1_2_VERSION` or `TLS_1_3_VERSION`.
    version: u16,
    /// TLS 1.2 AES-GCM: records carry their nonce's last 8 bytes.
    explicit: bool,
}

impl Emulated {
    fn new(info: &CryptoInfo) -> Emulated {
        let mut nonce = [0u8; 12];
        let (alg, key, version, cipher, seq) = match info {
            CryptoInfo::Aes128Gcm(i) => {
                nonce[..4].copy_from_slice(&i.salt);
                nonce[4..].copy_from_slice(&i.iv);
                (&aead::AES_128_GCM, &i.key[..], i.info.version, i.info.cipher_type, i.rec_seq)
            }
            CryptoInfo::Aes256Gcm(i) => {
                nonce[..4].copy_from_slice(&i.salt);
                nonce[4..].copy_from_slice(&i.iv);
                (&aead::AES_256_GCM, &i.key[..], i.info.version, i.info.cipher_type, i.rec_seq)
            }
            CryptoInfo::Chacha20Poly1305(i) => {
                nonce.copy_from_slice(&i.iv);
                (
                    &aead::CHACHA20_POLY1305,
                    &i.key[..],
                    i.info.version,
                    i.info.cipher_type,
                    i.rec_seq,
                )
            }
        };
        let explicit =
            version == libc::TLS_1_2_VERSION && cipher != libc::TLS_CIPHER_CHACHA20_POLY1305;
        let key = LessSafeKey::new(UnboundKey::new(alg, key).unwrap());
        Emulated { key, nonce, seq: u64::from_be_bytes(seq), version, explicit }
    }

    /// This record's nonce: `salt || iv` counted up (TLS 1.2 GCM), else `iv ^ seq`.
    fn next_nonce(&mut self) -> [u8; 12] {
        let mut nonce = self.nonce;
        if self.explicit {
            let explicit = u64::from_be_bytes(self.nonce[4..].try_into().unwrap());
            self.nonce[4..].copy_from_slice(&explicit.wrapping_add(1).to_be_bytes());
        } else {
            for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
                *n ^= s;
            }
        }
        nonce
    }

    fn tls12_aad(&self, typ: u8, len: usize) -> Vec<u8> {
        let mut aad = self.seq.to_be_bytes().to_vec();
        aad.extend_from_slice(&[typ, 3, 3]);
        aad.extend_from_slice(&(len as u16).to_be_bytes());
        aad
    }

    fn seal(&mut self, typ: u8, data: &[u8]) -> Vec<u8> {
        let nonce = self.next_nonce();
        let (mut body, aad, outer) = match self.version {
            libc::TLS_1_3_VERSION => {
                let body = [data, &[typ]].concat();
                let len = (body.len() + 16) as u16;
                (
                    body,
                    [&[APPLICATION_DATA, 3, 3][..], &len.to_be_bytes()].concat(),
                    APPLICATION_DATA,
                )
            }
            _ => (data.to_vec(), self.tls12_aad(typ, data.len()), typ),
        };
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .unwrap();
        let prefix = if self.explicit { &nonce[4..] } else { &[][..] };
        let len = (prefix.len() + body.len()) as u16;
        self.seq += 1;
        [&[outer, 3, 3][..], &len.to_be_bytes(), prefix, &body].concat()
    }

    /// Opens one whole record: its content type and plaintext.
    fn open(&mut self, record: &[u8]) -> (u8, Vec<u8>) {
        let (header, payload) = record.split_at(RECORD_HEADER);
        let mut nonce = self.next_nonce();
        let (mut body, aad) = match (self.version, self.explicit) {
            (libc::TLS_1_3_VERSION, _) => (payload.to_vec(), header.to_vec()),
            (_, true) => {
                nonce[4..].copy_from_slice(&payload[..8]);
                (payload[8..].to_vec(), self.tls12_aad(header[0], payload.len() - 24))
            }
            (_, false) => (payload.to_vec(), self.tls12_aad(header[0], payload.len() - 16)),
        };
        let plain =
            self.key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body);
        let plain = plain.expect("the record opens with the handed-over keys").to_vec();
        self.seq += 1;
        match self.version {
            libc::TLS_1_3_VERSION => {
                let end = plain.iter().rposition(|b| *b != 0).unwrap();
                (plain[end], plain[..end].to_vec())
            }
            _ => (header[0], plain),
        }
    }
}

/// Reads every whole record the socket holds.
fn records_on(socket: &Socket) -> Vec<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match Read::read(&mut &*socket, &mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let len = RECORD_HEADER + u16::from_be_bytes([bytes[3], bytes[4]]) as usize;
        records.push(bytes.drain(..len).collect());
    }
    records
}

/// For each suite and version: the keys, IVs and record numbers the kernel would get
/// carry the session on. Records sealed with the TX keys as the kernel seals them reach
/// the rustls client (application data, then `close_notify`), and the client's records
/// open with the RX keys: the request that rode with its Finished (whatever rustls had
/// not decrypted yet) and a later one.
#[test]
fn the_handed_over_keys_carry_the_session_both_ways() {
    for (suite, version) in cases() {
        let case = format!("{:?}", suite.suite());
        let (mut client, mut server, _, client_end, server_end) =
            handshake(suite, version, b"GET / HTTP/1.1\r\n");
        let mut received = drain_plaintext(&mut server);
        let version = server.protocol_version().unwrap();
        let secrets = server.dangerous_extract_secrets().unwrap();
        let tx = CryptoInfo::new(version, secrets.tx.0, &secrets.tx.1, Direction::Tx).unwrap();
        let rx = CryptoInfo::new(version, secrets.rx.0, &secrets.rx.1, Direction::Rx).unwrap();
        let (mut tx, mut rx) = (Emulated::new(&tx), Emulated::new(&rx));

        for data in [&b"one "[..], b"two ", b"three"] {
            (&server_end).write_all(&tx.seal(APPLICATION_DATA, data)).unwrap();
        }
        (&server_end).write_all(&tx.seal(ALERT, &CLOSE_NOTIFY)).unwrap();
        while ignore_would_block(client.read_tls(&mut &client_end)) > 0 {
            client.process_new_packets().unwrap();
        }
        let mut got = String::new();
        client.reader().read_to_string(&mut got).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(got, "one two three", "{case}: ended by close_notify, not an error");

        client.writer().write_all(b"Host: x\r\n\r\n").unwrap();
        client.write_tls(&mut &client_end).unwrap();
        for record in records_on(&server_end) {
            let (typ, data) = rx.open(&record);
            assert_eq!(typ, APPLICATION_DATA, "{case}");
            received.extend_from_slice(&data);
        }
        assert_eq!(received, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "{case}");
    }
}

/// The keys move only when nothing would be lost: not mid-handshake, not with records
/// unsent, not mid-record, not with a cipher the kernel lacks.
#[test]
fn offload_waits_for_a_clean_moment() {
    let (suite, version) = cases()[0];
    let (_client, mut server, mut reader, client_end, _server_end) = handshake(suite, version, b"");
    assert_eq!(ready(&server, &reader, &all()), Ok(()));
    let none = Support::default();
    assert_eq!(ready(&server, &reader, &none), Err("the kernel's TLS has no AES-128-GCM".into()));
    reader.header_read = 2;
    assert_eq!(ready(&server, &reader, &all()), Err("a record is half read".into()));
    reader.header_read = 0;
    server.send_close_notify();
    assert_eq!(ready(&server, &reader, &all()), Err("rustls still has records to send".into()));
    drop(client_end);

    let fresh = ServerConnection::new(server_config()).unwrap();
    assert_eq!(ready(&fresh, &reader, &all()), Err("the handshake is not over".into()));
    // Without the ULP (this kernel, or before the probe) rustls keeps the session.
    let (_, socket) = pair();
    if probe().is_err() {
        match offload(&socket, fresh, &reader, &all()) {
            Err(Refused::Kept(_, why)) => assert_eq!(why, "the handshake is not over"),
            other => panic!("{other:?}"),
        }
    }
}

/// The record reader stops at every record's end, whatever the buffer rustls offers.
#[test]
fn the_record_reader_never_reads_past_a_record() {
    let (writer, socket) = pair();
    let records =
        [&[23u8, 3, 3, 0, 3, b'a', b'b', b'c'][..], &[21, 3, 3, 0, 0], &[22, 3, 3, 0, 1, 9]];
    (&writer).write_all(&records.concat()).unwrap();
    let mut reader = RecordReader::default();
    for record in records {
        let mut got = Vec::new();
        while got.len() < record.len() {
            let mut buf = [0u8; 4];
            let n = reader.read(&mut &socket, &mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            assert_eq!(reader.at_boundary(), got.len() == record.len());
        }
        assert_eq!(got, record);
    }
    let mut buf = [0u8; 8];
    assert_eq!(reader.read(&mut &socket, &mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    drop(writer);
    assert_eq!(reader.read(&mut &socket, &mut buf).unwrap(), 0);
}

#[test]
fn alerts_from_the_client_end_the_stream_or_fail_it() {
    assert_eq!(alert(&CLOSE_NOTIFY).unwrap(), 0);
    let bad = alert(&[2, 20]).unwrap_err();
    assert_eq!(bad.kind(), io::ErrorKind::ConnectionAborted);
    assert!(bad.to_string().contains("BadRecordMac"), "{bad}");
    assert_eq!(alert(&[2]).unwrap_err().kind(), io::ErrorKind::InvalidData);
}

/// A file of `len` bytes of noise, unlinked, and its sha256.
fn noise_file(len: usize, seed: u64) -> (std::fs::File, Vec<u8>) {
    let path = std::env::temp_dir().join(format!("ferricorn-ktls-{}-{seed}", std::process::id()));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut sha = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut x = seed | 1;
    let mut chunk = vec![0u8; 1 << 16];
    for _ in 0..len / chunk.len() {
        for word in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        sha.update(&chunk);
        file.write_all(&chunk).unwrap();
    }
    drop(file);
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    (file, sha.finish().as_ref().to_vec())
}

/// The client's side: sends `request`, reads to `close_notify`, then sends its own.
/// Returns the bytes it got and their sha256.
fn fetch(addr: SocketAddr, config: Arc<ClientConfig>, request: &'static [u8]) -> (usize, Vec<u8>) {
    let conn = ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
    tls.write_all(request).unwrap();
    let mut sha = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let (mut total, mut buf) = (0, vec![0u8; 1 << 16]);
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                sha.update(&buf[..n]);
                total += n;
            }
            Err(e) => panic!("the client's read: {e} after {total} bytes"),
        }
    }
    tls.conn.send_close_notify();
    tls.conn.complete_io(&mut tls.sock).unwrap();
    (total, sha.finish().as_ref().to_vec())
}

/// The server's side up to the hand-over, on a blocking socket.
fn accept_and_offload(listener: &TcpListener, support: &Support) -> (Socket, Offloaded) {
    let socket = Socket::from(listener.accept().unwrap().0);
    let mut server = ServerConnection::new(server_config()).unwrap();
    let mut reader = RecordReader::default();
    while server.is_handshaking() || server.wants_write() {
        if server.wants_write() {
            server.write_tls(&mut &socket).unwrap();
            continue;
        }
        assert!(reader.read_tls(&socket, &mut server).unwrap() > 0, "the client left");
        server.process_new_packets().unwrap();
    }
    let offloaded = offload(&socket, server, &reader, support).unwrap();
    (socket, offloaded)
}

/// Reads through the kernel until `plaintext` ends with `end`.
fn read_until(kernel: &Kernel, mut plaintext: Vec<u8>, end: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    while !plaintext.ends_with(end) {
        let n = kernel.read(&mut buf).unwrap();
        assert!(n > 0, "the client ended the stream early");
        plaintext.extend_from_slice(&buf[..n]);
    }
    plaintext
}

/// Each suite over loopback TCP: handshake in rustls, hand-over, the request read
/// through the kernel, a file (`FERRICORN_KTLS_MB`, 50 by default, for the first suite;
/// 1 MB for the others) by `sendfile(2)`, `close_notify` both ways; the rustls client
/// checks the sha256. Then a TLS 1.3 KeyUpdate from the client is refused, not misread,
/// and a TCP close without `close_notify` reads as a truncation, as rustls reads it.
#[test]
#[ignore = "needs a kernel with kTLS: benches/ktls_vm/run.sh boots one"]
fn sendfile_over_ktls_reaches_a_rustls_client() {
    let support = probe().expect("this test needs kTLS");
    println!("kTLS: {}", support.names());
    let big: usize = std::env::var("FERRICORN_KTLS_MB").map_or(50, |mb| mb.parse().unwrap());
    for (i, (suite, version)) in cases().into_iter().enumerate() {
        let len = if i == 0 { big } else { 1 } << 20;
        let (file, expected) = noise_file(len, i as u64 + 7);
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let (addr, config) = (listener.local_addr().unwrap(), client_config(suite, version));
        let client = std::thread::spawn(move || fetch(addr, config, REQUEST));
        let (_socket, Offloaded { kernel, plaintext }) = accept_and_offload(&listener, &support);
        let early = plaintext.len();
        assert_eq!(read_until(&kernel, plaintext, b"\r\n\r\n"), REQUEST);
        let (start, cpu) = (std::time::Instant::now(), thread_cpu());
        let mut span = FileSpan { fd: file.as_raw_fd(), offset: 0, len: len as u64 };
        assert!(kernel.send_file(&mut span).unwrap(), "a blocking socket takes it all");
        kernel.shutdown_write().unwrap();
        let cpu = thread_cpu() - cpu;
        let mut buf = [0u8; 64];
        assert_eq!(kernel.read(&mut buf).unwrap(), 0, "the client's close_notify ends the stream");
        let (got, sha) = client.join().unwrap();
        assert_eq!(kernel.read(&mut buf).unwrap(), 0, "and its FIN after it is no truncation");
        let elapsed = start.elapsed();
        assert_eq!((got, &sha), (len, &expected), "{:?}", suite.suite());
        println!(
            "kTLS {:?}: {} MiB by sendfile, sha256 matches ({early} request bytes came with the \
             handshake), {:.1?}, {:.0} MiB/s, server thread CPU {cpu:.1?}",
            suite.suite(),
            len >> 20,
            elapsed,
            (len >> 20) as f64 / elapsed.as_secs_f64(),
        );
        if i == 0 {
            the_same_file_by_rustls(suite, version, &file, len, &expected);
        }
    }
    a_key_update_is_refused(&support);
    a_close_without_close_notify_is_a_truncation(&support);
}

fn a_close_without_close_notify_is_a_truncation(support: &Support) {
    let (offloaded, offloaded_rx) = std::sync::mpsc::channel();
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let addr = listener.local_addr().unwrap();
    let config = client_config(suites::TLS13_AES_128_GCM_SHA256, &rustls::version::TLS13);
    let client = std::thread::spawn(move || {
        let conn = ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
        tls.write_all(b"cut\n").unwrap();
        // Closed only once the server has offloaded: a half-closed connection stays in
        // rustls (TCP_ULP needs it established).
        offloaded_rx.recv().unwrap();
    });
    let (_socket, Offloaded { kernel, plaintext }) = accept_and_offload(&listener, support);
    offloaded.send(()).unwrap();
    assert_eq!(read_until(&kernel, plaintext, b"\n"), b"cut\n");
    client.join().unwrap();
    let cut = kernel.read(&mut [0u8; 64]).unwrap_err();
    assert_eq!(cut.kind(), io::ErrorKind::UnexpectedEof, "{cut}");
    println!("kTLS: a TCP close without close_notify: {cut}");
}

fn a_key_update_is_refused(support: &Support) {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let addr = listener.local_addr().unwrap();
    let config = client_config(suites::TLS13_AES_128_GCM_SHA256, &rustls::version::TLS13);
    let client = std::thread::spawn(move || {
        let conn = ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
        tls.write_all(b"before\n").unwrap();
        tls.conn.refresh_traffic_keys().unwrap();
        tls.write_all(b"after\n").unwrap();
        let _ = tls.read(&mut [0u8; 16]);
    });
    let (socket, Offloaded { kernel, plaintext }) = accept_and_offload(&listener, support);
    assert_eq!(read_until(&kernel, plaintext, b"\n"), b"before\n");
    let refused = kernel.read(&mut [0u8; 64]).unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::Unsupported, "{refused}");
    println!("kTLS: a KeyUpdate is refused: {refused}");
    drop(socket);
    client.join().unwrap();
}

/// This thread's CPU time, user and system.
fn thread_cpu() -> std::time::Duration {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to `usage` for the call.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) }, 0);
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    std::time::Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// The fallback for comparison, in the same VM: the file read in 16 KiB chunks and
/// encrypted by rustls (what `Transport::send_file`'s default does), sha256 checked too.
fn the_same_file_by_rustls(
    suite: SupportedCipherSuite,
    version: &'static SupportedProtocolVersion,
    file: &std::fs::File,
    len: usize,
    expected: &[u8],
) {
    use std::os::unix::fs::FileExt;
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let (addr, config) = (listener.local_addr().unwrap(), client_config(suite, version));
    let client = std::thread::spawn(move || fetch(addr, config, REQUEST));
    let socket = listener.accept().unwrap().0;
    let mut tls = rustls::StreamOwned::new(ServerConnection::new(server_config()).unwrap(), socket);
    let mut request = [0u8; REQUEST.len()];
    tls.read_exact(&mut request).unwrap();
    let (start, cpu) = (std::time::Instant::now(), thread_cpu());
    let mut chunk = vec![0u8; 16 * 1024];
    for offset in (0..len).step_by(chunk.len()) {
        let n = file.read_at(&mut chunk, offset as u64).unwrap();
        tls.write_all(&chunk[..n]).unwrap();
    }
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    let cpu = thread_cpu() - cpu;
    assert_eq!(tls.read(&mut chunk).unwrap(), 0, "the client's close_notify");
    let (got, sha) = client.join().unwrap();
    let elapsed = start.elapsed();
    assert_eq!((got, &sha[..]), (len, expected));
    println!(
        "rustls {:?}: {} MiB by read-and-write, sha256 matches, {elapsed:.1?}, {:.0} MiB/s, \
         server thread CPU {cpu:.1?}",
        suite.suite(),
        len >> 20,
        (len >> 20) as f64 / elapsed.as_secs_f64(),
    );
}
