//! The fuzz targets' checks, shared by the libFuzzer targets
//! (`fuzz/fuzz_targets/*.rs`) and the stable replay of the kept corpus and
//! regressions (`tests/suite/fuzz_corpus.rs`). Each takes the raw input and
//! panics when an invariant breaks.
#![allow(dead_code)]

use execlayer::command::{check_command, has_metachar};
use execlayer::patch::{diff, parse, place};
use execlayer::policy::{PolicyFile, Risk, Rule, RuleDecision, RuleSet, Subject};
use execlayer::settings::{DEFAULT_SHELL_ALLOWLIST, parse_allowlist};
use execlayer::tools::edit_file::{Edit, apply_edit};
use execlayer::workspace::{Access, Workspace};
use rmcp::RoleServer;
use rmcp::transport::async_rw::AsyncRwTransport;
use std::path::PathBuf;
use std::sync::OnceLock;

// --- patch
// The patch parser and placer on anything a model might write (unified
// diffs, the lenient forms, the Codex envelope). Input: `base NUL patch`.
//
// Invariants: nothing panics; a patch that places re-diffs to itself (the
// diff of base → result parses, places on base and gives the same result);
// and the diff of any two texts (without CR) turns the first into the second.
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

pub fn patch(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (base, patch) = text.split_once('\0').unwrap_or(("", text));
    if let Ok(files) = parse::parse(patch) {
        for f in files.iter().filter(|f| !f.hunks.is_empty()) {
            if let Ok((result, _)) = place::apply(base, &f.hunks, "f.txt") {
                replay(base, &result);
            }
        }
    }
    // The placer writes added lines in the file's line ending (a CRLF file
    // patched with LF lines stays CRLF), so a change of line endings is not
    // a diff it replays as is: texts with CR are left to the check above.
    if !base.contains('\r') && !patch.contains('\r') {
        replay(base, patch);
    }
}

// --- edit_match
// The `edit_file` matcher. Input: `file NUL old_string NUL new_string [NUL 1]`
// (a trailing `1` asks for replace_all).
//
// Invariants: nothing panics; an accepted edit replaced at least one match,
// exactly one unless replace_all; where old_string is in the file as given,
// the count is its number of matches and the length changes by exactly that
// many replacements; a unique match is never refused.
pub fn edit_match(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(4, '\0');
    let (Some(file), Some(old), Some(new)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let replace_all = parts.next().is_some_and(|f| f.starts_with('1'));
    let edit = Edit {
        path: None,
        old_string: old.to_owned(),
        new_string: new.to_owned(),
        replace_all,
    };
    let matches = if old.is_empty() { 0 } else { file.matches(old).count() };
    match apply_edit(file, &edit, "f.txt", "the edit") {
        Ok((out, n)) => {
            assert!(!old.is_empty() && old != new, "a no-op edit was accepted");
            assert!(n >= 1);
            if !replace_all {
                assert_eq!(n, 1, "several replaced without replace_all");
            }
            if matches > 0 {
                assert_eq!(n, matches);
                // A CRLF file keeps CRLF: new_string's line breaks are written as CRLF.
                let crlf_file = file.split_inclusive('\n').next().is_some_and(|l| l.ends_with("\r\n"));
                let new_len = if crlf_file {
                    new.replace("\r\n", "\n").replace('\n', "\r\n").len()
                } else {
                    new.len()
                };
                let want = file.len() as i64 + n as i64 * (new_len as i64 - old.len() as i64);
                assert_eq!(out.len() as i64, want);
            }
        }
        Err(msg) => {
            assert!(!msg.is_empty());
            assert!(
                old.is_empty() || old == new || matches != 1,
                "a unique match was refused: {msg}"
            );
        }
    }
}

// --- path_resolve
// The path resolver against a workspace holding links that point outside,
// inside, nowhere and in a loop, and a `.git` folder.
//
// Invariants: nothing panics; a resolved path is inside the root, also once
// the file system resolves it; a path resolved for writing has no `.git`
// component (in any letter case).
fn workspace() -> &'static (PathBuf, Workspace) {
    static WS: OnceLock<(PathBuf, Workspace)> = OnceLock::new();
    WS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let dir = dir.canonicalize().expect("canonical");
        let root = dir.join("ws");
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::create_dir_all(root.join(".git/hooks")).unwrap();
        std::fs::create_dir_all(dir.join("ws2")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(dir.join("outside.txt"), "secret").unwrap();
        let link = |to: &str, at: &str| std::os::unix::fs::symlink(to, root.join(at)).unwrap();
        link(dir.join("outside.txt").to_str().unwrap(), "link_out");
        link("../ws2", "link_sibling");
        link("src", "link_in");
        link("src/deep/../../..", "link_up");
        link("missing/../../outside.txt", "dangling");
        link("loop_b", "loop_a");
        link("loop_a", "loop_b");
        link(".git", "g");
        let ws = Workspace::new(&root).expect("workspace");
        (root, ws)
    })
}

