//! git_status and git_diff against real repositories made with the git CLI.

use serde_json::{Value, json};

use crate::common::*;

/// A repository with one change of every kind.
fn busy_repo() -> TestEnv {
    let env = TestEnv::new();
    env.init_repo(&[
        ("keep.txt", "keep\n"),
        ("modify.txt", "one\ntwo\nthree\n"),
        ("staged.txt", "old\n"),
        ("delete.txt", "bye\n"),
        (
            "rename_me.txt",
            "a file that will move\nwith several lines\nso rename detection works\n",
        ),
    ]);
    env.write("modify.txt", "one\nTWO\nthree\n");
    env.write("staged.txt", "new\n");
    env.git(&["add", "staged.txt"]);
    std::fs::remove_file(env.path("delete.txt")).unwrap();
    env.git(&["mv", "rename_me.txt", "moved.txt"]);
    env.write("untracked/new.txt", "fresh\n");
    env
}

fn entry<'a>(status: &'a Value, path: &str) -> &'a Value {
    status["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("{path} missing from {status}"))
}

#[tokio::test]
async fn status_reports_every_kind_of_change() {
    let env = busy_repo();
    let client = env.client().await;
    let r = call(&client, "git_status", json!({})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let s = structured(&r);
    assert_eq!(s["branch"], "main");
    assert_eq!(s["clean"], false);
    assert_eq!(entry(s, "modify.txt")["worktree"], "modified");
    assert_eq!(entry(s, "modify.txt")["index"], Value::Null);
    assert_eq!(entry(s, "staged.txt")["index"], "modified");
    assert_eq!(entry(s, "delete.txt")["worktree"], "deleted");
    assert_eq!(entry(s, "moved.txt")["index"], "renamed");
    assert_eq!(entry(s, "moved.txt")["renamed_from"], "rename_me.txt");
    assert_eq!(
        entry(s, "untracked/")["worktree"],
        "untracked",
        "a folder of untracked files is one line, as git shows it"
    );
    assert!(s["entries"].as_array().unwrap().iter().all(|e| e["path"] != "keep.txt"));
    let t = text(&r);
    assert!(t.starts_with("## main"), "{t}");
    assert!(
        t.contains(" M modify.txt") && t.contains("?? untracked/\n") && t.contains("R  rename_me.txt -> moved.txt"),
        "{t}"
    );
    let r = call(&client, "git_status", json!({"untracked": "all"})).await;
    assert_eq!(entry(structured(&r), "untracked/new.txt")["worktree"], "untracked");
    let r = call(&client, "git_status", json!({"untracked": "no"})).await;
    assert!(!text(&r).contains("??"), "{}", text(&r));
    let refused = try_call(&client, "git_status", json!({"untracked": "some"})).await;
    let message = format!("{refused:?}");
    assert!(
        refused.is_err() && message.contains("unknown variant `some`") && message.contains("`normal`, `all`, `no`"),
        "{message}"
    );
}

#[tokio::test]
async fn status_reports_upstream_ahead_and_behind() {
    let env = TestEnv::new();
    let remote = env.dir.path().join("remote.git");
    git_in(
        env.dir.path(),
        &["init", "-q", "--bare", "-b", "main", remote.to_str().unwrap()],
    );
    env.init_repo(&[("a.txt", "a\n")]);
    env.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    env.git(&["push", "-q", "-u", "origin", "main"]);
    env.write("a.txt", "a2\n");
    env.git(&["commit", "-qam", "local 1"]);
    env.write("a.txt", "a3\n");
    env.git(&["commit", "-qam", "local 2"]);
    let client = env.client().await;
    let r = call(&client, "git_status", json!({})).await;
    let s = structured(&r);
    assert_eq!(s["upstream"], "origin/main");
    assert_eq!((s["ahead"].as_u64(), s["behind"].as_u64()), (Some(2), Some(0)));
    assert_eq!(s["clean"], true);
    assert!(text(&r).contains("[ahead 2]"));
}

/// The text block keeps the description's promise: HEAD (short id and
/// subject) and the upstream with ahead/behind counts, against a real remote.
#[tokio::test]
async fn status_text_shows_head_and_upstream_with_ahead_and_behind() {
    let env = TestEnv::new();
    env.init_repo(&[("a.txt", "a\n"), ("b.txt", "b\n")]);
    let remote = env.dir.path().join("remote.git");
    git_in(
        env.dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            env.ws.to_str().unwrap(),
            remote.to_str().unwrap(),
        ],
    );
    env.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    env.git(&["fetch", "-q", "origin"]);
    env.git(&["branch", "-q", "--set-upstream-to", "origin/main"]);
    // Someone else pushes a commit to the remote...
    let other = env.dir.path().join("other");
    git_in(
        env.dir.path(),
        &["clone", "-q", remote.to_str().unwrap(), other.to_str().unwrap()],
    );
    std::fs::write(other.join("b.txt"), "b from elsewhere\n").unwrap();
    git_in(&other, &["commit", "-qam", "remote change"]);
    git_in(&other, &["push", "-q", "origin", "main"]);
    env.git(&["fetch", "-q", "origin"]);
    // ...while we commit locally.
    env.write("a.txt", "a2\n");
    env.git(&["commit", "-qam", "Fix the frobnicator"]);
    let head = env.git(&["rev-parse", "HEAD"]).trim().to_owned();

    let client = env.client().await;
    let r = call(&client, "git_status", json!({})).await;
    let s = structured(&r);
    assert_eq!((s["ahead"].as_u64(), s["behind"].as_u64()), (Some(1), Some(1)));
    assert_eq!(s["head_subject"], "Fix the frobnicator");
    let t = text(&r);
    assert!(t.starts_with("## main...origin/main [ahead 1, behind 1]\n"), "{t}");
    assert!(
        t.contains(&format!("HEAD {} Fix the frobnicator\n", &head[..12])),
        "{t}"
    );

    // No upstream: the text says so rather than leaving it out.
    env.git(&["branch", "-q", "--unset-upstream"]);
    let t = text(&call(&client, "git_status", json!({})).await);
    assert!(t.starts_with("## main (no upstream)\nHEAD "), "{t}");
}

