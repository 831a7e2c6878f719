//! The policy file parser.
//!
//! Invariants: nothing panics; an accepted policy names every tool, and its
//! own JSON is accepted again and prints the same.
#![no_main]

use std::sync::OnceLock;

use execlayer::policy::{PolicyFile, Risk};
use libfuzzer_sys::fuzz_target;

fn risks() -> &'static [(&'static str, Risk)] {
    static RISKS: OnceLock<Vec<(&'static str, Risk)>> = OnceLock::new();
    RISKS.get_or_init(|| execlayer::tools::Registry::builtin().risks())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(policy) = PolicyFile::parse(text, "fuzz.json", risks()) else { return };
    for (name, _) in risks() {
        assert!(policy.tools.contains_key(*name), "{name} missing from an accepted policy");
    }
    let printed = policy.to_pretty_json();
    let again = PolicyFile::parse(&printed, "fuzz.json", risks())
        .unwrap_or_else(|e| panic!("a policy's own JSON is refused: {e}\n{printed}"));
    assert_eq!(again.to_pretty_json(), printed);
});
