//! The stdio JSON-RPC framing (rmcp's `AsyncRwTransport`, as the server
//! reads stdio). Input: raw bytes; the first byte picks where to cut them in
//! two writes. Invariants: see `checks.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::jsonrpc_frame(data));
