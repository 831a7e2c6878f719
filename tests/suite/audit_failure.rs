//! No side effect without its record: when the audit log cannot be written
//! (a full disk, a read-only file system, a log whose folder is gone), calls
//! that change anything are refused before they run, reads go on, and
//! `brain_status` says why.

use serde_json::{Value, json};

use crate::common::mount::{Mounted, fill, not_root, root_can_run};
use crate::common::{Client, TestEnv, call, is_error, structured, text};

async fn write(client: &Client, path: &str, content: &str) -> (bool, String) {
    let r = call(client, "filesystem_write", json!({"path": path, "content": content})).await;
    (is_error(&r), text(&r))
}

async fn audit_status(client: &Client) -> Value {
    let r = call(client, "brain_status", json!({})).await;
    structured(&r)["audit"].clone()
}

/// Records of calls that ran and changed `path` (an allowed `filesystem_write` with outcome ok).
fn recorded_writes(env: &TestEnv, path: &str) -> usize {
    env.audit_lines()
        .iter()
        .filter(|l| {
            l["tool"] == "filesystem_write"
                && l["outcome"] == "ok"
                && l["args_preview"].as_str().unwrap_or("").contains(path)
        })
        .count()
}

/// The audit log on a 1 MiB tmpfs that fills up while the server runs:
/// writes go on while the space reserved for their records lasts, then are
/// refused with a clear error and change nothing; every write that ran has
/// its record; reads still work; `brain_status` shows the trouble; once
/// space is free again, writes run again.
#[tokio::test]
async fn a_full_disk_under_the_audit_log_refuses_changes_and_keeps_every_record() {
    const TEST: &str = "a_full_disk_under_the_audit_log_refuses_changes_and_keeps_every_record";
    if !root_can_run(TEST, not_root()) {
        return;
    }
    let env = TestEnv::new();
    let state = env.audit.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&state).unwrap();
    let _mount = match Mounted::tmpfs(&state, "1m") {
        Ok(m) => m,
        Err(e) => {
            root_can_run(TEST, Some(format!("cannot mount a tmpfs: {e}")));
            return;
        }
    };
    env.write("read-me.txt", "still readable\n");
    let client = env.client().await;
    let (err, msg) = write(&client, "b.txt", "first").await;
    assert!(!err, "{msg}");
    let filler = fill(&state);

    let mut ran = 1;
    let mut refusal = None;
    for i in 0..2_000 {
        let content = format!("write {i}");
        let (err, msg) = write(&client, "b.txt", &content).await;
        if err {
            refusal = Some((i, msg));
            break;
        }
        ran += 1;
        assert_eq!(env.read("b.txt"), content);
    }
    let (at, msg) = refusal.expect("no write was refused on a full disk");
    eprintln!("{ran} writes ran on the full disk's reserve; write {at} was refused: {msg}");
    assert!(msg.contains("did not run"), "{msg}");
    assert!(msg.contains("audit log"), "{msg}");
    assert!(msg.contains(&env.audit.display().to_string()), "names the log: {msg}");
    assert!(msg.to_lowercase().contains("no space"), "says why: {msg}");
    // The refused write changed nothing.
    assert_eq!(env.read("b.txt"), format!("write {}", at - 1));
    // Every write that ran is on record.
    assert_eq!(recorded_writes(&env, "b.txt"), ran);

    // Reads go on; brain_status says what is wrong.
    let r = call(&client, "filesystem_read", json!({"path": "read-me.txt"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(text(&r), "still readable\n");
    let audit = audit_status(&client).await;
    assert_eq!(audit["writable"], false, "{audit}");
    assert!(
        audit["error"].as_str().unwrap().to_lowercase().contains("no space"),
        "{audit}"
    );
    let r = call(&client, "brain_status", json!({})).await;
    assert!(text(&r).contains("NOT writable"), "{}", text(&r));

    // Space again: writes run again and are recorded.
    std::fs::remove_file(filler).unwrap();
    let (err, msg) = write(&client, "b.txt", "after").await;
    assert!(!err, "{msg}");
    assert_eq!(env.read("b.txt"), "after");
    assert_eq!(recorded_writes(&env, "b.txt"), ran + 1);
    assert_eq!(audit_status(&client).await["writable"], true);
    client.cancel().await.unwrap();
}

/// The log's folder mounted read-only before the server starts: the server
/// still starts, refuses writes (changing nothing) and serves reads.
#[tokio::test]
async fn a_read_only_audit_log_refuses_changes_but_serves_reads() {
    const TEST: &str = "a_read_only_audit_log_refuses_changes_but_serves_reads";
    if !root_can_run(TEST, not_root()) {
        return;
    }
    let env = TestEnv::new();
    let state = env.audit.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(&env.audit, "").unwrap();
    let _mount = match Mounted::read_only(&state) {
        Ok(m) => m,
        Err(e) => {
            root_can_run(TEST, Some(format!("cannot bind-mount read-only: {e}")));
            return;
        }
    };
    env.write("a.txt", "old\n");
    let client = env.client().await;
    let (err, msg) = write(&client, "a.txt", "new\n").await;
    assert!(err, "a write ran without a record: {msg}");
    assert!(msg.contains("Read-only file system"), "{msg}");
    assert_eq!(env.read("a.txt"), "old\n");
    let r = call(
        &client,
        "apply_patch",
        json!({"patch": "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-old\n+new\n"}),
    )
    .await;
    assert!(is_error(&r), "{}", text(&r));
    assert_eq!(env.read("a.txt"), "old\n");
    // A dry run changes nothing and may go on.
    let r = call(
        &client,
        "apply_patch",
        json!({"patch": "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-old\n+new\n", "dry_run": true}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    let r = call(&client, "filesystem_read", json!({"path": "a.txt"})).await;
    assert_eq!(text(&r), "old\n");
    assert_eq!(audit_status(&client).await["writable"], false);
    client.cancel().await.unwrap();
}

/// Without root: a log that is removed while the server runs is started
/// again at its path (the next write is recorded there); a log whose folder
/// is replaced by a file cannot be, and writes are refused until it can.
#[tokio::test]
async fn a_removed_audit_log_is_reopened_and_an_unwritable_one_refuses_changes() {
    let env = TestEnv::new();
    let client = env.client().await;
    assert!(!write(&client, "a.txt", "one").await.0);
    std::fs::remove_file(&env.audit).unwrap();
    let (err, msg) = write(&client, "a.txt", "two").await;
    assert!(!err, "{msg}");
    assert_eq!(recorded_writes(&env, "a.txt"), 1, "the new log holds the second write");

    let state = env.audit.parent().unwrap();
    std::fs::remove_dir_all(state).unwrap();
    std::fs::write(state, "not a folder").unwrap();
    let (err, msg) = write(&client, "a.txt", "three").await;
    assert!(err, "a write ran without a record: {msg}");
    assert!(msg.contains("audit log") && msg.contains("did not run"), "{msg}");
    assert_eq!(env.read("a.txt"), "two");
    let audit = audit_status(&client).await;
    assert_eq!(audit["writable"], false, "{audit}");
    // Reads go on.
    let r = call(&client, "filesystem_read", json!({"path": "a.txt"})).await;
    assert_eq!(text(&r), "two");

    std::fs::remove_file(state).unwrap();
    let (err, msg) = write(&client, "a.txt", "four").await;
    assert!(!err, "{msg}");
    assert_eq!(env.read("a.txt"), "four");
    client.cancel().await.unwrap();
}
