// Interoperability check: execlayer driven by the official MCP TypeScript SDK client.
//
//   cd /work/main && cargo build
//   cd tests/interop/node && npm ci
//   EXECLAYER_BIN=/work/main/target/debug/execlayer node --test
//
// EXECLAYER_BIN defaults to ../../../target/debug/execlayer relative to this file.
// Set EXECLAYER_TEST_STDERR=1 to see the server's log on stderr.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { ElicitRequestSchema, ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';

import { BIN, SHOW_STDERR, childEnv, makeEnv, startHttpServer } from './harness.mjs';

// The tools the README documents; every one must be listed with both schemas.
const CORE_TOOLS = [
  'filesystem_read',
  'filesystem_write',
  'filesystem_list',
  'filesystem_search',
  'git_status',
  'git_diff',
  'apply_patch',
  'shell_exec',
];

// Also registered (src/tools/mod.rs, DESIGN.md "Default risks"): the local-model tools.
const EXPECTED_TOOLS = [...CORE_TOOLS, 'edit_file', 'run_playbook', 'reason', 'brain_status'];

const TOKEN = 'interop-node-token-0123456789abcdef';

// ---------------------------------------------------------------- helpers

/** A stdio transport that runs `execlayer serve` in the temp dir (so no stray .env is read). */
function stdioTransport(ctx) {
  const transport = new StdioClientTransport({
    command: BIN,
    args: ['serve'],
    env: childEnv(ctx.env),
    cwd: ctx.base,
    stderr: SHOW_STDERR ? 'inherit' : 'ignore',
  });
  return transport;
}

/** Connects `client` over `transport`; closes both (and so kills a stdio server) when the test ends. */
async function connect(t, client, transport) {
  let pid = null;
  t.after(async () => {
    await client.close().catch(() => {});
    if (pid) {
      // The SDK closes stdin, then SIGTERM, then SIGKILL; make sure nothing is left.
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  });
  await client.connect(transport);
  pid = transport.pid ?? null;
}

/**
 * Closes a stdio client the way the SDK does (stdin EOF, SIGTERM after 2 s, SIGKILL 2 s later)
 * and asserts the server left on EOF alone.
 */
async function closeStdioPromptly(client) {
  const started = Date.now();
  await client.close();
  const ms = Date.now() - started;
  assert.ok(ms < 1900, `server took ${ms} ms to exit after stdin EOF (the SDK sent SIGTERM)`);
}

// The SDK's Ajv validator warns (console.warn) once per unknown "format" each time it compiles
// an outputSchema. Collect those warnings and report them once instead of flooding the output.
const unknownFormats = new Set();
const consoleWarn = console.warn;
console.warn = (...args) => {
  const m = /^unknown format "([^"]+)" ignored in schema/.exec(String(args[0] ?? ''));
  if (m) { unknownFormats.add(m[1]); return; }
  consoleWarn(...args);
};

function newClient({ elicitation = false } = {}) {
  return new Client(
    { name: 'execlayer-interop-node', version: '0.0.0' },
    { capabilities: elicitation ? { elicitation: {} } : {} },
  );
}


