#!/usr/bin/env node
// A loop to profile one codec operation on the benchmark packets:
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/tools/codec-profile.mjs [decodePacket|PacketDecoder|encodePacket] [seconds]
//   node bench/tools/cpuprofile-top.mjs /tmp/prof
import { decodePacket, encodePacket, PacketDecoder } from '@uwsgi-ts/codec';
import { loadBenchFixtures } from '../lib/packets.mjs';

const [op = 'decodePacket', seconds = '5'] = process.argv.slice(2);
const fixtures = loadBenchFixtures();
if (!fixtures) throw new Error('fixtures missing: packages/codec/test/fixtures');
const packets = Object.values(fixtures).map(
  (b) => new Uint8Array(b.buffer, b.byteOffset, b.length),
);
const decoded = packets.map((p) => decodePacket(p).vars);
const handler = { onVars: () => 0 };
const ops = {
  decodePacket: (i) => decodePacket(packets[i]),
  PacketDecoder: (i) => {
    const d = new PacketDecoder(handler);
    d.push(packets[i]);
    d.end();
  },
  encodePacket: (i) => encodePacket(decoded[i]),
};
const fn = ops[op];
if (!fn) throw new Error(`unknown op ${op}: ${Object.keys(ops).join(', ')}`);
const end = Date.now() + Number(seconds) * 1000;
let n = 0;
while (Date.now() < end) {
  for (let k = 0; k < 1000; k++) fn(k % packets.length);
  n += 1000;
}
console.log(`${op}: ${n} ops in ${seconds} s`);
