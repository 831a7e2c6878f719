//! Operator commands: `approvals`, `approve`, `deny` reach every server of this
//! user through its operator socket ([`crate::operator`]), or one server's REST
//! API when a URL is given; `tools`, `audit` and the seed's `smoke` check talk
//! REST; `rules` reads the policy file.

use serde_json::{Value, json};

/// A small REST client for one server.
pub struct Remote {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .no_proxy()
                .build()?,
        })
    }

    /// Sends a request; returns the status and the JSON body.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("X-Execution-Token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {}: {e} (is `execlayer serve --http` running?)", self.base))?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, value) = self.send(method, path, body).await?;
        if status == 401 {
            anyhow::bail!("401 unauthorized: set EXECUTION_TOKEN to the server's token");
        }
        if !(200..300).contains(&status) {
            let detail = value.get("detail").and_then(Value::as_str).unwrap_or("");
            let error = value.get("error").and_then(Value::as_str).unwrap_or("request failed");
            anyhow::bail!("{status} {error}{}{detail}", if detail.is_empty() { "" } else { ": " });
        }
        Ok(value)
    }
}

/// `execlayer approvals`
pub async fn approvals(remote: &Remote) -> anyhow::Result<()> {
    let value = remote
        .ok(reqwest::Method::GET, "/api/v1/execution/approvals", None)
        .await?;
    let list = value["pending"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no calls are waiting for approval");
    }
    for a in list {
        print_pending(&a);
    }
    Ok(())
}

/// `execlayer approve ID [--remember session|always]` / `execlayer deny ID` over REST.
pub async fn decide(remote: &Remote, id: &str, approve: bool, remember: &str) -> anyhow::Result<()> {
    let verb = if approve { "approve" } else { "deny" };
    let body = approve.then(|| json!({ "remember": remember }));
    let value = remote
        .ok(
            reqwest::Method::POST,
            &format!("/api/v1/execution/approvals/{id}/{verb}"),
            body,
        )
        .await?;
    println!(
        "{}",
        decided_line(id, approve, value["tool"].as_str().unwrap_or("?"), remember, &value)
    );
    Ok(())
}

