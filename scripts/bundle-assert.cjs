// node:assert as the bundled agent's dependencies use it (pino's sonic-boom and thread-stream call
// `assert(value, message)` only), put in its place by bundle-agent.mjs: loading node:assert at start
// pulls in node's assertion-error and terminal-colour code, here loaded only for a failing assertion.
module.exports = function assert(value, message) {
  if (value) return;
  const { AssertionError } = require('node:assert');
  throw new AssertionError({ message: message ?? 'assertion failed', actual: value, expected: true, operator: '==' });
};
