//! The HTTP door against slow and stalled clients (the real binary): every
//! kind of stall is closed by its timeout, the server's file descriptors come
//! back, and well-behaved clients are answered all along.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::common::{TestEnv, http_client};

/// Starts `execlayer serve --http 127.0.0.1:0`; returns it with its address.
async fn start(env: &TestEnv) -> (tokio::process::Child, std::net::SocketAddr) {
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
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("ERROR") || line.contains("panicked") {
                eprintln!("server: {line}");
            }
        }
    });
    (child, addr.parse().unwrap())
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc fd").count()
}

/// The ways a client can stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stall {
    /// Connects and sends nothing.
    Silent,
    /// Half a request line.
    HalfLine,
    /// Headers that never end.
    Headers,
    /// Headers that trickle in, one byte every 300 ms (never quiet, never done).
    TrickleHeaders,
    /// A complete head, then a body that trickles and never completes.
    TrickleBody,
    /// One complete request and answer, then silence on the kept-alive connection.
    KeptAlive,
}

const STALLS: [Stall; 6] = [
    Stall::Silent,
    Stall::HalfLine,
    Stall::Headers,
    Stall::TrickleHeaders,
    Stall::TrickleBody,
    Stall::KeptAlive,
];

/// Plays one stall; returns how long after the start of its stalled phase the
/// server closed the connection (`None`: still open after `give_up`).
async fn stall(addr: std::net::SocketAddr, kind: Stall, give_up: Duration) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut started = Instant::now();
    let mut buf = [0u8; 4096];
    let head = "GET /api/v1/execution/tools HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Some-Header: ";
    let post = "POST /api/v1/execution/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
    let mut trickle: Option<(Vec<u8>, usize)> = None;
    match kind {
        Stall::Silent => {}
        Stall::HalfLine => s.write_all(b"GET /api/v1/execution/to").await.unwrap(),
        Stall::Headers => s.write_all(head.as_bytes()).await.unwrap(),
        Stall::TrickleHeaders => trickle = Some((head.as_bytes().repeat(50), 0)),
        Stall::TrickleBody => {
            s.write_all(post.as_bytes()).await.unwrap();
            started = Instant::now();
            trickle = Some((b"{\"tool_name\": ".repeat(1000), 0));
        }
        Stall::KeptAlive => {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .await
                .unwrap();
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("\"ok\"") {
                let n = s.read(&mut buf).await.expect("read the answer");
                assert!(n > 0, "closed before answering /healthz");
                got.extend_from_slice(&buf[..n]);
            }
            started = Instant::now();
        }
    }
    let deadline = started + give_up;
    loop {
        let wait = match &trickle {
            Some(_) => Duration::from_millis(300),
            None => deadline.saturating_duration_since(Instant::now()),
        };
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            // Closed (EOF or reset): measured from the start of the stall.
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {} // e.g. an error answer before the close
            Err(_) => {
                if Instant::now() >= deadline {
                    return None;
                }
                if let Some((bytes, at)) = &mut trickle
                    && *at < bytes.len()
                {
                    if s.write_all(&bytes[*at..*at + 1]).await.is_err() {
                        return Some(started.elapsed());
                    }
                    *at += 1;
                }
            }
        }
    }
}

