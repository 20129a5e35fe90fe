//! Kernel TLS (kTLS): once rustls has finished a handshake, the session's keys go to the
//! kernel, which from then on encrypts what is written to the socket (`sendfile(2)`
//! included) and decrypts what is read. `wsgi.file_wrapper` stays zero-copy over HTTPS,
//! where gunicorn gives sendfile up.
//!
//! # When
//!
//! [`support`] probes the kernel once per process: the master, while it loads the TLS
//! settings (workers inherit the answer), and [`announce`] logs which way files go out
//! over TLS: `kTLS`, or read-and-write with the reason (no `tls` module: `modprobe tls`;
//! a kernel built without `CONFIG_TLS`). Without kTLS nothing changes: rustls encrypts
//! everything, and files are read and written in chunks
//! (`worker::transport::copy_file`). With it, `crate::worker::tls::TlsTransport`
//! hands each session over after its handshake.
//!
//! # The hand-over
//!
//! 1. The server config allows it ([`configure`]: secret extraction on, TLS 1.3 session
//!    tickets off, since rustls would send those after the handshake, past the hand-over).
//! 2. rustls reads the handshake through a [`RecordReader`], which hands it whole TLS
//!    records only: a record read halfway when the keys move would be lost to both
//!    rustls and the kernel.
//! 3. When the handshake is over and rustls's output is all on the socket, [`offload`]
//!    sets the `tls` ULP, takes the keys and sequence numbers out of rustls
//!    (`dangerous_extract_secrets`) and gives them to the kernel (`TLS_TX`, `TLS_RX`).
//!    Application data rustls had already decrypted comes back with the [`Kernel`].
//! 4. The connection then reads and writes through [`Kernel`]: plain `recvmsg`, `send`,
//!    `sendfile` on the same descriptor.
//!
//! # Limits
//!
//! - A TLS 1.3 KeyUpdate from the client (a handshake record after the hand-over) needs
//!   the kernel to take new keys, which Linux does only from 6.13 on and rustls cannot
//!   derive once its secrets are out: [`Kernel::read`] answers it with an error and the
//!   connection closes. Browsers and curl do not send KeyUpdate on short connections.
//! - TLS 1.2 renegotiation: rustls refuses it anyway.
//! - AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305, the AEADs rustls has, each where
//!   the kernel's crypto has it ([`Support`]).

use std::fmt;
use std::io::{self, IoSlice, Read};
use std::mem::{size_of, size_of_val};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use rustls::{ConnectionTrafficSecrets, ProtocolVersion, ServerConfig, ServerConnection};
use socket2::Socket;

use crate::wsgi::FileSpan;

/// TLS record content types (RFC 8446 §5.1, RFC 5246 §6.2.1).
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

/// A `close_notify` alert's body: level warning, description 0 (RFC 8446 §6.1).
const CLOSE_NOTIFY: [u8; 2] = [1, 0];

/// A TLS record's header: type, version, 16-bit length (RFC 8446 §5.1).
const RECORD_HEADER: usize = 5;

/// Control-message space for one `SOL_TLS` record-type byte: `CMSG_SPACE(1)` is 24 on
/// 64-bit Linux; `u64`s keep the buffer aligned for `cmsghdr`.
type Control = [u64; 4];

/// The AEADs the kernel can take over from rustls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

impl Cipher {
    /// Every cipher, in [`Support`]'s order.
    const ALL: [Cipher; 3] = [Cipher::Aes128Gcm, Cipher::Aes256Gcm, Cipher::Chacha20Poly1305];

    /// The cipher a negotiated rustls suite encrypts records with.
    fn of_suite(suite: rustls::SupportedCipherSuite) -> Option<Cipher> {
        use rustls::CipherSuite as S;
        match suite.suite() {
            S::TLS13_AES_128_GCM_SHA256
            | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => Some(Cipher::Aes128Gcm),
            S::TLS13_AES_256_GCM_SHA384
            | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => Some(Cipher::Aes256Gcm),
            S::TLS13_CHACHA20_POLY1305_SHA256
            | S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => Some(Cipher::Chacha20Poly1305),
            _ => None,
        }
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cipher::Aes128Gcm => "AES-128-GCM",
            Cipher::Aes256Gcm => "AES-256-GCM",
            Cipher::Chacha20Poly1305 => "ChaCha20-Poly1305",
        })
    }
}

