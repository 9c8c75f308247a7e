// Second oracle for the tokenizer tests: encodes each string of a JSON array
// read from stdin with the npm package gpt-3-encoder (a JavaScript port of
// GPT-2's encoder.py) and writes a JSON array of id arrays to stdout.
// Usage: GPT3_ENCODER_DIR=/path/to/node_modules/gpt-3-encoder node oracle.js
const path = require('path');
const dir = process.env.GPT3_ENCODER_DIR;
if (!dir) {
  console.error('GPT3_ENCODER_DIR is not set');
  process.exit(2);
}
const { encode } = require(path.resolve(dir));
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const inputs = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  process.stdout.write(JSON.stringify(inputs.map((s) => encode(s))));
});