/// 500 stalled connections (six kinds of stall) against timeouts of 2 s: each
/// is closed by the server within its timeout plus a margin, none before it,
/// the server's descriptors come back to where they were, and 20 well-behaved
/// clients calling a tool all along get every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_stalled_connections_are_closed_on_time_while_twenty_clients_are_served() {
    const TIMEOUT: u64 = 2;
    let mut env = TestEnv::new();
    for var in [
        "EXECUTION_HTTP_HEADER_TIMEOUT_SECS",
        "EXECUTION_HTTP_BODY_TIMEOUT_SECS",
        "EXECUTION_HTTP_IDLE_TIMEOUT_SECS",
    ] {
        env.set_var(var, &TIMEOUT.to_string());
    }
    env.write("a.txt", "fast\n");
    let (child, addr) = start(&env).await;
    let pid = child.id().unwrap();
    // Settle, then count the server's descriptors at rest.
    let _ = http_client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fds_before = fd_count(pid);

    let give_up = Duration::from_secs(TIMEOUT + 10);
    let stalls: Vec<_> = (0..500)
        .map(|i| {
            let kind = STALLS[i % STALLS.len()];
            tokio::spawn(async move { (kind, stall(addr, kind, give_up).await) })
        })
        .collect();
    // The most descriptors the server held at once during the first second.
    let mut open_while_stalled = 0;
    for _ in 0..20 {
        open_while_stalled = open_while_stalled.max(fd_count(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 20 clients, each calling a tool in a loop while the stalls last.
    let stop = Instant::now() + Duration::from_secs(TIMEOUT + 2);
    let clients: Vec<_> = (0..20)
        .map(|c| {
            tokio::spawn(async move {
                let http = http_client();
                let mut answers = 0;
                while Instant::now() < stop {
                    let r = tokio::time::timeout(
                        Duration::from_secs(5),
                        http.post(format!("http://{addr}/api/v1/execution/run"))
                            .json(&json!({"tool_name": "filesystem_read", "args": {"path": "a.txt"}}))
                            .send(),
                    )
                    .await
                    .unwrap_or_else(|_| panic!("client {c}: no answer within 5 s"))
                    .unwrap_or_else(|e| panic!("client {c}: {e}"));
                    assert_eq!(r.status(), 200, "client {c}");
                    let body: Value = r.json().await.unwrap();
                    assert_eq!(body["text"], "fast\n", "client {c}: {body}");
                    answers += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                answers
            })
        })
        .collect();
    for (c, client) in clients.into_iter().enumerate() {
        let answers = client.await.unwrap();
        assert!(answers >= 5, "client {c} got only {answers} answers");
    }

    let mut worst = std::collections::BTreeMap::new();
    for s in stalls {
        let (kind, closed) = s.await.unwrap();
        let after = closed.unwrap_or_else(|| panic!("a {kind:?} stall was still open after {give_up:?}"));
        assert!(
            after >= Duration::from_millis(TIMEOUT * 1000 - 100),
            "a {kind:?} stall was closed after {after:?}, before its {TIMEOUT} s timeout"
        );
        assert!(
            after <= Duration::from_secs(TIMEOUT + 3),
            "a {kind:?} stall was closed only after {after:?} (timeout {TIMEOUT} s)"
        );
        let w = worst.entry(format!("{kind:?}")).or_insert(Duration::ZERO);
        *w = (*w).max(after);
    }
    eprintln!("slowest close per kind of stall (timeouts {TIMEOUT} s): {worst:?}");

    // Closed and gone: the server holds no more descriptors than before.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fds_after = fd_count(pid);
    eprintln!("server fds: {fds_before} at rest, {open_while_stalled} with 500 stalls, {fds_after} after");
    assert!(
        open_while_stalled >= fds_before + 450,
        "the stalls were not open at once"
    );
    assert!(
        fds_after <= fds_before + 2,
        "the server still holds {fds_after} descriptors (was {fds_before})"
    );
}

/// With `EXECUTION_HTTP_MAX_CONNECTIONS=5`, 20 silent sockets never cost the
/// server more than 5 descriptors; the rest wait in the listen backlog, and a
/// real client behind them is answered once the stalls time out.
#[tokio::test]
async fn the_connection_cap_bounds_what_stalled_sockets_cost() {
    let mut env = TestEnv::new();
    env.set_var("EXECUTION_HTTP_MAX_CONNECTIONS", "5");
    env.set_var("EXECUTION_HTTP_HEADER_TIMEOUT_SECS", "1");
    let (child, addr) = start(&env).await;
    let pid = child.id().unwrap();
    let _ = http_client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fds_before = fd_count(pid);

    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.expect("connect (the backlog takes it)"));
    }
    let started = Instant::now();
    let answer = tokio::spawn(async move {
        http_client()
            .get(format!("http://{addr}/healthz"))
            .timeout(Duration::from_secs(30))
            .send()
            .await
    });
    let mut most = 0;
    while !answer.is_finished() {
        most = most.max(fd_count(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = answer.await.unwrap().expect("answered once the stalls timed out");
    assert_eq!(r.status(), 200);
    eprintln!(
        "cap 5: at most {most} server fds (rest {fds_before}); answered after {:?}",
        started.elapsed()
    );
    assert!(
        most <= fds_before + 5,
        "the server held {most} fds (rest {fds_before}, cap 5)"
    );
    assert!(
        most >= fds_before + 4,
        "the stalls never reached the server ({most} fds)"
    );
    drop(silent);
}
