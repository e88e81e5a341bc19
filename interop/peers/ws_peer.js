'use strict';
// A peer for the ecows interop tests, built on the ws package (pinned in ../package.json).
//
//   node ws_peer.js server CERT_FILE KEY_FILE
//   node ws_peer.js client URL SCENARIO CA_FILE
//
// It reports on stdout, one JSON object a line: {"ev":"listening","port":N,"tlsPort":M} once a
// server listens, then "check", "closed", "proto", "received", "error" and, for a client, "done"
// events. The request path chooses a server's behaviour; README.md describes the scenarios.

const fs = require('fs');
const http = require('http');
const https = require('https');
const { WebSocket, WebSocketServer } = require('ws');

// The same values as common_test.go.
const TEXT = 'héllo wörld ✓ 日本語 🎉 — ecows';
const FRAG_TEXT = 'fragmented: Grüße ✓ 日本語 🎉 end';
const FRAG_BINARY_LEN = 3000;
const PING_FROM_ECOWS = 'ecows ping ✓';
const PING_FROM_PEER = 'peer ping ✓';
const CODE_FROM_PEER = 4002;
const REASON_FROM_PEER = 'peer says bye ✓';
const PROTO1 = 'ecows.v1';
const PROTO2 = 'ecows.v2';
const SMALL_LIMIT = 1024;
const OVERSIZE = 4096;
const LARGE_LIMIT = 2 << 20;
const BINARY_SIZES = [0, 125, 126, 65535, 65536, 1 << 20];
const INVALID_UTF8 = Buffer.from('ok \xff\xfe bad', 'latin1');
const TIMEOUT_MS = 15000;
// The compress scenario (compress_test.go): message sizes, and the bomb of zeros.
const COMPRESS_TEXT_SIZES = [0, 10, 600, 5000, 40000, 70000, 300000];
const COMPRESS_BINARY_SIZES = [5 << 10, 70 << 10];
const BOMB_SIZE = 1 << 20;
// The ws servers of the compress scenario, by the second segment of /compress/VARIANT.
const COMPRESS_SERVERS = {
  default: true,
  'no-context-takeover': { serverNoContextTakeover: true, clientNoContextTakeover: true },
  'window-bits-10': { clientMaxWindowBits: 10, serverMaxWindowBits: 10 },
};

function emit(ev) {
  process.stdout.write(JSON.stringify(ev) + '\n');
}

function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

// thirds splits a buffer as common_test.go's thirds does: for FRAG_TEXT the cuts fall inside
// multi-byte characters.
function thirds(b) {
  const n = b.length;
  const a = Math.floor(n / 3);
  const c = Math.floor((2 * n) / 3);
  return [b.subarray(0, a), b.subarray(a, c), b.subarray(c)];
}

// sendParts sends one message in fragments, with ws's send(data, {fin: false}).
function sendParts(ws, parts, binary) {
  parts.forEach((p, i) => ws.send(p, { binary, fin: i === parts.length - 1 }));
}

// inbox turns a socket's events into awaitable messages: next() resolves to
// {data, isBinary} or, once the connection has ended, {closed: {code, reason}}.
function inbox(ws) {
  const items = [];
  const waiters = [];
  let closed = null;
  const push = (item) => {
    const w = waiters.shift();
    if (w) w(item);
    else items.push(item);
  };
  ws.on('message', (data, isBinary) => push({ data, isBinary }));
  ws.on('close', (code, reason) => {
    closed = { code, reason: reason.toString() };
    while (waiters.length) waiters.shift()({ closed });
  });
  return {
    next() {
      if (items.length) return Promise.resolve(items.shift());
      if (closed) return Promise.resolve({ closed });
      return new Promise((resolve) => waiters.push(resolve));
    },
    async untilClosed() {
      for (;;) {
        const m = await this.next();
        if (m.closed) return m.closed;
      }
    },
  };
}

function check(name, ok, detail) {
  emit({ ev: 'check', name, ok: !!ok, detail: detail || '' });
}

async function expectMessage(box, name, isBinary, want) {
  const m = await box.next();
  const ok = !m.closed && m.isBinary === isBinary && Buffer.compare(m.data, want) === 0;
  check(name, ok, m.closed ? `closed ${m.closed.code}` : `got binary=${m.isBinary} ${m.data.length} bytes`);
}

// compressMessages returns the compress scenario's messages: texts that compress well, then
// random binaries.
function compressMessages() {
  const msgs = [];
  for (const n of COMPRESS_TEXT_SIZES) {
    let t = '';
    for (let i = 0; t.length < n; i++) t += `{"id":${i},"user":"user${i % 50}","text":"hello world ${i % 9}"},`;
    msgs.push({ data: Buffer.from(t.slice(0, n)), isBinary: false });
  }
  for (const n of COMPRESS_BINARY_SIZES) msgs.push({ data: require('crypto').randomBytes(n), isBinary: true });
  return msgs;
}