/// `execlayer tools [enable|disable NAME]`
pub async fn tools(remote: &Remote, toggle: Option<(&str, bool)>) -> anyhow::Result<()> {
    if let Some((name, enabled)) = toggle {
        remote
            .ok(
                reqwest::Method::POST,
                &format!("/api/v1/execution/tools/{name}/enabled"),
                Some(json!({ "enabled": enabled })),
            )
            .await?;
        println!("{name} {}", if enabled { "enabled" } else { "disabled" });
        return Ok(());
    }
    let value = remote.ok(reqwest::Method::GET, "/api/v1/execution/tools", None).await?;
    println!("approval_mode: {}", value["approval_mode"].as_str().unwrap_or("?"));
    for t in value["tools"].as_array().cloned().unwrap_or_default() {
        println!(
            "{:<20} {:<8} {:<6}  {}",
            t["name"].as_str().unwrap_or(""),
            if t["enabled"] == true { "enabled" } else { "disabled" },
            t["risk_level"].as_str().unwrap_or(""),
            t["title"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `execlayer audit --tail N`
pub async fn audit(remote: &Remote, tail: usize) -> anyhow::Result<()> {
    let value = remote
        .ok(
            reqwest::Method::GET,
            &format!("/api/v1/execution/audit?limit={tail}"),
            None,
        )
        .await?;
    let mut entries = value["entries"].as_array().cloned().unwrap_or_default();
    entries.reverse();
    for e in entries {
        println!("{}", serde_json::to_string(&e)?);
    }
    Ok(())
}

/// `execlayer smoke`: the original execution layer's smoke check, step by step.
/// Returns whether every step passed.
pub async fn smoke(remote: &Remote) -> anyhow::Result<bool> {
    let mut all = true;
    let mut step = |name: &str, ok: bool, detail: String| {
        println!(
            "{} {name}{}",
            if ok { "PASS" } else { "FAIL" },
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        );
        all &= ok;
    };
    let (status, tools) = remote
        .send(reqwest::Method::GET, "/api/v1/execution/tools", None)
        .await?;
    let count = tools["tools"].as_array().map_or(0, Vec::len);
    step(
        "list tools",
        status == 200 && count > 0,
        format!("HTTP {status}, {count} tools"),
    );

    let (status, grant) = remote
        .send(
            reqwest::Method::POST,
            "/api/v1/execution/approve?tool_name=apply_patch",
            None,
        )
        .await?;
    let id = grant["approval_id"].as_str().unwrap_or("").to_owned();
    step(
        "approve apply_patch",
        status == 200 && !id.is_empty(),
        format!("HTTP {status}"),
    );

    let patch = "--- /dev/null\n+++ b/execlayer-smoke.txt\n@@ -0,0 +1 @@\n+smoke\n";
    let (status, run) = remote
        .send(
            reqwest::Method::POST,
            "/api/v1/execution/run",
            Some(json!({"tool_name": "apply_patch", "args": {"patch": patch, "dry_run": true}, "approval_id": id})),
        )
        .await?;
    step(
        "apply_patch dry_run",
        status == 200 && run["is_error"] == false && run["result"]["applied"] == false,
        format!("HTTP {status}"),
    );

    let (status, git) = remote
        .send(
            reqwest::Method::POST,
            "/api/v1/execution/run",
            Some(json!({"tool_name": "git_status", "args": {}})),
        )
        .await?;
    let detail = if git["is_error"] == true {
        git["text"].as_str().unwrap_or("").to_owned()
    } else {
        format!("HTTP {status}")
    };
    step("git_status", status == 200 && git["is_error"] == false, detail);
    Ok(all)
}

/// How the current user's servers are reached without HTTP.
pub struct Sockets {
    pub dir: std::path::PathBuf,
}

#[cfg(unix)]
impl Sockets {
    /// Asks every server; returns (socket, answer) for those that answered.
    async fn ask_all(&self, request: &Value) -> Vec<(std::path::PathBuf, Value)> {
        let mut answers = Vec::new();
        for socket in crate::operator::servers(&self.dir) {
            match crate::operator::ask(&socket, request).await {
                Ok(answer) => answers.push((socket, answer)),
                Err(e) => tracing::debug!(socket = %socket.display(), error = %e, "operator socket did not answer"),
            }
        }
        answers
    }

    /// `execlayer approvals` over the sockets. `Ok(false)`: no server answered.
    pub async fn approvals(&self) -> anyhow::Result<bool> {
        let answers = self.ask_all(&json!({"op": "list"})).await;
        if answers.is_empty() {
            return Ok(false);
        }
        let mut total = 0;
        for (_, answer) in &answers {
            let server = &answer["server"];
            let doors: Vec<&str> = server["doors"]
                .as_array()
                .map(|d| d.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let pending = answer["pending"].as_array().cloned().unwrap_or_default();
            println!(
                "server pid {}  workspace {}  doors: {}  ({} waiting)",
                server["pid"],
                server["workspace"].as_str().unwrap_or("?"),
                doors.join(", "),
                pending.len()
            );
            for a in pending {
                total += 1;
                print_pending(&a);
            }
        }
        if total == 0 {
            println!("no calls are waiting for approval");
        }
        Ok(true)
    }

    /// `execlayer approve|deny ID` over the sockets. `Ok(false)`: no server answered.
    pub async fn decide(&self, id: &str, approve: bool, remember: &str) -> anyhow::Result<bool> {
        let op = if approve { "approve" } else { "deny" };
        let answers = self.ask_all(&json!({"op": op, "id": id, "remember": remember})).await;
        if answers.is_empty() {
            return Ok(false);
        }
        for (_, answer) in &answers {
            if answer["ok"] == true {
                let tool = answer["approval"]["tool"].as_str().unwrap_or("?");
                println!("{}", decided_line(id, approve, tool, remember, &answer["approval"]));
                return Ok(true);
            }
            if answer["kind"] != "unknown" {
                anyhow::bail!("{}", answer["error"].as_str().unwrap_or("the server refused"));
            }
        }
        anyhow::bail!(
            "no running execlayer server of this user holds approval {id} ({} asked); it may have expired or been used. Run `execlayer approvals` to see what is waiting",
            answers.len()
        )
    }
}

fn print_pending(a: &Value) {
    println!(
        "{}  {} ({} risk, via {})  waiting {}s, expires in {}s\n    {}",
        a["id"].as_str().unwrap_or(""),
        a["tool"].as_str().unwrap_or(""),
        a["risk"].as_str().unwrap_or(""),
        a["door"].as_str().unwrap_or("?"),
        a["age_seconds"],
        a["expires_in_seconds"],
        a["preview"].as_str().unwrap_or("").replace('\n', "\n    ")
    );
    if let Some(choices) = a["remember"]["choices"].as_array() {
        for c in choices.iter().skip(1) {
            println!(
                "    --remember {}: {}",
                c["value"].as_str().unwrap_or(""),
                c["title"].as_str().unwrap_or("")
            );
        }
    }
}

fn decided_line(id: &str, approve: bool, tool: &str, remember: &str, approval: &Value) -> String {
    if !approve {
        return format!("denied {id} for {tool}; a retry with this id will fail");
    }
    let what = approval["remember"]["what"].as_str().unwrap_or("this kind of call");
    let remembered = match remember {
        "session" => format!("; {what} is allowed for the rest of that session"),
        "always" => format!("; {what} is allowed from now on (an allow rule was added to the policy file)"),
        _ => String::new(),
    };
    format!("approved {id} for {tool}{remembered}; the agent can now retry the call with this approval_id")
}

/// `execlayer rules`: the rules of a policy file, numbered as the audit log names them.
pub fn print_rules(policy: &crate::policy::Policy) {
    println!("approval_mode: {}", policy.approval_mode.as_str());
    if policy.rules.is_empty() {
        println!("no rules: every call is decided by its tool's risk level");
    }
    for (i, rule) in policy.rules.rules().iter().enumerate() {
        let reason = rule.reason.as_deref().map(|r| format!("  ({r})")).unwrap_or_default();
        println!("rules[{i}]  {}{reason}", rule.summary());
    }
}
