//! The filesystem tools through a real MCP client.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn lists_every_tool_with_schemas_and_annotations() {
    let env = TestEnv::new();
    let client = env.client().await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "filesystem_read",
            "filesystem_write",
            "filesystem_list",
            "filesystem_search",
            "git_status",
            "git_diff",
            "edit_file",
            "apply_patch",
            "shell_exec",
            "run_playbook",
            "reason",
            "brain_status"
        ]
    );
    for tool in &tools {
        assert!(tool.title.is_some(), "{} has no title", tool.name);
        assert_eq!(tool.input_schema.get("type"), Some(&json!("object")));
        assert!(tool.output_schema.is_some(), "{} has no output schema", tool.name);
        let annotations = tool.annotations.as_ref().expect("annotations");
        assert!(annotations.read_only_hint.is_some());
    }
    let read = tools.iter().find(|t| t.name == "filesystem_read").unwrap();
    assert_eq!(read.annotations.as_ref().unwrap().read_only_hint, Some(true));
    let shell = tools.iter().find(|t| t.name == "shell_exec").unwrap();
    assert_eq!(shell.annotations.as_ref().unwrap().destructive_hint, Some(true));
}

#[tokio::test]
async fn read_returns_text_once_and_pages() {
    let env = TestEnv::new();
    let body: String = (1..=10).map(|i| format!("line {i}\n")).collect();
    env.write("notes.txt", &body);
    let client = env.client().await;

    let r = call(&client, "filesystem_read", json!({"path": "notes.txt"})).await;
    assert!(!is_error(&r));
    assert_eq!(text(&r), body);
    let s = structured(&r);
    assert_eq!(s["total_lines"], 10);
    assert_eq!(s["truncated"], false);
    assert!(s.get("content").is_none(), "the text must not travel twice");

    let r = call(
        &client,
        "filesystem_read",
        json!({"path": "notes.txt", "offset": 4, "limit": 3}),
    )
    .await;
    // The page is the file's text alone; how to go on is a note of its own.
    assert_eq!(text(&r), "line 4\nline 5\nline 6\n");
    assert_eq!(structured(&r)["next_offset"], 7);
    assert_eq!(r.content.len(), 2, "{:?}", r.content);
    let note = r.content[1].as_text().unwrap().text.clone();
    assert!(note.contains("offset=7"), "a cut page says how to go on: {note}");
}

#[tokio::test]
async fn read_refuses_binary_missing_and_directories_clearly() {
    let env = TestEnv::new();
    env.write("image.bin", [0u8, 159, 146, 150, 0, 1]);
    std::fs::create_dir_all(env.path("dir")).unwrap();
    let client = env.client().await;
    assert_tool_error(
        &call(&client, "filesystem_read", json!({"path": "image.bin"})).await,
        "binary",
    );
    assert_tool_error(
        &call(&client, "filesystem_read", json!({"path": "nope.txt"})).await,
        "does not exist",
    );
    assert_tool_error(
        &call(&client, "filesystem_read", json!({"path": "dir"})).await,
        "is a directory",
    );
}

#[tokio::test]
async fn write_is_atomic_text_only_and_reports_what_it_did() {
    let env = TestEnv::new();
    let client = env.client().await;

    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "src/new.rs", "content": "fn main() {}\n"}),
    )
    .await;
    assert_tool_error(&r, "create_dirs");
    assert!(!env.path("src").exists());

    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "src/new.rs", "content": "fn main() {}\n", "create_dirs": true}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(structured(&r)["created"], true);
    assert_eq!(structured(&r)["bytes_written"], 13);
    assert_eq!(env.read("src/new.rs"), "fn main() {}\n");

    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "src/new.rs", "content": "// v2\n"}),
    )
    .await;
    assert_eq!(structured(&r)["created"], false);
    assert_eq!(structured(&r)["previous_bytes"], 13);
    assert_eq!(env.read("src/new.rs"), "// v2\n");
    let leftovers: Vec<_> = std::fs::read_dir(env.path("src"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp files left behind: {leftovers:?}");

    assert_tool_error(
        &call(
            &client,
            "filesystem_write",
            json!({"path": "a.txt", "content": "nul\u{0}byte"}),
        )
        .await,
        "NUL",
    );
    assert!(!env.path("a.txt").exists());
    env.write("blob.bin", [1u8, 0, 2, 0]);
    assert_tool_error(
        &call(
            &client,
            "filesystem_write",
            json!({"path": "blob.bin", "content": "text"}),
        )
        .await,
        "binary",
    );
    assert_eq!(std::fs::read(env.path("blob.bin")).unwrap(), [1u8, 0, 2, 0]);
}

#[tokio::test]
async fn list_honours_gitignore_and_caps() {
    let env = TestEnv::new();
    env.init_repo(&[
        (".gitignore", "target/\n*.log\n"),
        ("src/lib.rs", "x"),
        ("README.md", "hi"),
    ]);
    env.write("target/debug/out", "x");
    env.write("debug.log", "x");
    let client = env.client().await;

    let r = call(&client, "filesystem_list", json!({"recursive": true, "sizes": true})).await;
    let paths: Vec<String> = listed(&r)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, [".gitignore", "README.md", "src", "src/lib.rs"]);
    let lib = &listed(&r)[3];
    assert_eq!((lib["type"].as_str(), lib["size"].as_u64()), (Some("file"), Some(1)));

    let r = call(&client, "filesystem_list", json!({"recursive": true, "max_entries": 2})).await;
    assert_eq!(listed(&r).as_array().unwrap().len(), 2);
    assert_eq!(structured(&r)["truncated"], true);

    let r = call(&client, "filesystem_list", json!({"path": "src"})).await;
    assert_eq!(listed(&r)[0]["path"], "src/lib.rs");
}

