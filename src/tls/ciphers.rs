//! `--ciphers` and `--ssl-version`: gunicorn's TLS settings, read into rustls's terms.
//!
//! gunicorn hands `--ciphers` to Python's `SSLContext.set_ciphers`, which is OpenSSL's
//! `SSL_CTX_set_cipher_list`: an OpenSSL cipher list that chooses the TLS 1.2 (and older)
//! suites and leaves TLS 1.3's alone, and fails ("No cipher can be selected") when it
//! chooses no TLS 1.2 suite. [`suites`] reads the list with OpenSSL's rules (`ciphers(1)`,
//! "CIPHER LIST FORMAT"): names and aliases, `+` joining them, the `!` `-` `+` prefixes,
//! `@STRENGTH`, `@SECLEVEL=n`, a leading `DEFAULT` or `SUITEB...`. It keeps OpenSSL's
//! order and every TLS 1.3 suite, as gunicorn does. rustls has six TLS 1.2 suites (ECDHE,
//! AES-GCM or ChaCha20-Poly1305); what the list chooses beyond them (CBC, RSA or DHE key
//! exchange, ...) cannot be served, so it is named, and a list that chooses none of the six
//! is refused.
//!
//! The rules act on each suite alone (does it match this alias) and move matching suites
//! to one end of the list, so reading the list over the six suites alone gives the six in
//! the order OpenSSL's whole list has them; a test checks that against the real OpenSSL.
//!
//! gunicorn 27 ignores `--ssl-version` (deprecated since 21.0, with a warning: Python's
//! default context serves TLS 1.2 and 1.3). ferricorn reads it as the lowest version to
//! serve, which never serves less than gunicorn would: see [`versions`].

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedCipherSuite, SupportedProtocolVersion};

/// The crypto provider every TLS object is built with: aws-lc-rs, rustls's default.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS 1.2 suite rustls has, as OpenSSL's aliases see it.
struct Tls12 {
    /// OpenSSL's name, which cipher lists use.
    name: &'static str,
    /// Its IANA number, to find it among the provider's suites.
    suite: CipherSuite,
    /// Authenticated with an ECDSA certificate (`aECDSA`), else RSA (`aRSA`).
    ecdsa: bool,
    /// `AES128`, `AES256` or `CHACHA20`.
    cipher: &'static str,
    /// OpenSSL's strength bits, which `@STRENGTH` sorts by and `@SECLEVEL` bounds.
    bits: u16,
}

const fn tls12(name: &'static str, suite: CipherSuite, ecdsa: bool, cipher: &'static str) -> Tls12 {
    let bits = if matches!(cipher.as_bytes(), b"AES128") { 128 } else { 256 };
    Tls12 { name, suite, ecdsa, cipher, bits }
}

/// rustls's TLS 1.2 suites in the order OpenSSL lists them before a cipher list acts
/// (`openssl ciphers -V ALL` shows the same six in this order).
const TLS12: [Tls12; 6] = [
    tls12(
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        true,
        "AES256",
    ),
    tls12(
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        false,
        "AES256",
    ),
    tls12(
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        true,
        "CHACHA20",
    ),
    tls12(
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        false,
        "CHACHA20",
    ),
    tls12(
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        true,
        "AES128",
    ),
    tls12(
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        false,
        "AES128",
    ),
];

/// TLS 1.3 suite names, which OpenSSL's cipher list does not choose (`-ciphersuites` does).
const TLS13_NAMES: [&str; 5] = [
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
];

/// A set of [`TLS12`]'s suites, bit `i` for `TLS12[i]`.
type Set = u8;
const EVERY: Set = 0b11_1111;

/// The suites a name or alias matches; an unknown word (OpenSSL ignores it) matches none.
/// Every alias not here (`kRSA`, `DHE`, `SHA256`, `CBC`, `MEDIUM`...) matches none of the
/// six: they are ECDHE, AEAD (so no `SHA*` MAC alias) and `HIGH`.
fn matches(word: &str) -> Set {
    let set = |keep: fn(&Tls12) -> bool| {
        TLS12.iter().enumerate().filter(|(_, s)| keep(s)).fold(0, |set, (i, _)| set | 1 << i)
    };
    match word {
        "ALL" | "HIGH" | "TLSv1.2" | "kECDHE" | "kEECDH" | "ECDHE" | "EECDH" | "ECDH" => EVERY,
        "aRSA" => set(|s| !s.ecdsa),
        "aECDSA" | "ECDSA" => set(|s| s.ecdsa),
        "AES" | "AESGCM" | "FIPS" => set(|s| s.cipher != "CHACHA20"),
        "AES128" => set(|s| s.cipher == "AES128"),
        "AES256" => set(|s| s.cipher == "AES256"),
        "CHACHA20" => set(|s| s.cipher == "CHACHA20"),
        name => TLS12.iter().position(|s| s.name == name).map_or(0, |i| 1 << i),
    }
}

