//! The command checker with its quoting. Input: `allowlist NEWLINE command`
//! (no newline: the default allowlist).
//!
//! Invariants: nothing panics; an accepted command's argv starts with an
//! allowlist entry word for word; it held no shell operator; no word starts
//! with `~`; git gets no option before its subcommand.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::command_check(data));
