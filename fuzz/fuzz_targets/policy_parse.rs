//! The policy file parser.
//!
//! Invariants: nothing panics; an accepted policy names every tool, and its
//! own JSON is accepted again and prints the same.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::policy_parse(data));