/// What a cipher list's rule does to the suites it matches (OpenSSL's `CIPHER_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// No prefix: append those not yet chosen (and not killed) to the end.
    Add,
    /// `-`: unchoose them; a later rule may choose them again.
    Delete,
    /// `+`: move the chosen ones to the end.
    Last,
    /// `!`: remove them for good.
    Kill,
}

/// A suite in [`List`]: its index into [`TLS12`], and whether it is chosen.
type Entry = (usize, bool);

/// OpenSSL's working list over the six suites: every suite not killed, in list order,
/// with whether it is chosen.
struct List {
    /// The suites not killed, in the list's order.
    entries: Vec<Entry>,
    /// `@SECLEVEL=n`: suites weaker than the level's bits are not served.
    level: Option<u8>,
}

impl List {
    fn new() -> List {
        List { entries: (0..TLS12.len()).map(|i| (i, false)).collect(), level: None }
    }

    /// One rule, as `ssl_cipher_apply_rule` moves its matches: appended ones keep their
    /// order, deleted ones go to the front in their order.
    fn apply(&mut self, op: Op, set: Set) {
        let hit = |i: usize| set & (1 << i) != 0;
        if op == Op::Kill {
            self.entries.retain(|&(i, _)| !hit(i));
            return;
        }
        let moves = |&(i, on): &Entry| hit(i) && (on != (op == Op::Add));
        let (moved, kept): (Vec<Entry>, Vec<Entry>) = self.entries.iter().partition(|e| moves(e));
        let moved = moved.into_iter().map(|(i, _)| (i, op != Op::Delete));
        self.entries = match op {
            Op::Delete => moved.chain(kept).collect(),
            _ => kept.into_iter().chain(moved).collect(),
        };
    }

    /// `@STRENGTH`: the chosen suites, strongest first, a stable sort.
    fn sort_by_strength(&mut self) {
        let mut chosen: Vec<Entry> = self.entries.iter().copied().filter(|e| e.1).collect();
        chosen.sort_by_key(|&(i, _)| std::cmp::Reverse(TLS12[i].bits));
        self.entries.retain(|e| !e.1);
        self.entries.extend(chosen);
    }

    /// The chosen suites in order, without those `@SECLEVEL` refuses (level 4 asks for 192
    /// bits, 5 for 256; the six pass levels 0 to 3).
    fn chosen(&self) -> Vec<usize> {
        let min_bits = match self.level {
            Some(4) => 192,
            Some(5) => 256,
            _ => 0,
        };
        self.entries.iter().filter(|e| e.1 && TLS12[e.0].bits >= min_bits).map(|e| e.0).collect()
    }
}

/// What a cipher list chooses of rustls's suites.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Every TLS 1.3 suite (the cipher list leaves them alone), then the TLS 1.2 suites it
    /// chose, in its order.
    pub suites: Vec<SupportedCipherSuite>,
    /// The list's words (rules without a prefix) that choose none of rustls's suites: a
    /// suite rustls lacks (`AES256-SHA`, `DHE-RSA-AES128-GCM-SHA256`), an alias of such only
    /// (`kRSA`, `CBC`), a TLS 1.3 name, or a word OpenSSL does not know either (it ignores
    /// those).
    pub unmapped: Vec<String>,
}

/// `--ciphers`: the rustls suites an OpenSSL cipher list chooses (see the module's doc).
pub fn suites(openssl: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    select(openssl).map(|s| s.suites)
}