#[tokio::test]
async fn status_outside_a_repository_says_how_to_fix_it() {
    let env = TestEnv::new();
    let client = env.client().await;
    assert_tool_error(&call(&client, "git_status", json!({})).await, "git init");
}

#[tokio::test]
async fn diff_shows_unstaged_staged_and_against_a_revision() {
    let env = busy_repo();
    let client = env.client().await;

    let r = call(&client, "git_diff", json!({})).await;
    let t = text(&r);
    assert!(t.contains("-two\n+TWO\n"), "{t}");
    assert!(!t.contains("+new"), "staged changes are not in the unstaged diff: {t}");
    let files = structured(&r)["files"].as_array().unwrap().clone();
    let modify = files.iter().find(|f| f["path"] == "modify.txt").unwrap();
    assert_eq!(
        (modify["additions"].as_u64(), modify["deletions"].as_u64()),
        (Some(1), Some(1))
    );

    let r = call(&client, "git_diff", json!({"staged": true})).await;
    let t = text(&r);
    assert!(t.contains("-old\n+new\n"), "{t}");
    assert!(!t.contains("+TWO"));
    let files = structured(&r)["files"].as_array().unwrap().clone();
    let moved = files
        .iter()
        .find(|f| f["path"] == "moved.txt")
        .expect("rename in the staged diff");
    assert_eq!(moved["status"], "renamed");
    assert_eq!(moved["old_path"], "rename_me.txt");

    let r = call(
        &client,
        "git_diff",
        json!({"paths": ["modify.txt"], "context_lines": 0}),
    )
    .await;
    let files = structured(&r)["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), 1);
    assert!(
        !text(&r).lines().any(|l| l == " one"),
        "no context lines with context_lines 0: {}",
        text(&r)
    );

    env.git(&["add", "-A"]);
    env.git(&["commit", "-qm", "second"]);
    let r = call(&client, "git_diff", json!({"base": "HEAD~1"})).await;
    assert!(text(&r).contains("+TWO"), "{}", text(&r));
    let r = call(&client, "git_diff", json!({})).await;
    assert!(text(&r).contains("No differences"));
}

#[tokio::test]
async fn diff_refuses_option_like_and_unknown_revisions() {
    let env = busy_repo();
    let client = env.client().await;
    let outside = env.dir.path().join("x");
    let r = call(
        &client,
        "git_diff",
        json!({"base": format!("--output={}", outside.display())}),
    )
    .await;
    assert_tool_error(&r, "not a revision");
    assert!(!outside.exists());
    assert_tool_error(
        &call(&client, "git_diff", json!({"base": "no-such-branch"})).await,
        "does not name a commit",
    );
    assert_tool_error(&call(&client, "git_diff", json!({"paths": ["../etc"]})).await, "..");
}

#[tokio::test]
async fn a_workspace_inside_a_larger_repository_sees_only_its_own_paths() {
    let env = TestEnv::new();
    // The repository is the temp dir; the workspace is its `ws/` folder.
    let top = env.dir.path();
    git_in(top, &["init", "-q", "-b", "main"]);
    std::fs::write(top.join("outside.txt"), "secret\n").unwrap();
    env.write("inside.txt", "mine\n");
    git_in(top, &["add", "outside.txt", "ws/inside.txt"]);
    git_in(top, &["commit", "-qm", "init"]);
    std::fs::write(top.join("outside.txt"), "changed secret\n").unwrap();
    env.write("inside.txt", "changed\n");
    let client = env.client().await;
    let r = call(&client, "git_status", json!({})).await;
    let paths: Vec<&str> = structured(&r)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["inside.txt"]);
    let r = call(&client, "git_diff", json!({})).await;
    assert!(!text(&r).contains("secret"), "{}", text(&r));
    assert_eq!(structured(&r)["files"][0]["path"], "inside.txt");
}

