//! The patch parser and placer on anything a model might write (unified
//! diffs, the lenient forms, the Codex envelope). Input: `base NUL patch`.
//!
//! Invariants: nothing panics; a patch that places re-diffs to itself (the
//! diff of base → result parses, places on base and gives the same result);
//! and the diff of any two texts turns the first into the second.
#![no_main]

use execlayer::patch::{diff, parse, place};
use libfuzzer_sys::fuzz_target;

fn replay(base: &str, result: &str) {
    let (d, _, _) = diff::unified("f.txt", base, result);
    if d.is_empty() {
        assert_eq!(base, result, "an empty diff between different texts");
        return;
    }
    let files = parse::parse(&d).unwrap_or_else(|e| panic!("our own diff does not parse: {e}\n{d}"));
    assert_eq!(files.len(), 1, "{d}");
    let (replayed, _) = place::apply(base, &files[0].hunks, "f.txt")
        .unwrap_or_else(|e| panic!("our own diff does not place: {e:?}\n{d}"));
    assert_eq!(replayed, result, "our own diff places to another text\n{d}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (base, patch) = text.split_once('\0').unwrap_or(("", text));
    if let Ok(files) = parse::parse(patch) {
        for f in files.iter().filter(|f| !f.hunks.is_empty()) {
            if let Ok((result, _)) = place::apply(base, &f.hunks, "f.txt") {
                replay(base, &result);
            }
        }
    }
    replay(base, patch);
});
