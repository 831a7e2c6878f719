//! Operator commands that talk to a running server's REST API:
//! `approvals`, `approve`, `deny`, `tools`, `audit`, and the seed's `smoke` check.

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
        println!(
            "{}  {} ({} risk)  waiting {}s, expires in {}s\n    {}",
            a["id"].as_str().unwrap_or(""),
            a["tool"].as_str().unwrap_or(""),
            a["risk"].as_str().unwrap_or(""),
            a["age_seconds"],
            a["expires_in_seconds"],
            a["preview"].as_str().unwrap_or("").replace('\n', "\n    ")
        );
    }
    Ok(())
}

/// `execlayer approve ID` / `execlayer deny ID`
pub async fn decide(remote: &Remote, id: &str, approve: bool) -> anyhow::Result<()> {
    let verb = if approve { "approve" } else { "deny" };
    let value = remote
        .ok(
            reqwest::Method::POST,
            &format!("/api/v1/execution/approvals/{id}/{verb}"),
            None,
        )
        .await?;
    println!(
        "{} {id} for {}; {}",
        if approve { "approved" } else { "denied" },
        value["tool"].as_str().unwrap_or("?"),
        if approve {
            "the agent can now retry the call with this approval_id"
        } else {
            "a retry with this id will fail"
        }
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
