//! `shell_exec` through the real MCP client: what runs, what is refused before
//! anything runs, and that no process of a command outlives the call.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolResult;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::json;

use crate::common::*;

/// The allowlist these tests run with (set explicitly, so a change of the
/// harness default does not change what is tested): single programs, git
/// subcommands, and scripts by their exact argv.
const ALLOWLIST: &str = "git status,git diff,git log,ls,echo,cat,env,sleep,printf,sh ./scripts/build.sh";

/// A workspace with [`ALLOWLIST`].
fn shell_env() -> TestEnv {
    let mut env = TestEnv::new();
    env.set_var("SHELL_ALLOWLIST", ALLOWLIST);
    env
}

/// A workspace holding the helper scripts of `tests/fixtures/shell` in
/// `scripts/`, with each script allowlisted by its exact argv.
fn env_with_scripts() -> TestEnv {
    let mut env = shell_env();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shell");
    let mut allow = ALLOWLIST.to_owned();
    for entry in std::fs::read_dir(fixtures).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        env.write(&format!("scripts/{name}"), std::fs::read(&path).unwrap());
        allow.push_str(&format!(",sh ./scripts/{name},bash ./scripts/{name}"));
    }
    env.set_var("SHELL_ALLOWLIST", &allow);
    env
}

async fn shell(client: &Client, command: &str) -> CallToolResult {
    call(client, "shell_exec", json!({ "command": command })).await
}

/// Whether `pid` names a live (not zombie) `sleep` process. Checking the
/// command line guards against the PID being reused by something else.
fn sleep_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    if state == Some('Z') || state == Some('X') {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.starts_with(b"sleep"))
        .unwrap_or(false)
}

/// Waits up to 2 s for `pid` to be gone.
async fn gone_within_2s(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if !sleep_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    !sleep_alive(pid)
}

/// Reads the PID a script wrote into the workspace.
fn read_pid(env: &TestEnv, file: &str) -> i32 {
    env.read(file).trim().parse().expect("a pid")
}

/// Kills a test's leftover `sleep` should an assertion fail (only that PID,
/// and only while it still is our `sleep`).
struct Reap(i32);

impl Drop for Reap {
    fn drop(&mut self) {
        if sleep_alive(self.0) {
            // SAFETY: sends a signal to one process this test started.
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
            }
        }
    }
}

// ---------------------------------------------------------------- running

#[tokio::test]
async fn an_allowed_command_reports_exit_code_output_and_duration() {
    let env = shell_env();
    env.write("listed-file.txt", "x");
    let client = env.client().await;

    let r = shell(&client, "echo hello").await;
    assert!(!is_error(&r), "{}", text(&r));
    let s = structured(&r);
    assert_eq!(s["argv"], json!(["echo", "hello"]));
    assert_eq!(s["exit_code"], 0);
    assert_eq!(s["stdout"], "hello\n");
    assert_eq!(s["stderr"], "");
    assert_eq!(s["stdout_bytes"], 6);
    assert_eq!(s["timed_out"], false);
    assert_eq!(s["truncated"], false);
    assert!(s["duration_ms"].is_u64(), "{s}");
    assert!(text(&r).contains("exited with 0"), "{}", text(&r));
    assert!(text(&r).contains("hello"), "{}", text(&r));

    // Quotes group words; the program runs in the workspace root.
    let r = shell(&client, "printf '%s+%s' 'a b' c").await;
    assert_eq!(structured(&r)["stdout"], "a b+c");
    let r = shell(&client, "ls").await;
    assert!(structured(&r)["stdout"].as_str().unwrap().contains("listed-file.txt"));
}

#[tokio::test]
async fn a_non_zero_exit_is_an_error_that_still_carries_the_output() {
    let env = shell_env();
    let client = env.client().await;
    let r = shell(&client, "ls does-not-exist").await;
    assert!(is_error(&r), "a failing command must be an error result");
    let s = structured(&r);
    let code = s["exit_code"].as_i64().expect("exit_code present");
    assert_ne!(code, 0);
    assert!(s["stderr"].as_str().unwrap().contains("does-not-exist"), "{s}");
    assert_eq!(s["timed_out"], false);
    assert!(text(&r).contains(&format!("exited with {code}")), "{}", text(&r));
    assert!(text(&r).contains("does-not-exist"), "{}", text(&r));
}