/// The ciphers this kernel takes over, both ways (`TLS_TX` and `TLS_RX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Support {
    /// Indexed like [`Cipher::ALL`].
    ciphers: [bool; 3],
}

impl Support {
    /// Whether a session with this cipher can move to the kernel.
    pub fn takes(&self, cipher: Cipher) -> bool {
        self.ciphers[cipher as usize]
    }

    /// Every cipher: what a test claims of a kernel, to drive the hand-over's paths.
    #[cfg(test)]
    pub(crate) fn every() -> Support {
        Support { ciphers: [true; 3] }
    }

    fn names(&self) -> String {
        let names: Vec<String> =
            Cipher::ALL.iter().filter(|c| self.takes(**c)).map(|c| c.to_string()).collect();
        names.join(", ")
    }
}

/// Makes a server config's sessions able to move to the kernel: rustls must let the
/// secrets out, and must not send TLS 1.3 session tickets (records it would write after
/// the handshake, with keys it no longer has). Call it only when [`support`] says yes:
/// without kTLS, tickets spare returning clients a full handshake.
pub fn configure(config: &mut ServerConfig) {
    config.enable_secret_extraction = true;
    config.send_tls13_tickets = 0;
}

/// What [`probe`] found, probed once per process (the master probes it while it loads
/// the TLS settings; workers inherit the answer). `None`: read-and-write.
pub fn support() -> Option<Support> {
    probed().as_ref().ok().copied()
}

/// [`probe`]'s answer, kept.
fn probed() -> &'static Result<Support, String> {
    static PROBED: OnceLock<Result<Support, String>> = OnceLock::new();
    PROBED.get_or_init(probe)
}

/// The boot line that says how files go out over TLS, and why when not by kTLS.
pub fn announce() {
    match probed() {
        Ok(support) => {
            tracing::info!("TLS: files are sent with kTLS (sendfile; {})", support.names())
        }
        Err(why) => tracing::info!("TLS: files are sent by read-and-write, because {why}"),
    }
}

/// Whether this kernel can do kTLS: the `tls` ULP on a throwaway loopback connection,
/// then each cipher's keys (zeros) both ways on a fresh one. The error says why not, in
/// words that finish "files are sent by read-and-write, because ...".
pub fn probe() -> Result<Support, String> {
    let mut support = Support::default();
    let mut refused = Vec::new();
    for cipher in Cipher::ALL {
        let (client, _server) =
            loopback_pair().map_err(|e| format!("a loopback probe failed: {e}"))?;
        set_ulp(client.as_raw_fd()).map_err(|e| ulp_refused(&e))?;
        let info = CryptoInfo::zeros(cipher);
        let both = set_crypto(client.as_raw_fd(), libc::TLS_TX, &info)
            .and_then(|()| set_crypto(client.as_raw_fd(), libc::TLS_RX, &info));
        match both {
            Ok(()) => support.ciphers[cipher as usize] = true,
            Err(e) => refused.push(format!("{cipher}: {e}")),
        }
    }
    match support.ciphers.iter().any(|c| *c) {
        true => Ok(support),
        false => {
            Err(format!("the kernel's TLS takes no cipher rustls has ({})", refused.join("; ")))
        }
    }
}

/// Why the kernel refused the `tls` ULP, for the log line.
fn ulp_refused(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "the kernel has no `tls` module loaded (setsockopt TCP_ULP \"tls\": \
                               ENOENT); `modprobe tls` loads it where the kernel has one \
                               (CONFIG_TLS)"
            .to_string(),
        Some(libc::ENOPROTOOPT) => {
            "the kernel has no upper-layer protocols on TCP (Linux older than 4.13)".to_string()
        }
        // A client that half-closed right after its request: rustls serves it.
        Some(libc::ENOTCONN) => {
            "the client has closed its side (the `tls` ULP goes only on an established connection)"
                .to_string()
        }
        _ => format!("the kernel refused the `tls` upper-layer protocol (setsockopt TCP_ULP: {e})"),
    }
}

