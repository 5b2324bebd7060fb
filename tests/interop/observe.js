#!/usr/bin/env node
// Observe a resource with node-coap (GET + Observe 0) and print every
// notification as one JSON line on stdout, as it arrives:
//
//   {"payload":"<utf8 text>","observe":3}
//
// observe is the notification's Observe option (null when absent). The first
// line is the answer to the registration itself. After --count N notifications,
// or when --timeout-ms runs out, the observation is cancelled (see below) and
// one last line reports how that went:
//
//   {"deregistered":"2.05"}      the server answered the deregistration GET
//   {"deregistered":null}        no answer within --dereg-timeout-ms
//
// Exit status: 0 when --count notifications arrived (or, without --count, when
// the timeout ended the observation), 2 on timeout before --count, on a
// request error or when the registration was not answered with an observation,
// 64 on bad usage.
//
// Cancelling: node-coap 1.5.0's ObserveReadStream.close() alone only forgets
// the token and closes the agent's socket, so the server learns nothing until
// its next notification bounces (ICMP port unreachable). close(true) ("eager
// deregister") also sends GET + Observe 1 with the observation's token, but the
// agent closes its own socket on 'close' *before* it sends that GET on
// 'deregister', which throws ERR_SOCKET_DGRAM_NOT_RUNNING whenever no other
// message (such as the ACK of a CON notification) happens to be in flight. So
// the agent is given a socket of ours (an agent never closes a socket it was
// given), close(true) sends the deregistration on it, and the process exits once
// the answer to that arrived (a response with our token and no Observe option).
'use strict';

const coap = require('coap');
const coapPacket = require('coap-packet');
const dgram = require('dgram');
const { commandLine, errorText, socketType, uintFromBuffer } = require('./common');

const USAGE = `usage: node observe.js [options]
  --host HOST              server address (default 127.0.0.1)
  --port N                 server port (default 5683)
  --path PATH              resource to observe (default /v1/notify)
  --query Q                e.g. "action=get_sessions"
  --accept F               e.g. application/cbor or 60 (payload is then printed as utf8 anyway)
  --count N                stop after N notifications (default: until the timeout)
  --timeout-ms N           stop after N ms (default 5000)
  --dereg-timeout-ms N     wait at most N ms for the deregistration's answer (default 1000)
prints one JSON line per notification: {"payload","observe"}, then {"deregistered"}`;

const { usageError, parse } = commandLine('observe', USAGE);

function parseArgs(argv) {
  const opts = parse(argv, {
    path: '/v1/notify',
    query: null,
    accept: null,
    count: null,
    timeoutMs: 5000,
    deregTimeoutMs: 1000
  });
  const positiveInt = (k, name) => {
    opts[k] = Number(opts[k]);
    if (!Number.isInteger(opts[k]) || opts[k] < 1) usageError(`${name} must be a positive integer`);
  };
  positiveInt('port', '--port');
  if (opts.port > 65535) usageError('--port must be 1..65535');
  if (opts.count !== null) positiveInt('count', '--count');
  positiveInt('timeoutMs', '--timeout-ms');
  positiveInt('deregTimeoutMs', '--dereg-timeout-ms');
  if (opts.accept !== null && /^\d+$/.test(opts.accept)) opts.accept = Number(opts.accept);
  return opts;
}

function observeOption(packet) {
  const opt = (packet.options || []).find(o => o.name === 'Observe');
  return opt === undefined ? null : uintFromBuffer(opt.value);
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const socket = dgram.createSocket(socketType(opts.host));
  const agent = new coap.Agent({ socket });

  const params = {
    host: opts.host,
    port: opts.port,
    pathname: opts.path,
    method: 'GET',
    observe: true,
    agent
  };
  if (opts.query !== null && opts.query !== '') params.query = opts.query;
  if (opts.accept !== null) params.options = { Accept: opts.accept };

  let token = null; // the observation's token, learned from its first answer
  let stream = null; // node-coap's ObserveReadStream
  let received = 0;
  let stopping = false; // set once the observation is being cancelled
  let exitCode = 0;
  let deregTimer = null;

  const finish = (deregistered) => {
    clearTimeout(deregTimer);
    // stdout is synchronous for pipes and files on Linux, so exiting at once is safe;
    // it also stops the agent from retransmitting an unanswered deregistration.
    process.stdout.write(JSON.stringify({ deregistered }) + '\n');
    process.exit(exitCode);
  };

  const fail = (msg) => {
    process.stderr.write(`observe: ${msg}\n`);
    process.exit(2);
  };

  const stop = (why, code) => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    clearTimeout(timer);
    if (why) process.stderr.write(`observe: ${why}\n`);
    if (stream === null) {
      finish(null);
      return;
    }
    deregTimer = setTimeout(() => finish(null), opts.deregTimeoutMs);
    stream.close(true); // sends GET + Observe 1 with our token
  };

  // Sees every datagram (after the agent did): the answer to the deregistration
  // is the first response carrying our token but no Observe option.
  socket.on('message', msg => {
    if (!stopping || token === null || deregTimer === null) return;
    let packet;
    try {
      packet = coapPacket.parse(msg);
    } catch (e) {
      return;
    }
    if (packet.code === '0.00' || !packet.token || !packet.token.equals(token)) return;
    if (observeOption(packet) === null) finish(packet.code);
  });
  socket.on('error', err => fail(`socket error: ${errorText(err)}`));

  const timer = setTimeout(() => {
    if (opts.count !== null) {
      stop(`timeout: ${received} of ${opts.count} notifications after ${opts.timeoutMs} ms`, 2);
    } else {
      stop(null, 0);
    }
  }, opts.timeoutMs);

  const req = coap.request(params);
  req.on('response', res => {
    if (typeof res.close !== 'function' || typeof res.append !== 'function') {
      // Not an ObserveReadStream: node-coap makes a plain message of a 4.04.
      fail(`registration answered ${res.code} without an observation: ` +
           `${(res.payload || Buffer.alloc(0)).toString('utf-8')}`);
      return;
    }
    stream = res;
    // The parsed packet behind the message (internal to node-coap, pinned at 1.5.0).
    token = Buffer.from(res._packet.token);
    if (!res.code.startsWith('2.')) {
      // node-coap makes an observation stream of any answer but a 4.04, though a
      // non-2.xx answer establishes no observation (RFC 7641 §3.2): nothing to cancel.
      process.stdout.write(JSON.stringify({
        payload: (res.payload || Buffer.alloc(0)).toString('utf-8'), code: res.code
      }) + '\n');
      fail(`registration answered ${res.code}`);
      return;
    }
    res.on('data', payload => {
      if (stopping) return;
      received++;
      // res.headers is refreshed from each notification before 'data' is emitted.
      const observe = typeof res.headers.Observe === 'number' ? res.headers.Observe : null;
      process.stdout.write(JSON.stringify({ payload: payload.toString('utf-8'), observe }) + '\n');
      if (opts.count !== null && received >= opts.count) stop(null, 0);
    });
  });
  req.on('timeout', err => fail(`timeout: ${errorText(err, 'no response')}`));
  req.on('error', err => fail(`error: ${errorText(err)}`));
  agent.on('error', err => fail(`agent error: ${errorText(err)}`));
  req.end();
}

main();
