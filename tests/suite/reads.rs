//! `filesystem_read` as an agent cites it: line numbers exactly as `cat -n`
//! prints them, several files in one call each with its own range and error,
//! notes in blocks of their own (so text copied back is the file's text), and
//! a word of why when an offset is past the end. Real source files of real
//! crates, copied from the cargo registry into a temp workspace.

use std::path::{Path, PathBuf};

use rmcp::model::CallToolResult;
use serde_json::{Value, json};

use crate::common::*;

/// A real source file of a published crate: serde_json's deserializer (over
/// 64 KiB, so it is read on the blocking pool), from the local cargo registry.
/// Falls back to this crate's own engine.rs when no registry copy is found.
fn real_source() -> (String, Vec<u8>) {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"));
    let found = std::fs::read_dir(cargo_home.join("registry/src"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|index| std::fs::read_dir(index.path()).into_iter().flatten().flatten())
        .map(|krate| krate.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("serde_json-1."))
        })
        .map(|p| p.join("src/de.rs"))
        .find(|p| p.is_file());
    let path = found.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine.rs"));
    (path.display().to_string(), std::fs::read(&path).unwrap())
}

/// Every content block's text, in order.
fn blocks(r: &CallToolResult) -> Vec<String> {
    r.content
        .iter()
        .map(|c| c.as_text().map(|t| t.text.clone()).unwrap_or_default())
        .collect()
}

