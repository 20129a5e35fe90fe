//! Mutual TLS: `--cert-reqs` and `--ca-certs` as a rustls client-certificate verifier, and
//! what the app's environ says of the client's certificate.
//!
//! gunicorn builds `ssl.create_default_context(Purpose.CLIENT_AUTH, cafile=ca_certs)` and
//! sets its `verify_mode` to `cert_reqs`: 0 asks for no certificate, 1 asks and accepts a
//! client without one, 2 refuses a client without one; a certificate that does not chain to
//! the CAs fails the handshake in both. Without `ca_certs` Python falls back to the
//! system's CA store, so any customer of any public CA would pass; ferricorn asks for the
//! file instead (docs/differences.md).
//!
//! The environ keys are mod_ssl's (`SSL_CLIENT_*`), which Apache with mod_wsgi, cheroot
//! and the Django and Flask middleware written for them read: see docs/tls.md.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// `--cert-reqs`: Python's `ssl.VerifyMode`, which gunicorn's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertReqs {
    /// `0`, `CERT_NONE`: no client certificate is asked for.
    None,
    /// `1`, `CERT_OPTIONAL`: asked for; a client without one is served, a bad one refused.
    Optional,
    /// `2`, `CERT_REQUIRED`: a client without a good certificate is refused.
    Required,
}

impl CertReqs {
    /// gunicorn's `validate_pos_int` (`int(value, 0)`: `2`, `0x2`; a config file's
    /// `ssl.CERT_REQUIRED` reads `2`), and the names, which gunicorn's command line refuses.
    pub fn parse(value: &str) -> Result<CertReqs, String> {
        let number = crate::config::auto_int(value);
        let name = value.trim().to_ascii_uppercase();
        match (number, name.strip_prefix("CERT_").unwrap_or(&name)) {
            (Some(0), _) | (None, "NONE") => Ok(CertReqs::None),
            (Some(1), _) | (None, "OPTIONAL") => Ok(CertReqs::Optional),
            (Some(2), _) | (None, "REQUIRED") => Ok(CertReqs::Required),
            _ => Err("expected 0 (CERT_NONE), 1 (CERT_OPTIONAL) or 2 (CERT_REQUIRED)".to_owned()),
        }
    }

    /// The number gunicorn's `cfg.cert_reqs` holds (what `--print-config` shows).
    pub fn number(self) -> u8 {
        match self {
            CertReqs::None => 0,
            CertReqs::Optional => 1,
            CertReqs::Required => 2,
        }
    }
}

/// The verifier `--ca-certs` and `--cert-reqs` ask for. The CA file is read (and must hold
/// a certificate) even with `--cert-reqs 0`, as Python reads it; asking for client
/// certificates without it is an error (module doc).
pub fn verifier(
    ca_certs: Option<&Path>,
    reqs: CertReqs,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let cert_reqs = reqs.number();
    let roots = ca_certs.map(roots).transpose()?;
    let Some(roots) = roots.filter(|_| reqs != CertReqs::None) else {
        return match reqs {
            CertReqs::None => Ok(WebPkiClientVerifier::no_client_auth()),
            _ => Err(format!(
                "--cert-reqs {cert_reqs}: needs --ca-certs FILE, the CAs client certificates \
                 must chain to (gunicorn would take the system's store, which every public \
                 CA's customer passes: to mean that, give --ca-certs \
                 /etc/ssl/certs/ca-certificates.crt)"
            )),
        };
    };
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::ciphers::provider());
    let builder = match reqs {
        CertReqs::Optional => builder.allow_unauthenticated(),
        _ => builder,
    };
    builder.build().map_err(|e| format!("--ca-certs: {e}"))
}

/// The CA certificates of a PEM file, as Python's `load_verify_locations(cafile=...)`.
fn roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("--ca-certs {shown}: {e}"))?;
    let mut store = RootCertStore::empty();
    for (n, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.map_err(|e| format!("--ca-certs {shown}: {e}"))?;
        store.add(cert).map_err(|e| format!("--ca-certs {shown}: certificate {}: {e}", n + 1))?;
    }
    if store.is_empty() {
        return Err(format!("--ca-certs {shown}: no PEM certificate in it"));
    }
    Ok(store)
}

