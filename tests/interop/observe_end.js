#!/usr/bin/env node
// Observe /v1/notify with node-coap until the server goes away, and print what node-coap
// gave the application and what reached its socket, one JSON line each, as it happens:
//
//   {"event":"data","code":"2.05","observe":0}    the ObserveReadStream emitted 'data'
//   {"event":"end"} / {"event":"close"} / {"event":"error","message":"..."}
//   {"datagram":"5.03","observe":null}            a response on the observation's token
//                                                 reached the socket (seen after the agent)
//
// It exits 0 after --timeout-ms (default 3000). Used to show what node-coap 1.5.0 does
// with the final non-2.xx notification of a shutdown (spec §8, RFC 7641 §3.2).
'use strict';

const coap = require('coap');
const coapPacket = require('coap-packet');
const dgram = require('dgram');
const { commandLine, socketType, uintFromBuffer } = require('./common');

const USAGE = `usage: node observe_end.js [--host HOST] [--port N] [--timeout-ms N]`;
const { parse } = commandLine('observe_end', USAGE);

function observeOption(packet) {
  const opt = (packet.options || []).find(o => o.name === 'Observe');
  return opt === undefined ? null : uintFromBuffer(opt.value);
}

function main() {
  const opts = parse(process.argv.slice(2), { timeoutMs: 3000 });
  const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');
  const socket = dgram.createSocket(socketType(opts.host));
  const agent = new coap.Agent({ socket });
  let token = null;
  socket.on('message', msg => {
    let packet;
    try {
      packet = coapPacket.parse(msg);
    } catch (e) {
      return;
    }
    if (token === null || packet.code === '0.00' || !packet.token.equals(token)) return;
    print({ datagram: packet.code, observe: observeOption(packet) });
  });
  const req = coap.request({
    host: opts.host, port: Number(opts.port), pathname: '/v1/notify', observe: true, agent
  });
  req.on('response', res => {
    token = Buffer.from(res._packet.token); // internal to node-coap, pinned at 1.5.0
    const report = () => print({
      event: 'data', code: res.code, observe: typeof res.headers.Observe === 'number' ? res.headers.Observe : null
    });
    res.on('data', report);
    res.on('end', () => print({ event: 'end' }));
    res.on('close', () => print({ event: 'close' }));
    res.on('error', err => print({ event: 'error', message: String(err) }));
  });
  req.on('error', err => print({ event: 'error', message: String(err) }));
  req.end();
  setTimeout(() => process.exit(0), Number(opts.timeoutMs));
}

main();
