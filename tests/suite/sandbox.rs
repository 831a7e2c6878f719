//! The sandbox around commands, tried from outside: an allowlisted
//! `python3 escape.py ...` (a script the agent could have written) tries each
//! escape, and the test checks what happened, not what the script says: the
//! file did not appear, the listener saw no connection, no secret came back.
//! The same escapes succeed with `EXECUTION_SANDBOX=off`, so these tests can
//! fail. Toolchains (git, cargo, python) still work inside.

use std::io::ErrorKind;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use rmcp::ServiceExt;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};

use crate::common::*;

const ALLOWLIST: &str = "python3 escape.py,git status,git diff,git log,ls,cargo check,cargo test,python3 -m unittest";

/// A workspace (a git repository holding `escape.py`) with a sibling project
/// and a fake home beside it, each holding a secret.
struct Room {
    env: TestEnv,
    sibling: PathBuf,
    home: PathBuf,
}

const SIBLING_SECRET: &str = "SIBLING-PROJECT-SECRET-7f3a";
const KEY_SECRET: &str = "PRIVATE-KEY-SECRET-91bc";

impl Room {
    fn new(mode: &str) -> Self {
        let mut env = TestEnv::new();
        env.set_var("SHELL_ALLOWLIST", ALLOWLIST);
        env.set_var("EXECUTION_SANDBOX", mode);
        env.init_repo(&[("README.md", "hello\n")]);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sandbox/escape.py");
        env.write("escape.py", std::fs::read(script).unwrap());
        let root = env.ws.parent().unwrap().to_path_buf();
        let sibling = root.join("sibling");
        std::fs::create_dir_all(&sibling).unwrap();
        std::fs::write(sibling.join("secret.txt"), SIBLING_SECRET).unwrap();
        let home = root.join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".ssh/id_rsa"), KEY_SECRET).unwrap();
        std::fs::write(home.join(".bashrc"), "# original\n").unwrap();
        Self { env, sibling, home }
    }
}

/// Runs `python3 escape.py ARGS`; the script's one line of output.
async fn escape(client: &Client, args: &str) -> String {
    let r = call(
        client,
        "shell_exec",
        json!({ "command": format!("python3 escape.py {args}") }),
    )
    .await;
    assert!(!is_error(&r), "the script itself must run: {}", text(&r));
    structured(&r)["stdout"].as_str().unwrap_or_default().trim().to_owned()
}

async fn shell(client: &Client, command: &str) -> rmcp::model::CallToolResult {
    call(client, "shell_exec", json!({ "command": command })).await
}

/// Paths outside the workspace (and inside `.git`) that a command writes.
fn write_targets(room: &Room, tmp_name: &str) -> Vec<PathBuf> {
    vec![
        room.sibling.join("planted.txt"),
        room.home.join(".bashrc"),
        std::env::temp_dir().join(tmp_name),
        room.env.ws.join(".git/hooks/pre-commit"),
        room.env.ws.join(".git/config"),
    ]
}

fn escaped(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains("escaped"))
}

#[tokio::test]
async fn writes_outside_the_workspace_and_into_git_metadata_do_not_happen() {
    let room = Room::new("auto");
    let client = room.env.client().await;
    let tmp_name = format!("execlayer-escape-{}", std::process::id());
    for target in write_targets(&room, &tmp_name) {
        let said = escape(&client, &format!("write {}", target.display())).await;
        assert!(!escaped(&target), "{} was written: {said}", target.display());
        assert!(said.starts_with("failed"), "{said}");
    }
    assert_eq!(
        std::fs::read_to_string(room.home.join(".bashrc")).unwrap(),
        "# original\n"
    );
    // The controls: the workspace and the private temp directory are writable,
    // and the temp directory is gone after the call.
    let said = escape(&client, "write inside.txt").await;
    assert!(escaped(&room.env.path("inside.txt")), "{said}");
    let said = escape(&client, "tmp").await;
    let tmp = said
        .strip_prefix("ok: tmp ")
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(said.ends_with("scratch"), "{said}");
    assert!(!Path::new(tmp).exists(), "the private TMPDIR outlived the call: {tmp}");
    // git still updates what it needs inside .git.
    room.env.write("README.md", "changed\n");
    let r = shell(&client, "git status --short").await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(
        structured(&r)["stdout"].as_str().unwrap().contains("README.md"),
        "{}",
        text(&r)
    );
}