// ---- server ----

function serve(ws, path, behaviour) {
  ws.on('error', (err) => emit({ ev: 'log', path, detail: String(err) }));
  ws.on('close', (code, reason) => emit({ ev: 'closed', path, code, reason: reason.toString() }));
  const echo = () => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  switch (behaviour) {
    case 'echo':
    case 'small':
      echo();
      break;
    case 'fragments': {
      // A ping between the text's fragments; the pong must carry its payload.
      ws.once('pong', (data) => {
        const got = data.toString();
        emit({ ev: 'check', path, name: 'pong-mid-message', ok: got === PING_FROM_PEER, detail: got });
      });
      const parts = thirds(Buffer.from(FRAG_TEXT));
      ws.send(parts[0], { binary: false, fin: false });
      ws.ping(PING_FROM_PEER);
      ws.send(parts[1], { binary: false, fin: false });
      ws.send(parts[2], { binary: false, fin: true });
      sendParts(ws, thirds(pattern(FRAG_BINARY_LEN)), true);
      echo();
      break;
    }
    case 'ping':
      ws.on('pong', (data) => {
        const verdict = data.toString() === PING_FROM_PEER ? 'pong-ok ' : 'pong-bad ';
        ws.send(verdict + data.toString());
      });
      ws.on('message', (data) => {
        if (data.toString() === 'go') ws.ping(PING_FROM_PEER);
      });
      break;
    case 'close-by-peer':
      ws.close(CODE_FROM_PEER, REASON_FROM_PEER);
      break;
    case 'subprotocol':
      ws.send('proto:' + ws.protocol);
      break;
    case 'big':
      ws.send(pattern(OVERSIZE));
      break;
    case 'big-fragmented':
      sendParts(ws, thirds(pattern(FRAG_BINARY_LEN)), true);
      break;
    case 'compress':
      emit({ ev: 'proto', path, detail: ws.extensions });
      echo();
      break;
    case 'compress-bomb':
      ws.send(Buffer.alloc(BOMB_SIZE), { binary: true, compress: true });
      break;
    default:
      emit({ ev: 'error', path, detail: 'unknown behaviour' });
  }
}

function server(certFile, keyFile) {
  // ws has no list of server subprotocols: without a handleProtocols hook it takes the client's
  // first offer, which is what the tests check.
  const large = new WebSocketServer({ noServer: true, maxPayload: LARGE_LIMIT });
  const small = new WebSocketServer({ noServer: true, maxPayload: SMALL_LIMIT });
  const compress = {};
  for (const [name, perMessageDeflate] of Object.entries(COMPRESS_SERVERS)) {
    compress[name] = new WebSocketServer({ noServer: true, maxPayload: LARGE_LIMIT, perMessageDeflate });
  }
  const onUpgrade = (req, socket, head) => {
    const path = new URL(req.url, 'http://peer').pathname;
    const behaviour = path.split('/')[1];
    let wss = behaviour === 'small' ? small : large;
    if (behaviour === 'compress' || behaviour === 'compress-bomb') wss = compress[path.split('/')[2]] || compress.default;
    wss.handleUpgrade(req, socket, head, (ws) => serve(ws, path, behaviour));
  };
  const plain = http.createServer();
  const secure = https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) });
  plain.on('upgrade', onUpgrade);
  secure.on('upgrade', onUpgrade);
  // WS_PEER_PORT fixes the plain port, so that a restarted server is found where it was.
  plain.listen(Number(process.env.WS_PEER_PORT || 0), '127.0.0.1', () => {
    secure.listen(0, '127.0.0.1', () => {
      emit({ ev: 'listening', port: plain.address().port, tlsPort: secure.address().port });
    });
  });
}

// ---- client ----

