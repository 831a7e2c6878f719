//! Criterion micro-benchmarks of the hot paths: path confinement, the
//! allowlist, patch parse + apply, an audit append, a whole gated call
//! next to the same tool run directly (the cost of the gate and the audit),
//! what 100 policy rules add to a call (subject + verdict), and the approval
//! state in memory next to Redis (a `redis-server` started on a free loopback
//! port; skipped when it is not installed).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use execlayer::audit::{AuditLog, AuditRecord, Decision, Door};
use execlayer::engine::{ApprovalSource, CallOptions, Caller, Engine};
use execlayer::policy::Risk;
use execlayer::settings::{RawEnv, Settings, parse_allowlist};
use execlayer::tools::{Tool, ToolContext};
use execlayer::workspace::{Access, Workspace};
use serde_json::json;

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
}

fn fixture() -> Fixture {
    fixture_with("auto", &[])
}

fn fixture_with(mode: &str, extra: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("src/deep/er")).expect("mkdir");
    let line = "the quick brown fox jumps over the lazy dog 0123456789\n";
    std::fs::write(ws.join("small.txt"), line.repeat(1024 / line.len() + 1)).expect("write");
    std::fs::write(
        ws.join("src/deep/er/lib.rs"),
        (0..200).map(|i| format!("line {i}\n")).collect::<String>(),
    )
    .expect("write");
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"approval_mode":"{mode}","approval_ttl_seconds":300,"approval_timeout_seconds":120,"max_steps_per_run":10,"max_retries_per_tool":2}}"#
        ),
    )
    .expect("policy");
    let mut env = RawEnv::new();
    env.insert("HOME".into(), dir.path().display().to_string());
    env.insert("EXECUTION_WORKSPACE_ROOT".into(), ws.display().to_string());
    env.insert("EXECUTION_CONFIG".into(), policy.display().to_string());
    env.insert(
        "EXECUTION_AUDIT_LOG".into(),
        dir.path().join("audit.jsonl").display().to_string(),
    );
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let settings = Settings::from_env(&env, dir.path()).expect("settings");
    Fixture {
        engine: Engine::new(settings).expect("engine"),
        _dir: dir,
    }
}

fn confinement(c: &mut Criterion) {
    let f = fixture();
    let ws: &Workspace = &f.engine.workspace;
    c.bench_function("workspace/resolve_read_nested", |b| {
        b.iter(|| ws.resolve(black_box("src/deep/er/lib.rs"), Access::Read))
    });
    c.bench_function("workspace/resolve_write_new", |b| {
        b.iter(|| ws.resolve(black_box("src/deep/er/new_file.rs"), Access::Write))
    });
    c.bench_function("workspace/refuse_escape", |b| {
        b.iter(|| ws.resolve(black_box("../../etc/passwd"), Access::Read))
    });
}

fn allowlist(c: &mut Criterion) {
    let rules = parse_allowlist(execlayer::settings::DEFAULT_SHELL_ALLOWLIST).expect("allowlist");
    c.bench_function("shell/check_command", |b| {
        b.iter(|| execlayer::command::check_command(black_box("cargo test -p core -- --nocapture"), &rules))
    });
}

fn patch(c: &mut Criterion) {
    let f = fixture();
    let diff = "--- a/src/deep/er/lib.rs\n+++ b/src/deep/er/lib.rs\n@@ -99,3 +99,4 @@\n line 98\n line 99\n+inserted\n line 100\n@@ -150,3 +151,3 @@\n line 149\n-line 150\n+LINE 150\n line 151\n";
    c.bench_function("patch/plan_two_hunks", |b| {
        b.iter(|| execlayer::patch::plan(&f.engine.workspace, black_box(diff)).expect("plan"))
    });
}

fn audit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(&dir.path().join("audit.jsonl")).expect("audit");
    let record = AuditRecord {
        ts: execlayer::audit::now_rfc3339(),
        request_id: "0123456789abcdef0123456789abcdef".into(),
        door: Door::Stdio,
        client: Some("bench".into()),
        tool: "filesystem_read".into(),
        risk: Risk::Low,
        args_digest: "0".repeat(64),
        args_preview: r#"{"path":"small.txt"}"#.into(),
        decision: Decision::Allowed,
        approval: None,
        rule: None,
        remember: None,
        dry_run: false,
        outcome: Some("ok".into()),
        error: None,
        duration_ms: 0,
        run_id: None,
        step: None,
        sandbox: None,
    };
    c.bench_function("audit/append", |b| {
        b.iter(|| log.append(black_box(&record)).expect("append"))
    });
}

