// Shared helpers of the Node interop tests: temp workspaces, a clean child
// environment, and the real server over HTTP on a free port.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.EXECLAYER_BIN
  ? path.resolve(process.env.EXECLAYER_BIN)
  : path.resolve(HERE, '../../../target/debug/execlayer');
export const BASE_CONFIG = path.resolve(HERE, '../../../config/execution_layer_config.json');
export const SHOW_STDERR = !!process.env.EXECLAYER_TEST_STDERR;

/**
 * A fresh temp dir holding a workspace (optionally a git repo with one file),
 * a policy file and an audit log path; removed when the test ends.
 */
export function makeEnv(t, { prefix = 'execlayer-node-', approvalMode = 'require_approval',
  approvalTimeoutSeconds = 120, gitRepo = false, extraEnv = {} } = {}) {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const workspace = path.join(base, 'ws');
  fs.mkdirSync(workspace);
  if (gitRepo) {
    fs.writeFileSync(path.join(workspace, 'README.md'), '# test workspace\n');
    const git = (...args) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...args],
      { cwd: workspace, stdio: 'ignore' });
    git('init', '-q');
    git('add', 'README.md');
    git('commit', '-q', '-m', 'init');
  }
  const policy = JSON.parse(fs.readFileSync(BASE_CONFIG, 'utf8'));
  policy.approval_mode = approvalMode;
  policy.approval_timeout_seconds = approvalTimeoutSeconds;
  const config = path.join(base, 'execution_layer_config.json');
  fs.writeFileSync(config, JSON.stringify(policy, null, 2));
  const audit = path.join(base, 'audit.jsonl');
  t.after(() => fs.rmSync(base, { recursive: true, force: true }));
  return {
    base,
    workspace,
    config,
    audit,
    env: {
      EXECUTION_WORKSPACE_ROOT: workspace,
      EXECUTION_CONFIG: config,
      EXECUTION_AUDIT_LOG: audit,
      EXECLAYER_LOG: process.env.EXECLAYER_LOG ?? 'info,rmcp=warn',
      ...extraEnv,
    },
  };
}

/** Environment for a server process: only what it needs (no token or settings leaking in from the caller). */
export function childEnv(extra) {
  const env = {};
  for (const k of ['PATH', 'HOME', 'USER', 'LOGNAME', 'TMPDIR', 'LANG']) {
    if (process.env[k] !== undefined) env[k] = process.env[k];
  }
  return { ...env, ...extra };
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts `execlayer serve --http 127.0.0.1:PORT`, waits for /healthz, kills it when the test ends. */
export async function startHttpServer(t, ctx, { token } = {}) {
  const port = await freePort();
  const env = childEnv({ ...ctx.env, ...(token ? { EXECUTION_TOKEN: token } : {}) });
  const child = spawn(BIN, ['serve', '--http', `127.0.0.1:${port}`], {
    env,
    cwd: ctx.base,
    stdio: ['ignore', 'ignore', SHOW_STDERR ? 'inherit' : 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => { stderr += d; });
  let exited = null;
  const exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = { code, signal };
    resolve();
  }));
  t.after(async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exitPromise;
    clearTimeout(timer);
  });

  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20000;
  for (;;) {
    if (exited) throw new Error(`server exited early (${JSON.stringify(exited)}):\n${stderr}`);
    try {
      const res = await fetch(`${base}/healthz`);
      if (res.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`server not ready on ${base}:\n${stderr}`);
    await sleep(100);
  }
  return { base, child, stderr: () => stderr };
}