#[tokio::test]
async fn reads_of_home_and_sibling_projects_fail_also_through_a_symlink() {
    let room = Room::new("auto");
    let client = room.env.client().await;
    let key = room.home.join(".ssh/id_rsa");
    let secret = room.sibling.join("secret.txt");
    for args in [
        format!("read {}", key.display()),
        format!("read {}", secret.display()),
        format!("symlink {} key-link", key.display()),
        format!("symlink {} sibling-link", secret.display()),
    ] {
        let said = escape(&client, &args).await;
        assert!(
            !said.contains(KEY_SECRET) && !said.contains(SIBLING_SECRET),
            "{args}: {said}"
        );
        assert!(said.starts_with("failed"), "{args}: {said}");
    }
    let said = escape(&client, "read README.md").await;
    assert_eq!(said, "ok: read hello", "reading the workspace must work");
}

#[tokio::test]
async fn no_tcp_connection_no_udp_datagram_and_no_reading_the_server_environment() {
    let room = Room::new("auto");
    let client = room.env.client().await;
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let said = escape(&client, &format!("tcp {}", tcp.local_addr().unwrap().port())).await;
    assert_eq!(
        tcp.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock),
        "the listener saw a connection: {said}"
    );
    let said = escape(&client, &format!("udp {}", udp.local_addr().unwrap().port())).await;
    let mut buf = [0u8; 64];
    assert_eq!(
        udp.recv_from(&mut buf).map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock),
        "a datagram arrived: {said}"
    );
    // The server here is this test process: dumpable, so only the sandbox
    // (Landlock's ptrace scope) stands between the command and its environ.
    let said = escape(&client, "environ parent").await;
    assert!(said.starts_with("failed"), "{said}");
    assert!(!said.contains("PATH="), "{said}");
}

/// The same escapes with the sandbox off: each one is observable, so the
/// tests above would see it if the sandbox let it through.
#[tokio::test]
async fn with_the_sandbox_off_the_same_escapes_are_observable() {
    let room = Room::new("off");
    let client = room.env.client().await;
    let tmp_name = format!("execlayer-escape-off-{}", std::process::id());
    for target in write_targets(&room, &tmp_name) {
        let said = escape(&client, &format!("write {}", target.display())).await;
        assert!(
            escaped(&target),
            "{} was not written with the sandbox off: {said}",
            target.display()
        );
    }
    let _ = std::fs::remove_file(std::env::temp_dir().join(&tmp_name));
    let said = escape(
        &client,
        &format!("symlink {} key-link", room.home.join(".ssh/id_rsa").display()),
    )
    .await;
    assert!(said.contains(KEY_SECRET), "{said}");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let said = escape(&client, &format!("tcp {}", tcp.local_addr().unwrap().port())).await;
    tcp.set_nonblocking(true).unwrap();
    assert!(tcp.accept().is_ok(), "no connection with the sandbox off: {said}");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let said = escape(&client, &format!("udp {}", udp.local_addr().unwrap().port())).await;
    udp.set_nonblocking(true).unwrap();
    assert!(
        udp.recv_from(&mut [0u8; 64]).is_ok(),
        "no datagram with the sandbox off: {said}"
    );
    let said = escape(&client, "environ parent").await;
    assert!(said.contains("PATH="), "{said}");
    let audit = room.env.audit_lines();
    let line = audit.iter().rev().find(|l| l["tool"] == "shell_exec").unwrap();
    assert_eq!(line["sandbox"], "off (EXECUTION_SANDBOX=off)");
}

