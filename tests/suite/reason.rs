//! `reason` and `brain_status` against a loopback double of Ollama's API.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rmcp::model::{ClientCapabilities, ClientConfig, ProgressNotificationParam, ProtocolVersion};
use rmcp::service::NotificationContext;
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Value, json};

use crate::common::ollama::{FakeOllama, RunningOllama, Script};
use crate::common::*;

const PRIMARY: &str = "deepseek-r1:8b";
const FALLBACK: &str = "qwen2.5:7b";

fn answer(content: &str) -> Script {
    Script::Answer {
        content: content.to_owned(),
        thinking: None,
    }
}

fn env_for(ollama: &RunningOllama) -> TestEnv {
    let mut env = TestEnv::new();
    env.set_var("OLLAMA_BASE_URL", &ollama.url());
    env.set_var("OLLAMA_REASONING_MODEL", PRIMARY);
    env.set_var("OLLAMA_REASONING_FALLBACK", FALLBACK);
    env.set_var("OLLAMA_STALL_TIMEOUT_SECS", "1");
    env
}

#[derive(Clone, Default)]
struct Counter {
    progress: Arc<AtomicUsize>,
}

impl ClientHandler for Counter {
    fn get_info(&self) -> ClientConfig {
        client_config(ProtocolVersion::V_2025_11_25, ClientCapabilities::default())
    }

    async fn on_progress(&self, _p: ProgressNotificationParam, _c: NotificationContext<RoleClient>) {
        self.progress.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn the_primary_model_answers_with_context_and_progress() {
    let ollama = FakeOllama::default()
        .with_model(
            PRIMARY,
            Script::Answer {
                content: "The diff renames a function.".into(),
                thinking: Some("Let me look.".into()),
            },
        )
        .with_model(FALLBACK, answer("unused"))
        .start()
        .await;
    let env = env_for(&ollama);
    env.write("src/lib.rs", "pub fn renamed() {}\n");
    let counter = Counter::default();
    let client = env.client_with(counter.clone()).await;
    let r = call(
        &client,
        "reason",
        json!({"prompt": "What changed?", "system": "Be brief.", "context_paths": ["src/lib.rs"], "think": true, "temperature": 0.2, "max_tokens": 100}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    let s = structured(&r);
    assert_eq!(s["model"], PRIMARY);
    assert_eq!(s["fell_back"], false);
    assert_eq!(s["content"], "The diff renames a function.");
    assert_eq!(s["thinking"], "Let me look.");
    assert_eq!(
        (s["prompt_eval_count"].as_u64(), s["eval_count"].as_u64()),
        (Some(26), Some(42))
    );
    assert_eq!(s["total_duration_ms"], 1500);
    assert_eq!(s["done_reason"], "stop");
    assert!(
        counter.progress.load(Ordering::SeqCst) >= 3,
        "progress while tokens stream"
    );

    let sent = &ollama.requests()[0];
    assert_eq!(sent["model"], PRIMARY);
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["think"], true);
    assert_eq!(sent["options"]["temperature"], 0.2);
    assert_eq!(sent["options"]["num_predict"], 100);
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "Be brief."}));
    let user = sent["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.starts_with("What changed?") && user.contains("pub fn renamed()"),
        "{user}"
    );

    assert_tool_error(
        &call(
            &client,
            "reason",
            json!({"prompt": "x", "context_paths": ["../etc/passwd"]}),
        )
        .await,
        "..",
    );
}

