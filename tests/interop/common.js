// Plumbing shared by the node-coap scripts in this folder: command lines, time limits and
// error reports around node-coap. The CoAP exchanges themselves stay in each script.
'use strict';

const net = require('net');

// The UDP socket type for a server address: udp6 for an IPv6 literal, udp4 otherwise.
function socketType(host) {
  return net.isIPv6(host) ? 'udp6' : 'udp4';
}

// An error's message for a one-line report (`fallback`, or the value itself, without one).
function errorText(err, fallback) {
  if (err && err.message) return err.message;
  return fallback === undefined ? String(err) : fallback;
}

// A big-endian unsigned integer from an option value's bytes.
function uintFromBuffer(buf) {
  let n = 0;
  for (const byte of buf) n = n * 256 + byte;
  return n;
}

// The command line of a script named `name` with the help text `usage`:
//   usageError(msg)          prints "<name>: <msg>" and the usage on stderr, exits 64;
//   parse(argv, defaults)    reads `--flag VALUE` and `--flag=VALUE` arguments into a copy of
//                            `defaults` (--host 127.0.0.1 and --port 5683 included), one
//                            flag per key in kebab case (timeoutMs is --timeout-ms);
//                            -h / --help prints the usage and exits 0; an unknown flag or a
//                            missing value is a usageError. Values given stay strings: each
//                            script converts and checks its own.
function commandLine(name, usage) {
  const usageError = (msg) => {
    process.stderr.write(`${name}: ${msg}\n${usage}\n`);
    process.exit(64);
  };

  const parse = (argv, defaults) => {
    const opts = { host: '127.0.0.1', port: 5683, ...defaults };
    const keys = new Map(Object.keys(opts).map(
      key => ['--' + key.replace(/[A-Z]/g, c => '-' + c.toLowerCase()), key]));
    for (let i = 0; i < argv.length; i++) {
      let arg = argv[i];
      if (arg === '-h' || arg === '--help') {
        process.stdout.write(usage + '\n');
        process.exit(0);
      }
      let value;
      const eq = arg.indexOf('=');
      if (arg.startsWith('--') && eq > 0) {
        value = arg.slice(eq + 1);
        arg = arg.slice(0, eq);
      }
      const key = keys.get(arg);
      if (key === undefined) usageError(`unknown argument: ${arg}`);
      if (value === undefined) {
        if (i + 1 >= argv.length) usageError(`${arg} needs a value`);
        value = argv[++i];
      }
      opts[key] = value;
    }
    return opts;
  };

  return { usageError, parse };
}

// For the vendor example scripts (`node SCRIPT HOST PORT NUMBER [MORE...]`): HOST, PORT and
// NUMBER checked (a usage error exits 64 with "usage: node <name>.js <args>") and the
// arguments after them, as strings.
function vendorArgs(name, args) {
  const [host, portArg, numberArg, ...rest] = process.argv.slice(2);
  const port = Number(portArg);
  const number = Number(numberArg);
  if (!host || !Number.isInteger(port) || !Number.isInteger(number)) {
    process.stderr.write(`usage: node ${name}.js ${args}\n`);
    process.exit(64);
  }
  return { host, port, number, rest };
}

// Our guard around a vendor example's request: no response within COAP_TIMEOUT_MS (default
// 5000), a node-coap timeout or a request error prints "<name>: <why>" on stderr and exits 2.
// Call it right after coap.request(), before the example's own 'response' handler.
function guardRequest(name, request) {
  const timeoutMs = Number(process.env.COAP_TIMEOUT_MS || 5000);
  const giveUp = (msg) => {
    process.stderr.write(`${name}: ${msg}\n`);
    process.exit(2);
  };
  const timer = setTimeout(() => giveUp(`timeout: no response after ${timeoutMs} ms`), timeoutMs);
  request.on('response', () => clearTimeout(timer));
  request.on('timeout', () => giveUp('timeout'));
  request.on('error', (err) => giveUp(`error: ${err.message}`));
}

module.exports = { commandLine, errorText, guardRequest, socketType, uintFromBuffer, vendorArgs };