#[tokio::test]
async fn git_cargo_python_and_ls_work_inside() {
    let room = Room::new("auto");
    let env = &room.env;
    env.write("README.md", "hello\nmore\n");
    env.write(
        "tiny/Cargo.toml",
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    );
    env.write(
        "tiny/src/lib.rs",
        "pub fn add(a: i32, b: i32) -> i32 { a + b }\n#[cfg(test)]\nmod tests { #[test] fn adds() { assert_eq!(super::add(2, 2), 4); } }\n",
    );
    env.write("pkg/__init__.py", "");
    env.write(
        "pkg/test_math.py",
        "import tempfile, unittest\nclass T(unittest.TestCase):\n    def test_add(self):\n        with tempfile.NamedTemporaryFile() as f:\n            f.write(b'x')\n        self.assertEqual(1 + 1, 2)\n",
    );
    let client = env.client().await;
    for command in [
        "git status",
        "git diff",
        "git log --oneline",
        "ls -la",
        "python3 -m unittest discover -s pkg -t .",
        "cargo check --offline --manifest-path tiny/Cargo.toml",
        "cargo test --offline --manifest-path tiny/Cargo.toml",
    ] {
        let r = call(
            &client,
            "shell_exec",
            json!({ "command": command, "timeout_secs": 300 }),
        )
        .await;
        assert!(!is_error(&r), "`{command}` failed inside the sandbox:\n{}", text(&r));
        if command == "git diff" {
            assert!(
                structured(&r)["stdout"].as_str().unwrap().contains("+more"),
                "{}",
                text(&r)
            );
        }
    }
    // Each command's audit line says how it was confined.
    let lines = env.audit_lines();
    let shells: Vec<&Value> = lines.iter().filter(|l| l["tool"] == "shell_exec").collect();
    assert_eq!(shells.len(), 7);
    for line in shells {
        let sandbox = line["sandbox"].as_str().unwrap_or_default();
        assert!(
            sandbox.contains("landlock abi") && sandbox.contains("network off"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn brain_status_and_the_approval_question_say_what_is_in_force() {
    let room = Room::new("auto");
    let client = room.env.client().await;
    let r = call(&client, "brain_status", json!({})).await;
    let sandbox = &structured(&r)["sandbox"];
    assert_eq!(sandbox["mode"], "auto");
    assert_eq!(sandbox["enforced"], true);
    assert!(
        sandbox["landlock_abi"].as_u64().is_some_and(|abi| abi >= 1),
        "this kernel must offer Landlock for these tests: {sandbox}"
    );
    assert!(sandbox["seccomp"].as_str().unwrap().contains("AF_UNIX"), "{sandbox}");
    assert!(text(&r).contains("sandbox: auto (enforced)"), "{}", text(&r));

    // The REST door and `execlayer status` report the same.
    let server = room.env.http().await;
    let rest = server.get_json("/api/v1/brain/status").await;
    assert_eq!(rest["sandbox"]["landlock_abi"], sandbox["landlock_abi"], "{rest}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_execlayer"))
        .arg("status")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(room.env.vars.iter())
        .env("OLLAMA_BASE_URL", "http://127.0.0.1:9")
        .current_dir(room.env.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("sandbox: auto (enforced)") && stdout.contains("landlock: ABI "),
        "{stdout}"
    );

    let strict = TestEnv::strict();
    let client = strict.client().await;
    let r = shell(&client, "git status").await;
    assert_tool_error(
        &r,
        "runs sandboxed: writes only in the workspace and a private temp directory, no network",
    );
}

#[tokio::test]
async fn playbook_shell_steps_run_in_the_sandbox() {
    let room = Room::new("auto");
    let client = room.env.client().await;
    let planted = room.sibling.join("from-playbook.txt");
    let steps = json!([
        { "tool": "shell_exec", "args": { "command": format!("python3 escape.py write {}", planted.display()) } },
        { "tool": "shell_exec", "args": { "command": "python3 escape.py write inside.txt" } },
    ]);
    let r = call(&client, "run_playbook", json!({ "steps": steps })).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(!planted.exists(), "a playbook step wrote outside the workspace");
    assert!(escaped(&room.env.path("inside.txt")), "{}", text(&r));
    let audit = room.env.audit_lines();
    let steps: Vec<&Value> = audit
        .iter()
        .filter(|l| l["tool"] == "shell_exec" && l["door"] == "playbook")
        .collect();
    assert_eq!(steps.len(), 2, "{audit:?}");
    assert!(
        steps
            .iter()
            .all(|l| l["sandbox"].as_str().unwrap().contains("landlock abi"))
    );
}

/// Drops every capability (bounding set included, so an exec as root does not
/// get them back) in a child before exec: a reader without CAP_SYS_PTRACE,
/// whether the tests run as root (CI) or as a user.
fn drop_all_capabilities(cmd: &mut std::process::Command) {
    // SAFETY: only prctl and capset system calls on stack memory.
    unsafe { cmd.pre_exec(drop_capabilities_now) };
}

fn drop_capabilities_now() -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    // SAFETY: prctl with integer arguments; capset reads the two structs on the stack.
    unsafe {
        for cap in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        let header = Header {
            version: 0x2008_0522,
            pid: 0,
        };
        let data = [0u32; 6];
        if libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `cat FILE` run without capabilities; its stdout, or None when it failed.
fn read_without_capabilities(file: &str) -> Option<String> {
    let mut cmd = std::process::Command::new("cat");
    cmd.arg(file).stdin(Stdio::null()).stderr(Stdio::null());
    drop_all_capabilities(&mut cmd);
    let out = cmd.output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Server processes start without capabilities where the test says so, so
/// that as root (CI) only dumpability decides who may read them, as it does
/// for a user.
enum Start {
    /// As this test process is.
    Plain,
    WithoutCapabilities,
    Filtered(seccompiler::BpfProgram),
}

const TOKEN: &str = "sandbox-test-token-5d2e9c";

/// The real binary over stdio, with a token in its environment and `extra` variables.
async fn binary(env: &TestEnv, extra: &[(&str, &str)], start: Start) -> (Client, u32) {
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_execlayer")).configure(|c| {
        c.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", std::env::var("HOME").unwrap())
            .envs(env.vars.iter().filter(|(k, _)| *k != "HOME"))
            .env("EXECUTION_TOKEN", TOKEN)
            .envs(extra.iter().copied())
            .current_dir(env.dir.path());
        match start {
            Start::Plain => {}
            Start::WithoutCapabilities => {
                // SAFETY: as in `drop_all_capabilities`.
                unsafe { c.pre_exec(drop_capabilities_now) };
            }
            Start::Filtered(program) => {
                // SAFETY: prctl and seccomp system calls on memory prepared before the fork.
                unsafe {
                    c.pre_exec(move || {
                        seccompiler::apply_filter(&program).map_err(|e| std::io::Error::other(e.to_string()))
                    });
                }
            }
        }
    });
    let (transport, _) = TokioChildProcess::builder(cmd).stderr(Stdio::null()).spawn().unwrap();
    let pid = transport.id().unwrap();
    let config = client_config(
        rmcp::model::ProtocolVersion::V_2025_11_25,
        rmcp::model::ClientCapabilities::default(),
    );
    let client = config.serve(transport).await.expect("the binary serves");
    (client, pid)
}

#[tokio::test]
async fn the_token_is_out_of_reach_of_commands_and_of_processes_without_ptrace_rights() {
    for mode in ["off", "auto"] {
        let room = Room::new(mode);
        let (client, pid) = binary(&room.env, &[], Start::WithoutCapabilities).await;
        // A command asks for its parent's (the server's) environment.
        let said = escape(&client, "environ parent").await;
        assert!(!said.contains(TOKEN), "{mode}: {said}");
        // A process of the same user without CAP_SYS_PTRACE cannot read it at
        // all (the server is non-dumpable) ...
        let environ = format!("/proc/{pid}/environ");
        assert_eq!(
            read_without_capabilities(&environ),
            None,
            "{mode}: the environ was readable"
        );
        // ... though the same reader can read a dumpable process's environ.
        let mut sleeper = std::process::Command::new("sleep");
        sleeper.arg("30").env("MARKER", "dumpable-marker");
        drop_all_capabilities(&mut sleeper);
        let mut sleeper = sleeper.spawn().unwrap();
        let other = read_without_capabilities(&format!("/proc/{}/environ", sleeper.id()));
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert!(other.is_some_and(|e| e.contains("dumpable-marker")));
        // And whoever can read it (root with CAP_SYS_PTRACE) finds no token:
        // the server overwrote it once read.
        if let Ok(bytes) = std::fs::read(&environ) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(TOKEN),
                "{mode}: the token is in {environ}"
            );
        }
        client.cancel().await.unwrap();
    }
}

/// A seccomp filter for the server's whole process tree that makes the
/// Landlock system calls fail with ENOSYS: a kernel without Landlock.
fn no_landlock() -> seccompiler::BpfProgram {
    let rules = [
        libc::SYS_landlock_create_ruleset,
        libc::SYS_landlock_add_rule,
        libc::SYS_landlock_restrict_self,
    ]
    .into_iter()
    .map(|nr| (nr, Vec::new()))
    .collect();
    let filter = seccompiler::SeccompFilter::new(
        rules,
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::Errno(libc::ENOSYS as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap();
    filter.try_into().unwrap()
}

#[tokio::test]
async fn required_refuses_commands_on_a_kernel_without_landlock_and_auto_says_what_is_missing() {
    let room = Room::new("auto");
    let (client, _) = binary(
        &room.env,
        &[("EXECUTION_SANDBOX", "required")],
        Start::Filtered(no_landlock()),
    )
    .await;
    let said = call(
        &client,
        "shell_exec",
        json!({ "command": "python3 escape.py write inside.txt" }),
    )
    .await;
    assert_tool_error(&said, "EXECUTION_SANDBOX=required");
    assert_tool_error(&said, "Landlock is unavailable");
    assert!(!room.env.path("inside.txt").exists(), "the command ran");
    let status = call(&client, "brain_status", json!({})).await;
    assert_eq!(structured(&status)["sandbox"]["enforced"], false);
    let audit = room.env.audit_lines();
    let line = audit.iter().rev().find(|l| l["tool"] == "shell_exec").unwrap();
    assert!(line["sandbox"].as_str().unwrap().contains("refused"), "{line}");
    client.cancel().await.unwrap();

    // auto on the same kernel: the command runs with what is left (seccomp,
    // namespaces), and brain_status says Landlock is missing.
    let (client, _) = binary(&room.env, &[], Start::Filtered(no_landlock())).await;
    let status = call(&client, "brain_status", json!({})).await;
    let sandbox = &structured(&status)["sandbox"];
    assert_eq!(sandbox["landlock_abi"], Value::Null, "{sandbox}");
    assert!(sandbox["landlock"].as_str().unwrap().contains("ENOSYS"), "{sandbox}");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let said = escape(&client, &format!("udp {}", udp.local_addr().unwrap().port())).await;
    assert!(
        udp.recv_from(&mut [0u8; 64]).is_err(),
        "seccomp let a datagram out: {said}"
    );
    let said = escape(&client, "write .git/hooks/pre-commit").await;
    assert!(!escaped(&room.env.path(".git/hooks/pre-commit")), "{said}");
    client.cancel().await.unwrap();
}

/// Gives `path` and everything under it to `uid`.
fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

/// As a user without any right to mount (CI runs as root: the server is
/// started as `nobody`), the sandbox makes a user namespace to keep
/// `.git/hooks` and `.git/config` read-only, and says so.
#[tokio::test]
async fn without_root_a_user_namespace_keeps_git_hooks_and_config_read_only() {
    let room = Room::new("auto");
    // SAFETY: geteuid has no preconditions.
    let as_root = unsafe { libc::geteuid() } == 0;
    // `nobody` may not be able to reach the build tree (a clone in a private
    // temp folder): run a copy that lives in the room it owns.
    let exe = room.env.dir.path().join("execlayer");
    std::fs::copy(env!("CARGO_BIN_EXE_execlayer"), &exe).unwrap();
    if as_root {
        chown_tree(room.env.dir.path(), 65534);
    }
    let cmd = tokio::process::Command::new(&exe).configure(|c| {
        c.arg("serve")
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .envs(room.env.vars.iter())
            .current_dir(room.env.dir.path());
        if as_root {
            // SAFETY: setgroups, setgid and setuid system calls only.
            unsafe {
                c.pre_exec(|| {
                    if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(65534) != 0 || libc::setuid(65534) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    });
    let (transport, _) = TokioChildProcess::builder(cmd).stderr(Stdio::null()).spawn().unwrap();
    let config = client_config(
        rmcp::model::ProtocolVersion::V_2025_11_25,
        rmcp::model::ClientCapabilities::default(),
    );
    let client = config.serve(transport).await.expect("the binary serves");
    let status = call(&client, "brain_status", json!({})).await;
    let sandbox = &structured(&status)["sandbox"];
    assert!(
        sandbox["namespaces"]
            .as_str()
            .unwrap()
            .contains("user and mount namespace"),
        "{sandbox}"
    );
    assert!(
        sandbox["git_metadata"].as_str().unwrap().starts_with("read-only"),
        "{sandbox}"
    );
    for target in [".git/hooks/pre-commit", ".git/config"] {
        let said = escape(&client, &format!("write {target}")).await;
        assert!(!escaped(&room.env.path(target)), "{target} was written: {said}");
    }
    let said = escape(
        &client,
        &format!("write {}", room.sibling.join("planted.txt").display()),
    )
    .await;
    assert!(!escaped(&room.sibling.join("planted.txt")), "{said}");
    let said = escape(&client, "write inside.txt").await;
    assert!(escaped(&room.env.path("inside.txt")), "{said}");
    let r = shell(&client, "git status --short").await;
    assert!(!is_error(&r), "{}", text(&r));
    client.cancel().await.unwrap();
}

/// A command rule with `"network": true` gives that command, and only it,
/// the network: the listener sees its connection, while other commands stay
/// without one.
#[tokio::test]
async fn a_rule_granting_network_opens_it_for_that_command_only() {
    let room = Room::new("auto");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let port = tcp.local_addr().unwrap().port();
    room.env.set_policy(|p| {
        p["rules"] = json!([{
            "tool": "shell_exec",
            "command": format!("python3 escape.py tcp {port}"),
            "decision": "allow",
            "network": true
        }]);
    });
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let client = room.env.client().await;
    // Not the granted command (another port): no connection.
    let said = escape(&client, &format!("tcp {}", other.local_addr().unwrap().port())).await;
    assert!(said.starts_with("failed"), "{said}");
    assert_eq!(
        other.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock),
        "an ungranted command connected: {said}"
    );
    let said = escape(&client, &format!("tcp {port}")).await;
    let accepted = (0..50).any(|_| {
        if tcp.accept().is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        false
    });
    assert!(accepted, "the granted command could not connect: {said}");
    let last = room.env.audit_lines().pop().unwrap();
    assert!(last["rule"].as_str().is_some_and(|r| r.contains("rules[0]")), "{last}");
}

/// The operator socket approves pending calls for whoever connects: a
/// sandboxed command must not reach it (its folder is covered in the
/// command's mount namespace), while with the sandbox off it can.
#[tokio::test]
async fn a_command_cannot_reach_the_operator_socket_to_approve_its_own_calls() {
    for (mode, reachable) in [("auto", false), ("off", true)] {
        let room = Room::new(mode);
        let run = room.env.dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let (client, pid) = binary(
            &room.env,
            &[("XDG_RUNTIME_DIR", run.to_str().unwrap()), ("EXECUTION_SANDBOX", mode)],
            Start::Plain,
        )
        .await;
        let socket = run.join(format!("execlayer/{pid}.sock"));
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // The socket is live: the operator (this test) can connect.
        assert!(
            std::os::unix::net::UnixStream::connect(&socket).is_ok(),
            "{}",
            socket.display()
        );
        let said = escape(&client, &format!("unix {}", socket.display())).await;
        assert_eq!(said.starts_with("ok"), reachable, "sandbox {mode}: {said}");
        let _ = client.cancel().await;
    }
}