#[tokio::test]
async fn a_missing_primary_falls_back_and_says_so() {
    let ollama = FakeOllama::default()
        .with_model(FALLBACK, answer("Fallback answer."))
        .start()
        .await;
    let env = env_for(&ollama);
    let client = env.client().await;
    let r = call(&client, "reason", json!({"prompt": "Hello?"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let s = structured(&r);
    assert_eq!(
        (s["model"].as_str(), s["fell_back"].as_bool()),
        (Some(FALLBACK), Some(true))
    );
    assert!(s["fallback_reason"].as_str().unwrap().contains("not installed"), "{s}");
    assert!(text(&r).contains("fallback model"));
    let models: Vec<Value> = ollama.requests().iter().map(|r| r["model"].clone()).collect();
    assert_eq!(models, [json!(PRIMARY), json!(FALLBACK)]);
}

#[tokio::test]
async fn a_failing_primary_falls_back_but_both_missing_is_a_clear_error() {
    let ollama = FakeOllama::default()
        .with_model(PRIMARY, Script::Fail)
        .with_model(FALLBACK, answer("ok"))
        .start()
        .await;
    let client = env_for(&ollama).client().await;
    let r = call(&client, "reason", json!({"prompt": "Hello?"})).await;
    assert_eq!(structured(&r)["fell_back"], true);

    let empty = FakeOllama::default().start().await;
    let client = env_for(&empty).client().await;
    let r = call(&client, "reason", json!({"prompt": "Hello?"})).await;
    assert_tool_error(&r, "so did the fallback");
    assert!(
        text(&r).contains(&format!("ollama pull {PRIMARY}")) && text(&r).contains(FALLBACK),
        "{}",
        text(&r)
    );
}

#[tokio::test]
async fn ollama_down_and_stalled_streams_are_clear_errors() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut env = TestEnv::new();
    env.set_var("OLLAMA_BASE_URL", &format!("http://{closed}"));
    let client = env.client().await;
    let r = call(&client, "reason", json!({"prompt": "Hello?"})).await;
    assert_tool_error(&r, &format!("cannot reach Ollama at http://{closed}"));
    assert!(text(&r).contains("ollama serve"));

    let ollama = FakeOllama::default().with_model(PRIMARY, Script::Stall).start().await;
    let client = env_for(&ollama).client().await;
    let started = std::time::Instant::now();
    let r = call(&client, "reason", json!({"prompt": "Hello?"})).await;
    assert_tool_error(&r, "stalled");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn brain_status_reports_paths_ollama_and_models() {
    let ollama = FakeOllama::default().with_model(FALLBACK, answer("x")).start().await;
    let mut env = env_for(&ollama);
    let models = env.dir.path().join("models");
    std::fs::create_dir_all(models.join("ollama")).unwrap();
    std::fs::create_dir_all(models.join("xtts/voices")).unwrap();
    std::fs::write(models.join("xtts/voices/daena_voice.wav"), b"RIFF").unwrap();
    env.set_var("MODELS_ROOT", models.to_str().unwrap());
    env.set_var("TTS_HOME", "/nonexistent/tts");
    let client = env.client().await;
    let r = call(&client, "brain_status", json!({})).await;
    let s = structured(&r).clone();
    assert_eq!(
        s["models_root"],
        json!({"path": models.to_str().unwrap(), "exists": true})
    );
    assert_eq!(s["ollama_models_path"]["path"], models.join("ollama").to_str().unwrap());
    assert_eq!(
        s["xtts_model_path"],
        json!({"path": models.join("xtts").to_str().unwrap(), "exists": true})
    );
    assert_eq!(s["tts_home"], json!({"path": "/nonexistent/tts", "exists": false}));
    assert_eq!(
        s["voice_path"]["path"],
        models.join("xtts/voices/daena_voice.wav").to_str().unwrap()
    );
    assert_eq!(s["ollama"]["reachable"], true);
    assert_eq!(s["ollama"]["version"], "0.12.3");
    assert_eq!(
        s["ollama"]["reasoning_model"],
        json!({"name": PRIMARY, "present": false})
    );
    assert_eq!(
        s["ollama"]["fallback_model"],
        json!({"name": FALLBACK, "present": true})
    );
    assert_eq!(s["approval_mode"], "auto");
    assert!(s["enabled_tools"].as_array().unwrap().contains(&json!("reason")));
    assert!(
        text(&r).contains("reasoning model deepseek-r1:8b: missing"),
        "{}",
        text(&r)
    );

    let server = env.http().await;
    let rest: Value = server.get_json("/api/v1/brain/status").await;
    assert_eq!(rest["ollama"]["fallback_model"]["present"], true);
}

#[tokio::test]
async fn execlayer_env_prints_the_derived_exports() {
    let env = TestEnv::new();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_execlayer"))
        .arg("env")
        .env_clear()
        .env("HOME", env.dir.path())
        .env("MODELS_ROOT", "~/models")
        .env("OLLAMA_MODELS", "/fast/ollama")
        .current_dir(env.dir.path())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let home = env.dir.path().display();
    assert!(
        stdout.contains(&format!("export MODELS_ROOT={home}/models\n")),
        "{stdout}"
    );
    assert!(stdout.contains("export OLLAMA_MODELS=/fast/ollama\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("export XTTS_MODEL_PATH={home}/models/xtts\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("export TTS_HOME={home}/models/xtts\n")),
        "{stdout}"
    );
}