/// A repository big enough for the two-thread scan agrees with `git status`.
#[tokio::test]
async fn status_of_a_large_repository_matches_the_git_cli() {
    let env = TestEnv::new();
    let mut files: Vec<(String, String)> = Vec::new();
    for d in 0..12 {
        for f in 0..100 {
            files.push((
                format!("pkg{d:02}/file{f:03}.txt"),
                format!("content {d} {f}\nsecond line\n"),
            ));
        }
    }
    files.push(("top.txt".into(), "top\n".into()));
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    env.init_repo(&borrowed);
    env.write("pkg00/file001.txt", "changed\n");
    env.write("pkg07/file050.txt", "changed too\n");
    std::fs::remove_file(env.path("pkg03/file003.txt")).unwrap();
    env.write("pkg11/new.txt", "staged new\n");
    env.git(&["add", "pkg11/new.txt"]);
    env.git(&["mv", "pkg02/file010.txt", "pkg09/moved.txt"]);
    env.write("pkg05/file005.txt", "staged and then changed again\n");
    env.git(&["add", "pkg05/file005.txt"]);
    env.write("pkg05/file005.txt", "and again\n");
    env.write("brand/new/dir.txt", "untracked\n");
    env.write("pkg04/untracked.txt", "untracked\n");
    env.write("top.txt", "top changed\n");

    let client = env.client().await;
    let r = call(&client, "git_status", json!({"untracked": "all"})).await;
    let mut ours: Vec<String> = structured(&r)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let code = |v: &Value| match v.as_str() {
                None => ' ',
                Some("added") => 'A',
                Some("modified") => 'M',
                Some("deleted") => 'D',
                Some("renamed") => 'R',
                Some("typechange") => 'T',
                Some("untracked") => '?',
                Some(other) => panic!("unexpected {other}"),
            };
            let (x, y) = if e["worktree"] == "untracked" {
                ('?', '?')
            } else {
                (code(&e["index"]), code(&e["worktree"]))
            };
            match e["renamed_from"].as_str() {
                Some(from) => format!("{x}{y} {from} -> {}", e["path"].as_str().unwrap()),
                None => format!("{x}{y} {}", e["path"].as_str().unwrap()),
            }
        })
        .collect();
    ours.sort();
    let mut theirs: Vec<String> = env
        .git(&["status", "--porcelain", "-uall"])
        .lines()
        .map(str::to_owned)
        .collect();
    theirs.sort();
    assert_eq!(ours, theirs);
}

