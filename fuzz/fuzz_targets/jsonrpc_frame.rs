//! The stdio JSON-RPC framing (rmcp's line codec, with the messages a server
//! reads). Input: raw bytes; the first byte picks where to cut them in two.
//!
//! Invariants: nothing panics; what is decoded does not depend on how the
//! bytes arrive (whole, or in two reads); every decoded message, written
//! back out, decodes to itself.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::jsonrpc_frame(data));
