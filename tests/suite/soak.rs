//! Load: 100 concurrent HTTP clients, half REST and half MCP Streamable HTTP,
//! against the real binary for `EXECLAYER_SOAK_SECS` seconds (default 10; CI
//! sets 60). No call may fail; memory and file descriptors stay flat after the
//! warm-up (the first 20% of the run); one audit line per call.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::*;

const TOKEN: &str = "soak-token-0123456789abcdef";
const CLIENTS: usize = 100;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc fd").count()
}

/// Starts `execlayer serve --http 127.0.0.1:0` and returns it with its address.
async fn start(env: &TestEnv) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_execlayer"))
        .args(["serve", "--http", "127.0.0.1:0"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.vars.iter())
        .current_dir(env.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn execlayer");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("local=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("listening within 20 s");
    // Keep draining stderr so the server never blocks on a full pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("ERROR") || line.contains("panicked") {
                eprintln!("server: {line}");
            }
        }
    });
    (child, addr)
}

/// An HTTP client that keeps at most one idle connection. reqwest (hyper-util)
/// races a fresh connect against the pool's checkout and keeps the loser too,
/// so over a long run each client creeps up to two pooled connections; with
/// one idle connection per client, the number of client connections stays
/// constant and a change in the server's fd count is the server's doing.
fn steady_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .build()
        .expect("reqwest client")
}

fn mcp_transport(base: &str) -> StreamableHttpClientTransport<reqwest::Client> {
    let mut headers = HashMap::new();
    headers.insert(
        http::HeaderName::from_static("x-execution-token"),
        http::HeaderValue::from_static(TOKEN),
    );
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).custom_headers(headers);
    StreamableHttpClientTransport::with_client(steady_client(), config)
}

#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    failures: AtomicU64,
    first_failures: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, outcome: Result<(), String>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = outcome {
            self.failures.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_failures.lock().unwrap();
            if first.len() < 10 {
                first.push(e);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_http_clients_fail_no_call_and_memory_and_fds_stay_flat() {
    let secs: u64 = std::env::var("EXECLAYER_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let run = Duration::from_secs(secs);
    let warm_up = run / 5;
    let mut env = TestEnv::new();
    env.set_var("EXECUTION_TOKEN", TOKEN);
    let content: String = (0..200).map(|i| format!("line {i} of the soak file\n")).collect();
    env.write("a.txt", &content);
    let (mut child, addr) = start(&env).await;
    let pid = child.id().unwrap();
    let base = format!("http://{addr}");
    let rss_idle = rss_kib(pid);

    let tally = Arc::new(Tally::default());
    let ready = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
    let done = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
    let mut tasks = Vec::new();
    for n in 0..CLIENTS {
        let (tally, ready, done, base, content) = (
            tally.clone(),
            ready.clone(),
            done.clone(),
            base.clone(),
            content.clone(),
        );
        tasks.push(tokio::spawn(async move {
            if n % 2 == 0 {
                let client = ().serve(mcp_transport(&base)).await.expect("MCP session starts");
                ready.wait().await;
                let deadline = Instant::now() + run;
                while Instant::now() < deadline {
                    let outcome = match try_call(&client, "filesystem_read", json!({"path": "a.txt"})).await {
                        Ok(r) if !is_error(&r) && text(&r) == content => Ok(()),
                        Ok(r) => Err(format!("MCP client {n}: {}", text(&r))),
                        Err(e) => Err(format!("MCP client {n}: {e}")),
                    };
                    tally.record(outcome);
                }
                // Stay connected until every client is done, so the
                // end-of-run sample sees the same connections as the warm-up one.
                done.wait().await;
                let _ = client.cancel().await;
            } else {
                let http = steady_client();
                ready.wait().await;
                let deadline = Instant::now() + run;
                while Instant::now() < deadline {
                    let r = http
                        .post(format!("{base}/api/v1/execution/run"))
                        .header("X-Execution-Token", TOKEN)
                        .json(&json!({"tool_name": "filesystem_read", "args": {"path": "a.txt"}}))
                        .send()
                        .await;
                    let outcome = match r {
                        Ok(r) if r.status() == 200 => match r.json::<Value>().await {
                            Ok(body) if body["ok"] == true && body["text"] == content.as_str() => Ok(()),
                            Ok(body) => Err(format!("REST client {n}: {body:.200}")),
                            Err(e) => Err(format!("REST client {n}: {e}")),
                        },
                        Ok(r) => Err(format!("REST client {n}: status {}", r.status())),
                        Err(e) => Err(format!("REST client {n}: {e}")),
                    };
                    tally.record(outcome);
                }
                done.wait().await;
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), ready.wait())
        .await
        .expect("100 clients connect within 60 s");
    let started = Instant::now();
    let fds_connected = fd_count(pid);
    // A timeline of (seconds, calls, RSS KiB, fds), one sample per tenth of the run.
    let timeline = {
        let tally = tally.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            for tenth in 1..=10u32 {
                tokio::time::sleep_until((started + run * tenth / 10).into()).await;
                samples.push((
                    started.elapsed().as_secs(),
                    tally.calls.load(Ordering::Relaxed),
                    rss_kib(pid),
                    fd_count(pid),
                ));
            }
            samples
        })
    };
    tokio::time::sleep(warm_up).await;
    let rss_warm = rss_kib(pid);
    let fds_warm = fd_count(pid);
    let calls_warm = tally.calls.load(Ordering::Relaxed);
    tokio::time::sleep(run.saturating_sub(started.elapsed())).await;
    tokio::time::timeout(Duration::from_secs(60), done.wait())
        .await
        .expect("every client finishes its last call within 60 s of the end");
    let elapsed = started.elapsed();
    let rss_end = rss_kib(pid);
    let fds_end = fd_count(pid);
    for t in tasks {
        t.await.expect("client task");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds_after = fd_count(pid);

    let timeline = timeline.await.unwrap();
    eprintln!("soak timeline (s, calls, RSS KiB, fds): {timeline:?}");
    let calls = tally.calls.load(Ordering::Relaxed);
    let failures = tally.failures.load(Ordering::Relaxed);
    let audit_lines = std::fs::read_to_string(&env.audit).unwrap_or_default().lines().count() as u64;
    eprintln!(
        "soak: {CLIENTS} clients for {elapsed:.1?}: {calls} calls ({:.0} calls/s), {failures} failed; \
         RSS idle {} KiB, after warm-up ({warm_up:?}, {calls_warm} calls) {rss_warm} KiB, end {rss_end} KiB ({:.2}x); \
         fds connected {fds_connected}, after warm-up {fds_warm}, end {fds_end}, after disconnect {fds_after}; \
         audit lines {audit_lines}",
        calls as f64 / elapsed.as_secs_f64(),
        rss_idle,
        rss_end as f64 / rss_warm as f64,
    );
    assert_eq!(
        failures,
        0,
        "{failures} failed calls, first: {:#?}",
        tally.first_failures.lock().unwrap()
    );
    assert!(calls > CLIENTS as u64, "only {calls} calls");
    assert!(
        rss_end as f64 <= 1.2 * rss_warm as f64,
        "RSS grew from {rss_warm} KiB after warm-up to {rss_end} KiB"
    );
    assert!(
        fds_end <= fds_warm + 10,
        "fds grew from {fds_warm} after warm-up to {fds_end}"
    );
    assert_eq!(audit_lines, calls, "one audit line per call");
    let status = {
        // SAFETY: signalling our own child by its pid.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
        tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("exits on SIGTERM")
            .unwrap()
    };
    assert!(status.success(), "{status}");
}
