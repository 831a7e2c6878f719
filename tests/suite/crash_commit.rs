//! Crash-atomic multi-file changes: the real binary is SIGKILLed at each
//! rename (and deletion) of a multi-file patch by the test hook
//! `EXECLAYER_TEST_CRASH_AT_RENAME=N`; after the next start every file is
//! as it was before the call, never some old and some new, and nothing of
//! the interrupted commit is left behind.

use std::collections::BTreeMap;
use std::process::Stdio;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::json;

use crate::common::*;

fn command(env: &TestEnv, crash_at: Option<usize>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_execlayer"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.vars.iter())
        .current_dir(env.dir.path());
    if let Some(n) = crash_at {
        cmd.env(execlayer::journal::CRASH_AT_RENAME_VAR, n.to_string());
    }
    cmd
}

async fn start(env: &TestEnv, crash_at: Option<usize>) -> Client {
    let (transport, _) = TokioChildProcess::builder(command(env, crash_at).configure(|_| {}))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn execlayer");
    client_config(ProtocolVersion::V_2025_11_25, Default::default())
        .serve(transport)
        .await
        .expect("initialize")
}

/// The workspace's files and their contents.
fn snapshot(env: &TestEnv) -> BTreeMap<String, String> {
    std::fs::read_dir(&env.ws)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap_or_default(),
            )
        })
        .collect()
}

struct Case {
    name: &'static str,
    before: &'static [(&'static str, &'static str)],
    patch: &'static str,
    after: &'static [(&'static str, &'static str)],
    /// Renames plus deletions.
    steps: usize,
}

const CASES: [Case; 2] = [
    Case {
        name: "three files modified",
        before: &[("a.txt", "a old\n"), ("b.txt", "b old\n"), ("c.txt", "c old\n")],
        patch: "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-a old\n+a new\n\
                --- a/b.txt\n+++ b/b.txt\n@@ -1 +1 @@\n-b old\n+b new\n\
                --- a/c.txt\n+++ b/c.txt\n@@ -1 +1 @@\n-c old\n+c new\n",
        after: &[("a.txt", "a new\n"), ("b.txt", "b new\n"), ("c.txt", "c new\n")],
        steps: 3,
    },
    Case {
        name: "one modified, one created, one deleted",
        before: &[("a.txt", "a old\n"), ("gone.txt", "doomed\n")],
        patch: "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-a old\n+a new\n\
                --- /dev/null\n+++ b/born.txt\n@@ -0,0 +1 @@\n+born\n\
                --- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-doomed\n",
        after: &[("a.txt", "a new\n"), ("born.txt", "born\n")],
        steps: 3,
    },
];

fn map(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// For each case and each step N (every rename and deletion, and one past
/// the last: all changed, journal not yet removed), the server is killed at
/// step N. Before the restart the workspace is caught mid-change (the kill is
/// real); after it every file is old again, nothing is left over, and the same
/// call then applies cleanly.
#[tokio::test]
async fn sigkill_at_each_rename_of_a_multi_file_patch_is_undone_at_the_next_start() {
    let mut outcomes = Vec::new();
    for case in &CASES {
        for n in 1..=case.steps + 1 {
            let env = TestEnv::new();
            for (f, text) in case.before {
                env.write(f, text);
            }
            let journal_dir = env.audit.parent().unwrap().join("journal");

            let client = start(&env, Some(n)).await;
            let args = json!({"patch": case.patch});
            let killed = client
                .call_tool(CallToolRequestParams::new("apply_patch").with_arguments(args.as_object().unwrap().clone()))
                .await;
            assert!(killed.is_err(), "{} step {n}: the call answered: {killed:?}", case.name);
            drop(client);

            // Caught mid-change: a journal is there, and after the first
            // step some files already hold their new content.
            let journals = std::fs::read_dir(&journal_dir).map(|d| d.count()).unwrap_or(0);
            assert_eq!(journals, 1, "{} step {n}: no journal left by the kill", case.name);
            let caught = snapshot(&env);
            let changed = case
                .after
                .iter()
                .filter(|(f, text)| caught.get(*f).map(String::as_str) == Some(*text))
                .count();
            if n > 1 {
                assert!(changed > 0, "{} step {n}: nothing had changed: {caught:?}", case.name);
            }

            // The next start undoes it.
            let client = start(&env, None).await;
            assert_eq!(
                snapshot(&env),
                map(case.before),
                "{} step {n}: not all old after the restart",
                case.name
            );
            assert_eq!(std::fs::read_dir(&journal_dir).unwrap().count(), 0);
            // The same call now applies cleanly.
            let r = call(&client, "apply_patch", json!({"patch": case.patch})).await;
            assert!(!is_error(&r), "{}", text(&r));
            assert_eq!(snapshot(&env), map(case.after), "{} step {n}: the retry", case.name);
            client.cancel().await.unwrap();
            outcomes.push(format!("{} @{n}: {changed} new before restart", case.name));
        }
    }
    eprintln!("crash at each step: {outcomes:?}");
}