/// [`suites`], with the words that could not be mapped, for a notice.
pub fn select(openssl: &str) -> Result<Selection, String> {
    let (list, unmapped) = read_list(openssl)?;
    let chosen = list.chosen();
    if chosen.is_empty() {
        return Err(nothing_chosen(&unmapped));
    }
    let provider = provider();
    let tls13 = provider.cipher_suites.iter().filter(|s| s.version() == &rustls::version::TLS13);
    let mut suites: Vec<SupportedCipherSuite> = tls13.copied().collect();
    for i in chosen {
        let found = provider.cipher_suites.iter().find(|s| s.suite() == TLS12[i].suite);
        suites.extend(found.copied());
    }
    Ok(Selection { suites, unmapped })
}

/// The error of a list that chooses no TLS 1.2 suite rustls has.
fn nothing_chosen(unmapped: &[String]) -> String {
    let has: Vec<&str> = TLS12.iter().map(|s| s.name).collect();
    let mut line = format!("chooses no TLS 1.2 cipher rustls has (it has {})", has.join(", "));
    let (tls13, others): (Vec<&String>, Vec<&String>) =
        unmapped.iter().partition(|w| TLS13_NAMES.contains(&w.as_str()));
    if !others.is_empty() {
        let words: Vec<&str> = others.iter().map(|w| w.as_str()).collect();
        line.push_str(&format!("; {} is not one of them", words.join(", ")));
    }
    if !tls13.is_empty() {
        let words: Vec<&str> = tls13.iter().map(|w| w.as_str()).collect();
        line.push_str(&format!(
            "; {} is a TLS 1.3 suite, which a cipher list does not choose (as in gunicorn, \
             every TLS 1.3 suite is on)",
            words.join(", ")
        ));
    }
    line
}

/// OpenSSL's separators between rules.
fn is_separator(b: u8) -> bool {
    matches!(b, b':' | b' ' | b';' | b',')
}

/// The bytes of a name or alias (OpenSSL's `ssl_cipher_process_rulestr`).
fn is_name(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=')
}

