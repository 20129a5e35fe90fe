//! TLS with rustls: gunicorn's TLS settings in rustls's terms (`ciphers`, `client`).

pub mod ciphers;
pub mod client;
