//! Path confinement through the real MCP client: every tool that takes a path
//! refuses to leave the workspace (`..`, absolute paths, sibling prefixes,
//! symlinks, NUL bytes), the writing tools never touch `.git`, and a refused
//! call changes nothing anywhere on disk.
//!
//! The temp directory `<tmp>` holds the workspace `<tmp>/ws` and, around it,
//! files an attacker would like to read or write: `<tmp>/secret.txt`,
//! `<tmp>/ws2/secret.txt` and `<tmp>/ws-old/secret.txt` (siblings whose names
//! start with the root's name) and `<tmp>/outdir/secret.txt`. Every outside
//! file holds `leaked-from-...`, so a leak shows in any answer.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use rmcp::model::CallToolResult;
use serde_json::{Value, json};

use crate::common::*;

/// The text every outside file starts with; it must never appear in an answer.
const LEAK: &str = "leaked-from-";

const INSIDE: &str = "inside line 1\ninside line 2\n";

/// A workspace that is a git repository, surrounded by outside files, with
/// symlinks planted inside that point out (and some that stay in).
struct Fixture {
    env: TestEnv,
    /// The canonical temp directory holding `ws`.
    tmp: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let env = TestEnv::new();
        env.init_repo(&[("inside.txt", INSIDE), ("sub/file.txt", "sub file\n")]);
        let tmp = env.dir.path().canonicalize().unwrap();
        assert_eq!(env.ws, tmp.join("ws"));
        for (rel, content) in [
            ("secret.txt", "leaked-from-tmp\n"),
            ("ws2/secret.txt", "leaked-from-ws2\n"),
            ("ws-old/secret.txt", "leaked-from-ws-old\n"),
            ("outdir/secret.txt", "leaked-from-outdir\n"),
        ] {
            let p = tmp.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let ws = &env.ws;
        symlink(tmp.join("secret.txt"), ws.join("link_out_file")).unwrap();
        symlink("../secret.txt", ws.join("link_out_rel")).unwrap();
        symlink(tmp.join("outdir"), ws.join("link_out_dir")).unwrap();
        symlink(tmp.join("outdir/planted.txt"), ws.join("link_dangling")).unwrap();
        symlink(tmp.join("ws2"), ws.join("link_sibling")).unwrap();
        symlink("inside.txt", ws.join("link_in")).unwrap();
        symlink("sub", ws.join("link_in_dir")).unwrap();
        symlink(".git/hooks", ws.join("hooks")).unwrap();
        assert!(ws.join(".git/hooks").is_dir(), "git init made .git/hooks");
        assert!(!tmp.join("outdir/planted.txt").exists());
        Self { env, tmp }
    }

    fn abs(&self, rel: &str) -> String {
        self.tmp.join(rel).display().to_string()
    }

    /// Every path that leads outside, with the words its refusal must contain.
    /// These work for reading and for writing a file.
    fn file_escapes(&self) -> Vec<(String, &'static str)> {
        let parent = "contains '..'";
        let outside = "is outside the workspace root";
        let link = "through a symlink";
        vec![
            ("../secret.txt".into(), parent),
            ("a/../../x".into(), parent),
            ("sub/../../secret.txt".into(), parent),
            ("./../ws2/secret.txt".into(), parent),
            ("sub/..".into(), parent),
            ("/etc/passwd".into(), outside),
            (self.abs("secret.txt"), outside),
            (self.abs("ws2/secret.txt"), outside),
            (self.abs("ws-old/secret.txt"), outside),
            (format!("{}2/secret.txt", self.env.ws.display()), outside),
            (format!("{}/../secret.txt", self.env.ws.display()), parent),
            ("link_out_file".into(), link),
            ("link_out_rel".into(), link),
            ("link_out_dir/secret.txt".into(), link),
            ("link_sibling/secret.txt".into(), link),
            ("link_dangling".into(), link),
            ("in\0side.txt".into(), "NUL byte"),
            ("inside.txt\0../../secret.txt".into(), "NUL byte"),
        ]
    }

    /// Directories that lead outside, for the listing and searching tools.
    fn dir_escapes(&self) -> Vec<(String, &'static str)> {
        let parent = "contains '..'";
        let outside = "is outside the workspace root";
        let link = "through a symlink";
        vec![
            ("..".into(), parent),
            ("../".into(), parent),
            ("sub/../..".into(), parent),
            ("/".into(), outside),
            ("/etc".into(), outside),
            (self.tmp.display().to_string(), outside),
            (self.abs("ws2"), outside),
            (self.abs("ws-old"), outside),
            (self.abs("outdir"), outside),
            ("link_out_dir".into(), link),
            ("link_out_dir/".into(), link),
            ("link_sibling".into(), link),
            ("s\0ub".into(), "NUL byte"),
        ]
    }

