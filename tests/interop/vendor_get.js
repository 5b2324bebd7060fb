#!/usr/bin/env node
// Our own re-implementation of the vendor's documented "Retrieving Single
// Active Sessions" node-coap example (GET /v1/sessions?number=N).
//
//   node vendor_get.js HOST PORT NUMBER
//
// Prints exactly one line naming the branch of the vendor example taken:
//   found <JSON of sessions[0]>  - any 2.xx code
//   missing                      - code '4.04'
//   error                        - any other code (or a 2.xx body without sessions)
// Exit status 0 when a response arrived, 2 on timeout/error, 64 on bad usage.
// COAP_TIMEOUT_MS (default 5000) bounds the wait for the response.
'use strict';

const coap = require('coap');
const { guardRequest, socketType, vendorArgs } = require('./common');

const { host, port, number } = vendorArgs('vendor_get', 'HOST PORT NUMBER');

const request = coap.request({
  host,
  port,
  pathname: '/v1/sessions',
  query: `number=${number}`,
  method: 'GET',
  // node-coap picks a UDP socket family per agent; match it to the address.
  agent: new coap.Agent({ type: socketType(host) })
});
guardRequest('vendor_get', request); // ours: a time limit, and exit 2 on timeout or error

request.on('response', (response) => {
  const text = response.payload.toString('utf-8');
  if (response.code[0] === '2') {
    // The answer is an array of sessions (as for /v1/sessions); take the first.
    let first;
    try {
      first = JSON.parse(text).sessions[0];
    } catch (err) {
      first = undefined;
    }
    if (first === undefined) {
      process.stderr.write(`vendor_get: ${response.code} without sessions[0]: ${text}\n`);
      console.log('error');
    } else {
      console.log(`found ${JSON.stringify(first)}`);
    }
  } else if (response.code === '4.04') {
    console.log('missing');
  } else {
    process.stderr.write(`vendor_get: ${response.code} ${text}\n`);
    console.log('error');
  }
});

request.end();
