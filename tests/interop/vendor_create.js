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
const { guardRequest, socketType, vendorArgs } = require('./common');

const { host, port, number, rest: [label = 'Yuri.', partySizeArg = '3', goalArg = '200'] } =
  vendorArgs('vendor_create', 'HOST PORT NUMBER [LABEL [PARTY_SIZE [GOAL]]]');

const request = coap.request({
  host,
  port,
  pathname: '/v1/sessions',
  method: 'POST',
  options: {
    'Content-Format': 'application/json'
  },
  // node-coap picks a UDP socket family per agent; match it to the address.
  agent: new coap.Agent({ type: socketType(host) })
});
guardRequest('vendor_create', request); // ours: a time limit, and exit 2 on timeout or error

request.on('response', (response) => {
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

// Compact JSON, as the vendor documentation asks.
request.write(JSON.stringify({
  number,
  label,
  partySize: Number(partySizeArg),
  goal: Number(goalArg)
}));
request.end();
