//! A test hook: the app makes Rust panic on its own thread once it returns, so the tests
//! can show that a panic is contained (the request fails; the worker, or its thread pool,
//! carries on).
//!
//! A function the app calls, not a request header or an environment variable: nothing
//! from the network can reach it, and only the app's own code can arm it, for the request
//! that code is running. That code can already end its worker in many ways (`os._exit`),
//! so shipping the hook in the release build (the one pytest runs) adds no risk.

use std::cell::Cell;

use pyo3::prelude::*;

thread_local! {
    /// Set by the app on the thread that runs it; taken when the app returns.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// Set by the app for a panic outside any request: taken by the worker's loop.
    static OUTSIDE: Cell<bool> = const { Cell::new(false) };
}

/// `ferricorn._ferricorn._panic_after_app()`: the server panics on this thread once the
/// app returns from the current request. `outside_request=True`: the worker's loop
/// panics at the end of its turn instead, outside any request (the panic no request can
/// contain, which ends the worker with its exit code).
#[pyfunction(name = "_panic_after_app")]
#[pyo3(signature = (outside_request = false))]
pub fn panic_after_app(outside_request: bool) {
    match outside_request {
        true => OUTSIDE.set(true),
        false => ARMED.set(true),
    }
}

/// Called by a worker's loop between turns, outside any request.
pub(crate) fn panic_outside_request_if_armed() {
    if OUTSIDE.take() {
        panic!("test panic requested by the app outside a request");
    }
}

/// Called by the bridge after the app returned.
pub(crate) fn panic_if_armed() {
    if ARMED.take() {
        panic!("test panic requested by the app (ferricorn._ferricorn._panic_after_app)");
    }
}