#[tokio::test]
async fn search_finds_lines_honours_gitignore_glob_and_case() {
    let env = TestEnv::new();
    env.init_repo(&[
        (".gitignore", "ignored/\n"),
        ("src/a.rs", "fn alpha() {}\nfn beta() {}\n"),
        ("docs/b.md", "Alpha here\n"),
    ]);
    env.write("ignored/c.rs", "fn alpha() {}\n");
    env.write("bin.dat", b"alpha\0\x01");
    let client = env.client().await;

    let r = call(&client, "filesystem_search", json!({"pattern": "alpha"})).await;
    let matches = structured(&r)["matches"].as_array().unwrap().clone();
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0]["path"], "src/a.rs");
    assert_eq!(matches[0]["line_number"], 1);
    assert_eq!(text(&r), "src/a.rs:1: fn alpha() {}\n");

    let r = call(
        &client,
        "filesystem_search",
        json!({"pattern": "alpha", "case_insensitive": true}),
    )
    .await;
    assert_eq!(structured(&r)["matches"].as_array().unwrap().len(), 2);

    let r = call(
        &client,
        "filesystem_search",
        json!({"pattern": "alpha", "case_insensitive": true, "glob": "*.md"}),
    )
    .await;
    let matches = structured(&r)["matches"].as_array().unwrap().clone();
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0]["path"], "docs/b.md");

    let r = call(&client, "filesystem_search", json!({"pattern": "fn", "max_results": 1})).await;
    assert_eq!(structured(&r)["truncated"], true);

    assert_tool_error(
        &call(&client, "filesystem_search", json!({"pattern": "(unclosed"})).await,
        "not a valid regular expression",
    );
    // Code as written: the error is about the pattern as given (not the
    // matcher's wrapped copy) and names the way out, which finds it.
    let r = call(&client, "filesystem_search", json!({"pattern": "fn beta() {"})).await;
    assert_tool_error(&r, "pass `literal: true`");
    assert!(
        !text(&r).contains("(?:") && !text(&r).contains("line break"),
        "{}",
        text(&r)
    );
    let r = call(
        &client,
        "filesystem_search",
        json!({"pattern": "fn beta() {", "literal": true}),
    )
    .await;
    assert_eq!(text(&r), "src/a.rs:2: fn beta() {}\n");
    let r = call(
        &client,
        "filesystem_search",
        json!({"pattern": "a.pha", "literal": true}),
    )
    .await;
    assert!(structured(&r)["matches"].as_array().unwrap().is_empty(), "{}", text(&r));
    // A pattern spanning lines is refused, saying why.
    let r = call(&client, "filesystem_search", json!({"pattern": "alpha\\nbeta"})).await;
    assert_tool_error(&r, "one line at a time");
}

#[tokio::test]
async fn malformed_arguments_and_unknown_tools_are_protocol_errors() {
    let env = TestEnv::new();
    let client = env.client().await;
    for (tool, args) in [
        ("filesystem_read", json!({})),
        ("filesystem_read", json!({"path": 5})),
        ("filesystem_read", json!({"path": "a", "colour": "red"})),
        ("filesystem_read", json!({"path": "a", "paths": [{"path": "b"}]})),
        ("filesystem_read", json!({"paths": []})),
        ("filesystem_read", json!({"paths": [{"path": "a", "colour": "red"}]})),
        ("no_such_tool", json!({})),
    ] {
        match try_call(&client, tool, args.clone()).await {
            Err(rmcp::ServiceError::McpError(e)) => {
                assert_eq!(e.code, rmcp::model::ErrorCode::INVALID_PARAMS, "{tool} {args}");
            }
            other => panic!("{tool} {args}: expected a protocol error, got {other:?}"),
        }
    }
}