function textOf(result) {
  return (result.content ?? [])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

function readAudit(file) {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

async function checkListTools(client) {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  for (const name of CORE_TOOLS) {
    assert.ok(names.includes(name), `tools/list lacks ${name}: ${names.join(', ')}`);
  }
  for (const tool of tools) {
    assert.equal(tool.inputSchema?.type, 'object', `${tool.name}: inputSchema`);
    assert.ok(tool.outputSchema && tool.outputSchema.type === 'object', `${tool.name}: outputSchema`);
  }
  return tools;
}

// ---------------------------------------------------------------- tests

test('stdio: tools/list, filesystem_read, git_status structuredContent, error result', async (t) => {
  const ctx = makeEnv(t);
  fs.writeFileSync(path.join(ctx.workspace, 'hello.txt'), 'hello from the node sdk\nsecond line\n');
  execFileSync('git', ['init', '-q'], { cwd: ctx.workspace });

  const client = newClient();
  await connect(t, client, stdioTransport(ctx));

  const tools = await checkListTools(client);
  assert.deepEqual(tools.map((x) => x.name).sort(), [...EXPECTED_TOOLS].sort());

  // listTools cached the output-schema validators: from here on callTool validates structuredContent.
  const read = await client.callTool({ name: 'filesystem_read', arguments: { path: 'hello.txt' } });
  assert.ok(!read.isError, `filesystem_read failed: ${textOf(read)}`);
  assert.match(textOf(read), /hello from the node sdk/);
  assert.match(textOf(read), /second line/);

  const status = await client.callTool({ name: 'git_status', arguments: {} });
  assert.ok(!status.isError, `git_status failed: ${textOf(status)}`);
  assert.ok(status.structuredContent && typeof status.structuredContent === 'object',
    'git_status returned no structuredContent');
  assert.match(JSON.stringify(status.structuredContent), /hello\.txt/);

  // A failure of the work is a result with isError, which the SDK must accept (no schema error thrown).
  const missing = await client.callTool({ name: 'filesystem_read', arguments: { path: 'no/such/file.txt' } });
  assert.equal(missing.isError, true);
  assert.ok(textOf(missing).length > 0, 'error result has no text');

  await closeStdioPromptly(client);
  if (unknownFormats.size) {
    t.diagnostic(`outputSchema formats unknown to the SDK's Ajv (warned, ignored): ${[...unknownFormats].sort().join(', ')}`);
  }
});

test('stdio: elicitation accept runs filesystem_write, decline refuses it', async (t) => {
  const ctx = makeEnv(t);
  let answer = 'accept';
  const seen = [];

  const client = newClient({ elicitation: true });
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    seen.push(req.params);
    if (answer === 'accept') return { action: 'accept', content: { approve: true } };
    return { action: 'decline' };
  });
  await connect(t, client, stdioTransport(ctx));
  await checkListTools(client);

  const accepted = await client.callTool({
    name: 'filesystem_write',
    arguments: { path: 'yes.txt', content: 'approved\n' },
  });
  assert.ok(!accepted.isError, `accepted write failed: ${textOf(accepted)}`);
  assert.equal(seen.length, 1, 'no elicitation/create reached the client');
  assert.equal(seen[0].mode ?? 'form', 'form');
  assert.ok(seen[0].requestedSchema?.properties?.approve, 'elicitation schema has no `approve` field');
  assert.match(seen[0].message, /yes\.txt/, 'elicitation message does not name the path');
  assert.equal(fs.readFileSync(path.join(ctx.workspace, 'yes.txt'), 'utf8'), 'approved\n');

  answer = 'decline';
  const declined = await client.callTool({
    name: 'filesystem_write',
    arguments: { path: 'no.txt', content: 'declined\n' },
  });
  assert.equal(declined.isError, true, `declined write was not an error: ${textOf(declined)}`);
  assert.equal(seen.length, 2);
  assert.equal(fs.existsSync(path.join(ctx.workspace, 'no.txt')), false, 'declined write happened');
});

test('streamable HTTP with token: list and call; without token 401', async (t) => {
  const ctx = makeEnv(t);
  fs.writeFileSync(path.join(ctx.workspace, 'http.txt'), 'over streamable http\n');
  const srv = await startHttpServer(t, ctx, { token: TOKEN });
  const url = new URL(`${srv.base}/mcp`);

  const client = newClient();
  const transport = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: { 'X-Execution-Token': TOKEN } },
  });
  await connect(t, client, transport);
  assert.ok(transport.sessionId, 'no Mcp-Session-Id from the server');
  await checkListTools(client);
  const read = await client.callTool({ name: 'filesystem_read', arguments: { path: 'http.txt' } });
  assert.ok(!read.isError, textOf(read));
  assert.match(textOf(read), /over streamable http/);

  // Without elicitation, a medium-risk call is refused with an approval id.
  const write = await client.callTool({ name: 'filesystem_write', arguments: { path: 'w.txt', content: 'x' } });
  assert.equal(write.isError, true);
  assert.match(textOf(write), /approval required/);
  assert.equal(fs.existsSync(path.join(ctx.workspace, 'w.txt')), false);

  // DELETE with the token ends the session.
  await transport.terminateSession();

  // No token: initialize is refused with 401.
  const anon = newClient();
  const anonTransport = new StreamableHTTPClientTransport(url);
  t.after(() => anon.close().catch(() => {}));
  await assert.rejects(anon.connect(anonTransport), (err) => {
    assert.ok(err instanceof StreamableHTTPError, `expected StreamableHTTPError, got ${err}`);
    assert.equal(err.code, 401, String(err));
    return true;
  });

  // Authorization: Bearer works as well.
  const bearer = newClient();
  await connect(t, bearer, new StreamableHTTPClientTransport(url, {
    requestInit: { headers: { Authorization: `Bearer ${TOKEN}` } },
  }));
  await checkListTools(bearer);
});

