//! filesystem_search and filesystem_list as an agent relies on them: binary
//! files skipped on their first block, the same answer whatever order the
//! walker's threads reach files in, max_results keeping the first matches in
//! path order, each matching line sent once; and the start-up sweep of temp
//! files finding them only where a write staged one.

use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn search_skips_binary_files_by_their_first_block_only() {
    let env = TestEnv::new();
    // NUL in the first block: binary, never searched.
    env.write("early_nul.dat", b"needle\0\x01\x02");
    // NUL far past the first block (ripgrep reads 64 KiB blocks): searched as text.
    let mut late = b"needle at the top\n".to_vec();
    late.extend(std::iter::repeat_n(b'x', 200 * 1024));
    late.extend(b"\n\0 nul far below\n");
    env.write("late_nul.txt", &late);
    env.write("plain.txt", "a needle here\n");
    let client = env.client().await;
    let r = call(&client, "filesystem_search", json!({"pattern": "needle"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let paths: Vec<&str> = structured(&r)["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["late_nul.txt", "plain.txt"], "{}", text(&r));
    assert_eq!(
        structured(&r)["files_searched"],
        2,
        "the binary file is not counted as searched"
    );
}

#[tokio::test]
async fn search_sends_each_line_once_in_the_text() {
    let env = TestEnv::new();
    env.write("src/a.rs", "fn alpha() {}\r\nfn beta() {}\n");
    let client = env.client().await;
    let r = call(&client, "filesystem_search", json!({"pattern": "alpha"})).await;
    assert_eq!(text(&r), "src/a.rs:1: fn alpha() {}\n");
    let m = &structured(&r)["matches"][0];
    assert_eq!(
        (m["path"].as_str(), m["line_number"].as_u64()),
        (Some("src/a.rs"), Some(1))
    );
    assert!(m.get("line").is_none(), "the line travels in the text block only: {m}");
}

/// A tree whose files are reached in a different order by each thread of the
/// walker; the answer must still be the first matches in tree order.
fn wide_tree(env: &TestEnv) -> Vec<(String, u64)> {
    let mut expected = Vec::new();
    for d in 0..12 {
        for f in 0..15 {
            let path = format!("d{d:02}/f{f:02}.txt");
            env.write(&path, "one\nhit\nthree\nhit again\n");
            expected.push((path.clone(), 2));
            expected.push((path, 4));
        }
    }
    // `d00.txt` sorts after the folder `d00/` in a tree listing (`d00` < `d00.txt`).
    env.write("d00.txt", "hit\n");
    let at = expected.iter().position(|(p, _)| p.starts_with("d01/")).unwrap();
    expected.insert(at, ("d00.txt".into(), 1));
    expected
}

fn locations(r: &rmcp::model::CallToolResult) -> Vec<(String, u64)> {
    structured(r)["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["path"].as_str().unwrap().to_owned(),
                m["line_number"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn search_is_deterministic_and_max_results_keeps_the_first_in_path_order() {
    let env = TestEnv::new();
    let expected = wide_tree(&env);
    let client = env.client().await;

    let all = call(
        &client,
        "filesystem_search",
        json!({"pattern": "hit", "max_results": 5000}),
    )
    .await;
    assert_eq!(locations(&all), expected);
    assert_eq!(structured(&all)["truncated"], false);
    assert!(!text(&all).contains("[execlayer:"), "no note when nothing was cut");

    for max in [1, 7, 31, 200] {
        for _ in 0..3 {
            let r = call(
                &client,
                "filesystem_search",
                json!({"pattern": "hit", "max_results": max}),
            )
            .await;
            assert_eq!(locations(&r), expected[..max.min(expected.len())], "max_results {max}");
            assert_eq!(structured(&r)["truncated"], max < expected.len(), "max_results {max}");
            let t = text(&r);
            assert!(
                t.contains(&format!("these are the first {max} in path order")) && t.contains("raise max_results"),
                "max_results {max}: {t}"
            );
        }
    }
    // Exactly as many matches as max_results: not truncated.
    let n = expected.len();
    let r = call(
        &client,
        "filesystem_search",
        json!({"pattern": "hit", "max_results": n}),
    )
    .await;
    assert_eq!(structured(&r)["truncated"], false);
}

#[tokio::test]
async fn search_rejects_a_pattern_that_would_span_lines() {
    let env = TestEnv::new();
    env.write("a.txt", "one\ntwo\n");
    let client = env.client().await;
    let r = call(&client, "filesystem_search", json!({"pattern": "one\ntwo"})).await;
    assert_tool_error(&r, "one line at a time");
}

#[tokio::test]
async fn one_level_list_sorts_by_name_and_cuts_at_max_entries() {
    let env = TestEnv::new();
    env.init_repo(&[(".gitignore", "*.log\n")]);
    for name in ["b.txt", "a.txt", "B.txt", "a-b.txt", "a.log"] {
        env.write(&format!("dir/{name}"), "12345");
    }
    env.write("dir/sub/inner.txt", "x");
    let client = env.client().await;
    let r = call(&client, "filesystem_list", json!({"path": "dir", "sizes": true})).await;
    let entries = listed(&r).as_array().unwrap().clone();
    let paths: Vec<&str> = entries.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["dir/B.txt", "dir/a-b.txt", "dir/a.txt", "dir/b.txt", "dir/sub"]);
    assert_eq!(entries[0]["size"], 5);
    assert_eq!(entries[4]["type"], "dir");
    assert!(entries[4].get("size").is_none());

    let r = call(&client, "filesystem_list", json!({"path": "dir", "max_entries": 2})).await;
    let cut = listed(&r);
    let paths: Vec<&str> = cut
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["dir/B.txt", "dir/a-b.txt"],
        "the first entries by name, not the first read"
    );
    assert_eq!(structured(&r)["truncated"], true);
    assert!(text(&r).contains("list cut at 2 entries"));
}

fn age(path: &std::path::Path, by: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - by).unwrap();
}

#[tokio::test]
async fn start_sweeps_temp_files_only_where_writes_were_staged() {
    let env = TestEnv::new();
    env.write("written/keep.txt", "x");
    env.write("untouched/keep.txt", "x");
    {
        let client = env.client().await;
        let r = call(
            &client,
            "filesystem_write",
            json!({"path": "written/new.txt", "content": "hello\n"}),
        )
        .await;
        assert!(!is_error(&r), "{}", text(&r));
    }
    // What a crash between staging and rename would leave, in the folder the
    // write staged in (old, and fresh), and in a folder no write touched.
    let stale = env.path("written/.new.txt.dead01.execlayer.tmp");
    let fresh = env.path("written/.new.txt.live02.execlayer.tmp");
    let elsewhere = env.path("untouched/.keep.txt.dead03.execlayer.tmp");
    for p in [&stale, &fresh, &elsewhere] {
        std::fs::write(p, "partial").unwrap();
    }
    age(&stale, Duration::from_secs(600));
    age(&elsewhere, Duration::from_secs(600));

    let _core = env.core();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stale.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !stale.exists(),
        "the stale temp file in a staged folder is removed at start"
    );
    assert!(
        fresh.exists(),
        "a temp file younger than a minute may belong to a write under way"
    );
    assert!(
        elsewhere.exists(),
        "no walk of the workspace: a folder no write staged in is not looked at"
    );
    assert_eq!(env.read("written/new.txt"), "hello\n");

    // The folder with a young temp file stays in the journal for the next start.
    age(&fresh, Duration::from_secs(600));
    let _again = env.core();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fresh.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!fresh.exists(), "kept in the journal until it was old enough");
}

#[tokio::test]
async fn list_sends_each_entry_once_with_links_and_odd_names() {
    let env = TestEnv::new();
    env.write("d/plain.txt", "12345");
    env.write("d/with space.txt", "x");
    env.write("d/line\nbreak.txt", "x");
    std::os::unix::fs::symlink("plain.txt", env.path("d/link")).unwrap();
    std::os::unix::fs::symlink("../../outside", env.path("d/escape")).unwrap();
    let client = env.client().await;

    let r = call(&client, "filesystem_list", json!({"path": "d"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(
        text(&r),
        "d/escape -> ../../outside\nd/line\\nbreak.txt\nd/link -> plain.txt\nd/plain.txt\nd/with space.txt\n"
            .replace("d/line\\nbreak.txt", "\"d/line\\nbreak.txt\""),
        "one line per entry; a name with a line break is quoted so it cannot pass for two entries"
    );
    assert_eq!(
        structured(&r),
        &json!({"path": "d", "count": 5, "truncated": false}),
        "the entries travel once, in the text"
    );
    assert!(r.content.len() == 1, "one content block");

    let r = call(&client, "filesystem_list", json!({"path": "d", "sizes": true})).await;
    assert!(text(&r).contains("d/plain.txt  (5 bytes)\n"), "{}", text(&r));
    assert!(
        text(&r).contains("d/link -> plain.txt\n"),
        "a link shows its target, not a size"
    );

    let r = call(&client, "filesystem_list", json!({"path": "d/plain.txt"})).await;
    assert_tool_error(&r, "read it with filesystem_read");
    std::fs::create_dir(env.path("empty")).unwrap();
    let r = call(&client, "filesystem_list", json!({"path": "empty"})).await;
    assert_eq!(text(&r), "empty is empty\n");
}

#[tokio::test]
async fn recursive_list_shows_build_caches_without_descending_and_stops_at_max_depth() {
    let env = TestEnv::new();
    env.write("a/lib.rs", "x");
    env.write(
        "target/CACHEDIR.TAG",
        "Signature: 8a477f597d28d172789f06886806bc55\n# cargo\n",
    );
    env.write("target/debug/big.o", "x");
    env.write("target-notes/x.md", "x");
    env.write("fake/CACHEDIR.TAG", "not the signature\n");
    env.write("fake/kept.txt", "x");
    env.write("z/deep/er/file.txt", "x");
    let client = env.client().await;

    let r = call(&client, "filesystem_list", json!({"recursive": true})).await;
    let paths: Vec<String> = listed(&r)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}:{}", e["path"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        paths,
        [
            "a:dir",
            "a/lib.rs:file",
            "fake:dir",
            "fake/CACHEDIR.TAG:file",
            "fake/kept.txt:file",
            "target:cache",
            "target-notes:dir",
            "target-notes/x.md:file",
            "z:dir",
            "z/deep:dir",
            "z/deep/er:dir",
            "z/deep/er/file.txt:file",
        ],
        "a tagged cache is one line in its place, its contents left out; a tag without the signature is no tag"
    );

    // Listing the cache by its path shows it.
    let r = call(&client, "filesystem_list", json!({"path": "target", "recursive": true})).await;
    assert!(text(&r).contains("target/debug/big.o\n"), "{}", text(&r));

    // The cut counts the cache line like any other.
    let r = call(&client, "filesystem_list", json!({"recursive": true, "max_entries": 6})).await;
    assert_eq!(structured(&r)["truncated"], true);
    assert!(
        text(&r).contains("target/  (cache directory, not listed)\n"),
        "{}",
        text(&r)
    );

    let r = call(&client, "filesystem_list", json!({"max_depth": 2})).await;
    let paths: Vec<String> = listed(&r)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        paths.contains(&"z/deep".to_owned()) && !paths.iter().any(|p| p.starts_with("z/deep/")),
        "{paths:?}"
    );
    let r = call(&client, "filesystem_list", json!({"max_depth": 0})).await;
    assert_tool_error(&r, "max_depth must be 1 or more");
}