/// A read through the whole gate (policy, digest, audit) and the same read
/// run directly: the difference is what the gate costs.
fn gate(c: &mut Criterion) {
    let f = fixture();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let args = json!({"path": "small.txt"}).as_object().cloned();
    let caller = Caller::new(Door::Stdio);
    c.bench_function("gate/filesystem_read_1KiB", |b| {
        b.iter(|| {
            rt.block_on(f.engine.call(
                &caller,
                "filesystem_read",
                args.clone(),
                ApprovalSource::IdOnly,
                CallOptions::default(),
            ))
            .expect("call")
        })
    });
    let ctx = ToolContext {
        workspace: f.engine.workspace.clone(),
        settings: f.engine.settings.clone(),
        cancel: Default::default(),
        progress: Default::default(),
        policy: f.engine.policy.current(),
        engine: Default::default(),
        git: Default::default(),
        sandbox: f.engine.sandbox.clone(),
        grant: Default::default(),
        confinement: Default::default(),
    };
    // A 5,000-line source file, whole, plain and numbered as `cat -n` numbers
    // it, and as three files of one call: what line numbers and `paths` cost.
    let source: String = (0..5000)
        .map(|i| format!("    let value_{i} = compute(input, {i}); // a line of code\n"))
        .collect();
    for name in ["big.rs", "big2.rs", "big3.rs"] {
        std::fs::write(f.engine.workspace.root().join(name), &source).expect("write");
    }
    for (label, args) in [
        ("gate/filesystem_read_5000_lines", json!({"path": "big.rs"})),
        (
            "gate/filesystem_read_5000_lines_numbered",
            json!({"path": "big.rs", "line_numbers": true}),
        ),
        (
            "gate/filesystem_read_3x5000_lines_paths",
            json!({"paths": [{"path": "big.rs"}, {"path": "big2.rs"}, {"path": "big3.rs"}], "max_bytes": 16_000_000}),
        ),
    ] {
        let args = args.as_object().cloned();
        c.bench_function(label, |b| {
            b.iter(|| {
                rt.block_on(f.engine.call(
                    &caller,
                    "filesystem_read",
                    args.clone(),
                    ApprovalSource::IdOnly,
                    CallOptions::default(),
                ))
                .expect("call")
            })
        });
    }
    let tool = execlayer::tools::filesystem_read::FilesystemRead;
    c.bench_function("direct/filesystem_read_1KiB", |b| {
        b.iter(|| {
            let params = execlayer::tools::filesystem_read::Params {
                target: execlayer::tools::filesystem_read::Target::One("small.txt".into()),
                offset: None,
                limit: None,
                max_bytes: None,
                line_numbers: false,
            };
            rt.block_on(tool.run(&ctx, params)).expect("read")
        })
    });
}

/// 100 rules over several tools, commands and path globs; none of them
/// matches the benchmarked calls until the last, so every rule is looked at.
fn hundred_rules() -> execlayer::policy::RuleSet {
    let mut rules = Vec::new();
    for i in 0..98 {
        let rule = match i % 3 {
            0 => json!({"tool": "shell_exec", "command": format!("tool{i} sub{i}"), "decision": "allow"}),
            1 => json!({"tool": "filesystem_write", "path": format!("area{i}/**/*.md"), "decision": "allow"}),
            _ => json!({"tool": "apply_patch", "path": format!("mod{i}/**"), "decision": "ask"}),
        };
        rules.push(rule);
    }
    rules.push(json!({"tool": "shell_exec", "command": "cargo test", "decision": "allow"}));
    rules.push(json!({"tool": "filesystem_write", "path": "src/**", "decision": "ask"}));
    serde_json::from_value(json!(rules)).expect("rules")
}

