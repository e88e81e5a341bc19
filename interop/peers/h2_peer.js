'use strict';
// WebSockets over HTTP/2 (RFC 8441) with Node's built-in http2 module; the WebSocket frames
// are written and parsed here, by hand (RFC 6455 section 5).
//   node h2_peer.js client URL CA_FILE   extended CONNECT to URL (https://host:port/path):
//                                        a text and a 70,000-byte binary echo, then close 1000
//   node h2_peer.js server CERT KEY      an echo server with enableConnectProtocol
// Reports JSON lines on stdout, as the other peers do (README.md).
const http2 = require('http2');
const fs = require('fs');
const crypto = require('crypto');

const TEXT = 'hello over HTTP/2 ✓';
const BINARY_LEN = 70000;
const TIMEOUT_MS = 15000;

const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const check = (name, ok, detail) => emit({ev: 'check', name, ok: !!ok, detail: detail || ''});

function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

// encode returns one final frame; a client masks it.
function encode(op, payload, mask) {
  let head;
  if (payload.length < 126) {
    head = Buffer.from([0x80 | op, payload.length]);
  } else if (payload.length < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | op; head[1] = 126; head.writeUInt16BE(payload.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | op; head[1] = 127; head.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  if (!mask) return Buffer.concat([head, payload]);
  head[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i % 4];
  return Buffer.concat([head, key, body]);
}

// Frames parses frames from the bytes of a stream and reassembles messages.
class Frames {
  constructor(onMessage) { this.buf = Buffer.alloc(0); this.parts = []; this.op = 0; this.onMessage = onMessage; }
  push(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.buf.length < 2) return;
      const fin = (this.buf[0] & 0x80) !== 0, op = this.buf[0] & 0x0f, masked = (this.buf[1] & 0x80) !== 0;
      let len = this.buf[1] & 0x7f, off = 2;
      if (len === 126) { if (this.buf.length < 4) return; len = this.buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (this.buf.length < 10) return; len = Number(this.buf.readBigUInt64BE(2)); off = 10; }
      const keyOff = off;
      if (masked) off += 4;
      if (this.buf.length < off + len) return;
      const payload = Buffer.from(this.buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= this.buf[keyOff + (i % 4)];
      this.buf = this.buf.subarray(off + len);
      if (op >= 8) { this.onMessage(op, payload, masked); continue; }
      if (op !== 0) this.op = op;
      this.parts.push(payload);
      if (fin) { const m = Buffer.concat(this.parts); this.parts = []; this.onMessage(this.op, m, masked); }
    }
  }
}

function client(url, caFile) {
  const u = new URL(url);
  const timer = setTimeout(() => { emit({ev: 'error', detail: 'timeout'}); process.exit(1); }, TIMEOUT_MS);
  const session = http2.connect(u.origin, {ca: fs.readFileSync(caFile)});
  session.on('error', (e) => { emit({ev: 'error', detail: String(e)}); process.exit(1); });
  let started = false;
  session.on('remoteSettings', (s) => {
    if (started) return;
    started = true;
    check('enable-connect-protocol', s.enableConnectProtocol === true, JSON.stringify(s));
    const req = session.request({
      ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':path': u.pathname,
      ':authority': u.host, 'sec-websocket-version': '13',
    }, {endStream: false});
    req.on('error', (e) => emit({ev: 'error', detail: 'stream: ' + e}));
    req.on('response', (h) => {
      check('status-200', h[':status'] === 200, String(h[':status']));
      req.write(encode(1, Buffer.from(TEXT), true));
    });
    let step = 0;
    const frames = new Frames((op, payload, masked) => {
      if (masked) check('server-unmasked', false, 'masked frame from the server');
      if (step === 0) {
        check('text', op === 1 && payload.toString() === TEXT, op + ' ' + payload.toString());
        req.write(encode(2, pattern(BINARY_LEN), true));
      } else if (step === 1) {
        check('binary', op === 2 && payload.equals(pattern(BINARY_LEN)), op + ' ' + payload.length + ' bytes');
        const close = Buffer.alloc(6);
        close.writeUInt16BE(1000, 0); close.write('done', 2);
        req.write(encode(8, close, true));
      } else if (op === 8) {
        emit({ev: 'closed', code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, reason: payload.subarray(2).toString()});
        req.end();
      }
      step++;
    });
    req.on('data', (d) => frames.push(d));
    req.on('end', () => {
      clearTimeout(timer);
      emit({ev: 'done'});
      session.close();
    });
  });
}

function server(certFile, keyFile) {
  const srv = http2.createSecureServer({
    cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), settings: {enableConnectProtocol: true},
  });
  let sessions = 0;
  srv.on('session', () => { sessions++; emit({ev: 'check', name: 'session', ok: true, detail: String(sessions)}); });
  srv.on('stream', (stream, h) => {
    if (h[':method'] !== 'CONNECT' || h[':protocol'] !== 'websocket') {
      stream.respond({':status': 400});
      stream.end('not an RFC 8441 WebSocket request');
      return;
    }
    const path = h[':path'];
    check(path + ':version', h['sec-websocket-version'] === '13', h['sec-websocket-version']);
    check(path + ':no-key', h['sec-websocket-key'] === undefined, h['sec-websocket-key']);
    const offered = (h['sec-websocket-protocol'] || '').split(',').map((s) => s.trim()).filter(Boolean);
    const headers = {':status': 200};
    if (offered.length > 0) headers['sec-websocket-protocol'] = offered[0];
    stream.respond(headers);
    const frames = new Frames((op, payload, masked) => {
      if (!masked) check(path + ':client-masked', false, 'unmasked frame from the client');
      if (op === 8) {
        emit({ev: 'closed', path, code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, reason: payload.subarray(2).toString()});
        stream.end(encode(8, payload.subarray(0, 2), false));
        return;
      }
      if (op === 9) { stream.write(encode(10, payload, false)); return; }
      if (op === 1 || op === 2) stream.write(encode(op, payload, false));
    });
    stream.on('data', (d) => frames.push(d));
    stream.on('error', () => {});
  });
  srv.listen(0, '127.0.0.1', () => emit({ev: 'listening', port: 0, tlsPort: srv.address().port}));
}

const [mode, a, b] = process.argv.slice(2);
if (mode === 'client') client(a, b);
else if (mode === 'server') server(a, b);
else { console.error('usage: h2_peer.js client URL CA | server CERT KEY'); process.exit(2); }
