//! TLS. This file is the TLS-core helper's (settings, `rustls::ServerConfig`); here only
//! what `ktls.rs` needs to build on its own branch.

pub mod ktls;