test('legacy HTTP+SSE with token: list and call', async (t) => {
  const ctx = makeEnv(t);
  fs.writeFileSync(path.join(ctx.workspace, 'sse.txt'), 'over legacy sse\n');
  const srv = await startHttpServer(t, ctx, { token: TOKEN });
  const url = new URL(`${srv.base}/sse`);

  // In SDK 1.32 the GET that opens the stream and every POST to /messages both take the
  // headers of requestInit (SSEClientTransport._commonHeaders); eventSourceInit.fetch would
  // replace the fetch for the GET only, so requestInit is the one place for the token.
  // Count what actually goes out, to prove the token rides on the GET and the POSTs.
  const sent = [];
  const countingFetch = (input, init) => {
    const h = new Headers(init?.headers);
    sent.push({ method: init?.method ?? 'GET', url: String(input), token: h.get('x-execution-token') });
    return fetch(input, init);
  };
  const client = newClient();
  const transport = new SSEClientTransport(url, {
    requestInit: { headers: { 'X-Execution-Token': TOKEN } },
    fetch: countingFetch,
  });
  await connect(t, client, transport);
  await checkListTools(client);
  const read = await client.callTool({ name: 'filesystem_read', arguments: { path: 'sse.txt' } });
  assert.ok(!read.isError, textOf(read));
  assert.match(textOf(read), /over legacy sse/);

  const gets = sent.filter((s) => s.method === 'GET');
  const posts = sent.filter((s) => s.method === 'POST');
  assert.ok(gets.length >= 1 && gets.every((s) => s.token === TOKEN), `GET without token: ${JSON.stringify(gets)}`);
  assert.ok(posts.length >= 3 && posts.every((s) => s.token === TOKEN), `POST without token: ${JSON.stringify(posts)}`);
  assert.ok(posts.every((s) => new URL(s.url).pathname === '/messages'), JSON.stringify(posts));

  // No token: the stream is refused.
  const anon = newClient();
  t.after(() => anon.close().catch(() => {}));
  await assert.rejects(anon.connect(new SSEClientTransport(url)), (err) => {
    assert.equal(err.code, 401, String(err));
    return true;
  });

  // The SDK's fallback probe, POST /sse, gets a 405.
  const probe = await fetch(url, {
    method: 'POST',
    headers: { 'X-Execution-Token': TOKEN, 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(probe.status, 405);
});

test('cancellation: a request timeout while the approval is pending denies the write', async (t) => {
  const ctx = makeEnv(t, { approvalTimeoutSeconds: 120 });
  let elicited = 0;

  const client = newClient({ elicitation: true });
  client.setRequestHandler(ElicitRequestSchema, async () => {
    elicited += 1;
    await new Promise(() => {}); // the human never answers
  });
  const transport = stdioTransport(ctx);
  // Record what the client sends, to see notifications/cancelled go out.
  await connect(t, client, transport);
  const outgoing = [];
  const send = transport.send.bind(transport);
  transport.send = (msg, opts) => { outgoing.push(msg); return send(msg, opts); };
  await checkListTools(client);

  const started = Date.now();
  await assert.rejects(
    client.callTool(
      { name: 'filesystem_write', arguments: { path: 'late.txt', content: 'must never be written\n' } },
      undefined,
      { timeout: 1500 },
    ),
    (err) => {
      assert.ok(err instanceof McpError, String(err));
      assert.equal(err.code, ErrorCode.RequestTimeout, String(err));
      return true;
    },
  );
  assert.ok(Date.now() - started < 10000);
  assert.equal(elicited, 1, 'the server did not ask for approval');
  const call = outgoing.find((m) => m.method === 'tools/call');
  const cancel = outgoing.find((m) => m.method === 'notifications/cancelled');
  assert.ok(cancel, 'the SDK sent no notifications/cancelled');
  assert.equal(cancel.params.requestId, call.id);

  await sleep(3000);
  assert.equal(fs.existsSync(path.join(ctx.workspace, 'late.txt')), false, 'the cancelled write ran');

  const lines = readAudit(ctx.audit).filter((l) => l.tool === 'filesystem_write');
  assert.ok(lines.length > 0, `no audit line for filesystem_write in ${ctx.audit}`);
  assert.ok(
    lines.some((l) => l.decision === 'denied'),
    `no "decision":"denied" line: ${JSON.stringify(lines)}`,
  );
  assert.ok(!lines.some((l) => l.decision === 'allowed'), `an allowed line: ${JSON.stringify(lines)}`);

  // The session is still usable after the cancel.
  const list = await client.callTool({ name: 'filesystem_list', arguments: {} });
  assert.ok(!list.isError, textOf(list));

  await closeStdioPromptly(client);
});

// ---------------------------------------------------------------- rules and remembered answers

/** A workspace with these rules, its own operator-socket folder, and a few harmless commands allowed. */
function ruledEnv(t, rules, approvalMode = 'require_approval') {
  const ctx = makeEnv(t, { approvalMode, extraEnv: { SHELL_ALLOWLIST: 'ls,echo,printf' } });
  const runtime = path.join(ctx.base, 'run');
  fs.mkdirSync(runtime, { mode: 0o700 });
  ctx.env.XDG_RUNTIME_DIR = runtime;
  const policy = JSON.parse(fs.readFileSync(ctx.config, 'utf8'));
  policy.rules = rules;
  fs.writeFileSync(ctx.config, JSON.stringify(policy, null, 2));
  return ctx;
}

/** A client that answers yes with `remember` (or refuses) and records each question. */
function asker(remember, approve = true) {
  const questions = [];
  const client = newClient({ elicitation: true });
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    questions.push(req.params);
    const content = { approve };
    if (remember) content.remember = remember;
    return { action: 'accept', content };
  });
  return { client, questions };
}

const offered = (q) => (q.requestedSchema?.properties?.remember?.oneOf ?? []).map((c) => c.const);
const callsOf = (ctx, tool) => readAudit(ctx.audit).filter((l) => l.tool === tool && l.client !== 'operator');

test('stdio: an allow rule runs unasked, forbid refuses unasked, a path rule allows docs/ and asks for src/', async (t) => {
  const ctx = ruledEnv(t, [
    { tool: 'shell_exec', command: 'echo', decision: 'allow' },
    { tool: 'shell_exec', command: 'printf', decision: 'forbid', reason: 'printing is for humans' },
    { tool: 'filesystem_write', path: 'docs/**', decision: 'allow' },
  ]);
  const { client, questions } = asker(null);
  await connect(t, client, stdioTransport(ctx));
  const echo = await client.callTool({ name: 'shell_exec', arguments: { command: 'echo allowed' } });
  assert.ok(!echo.isError, textOf(echo));
  const printf = await client.callTool({ name: 'shell_exec', arguments: { command: 'printf no' } });
  assert.equal(printf.isError, true);
  assert.match(textOf(printf), /printing is for humans/);
  assert.equal(questions.length, 0, 'asked about a command a rule decides');
  const docs = await client.callTool({ name: 'filesystem_write', arguments: { path: 'docs/x.md', content: 'd', create_dirs: true } });
  assert.ok(!docs.isError && questions.length === 0, textOf(docs));
  const src = await client.callTool({ name: 'filesystem_write', arguments: { path: 'src/x.rs', content: 's', create_dirs: true } });
  assert.ok(!src.isError, textOf(src));
  assert.equal(questions.length, 1, 'src/x.rs did not ask');
  const shell = callsOf(ctx, 'shell_exec');
  assert.equal(shell[0].rule, 'rules[0] shell_exec command "echo" allow');
  assert.equal(shell[1].decision, 'denied');
  assert.equal(shell[1].rule, 'rules[1] shell_exec command "printf" forbid');
  const writes = callsOf(ctx, 'filesystem_write');
  assert.equal(writes[0].rule, 'rules[2] filesystem_write path "docs/**" allow');
  assert.equal(writes[1].approval.via, 'elicitation');
});

test('stdio: an ask rule asks in auto mode', async (t) => {
  const ctx = ruledEnv(t, [{ tool: 'shell_exec', command: 'echo', decision: 'ask' }], 'auto');
  const { client, questions } = asker(null);
  await connect(t, client, stdioTransport(ctx));
  const r = await client.callTool({ name: 'shell_exec', arguments: { command: 'echo asked' } });
  assert.ok(!r.isError, textOf(r));
  assert.equal(questions.length, 1);
  assert.match(questions[0].message, /rules\[0\]/);
});

test('stdio: remember session holds in the session, not in a new one; remember always outlives the process', async (t) => {
  const ctx = ruledEnv(t, []);
  const first = asker('session');
  await connect(t, first.client, stdioTransport(ctx));
  await first.client.callTool({ name: 'shell_exec', arguments: { command: 'echo one' } });
  assert.deepEqual(offered(first.questions[0]), ['once', 'session', 'always']);
  assert.match(JSON.stringify(first.questions[0].requestedSchema), /Allow `echo …` for this session/);
  const two = await first.client.callTool({ name: 'shell_exec', arguments: { command: 'echo two' } });
  assert.ok(!two.isError, textOf(two));
  assert.equal(first.questions.length, 1, 'the session answer did not hold');
  await first.client.close();

  const second = asker('always');
  await connect(t, second.client, stdioTransport(ctx));
  await second.client.callTool({ name: 'shell_exec', arguments: { command: 'echo three' } });
  assert.equal(second.questions.length, 1, 'a new session inherited the answer');
  await second.client.close();
  const rules = JSON.parse(fs.readFileSync(ctx.config, 'utf8')).rules;
  assert.deepEqual(rules, [{ tool: 'shell_exec', command: 'echo', decision: 'allow' }]);

  const third = asker(null);
  await connect(t, third.client, stdioTransport(ctx));
  const r = await third.client.callTool({ name: 'shell_exec', arguments: { command: 'echo four' } });
  assert.ok(!r.isError, textOf(r));
  assert.equal(third.questions.length, 0, 'a new process did not honour the remembered rule');

  const shell = callsOf(ctx, 'shell_exec');
  assert.equal(shell[0].remember, 'session');
  assert.equal(shell[1].approval.via, 'remembered');
  assert.equal(shell[2].remember, 'always');
  assert.equal(shell[3].rule, 'rules[0] shell_exec command "echo" allow');
});

test('streamable HTTP: a session answer binds to the Mcp-Session-Id', async (t) => {
  const ctx = ruledEnv(t, []);
  const srv = await startHttpServer(t, ctx, { token: TOKEN });
  const url = new URL(`${srv.base}/mcp`);
  const opts = { requestInit: { headers: { 'X-Execution-Token': TOKEN } } };
  const a = asker('session');
  await connect(t, a.client, new StreamableHTTPClientTransport(url, opts));
  await a.client.callTool({ name: 'shell_exec', arguments: { command: 'echo a' } });
  await a.client.callTool({ name: 'shell_exec', arguments: { command: 'echo b' } });
  assert.equal(a.questions.length, 1, 'the session answer did not hold over HTTP');
  const b = asker(null);
  await connect(t, b.client, new StreamableHTTPClientTransport(url, opts));
  await b.client.callTool({ name: 'shell_exec', arguments: { command: 'echo c' } });
  assert.equal(b.questions.length, 1, 'another HTTP session used the answer');
});

test('stdio only: `execlayer approve ID` over the operator socket, and the retry runs', async (t) => {
  const ctx = ruledEnv(t, []);
  const client = newClient();
  await connect(t, client, stdioTransport(ctx));
  const refused = await client.callTool({ name: 'filesystem_write', arguments: { path: 'w.txt', content: 'w' } });
  assert.equal(refused.isError, true);
  const id = refused._meta?.['execlayer/pending_approval_id'];
  assert.ok(id, `no pending id: ${textOf(refused)}`);
  assert.match(textOf(refused), new RegExp(`execlayer approve ${id}`));
  assert.doesNotMatch(textOf(refused), /\/api\/v1/, 'a stdio-only server named an HTTP route');
  const out = execFileSync(BIN, ['approve', id], { env: childEnv({ XDG_RUNTIME_DIR: ctx.env.XDG_RUNTIME_DIR }), cwd: ctx.base, encoding: 'utf8' });
  assert.match(out, new RegExp(`approved ${id}`));
  const retry = await client.callTool({ name: 'filesystem_write', arguments: { path: 'w.txt', content: 'w', approval_id: id } });
  assert.ok(!retry.isError, textOf(retry));
  assert.equal(fs.readFileSync(path.join(ctx.workspace, 'w.txt'), 'utf8'), 'w');
  const writes = callsOf(ctx, 'filesystem_write');
  assert.equal(writes.at(-1).approval.via, 'approval_id');
  assert.ok(readAudit(ctx.audit).some((l) => l.client === 'operator' && l.approval?.via === 'operator (socket)'));
});
