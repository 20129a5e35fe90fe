//! TLS settings (`--certfile`, `--keyfile`, ...) and the `rustls::ServerConfig` every
//! connection's session ([`crate::worker::tls::TlsTransport`]) is made from.
//!
//! The master reads the certificate and key while it validates the settings, at boot and
//! again on HUP, so a file that is missing, unreadable or does not match is one line at
//! boot (exit 2) and, on HUP, an error line while the running settings (the old
//! certificate with them) keep serving. Workers inherit the loaded config at fork: a
//! key readable only by root is read before `--user` applies, as nginx does.
//!
//! The crypto provider is aws-lc-rs, rustls's default: the fastest handshakes and bulk
//! ciphers rustls has on x86-64 and aarch64, and it builds here with a C compiler alone.

pub mod ciphers;
pub mod client;
pub mod ktls;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::TlsPolicy;

/// The validated TLS settings and the server config loaded from them.
#[derive(Clone)]
pub struct Settings {
    /// `--certfile`: the PEM certificate chain, leaf first (the key may follow it).
    pub certfile: PathBuf,
    /// `--keyfile`; `None`: the key is in the certfile.
    pub keyfile: Option<PathBuf>,
    /// `--suppress-ragged-eofs`: a client's TCP close without `close_notify` reads as an
    /// end of stream (gunicorn's default), not an error.
    pub suppress_ragged_eofs: bool,
    /// `--do-handshake-on-connect`: accepted with gunicorn's meaning; the handshake always
    /// runs first on a connection, before its first request is read, either way.
    pub do_handshake_on_connect: bool,
    /// What every session is made from, shared by all of a worker's connections.
    pub server: Arc<ServerConfig>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("certfile", &self.certfile)
            .field("keyfile", &self.keyfile)
            .field("suppress_ragged_eofs", &self.suppress_ragged_eofs)
            .field("do_handshake_on_connect", &self.do_handshake_on_connect)
            .finish_non_exhaustive()
    }
}

/// A certificate or key that cannot be used: one line naming the file and why, the same
/// error a bad setting is (exit 2 at boot; on HUP, the running settings stay).
pub use crate::config::Error;

/// The crypto provider every session uses, with `--ciphers`'s suites when given.
fn provider(policy: &TlsPolicy) -> Arc<CryptoProvider> {
    let all = ciphers::provider();
    match &policy.ciphers {
        None => all,
        Some(suites) => {
            Arc::new(CryptoProvider { cipher_suites: suites.clone(), ..(*all).clone() })
        }
    }
}

/// The server config for `certfile` (and `keyfile`, else the key in `certfile`), with
/// `--ssl-version`, `--ciphers`, `--cert-reqs` and `--ca-certs` from `policy`.
pub fn server_config(
    certfile: &Path,
    keyfile: Option<&Path>,
    policy: &TlsPolicy,
) -> Result<Arc<ServerConfig>, Error> {
    let provider = provider(policy);
    let key = load_key(keyfile.unwrap_or(certfile), keyfile.is_some())?;
    let chain = load_chain(certfile)?;
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        let key = keyfile.unwrap_or(certfile).display();
        Error(format!(
            "--keyfile {key}: the key does not match --certfile {}: {e}",
            certfile.display()
        ))
    })?;
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&policy.versions)
        .map_err(|e| Error(format!("TLS: {e}")))?;
    let verifier = client::verifier(policy.ca_certs.as_deref(), policy.cert_reqs);
    let builder = builder.with_client_cert_verifier(verifier.map_err(Error)?);
    let mut config = builder.with_cert_resolver(Arc::new(Single(Arc::new(certified))));
    // Python's contexts prefer the server's cipher order (OP_CIPHER_SERVER_PREFERENCE).
    config.ignore_client_order = true;
    config.alpn_protocols = policy.alpn.clone();
    // A ticket could be resumed only on the worker that issued it (the session cache is
    // per process), and each costs a record per handshake.
    config.send_tls13_tickets = 0;
    // Where the kernel has kTLS, sessions move to it after the handshake (docs/ktls.md).
    if ktls::support().is_some() {
        ktls::configure(&mut config);
    }
    Ok(Arc::new(config))
}

/// The certificate chain in `path`: every `CERTIFICATE` block, leaf first.
fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = read(path, "--certfile")?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error(format!("--certfile {}: not a PEM certificate: {e}", path.display())))?;
    if chain.is_empty() {
        return Err(Error(format!("--certfile {}: no PEM certificate in it", path.display())));
    }
    Ok(chain)
}

/// The private key in `path` (PKCS#8, PKCS#1 or SEC1 PEM); `separate`: it came from
/// `--keyfile`, not the certfile.
fn load_key(path: &Path, separate: bool) -> Result<PrivateKeyDer<'static>, Error> {
    let flag = if separate { "--keyfile" } else { "--certfile" };
    let bytes = read(path, flag)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let hint = if separate { "" } else { " (give the key with --keyfile)" };
        Error(format!("{flag} {}: no PEM private key in it{hint}: {e}", path.display()))
    })
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "does not exist".to_owned(),
            std::io::ErrorKind::PermissionDenied => "cannot be read (permission denied)".into(),
            _ => format!("cannot be read: {e}"),
        };
        Error(format!("{flag} {}: {why}", path.display()))
    })
}

/// One certificate for every client: the resolver rustls asks at each handshake (the
/// client-certificate and SNI work of later helpers plugs in beside it).
#[derive(Debug)]
struct Single(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for Single {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The test files: `cert.pem` (CN and SAN localhost, 127.0.0.1; P-256, 100 years)
    /// with its `key.pem`, signed by `ca.pem`; `other-key.pem` matches nothing.
    pub fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tls/testdata").join(name)
    }

    #[test]
    fn a_matching_pair_loads() {
        let config =
            server_config(&testdata("cert.pem"), Some(&testdata("key.pem")), &TlsPolicy::default())
                .unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn the_key_may_be_in_the_certfile() {
        let dir = std::env::temp_dir().join(format!("ferricorn-tls-both-{}", std::process::id()));
        let mut both = std::fs::read(testdata("cert.pem")).unwrap();
        both.extend(std::fs::read(testdata("key.pem")).unwrap());
        std::fs::write(&dir, both).unwrap();
        let loaded = server_config(&dir, None, &TlsPolicy::default());
        let _ = std::fs::remove_file(&dir);
        loaded.unwrap();
    }

    /// Each bad file is one line naming the flag, the file and why.
    #[test]
    fn bad_files_are_one_line_each() {
        let cert = testdata("cert.pem");
        let cases: &[(PathBuf, Option<PathBuf>, &str)] = &[
            (testdata("missing.pem"), Some(testdata("key.pem")), "--certfile"),
            (cert.clone(), Some(testdata("missing.pem")), "does not exist"),
            (cert.clone(), Some(testdata("other-key.pem")), "does not match"),
            (cert.clone(), Some(cert.clone()), "no PEM private key"),
            (testdata("key.pem"), Some(testdata("key.pem")), "no PEM certificate"),
            (cert.clone(), None, "give the key with --keyfile"),
        ];
        for (certfile, keyfile, expected) in cases {
            let error =
                server_config(certfile, keyfile.as_deref(), &TlsPolicy::default()).unwrap_err().0;
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
            assert!(!error.contains('\n'), "{error:?}");
        }
    }
}