/// What rules add to a call: working out what it touches, then the verdict.
fn rules(c: &mut Criterion) {
    let f = fixture();
    let set = hundred_rules();
    assert_eq!(set.len(), 100);
    let mut policy = (*f.engine.policy.current()).clone();
    policy.rules = set.clone();
    let policy = Arc::new(policy);
    let argv = execlayer::policy::Subject::argv(vec!["cargo".into(), "test".into(), "-p".into(), "core".into()]);
    c.bench_function("rules/evaluate_100_command", |b| {
        b.iter(|| set.evaluate(black_box("shell_exec"), black_box(&argv)).expect("match"))
    });
    let paths = execlayer::policy::Subject::paths(Ok::<_, ()>(vec!["src/deep/er/lib.rs".into()]));
    c.bench_function("rules/evaluate_100_path", |b| {
        b.iter(|| {
            set.evaluate(black_box("filesystem_write"), black_box(&paths))
                .expect("match")
        })
    });
    let ctx = ToolContext {
        workspace: f.engine.workspace.clone(),
        settings: f.engine.settings.clone(),
        cancel: Default::default(),
        progress: Default::default(),
        policy: policy.clone(),
        engine: Default::default(),
        git: Default::default(),
        sandbox: f.engine.sandbox.clone(),
        grant: Default::default(),
        confinement: Default::default(),
    };
    let write = f.engine.registry.get("filesystem_write").expect("tool");
    let prepared = write
        .prepare(json!({"path": "src/deep/er/lib.rs", "content": "x"}))
        .expect("prepare");
    c.bench_function("rules/gate_cost_100_write", |b| {
        b.iter(|| {
            let subject = prepared.subject(&ctx);
            f.engine
                .rule_verdict(&policy, "filesystem_write", &subject, &[], &ctx)
                .expect("verdict")
        })
    });
    let shell = f.engine.registry.get("shell_exec").expect("tool");
    let prepared = shell
        .prepare(json!({"command": "cargo test -p core"}))
        .expect("prepare");
    c.bench_function("rules/gate_cost_100_command", |b| {
        b.iter(|| {
            let subject = prepared.subject(&ctx);
            f.engine
                .rule_verdict(&policy, "shell_exec", &subject, &[], &ctx)
                .expect("verdict")
        })
    });
}

/// `edit_file` on a 5,000-line file next to `filesystem_read` of the same file,
/// both through the gate (the goal: the edit costs at most 1.2× the read).
fn editing(c: &mut Criterion) {
    let f = fixture();
    let text: String = (0..5000)
        .map(|i| format!("    let value_{i} = compute(input_{i}, {i}); // line {i}\n"))
        .collect();
    std::fs::write(f.engine.workspace.root().join("big.rs"), &text).expect("write");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let caller = Caller::new(Door::Stdio);
    let call = |tool: &str, args: serde_json::Value| {
        rt.block_on(f.engine.call(
            &caller,
            tool,
            args.as_object().cloned(),
            ApprovalSource::IdOnly,
            CallOptions::default(),
        ))
        .expect("call")
    };
    c.bench_function("gate/filesystem_read_5000_lines", |b| {
        b.iter(|| call("filesystem_read", json!({"path": "big.rs"})))
    });
    let (a, z) = ("compute(input_2500, 2500)", "compute(input_2500, 2501)");
    let mut flip = false;
    c.bench_function("gate/edit_file_5000_lines", |b| {
        b.iter(|| {
            flip = !flip;
            let (old, new) = if flip { (a, z) } else { (z, a) };
            call(
                "edit_file",
                json!({"path": "big.rs", "old_string": old, "new_string": new}),
            )
        })
    });
    c.bench_function("gate/edit_file_5000_lines_dry_run", |b| {
        b.iter(|| {
            let old = if flip { z } else { a };
            call(
                "edit_file",
                json!({"path": "big.rs", "old_string": old, "new_string": "x", "dry_run": true}),
            )
        })
    });
}

