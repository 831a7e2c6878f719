//! Fuzzing on the stable toolchain: each target is fed its corpus
//! (`tests/fuzz/corpus/<target>/`) and then mutations of it and random input
//! from proptest, with a fixed seed. The property is always "no panic, and the
//! defence holds". `EXECLAYER_FUZZ_CASES` sets the cases per target (256 by
//! default; run e.g. 200000 by hand).

use std::path::{Path, PathBuf};

use execlayer::command::{CommandError, allowlist_match, check, check_command};
use execlayer::settings::parse_allowlist;
use execlayer::workspace::{Access, Workspace};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn cases() -> u32 {
    std::env::var("EXECLAYER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn runner() -> TestRunner {
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]))
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Corpus entries with random byte edits, or plain random text.
fn inputs(target: &str, alphabet: &'static str) -> BoxedStrategy<String> {
    let seeds = corpus(target);
    let mutated = (
        prop::sample::select(seeds),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..8),
    )
        .prop_map(|(mut seed, edits)| {
            for (at, byte, kind) in edits {
                let i = if seed.is_empty() { 0 } else { at.index(seed.len()) };
                match kind {
                    0 if !seed.is_empty() => seed[i] = byte,
                    1 => seed.insert(i, byte),
                    _ if !seed.is_empty() => {
                        seed.remove(i);
                    }
                    _ => seed.push(byte),
                }
            }
            String::from_utf8_lossy(&seed).into_owned()
        });
    let random = prop::string::string_regex(alphabet).expect("regex");
    prop_oneof![mutated, random].boxed()
}

fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join("a.txt"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(root.join("src/lib.rs"), "fn a() {}\r\nfn b() {}\r\n").unwrap();
    std::fs::write(dir.path().join("outside.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.txt"), root.join("link_out")).unwrap();
    std::os::unix::fs::symlink("src", root.join("link_in")).unwrap();
    let ws = Workspace::new(&root).unwrap();
    (dir, ws)
}