/// A TLS connection's client-certificate keys, made once per connection.
pub type Environ = Vec<(Cow<'static, str>, String)>;

/// The environ keys of a client certificate, mod_ssl's: `SSL_CLIENT_VERIFY` (`SUCCESS`
/// with a certificate, which rustls verified before the request; `NONE` without),
/// `SSL_CLIENT_CERT` (PEM), `SSL_CLIENT_S_DN` and `SSL_CLIENT_I_DN` (RFC 2253, as Apache
/// 2.4 and nginx print them), their parts (`SSL_CLIENT_S_DN_CN`, a second `OU` as
/// `SSL_CLIENT_S_DN_OU_1`), `SSL_CLIENT_M_SERIAL`, `SSL_CLIENT_M_VERSION`,
/// `SSL_CLIENT_V_START`, `SSL_CLIENT_V_END`, `SSL_CLIENT_A_SIG`, `SSL_CLIENT_A_KEY`,
/// `SSL_CLIENT_SAN_DNS_n`, `SSL_CLIENT_SAN_Email_n` and `SSL_CLIENT_CERT_CHAIN_n` (the
/// certificates after the client's own). `chain` is the client's, its own first.
pub fn environ(chain: &[CertificateDer<'_>]) -> Environ {
    let Some(leaf) = chain.first() else {
        return vec![("SSL_CLIENT_VERIFY".into(), "NONE".to_owned())];
    };
    let mut env: Vec<(Cow<'static, str>, String)> = vec![
        ("SSL_CLIENT_VERIFY".into(), "SUCCESS".to_owned()),
        ("SSL_CLIENT_CERT".into(), pem(leaf)),
    ];
    for (n, cert) in chain[1..].iter().enumerate() {
        env.push((format!("SSL_CLIENT_CERT_CHAIN_{n}").into(), pem(cert)));
    }
    // rustls verified the chain, so the certificate parses; if it ever did not, the
    // verdict and the PEM are still right, and the app can parse the PEM itself.
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) {
        described(&cert, &mut env);
    }
    env
}

/// The parsed certificate's keys (all of [`environ`]'s but the PEM and the verdict).
fn described(
    cert: &x509_parser::certificate::X509Certificate<'_>,
    env: &mut Vec<(Cow<'static, str>, String)>,
) {
    use x509_parser::objects::{oid2sn, oid_registry};
    for (prefix, name) in [("SSL_CLIENT_S_DN", cert.subject()), ("SSL_CLIENT_I_DN", cert.issuer())]
    {
        env.push((prefix.into(), rfc2253(name)));
        env.extend(dn_parts(prefix, name));
    }
    env.push(("SSL_CLIENT_M_SERIAL".into(), serial(cert.raw_serial())));
    env.push(("SSL_CLIENT_M_VERSION".into(), (cert.version().0 + 1).to_string()));
    let validity = cert.validity();
    env.push(("SSL_CLIENT_V_START".into(), openssl_time(validity.not_before.timestamp())));
    env.push(("SSL_CLIENT_V_END".into(), openssl_time(validity.not_after.timestamp())));
    let name = |oid| oid2sn(oid, oid_registry()).map_or_else(|_| oid.to_id_string(), str::to_owned);
    env.push(("SSL_CLIENT_A_SIG".into(), name(&cert.signature_algorithm.algorithm)));
    env.push(("SSL_CLIENT_A_KEY".into(), name(&cert.public_key().algorithm.algorithm)));
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        use x509_parser::extensions::GeneralName;
        let (mut dns, mut email) = (0, 0);
        for general in &san.value.general_names {
            let (key, value, n) = match general {
                GeneralName::DNSName(v) => ("DNS", v, &mut dns),
                GeneralName::RFC822Name(v) => ("Email", v, &mut email),
                _ => continue,
            };
            env.push((format!("SSL_CLIENT_SAN_{key}_{n}").into(), value.to_string()));
            *n += 1;
        }
    }
}

/// DN attributes: their OID, the RFC 2253 (OpenSSL short) name, mod_ssl's `_DN_x` name.
const ATTRIBUTES: &[(&str, &str, Option<&str>)] = &[
    ("2.5.4.3", "CN", Some("CN")),
    ("2.5.4.6", "C", Some("C")),
    ("2.5.4.7", "L", Some("L")),
    ("2.5.4.8", "ST", Some("ST")),
    ("2.5.4.9", "street", None),
    ("2.5.4.10", "O", Some("O")),
    ("2.5.4.11", "OU", Some("OU")),
    ("2.5.4.12", "title", Some("T")),
    ("2.5.4.4", "SN", Some("S")),
    ("2.5.4.42", "GN", Some("G")),
    ("2.5.4.43", "initials", Some("I")),
    ("2.5.4.13", "description", Some("D")),
    ("2.5.4.5", "serialNumber", None),
    ("0.9.2342.19200300.100.1.1", "UID", Some("UID")),
    ("0.9.2342.19200300.100.1.25", "DC", None),
    ("1.2.840.113549.1.9.1", "emailAddress", Some("Email")),
];

/// One attribute's value as text, and whether it is one (a string type, decoded as
/// OpenSSL's RFC 2253 output decodes it); any other type is `#` and the hex of its DER.
fn attribute_text(attr: &x509_parser::x509::AttributeTypeAndValue<'_>) -> (String, bool) {
    use x509_parser::der_parser::asn1_rs::Tag;
    let value = attr.attr_value();
    let data = value.data;
    let units = |width: usize| {
        data.chunks(width).map(|c| c.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)))
    };
    let text: Option<String> = match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => Some(String::from_utf8_lossy(data).into_owned()),
        // T.61 as Latin-1, as OpenSSL reads it.
        Tag::T61String => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => Some(units(2).map(|u| char::from_u32(u).unwrap_or('\u{FFFD}')).collect()),
        Tag::UniversalString => {
            Some(units(4).map(|u| char::from_u32(u).unwrap_or('\u{FFFD}')).collect())
        }
        _ => None,
    };
    match text {
        Some(text) => (text, true),
        None => {
            let mut der = vec![value.tag().0 as u8];
            match u8::try_from(data.len()) {
                Ok(len) if len < 0x80 => der.push(len),
                _ => {
                    let len = (data.len() as u32).to_be_bytes();
                    let skip = len.iter().take_while(|&&b| b == 0).count();
                    der.push(0x80 | (4 - skip) as u8);
                    der.extend_from_slice(&len[skip..]);
                }
            }
            der.extend_from_slice(data);
            (format!("#{}", hex(&der, "")), false)
        }
    }
}