/// A connected loopback TCP pair: the ULP goes only on an established socket.
fn loopback_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

fn set_ulp(fd: RawFd) -> io::Result<()> {
    const NAME: &[u8] = b"tls";
    // SAFETY: `NAME` is valid for its length for the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(fd, libc::SOL_TCP, libc::TCP_ULP, NAME.as_ptr().cast(), NAME.len() as _)
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

fn set_crypto(fd: RawFd, direction: libc::c_int, info: &CryptoInfo) -> io::Result<()> {
    let (ptr, len) = info.as_raw();
    // SAFETY: `ptr` points at one of linux/tls.h's crypto_info structs of `len` bytes,
    // alive for the call; the kernel copies it.
    let rc = unsafe { libc::setsockopt(fd, libc::SOL_TLS, direction, ptr, len) };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// One direction's keys in the layout `setsockopt(SOL_TLS, TLS_TX | TLS_RX)` takes
/// (linux/tls.h's `tls12_crypto_info_*`, used for TLS 1.3 too).
#[derive(Clone, Copy)]
enum CryptoInfo {
    Aes128Gcm(libc::tls12_crypto_info_aes_gcm_128),
    Aes256Gcm(libc::tls12_crypto_info_aes_gcm_256),
    Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305),
}

/// Which way a [`CryptoInfo`] goes: only TLS 1.2 AES-GCM sends differ (its nonce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Tx,
    Rx,
}

impl CryptoInfo {
    /// A direction's keys, from what rustls gives out: `seq` is the number of the next
    /// record (rustls has used `0..seq` under these keys).
    ///
    /// rustls's 12-byte IV is the 4-byte salt then 8 more: for AES-GCM the kernel wants
    /// them apart (`salt`, `iv`); for ChaCha20 all 12 are `iv`. With TLS 1.3 (any cipher)
    /// and TLS 1.2 ChaCha20 both sides XOR the IV with the record number (RFC 8446 §5.3,
    /// RFC 7905 §2), so the kernel takes the IV as it is. TLS 1.2 AES-GCM sends an
    /// explicit 8-byte nonce in each record (RFC 5288 §3): rustls makes it `iv ^ seq`,
    /// the kernel sends `iv` and adds one per record. Counting up from `iv` itself could
    /// meet a nonce rustls used (`iv ^ 1` is `iv - 1` when `iv` is odd), and a nonce used
    /// twice under one GCM key gives the key stream away; so sends start past the
    /// aligned block that holds every `iv ^ s` for `s < seq`. Receives read the nonce off
    /// each record, so their `iv` does not matter.
    fn new(
        version: ProtocolVersion,
        seq: u64,
        secrets: &ConnectionTrafficSecrets,
        direction: Direction,
    ) -> Result<CryptoInfo, String> {
        let version = match version {
            ProtocolVersion::TLSv1_2 => libc::TLS_1_2_VERSION,
            ProtocolVersion::TLSv1_3 => libc::TLS_1_3_VERSION,
            other => return Err(format!("{other:?} has no kernel TLS")),
        };
        let rec_seq = seq.to_be_bytes();
        let gcm_nonce = |iv: &[u8]| -> [u8; 8] {
            let explicit: [u8; 8] = iv[4..12].try_into().expect("a 12-byte IV");
            match (version, direction) {
                (libc::TLS_1_2_VERSION, Direction::Tx) => first_unused_nonce(explicit, seq),
                _ => explicit,
            }
        };
        Ok(match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
                CryptoInfo::Aes128Gcm(libc::tls12_crypto_info_aes_gcm_128 {
                    info: info(version, libc::TLS_CIPHER_AES_GCM_128),
                    iv: gcm_nonce(iv.as_ref()),
                    key: key.as_ref().try_into().map_err(|_| "an AES-128 key not 16 bytes")?,
                    salt: iv.as_ref()[..4].try_into().expect("a 12-byte IV"),
                    rec_seq,
                })
            }
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
                CryptoInfo::Aes256Gcm(libc::tls12_crypto_info_aes_gcm_256 {
                    info: info(version, libc::TLS_CIPHER_AES_GCM_256),
                    iv: gcm_nonce(iv.as_ref()),
                    key: key.as_ref().try_into().map_err(|_| "an AES-256 key not 32 bytes")?,
                    salt: iv.as_ref()[..4].try_into().expect("a 12-byte IV"),
                    rec_seq,
                })
            }
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                CryptoInfo::Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305 {
                    info: info(version, libc::TLS_CIPHER_CHACHA20_POLY1305),
                    iv: iv.as_ref().try_into().map_err(|_| "a ChaCha20 IV not 12 bytes")?,
                    key: key.as_ref().try_into().map_err(|_| "a ChaCha20 key not 32 bytes")?,
                    salt: [],
                    rec_seq,
                })
            }
            _ => return Err("a cipher the kernel's TLS does not have".to_string()),
        })
    }

    /// Keys of zeros, for [`probe`]: the kernel checks the cipher, not the key.
    fn zeros(cipher: Cipher) -> CryptoInfo {
        let version = libc::TLS_1_3_VERSION;
        match cipher {
            Cipher::Aes128Gcm => CryptoInfo::Aes128Gcm(libc::tls12_crypto_info_aes_gcm_128 {
                info: info(version, libc::TLS_CIPHER_AES_GCM_128),
                iv: [0; 8],
                key: [0; 16],
                salt: [0; 4],
                rec_seq: [0; 8],
            }),
            Cipher::Aes256Gcm => CryptoInfo::Aes256Gcm(libc::tls12_crypto_info_aes_gcm_256 {
                info: info(version, libc::TLS_CIPHER_AES_GCM_256),
                iv: [0; 8],
                key: [0; 32],
                salt: [0; 4],
                rec_seq: [0; 8],
            }),
            Cipher::Chacha20Poly1305 => {
                CryptoInfo::Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305 {
                    info: info(version, libc::TLS_CIPHER_CHACHA20_POLY1305),
                    iv: [0; 12],
                    key: [0; 32],
                    salt: [],
                    rec_seq: [0; 8],
                })
            }
        }
    }

    fn as_raw(&self) -> (*const libc::c_void, libc::socklen_t) {
        fn raw<T>(info: &T) -> (*const libc::c_void, libc::socklen_t) {
            (std::ptr::from_ref(info).cast(), size_of::<T>() as libc::socklen_t)
        }
        match self {
            CryptoInfo::Aes128Gcm(info) => raw(info),
            CryptoInfo::Aes256Gcm(info) => raw(info),
            CryptoInfo::Chacha20Poly1305(info) => raw(info),
        }
    }
}