/// `cat -n` of a workspace file, by the real program.
fn cat_n(env: &TestEnv, rel: &str) -> String {
    let out = std::process::Command::new("cat")
        .arg("-n")
        .arg(env.path(rel))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn line_numbers_match_cat_n_on_a_real_source_file() {
    let env = TestEnv::new();
    let (origin, bytes) = real_source();
    env.write("src/de.rs", &bytes);
    let client = env.client().await;
    let expected = cat_n(&env, "src/de.rs");

    let r = call(
        &client,
        "filesystem_read",
        json!({"path": "src/de.rs", "line_numbers": true, "max_bytes": 16 * 1024 * 1024}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(text(&r), expected, "the whole of {origin}, numbered");
    assert_eq!(r.content.len(), 1, "a whole file needs no note");

    // A range carries the file's own line numbers.
    let r = call(
        &client,
        "filesystem_read",
        json!({"path": "src/de.rs", "line_numbers": true, "offset": 100, "limit": 25}),
    )
    .await;
    let want: String = expected.split_inclusive('\n').skip(99).take(25).collect();
    assert_eq!(text(&r), want);
    assert_eq!(structured(&r)["start_line"], 100);
    assert_eq!(structured(&r)["end_line"], 124);

    // A file without a final newline, and CRLF lines, as cat -n shows them.
    env.write("crlf.txt", "one\r\ntwo\r\n\r\nlast");
    let r = call(
        &client,
        "filesystem_read",
        json!({"path": "crlf.txt", "line_numbers": true}),
    )
    .await;
    assert_eq!(text(&r), cat_n(&env, "crlf.txt"));
}

#[tokio::test]
async fn paged_text_copied_back_is_the_file_byte_for_byte() {
    let env = TestEnv::new();
    let (_, bytes) = real_source();
    env.write("src/de.rs", &bytes);
    let client = env.client().await;
    let mut copied = String::new();
    let mut offset = 1u64;
    let mut pages = 0;
    loop {
        let r = call(
            &client,
            "filesystem_read",
            json!({"path": "src/de.rs", "offset": offset, "max_bytes": 16 * 1024}),
        )
        .await;
        assert!(!is_error(&r), "{}", text(&r));
        pages += 1;
        let b = blocks(&r);
        copied.push_str(&b[0]);
        let s = structured(&r);
        match s.get("next_offset").and_then(Value::as_u64) {
            Some(next) => {
                // The note says how to go on, in its own block, and the text has none of it.
                assert_eq!(b.len(), 2, "{b:?}");
                assert!(b[1].starts_with("[execlayer: lines "), "{}", b[1]);
                assert!(b[1].contains(&format!("offset={next}")), "{}", b[1]);
                assert!(!b[0].contains("[execlayer"));
                offset = next;
            }
            None => break,
        }
    }
    assert!(pages > 3, "the file should take several pages, took {pages}");
    // The agent writes what it read back into a new file: nothing was added.
    let w = call(
        &client,
        "filesystem_write",
        json!({"path": "copy.rs", "content": copied}),
    )
    .await;
    assert!(!is_error(&w), "{}", text(&w));
    assert_eq!(std::fs::read(env.path("copy.rs")).unwrap(), bytes);
}

#[tokio::test]
async fn several_files_in_one_call_each_with_its_own_range_and_error() {
    let env = TestEnv::new();
    let (_, bytes) = real_source();
    env.write("src/de.rs", &bytes);
    env.write("notes.txt", "alpha\nbeta\ngamma\ndelta\n");
    std::fs::create_dir_all(env.path("dir")).unwrap();
    let client = env.client().await;
    let r = call(
        &client,
        "filesystem_read",
        json!({"paths": [
            {"path": "notes.txt", "offset": 2, "limit": 2},
            {"path": "missing.txt"},
            {"path": "src/de.rs", "offset": 10, "limit": 3},
            {"path": "notes.txt", "offset": 9},
            {"path": "dir"},
        ], "line_numbers": true}),
    )
    .await;
    assert!(!is_error(&r), "one missing file does not fail the others: {}", text(&r));
    let files = structured(&r)["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), 5);
    assert_eq!(
        (&files[0]["path"], &files[0]["start_line"], &files[0]["end_line"]),
        (&json!("notes.txt"), &json!(2), &json!(3))
    );
    assert_eq!(files[0]["next_offset"], 4);
    assert!(
        files[1]["error"].as_str().unwrap().contains("does not exist"),
        "{}",
        files[1]
    );
    assert!(files[1].get("start_line").is_none());
    assert_eq!(files[2]["start_line"], 10);
    assert!(
        files[3]["error"]
            .as_str()
            .unwrap()
            .contains("the file has 4 lines; offset 9 is past the end"),
        "{}",
        files[3]
    );
    assert!(files[4]["error"].as_str().unwrap().contains("is a directory"));

    let b = blocks(&r);
    let de_lines: String = cat_n(&env, "src/de.rs").split_inclusive('\n').skip(9).take(3).collect();
    assert_eq!(
        b,
        [
            "[execlayer: notes.txt, lines 2-3 of 4; more remains: call filesystem_read with offset=4]".to_owned(),
            "     2\tbeta\n     3\tgamma\n".to_owned(),
            format!(
                "[execlayer: missing.txt was not read: {}]",
                files[1]["error"].as_str().unwrap()
            ),
            format!(
                "[execlayer: src/de.rs, lines 10-12 of {}; more remains: call filesystem_read with offset=13]",
                files[2]["total_lines"]
            ),
            de_lines,
            format!(
                "[execlayer: notes.txt was not read: {}]",
                files[3]["error"].as_str().unwrap()
            ),
            format!("[execlayer: dir was not read: {}]", files[4]["error"].as_str().unwrap()),
        ]
    );

    // When no file can be read, the call is an error that still names each file.
    let r = call(
        &client,
        "filesystem_read",
        json!({"paths": [{"path": "missing.txt"}, {"path": "../outside.txt"}]}),
    )
    .await;
    assert!(is_error(&r));
    let all = blocks(&r).join("\n");
    assert!(
        all.contains("missing.txt was not read") && all.contains("../outside.txt was not read"),
        "{all:?}"
    );
    assert_eq!(structured(&r)["files"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn max_bytes_is_shared_by_the_files_of_a_call() {
    let env = TestEnv::new();
    env.write("a.txt", "a".repeat(60) + "\n" + &"b".repeat(60) + "\n");
    env.write("b.txt", "short\n");
    let client = env.client().await;
    let r = call(
        &client,
        "filesystem_read",
        json!({"paths": [{"path": "a.txt"}, {"path": "b.txt"}], "max_bytes": 61}),
    )
    .await;
    let files = structured(&r)["files"].as_array().unwrap().clone();
    assert_eq!(
        (&files[0]["end_line"], &files[0]["next_offset"]),
        (&json!(1), &json!(2))
    );
    let error = files[1]["error"].as_str().unwrap();
    assert!(error.contains("used up this call's max_bytes (61)"), "{error}");
}

#[tokio::test]
async fn an_offset_past_the_end_says_how_many_lines_the_file_has() {
    let env = TestEnv::new();
    env.write("one.txt", "only line\n");
    env.write("empty.txt", "");
    let client = env.client().await;
    let r = call(&client, "filesystem_read", json!({"path": "one.txt", "offset": 99})).await;
    assert_tool_error(&r, "one.txt: the file has 1 line; offset 99 is past the end");

    // An empty file read from the start is not an error, and says it is empty.
    let r = call(&client, "filesystem_read", json!({"path": "empty.txt"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(blocks(&r), ["", "[execlayer: the file is empty (0 lines)]"]);

    // Reading the last page says it is the end.
    let r = call(&client, "filesystem_read", json!({"path": "one.txt", "offset": 1})).await;
    assert_eq!(blocks(&r), ["only line\n"]);
}

/// REST keeps `text` the file's text and gives the notes separately.
#[tokio::test]
async fn rest_text_is_the_file_and_notes_come_apart() {
    let env = TestEnv::new();
    env.write("notes.txt", "1\n2\n3\n");
    let server = env.http().await;
    let body: Value = http_client()
        .post(server.url("/api/v1/execution/run"))
        .json(&json!({"tool_name": "filesystem_read", "args": {"path": "notes.txt", "limit": 2}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["text"], "1\n2\n");
    assert_eq!(
        body["notes"],
        json!(["[execlayer: lines 1-2 of 3; more remains: call filesystem_read with offset=3]"])
    );
    assert_eq!(body["blocks"][0], json!({"text": "1\n2\n", "note": false}));
    assert_eq!(body["result"]["next_offset"], 3);
}