/// A DN in RFC 2253's form: the last RDN first, `,` between RDNs, `+` inside one, special
/// characters escaped (UTF-8 kept, as Apache's `XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB`).
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let rdns: Vec<&x509_parser::x509::RelativeDistinguishedName<'_>> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        for (j, attr) in rdn.iter().enumerate() {
            out.push_str(match (i, j) {
                (0, 0) => "",
                (_, 0) => ",",
                _ => "+",
            });
            let oid = attr.attr_type().to_id_string();
            let short = ATTRIBUTES.iter().find(|a| a.0 == oid).map_or(oid.as_str(), |a| a.1);
            let (text, is_string) = attribute_text(attr);
            out.push_str(short);
            out.push('=');
            out.push_str(&if is_string { escape(&text) } else { text });
        }
    }
    out
}

/// RFC 2253 section 2.4's escapes.
fn escape(value: &str) -> String {
    let last = value.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => out.push('\\'),
            '#' | ' ' if i == 0 => out.push('\\'),
            ' ' if i == last => out.push('\\'),
            c if c.is_control() => {
                out.push_str(&format!("\\{:02X}", c as u32));
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// mod_ssl's `PREFIX_x` keys: each attribute it names, a repeated one as `_1`, `_2`...
fn dn_parts(
    prefix: &str,
    name: &x509_parser::x509::X509Name<'_>,
) -> Vec<(Cow<'static, str>, String)> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for attr in name.iter_rdn().flat_map(|rdn| rdn.iter()) {
        let oid = attr.attr_type().to_id_string();
        let Some(key) = ATTRIBUTES.iter().find(|a| a.0 == oid).and_then(|a| a.2) else { continue };
        let n = seen.iter().filter(|k| **k == key).count();
        seen.push(key);
        let key = match n {
            0 => format!("{prefix}_{key}"),
            n => format!("{prefix}_{key}_{n}"),
        };
        out.push((key.into(), attribute_text(attr).0));
    }
    out
}

/// The serial number in mod_ssl's form: upper-case hex, no sign byte.
fn serial(raw: &[u8]) -> String {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len().saturating_sub(1));
    hex(&raw[start.min(raw.len())..], "")
}

