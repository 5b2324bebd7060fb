#!/usr/bin/env node
// Perform ONE CoAP request with node-coap (the client library the vendor's
// example code uses) and print the response as a single JSON line:
//
//   {"code":"2.01","payload":"<utf8 text>","contentFormat":50,"etag":"a1b2"}
//
// contentFormat is the numeric Content-Format option (null when absent) and
// etag the ETag option as lowercase hex (null when absent). Block2 responses
// are reassembled by node-coap before we see them, so payload is the whole body.
//
// Exit status: 0 when a response arrived (whatever its code), 2 on timeout or
// error (message on stderr), 64 on bad usage.
'use strict';

const coap = require('coap');
const { commandLine, errorText, socketType, uintFromBuffer } = require('./common');

const USAGE = `usage: node coap_request.js [options]
  --host HOST              server address (default 127.0.0.1)
  --port N                 server port (default 5683)
  --method M               GET | POST | PUT | DELETE (default GET)
  --path PATH              e.g. /v1/sessions (default /)
  --query Q                e.g. "number=23" or "a=1&b=2"
  --payload TEXT           request body, sent as-is (e.g. '{"number":23}')
  --content-format F       e.g. application/json or 50
  --accept F               e.g. application/cbor or 60
  --etag HEX               send an ETag option (hex bytes)
  --timeout-ms N           give up after N ms (default 5000)
prints one JSON line: {"code","payload","contentFormat","etag"}`;

const { usageError, parse } = commandLine('coap_request', USAGE);

function parseArgs(argv) {
  const opts = parse(argv, {
    method: 'GET',
    path: '/',
    query: null,
    payload: null,
    contentFormat: null,
    accept: null,
    etag: null,
    timeoutMs: 5000
  });

  opts.port = Number(opts.port);
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
    usageError('--port must be an integer 1..65535');
  }
  opts.timeoutMs = Number(opts.timeoutMs);
  if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0) {
    usageError('--timeout-ms must be a positive number');
  }
  opts.method = String(opts.method).toUpperCase();
  if (!['GET', 'POST', 'PUT', 'DELETE'].includes(opts.method)) {
    usageError('--method must be GET, POST, PUT or DELETE');
  }
  // A numeric format ("50") goes to node-coap as a number, a name as a string.
  for (const k of ['contentFormat', 'accept']) {
    if (opts[k] !== null && /^\d+$/.test(opts[k])) opts[k] = Number(opts[k]);
  }
  if (opts.etag !== null && !/^([0-9a-fA-F]{2}){1,8}$/.test(opts.etag)) {
    usageError('--etag must be 1..8 bytes of hex');
  }
  return opts;
}

// node-coap converts response option values in place while building the
// IncomingMessage; its default ETag converter turns the bytes into a UTF-8
// string (lossy). Keep ETag values as raw Buffers instead (public API:
// registerOption(name, toBinary, fromBinary)).
coap.registerOption(
  'ETag',
  value => (Buffer.isBuffer(value) ? value : Buffer.from(String(value), 'hex')),
  buf => Buffer.from(buf)
);

// node-coap's own name <-> number table for Content-Format (no "exports" map in
// coap 1.5.0, so the internal module can be required directly).
const optionConverter = require('coap/dist/lib/option_converter');

// Option value from a parsed response (already converted by node-coap), or undefined.
function rawOption(res, name) {
  const found = (res.options || []).find(o => o.name === name);
  return found === undefined ? undefined : found.value;
}

// node-coap reports Content-Format as a media-type name for registered formats
// ('application/json') and as a number otherwise; report the number either way.
function contentFormatNumber(res) {
  const value = rawOption(res, 'Content-Format');
  if (value === undefined || value === null) return null;
  if (typeof value === 'number') return value;
  if (Buffer.isBuffer(value)) return uintFromBuffer(value);
  return uintFromBuffer(optionConverter.toBinary('Content-Format', String(value)));
}

function main() {
  const opts = parseArgs(process.argv.slice(2));

  // An agent of our own whose socket family matches the address (udp4 for
  // 127.0.0.1, udp6 for an IPv6 literal). node-coap's default would do the same
  // (globalAgent is udp4), but being explicit keeps one socket per request.
  const agent = new coap.Agent({ type: socketType(opts.host) });

  const options = {};
  if (opts.contentFormat !== null) options['Content-Format'] = opts.contentFormat;
  if (opts.accept !== null) options.Accept = opts.accept;
  if (opts.etag !== null) options.ETag = Buffer.from(opts.etag, 'hex');

  const params = {
    host: opts.host,
    port: opts.port,
    pathname: opts.path,
    method: opts.method,
    options,
    agent
  };
  if (opts.query !== null && opts.query !== '') params.query = opts.query;

  let done = false;
  const fail = (msg) => {
    if (done) return;
    done = true;
    // stderr is synchronous for files and pipes on Linux, so exiting is safe.
    process.stderr.write(`coap_request: ${msg}\n`);
    process.exit(2);
  };

  const timer = setTimeout(
    () => fail(`timeout: no response after ${opts.timeoutMs} ms`),
    opts.timeoutMs
  );

  let req;
  try {
    req = coap.request(params);
  } catch (err) {
    fail(`error: ${errorText(err)}`);
    return;
  }

  req.on('response', res => {
    if (done) return;
    const etag = rawOption(res, 'ETag');
    const out = {
      code: res.code,
      payload: (res.payload || Buffer.alloc(0)).toString('utf-8'),
      contentFormat: contentFormatNumber(res),
      etag: etag === undefined ? null : Buffer.from(etag).toString('hex')
    };
    done = true;
    clearTimeout(timer);
    process.stdout.write(JSON.stringify(out) + '\n');
    // node-coap's agent closes its socket by itself once the exchange is over
    // (calling agent.close() now would throw ERR_SOCKET_DGRAM_NOT_RUNNING), so
    // the process exits on its own; this is only a backstop.
    process.exitCode = 0;
    setTimeout(() => process.exit(0), 500).unref();
  });
  req.on('timeout', err => fail(`timeout: ${errorText(err, 'no response')}`));
  req.on('error', err => fail(`error: ${errorText(err)}`));
  agent.on('error', err => fail(`socket error: ${errorText(err)}`));

  if (opts.payload !== null) req.write(opts.payload);
  req.end();
}

main();