/// git_diff asks only the files whose stat data differ from the index (as
/// `git diff` does); these are the cases where stat data alone would mislead.
#[tokio::test]
async fn diff_driven_by_stat_data_still_sees_every_change() {
    let env = TestEnv::new();
    let files: Vec<(String, String)> = (0..2_500)
        .map(|i| (format!("d{}/f{i}.txt", i % 7), format!("{i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    env.init_repo(&refs);
    // Same size, written right after the index: only "racily clean" checks catch it.
    env.write("d0/f0.txt", "X\n");
    // Touched, content unchanged: stat data differ, no difference to show.
    let touched = std::fs::File::options()
        .write(true)
        .open(env.path("d1/f1.txt"))
        .unwrap();
    touched
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    // Deleted, and made executable.
    std::fs::remove_file(env.path("d2/f2.txt")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.path("d3/f3.txt"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let client = env.client().await;

    let r = call(&client, "git_diff", json!({})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let mut seen: Vec<(String, String)> = structured(&r)["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let expected = [
        ("d0/f0.txt", "modified"),
        ("d2/f2.txt", "deleted"),
        ("d3/f3.txt", "modified"),
    ];
    assert_eq!(
        seen,
        expected.map(|(p, s)| (p.to_owned(), s.to_owned())),
        "{}",
        text(&r)
    );
    assert!(text(&r).contains("-0\n+X\n"), "{}", text(&r));
    assert!(text(&r).contains("new mode 100755"), "{}", text(&r));
    // The CLI agrees.
    let cli = env.git(&["diff", "--name-only"]);
    assert_eq!(cli.lines().collect::<Vec<_>>(), ["d0/f0.txt", "d2/f2.txt", "d3/f3.txt"]);

    // Limited to a path: only what is under it.
    let r = call(&client, "git_diff", json!({"paths": ["d2"]})).await;
    assert_eq!(structured(&r)["files"].as_array().unwrap().len(), 1);
    assert_eq!(structured(&r)["files"][0]["path"], "d2/f2.txt");
    // Nothing changed under a path: said so.
    let r = call(&client, "git_diff", json!({"paths": ["d4"]})).await;
    assert_eq!(text(&r), "No differences (index..worktree).\n");
}

/// Many changed files: the diff is shared between two threads; the files, their
/// counts and the order of the patch are still those of `git diff`.
#[tokio::test]
async fn a_diff_of_many_files_matches_git_numstat() {
    many_files_diff_matches_numstat(false).await;
}

/// The same where an attributes file rules out patches made from the blob and
/// the file's bytes: libgit2 diffs every file, split between two threads.
#[tokio::test]
async fn a_libgit2_diff_of_many_files_matches_git_numstat() {
    many_files_diff_matches_numstat(true).await;
}

async fn many_files_diff_matches_numstat(attributes: bool) {
    let env = TestEnv::new();
    let files: Vec<(String, String)> = (0..600)
        .map(|i| {
            (
                format!("m{}/f{i:03}.txt", i % 9),
                format!("line one {i}\nline two\nline three\n"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    env.init_repo(&refs);
    if attributes {
        std::fs::write(env.path(".git/info/attributes"), "*.txt diff\n").unwrap();
    }
    for i in (0..600).step_by(5) {
        let path = format!("m{}/f{i:03}.txt", i % 9);
        if i % 25 == 0 {
            std::fs::remove_file(env.path(&path)).unwrap();
        } else {
            env.write(&path, format!("line one {i}\nline 2\nline three\nand a fourth\n"));
        }
    }
    let client = env.client().await;
    let r = call(&client, "git_diff", json!({})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let mine: Vec<String> = structured(&r)["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}\t{}\t{}",
                f["additions"],
                f["deletions"],
                f["path"].as_str().unwrap()
            )
        })
        .collect();
    let cli: Vec<String> = env.git(&["diff", "--numstat"]).lines().map(str::to_owned).collect();
    assert_eq!(mine.len(), 120);
    assert_eq!(mine, cli);
    // The patch runs through the files in the same order.
    let patch = text(&r);
    let headers: Vec<&str> = patch
        .lines()
        .filter_map(|l| l.strip_prefix("diff --git a/"))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let cli_order: Vec<String> = cli.iter().map(|l| l.rsplit('\t').next().unwrap().to_owned()).collect();
    assert_eq!(headers, cli_order);
}

/// Changed plain files get their patches from the index blob and the file's
/// bytes (no libgit2 work-tree diff): the text must be byte for byte what
/// libgit2's own diff of the work tree prints, whatever the change.
#[tokio::test]
async fn plain_file_patches_are_libgit2s_own() {
    let env = TestEnv::new();
    let long: String = (0..200).map(|i| format!("fn item_{i}() {{ body {i} }}\n")).collect();
    let mut files: Vec<(String, String)> = vec![
        ("append.txt".into(), "one\ntwo\n".into()),
        ("no_newline.txt".into(), "first\nlast without newline".into()),
        ("gains_newline.txt".into(), "ends bare".into()),
        ("emptied.txt".into(), "soon gone\n".into()),
        ("crlf.txt".into(), "windows\r\nline\r\n".into()),
        ("long.rs".into(), long.clone()),
        ("binary.bin".into(), "text for now\n".into()),
        ("same_size.txt".into(), "abc\n".into()),
        ("exec.sh".into(), "echo 1\n".into()),
        ("deleted.txt".into(), "bye\n".into()),
    ];
    for i in 0..80 {
        files.push((format!("many/f{i:02}.txt"), format!("line {i}\n")));
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    env.init_repo(&refs);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.path("exec.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.git(&["add", "exec.sh"]);
    env.git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "exec"]);
    env.git(&["status", "--porcelain"]); // settle racily clean entries
    std::thread::sleep(std::time::Duration::from_millis(20));
    env.write("append.txt", "one\ntwo\nthree\n");
    env.write("no_newline.txt", "first\nchanged, still without newline");
    env.write("gains_newline.txt", "ends bare no more\n");
    env.write("emptied.txt", "");
    env.write("crlf.txt", "windows\r\nline two\r\n");
    env.write(
        "long.rs",
        long.replace("body 20 ", "BODY 20 ")
            .replace("body 150 ", "changed 150 "),
    );
    env.write("binary.bin", b"now \0 binary \0 bytes\n".as_slice());
    env.write("same_size.txt", "xyz\n"); // same size: libgit2 decides
    env.write("exec.sh", "echo 2 and more\n"); // executable: libgit2 decides
    std::fs::remove_file(env.path("deleted.txt")).unwrap();
    for i in (0..80).step_by(2) {
        env.write(&format!("many/f{i:02}.txt"), format!("line {i} changed\n"));
    }

    let client = env.client().await;
    // Last, with attributes in play (the patches are then libgit2's diff throughout).
    for (context, attributes) in [(3u32, false), (0, false), (10, false), (3, true)] {
        if attributes {
            env.write(".gitattributes", "*.bin -diff\n*.txt text eol=crlf\n");
        }
        let r = call(&client, "git_diff", json!({"context_lines": context})).await;
        assert!(!is_error(&r), "{}", text(&r));
        let repo = git2::Repository::open(env.path("")).unwrap();
        let mut opts = git2::DiffOptions::new();
        opts.context_lines(context);
        let diff = repo.diff_index_to_workdir(None, Some(&mut opts)).unwrap();
        let mut expected = Vec::new();
        diff.print(git2::DiffFormat::Patch, |_, _, line| {
            if matches!(line.origin(), '+' | '-' | ' ') {
                expected.push(line.origin() as u8);
            }
            expected.extend_from_slice(line.content());
            true
        })
        .unwrap();
        let t = text(&r);
        let (patch, note) = t.split_at(t.find("\n[execlayer: new (untracked) files").unwrap_or(t.len()));
        assert_eq!(patch, String::from_utf8_lossy(&expected), "context {context}");
        assert!(note.contains("not looked for"), "{note}");
        let files = structured(&r)["files"].as_array().unwrap().clone();
        assert_eq!(files.len(), diff.deltas().len());
        let binary = files.iter().find(|f| f["path"] == "binary.bin").unwrap();
        assert_eq!(binary["binary"], true);
        let numstat = env.git(&["diff", "--numstat"]);
        for f in &files {
            if f["binary"] == true {
                continue;
            }
            let line = format!(
                "{}\t{}\t{}",
                f["additions"],
                f["deletions"],
                f["path"].as_str().unwrap()
            );
            assert!(numstat.lines().any(|l| l == line), "{line} not in\n{numstat}");
        }
    }
}

/// git_status's work-tree half is computed from the index's stat data and a
/// walk for untracked files; whatever the case, it must say what
/// `git status --porcelain -uall` says.
#[tokio::test]
async fn status_agrees_with_the_git_cli() {
    let env = TestEnv::new();
    env.init_repo(&[
        (".gitignore", "*.log\nbuild/\n"),
        ("src/a.rs", "a\n"),
        ("src/b.rs", "b\n"),
        ("src/c.rs", "c\n"),
        ("docs/x.md", "x\n"),
        ("link_target.txt", "t\n"),
    ]);
    env.write("src/a.rs", "A\n"); // same size, racily clean
    std::fs::remove_file(env.path("src/b.rs")).unwrap();
    std::fs::remove_file(env.path("docs/x.md")).unwrap();
    std::os::unix::fs::symlink("link_target.txt", env.path("docs/x.md")).unwrap(); // typechange
    env.write("src/new.rs", "n\n");
    env.write("fresh/deep/er/file.txt", "f\n");
    env.write("app.log", "ignored\n");
    env.write("build/out.o", "ignored\n");
    env.write("excluded.tmp", "ignored through info/exclude\n");
    std::fs::write(env.path(".git/info/exclude"), "excluded.tmp\n").unwrap();
    std::fs::create_dir_all(env.path("nested")).unwrap();
    git_in(&env.path("nested"), &["init", "-q"]);
    env.write("nested/inner.txt", "inside another repository\n");
    env.write("src/staged.rs", "s\n");
    env.git(&["add", "src/staged.rs"]);

    let client = env.client().await;
    assert_status_is_the_clis(&env, &client).await;
}

/// Where the stat-data scan does not apply (`core.ignorecase`), libgit2 scans
/// the work tree, split by top-level folder between two threads from 1,000
/// index entries: the halves together must still say what `git status` says.
#[tokio::test]
async fn status_split_between_two_threads_agrees_with_the_git_cli() {
    let env = TestEnv::new();
    let files: Vec<(String, String)> = (0..1_200)
        .map(|i| (format!("d{}/f{i:04}.txt", i % 7), format!("file {i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    env.init_repo(&refs);
    env.git(&["config", "core.ignorecase", "true"]);
    for i in (0..1_200).step_by(37) {
        let path = format!("d{}/f{i:04}.txt", i % 7);
        if i % 3 == 0 {
            std::fs::remove_file(env.path(&path)).unwrap();
        } else {
            env.write(&path, format!("changed {i}\n"));
        }
    }
    env.write("d0/new.txt", "n\n");
    env.write("d6/deep/er/new.txt", "n\n");
    env.write("zz_new/one.txt", "n\n");
    env.write("d3/staged.txt", "s\n");
    env.git(&["add", "d3/staged.txt"]);

    let client = env.client().await;
    let all = assert_status_is_the_clis(&env, &client).await;
    assert!(all.len() > 30, "{all:?}");
}

/// git_status's lines (after the branch and HEAD lines) are exactly
/// `git status --porcelain`'s, in path order, in each of its untracked modes
/// (`all` = `-uall`, the default = git's default, `no` = `-uno`); returns the
/// lines with every untracked file.
async fn assert_status_is_the_clis(env: &TestEnv, client: &Client) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for (mode, flag) in [("all", "-uall"), ("normal", "-unormal"), ("no", "-uno")] {
        let args = if mode == "normal" {
            json!({})
        } else {
            json!({"untracked": mode})
        };
        let r = call(client, "git_status", args).await;
        assert!(!is_error(&r), "{}", text(&r));
        let mine: Vec<String> = text(&r)
            .lines()
            .skip(2)
            .filter(|l| !l.starts_with("nothing to commit"))
            .map(str::to_owned)
            .collect();
        let cli: Vec<String> = env
            .git(&["status", "--porcelain", flag])
            .lines()
            .map(str::to_owned)
            .collect();
        let mut cli_sorted = cli.clone();
        cli_sorted.sort_by(|a, b| a[3..].cmp(&b[3..]));
        let mut mine = mine;
        if mode == "normal" {
            // One deliberate difference: where a tracked file became a folder
            // of untracked files, `git status` (without -uall) shows nothing
            // for the folder; execlayer shows it, so its files are not missed.
            for gone in cli.iter().filter(|l| l.starts_with(" D ")) {
                let folder = format!("?? {}/", &gone[3..]);
                if mine.contains(&folder) && !cli.contains(&folder) && all.iter().any(|l| l.starts_with(&folder)) {
                    mine.retain(|l| *l != folder);
                }
            }
        }
        assert_eq!(
            mine,
            cli_sorted,
            "untracked: {mode}\nexeclayer:\n{}\ngit:\n{}",
            text(&r),
            cli.join("\n")
        );
        if mode == "all" {
            all = mine.clone();
        }
    }
    all
}

/// The layouts where stat data alone could mislead, or where the scan of
/// folders meets something other than plain files: each must read exactly as
/// `git status --porcelain -uall` reads it.
#[tokio::test]
async fn status_agrees_with_the_git_cli_in_harder_cases() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let mut files: Vec<(String, String)> = vec![
        (
            ".gitignore".into(),
            "*.tmp\n!keep.tmp\nlogs/\n!logs/important.log\n*.log\n".into(),
        ),
        ("tracked.log".into(), "tracked even though *.log is ignored\n".into()),
        ("gone/a.txt".into(), "a\n".into()),
        ("gone/deeper/b.txt".into(), "b\n".into()),
        ("exec.sh".into(), "echo hi\n".into()),
        ("touched.txt".into(), "same content\n".into()),
        ("recreated.txt".into(), "same content, new inode\n".into()),
        ("dashed-name.txt".into(), "dashed\n".into()),
        ("becomes_dir".into(), "a file now\n".into()),
    ];
    // Enough files for the scan to share folders between threads (4,000 a thread).
    for i in 0..4_200 {
        files.push((format!("bulk/d{}/f{i}.txt", i % 15), format!("{i}\n")));
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    env.init_repo(&refs);
    std::os::unix::fs::symlink("aaa", env.path("link_same_size")).unwrap();
    std::os::unix::fs::symlink("short", env.path("link_longer")).unwrap();
    // A submodule (a gitlink in the index) whose HEAD then moves on.
    std::fs::create_dir_all(env.path("sub")).unwrap();
    git_in(&env.path("sub"), &["init", "-q"]);
    std::fs::write(env.path("sub/s.txt"), "s\n").unwrap();
    git_in(&env.path("sub"), &["add", "s.txt"]);
    git_in(
        &env.path("sub"),
        &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "s"],
    );
    env.git(&["add", "link_same_size", "link_longer", "sub"]);
    env.git(&["add", "-f", "tracked.log"]);
    env.git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "links and a submodule",
    ]);
    std::fs::write(env.path("sub/s.txt"), "s2\n").unwrap();
    git_in(
        &env.path("sub"),
        &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "s2"],
    );

    // Settle the index (git status refreshes its stat data), then change things.
    env.git(&["status", "--porcelain"]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::remove_dir_all(env.path("gone")).unwrap(); // a deleted tracked folder
    std::fs::set_permissions(env.path("exec.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let touched = std::fs::File::options()
        .write(true)
        .open(env.path("touched.txt"))
        .unwrap();
    touched
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    std::fs::remove_file(env.path("recreated.txt")).unwrap();
    env.write("recreated.txt", "same content, new inode\n");
    std::fs::remove_file(env.path("link_same_size")).unwrap();
    std::os::unix::fs::symlink("bbb", env.path("link_same_size")).unwrap(); // same length
    std::fs::remove_file(env.path("link_longer")).unwrap();
    std::os::unix::fs::symlink("much-longer-target", env.path("link_longer")).unwrap();
    env.write("dashed-name.txt", "dashed, longer\n");
    env.write("tracked.log", "still tracked\n");
    env.write("bulk/d3/f3.txt", "X\n"); // same size as before
    // Written, staged, and changed again within the same instant: racily clean.
    env.write("racy.txt", "1\n");
    env.git(&["add", "racy.txt"]);
    env.write("racy.txt", "2\n");
    // Untracked: negated ignore rules, an empty folder, a link to a folder,
    // a fifo, an empty nested repository, deep folders.
    env.write("keep.tmp", "shown: negated\n");
    env.write("drop.tmp", "ignored\n");
    env.write("logs/important.log", "ignored with its folder\n");
    env.write("bulk/d7/new/deeper/n.txt", "untracked deep\n");
    std::fs::create_dir_all(env.path("empty/inner")).unwrap();
    std::os::unix::fs::symlink("bulk", env.path("link_to_dir")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(env.path("pipe"))
        .status()
        .unwrap();
    assert!(fifo.success());
    std::fs::create_dir_all(env.path("bare_nested")).unwrap();
    git_in(&env.path("bare_nested"), &["init", "-q"]);

    let client = env.client().await;
    let lines = assert_status_is_the_clis(&env, &client).await;
    // The cases above are all there (the comparison alone would pass if both missed one).
    for expected in [
        " D gone/a.txt",
        " D gone/deeper/b.txt",
        " M exec.sh",
        " M link_same_size",
        " M link_longer",
        " M sub",
        " M bulk/d3/f3.txt",
        " M tracked.log",
        " M dashed-name.txt",
        "AM racy.txt",
        "?? bare_nested/",
        "?? keep.tmp",
        "?? link_to_dir",
        "?? bulk/d7/new/deeper/n.txt",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected:?} missing from {lines:#?}"
        );
    }
    for absent in ["touched.txt", "recreated.txt", "drop.tmp", "logs/", "empty", "pipe"] {
        assert!(
            !lines.iter().any(|l| l.contains(absent)),
            "{absent} listed in {lines:#?}"
        );
    }

    // A tracked file that became a folder (with a file in it): libgit2's own
    // scan answers this one, and that scan leaves out a nested repository with
    // no files (git lists it), so that one goes first.
    std::fs::remove_dir_all(env.path("bare_nested")).unwrap();
    std::fs::remove_file(env.path("becomes_dir")).unwrap();
    env.write("becomes_dir/inside.txt", "x\n");
    // A tracked folder replaced by a link to another folder: its files are
    // deleted and the link is untracked (nothing is read through it).
    std::fs::remove_dir_all(env.path("bulk/d5")).unwrap();
    std::os::unix::fs::symlink("d6", env.path("bulk/d5")).unwrap();
    let lines = assert_status_is_the_clis(&env, &client).await;
    assert!(lines.iter().any(|l| l == " D becomes_dir"), "{lines:#?}");
    assert!(lines.iter().any(|l| l == " D bulk/d5/f5.txt"), "{lines:#?}");
    assert!(lines.iter().any(|l| l == "?? bulk/d5"), "{lines:#?}");
}

/// The staged half is remembered between calls only while HEAD and the index
/// stay the same: staging and committing from outside show at once.
#[tokio::test]
async fn status_sees_staging_and_commits_made_between_calls() {
    let env = TestEnv::new();
    env.init_repo(&[("a.txt", "a\n"), ("b.txt", "b\n")]);
    let client = env.client().await;
    assert!(assert_status_is_the_clis(&env, &client).await.is_empty());
    env.write("a.txt", "changed\n");
    assert_eq!(assert_status_is_the_clis(&env, &client).await, [" M a.txt"]);
    env.git(&["add", "a.txt"]);
    assert_eq!(assert_status_is_the_clis(&env, &client).await, ["M  a.txt"]);
    env.write("a.txt", "changed again\n");
    assert_eq!(assert_status_is_the_clis(&env, &client).await, ["MM a.txt"]);
    env.git(&["add", "a.txt"]);
    env.git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"]);
    assert!(assert_status_is_the_clis(&env, &client).await.is_empty());
    env.git(&["rm", "-q", "--cached", "b.txt"]);
    assert_eq!(assert_status_is_the_clis(&env, &client).await, ["D  b.txt", "?? b.txt"]);
}

/// An agent that created files and asks for the diff must not be told there
/// are no differences and nothing else: the whole-tree diff says new files
/// are not in it, a diff of named paths names the untracked ones, and with
/// `untracked: true` they come as new-file diffs that `git apply` recreates.
#[tokio::test]
async fn diff_names_untracked_files_and_includes_them_on_request() {
    let env = TestEnv::new();
    env.init_repo(&[
        (".gitignore", "target/\n"),
        ("src/lib.rs", include_str!("../../src/git.rs")),
    ]);
    env.write("src/worktree.rs", include_str!("../../src/git_worktree.rs"));
    env.write("docs/guide.md", include_str!("../../SECURITY.md"));
    env.write("docs/more/notes.md", "notes\n");
    env.write("target/debug/out.txt", "ignored\n");
    let client = env.client().await;

    let hint = "[execlayer: new (untracked) files were not looked for and are not in this diff";
    let r = call(&client, "git_diff", json!({})).await;
    let t = text(&r);
    // Clients (the Python SDK does) validate structured results against the
    // output schema: every property it requires is there, named untracked or not.
    let tools = client.list_all_tools().await.unwrap();
    let schema = tools
        .iter()
        .find(|t| t.name == "git_diff")
        .unwrap()
        .output_schema
        .clone()
        .unwrap();
    for required in schema["required"].as_array().unwrap() {
        assert!(
            structured(&r).get(required.as_str().unwrap()).is_some(),
            "{required} missing: {t}"
        );
    }
    assert!(
        t.starts_with("No differences in tracked files (index..worktree).") && t.contains(hint),
        "{t}"
    );
    let r = call(&client, "git_diff", json!({"paths": ["docs", "src", "target"]})).await;
    let t = text(&r);
    assert_eq!(
        structured(&r)["untracked"],
        json!(["docs/guide.md", "docs/more/notes.md", "src/worktree.rs"]),
        "{t}"
    );
    assert!(!t.contains("target/"), "ignored files are not named: {t}");
    assert!(!t.contains(hint), "{t}");

    // With a tracked change, the patch comes first and the note after it.
    env.write(
        "src/lib.rs",
        format!("{}// changed\n", include_str!("../../src/git.rs")),
    );
    let r = call(&client, "git_diff", json!({})).await;
    let t = text(&r);
    assert!(
        t.starts_with("diff --git a/src/lib.rs b/src/lib.rs") && t.contains(hint),
        "{t}"
    );
    let r = call(&client, "git_diff", json!({"paths": ["src"]})).await;
    let t = text(&r);
    assert!(t.starts_with("diff --git a/src/lib.rs b/src/lib.rs"), "{t}");
    assert!(
        t.contains("not in this diff, 1 untracked path (new, never added to git): src/worktree.rs. Pass `untracked: true` to include it"),
        "{t}"
    );

    // A named untracked file is named, not reported as unchanged.
    let r = call(&client, "git_diff", json!({"paths": ["docs/more/notes.md"]})).await;
    let t = text(&r);
    assert!(
        t.starts_with("No differences in tracked files") && t.contains("1 untracked path"),
        "{t}"
    );
    assert_eq!(structured(&r)["untracked"], json!(["docs/more/notes.md"]));
    let r = call(&client, "git_diff", json!({"base": "HEAD", "paths": ["docs/more"]})).await;
    assert_eq!(
        structured(&r)["untracked"],
        json!(["docs/more/notes.md"]),
        "{}",
        text(&r)
    );
    let r = call(&client, "git_diff", json!({"base": "HEAD"})).await;
    assert!(text(&r).contains(hint), "{}", text(&r));

    // With `untracked: true` the new files are diffed, and the patch recreates them.
    let r = call(&client, "git_diff", json!({"untracked": true})).await;
    let t = text(&r);
    assert!(!is_error(&r) && t.contains("new file mode 100644"), "{t}");
    assert!(structured(&r).get("untracked").is_none(), "{t}");
    let mut shown: Vec<(String, String)> = structured(&r)["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    shown.sort();
    let expected = [
        ("docs/guide.md", "untracked"),
        ("docs/more/notes.md", "untracked"),
        ("src/lib.rs", "modified"),
        ("src/worktree.rs", "untracked"),
    ];
    assert_eq!(
        shown,
        expected.map(|(p, s)| (p.to_owned(), s.to_owned())).to_vec(),
        "{t}"
    );
    let copy = tempfile::tempdir().unwrap();
    git_in(copy.path(), &["clone", "-q", env.ws.to_str().unwrap(), "."]);
    let scratch = tempfile::tempdir().unwrap();
    let patch = scratch.path().join("untracked.patch");
    std::fs::write(&patch, &t).unwrap();
    git_in(copy.path(), &["apply", patch.to_str().unwrap()]);
    for (path, _) in expected {
        assert_eq!(
            std::fs::read(copy.path().join(path)).unwrap(),
            std::fs::read(env.path(path)).unwrap(),
            "{path} as the patch recreates it"
        );
    }

    let r = call(&client, "git_diff", json!({"untracked": true, "staged": true})).await;
    assert_tool_error(&r, "`untracked` and `staged` cannot be combined");

    // A file moved by hand (the old name gone, the new one untracked) is a
    // rename with `untracked: true`, as `git add -N` then `git diff` shows
    // it, not a deletion and a new file; the patch moves it.
    std::fs::rename(env.path("src/lib.rs"), env.path("src/repo.rs")).unwrap();
    let r = call(&client, "git_diff", json!({"untracked": true, "paths": ["src"]})).await;
    let t = text(&r);
    assert!(t.contains("rename from src/lib.rs\nrename to src/repo.rs\n"), "{t}");
    assert!(t.contains("+// changed"), "{t}");
    assert!(!t.contains("deleted file mode"), "{t}");
    let files = structured(&r)["files"].as_array().unwrap().clone();
    let moved = files.iter().find(|f| f["path"] == "src/repo.rs").unwrap();
    assert_eq!(moved["status"], "renamed", "{t}");
    assert_eq!(
        (moved["additions"].as_u64(), moved["deletions"].as_u64()),
        (Some(1), Some(0))
    );
    git_in(copy.path(), &["checkout", "-q", "--", "."]);
    git_in(copy.path(), &["clean", "-qfd"]);
    std::fs::write(&patch, &t).unwrap();
    git_in(copy.path(), &["apply", patch.to_str().unwrap()]);
    assert!(!copy.path().join("src/lib.rs").exists());
    assert_eq!(
        std::fs::read(copy.path().join("src/repo.rs")).unwrap(),
        std::fs::read(env.path("src/repo.rs")).unwrap()
    );
    // Without `untracked`, git_diff says what git diff says: a deletion.
    let r = call(&client, "git_diff", json!({"paths": ["src"]})).await;
    assert!(text(&r).contains("deleted file mode"), "{}", text(&r));
}