    /// Paths inside `.git` (directly, in any case, nested or through a link).
    fn git_internals() -> Vec<&'static str> {
        vec![
            ".git/config",
            ".git/hooks/pre-commit",
            ".git/hooks/post-checkout",
            "sub/.git/x",
            ".GIT/config",
            ".Git/hooks/pre-commit",
            "./.git/config",
            ".git//config",
            "hooks/post-commit",
            "hooks/pre-commit",
        ]
    }
}

/// What a directory tree looks like: every entry (not following symlinks)
/// with its kind, permissions and content or link target. The audit log's
/// directory (`state/`) is left out: it grows with every call by design.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new("state") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode();
            let desc = if meta.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                walk(root, &path, out);
                format!("dir {mode:o}")
            } else {
                let bytes = std::fs::read(&path).unwrap();
                format!("file {mode:o} {}", String::from_utf8_lossy(&bytes))
            };
            out.insert(rel, desc);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[track_caller]
fn assert_same_tree(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>, what: &str) {
    if before == after {
        return;
    }
    let mut diff = String::new();
    for (k, v) in after {
        match before.get(k) {
            None => diff.push_str(&format!("  created {}: {v}\n", k.display())),
            Some(old) if old != v => diff.push_str(&format!("  changed {}: {old:?} -> {v:?}\n", k.display())),
            _ => {}
        }
    }
    for k in before.keys().filter(|k| !after.contains_key(*k)) {
        diff.push_str(&format!("  removed {}\n", k.display()));
    }
    panic!("{what} changed the disk:\n{diff}");
}

/// A refusal: an error result naming the reason, with no outside content in it.
#[track_caller]
fn assert_refused(r: &CallToolResult, needle: &str, what: &str) {
    assert!(is_error(r), "{what} was not refused: {}", text(r));
    assert!(
        text(r).contains(needle),
        "{what}: the refusal {:?} does not say {needle:?}",
        text(r)
    );
    let everything = format!("{} {:?}", text(r), r.structured_content);
    assert!(
        !everything.contains(LEAK),
        "{what} leaked outside content: {everything}"
    );
}

// ---------------------------------------------------------------- reading

#[tokio::test]
async fn read_refuses_every_way_out() {
    let f = Fixture::new();
    let client = f.env.client().await;
    for (path, needle) in f.file_escapes() {
        let r = call(&client, "filesystem_read", json!({ "path": path })).await;
        assert_refused(&r, needle, &format!("filesystem_read {path:?}"));
    }
    // A directory link out, then a file under it that does not exist.
    let r = call(&client, "filesystem_read", json!({"path": "link_out_dir/nothing.txt"})).await;
    assert_refused(&r, "through a symlink", "filesystem_read link_out_dir/nothing.txt");
}

#[tokio::test]
async fn list_refuses_every_way_out() {
    let f = Fixture::new();
    let client = f.env.client().await;
    for (path, needle) in f.dir_escapes() {
        for recursive in [false, true] {
            let r = call(
                &client,
                "filesystem_list",
                json!({ "path": path, "recursive": recursive }),
            )
            .await;
            assert_refused(&r, needle, &format!("filesystem_list {path:?}"));
            assert!(
                !text(&r).contains("secret.txt"),
                "filesystem_list {path:?} showed an outside entry: {}",
                text(&r)
            );
        }
    }
}