fn info(version: u16, cipher_type: u16) -> libc::tls_crypto_info {
    libc::tls_crypto_info { version, cipher_type }
}

/// The first explicit nonce the kernel may count up from after rustls sent `sent`
/// records with nonces `explicit ^ s`, `s < sent`: those all lie in the aligned block of
/// `sent.next_power_of_two()` values around `explicit`, so start just past it (2^64
/// records before the count could come back round).
fn first_unused_nonce(explicit: [u8; 8], sent: u64) -> [u8; 8] {
    let explicit = u64::from_be_bytes(explicit);
    let next = match sent {
        0 => explicit,
        _ => (explicit | (sent.next_power_of_two() - 1)).wrapping_add(1),
    };
    next.to_be_bytes()
}

/// Feeds rustls whole TLS records and nothing past them, so that when the handshake ends
/// no record is half in rustls and half on the socket (rustls has no way to give back
/// bytes it holds, and the kernel must start at a record's first byte). Each read takes
/// a header, or the rest of the record the last header announced: two reads per record,
/// only during the handshake.
#[derive(Debug, Default)]
pub struct RecordReader {
    /// The current record's header, as far as it has been read.
    header: [u8; RECORD_HEADER],
    /// Bytes of `header` read; `RECORD_HEADER` while the body is being read.
    header_read: usize,
    /// Bytes of the current record's body still to read.
    body_left: usize,
}

impl RecordReader {
    /// Whether everything read so far ends on a record boundary: the moment the keys
    /// can move.
    pub fn at_boundary(&self) -> bool {
        self.header_read == 0
    }