/// Placing a hunk whose line number is 40 lines off, near the end of files
/// of growing size: the time must grow linearly with the file.
fn placement(c: &mut Criterion) {
    for n in [1_000usize, 10_000, 100_000] {
        let base: String = (0..n).map(|i| format!("fn item_{i}() -> u32 {{ {i} }}\n")).collect();
        let at = n - 10;
        let patch = format!(
            "--- a/f.rs\n+++ b/f.rs\n@@ -{},3 +{},3 @@\n fn item_{}() -> u32 {{ {} }}\n-fn item_{}() -> u32 {{ {} }}\n+fn item_{}() -> u32 {{ 0 }}\n fn item_{}() -> u32 {{ {} }}\n",
            at - 40,
            at - 40,
            at - 1,
            at - 1,
            at,
            at,
            at,
            at + 1,
            at + 1
        );
        let files = execlayer::patch::parse::parse(&patch).expect("parse");
        c.bench_function(&format!("patch/place_{n}_lines"), |b| {
            b.iter(|| execlayer::patch::place::apply(black_box(&base), &files[0].hunks, "f.rs").expect("place"))
        });
    }
}

/// A `redis-server` on a free loopback port, killed when dropped.
struct Redis(std::process::Child, u16);

impl Redis {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = std::env::temp_dir();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let mut redis = Self(child, port);
        // Up to 20 s: a loaded machine starts it slowly.
        for _ in 0..2000 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(redis);
            }
            if let Ok(Some(status)) = redis.0.try_wait() {
                eprintln!("redis-server exited at start: {status}");
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None // dropping `redis` kills it
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The approval state's cost, in memory and through Redis: one used
/// requestState (`SET NX`), one operator cycle (request → decide → consume),
/// and a whole approved write through the gate (grant, then the call that
/// consumes it).
fn state(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let redis = Redis::start();
    if redis.is_none() {
        eprintln!(
            "redis-server could not be started (apt-get install redis-server): only the memory store is measured"
        );
    }
    let key = "0123456789abcdef0123456789abcdef";
    let url = redis.as_ref().map(|r| format!("redis://127.0.0.1:{}/0", r.1));
    let mut stores = vec![("memory", fixture_with("require_approval", &[]))];
    if let Some(url) = &url {
        let extra = [("EXECUTION_STATE_URL", url.as_str()), ("EXECUTION_STATE_KEY", key)];
        stores.push(("redis", fixture_with("require_approval", &extra)));
    }
    let ttl = std::time::Duration::from_secs(60);
    let caller = Caller::new(Door::Rest);
    for (name, f) in &stores {
        let state = &f.engine.state;
        c.bench_function(&format!("state/{name}/consume_request_state"), |b| {
            b.iter(|| {
                let nonce = execlayer::state::new_id();
                assert!(rt.block_on(state.consume_nonce(&nonce, ttl)).expect("store"));
            })
        });
        let mut n = 0u64;
        c.bench_function(&format!("state/{name}/operator_cycle"), |b| {
            b.iter(|| {
                n += 1;
                let digest = format!("{n:064x}");
                rt.block_on(async {
                    let p = state
                        .request("filesystem_write", &digest, "write", Risk::Medium, ttl)
                        .await
                        .expect("request");
                    state.decide(&p.id, true, "op", ttl).await.expect("decide");
                    state
                        .consume(&p.id, "filesystem_write", &digest)
                        .await
                        .expect("consume")
                })
            })
        });
        c.bench_function(&format!("gate/{name}/approved_write_1KiB"), |b| {
            let content = "x".repeat(1024);
            b.iter(|| {
                rt.block_on(async {
                    let grant = state
                        .grant_tool("filesystem_write", Risk::Medium, "op", ttl)
                        .await
                        .expect("grant");
                    let args = json!({"path": "out.txt", "content": content, "approval_id": grant.id});
                    let outcome = f
                        .engine
                        .call(
                            &caller,
                            "filesystem_write",
                            args.as_object().cloned(),
                            ApprovalSource::IdOnly,
                            CallOptions::default(),
                        )
                        .await
                        .expect("call");
                    let execlayer::engine::CallOutcome::Done(r) = outcome else {
                        panic!("no input expected")
                    };
                    assert!(!r.is_error, "{}", r.text);
                })
            })
        });
    }
}

criterion_group!(
    benches,
    confinement,
    allowlist,
    patch,
    audit,
    gate,
    editing,
    placement,
    rules,
    state
);
criterion_main!(benches);