pub fn path_resolve(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let (root, ws) = workspace();
    for access in [Access::Read, Access::Write] {
        let Ok(p) = ws.resolve(raw, access) else { continue };
        let physical = p.physical();
        assert!(
            physical.starts_with(root),
            "{raw:?} resolved outside: {}",
            physical.display()
        );
        if let Ok(real) = std::fs::canonicalize(physical) {
            assert!(real.starts_with(root), "{raw:?} leads outside: {}", real.display());
        }
        if access == Access::Write {
            let inside = physical.strip_prefix(root).unwrap();
            assert!(
                !inside
                    .components()
                    .any(|c| c.as_os_str().to_string_lossy().eq_ignore_ascii_case(".git")),
                "{raw:?} writable inside .git: {}",
                physical.display()
            );
        }
    }
}

// --- command_check
// The command checker with its quoting. Input: `allowlist NEWLINE command`
// (no newline: the default allowlist).
//
// Invariants: nothing panics; an accepted command's argv starts with an
// allowlist entry word for word; it held no unquoted shell operator (nor an
// unquoted `~` or `#` starting a word; quoted, they are literal); git gets no
// option before its subcommand.
pub fn command_check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (list, command) = text.split_once('\n').unwrap_or((DEFAULT_SHELL_ALLOWLIST, text));
    let Ok(allowlist) = parse_allowlist(list) else { return };
    let Ok(argv) = check_command(command, &allowlist) else {
        return;
    };
    assert!(
        allowlist
            .iter()
            .any(|rule| argv.len() >= rule.len() && argv[..rule.len()] == rule[..]),
        "{command:?} accepted as {argv:?}, which starts with no allowlist entry"
    );
    if let Some(at) = unquoted_operator(command) {
        panic!("{command:?} with an unquoted shell operator at byte {at} was accepted");
    }
    if argv[0] == "git" {
        assert!(!argv.get(1).is_some_and(|a| a.starts_with('-')), "{argv:?}");
    }
}

/// The byte offset of the first character outside quotes that a shell would
/// treat as an operator (an oracle written apart from `command::split`:
/// quotes are tracked, nothing else is parsed). Inside quotes, every character
/// is literal.
fn unquoted_operator(command: &str) -> Option<usize> {
    #[derive(PartialEq)]
    enum State {
        Plain,
        Single,
        Double,
    }
    let mut state = State::Plain;
    let mut word_start = true;
    let mut chars = command.char_indices();
    while let Some((at, c)) = chars.next() {
        match state {
            State::Single => {
                if c == '\'' {
                    state = State::Plain;
                }
            }
            State::Double => match c {
                '"' => state = State::Plain,
                '\\' => {
                    chars.next();
                }
                _ => {}
            },
            State::Plain => {
                match c {
                    '\'' => state = State::Single,
                    '"' => state = State::Double,
                    '\\' => {
                        chars.next();
                    }
                    ' ' | '\t' => {
                        word_start = true;
                        continue;
                    }
                    '#' | '~' if word_start => return Some(at),
                    '#' | '~' => {}
                    _ if has_metachar(c.encode_utf8(&mut [0; 4])) => return Some(at),
                    _ => {}
                }
                word_start = false;
            }
        }
    }
    None
}

// --- policy_parse
// The policy file parser.
//
// Invariants: nothing panics; an accepted policy names every tool, and its
// own JSON is accepted again and prints the same.
fn risks() -> &'static [(&'static str, Risk)] {
    static RISKS: OnceLock<Vec<(&'static str, Risk)>> = OnceLock::new();
    RISKS.get_or_init(|| execlayer::tools::Registry::builtin().risks())
}

pub fn policy_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(policy) = PolicyFile::parse(text, "fuzz.json", risks()) else {
        return;
    };
    for (name, _) in risks() {
        assert!(
            policy.tools.contains_key(*name),
            "{name} missing from an accepted policy"
        );
    }
    let printed = policy.to_pretty_json();
    let again = PolicyFile::parse(&printed, "fuzz.json", risks())
        .unwrap_or_else(|e| panic!("a policy's own JSON is refused: {e}\n{printed}"));
    assert_eq!(again.to_pretty_json(), printed);
}

// --- jsonrpc_frame
// The stdio JSON-RPC framing: rmcp's `AsyncRwTransport` (what
// `serve_stream` reads stdio with), given the bytes a client might write.
// Input: raw bytes; the first byte picks where to cut them in two writes.
//
// Invariants: nothing panics; what the server receives, and what it answers
// on its own (an Invalid Request error for well-formed JSON that is no
// message), does not depend on how the bytes arrive (in one write, or in two
// with the server reading in between); every received message, written back
// out alone, is received as itself.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// What the server receives from `chunks` written one after the other, and
/// the bytes it writes back by itself.
fn receive(chunks: &[&[u8]]) -> (Vec<String>, Vec<u8>) {
    use rmcp::transport::Transport;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    runtime().block_on(async {
        let (mut client, server_in) = tokio::io::duplex(1 << 20);
        let (server_out, mut answers) = tokio::io::duplex(1 << 20);
        let mut transport = AsyncRwTransport::<RoleServer, _, _>::new(server_in, server_out);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for chunk in chunks {
                client.write_all(&chunk).await.expect("the pipe takes the input");
                // Let the server read what has arrived before the rest comes.
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            }
        });
        let mut received = Vec::new();
        while let Some(m) = transport.receive().await {
            received.push(serde_json::to_string(&m).expect("a message serializes"));
        }
        writer.await.expect("the writer finishes");
        drop(transport);
        let mut written = Vec::new();
        answers.read_to_end(&mut written).await.expect("the answers are read");
        (received, written)
    })
}