async function client(url, scenario, caFile) {
  const opts = { maxPayload: scenario === 'too-big-for-peer' ? SMALL_LIMIT : LARGE_LIMIT };
  if (scenario.startsWith('compress')) opts.perMessageDeflate = { threshold: 0 };
  if (url.startsWith('wss:')) opts.ca = fs.readFileSync(caFile);
  const protocols = scenario === 'subprotocol' ? [PROTO1, PROTO2] : [];
  const ws = new WebSocket(url, protocols, opts);
  ws.on('error', (err) => emit({ ev: 'log', detail: String(err) }));
  const box = inbox(ws);
  const opened = await new Promise((resolve) => {
    ws.once('open', () => resolve(true));
    ws.once('close', () => resolve(false));
  });
  if (!opened) {
    emit({ ev: 'error', detail: 'handshake failed' });
    return;
  }
  const closeWith = async (code, reason) => {
    ws.close(code, reason);
    emit({ ev: 'closed', ...(await box.untilClosed()) });
  };

  switch (scenario) {
    case 'echo':
    case 'wss': {
      ws.send(TEXT);
      await expectMessage(box, 'text', false, Buffer.from(TEXT));
      for (const n of scenario === 'wss' ? [65536] : BINARY_SIZES) {
        ws.send(pattern(n));
        await expectMessage(box, `binary-${n}`, true, pattern(n));
      }
      await closeWith(1000, 'done');
      break;
    }
    case 'fragments':
      await expectMessage(box, 'recv-fragmented-text', false, Buffer.from(FRAG_TEXT));
      await expectMessage(box, 'recv-fragmented-binary', true, pattern(FRAG_BINARY_LEN));
      sendParts(ws, thirds(Buffer.from(FRAG_TEXT)), false);
      await expectMessage(box, 'echo-fragmented-text', false, Buffer.from(FRAG_TEXT));
      sendParts(ws, thirds(pattern(FRAG_BINARY_LEN)), true);
      await expectMessage(box, 'echo-fragmented-binary', true, pattern(FRAG_BINARY_LEN));
      await closeWith(1000, 'done');
      break;
    case 'ping': {
      const pong = new Promise((resolve) => ws.once('pong', resolve));
      ws.ping(PING_FROM_PEER);
      const data = await pong;
      check('ping-echo', data.toString() === PING_FROM_PEER, `pong carried ${JSON.stringify(data.toString())}`);
      ws.send('go');
      await expectMessage(box, 'pong-ok', false, Buffer.from('pong-ok ' + PING_FROM_ECOWS));
      await closeWith(1000, 'done');
      break;
    }
    case 'close-by-peer':
      await closeWith(CODE_FROM_PEER, REASON_FROM_PEER);
      break;
    case 'close-by-ecows':
    case 'close-by-ecows-frames':
    case 'invalid-utf8-from-ecows':
    case 'too-big-for-peer': {
      const m = await box.next();
      if (m.closed) {
        emit({ ev: 'closed', ...m.closed });
      } else {
        emit({ ev: 'received', detail: m.data.toString('hex') });
        await closeWith(1000, 'done');
      }
      break;
    }
    case 'subprotocol': {
      emit({ ev: 'proto', proto: ws.protocol });
      const m = await box.next();
      const said = m.closed ? '' : m.data.toString();
      check('subprotocol', said === 'proto:' + ws.protocol && ws.protocol === PROTO2, `negotiated ${ws.protocol}, server said ${said}`);
      await closeWith(1000, 'done');
      break;
    }
    case 'invalid-utf8-from-peer':
      // ws does not check what it sends: a Buffer with binary false goes out as text.
      ws.send(INVALID_UTF8, { binary: false });
      emit({ ev: 'closed', ...(await box.untilClosed()) });
      break;
    case 'too-big-for-ecows':
      ws.send(pattern(OVERSIZE));
      emit({ ev: 'closed', ...(await box.untilClosed()) });
      break;
    case 'compress':
    case 'compress-bomb': {
      emit({ ev: 'proto', detail: ws.extensions });
      check('compress-negotiated', ws.extensions.includes('permessage-deflate'), ws.extensions);
      if (scenario === 'compress-bomb') {
        ws.send(Buffer.alloc(BOMB_SIZE), { binary: true, compress: true });
        emit({ ev: 'closed', ...(await box.untilClosed()) });
        break;
      }
      let ok = true;
      let detail = '';
      for (let round = 0; round < 2 && ok; round++) {
        for (const m of compressMessages()) {
          ws.send(m.data, { binary: m.isBinary, compress: true });
          const got = await box.next();
          if (got.closed || got.isBinary !== m.isBinary || Buffer.compare(got.data, m.data) !== 0) {
            ok = false;
            detail = got.closed ? `closed ${got.closed.code}` : `echo of ${m.data.length} bytes differs`;
            break;
          }
        }
      }
      check('compress-echo', ok, detail);
      await closeWith(1000, 'done');
      break;
    }
    default:
      emit({ ev: 'error', detail: `unknown scenario ${scenario}` });
  }
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'server') {
  server(args[0], args[1]);
} else if (mode === 'client') {
  setTimeout(() => {
    emit({ ev: 'error', detail: `scenario did not finish within ${TIMEOUT_MS} ms` });
    process.exit(1);
  }, TIMEOUT_MS).unref();
  client(args[0], args[1], args[2]).then(
    () => {
      emit({ ev: 'done' });
      process.exit(0);
    },
    (err) => {
      emit({ ev: 'error', detail: String(err && err.stack) });
      process.exit(1);
    },
  );
} else {
  process.stderr.write('usage: ws_peer.js server CERT KEY | client URL SCENARIO CA\n');
  process.exit(2);
}
