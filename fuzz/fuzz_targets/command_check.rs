//! The command checker with its quoting. Input: `allowlist NEWLINE command`
//! (no newline: the default allowlist).
//!
//! Invariants: nothing panics; an accepted command's argv starts with an
//! allowlist entry word for word; it held no shell operator; no word starts
//! with `~`; git gets no option before its subcommand.
#![no_main]

use execlayer::settings::{DEFAULT_SHELL_ALLOWLIST, parse_allowlist};
use execlayer::tools::shell_exec::{check_command, has_metachar};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (list, command) = text.split_once('\n').unwrap_or((DEFAULT_SHELL_ALLOWLIST, text));
    let Ok(allowlist) = parse_allowlist(list) else { return };
    let Ok(argv) = check_command(command, &allowlist) else { return };
    assert!(
        allowlist
            .iter()
            .any(|rule| argv.len() >= rule.len() && argv[..rule.len()] == rule[..]),
        "{command:?} accepted as {argv:?}, which starts with no allowlist entry"
    );
    assert!(!has_metachar(command), "{command:?} with a shell operator was accepted");
    assert!(argv.iter().all(|w| !w.starts_with('~')), "{argv:?}");
    if argv[0] == "git" {
        assert!(!argv.get(1).is_some_and(|a| a.starts_with('-')), "{argv:?}");
    }
});