pub fn jsonrpc_frame(data: &[u8]) {
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let whole = receive(&[data]);
    let split = receive(&[&data[..cut], &data[cut..]]);
    assert_eq!(whole, split, "framing depends on how the bytes arrive");
    for message in whole.0 {
        let again = receive(&[format!("{message}\n").as_bytes()]);
        assert_eq!(
            again,
            (vec![message.clone()], Vec::new()),
            "a message does not survive a round trip"
        );
    }
}

// --- rules
// The rules parser and their verdicts. Input: a JSON array of rules, a NUL,
// then one path per line (the same lines, split on spaces, are a command).
//
// Invariants: nothing panics; the set's verdict is what the rules say one by
// one (of the rules that match alone, the strictest wins, ties to the first);
// a path rule matches several paths only when it matches each of them; a
// command rule matches exactly the argvs that start with its words (so adding
// a rule can never loosen a verdict); an accepted set's own JSON is accepted
// again and gives the same verdicts.
pub fn rules(data: &[u8]) {
    let Some(cut) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let (Ok(json), Ok(tail)) = (std::str::from_utf8(&data[..cut]), std::str::from_utf8(&data[cut + 1..])) else {
        return;
    };
    let Ok(list) = serde_json::from_str::<Vec<Rule>>(json) else {
        return;
    };
    if list.len() > 6 {
        return;
    }
    let Ok(set) = RuleSet::new(list.clone()) else { return };
    let paths: Vec<String> = tail
        .lines()
        .filter(|l| !l.is_empty())
        .take(8)
        .map(String::from)
        .collect();
    let argv: Vec<String> = tail.split_whitespace().take(16).map(String::from).collect();
    let subjects = [
        Subject::paths(Ok::<_, ()>(paths.clone())),
        Subject::argv(argv.clone()),
        Subject::paths(Err::<Vec<String>, _>(())),
    ];
    let tools = [
        "shell_exec",
        "filesystem_write",
        "apply_patch",
        "edit_file",
        "git_status",
    ];
    let alone: Vec<RuleSet> = list
        .iter()
        .map(|r| {
            RuleSet::new(vec![r.clone()]).unwrap_or_else(|e| panic!("a rule of an accepted set is refused alone: {e}"))
        })
        .collect();
    for tool in tools {
        for subject in &subjects {
            let verdict = set.evaluate(tool, subject);
            // The strictest of the rules that match alone, the first on ties.
            let mut expected: Option<(usize, RuleDecision)> = None;
            for (i, one) in alone.iter().enumerate() {
                if let Some(v) = one.evaluate(tool, subject) {
                    assert_eq!(v.index, 0);
                    assert_eq!(v.decision, list[i].effective());
                    if expected.is_none_or(|(_, d)| v.decision > d) {
                        expected = Some((i, v.decision));
                    }
                }
            }
            assert_eq!(
                verdict.as_ref().map(|v| (v.index, v.decision)),
                expected,
                "{tool} {subject:?}"
            );
            if let Some(v) = &verdict {
                assert_eq!(v.rule, list[v.index]);
            }
            if subject.unresolved {
                assert!(
                    verdict.as_ref().is_none_or(|v| list[v.index].path.is_none()),
                    "a path rule matched an unresolved path"
                );
            }
        }
        for (i, one) in alone.iter().enumerate() {
            let rule = &list[i];
            if let Some(words) = &rule.command
                && rule.tool == tool
            {
                let Ok(Some(words)) = execlayer::command::parse_entry(words) else {
                    panic!("an accepted command rule does not split: {words:?}")
                };
                let starts = argv.len() >= words.len() && words.iter().zip(&argv).all(|(w, a)| w == a);
                assert_eq!(
                    one.evaluate(tool, &subjects[1]).is_some(),
                    starts,
                    "command rule {words:?} on {argv:?}"
                );
            }
            if rule.path.is_some() && rule.tool == tool && !paths.is_empty() {
                let each = paths.iter().all(|p| {
                    one.evaluate(tool, &Subject::paths(Ok::<_, ()>(vec![p.clone()])))
                        .is_some()
                });
                assert_eq!(
                    one.evaluate(tool, &subjects[0]).is_some(),
                    each,
                    "path rule {:?} on {paths:?}",
                    rule.path
                );
            }
        }
    }
    let printed = serde_json::to_string(&list).expect("rules serialize");
    let again: Vec<Rule> = serde_json::from_str(&printed).unwrap_or_else(|e| panic!("rules' own JSON is refused: {e}"));
    assert_eq!(again, list);
}