    /// `conn.read_tls` from the socket, stopping at the end of a record. `Ok(0)` is the
    /// peer's end of stream; `WouldBlock` as the socket says.
    pub fn read_tls(&mut self, socket: &Socket, conn: &mut ServerConnection) -> io::Result<usize> {
        conn.read_tls(&mut Records { reader: self, from: &mut &*socket })
    }

    /// Ciphertext already read off the socket (what followed a PROXY header) into a
    /// fresh session, whole records at a time as from the socket; the boundary state
    /// carries on to the socket's bytes.
    pub fn feed(
        &mut self,
        mut early: &[u8],
        conn: &mut ServerConnection,
    ) -> Result<(), rustls::Error> {
        while !early.is_empty() {
            match conn.read_tls(&mut Records { reader: self, from: &mut early }) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    conn.process_new_packets()?;
                }
            }
        }
        Ok(())
    }

    fn read(&mut self, socket: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
        if self.header_read < RECORD_HEADER {
            let want = (RECORD_HEADER - self.header_read).min(buf.len());
            let n = socket.read(&mut buf[..want])?;
            self.header[self.header_read..self.header_read + n].copy_from_slice(&buf[..n]);
            self.header_read += n;
            if self.header_read == RECORD_HEADER {
                self.body_left = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
                self.end_if_done();
            }
            return Ok(n);
        }
        let want = self.body_left.min(buf.len());
        let n = socket.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            return Ok(0);
        }
        self.body_left -= n;
        self.end_if_done();
        Ok(n)
    }

    fn end_if_done(&mut self) {
        if self.body_left == 0 {
            self.header_read = 0;
        }
    }
}

/// [`RecordReader`] as the `Read` rustls reads from.
struct Records<'a, 'r> {
    /// Where the record boundaries are.
    reader: &'a mut RecordReader,
    /// The connection's socket (or the bytes read off it already).
    from: &'a mut (dyn Read + 'r),
}

impl Read for Records<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(self.from, buf)
    }
}

/// A session now in the kernel's hands, and the application data rustls had already
/// decrypted (to be read before anything [`Kernel::read`] returns).
#[derive(Debug)]
pub struct Offloaded {
    /// Reads and writes on the socket from now on.
    pub kernel: Kernel,
    /// Plaintext rustls received with the handshake's last records.
    pub plaintext: Vec<u8>,
}

/// Why a session did not move to the kernel.
pub enum Refused {
    /// Nothing changed: rustls carries on (the socket may have the `tls` ULP, unused,
    /// which is a plain TCP socket). The reason is for a debug line.
    Kept(Box<ServerConnection>, String),
    /// The keys left rustls but the kernel did not take them: the connection can only
    /// close.
    Lost(io::Error),
}

impl fmt::Debug for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Kept(_, why) => write!(f, "Kept({why:?})"),
            Refused::Lost(e) => write!(f, "Lost({e})"),
        }
    }
}

/// Moves a finished session from rustls to the kernel (see the module's hand-over).
/// `reader` is the one rustls read the handshake through. The socket must outlive the
/// returned [`Kernel`], which uses its descriptor.
pub fn offload(
    socket: &Socket,
    mut conn: ServerConnection,
    reader: &RecordReader,
    support: &Support,
) -> Result<Offloaded, Refused> {
    if let Err(why) = ready(&conn, reader, support) {
        return Err(Refused::Kept(Box::new(conn), why));
    }
    let fd = socket.as_raw_fd();
    if let Err(e) = set_ulp(fd) {
        return Err(Refused::Kept(Box::new(conn), ulp_refused(&e)));
    }
    let version = conn.protocol_version().expect("a finished handshake has a version");
    let plaintext = drain_plaintext(&mut conn);
    // From here on the session belongs to the kernel or to no one.
    let lost = |why: String| Refused::Lost(io::Error::other(why));
    let secrets = conn
        .dangerous_extract_secrets()
        .map_err(|e| lost(format!("rustls kept the TLS secrets: {e}")))?;
    let (tx_seq, tx) = &secrets.tx;
    let (rx_seq, rx) = &secrets.rx;
    let tx = CryptoInfo::new(version, *tx_seq, tx, Direction::Tx).map_err(lost)?;
    let rx = CryptoInfo::new(version, *rx_seq, rx, Direction::Rx).map_err(lost)?;
    set_crypto(fd, libc::TLS_TX, &tx).map_err(Refused::Lost)?;
    set_crypto(fd, libc::TLS_RX, &rx).map_err(Refused::Lost)?;
    Ok(Offloaded { kernel: Kernel { fd, closed: AtomicBool::new(false) }, plaintext })
}

