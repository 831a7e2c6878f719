//! A real `redis-server` on a free loopback port with its own temp directory,
//! and real `execlayer serve --http 127.0.0.1:0` processes pointed at it.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::{TestEnv, http_client};

/// A `redis-server` child (no persistence), killed when dropped.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl RedisServer {
    /// Starts one on a free loopback port.
    pub async fn start() -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe port");
            probe.local_addr().expect("addr").port()
        };
        let mut server = Self {
            port,
            dir: tempfile::tempdir().expect("redis dir"),
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts (again) on the same port and waits until it answers PING.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.ping().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops it (SIGKILL) and waits until the port is closed.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }

    async fn ping(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if stream.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut reply)).await,
            Ok(Ok(_))
        ) && &reply == b"+PONG\r\n"
    }
}

/// A running `execlayer serve --http 127.0.0.1:0` process.
pub struct Instance {
    pub child: tokio::process::Child,
    pub base: String,
    pub stderr: Arc<Mutex<String>>,
}

/// The environment for one instance: `env`'s, with its own audit log.
pub fn instance_vars(env: &TestEnv, name: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = env.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let audit = env.dir.path().join(format!("state-{name}/audit.jsonl"));
    vars.push(("EXECUTION_AUDIT_LOG".into(), audit.display().to_string()));
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    vars
}

impl Instance {
    /// Spawns the binary and waits until it names the address it listens on.
    pub async fn start(env: &TestEnv, vars: &[(String, String)]) -> Self {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_execlayer"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("EXECLAYER_LOG", "info")
            .current_dir(env.dir.path())
            .args(["serve", "--http", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn execlayer serve --http");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let captured = Arc::new(Mutex::new(String::new()));
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                captured.lock().unwrap().push_str(&line);
                captured.lock().unwrap().push('\n');
                if let Some(rest) = line.split("local=").nth(1) {
                    return rest.split_whitespace().next().expect("address").to_owned();
                }
            }
            panic!("the server exited before listening: {}", captured.lock().unwrap());
        })
        .await
        .expect("the server listens within 20 s");
        let sink = captured.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Self {
            child,
            base: format!("http://{addr}"),
            stderr: captured,
        }
    }

    /// Stops the process and waits for it.
    pub async fn stop(mut self) {
        self.child.kill().await.expect("kill execlayer");
    }

    /// `POST /api/v1/execution/run`: status and JSON body.
    pub async fn run(&self, client: &reqwest::Client, body: &Value) -> (u16, Value) {
        let r = client
            .post(format!("{}/api/v1/execution/run", self.base))
            .json(body)
            .send()
            .await
            .expect("POST run");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// `GET` or `POST` (no body) under the base URL: status and JSON body.
    pub async fn rest(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let r = http_client()
            .request(method, format!("{}{path}", self.base))
            .send()
            .await
            .expect("REST request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}
