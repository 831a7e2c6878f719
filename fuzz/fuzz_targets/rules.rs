//! The rules parser and their verdicts.
//!
//! Invariants: nothing panics; the set's verdict is the strictest of the
//! rules that match alone (ties to the first); path rules match several paths
//! only when they match each; command rules match the argvs that start with
//! their words (so adding a rule never loosens a verdict).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::rules(data));