/// A leading `DEFAULT` (OpenSSL's `ALL:!COMPLEMENTOFDEFAULT:!eNULL`, which has all six
/// in order) or Suite B keyword, which replace a whole list, as in OpenSSL.
fn leading_keyword(text: &str) -> &str {
    for (keyword, list) in [
        ("SUITEB128ONLY", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("SUITEB128C2", "ECDHE-ECDSA-AES256-GCM-SHA384"),
        ("SUITEB128", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"),
        ("SUITEB192", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ] {
        if text.starts_with(keyword) {
            return list;
        }
    }
    text
}

/// Reads the list's rules one by one over [`List`]; a malformed list (an operator with no
/// name, an unknown `@` command, a byte no rule may hold) is an error, as in OpenSSL.
fn read_list(openssl: &str) -> Result<(List, Vec<String>), String> {
    let text = leading_keyword(openssl.trim());
    let mut list = List::new();
    let mut unmapped = Vec::new();
    let mut rest = text;
    if let Some(after) = rest.strip_prefix("DEFAULT") {
        list.apply(Op::Add, EVERY);
        rest = after.strip_prefix(':').unwrap_or(after);
    }
    let bytes = rest.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let first = bytes[at];
        if is_separator(first) {
            at += 1;
            continue;
        }
        let op = match first {
            b'-' => Some(Op::Delete),
            b'+' => Some(Op::Last),
            b'!' => Some(Op::Kill),
            b'@' => None,
            _ => Some(Op::Add),
        };
        if op != Some(Op::Add) {
            at += 1;
        }
        let (words, end) = rule_words(rest, at)?;
        at = end;
        let Some(op) = op else {
            command(&mut list, words[0])?;
            continue;
        };
        let set = words.iter().fold(EVERY, |set, word| set & matches(word));
        if set == 0 && op == Op::Add {
            unmapped.push(words.join("+"));
        }
        list.apply(op, set);
    }
    Ok((list, unmapped))
}

/// The names of one rule, joined by `+`, from `at`; and where the rule ends.
fn rule_words(text: &str, mut at: usize) -> Result<(Vec<&str>, usize), String> {
    let bytes = text.as_bytes();
    let mut words = Vec::new();
    loop {
        let start = at;
        while at < bytes.len() && is_name(bytes[at]) {
            at += 1;
        }
        if at == start {
            return Err(match &text[at..] {
                "" => "a cipher name is missing at the end".to_owned(),
                rest => format!("expected a cipher name at {rest:?}"),
            });
        }
        words.push(&text[start..at]);
        match bytes.get(at) {
            Some(b'+') => at += 1,
            _ => return Ok((words, at)),
        }
    }
}

/// An `@` command: `@STRENGTH` or `@SECLEVEL=n` (0 to 5).
fn command(list: &mut List, word: &str) -> Result<(), String> {
    if word == "STRENGTH" {
        list.sort_by_strength();
        return Ok(());
    }
    match word.strip_prefix("SECLEVEL=").map(str::as_bytes) {
        Some(&[digit @ b'0'..=b'5']) => {
            list.level = Some(digit - b'0');
            Ok(())
        }
        _ => Err(format!("unknown command @{word} (OpenSSL has @STRENGTH and @SECLEVEL=0..5)")),
    }
}

/// `--ssl-version`: gunicorn's values (Python's `ssl.PROTOCOL_*` names or numbers, as a
/// config file's `ssl.PROTOCOL_TLSv1_2` reads: `5`), read as the lowest version to serve:
/// `TLS` (gunicorn's default, 2), `SSLv23` and `TLS_SERVER` (17) serve TLS 1.2 and 1.3;
/// `TLSv1_2` (5) too (Python would serve 1.2 only, gunicorn 27 ignores it and serves 1.3
/// too); `TLSv1_3` (ferricorn's, like Python's `ssl.TLSVersion`: `TLSv1_3`, `772`) only
/// 1.3. Versions rustls does not have are refused, not silently raised.
pub fn versions(ssl_version: &str) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    use rustls::version::{TLS12, TLS13};
    let value = ssl_version.trim();
    let name = value.strip_prefix("PROTOCOL_").unwrap_or(value).replace('.', "_");
    let lowest_tls = |v: &str| format!("{v} is older than rustls goes (TLS 1.2 and 1.3)");
    match name.to_ascii_uppercase().as_str() {
        "TLS" | "SSLV23" | "TLS_SERVER" | "2" | "17" | "TLSV1_2" | "5" | "771" => {
            Ok(vec![&TLS13, &TLS12])
        }
        "TLSV1_3" | "772" => Ok(vec![&TLS13]),
        "TLSV1" | "3" | "769" => Err(lowest_tls("TLS 1.0")),
        "TLSV1_1" | "4" | "770" => Err(lowest_tls("TLS 1.1")),
        "SSLV3" | "1" | "768" => Err(lowest_tls("SSL 3")),
        "SSLV2" | "0" => Err(lowest_tls("SSL 2")),
        "TLS_CLIENT" | "16" => {
            Err("TLS_CLIENT is for clients; a server's is TLS_SERVER".to_owned())
        }
        _ => Err("expected TLS (the default), TLS_SERVER, SSLv23, TLSv1_2, TLSv1_3 or a \
             ssl.PROTOCOL_ number (2, 17, 5)"
            .to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenSSL names of the TLS 1.2 suites a list chooses, in order.
    fn names(openssl: &str) -> Result<Vec<&'static str>, String> {
        let suites = suites(openssl)?;
        Ok(suites
            .iter()
            .filter_map(|s| TLS12.iter().find(|t| t.suite == s.suite()))
            .map(|t| t.name)
            .collect())
    }

    /// Short names for the table below: `E` ECDSA, `R` RSA; `128`, `256`, `C` ChaCha20.
    fn short(openssl: &str) -> Result<String, String> {
        let names = names(openssl)?;
        let short = names.iter().map(|n| {
            let auth = if n.contains("ECDSA") { "E" } else { "R" };
            let cipher = if n.contains("CHACHA") {
                "C"
            } else if n.contains("AES128") {
                "128"
            } else {
                "256"
            };
            format!("{auth}{cipher}")
        });
        Ok(short.collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn cipher_lists_choose_in_openssl_order() {
        let all = "E256 R256 EC RC E128 R128";
        let rows = [
            ("ALL", all),
            ("DEFAULT", all),
            ("HIGH:!aNULL:!MD5", all),
            ("ECDHE+AESGCM:!aNULL", "E256 R256 E128 R128"),
            ("ECDHE-RSA-AES128-GCM-SHA256", "R128"),
            ("ECDHE-RSA-AES128-GCM-SHA256:AES256", "R128 E256 R256"),
            ("AES128:AES256:@STRENGTH", "E256 R256 E128 R128"),
            ("CHACHA20:AES128:AES256:@STRENGTH", "EC RC E256 R256 E128 R128"),
            ("AES:!AES128:AES128", "E256 R256"),
            ("AES:-AES128:AES128", "E256 R256 E128 R128"),
            ("ALL:+aRSA", "E256 EC E128 R256 RC R128"),
            ("ALL:-ECDSA:ALL", "R256 RC R128 E256 EC E128"),
            ("ALL:+ECDSA+AES256", "R256 EC RC E128 R128 E256"),
            ("aRSA+AES256:aECDSA", "R256 E256 EC E128"),
            ("@SECLEVEL=4:ALL", "E256 R256 EC RC"),
            ("ALL@STRENGTH", all),
            ("AES128+aECDSA", "E128"),
            ("ALL, AES", all),
            ("FOO:AES", "E256 R256 E128 R128"),
            ("DEFAULT:!ECDSA", "R256 RC R128"),
            ("SUITEB128", "E128 E256"),
            ("AES:SUITEB128", "E256 R256 E128 R128"),
            ("AES256-SHA:ECDHE-ECDSA-CHACHA20-POLY1305", "EC"),
        ];
        for (list, want) in rows {
            assert_eq!(short(list).as_deref(), Ok(want), "{list:?}");
        }
    }

    #[test]
    fn tls13_suites_are_always_on() {
        let suites = suites("ECDHE-RSA-AES128-GCM-SHA256").unwrap();
        let tls13 = suites.iter().filter(|s| s.version() == &rustls::version::TLS13).count();
        assert_eq!(tls13, 3);
        assert_eq!(suites.len(), 4);
    }

    #[test]
    fn lists_that_choose_nothing_rustls_has_are_refused() {
        let rows = [
            ("AES256-SHA", "AES256-SHA is not one of them"),
            ("kRSA:DHE+AES", "kRSA, DHE+AES is not one of them"),
            ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384 is a TLS 1.3 suite"),
            ("", "chooses no TLS 1.2 cipher rustls has"),
            ("ALL:!ALL", "chooses no TLS 1.2 cipher rustls has"),
            ("aes128", "aes128 is not one of them"),
            ("@FOO:ALL", "unknown command @FOO"),
            ("@SECLEVEL=9:ALL", "unknown command @SECLEVEL=9"),
            ("AES128+", "a cipher name is missing at the end"),
            ("!", "a cipher name is missing at the end"),
            ("AES(128)", "expected a cipher name at \"(128)\""),
        ];
        for (list, want) in rows {
            let error = suites(list).expect_err(list);
            assert!(error.contains(want), "{list:?}: {error}");
            assert!(!error.contains('\n'), "{list:?}: one line");
        }
    }

    #[test]
    fn words_left_out_are_named() {
        let selection =
            select("ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:!aNULL").unwrap();
        assert_eq!(selection.unmapped, ["DHE-RSA-AES128-GCM-SHA256"]);
        assert!(select("HIGH:!aNULL:!MD5").unwrap().unmapped.is_empty());
    }

    /// The real OpenSSL's choice for each list, reduced to rustls's six suites, is ours.
    #[test]
    fn agrees_with_openssl() {
        let lists = [
            "ALL", "DEFAULT", "HIGH:!aNULL:!MD5", "ECDHE+AESGCM:!aNULL", "ECDH+AESGCM:ECDH+CHACHA20",
            "ECDHE+AESGCM:ECDHE+CHACHA20:!ECDSA", "AES128:AES256:@STRENGTH", "ALL:+aRSA",
            "ALL:-ECDSA:ALL", "aRSA+AES256:aECDSA", "kECDHE:!CHACHA20:CHACHA20", "FIPS",
            "ALL:-AES256:+AES128", "CHACHA20:ALL:@STRENGTH", "AES:+AES128",
            // Mozilla's intermediate list and Python 3.11's default.
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384",
            "@SECLEVEL=2:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM",
            "@SECLEVEL=4:ALL", "SUITEB128", "SUITEB192", "AES256-SHA:ECDHE-RSA-AES128-GCM-SHA256",
        ];
        let Ok(version) = std::process::Command::new("openssl").arg("version").output() else {
            assert!(std::env::var_os("CI").is_none(), "openssl is missing under CI");
            eprintln!("skipped: no openssl command");
            return;
        };
        assert!(version.status.success());
        for list in lists {
            let out = std::process::Command::new("openssl")
                .args(["ciphers", "-tls1_2", "-s", list])
                .output()
                .unwrap();
            let theirs = String::from_utf8_lossy(&out.stdout);
            let theirs: Vec<&str> = theirs
                .trim()
                .split(':')
                .filter(|name| TLS12.iter().any(|s| s.name == *name))
                .collect();
            assert_eq!(names(list).unwrap(), theirs, "{list:?}");
        }
    }

    /// Lists made of aliases, names, prefixes and separators (a fixed pseudo-random draw):
    /// what Python's `SSLContext.set_ciphers`, gunicorn's own call, chooses of the six is
    /// what we choose, and we refuse exactly the lists it chooses none of the six from.
    #[test]
    fn agrees_with_pythons_set_ciphers() {
        const WORDS: [&str; 24] = [
            "ALL",
            "HIGH",
            "DEFAULT",
            "ECDHE",
            "ECDH",
            "kECDHE",
            "aRSA",
            "aECDSA",
            "AES",
            "AES128",
            "AES256",
            "AESGCM",
            "CHACHA20",
            "FIPS",
            "kRSA",
            "DHE",
            "SHA256",
            "CBC",
            "aNULL",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-CHACHA20-POLY1305",
            "AES256-SHA",
            "FOO",
        ];
        let mut seed: u64 = 12;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        let mut lists = Vec::new();
        for _ in 0..300 {
            let rules: Vec<String> = (0..1 + next(5))
                .map(|_| match next(12) {
                    0 => "@STRENGTH".to_owned(),
                    k => {
                        let prefix = ["", "", "", "!", "-", "+"][next(6)];
                        let words = (0..1 + usize::from(k > 9)).map(|_| WORDS[next(WORDS.len())]);
                        format!("{prefix}{}", words.collect::<Vec<_>>().join("+"))
                    }
                })
                .collect();
            lists.push(rules.join([":", ",", " "][next(3)]));
        }
        let script = "import ssl, sys\n\
            for line in sys.stdin.read().splitlines():\n\
            \x20   c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
            \x20   try:\n\
            \x20       c.set_ciphers(line)\n\
            \x20       print(':'.join(x['name'] for x in c.get_ciphers()))\n\
            \x20   except ssl.SSLError:\n\
            \x20       print('')\n";
        let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let mut child = std::process::Command::new(python)
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let input = lists.join("\n");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let theirs = String::from_utf8(out.stdout).unwrap();
        assert_eq!(theirs.lines().count(), lists.len());
        for (list, chosen) in lists.iter().zip(theirs.lines()) {
            let theirs: Vec<&str> =
                chosen.split(':').filter(|n| TLS12.iter().any(|s| s.name == *n)).collect();
            match names(list) {
                Ok(ours) => assert_eq!(ours, theirs, "{list:?}"),
                Err(e) => {
                    assert!(theirs.is_empty(), "{list:?}: we refuse ({e}), Python chose {theirs:?}")
                }
            }
        }
    }

    #[test]
    fn ssl_versions() {
        let tls12_and_13 =
            ["TLS", "2", "SSLv23", "TLS_SERVER", "17", "PROTOCOL_TLS", "TLSv1_2", "5", "tlsv1.2"];
        for value in tls12_and_13 {
            assert_eq!(versions(value).unwrap().len(), 2, "{value}");
        }
        for value in ["TLSv1_3", "772", "TLSv1.3"] {
            assert_eq!(versions(value).unwrap(), [&rustls::version::TLS13], "{value}");
        }
        let refused = [
            ("TLSv1", "TLS 1.0 is older than rustls goes"),
            ("3", "TLS 1.0"),
            ("TLSv1_1", "TLS 1.1"),
            ("4", "TLS 1.1"),
            ("SSLv3", "SSL 3"),
            ("TLS_CLIENT", "for clients"),
            ("16", "for clients"),
            ("TLSv9", "expected TLS (the default)"),
            ("", "expected TLS"),
        ];
        for (value, want) in refused {
            let error = versions(value).expect_err(value);
            assert!(error.contains(want), "{value}: {error}");
        }
    }
}
