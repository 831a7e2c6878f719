//! The `edit_file` matcher. Input: `file NUL old_string NUL new_string [NUL 1]`
//! (a trailing `1` asks for replace_all).
//!
//! Invariants: nothing panics; an accepted edit replaced at least one match,
//! exactly one unless replace_all; where old_string is in the file as given,
//! the count is its number of matches and the length changes by exactly that
//! many replacements; a unique match is never refused.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::edit_match(data));