/// Whether the keys can move now: everything below must be true, or they stay.
fn ready(conn: &ServerConnection, reader: &RecordReader, support: &Support) -> Result<(), String> {
    if conn.is_handshaking() {
        return Err("the handshake is not over".into());
    }
    if conn.wants_write() {
        return Err("rustls still has records to send".into());
    }
    if !reader.at_boundary() {
        return Err("a record is half read".into());
    }
    let cipher = conn.negotiated_cipher_suite().and_then(Cipher::of_suite);
    match cipher {
        Some(cipher) if support.takes(cipher) => Ok(()),
        Some(cipher) => Err(format!("the kernel's TLS has no {cipher}")),
        None => Err("a cipher suite the kernel's TLS does not have".into()),
    }
}

/// The application data rustls decrypted and nobody read yet. A `close_notify` among
/// it ends the drain; the kernel then sees the client's FIN as the end of stream.
fn drain_plaintext(conn: &mut ServerConnection) -> Vec<u8> {
    let mut plaintext = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = conn.reader().read(&mut chunk) {
        plaintext.extend_from_slice(&chunk[..n]);
    }
    plaintext
}

/// A connection the kernel encrypts and decrypts: a plain socket for `send`, `writev`
/// and `sendfile`; reads tell application data from the other records. Does not own
/// the descriptor (the connection's socket does). Counts bytes for `--metrics-bind`
/// as the plain socket does (plaintext here: the records' 22 to 29 bytes each are not
/// counted).
#[derive(Debug)]
pub struct Kernel {
    /// The connection's socket, with the session's keys in it.
    fd: RawFd,
    /// The client's `close_notify` has come: its TCP end of stream is then no truncation.
    closed: AtomicBool,
}