fn hex(bytes: &[u8], separator: &str) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(separator)
}

/// A certificate date as OpenSSL's `ASN1_TIME_print` (mod_ssl's `SSL_CLIENT_V_*`):
/// `Dec  2 16:00:00 2026 GMT`.
fn openssl_time(unix: i64) -> String {
    use ferricorn_http::date::{civil_from_days, MONTHS};
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("{} {day:>2} {h:02}:{m:02}:{s:02} {year} GMT", MONTHS[month as usize - 1])
}

/// A certificate as PEM, 64 base64 characters a line, as `ssl.DER_cert_to_PEM_cert`.
fn pem(cert: &CertificateDer<'_>) -> String {
    let b64 = crate::http::base64::encode(cert);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        SanType,
    };
    use rustls::pki_types::UnixTime;

    /// A CA and a client certificate it signed (`CN=client`, two SANs, serial 00:AB:CD).
    struct Pki {
        /// The CA's PEM.
        ca: String,
        /// The client's certificate.
        leaf: CertificateDer<'static>,
        /// The client's key.
        leaf_key: KeyPair,
        /// The CA's certificate, as a chain's second element (`SSL_CLIENT_CERT_CHAIN_0`).
        ca_der: CertificateDer<'static>,
    }

    fn pki(ca_name: &str) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params.distinguished_name.push(DnType::CommonName, ca_name);
        ca_params.distinguished_name.push(DnType::OrganizationName, "ferricorn tests");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let mut params = CertificateParams::new(vec!["client.example".to_owned()]).unwrap();
        params.subject_alt_names.push(SanType::Rfc822Name("me@example.com".try_into().unwrap()));
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CountryName, "US");
        params.distinguished_name.push(DnType::OrganizationName, "Example, Inc");
        params.distinguished_name.push(DnType::CommonName, "client");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x00, 0xAB, 0xCD]));
        params.not_before = rcgen::date_time_ymd(2026, 1, 5);
        params.not_after = rcgen::date_time_ymd(2036, 12, 31);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
        Pki { ca: ca.pem(), leaf: leaf.der().clone(), leaf_key, ca_der: ca.der().clone() }
    }

    /// A file under the temporary directory, unique to this test run.
    fn file(name: &str, contents: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ferricorn-tls-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn cert_reqs_values() {
        let rows = [
            ("0", CertReqs::None),
            ("1", CertReqs::Optional),
            ("2", CertReqs::Required),
            ("0x2", CertReqs::Required),
            ("CERT_REQUIRED", CertReqs::Required),
            ("cert_optional", CertReqs::Optional),
            ("none", CertReqs::None),
        ];
        for (value, want) in rows {
            assert_eq!(CertReqs::parse(value), Ok(want), "{value}");
        }
        for value in ["3", "-1", "yes", ""] {
            assert!(CertReqs::parse(value).unwrap_err().contains("expected 0 (CERT_NONE)"));
        }
    }

    #[test]
    fn verifier_modes() {
        let ours = pki("Test CA");
        let ca = file("ca.pem", &ours.ca);
        let none = verifier(None, CertReqs::None).unwrap();
        assert!(!none.offer_client_auth());
        let none_with_ca = verifier(Some(&ca), CertReqs::None).unwrap();
        assert!(!none_with_ca.offer_client_auth());
        let optional = verifier(Some(&ca), CertReqs::Optional).unwrap();
        assert!(optional.offer_client_auth() && !optional.client_auth_mandatory());
        let required = verifier(Some(&ca), CertReqs::Required).unwrap();
        assert!(required.offer_client_auth() && required.client_auth_mandatory());
        let now = UnixTime::now();
        assert!(required.verify_client_cert(&ours.leaf, &[], now).is_ok());
        let stranger = pki("Another CA");
        assert!(required.verify_client_cert(&stranger.leaf, &[], now).is_err());
    }

    #[test]
    fn verifier_errors() {
        let key_only = file("key.pem", &KeyPair::generate().unwrap().serialize_pem());
        let garbage = file("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n");
        let missing = std::path::Path::new("/nonexistent/ca.pem");
        let rows: [(Option<&Path>, CertReqs, &str); 5] = [
            (None, CertReqs::Required, "--cert-reqs 2: needs --ca-certs FILE"),
            (None, CertReqs::Optional, "--cert-reqs 1: needs --ca-certs FILE"),
            (Some(missing), CertReqs::Required, "--ca-certs /nonexistent/ca.pem: No such file"),
            (Some(missing), CertReqs::None, "--ca-certs /nonexistent/ca.pem: No such file"),
            (Some(&key_only), CertReqs::Required, "no PEM certificate in it"),
        ];
        for (ca, reqs, want) in rows {
            let error = verifier(ca, reqs).map(|_| ()).unwrap_err();
            assert!(error.contains(want), "{ca:?} {reqs:?}: {error}");
            assert!(!error.contains('\n'));
        }
        assert!(verifier(Some(&garbage), CertReqs::Required).is_err());
    }

    fn lookup<'a>(env: &'a [(Cow<'static, str>, String)], key: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn environ_without_a_certificate() {
        let env = environ(&[]);
        assert_eq!(env, [("SSL_CLIENT_VERIFY".into(), "NONE".to_owned())]);
    }

    #[test]
    fn environ_of_a_certificate() {
        let pki = pki("Test CA");
        let env = environ(&[pki.leaf.clone(), pki.ca_der.clone()]);
        let rows = [
            ("SSL_CLIENT_VERIFY", "SUCCESS"),
            ("SSL_CLIENT_S_DN", "CN=client,O=Example\\, Inc,C=US"),
            ("SSL_CLIENT_S_DN_CN", "client"),
            ("SSL_CLIENT_S_DN_O", "Example, Inc"),
            ("SSL_CLIENT_S_DN_C", "US"),
            ("SSL_CLIENT_I_DN", "O=ferricorn tests,CN=Test CA"),
            ("SSL_CLIENT_I_DN_CN", "Test CA"),
            ("SSL_CLIENT_M_SERIAL", "ABCD"),
            ("SSL_CLIENT_M_VERSION", "3"),
            ("SSL_CLIENT_V_START", "Jan  5 00:00:00 2026 GMT"),
            ("SSL_CLIENT_V_END", "Dec 31 00:00:00 2036 GMT"),
            ("SSL_CLIENT_A_SIG", "ecdsa-with-SHA256"),
            ("SSL_CLIENT_A_KEY", "id-ecPublicKey"),
            ("SSL_CLIENT_SAN_DNS_0", "client.example"),
            ("SSL_CLIENT_SAN_Email_0", "me@example.com"),
        ];
        for (key, want) in rows {
            assert_eq!(lookup(&env, key), Some(want), "{key}");
        }
        let cert = lookup(&env, "SSL_CLIENT_CERT").unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        assert_eq!(der, pki.leaf, "SSL_CLIENT_CERT is the certificate's PEM");
        let chain = lookup(&env, "SSL_CLIENT_CERT_CHAIN_0").unwrap();
        assert_eq!(CertificateDer::from_pem_slice(chain.as_bytes()).unwrap(), pki.ca_der);
        assert!(cert.lines().all(|line| line.len() <= 64));
    }

    #[test]
    fn rfc2253_escapes() {
        let rows = [
            ("plain", "plain"),
            ("a,b+c", "a\\,b\\+c"),
            ("#lead", "\\#lead"),
            (" both ", "\\ both\\ "),
            ("q\"<>;\\", "q\\\"\\<\\>\\;\\\\"),
            ("Zoë", "Zoë"),
            ("tab\there", "tab\\09here"),
        ];
        for (value, want) in rows {
            assert_eq!(escape(value), want, "{value:?}");
        }
    }

    #[test]
    fn dates_as_openssl_prints_them() {
        assert_eq!(openssl_time(0), "Jan  1 00:00:00 1970 GMT");
        assert_eq!(openssl_time(951_782_400), "Feb 29 00:00:00 2000 GMT");
        assert_eq!(openssl_time(1_796_227_199), "Dec  2 15:59:59 2026 GMT");
    }

    /// What the real OpenSSL prints of a certificate with a repeated attribute, escapes and
    /// a long serial: `-nameopt RFC2253` is Apache's form.
    #[test]
    fn environ_agrees_with_openssl() {
        let dir = file("x", "").with_file_name("");
        let (key, pem) = (dir.join("o.key"), dir.join("o.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-subj", "/C=DE/O=A\\+B, \"C\"/OU=one/OU=two/CN=Zoë/emailAddress=z@x.org"])
            .args(["-set_serial", "0x0102030405060708090A0B0C", "-days", "30", "-utf8"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&pem)
            .output();
        let Ok(made) = made else {
            assert!(std::env::var_os("CI").is_none(), "openssl is missing under CI");
            eprintln!("skipped: no openssl command");
            return;
        };
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let der = CertificateDer::from_pem_file(&pem).unwrap();
        let env = environ(&[der]);
        let print = |what: &str| {
            let out = std::process::Command::new("openssl")
                .args(["x509", "-noout", "-nameopt", "RFC2253,-esc_msb", what, "-in"])
                .arg(&pem)
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            text.trim().split_once('=').unwrap().1.to_owned()
        };
        assert_eq!(lookup(&env, "SSL_CLIENT_S_DN").unwrap(), print("-subject"));
        assert_eq!(lookup(&env, "SSL_CLIENT_I_DN").unwrap(), print("-issuer"));
        assert_eq!(lookup(&env, "SSL_CLIENT_M_SERIAL").unwrap(), print("-serial"));
        assert_eq!(lookup(&env, "SSL_CLIENT_V_START").unwrap(), print("-startdate"));
        assert_eq!(lookup(&env, "SSL_CLIENT_V_END").unwrap(), print("-enddate"));
        assert_eq!(lookup(&env, "SSL_CLIENT_S_DN_OU"), Some("one"));
        assert_eq!(lookup(&env, "SSL_CLIENT_S_DN_OU_1"), Some("two"));
        assert_eq!(lookup(&env, "SSL_CLIENT_S_DN_CN"), Some("Zoë"));
        assert_eq!(lookup(&env, "SSL_CLIENT_S_DN_O"), Some("A+B, \"C\""));
        assert_eq!(lookup(&env, "SSL_CLIENT_S_DN_Email"), Some("z@x.org"));
    }

    /// rustls's server and client, in memory, with the policy the settings give: what the
    /// TLS transport will build from `Config.tls_policy`.
    mod handshake {
        use super::*;
        use crate::tls::ciphers;
        use rustls::crypto::CryptoProvider;
        use rustls::pki_types::PrivateKeyDer;
        use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

        fn key_der(key: &KeyPair) -> PrivateKeyDer<'static> {
            PrivateKeyDer::Pkcs8(key.serialize_der().into())
        }

        /// A server for `localhost` (self-signed, ECDSA) and the root a client trusts it by.
        fn server(
            verifier: Arc<dyn ClientCertVerifier>,
            suites: Vec<rustls::SupportedCipherSuite>,
            versions: &[&'static rustls::SupportedProtocolVersion],
        ) -> (ServerConnection, RootCertStore) {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec!["localhost".to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let provider =
                CryptoProvider { cipher_suites: suites, ..(*ciphers::provider()).clone() };
            let config = ServerConfig::builder_with_provider(Arc::new(provider))
                .with_protocol_versions(versions)
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(vec![cert.der().clone()], key_der(&key))
                .unwrap();
            let mut roots = RootCertStore::empty();
            roots.add(cert.der().clone()).unwrap();
            (ServerConnection::new(Arc::new(config)).unwrap(), roots)
        }

        /// A client trusting `roots`, offering `suites` over `versions`, with `identity`'s
        /// certificate when given.
        fn client(
            roots: RootCertStore,
            identity: Option<&Pki>,
            suites: Vec<rustls::SupportedCipherSuite>,
            versions: &[&'static rustls::SupportedProtocolVersion],
        ) -> ClientConnection {
            let provider =
                CryptoProvider { cipher_suites: suites, ..(*ciphers::provider()).clone() };
            let builder = ClientConfig::builder_with_provider(Arc::new(provider))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots);
            let config = match identity {
                Some(p) => {
                    builder.with_client_auth_cert(vec![p.leaf.clone()], key_der(&p.leaf_key))
                }
                None => Ok(builder.with_no_client_auth()),
            };
            let name = "localhost".try_into().unwrap();
            ClientConnection::new(Arc::new(config.unwrap()), name).unwrap()
        }

        /// Bytes back and forth until both sides are done or one refuses.
        fn pump(
            server: &mut ServerConnection,
            client: &mut ClientConnection,
        ) -> Result<(), String> {
            for _ in 0..16 {
                let mut wire = Vec::new();
                client.write_tls(&mut wire).unwrap();
                server.read_tls(&mut &wire[..]).unwrap();
                server.process_new_packets().map_err(|e| format!("server: {e}"))?;
                let mut wire = Vec::new();
                server.write_tls(&mut wire).unwrap();
                client.read_tls(&mut &wire[..]).unwrap();
                client.process_new_packets().map_err(|e| format!("client: {e}"))?;
                if !server.is_handshaking() && !client.is_handshaking() && !server.wants_write() {
                    return Ok(());
                }
            }
            Err("the handshake did not finish".to_owned())
        }

        fn every_suite() -> Vec<rustls::SupportedCipherSuite> {
            ciphers::provider().cipher_suites.clone()
        }

        /// A handshake under `cert_reqs` (with the test CA), the client presenting `identity`:
        /// the server's error, or the environ the app would get.
        fn mutual(cert_reqs: &str, identity: Option<&Pki>, ca: &Pki) -> Result<String, String> {
            let ca_file = file(&format!("hs-{cert_reqs}.pem"), &ca.ca);
            let verifier = verifier(Some(&ca_file), CertReqs::parse(cert_reqs).unwrap()).unwrap();
            let both = [&rustls::version::TLS13, &rustls::version::TLS12];
            let (mut server, roots) = server(verifier, every_suite(), &both);
            let mut client = client(roots, identity, every_suite(), &both);
            pump(&mut server, &mut client)?;
            let chain = server.peer_certificates().unwrap_or_default();
            let env = environ(chain);
            let verdict = lookup(&env, "SSL_CLIENT_VERIFY").unwrap();
            Ok(format!("{verdict} {}", lookup(&env, "SSL_CLIENT_S_DN_CN").unwrap_or("-")))
        }

        #[test]
        fn cert_reqs_in_a_handshake() {
            let ca = pki("Test CA");
            let stranger = pki("Another CA");
            let rows = [
                ("0", Some(&ca), Ok("NONE -")),
                ("1", None, Ok("NONE -")),
                ("1", Some(&ca), Ok("SUCCESS client")),
                ("1", Some(&stranger), Err("server: invalid peer certificate: UnknownIssuer")),
                ("2", None, Err("server: peer sent no certificates")),
                ("2", Some(&ca), Ok("SUCCESS client")),
                ("2", Some(&stranger), Err("server: invalid peer certificate: UnknownIssuer")),
            ];
            for (reqs, identity, want) in rows {
                let got = mutual(reqs, identity, &ca);
                assert_eq!(got.as_deref(), want.map_err(str::to_owned).as_deref(), "{reqs}");
            }
        }

        /// `--ciphers` and `--ssl-version` in the server: a TLS 1.2 client gets the one
        /// suite the list chose, or none; a TLS 1.3 server refuses a TLS 1.2 client.
        #[test]
        fn cipher_list_and_version_in_a_handshake() {
            let tls12 = [&rustls::version::TLS12];
            let only = ciphers::suites("ECDHE-ECDSA-CHACHA20-POLY1305").unwrap();
            let (mut s, roots) =
                server(WebPkiClientVerifier::no_client_auth(), only.clone(), &tls12);
            let mut c = client(roots, None, every_suite(), &tls12);
            pump(&mut s, &mut c).unwrap();
            let chosen = s.negotiated_cipher_suite().unwrap().suite();
            assert_eq!(chosen, rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256);
            let aes = ciphers::suites("ECDHE-ECDSA-AES128-GCM-SHA256").unwrap();
            let (mut s, roots) = server(WebPkiClientVerifier::no_client_auth(), only, &tls12);
            let mut c = client(roots, None, aes, &tls12);
            assert!(pump(&mut s, &mut c).unwrap_err().contains("server"));
            let v13 = ciphers::versions("TLSv1_3").unwrap();
            let (mut s, roots) =
                server(WebPkiClientVerifier::no_client_auth(), every_suite(), &v13);
            let mut c = client(roots, None, every_suite(), &tls12);
            assert!(pump(&mut s, &mut c).is_err());
        }
    }
}