#[test]
fn fuzz_patch_parser_and_planner() {
    let (dir, ws) = workspace();
    let before = snapshot(dir.path());
    let executed = std::cell::Cell::new(0u32);
    for seed in corpus("patch") {
        let _ = execlayer::patch::plan(&ws, &String::from_utf8_lossy(&seed));
    }
    runner()
        .run(
            &inputs(
                "patch",
                r"(--- a/a\.txt\n\+\+\+ b/a\.txt\n)?(@@ -[0-9],[0-9] \+[0-9],[0-9] @@\n)?([ +-\\][a-z ]{0,6}\n){0,6}",
            ),
            |text| {
                executed.set(executed.get() + 1);
                if let Ok(plan) = execlayer::patch::plan(&ws, &text) {
                    for f in &plan.files {
                        let resolved = ws.resolve(&f.path, Access::Write);
                        prop_assert!(resolved.is_ok(), "planned a path the workspace refuses: {}", f.path);
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(snapshot(dir.path()), before, "planning never writes");
    eprintln!("fuzz_patch: {} generated inputs", executed.get());
}

#[test]
fn fuzz_path_resolver() {
    let (dir, ws) = workspace();
    for seed in corpus("path") {
        let _ = ws.resolve(&String::from_utf8_lossy(&seed), Access::Write);
    }
    let root = ws.root().to_path_buf();
    runner()
        .run(
            &inputs(
                "path",
                r"(\.\.|\.|a|src|link_out|link_in|\.git|\.GIT|/|//|\\|%2e|\x{200d}|\x{0}|lib\.rs|outside\.txt){0,8}",
            ),
            |text| {
                for access in [Access::Read, Access::Write] {
                    if let Ok(p) = ws.resolve(&text, access) {
                        prop_assert!(
                            p.physical().starts_with(&root),
                            "{text:?} escaped to {}",
                            p.physical().display()
                        );
                        if access == Access::Write {
                            prop_assert!(
                                !p.relative()
                                    .iter()
                                    .any(|c| c.to_string_lossy().eq_ignore_ascii_case(".git")),
                                "{text:?} reaches .git for writing"
                            );
                        }
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    drop(dir);
}

#[test]
fn fuzz_command_splitter_and_allowlist() {
    let rules = parse_allowlist("git status,git diff,git log,cargo test,ls").unwrap();
    for seed in corpus("command") {
        let _ = check_command(&String::from_utf8_lossy(&seed), &rules);
    }
    runner()
        .run(&inputs("command", r#"(git|ls|cargo|status|diff|log|test|-c|--output=x|"|'|\\| |;|&|\||\$|`|>|<|\(|\)|\*|~|\n|=|-C|/usr/bin/git){0,8}"#), |text| {
            match check(&text, &rules) {
                Ok(c) => {
                    let argv = c.argv;
                    prop_assert!(!argv.is_empty());
                    prop_assert_eq!(allowlist_match(&argv, &rules), Some(c.entry.as_slice()));
                    prop_assert!(argv.starts_with(&c.entry), "accepted {argv:?} outside the allowlist");
                    // Operators survive only as text inside quotes (or escaped): never unquoted.
                    let unquoted = unquoted_text(&text);
                    prop_assert!(
                        !unquoted.contains([';', '|', '&', '$', '`', '>', '<', '(', ')', '*', '\n']),
                        "accepted a command with an unquoted operator: {text:?}"
                    );
                    if argv[0] == "git" {
                        prop_assert!(!argv[1].starts_with('-'), "accepted a global git option: {argv:?}");
                        prop_assert!(!argv.iter().any(|a| a.starts_with("--output")), "accepted --output: {argv:?}");
                    }
                }
                Err(CommandError::Operator { operator, .. }) => {
                    prop_assert!(!operator.is_empty());
                }
                Err(_) => {}
            }
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn fuzz_jsonrpc_input_of_the_stdio_transport() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let env = crate::common::TestEnv::new();
    let core = env.core();
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let (r, w) = tokio::io::split(server_io);
        let _ = execlayer::server::serve_stream(&core, execlayer::audit::Door::Stdio, r, w).await;
    });
    let (read, mut write) = tokio::io::split(client_io);
    let mut lines = BufReader::new(read).lines();
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"fuzz","version":"0"}}}"#;
    write.write_all(format!("{init}\n").as_bytes()).await.unwrap();
    let _ = lines.next_line().await.unwrap();
    write
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .await
        .unwrap();

    let mut inputs_list: Vec<String> = corpus("jsonrpc")
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let strategy = inputs(
        "jsonrpc",
        r#"(\{|\}|\[|\]|"jsonrpc"|"2\.0"|"id"|"method"|"params"|:|,|1|null|"tools/call"|"name"|"x"){0,12}"#,
    );
    let mut runner = runner();
    let cases = cases().min(2_000);
    for _ in 0..cases {
        inputs_list.push(strategy.new_tree(&mut runner).unwrap().current());
    }
    let mut survived = 0;
    for (i, input) in inputs_list.iter().enumerate() {
        let line = input.replace('\n', " ");
        write.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        let probe_id = 1_000_000 + i;
        write
            .write_all(format!("{{\"jsonrpc\":\"2.0\",\"id\":{probe_id},\"method\":\"tools/list\"}}\n").as_bytes())
            .await
            .unwrap();
        // Answers to the fuzz line may come first; the probe must be answered.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let next = tokio::time::timeout_at(deadline, lines.next_line()).await;
            let line = match next {
                Ok(Ok(Some(line))) => line,
                other => panic!("the server stopped answering after input {i} {input:?}: {other:?}"),
            };
            let value: serde_json::Value = serde_json::from_str(&line).expect("the server writes JSON lines");
            if value["id"] == probe_id {
                assert!(value["result"]["tools"].is_array());
                break;
            }
        }
        survived += 1;
    }
    eprintln!("fuzz_jsonrpc: {survived} inputs, the server answered after each");
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The characters of `text` outside quotes and not escaped by `\\`.
fn unquoted_text(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    let mut quote = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (None, '\\') => {
                chars.next();
            }
            (None, c) => out.push(c),
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
        }
    }
    out
}