impl Kernel {
    /// One read of application data; `Ok(0)` at the client's `close_notify`, as rustls
    /// reads: a TCP end of stream without one is `UnexpectedEof` (a truncation, unless
    /// `--suppress-ragged-eofs` says to take it as the end). Any other alert, or a handshake record (a TLS 1.3 KeyUpdate: see the
    /// module's limits), is an error: the connection closes. `buf` should hold 2 bytes
    /// at least (an alert's size).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut control: Control = [0; 4];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: msghdr is plain data; all-zero is an empty message header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control) as _;
        // SAFETY: `msg` points at `iov` (over `buf`) and `control`, both alive and
        // writable for the call.
        let n = unsafe { libc::recvmsg(self.fd, &mut msg, 0) };
        if n < 0 {
            return Err(match io::Error::last_os_error() {
                e if e.raw_os_error() == Some(libc::EBADMSG) => io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a TLS record from the client failed to decrypt",
                ),
                e => e,
            });
        }
        let n = n as usize;
        // SAFETY: `msg` was filled by recvmsg; its control area is `control`.
        match unsafe { record_type(&msg) } {
            None if n == 0 => match self.closed.load(Ordering::Relaxed) {
                true => Ok(0),
                false => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed TCP without a TLS close_notify",
                )),
            },
            None => {
                crate::metrics::bytes_in(n);
                Ok(n)
            }
            // An empty application data record is not the end of the stream.
            Some(APPLICATION_DATA) if n == 0 => Err(io::ErrorKind::Interrupted.into()),
            Some(APPLICATION_DATA) => {
                crate::metrics::bytes_in(n);
                Ok(n)
            }
            Some(ALERT) => {
                let n = alert(&buf[..n])?;
                self.closed.store(true, Ordering::Relaxed);
                Ok(n)
            }
            Some(HANDSHAKE) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the client sent a TLS handshake message (a TLS 1.3 KeyUpdate) after the keys \
                 went to the kernel, which cannot take new ones",
            )),
            Some(other) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the client sent a TLS record of type {other}"),
            )),
        }
    }

    /// One write; the kernel makes the records.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    /// One gathering write (`sendmsg`, no SIGPIPE).
    pub fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: msghdr is plain data; all-zero is an empty message header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is ABI-compatible with iovec (std documents it); sendmsg only reads.
        msg.msg_iov = bufs.as_ptr().cast_mut().cast();
        msg.msg_iovlen = bufs.len() as _;
        // SAFETY: `msg` points at `bufs`, alive for the call.
        let n = unsafe { libc::sendmsg(self.fd, &msg, libc::MSG_NOSIGNAL) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        crate::metrics::bytes_out(n as usize);
        Ok(n as usize)
    }

    /// `sendfile(2)`, the kernel encrypting on the way: as
    /// [`crate::worker::transport::Transport::send_file`] (the span shrinks by what went
    /// out; `Ok(false)` when the socket is full).
    pub fn send_file(&self, span: &mut FileSpan) -> io::Result<bool> {
        // SAFETY: the caller's socket is open while this Kernel is used (see `offload`);
        // the file stays open until the app's close().
        let (socket, file) =
            unsafe { (BorrowedFd::borrow_raw(self.fd), BorrowedFd::borrow_raw(span.fd)) };
        while span.len > 0 {
            let mut offset = span.offset as libc::off64_t;
            let count = span.len.min(1 << 30) as usize;
            match nix::sys::sendfile::sendfile64(socket, file, Some(&mut offset), count) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank")),
                Ok(n) => {
                    span.offset += n as u64;
                    span.len -= n as u64;
                    crate::metrics::bytes_out(n);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// Sends `close_notify` (an alert record, `TLS_SET_RECORD_TYPE`), then the FIN.
    /// `WouldBlock` when the socket has no room for the alert's record.
    pub fn shutdown_write(&self) -> io::Result<()> {
        let mut control: Control = [0; 4];
        let mut iov = libc::iovec { iov_base: CLOSE_NOTIFY.as_ptr().cast_mut().cast(), iov_len: 2 };
        // SAFETY: msghdr is plain data; all-zero is an empty message header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is arithmetic.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(1) } as _;
        // SAFETY: `control` holds CMSG_SPACE(1) bytes, aligned for cmsghdr, so the first
        // header and its one data byte are inside it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_TLS;
            (*cmsg).cmsg_type = libc::TLS_SET_RECORD_TYPE;
            (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
            *libc::CMSG_DATA(cmsg) = ALERT;
        }
        // SAFETY: `msg` points at `iov` (the alert) and `control`, alive for the call;
        // the kernel only reads them.
        if unsafe { libc::sendmsg(self.fd, &msg, libc::MSG_NOSIGNAL) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a shutdown on a descriptor the caller keeps open.
        match unsafe { libc::shutdown(self.fd, libc::SHUT_WR) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }
}

/// The record type the kernel reported with a read; `None` when it reported none.
///
/// # Safety
///
/// `msg` was filled by `recvmsg`, its control area still alive.
unsafe fn record_type(msg: &libc::msghdr) -> Option<u8> {
    // SAFETY: the caller's promise; CMSG_FIRSTHDR is null when there is no control data.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    if cmsg.is_null() {
        return None;
    }
    // SAFETY: non-null: a header recvmsg wrote, with its data after it.
    unsafe {
        let tls =
            (*cmsg).cmsg_level == libc::SOL_TLS && (*cmsg).cmsg_type == libc::TLS_GET_RECORD_TYPE;
        tls.then(|| *libc::CMSG_DATA(cmsg))
    }
}

/// What an alert record from the client means for the reader.
fn alert(body: &[u8]) -> io::Result<usize> {
    match body {
        [_, 0] => Ok(0),
        [_, description] => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!(
                "the client sent the TLS alert {:?}",
                rustls::AlertDescription::from(*description)
            ),
        )),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, "a TLS alert record not 2 bytes")),
    }
}

#[cfg(test)]
#[path = "ktls_tests.rs"]
mod tests;
