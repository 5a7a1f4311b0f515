// Kernel lane, test-only: runs commands inside the guest for the host-side scenarios (data checks on an
// attached device or file: dd, sha256sum, blockdev, ...). Never part of the agent, never shipped.
// Started by guest-init.sh in agent mode: `node guest-exec.mjs PORT`, token from KL_TOKEN (Bearer auth).
//
//   POST /exec  { argv: string[], stdin?: base64, timeoutMs?: number, encoding?: 'utf8' | 'base64' }
//            -> { code, signal, stdout, stderr, durationMs }      (stdout in `encoding`, default utf8)
//   GET /healthz -> ok
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 8601);
const token = process.env.KL_TOKEN ?? '';
const MAX_OUT = 64 * 1024 * 1024;

function reply(res, status, body) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
  res.end(text);
}

function runCommand({ argv, stdin, timeoutMs = 120_000, encoding = 'utf8' }) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    let outLen = 0;
    child.stdout.on('data', (b) => {
      if (outLen < MAX_OUT) out.push(b);
      outLen += b.length;
    });
    child.stderr.on('data', (b) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: 127, signal: null, stdout: '', stderr: String(e), durationMs: Date.now() - started });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString(encoding === 'base64' ? 'base64' : 'utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        durationMs: Date.now() - started,
      });
    });
    child.stdin.on('error', () => {});
    if (stdin) child.stdin.end(Buffer.from(stdin, 'base64'));
    else child.stdin.end();
  });
}

const server = createServer(async (req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return reply(res, 200, 'ok');
  if (!token || req.headers.authorization !== `Bearer ${token}`) return reply(res, 401, { error: 'unauthorized' });
  if (req.method !== 'POST' || req.url !== '/exec') return reply(res, 404, { error: 'not found' });
  const chunks = [];
  for await (const c of req) chunks.push(c);
  let body;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return reply(res, 400, { error: 'body is not JSON' });
  }
  if (!Array.isArray(body.argv) || body.argv.length === 0 || !body.argv.every((a) => typeof a === 'string')) {
    return reply(res, 400, { error: 'argv must be a non-empty string array' });
  }
  reply(res, 200, await runCommand(body));
});
server.listen(port, '0.0.0.0', () => console.log(`guest-exec listening on :${port}`));
