//! The patch parser and placer on anything a model might write (unified
//! diffs, the lenient forms, the Codex envelope). Input: `base NUL patch`.
//!
//! Invariants: nothing panics; a patch that places re-diffs to itself (the
//! diff of base → result parses, places on base and gives the same result);
//! and the diff of any two texts turns the first into the second.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::patch(data));