// ---------------------------------------------------------------- refused before running

#[tokio::test]
async fn shell_metacharacters_are_refused_and_nothing_runs() {
    let env = shell_env();
    env.write("a.txt", "a\n");
    let client = env.client().await;
    let commands = [
        "echo hi; touch pwned",
        "echo hi;touch pwned",
        "echo hi && touch pwned",
        "ls does-not-exist || touch pwned",
        "echo hi | tee pwned",
        "echo hi\ntouch pwned",
        "echo hi\rtouch pwned",
        "echo $(touch pwned)",
        "echo ${IFS}pwned",
        "echo `touch pwned`",
        "echo hi > pwned",
        "echo hi >> pwned",
        "echo hi >pwned",
        "cat < a.txt",
        "cat <(touch pwned)",
        "echo >(touch pwned)",
        "sleep 1 &",
        "ls *",
        "cat ?.txt",
        "cat [a-z].txt",
        "echo {touch,pwned}",
    ];
    for command in commands {
        let r = shell(&client, command).await;
        assert_tool_error(&r, "no shell");
        assert!(text(&r).contains("unquoted"), "{command:?}: {}", text(&r));
        assert!(
            r.structured_content.is_none(),
            "{command:?} produced output: {:?}",
            r.structured_content
        );
        assert!(!env.path("pwned").exists(), "{command:?} ran something");
    }
    let r = shell(&client, "echo hi\0touch pwned").await;
    assert_tool_error(&r, "NUL");
    assert!(r.structured_content.is_none());
    let r = shell(&client, "cat ~/.ssh/id_rsa").await;
    assert_tool_error(&r, "`~`");
    assert!(r.structured_content.is_none());
    // The audit log records refusals as failures, never as successful runs.
    assert!(
        env.audit_lines()
            .iter()
            .filter(|l| l["tool"] == "shell_exec")
            .all(|l| l["outcome"] != "ok"),
        "{:?}",
        env.audit_lines()
    );
}