#[tokio::test]
async fn list_of_the_root_does_not_descend_through_links_out() {
    let f = Fixture::new();
    let client = f.env.client().await;
    let r = call(&client, "filesystem_list", json!({"recursive": true})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let entries = listed(&r).as_array().unwrap().clone();
    let paths: Vec<&str> = entries.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(
        paths
            .iter()
            .all(|p| !p.starts_with("link_out_dir/") && !p.starts_with("link_sibling/")),
        "the listing went through a link out: {paths:?}"
    );
    assert!(paths.iter().all(|p| !p.contains("secret")), "{paths:?}");
    let kind = |name: &str| {
        entries
            .iter()
            .find(|e| e["path"] == name)
            .map(|e| e["type"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(kind("link_out_dir"), "symlink");
    assert_eq!(kind("link_out_file"), "symlink");
    assert!(
        paths.iter().all(|p| !p.starts_with(".git/") && *p != ".git"),
        "{paths:?}"
    );
}

#[tokio::test]
async fn search_refuses_every_way_out() {
    let f = Fixture::new();
    let client = f.env.client().await;
    let mut cases = f.dir_escapes();
    cases.extend(f.file_escapes());
    for (path, needle) in cases {
        let r = call(
            &client,
            "filesystem_search",
            json!({ "pattern": "leaked", "path": path }),
        )
        .await;
        assert_refused(&r, needle, &format!("filesystem_search {path:?}"));
    }
}

#[tokio::test]
async fn search_of_the_root_never_reads_through_links_out() {
    let f = Fixture::new();
    let client = f.env.client().await;
    for args in [
        json!({"pattern": "leaked"}),
        json!({"pattern": "leaked", "path": "."}),
        json!({"pattern": "leaked", "glob": "**/secret.txt"}),
        json!({"pattern": "leaked", "path": f.env.ws.display().to_string()}),
    ] {
        let r = call(&client, "filesystem_search", args.clone()).await;
        assert!(!is_error(&r), "{args}: {}", text(&r));
        assert_eq!(
            structured(&r)["matches"],
            json!([]),
            "{args} found outside content through a link"
        );
        assert!(!text(&r).contains(LEAK));
    }
    // The same search does find text inside, through a link that stays in.
    let r = call(
        &client,
        "filesystem_search",
        json!({"pattern": "inside line", "path": "link_in"}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(structured(&r)["matches"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn git_diff_refuses_every_way_out() {
    let f = Fixture::new();
    // A change inside, so a working diff has something to show.
    f.env.write("inside.txt", "changed\n");
    let client = f.env.client().await;
    let mut cases = f.file_escapes();
    cases.extend(f.dir_escapes());
    for (path, needle) in cases {
        let r = call(&client, "git_diff", json!({ "paths": [path] })).await;
        assert_refused(&r, needle, &format!("git_diff paths [{path:?}]"));
        // One bad path among good ones is still refused.
        let r = call(&client, "git_diff", json!({ "paths": ["inside.txt", path] })).await;
        assert_refused(&r, needle, &format!("git_diff paths [inside.txt, {path:?}]"));
    }
}

// ---------------------------------------------------------------- writing

#[tokio::test]
async fn write_refuses_every_way_out_and_changes_nothing() {
    let f = Fixture::new();
    let client = f.env.client().await;
    let before = snapshot(&f.tmp);
    let mut cases = f.file_escapes();
    cases.push(("link_out_dir/new.txt".into(), "through a symlink"));
    cases.push(("link_out_dir/deeper/new.txt".into(), "through a symlink"));
    cases.push((f.abs("ws2/new.txt"), "is outside the workspace root"));
    cases.push((f.abs("ws-old/new.txt"), "is outside the workspace root"));
    cases.push((f.abs("new-beside-ws.txt"), "is outside the workspace root"));
    for (path, needle) in cases {
        // /etc/passwd is written with its own content: should confinement ever
        // break, the machine is unharmed and only the refusal check fails.
        let content = if path == "/etc/passwd" {
            std::fs::read_to_string("/etc/passwd").unwrap_or_default()
        } else {
            "pwned\n".to_owned()
        };
        for create_dirs in [false, true] {
            let r = call(
                &client,
                "filesystem_write",
                json!({ "path": path, "content": content, "create_dirs": create_dirs }),
            )
            .await;
            assert_refused(&r, needle, &format!("filesystem_write {path:?}"));
        }
    }
    assert_same_tree(&before, &snapshot(&f.tmp), "a refused filesystem_write");
    assert!(
        !f.tmp.join("outdir/planted.txt").exists(),
        "the dangling link's target was created"
    );
}

#[tokio::test]
async fn write_never_touches_git_internals() {
    let f = Fixture::new();
    let client = f.env.client().await;
    let before = snapshot(&f.tmp);
    for path in Fixture::git_internals() {
        for create_dirs in [false, true] {
            let r = call(
                &client,
                "filesystem_write",
                json!({ "path": path, "content": "#!/bin/sh\ntouch pwned\n", "create_dirs": create_dirs }),
            )
            .await;
            assert_refused(&r, "inside a .git directory", &format!("filesystem_write {path:?}"));
        }
    }
    // The absolute form of a .git path is refused too.
    let abs = f.env.ws.join(".git/config").display().to_string();
    let r = call(&client, "filesystem_write", json!({ "path": abs, "content": "x" })).await;
    assert_refused(&r, "inside a .git directory", "filesystem_write <ws>/.git/config");
    assert_same_tree(&before, &snapshot(&f.tmp), "a refused filesystem_write into .git");
    assert!(!f.env.ws.join(".git/hooks/post-commit").exists());
}

// ---------------------------------------------------------------- patching

/// A patch that creates `path` (with `a/`/`b/` prefixes unless absolute).
fn create_patch(path: &str) -> String {
    let new = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("b/{path}")
    };
    format!("--- /dev/null\n+++ {new}\n@@ -0,0 +1,2 @@\n+#!/bin/sh\n+touch pwned\n")
}

/// A patch that appends a line to `path`, whose current text is `old`: it
/// would apply cleanly if the path were allowed.
fn append_patch(path: &str, old: &str) -> String {
    let (a, b) = if path.starts_with('/') {
        (path.to_owned(), path.to_owned())
    } else {
        (format!("a/{path}"), format!("b/{path}"))
    };
    let lines: Vec<&str> = old.lines().collect();
    let mut p = format!("--- {a}\n+++ {b}\n@@ -1,{} +1,{} @@\n", lines.len(), lines.len() + 1);
    for l in &lines {
        p.push_str(&format!(" {l}\n"));
    }
    p.push_str("+pwned\n");
    p
}

/// A patch that deletes `path`, whose current text is `old`.
fn delete_patch(path: &str, old: &str) -> String {
    let lines: Vec<&str> = old.lines().collect();
    let mut p = format!("--- a/{path}\n+++ /dev/null\n@@ -1,{} +0,0 @@\n", lines.len());
    for l in &lines {
        p.push_str(&format!("-{l}\n"));
    }
    p
}

/// A git-style pure rename.
fn rename_patch(from: &str, to: &str) -> String {
    format!("diff --git a/{from} b/{to}\nsimilarity index 100%\nrename from {from}\nrename to {to}\n")
}

#[tokio::test]
async fn patch_refuses_every_way_out_and_changes_nothing() {
    let f = Fixture::new();
    let client = f.env.client().await;
    let secret = std::fs::read_to_string(f.tmp.join("secret.txt")).unwrap();
    let outdir_secret = std::fs::read_to_string(f.tmp.join("outdir/secret.txt")).unwrap();
    let ws2_secret = std::fs::read_to_string(f.tmp.join("ws2/secret.txt")).unwrap();
    let parent = "contains '..'";
    let outside = "is outside the workspace root";
    let link = "through a symlink";
    let cases: Vec<(String, String, &str)> = vec![
        (
            "modify ../secret.txt".into(),
            append_patch("../secret.txt", &secret),
            parent,
        ),
        (
            "modify a/../../secret.txt".into(),
            append_patch("a/../../secret.txt", &secret),
            parent,
        ),
        ("create a/../../x".into(), create_patch("a/../../x"), parent),
        (
            "delete ../secret.txt".into(),
            delete_patch("../secret.txt", &secret),
            parent,
        ),
        ("create /etc/passwd".into(), create_patch("/etc/passwd"), outside),
        (
            "create /etc/cron.d/pwned".into(),
            create_patch("/etc/cron.d/pwned"),
            outside,
        ),
        (
            "modify <tmp>/secret.txt".into(),
            append_patch(&f.abs("secret.txt"), &secret),
            outside,
        ),
        (
            "modify <tmp>/ws2/secret.txt".into(),
            append_patch(&f.abs("ws2/secret.txt"), &ws2_secret),
            outside,
        ),
        (
            "create <tmp>/ws2/new.txt".into(),
            create_patch(&f.abs("ws2/new.txt")),
            outside,
        ),
        (
            "create <tmp>/ws-old/new.txt".into(),
            create_patch(&f.abs("ws-old/new.txt")),
            outside,
        ),
        (
            "modify link_out_file".into(),
            append_patch("link_out_file", &secret),
            link,
        ),
        (
            "modify link_out_rel".into(),
            append_patch("link_out_rel", &secret),
            link,
        ),
        (
            "delete link_out_file".into(),
            delete_patch("link_out_file", &secret),
            link,
        ),
        (
            "modify link_out_dir/secret.txt".into(),
            append_patch("link_out_dir/secret.txt", &outdir_secret),
            link,
        ),
        (
            "create link_out_dir/new.txt".into(),
            create_patch("link_out_dir/new.txt"),
            link,
        ),
        (
            "create link_sibling/new.txt".into(),
            create_patch("link_sibling/new.txt"),
            link,
        ),
        ("create link_dangling".into(), create_patch("link_dangling"), link),
        // A raw NUL and git's quoted form of one are both refused as NUL bytes.
        ("create with a raw NUL".into(), create_patch("in\0side.txt"), "NUL byte"),
        (
            "create with a quoted NUL".into(),
            "--- /dev/null\n+++ \"b/in\\000side.txt\"\n@@ -0,0 +1 @@\n+pwned\n".into(),
            "NUL byte",
        ),
        (
            "create a quoted ../".into(),
            "--- /dev/null\n+++ \"b/\\056\\056/quoted.txt\"\n@@ -0,0 +1 @@\n+pwned\n".into(),
            parent,
        ),
    ];
    for dry_run in [true, false] {
        let before = snapshot(&f.tmp);
        for (what, patch, needle) in &cases {
            let r = call(&client, "apply_patch", json!({ "patch": patch, "dry_run": dry_run })).await;
            assert_refused(&r, needle, &format!("apply_patch {what} (dry_run {dry_run})"));
        }
        assert_same_tree(&before, &snapshot(&f.tmp), "a refused apply_patch");
    }
    assert!(!f.tmp.join("outdir/planted.txt").exists());
    assert!(!f.env.ws.join("stolen.txt").exists());
}

#[tokio::test]
async fn patch_never_touches_git_internals() {
    let f = Fixture::new();
    let client = f.env.client().await;
    let config = std::fs::read_to_string(f.env.ws.join(".git/config")).unwrap();
    let mut cases: Vec<(String, String)> = Fixture::git_internals()
        .into_iter()
        .map(|p| (format!("create {p}"), create_patch(p)))
        .collect();
    cases.push((
        "modify .git/config".into(),
        append_patch(".git/config", &config).replace("+pwned", "+\tfsmonitor = touch pwned"),
    ));
    cases.push(("modify .GIT/config".into(), append_patch(".GIT/config", &config)));
    cases.push(("delete .git/config".into(), delete_patch(".git/config", &config)));
    for dry_run in [true, false] {
        let before = snapshot(&f.tmp);
        for (what, patch) in &cases {
            let r = call(&client, "apply_patch", json!({ "patch": patch, "dry_run": dry_run })).await;
            assert_refused(
                &r,
                "inside a .git directory",
                &format!("apply_patch {what} (dry_run {dry_run})"),
            );
        }
        assert_same_tree(&before, &snapshot(&f.tmp), "a refused apply_patch into .git");
    }
    assert!(!f.env.ws.join(".git/hooks/post-commit").exists());
    assert!(!f.env.ws.join(".git/hooks/pre-commit").exists());
}

#[tokio::test]
async fn a_patch_with_one_file_outside_changes_no_file() {
    let f = Fixture::new();
    let client = f.env.client().await;
    let secret = std::fs::read_to_string(f.tmp.join("secret.txt")).unwrap();
    let good = append_patch("inside.txt", INSIDE);
    for bad in [
        append_patch("link_out_file", &secret),
        create_patch("../x.txt"),
        create_patch(".git/hooks/pre-commit"),
    ] {
        for patch in [format!("{good}{bad}"), format!("{bad}{good}")] {
            let before = snapshot(&f.tmp);
            let r = call(&client, "apply_patch", json!({ "patch": patch })).await;
            assert!(is_error(&r), "a patch reaching outside was applied: {}", text(&r));
            assert_same_tree(&before, &snapshot(&f.tmp), "a half-bad apply_patch");
            assert_eq!(f.env.read("inside.txt"), INSIDE);
        }
    }
    // The good half alone applies (the fixture is sound).
    let r = call(&client, "apply_patch", json!({ "patch": good })).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(f.env.read("inside.txt"), format!("{INSIDE}pwned\n"));
}

// ---------------------------------------------------------------- what stays allowed

#[tokio::test]
async fn links_that_stay_inside_and_absolute_paths_inside_work() {
    let f = Fixture::new();
    let client = f.env.client().await;
    let abs = |rel: &str| f.env.ws.join(rel).display().to_string();

    for path in ["link_in", "./inside.txt", ".//inside.txt", &abs("inside.txt")] {
        let r = call(&client, "filesystem_read", json!({ "path": path })).await;
        assert!(!is_error(&r), "filesystem_read {path:?}: {}", text(&r));
        assert_eq!(text(&r), INSIDE, "filesystem_read {path:?}");
        assert_eq!(structured(&r)["path"], "inside.txt", "shown relative to the root");
    }
    for path in [
        "link_in_dir/file.txt",
        "sub//file.txt",
        &abs("sub/file.txt"),
        &abs("link_in_dir/file.txt"),
    ] {
        let r = call(&client, "filesystem_read", json!({ "path": path })).await;
        assert_eq!(text(&r), "sub file\n", "filesystem_read {path:?}");
    }
    // A .git path may be read (only writes are refused).
    let r = call(&client, "filesystem_read", json!({"path": ".git/HEAD"})).await;
    assert!(!is_error(&r), "{}", text(&r));

    for path in [abs(""), abs("sub"), "link_in_dir".to_owned(), ".".to_owned()] {
        let r = call(&client, "filesystem_list", json!({ "path": path })).await;
        assert!(!is_error(&r), "filesystem_list {path:?}: {}", text(&r));
    }
    let r = call(
        &client,
        "filesystem_search",
        json!({"pattern": "sub file", "path": abs("sub")}),
    )
    .await;
    assert_eq!(structured(&r)["matches"][0]["path"], "sub/file.txt");

    f.env.write("inside.txt", "changed\n");
    for paths in [json!([abs("inside.txt")]), json!(["link_in"]), json!(["./inside.txt"])] {
        let r = call(&client, "git_diff", json!({ "paths": paths })).await;
        assert!(!is_error(&r), "git_diff {paths}: {}", text(&r));
        assert_eq!(structured(&r)["files"][0]["path"], "inside.txt", "git_diff {paths}");
    }

    // Writes through an inside link change the target and keep the link.
    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "link_in", "content": "via link\n"}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(f.env.read("inside.txt"), "via link\n");
    assert!(
        std::fs::symlink_metadata(f.env.ws.join("link_in"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let r = call(
        &client,
        "filesystem_write",
        json!({"path": abs("abs.txt"), "content": "abs\n"}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(f.env.read("abs.txt"), "abs\n");
    // Names that merely start with .git are not git internals.
    for path in [".gitignore", ".github/workflows/ci.yml", "sub/.gitkeep", "x.git/y"] {
        let r = call(
            &client,
            "filesystem_write",
            json!({ "path": path, "content": "ok\n", "create_dirs": true }),
        )
        .await;
        assert!(!is_error(&r), "filesystem_write {path:?}: {}", text(&r));
    }
    let r = call(
        &client,
        "apply_patch",
        json!({ "patch": append_patch("link_in_dir/file.txt", "sub file\n") }),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(f.env.read("sub/file.txt"), "sub file\npwned\n");
}

/// The paths of a git-style rename (`rename from`/`rename to`, which git
/// writes without `a/`/`b/` prefixes) are confined like any other.
#[tokio::test]
async fn patch_renames_are_confined() {
    let f = Fixture::new();
    let client = f.env.client().await;
    let parent = "contains '..'";
    let link = "through a symlink";
    let git = "inside a .git directory";
    let cases = [
        ("inside.txt", "../stolen.txt", parent),
        ("inside.txt", "link_out_dir/stolen.txt", link),
        ("inside.txt", "link_sibling/stolen.txt", link),
        ("inside.txt", ".git/hooks/post-checkout", git),
        ("inside.txt", "hooks/post-checkout", git),
        ("inside.txt", "sub/.git/x", git),
        ("../secret.txt", "stolen.txt", parent),
        ("link_out_dir/secret.txt", "stolen.txt", link),
        ("link_out_file", "stolen.txt", link),
    ];
    for dry_run in [true, false] {
        let before = snapshot(&f.tmp);
        for (from, to, needle) in cases {
            let r = call(
                &client,
                "apply_patch",
                json!({ "patch": rename_patch(from, to), "dry_run": dry_run }),
            )
            .await;
            assert_refused(
                &r,
                needle,
                &format!("apply_patch rename {from} -> {to} (dry_run {dry_run})"),
            );
        }
        assert_same_tree(&before, &snapshot(&f.tmp), "a refused rename");
    }
}

/// A rename exactly as `git diff -M` writes it moves the files it names.
#[tokio::test]
async fn a_git_rename_between_directories_moves_the_named_file() {
    let f = Fixture::new();
    // Decoy: a file at the root with the same name as the renamed one.
    f.env.write("file.txt", "root decoy\n");
    f.env.git(&["add", "file.txt"]);
    f.env.git(&["commit", "-q", "-m", "decoy"]);
    std::fs::create_dir_all(f.env.path("moved")).unwrap();
    f.env.git(&["mv", "sub/file.txt", "moved/file.txt"]);
    let patch = f.env.git(&["diff", "--cached", "-M", "--no-color"]);
    assert!(patch.contains("rename from sub/file.txt"), "{patch}");
    f.env.git(&["reset", "-q", "--hard"]);
    assert_eq!(f.env.read("sub/file.txt"), "sub file\n");
    let client = f.env.client().await;
    let r = call(&client, "apply_patch", json!({ "patch": patch, "dry_run": true })).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(structured(&r)["files"][0]["path"], "moved/file.txt", "{}", text(&r));
    assert_eq!(structured(&r)["files"][0]["old_path"], "sub/file.txt", "{}", text(&r));
    let r = call(&client, "apply_patch", json!({ "patch": patch })).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(f.env.read("moved/file.txt"), "sub file\n");
    assert!(!f.env.path("sub/file.txt").exists());
    assert_eq!(
        f.env.read("file.txt"),
        "root decoy\n",
        "the decoy at the root was touched"
    );
}

/// `paths` naming the workspace root itself (`.` or its absolute path) means
/// the whole workspace, like `git diff -- .`.
#[tokio::test]
async fn git_diff_paths_naming_the_root_show_every_change() {
    let f = Fixture::new();
    f.env.write("inside.txt", "changed\n");
    let client = f.env.client().await;
    let root = f.env.ws.display().to_string();
    for paths in [json!(["."]), json!([root.clone()]), json!([format!("{root}/")])] {
        let r = call(&client, "git_diff", json!({ "paths": paths })).await;
        assert!(!is_error(&r), "git_diff {paths}: {}", text(&r));
        assert_eq!(
            structured(&r)["files"][0]["path"],
            "inside.txt",
            "git_diff {paths}: {}",
            text(&r)
        );
    }
}

// ---------------------------------------------------------------- property

mod property {
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    use execlayer::workspace::{Access, Workspace};
    use proptest::prelude::*;

    /// A fixed tree: `<tmp>/ws` with directories, links that stay inside,
    /// links out (file, directory, dangling, relative, to the sibling `ws2`),
    /// a link loop and a link into `.git`.
    fn tree() -> &'static (tempfile::TempDir, Workspace, PathBuf) {
        static TREE: OnceLock<(tempfile::TempDir, Workspace, PathBuf)> = OnceLock::new();
        TREE.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let tmp = dir.path().canonicalize().unwrap();
            let ws = tmp.join("ws");
            for d in ["ws/a/b", "ws/b", "ws/.git/hooks", "ws2", "ws-old", "out"] {
                std::fs::create_dir_all(tmp.join(d)).unwrap();
            }
            for f in ["ws/a/file", "ws/b/file", "ws2/file", "out/file", "secret"] {
                std::fs::write(tmp.join(f), "x").unwrap();
            }
            let links: &[(&str, PathBuf)] = &[
                ("ws/link_out", tmp.join("out")),
                ("ws/link_out_file", tmp.join("secret")),
                ("ws/link_dangling", tmp.join("out/nothing")),
                ("ws/ws2", tmp.join("ws2")),
                ("ws/link_rel_out", PathBuf::from("../out")),
                ("ws/a/up", PathBuf::from("..")),
                ("ws/a/up2", PathBuf::from("../..")),
                ("ws/a/b/upup", PathBuf::from("../../..")),
                ("ws/link_in", PathBuf::from("a")),
                ("ws/link_abs_in", ws.join("b")),
                ("ws/link_root", PathBuf::from(".")),
                ("ws/loop1", PathBuf::from("loop2")),
                ("ws/loop2", PathBuf::from("loop1")),
                ("ws/link_git", PathBuf::from(".git/hooks")),
                ("ws/a/link_out_via_up", PathBuf::from("up/link_out")),
            ];
            for (at, target) in links {
                symlink(target, tmp.join(at)).unwrap();
            }
            let workspace = Workspace::new(&ws).unwrap();
            assert_eq!(workspace.root(), ws);
            (dir, workspace, tmp)
        })
    }

    const SEGMENTS: &[&str] = &[
        "..",
        ".",
        "a",
        "b",
        "file",
        "up",
        "up2",
        "upup",
        "link_out",
        "link_out_file",
        "link_dangling",
        "link_rel_out",
        "link_in",
        "link_abs_in",
        "link_root",
        "link_git",
        "link_out_via_up",
        "loop1",
        "ws2",
        "ws",
        "ws-old",
        ".git",
        ".GIT",
        "hooks",
        "/",
        "//",
        "\\",
        "%2e%2e",
        "..\\..",
        "...",
        "new",
        "\0",
        "~",
        "secret",
    ];

    fn raw_path() -> impl Strategy<Value = String> {
        let (_, ws, tmp) = tree();
        let prefixes = vec![
            String::new(),
            "/".to_owned(),
            format!("{}/", ws.root().display()),
            format!("{}", ws.root().display()),
            format!("{}2/", ws.root().display()),
            format!("{}-old/", ws.root().display()),
            format!("{}/", tmp.display()),
        ];
        (
            prop::sample::select(prefixes),
            prop::collection::vec(prop::sample::select(SEGMENTS), 0..8),
            prop::collection::vec(prop::bool::ANY, 8),
        )
            .prop_map(|(prefix, segs, slashes)| {
                let mut s = prefix;
                for (i, seg) in segs.iter().enumerate() {
                    // Sometimes glue segments together, sometimes separate them.
                    if i > 0 && slashes[i] {
                        s.push('/');
                    }
                    s.push_str(seg);
                }
                s
            })
    }

    /// Where the kernel would end up: the longest existing ancestor,
    /// canonicalized, plus the rest.
    fn kernel_view(p: &Path) -> Option<PathBuf> {
        let mut existing = p.to_path_buf();
        let mut rest = Vec::new();
        loop {
            if let Ok(c) = existing.canonicalize() {
                let mut out = c;
                for r in rest.iter().rev() {
                    out.push(r);
                }
                return Some(out);
            }
            rest.push(existing.file_name()?.to_owned());
            if !existing.pop() {
                return None;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn resolve_either_refuses_or_stays_inside_the_root(raw in raw_path(), write in prop::bool::ANY) {
            let (_, ws, _) = tree();
            let access = if write { Access::Write } else { Access::Read };
            if let Ok(p) = ws.resolve(&raw, access) {
                let root = ws.root();
                prop_assert!(
                    p.physical().starts_with(root),
                    "{raw:?} resolved to {} outside {}", p.physical().display(), root.display()
                );
                prop_assert_eq!(p.physical().strip_prefix(root).unwrap(), p.relative());
                prop_assert!(!raw.contains('\0'));
                // What the operating system would reach from the physical path
                // (links in the part that exists followed) is inside too.
                if let Some(real) = kernel_view(p.physical()) {
                    prop_assert!(
                        real.starts_with(root),
                        "{raw:?} resolved to {} which the OS reaches as {}", p.physical().display(), real.display()
                    );
                }
                // Also from the raw argument itself, when it exists.
                let joined = if raw.starts_with('/') { PathBuf::from(&raw) } else { root.join(&raw) };
                if let Ok(real) = joined.canonicalize() {
                    prop_assert!(real.starts_with(root), "{raw:?} reaches {} through the OS", real.display());
                    prop_assert_eq!(real.as_path(), p.physical(), "{:?} resolves unlike the OS", raw);
                }
                if write {
                    prop_assert!(
                        p.relative().components().all(|c| !c.as_os_str().to_string_lossy().eq_ignore_ascii_case(".git")),
                        "{raw:?} allowed a write to {}", p.relative().display()
                    );
                }
            }
        }
    }

    #[test]
    fn the_fixed_tree_has_both_outcomes() {
        let (_, ws, _) = tree();
        assert!(ws.resolve("link_in/file", Access::Read).is_ok());
        assert!(ws.resolve("a/up/b/file", Access::Read).is_ok());
        assert!(ws.resolve("link_root/link_abs_in/file", Access::Write).is_ok());
        for bad in [
            "a/up2/secret",
            "a/b/upup/secret",
            "link_out/file",
            "a/link_out_via_up",
            "ws2/file",
            "loop1",
        ] {
            assert!(ws.resolve(bad, Access::Read).is_err(), "{bad}");
        }
        assert!(ws.resolve("link_git/x", Access::Write).is_err());
    }
}
