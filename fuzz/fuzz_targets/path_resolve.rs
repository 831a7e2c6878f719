//! The path resolver against a workspace holding links that point outside,
//! inside, nowhere and in a loop, and a `.git` folder.
//!
//! Invariants: nothing panics; a resolved path is inside the root, also once
//! the file system resolves it; a path resolved for writing has no `.git`
//! component (in any letter case).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::path_resolve(data));