/// Regression: `python3 -c "import x; print(x.f())"` was refused for its `;`
/// and `(`, although quoted text is one argv word that no shell ever sees.
#[tokio::test]
async fn operators_inside_quotes_are_ordinary_characters() {
    let mut env = shell_env();
    env.set_var("SHELL_ALLOWLIST", &format!("{ALLOWLIST},python3 -c"));
    env.write("x", "keep me\n");
    let client = env.client().await;
    let r = shell(
        &client,
        r#"python3 -c "import sys; print(sys.version_info[0]); print('a;b')""#,
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(structured(&r)["stdout"], "3\na;b\n");

    // Nothing is expanded: `$( )` and backquotes inside quotes reach the program as text.
    let r = shell(
        &client,
        r#"echo 'a|b' "c && d" '$(touch pwned)' "`touch pwned` $HOME" a\;b"#,
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(
        structured(&r)["stdout"],
        "a|b c && d $(touch pwned) `touch pwned` $HOME a;b\n"
    );
    assert!(!env.path("pwned").exists());

    // The same operator unquoted is refused, naming it and what a shell would do.
    let r = shell(&client, "ls; rm -rf x").await;
    assert_tool_error(&r, "unquoted `;` at character 3");
    assert!(text(&r).contains("another command"), "{}", text(&r));
    assert!(r.structured_content.is_none());
    assert_eq!(env.read("x"), "keep me\n");
}

#[tokio::test]
async fn only_whole_allowlisted_words_match() {
    let env = shell_env();
    env.init_repo(&[("a.txt", "a\n")]);
    let client = env.client().await;
    for command in [
        "git statusx",
        "/usr/bin/git status",
        "./git status",
        "FOO=1 git status",
        "GIT_DIR=/etc git status",
        "gitstatus",
        "\"git status\"",
        "'git status'",
        "Git status",
        "git stat",
        "git",
        "sh -c 'touch pwned'",
        "bash -c 'touch pwned'",
        "sh ./scripts/../../pwn.sh",
        "lsx",
        "touch pwned",
        "",
        "   ",
    ] {
        let r = shell(&client, command).await;
        assert!(is_error(&r), "{command:?} was allowed: {}", text(&r));
        assert!(
            text(&r).contains("is not allowed") || text(&r).contains("is empty"),
            "{command:?}: {}",
            text(&r)
        );
        assert!(r.structured_content.is_none(), "{command:?} ran");
        assert!(!env.path("pwned").exists(), "{command:?} ran something");
    }
    // The same words, quoted or spaced differently, still match.
    for command in ["git status", "'git' \"status\"", "  git   status  --short"] {
        let r = shell(&client, command).await;
        assert!(!is_error(&r), "{command:?}: {}", text(&r));
        assert_eq!(structured(&r)["argv"][1], "status");
    }
}

#[tokio::test]
async fn git_options_that_write_run_or_read_outside_are_refused() {
    let env = shell_env();
    env.init_repo(&[("a.txt", "a\n")]);
    env.write("a.txt", "changed\n");
    let out = env.dir.path().join("out.txt");
    let client = env.client().await;
    let commands = [
        format!("git diff --output={}", out.display()),
        format!("git diff --output {}", out.display()),
        format!("git log -p --output={}", out.display()),
        "git diff --no-index /etc/passwd a.txt".to_owned(),
        "git diff --ext-diff".to_owned(),
        "git diff --textconv".to_owned(),
        "git diff -O/etc/passwd".to_owned(),
        "git log --exec-path=/tmp".to_owned(),
    ];
    for command in &commands {
        let r = shell(&client, command).await;
        assert_tool_error(&r, "is refused");
        assert!(r.structured_content.is_none(), "{command:?} ran");
        assert!(!out.exists(), "{command:?} wrote a file");
    }
    // Options after `--` are paths, not options.
    let r = shell(&client, "git log -- --output=x").await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(!env.path("x").exists());

    // With all of git allowed, global options (before the subcommand) are refused.
    let mut env2 = shell_env();
    env2.set_var("SHELL_ALLOWLIST", "git");
    env2.init_repo(&[("a.txt", "a\n")]);
    let client = env2.client().await;
    for command in [
        "git -c alias.x=!id x",
        "git -c 'alias.x=!touch pwned' x",
        "git -c core.fsmonitor='touch pwned' status",
        "git --config-env=core.pager=PATH log",
        "git -C /etc status",
        "git --git-dir=/tmp status",
        "git --exec-path=/tmp status",
        "git --work-tree=/ status",
    ] {
        let r = shell(&client, command).await;
        assert_tool_error(&r, "is refused");
        assert!(r.structured_content.is_none(), "{command:?} ran");
        assert!(!env2.path("pwned").exists(), "{command:?} ran something");
    }
}

#[tokio::test]
async fn timeout_secs_out_of_range_is_refused_naming_the_limit() {
    let env = env_with_scripts();
    let client = env.client().await;
    for t in [0u64, 601, 100_000] {
        let r = call(
            &client,
            "shell_exec",
            json!({"command": "sh ./scripts/background.sh", "timeout_secs": t}),
        )
        .await;
        assert_tool_error(&r, "timeout_secs must be from 1 to 600");
        assert!(text(&r).contains("SHELL_MAX_TIMEOUT_SECS"), "{}", text(&r));
        assert!(text(&r).contains(&t.to_string()), "{}", text(&r));
        assert!(!env.path("background.pid").exists(), "timeout {t}: the command ran");
    }
    let mut env = shell_env();
    env.set_var("SHELL_MAX_TIMEOUT_SECS", "5");
    let client = env.client().await;
    let r = call(&client, "shell_exec", json!({"command": "echo hi", "timeout_secs": 6})).await;
    assert_tool_error(&r, "from 1 to 5");
    let r = call(&client, "shell_exec", json!({"command": "echo hi", "timeout_secs": 5})).await;
    assert!(!is_error(&r), "{}", text(&r));
}

// ---------------------------------------------------------------- no process outlives the call

#[tokio::test]
async fn the_timeout_kills_the_command_and_its_grandchildren() {
    let env = env_with_scripts();
    let client = env.client().await;
    let started = Instant::now();
    let r = call(
        &client,
        "shell_exec",
        json!({"command": "bash ./scripts/spawn.sh", "timeout_secs": 1}),
    )
    .await;
    let took = started.elapsed();
    let pid = read_pid(&env, "grandchild.pid");
    let _reap = Reap(pid);
    assert!(is_error(&r), "a timeout is an error result: {}", text(&r));
    let s = structured(&r);
    assert_eq!(s["timed_out"], true, "{s}");
    assert!(s["exit_code"].is_null(), "{s}");
    assert!(text(&r).contains("timed out"), "{}", text(&r));
    assert!(took < Duration::from_secs(5), "the call took {took:?}");
    assert!(took >= Duration::from_millis(900), "the call took {took:?}");
    assert!(gone_within_2s(pid).await, "the grandchild {pid} outlived the timeout");
}

#[tokio::test]
async fn a_process_left_in_the_background_is_killed_when_the_command_exits() {
    let env = env_with_scripts();
    let client = env.client().await;
    let started = Instant::now();
    let r = shell(&client, "sh ./scripts/background.sh").await;
    let took = started.elapsed();
    let pid = read_pid(&env, "background.pid");
    let _reap = Reap(pid);
    assert!(!is_error(&r), "{}", text(&r));
    let s = structured(&r);
    assert_eq!(s["exit_code"], 0);
    assert_eq!(s["timed_out"], false);
    assert!(s["stdout"].as_str().unwrap().contains("started"), "{s}");
    // The background sleep holds stdout open: the call must not wait for it.
    assert!(took < Duration::from_secs(5), "the call took {took:?}");
    assert!(
        gone_within_2s(pid).await,
        "the background process {pid} outlived the call"
    );
}

/// A child that moves itself to a new session leaves the process group, so
/// killing the group misses it; the tool still promises that no process of the
/// command outlives the call.
#[tokio::test]
async fn a_process_that_leaves_the_process_group_is_killed_too() {
    let env = env_with_scripts();
    let client = env.client().await;
    let r = shell(&client, "sh ./scripts/setsid.sh").await;
    let pid = read_pid(&env, "setsid.pid");
    let _reap = Reap(pid);
    assert!(!is_error(&r), "{}", text(&r));
    assert!(
        gone_within_2s(pid).await,
        "the process {pid} started with setsid outlived the call"
    );
}

#[tokio::test]
async fn an_output_flood_is_capped_keeping_head_and_tail() {
    let env = env_with_scripts();
    let client = env.client().await;
    let started = Instant::now();
    let r = shell(&client, "sh ./scripts/flood.sh").await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!is_error(&r), "{}", &text(&r)[..text(&r).len().min(500)]);
    let s = structured(&r);
    let cap = 64 * 1024;
    let marker = 100;

    let stdout = s["stdout"].as_str().unwrap();
    assert_eq!(s["stdout_bytes"], 12 + 5_000_000 + 12, "the total is counted");
    assert_eq!(s["truncated"], true);
    assert!(stdout.len() <= cap + marker, "stdout is {} bytes", stdout.len());
    assert!(stdout.len() >= cap, "the cap keeps 64 KiB, got {}", stdout.len());
    assert!(
        stdout.starts_with("HEAD-MARKER\nflood line of text\n"),
        "{}",
        &stdout[..100]
    );
    assert!(stdout.ends_with("TAIL-MARKER\n"), "{}", &stdout[stdout.len() - 100..]);
    assert!(stdout.contains("bytes left out of the middle"));

    let stderr = s["stderr"].as_str().unwrap();
    assert_eq!(s["stderr_bytes"], 9 + 1_000_000 + 9);
    assert!(stderr.len() <= cap + marker, "stderr is {} bytes", stderr.len());
    assert!(stderr.starts_with("ERR-HEAD\n"));
    assert!(stderr.ends_with("ERR-TAIL\n"));

    // The readable text block is capped as well.
    let t = text(&r);
    assert!(t.len() <= 2 * (cap + marker) + 1024, "text is {} bytes", t.len());
    assert!(t.contains("HEAD-MARKER") && t.contains("TAIL-MARKER"));
}

// ---------------------------------------------------------------- environment

/// The real binary over stdio with secrets in its own environment: the
/// command sees ordinary variables but no secret.
#[tokio::test]
async fn secrets_in_the_server_environment_never_reach_the_command() {
    let env = shell_env();
    let secrets = [
        ("EXECUTION_TOKEN", "super-secret-token-123"),
        ("GITHUB_TOKEN", "gh-secret"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-value"),
        ("OPENAI_API_KEY", "sk-openai-secret"),
        ("DATABASE_PASSWORD", "db-password-value"),
        ("EXECUTION_STATE_KEY", "state-key-0123456789abcdef0123456789abcdef"),
    ];
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_execlayer")).configure(|c| {
        c.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .envs(env.vars.iter())
            .envs(secrets)
            .env("HARMLESS", "visible")
            .current_dir(env.dir.path());
    });
    let (transport, _) = TokioChildProcess::builder(cmd).stderr(Stdio::null()).spawn().unwrap();
    let client = ().serve(transport).await.expect("the binary serves");
    let r = call(&client, "shell_exec", json!({"command": "env"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let stdout = structured(&r)["stdout"].as_str().unwrap().to_owned();
    assert!(stdout.contains("HARMLESS=visible"), "{stdout}");
    for (name, value) in secrets {
        assert!(!stdout.contains(value), "{name}'s value reached the command:\n{stdout}");
        assert!(
            !stdout.contains(&format!("{name}=")),
            "{name} reached the command:\n{stdout}"
        );
    }
    // Nor do the server's own settings (paths of its config and audit log).
    assert!(!stdout.lines().any(|l| l.starts_with("EXECUTION_")), "{stdout}");
    assert!(!text(&r).contains("super-secret-token-123"));
    client.cancel().await.unwrap();
    let audit = std::fs::read_to_string(&env.audit).unwrap_or_default();
    for (name, value) in secrets {
        assert!(!audit.contains(value), "{name}'s value is in the audit log");
    }
}

// ---------------------------------------------------------------- git through the shell

/// `git diff` through shell_exec shows the changes (the safety settings given
/// to git must not break it).
#[tokio::test]
async fn git_diff_through_the_shell_shows_changes() {
    let env = shell_env();
    env.init_repo(&[("a.txt", "a\n")]);
    env.write("a.txt", "changed\n");
    let client = env.client().await;
    let r = shell(&client, "git diff").await;
    let s = structured(&r);
    assert!(!is_error(&r), "git diff failed: {s}");
    assert!(s["stdout"].as_str().unwrap().contains("+changed"), "{s}");
}

/// Plants repository settings that run programs (as a hostile clone or a
/// shared workspace could carry) and returns the marker path each would create.
fn hostile_repo(env: &TestEnv, key: &str, marker: &str) -> PathBuf {
    env.init_repo(&[("a.txt", "a\n"), (".gitattributes", "* filter=evil diff=evil\n")]);
    let marker_path = env.dir.path().join(marker);
    env.git(&["config", key, &format!("touch {}; cat", marker_path.display())]);
    // Changed content with a new mtime, so git must look at the file.
    std::thread::sleep(Duration::from_millis(1100));
    env.write("a.txt", "changed\n");
    marker_path
}

#[tokio::test]
async fn git_status_in_a_hostile_repository_runs_no_fsmonitor() {
    let env = shell_env();
    let marker = hostile_repo(&env, "core.fsmonitor", "pwned-fsmonitor");
    let client = env.client().await;
    let r = shell(&client, "git status --short").await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(!marker.exists(), "git status ran core.fsmonitor");
}

#[tokio::test]
async fn git_status_in_a_hostile_repository_runs_no_clean_filter() {
    let env = shell_env();
    let marker = hostile_repo(&env, "filter.evil.clean", "pwned-clean-filter");
    let client = env.client().await;
    let r = shell(&client, "git status --short").await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(
        !marker.exists(),
        "`git status` ran the repository's filter.evil.clean program"
    );
}

#[tokio::test]
async fn git_log_in_a_hostile_repository_runs_no_textconv() {
    let env = shell_env();
    let marker = hostile_repo(&env, "diff.evil.textconv", "pwned-textconv");
    env.git(&["commit", "-q", "-am", "second"]);
    let _ = std::fs::remove_file(&marker);
    let client = env.client().await;
    let r = shell(&client, "git log -p").await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(
        !marker.exists(),
        "`git log -p` ran the repository's diff.evil.textconv program"
    );
}
