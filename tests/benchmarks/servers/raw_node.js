// The platform limit on Node.js: a bare http SSE broadcaster, no framework.
// GET /sub?topic=T opens a stream, POST /pub (form topic, data; HS256 bearer
// token checked with node:crypto) writes one frame to every stream of the
// topic, GET /count answers the number of open streams.
// Usage: node raw_node.js PORT KEY
'use strict';
const http = require('http');
const crypto = require('crypto');
const querystring = require('querystring');

const [port, key] = [Number(process.argv[2]), process.argv[3]];
const streams = new Map();
let counter = 0;

function verify(header) {
  const parts = (header || '').slice(7).split('.');
  if (parts.length !== 3) return false;
  const mac = crypto.createHmac('sha256', key).update(parts[0] + '.' + parts[1]).digest('base64url');
  if (mac.length !== parts[2].length || !crypto.timingSafeEqual(Buffer.from(mac), Buffer.from(parts[2]))) return false;
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  return claims.mercure && claims.mercure.publish.includes('*');
}

http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (req.method === 'GET' && url.pathname === '/count') {
    let n = 0;
    for (const s of streams.values()) n += s.size;
    return res.end(String(n));
  }
  if (req.method === 'GET') {
    const topic = url.searchParams.get('topic') || '';
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(':\n\n');
    if (!streams.has(topic)) streams.set(topic, new Set());
    const bucket = streams.get(topic);
    bucket.add(res);
    req.on('close', () => bucket.delete(res));
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (!verify(req.headers.authorization)) { res.statusCode = 401; return res.end('unauthorized'); }
    const form = querystring.parse(Buffer.concat(chunks).toString());
    const id = String(++counter);
    const frame = `id: ${id}\ndata: ${form.data}\n\n`;
    for (const s of streams.get(form.topic) || []) s.write(frame);
    res.end(id);
  });
}).listen(port, '127.0.0.1', 4096);
