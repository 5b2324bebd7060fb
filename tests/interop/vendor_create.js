#!/usr/bin/env node
// Our own re-implementation of the vendor's documented "Creating a Session"
// node-coap example (POST /v1/sessions with a compact JSON body).
//
//   node vendor_create.js HOST PORT NUMBER [LABEL [PARTY_SIZE [GOAL]]]
//
// Prints exactly one line naming the branch of the vendor example taken:
//   created  - code '2.01' (session created)
//   exists   - code '2.00' (an active session for NUMBER already existed)
//   error    - any other code
// Exit status 0 when a response arrived, 2 on timeout/error, 64 on bad usage.
// COAP_TIMEOUT_MS (default 5000) bounds the wait for the response.
'use strict';

const coap = require('coap');

const [host, portArg, numberArg, label = 'Yuri.', partySizeArg = '3', goalArg = '200'] =
  process.argv.slice(2);
const port = Number(portArg);
const number = Number(numberArg);
if (!host || !Number.isInteger(port) || !Number.isInteger(number)) {
  process.stderr.write('usage: node vendor_create.js HOST PORT NUMBER [LABEL [PARTY_SIZE [GOAL]]]\n');
  process.exit(64);
}
const timeoutMs = Number(process.env.COAP_TIMEOUT_MS || 5000);

const giveUp = (msg) => {
  process.stderr.write(`vendor_create: ${msg}\n`);
  process.exit(2);
};
const timer = setTimeout(() => giveUp(`timeout: no response after ${timeoutMs} ms`), timeoutMs);

const request = coap.request({
  host,
  port,
  pathname: '/v1/sessions',
  method: 'POST',
  options: {
    'Content-Format': 'application/json'
  },
  // node-coap picks a UDP socket family per agent; match it to the address.
  agent: new coap.Agent({ type: require('net').isIPv6(host) ? 'udp6' : 'udp4' })
});

request.on('response', (response) => {
  clearTimeout(timer);
  let branch;
  if (response.code === '2.01') {
    branch = 'created';
  } else if (response.code === '2.00') {
    branch = 'exists';
  } else {
    branch = 'error';
    process.stderr.write(`vendor_create: ${response.code} ${response.payload.toString('utf-8')}\n`);
  }
  console.log(branch);
});
request.on('timeout', () => giveUp('timeout'));
request.on('error', (err) => giveUp(`error: ${err.message}`));

// Compact JSON, as the vendor documentation asks.
request.write(JSON.stringify({
  number,
  label,
  partySize: Number(partySizeArg),
  goal: Number(goalArg)
}));
request.end();
