//! Replays the fuzz targets' committed inputs on stable, so `cargo test -p ferricorn-http`
//! checks them without nightly: fuzz/seeds (the gunicorn corpus, issue 8's inputs and the
//! encoder's hand-written responses), fuzz/corpus (what `make fuzz` found worth keeping,
//! minimized) and fuzz/regressions (inputs that once failed). Each input goes through the
//! same function as its `cargo fuzz` target.

use std::fs;
use std::io;
use std::panic;
use std::path::Path;

use ferricorn_http::fuzzing;

const DIRS: [&str; 3] = ["seeds", "corpus", "regressions"];

/// Runs `target` on every file under fuzz/<dir>/<name>/; a failure names the file.
fn replay(name: &str, target: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    let mut failed = Vec::new();
    for dir in DIRS {
        let Ok(entries) = fs::read_dir(root.join(dir).join(name)) else { continue };
        let mut paths: Vec<_> = entries.map(|e| e.expect("corpus entry").path()).collect();
        paths.sort();
        for path in paths {
            let data = match fs::read(&path) {
                Ok(data) => data,
                // A `make fuzz` running meanwhile replaces inputs it has reduced.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            if panic::catch_unwind(|| target(&data)).is_err() {
                failed.push(path.display().to_string());
            }
            replayed += 1;
        }
    }
    assert!(failed.is_empty(), "{name}: {} of {replayed} inputs failed: {failed:#?}", failed.len());
    assert!(replayed > 0, "{name}: no inputs under fuzz/*/{name}");
}

#[test]
fn head_corpus() {
    replay("head", fuzzing::head);
}

#[test]
fn chunked_corpus() {
    replay("chunked", fuzzing::chunked);
}

#[test]
fn split_corpus() {
    replay("split", fuzzing::split);
}

#[test]
fn encode_corpus() {
    replay("encode", fuzzing::encode);
}

#[test]
fn proxy_corpus() {
    replay("proxy", fuzzing::proxy);
}

#[test]
fn uwsgi_corpus() {
    replay("uwsgi", fuzzing::uwsgi);
}

#[test]
fn websocket_corpus() {
    replay("websocket", fuzzing::websocket);
}

#[test]
fn handshake_corpus() {
    replay("handshake", fuzzing::handshake);
}
