#!/usr/bin/env node
// Codec micro-benchmark (issue 2): decodePacket and PacketDecoder on real nginx packets, against
// llhttp as node:http drives it for the equivalent HTTP/1.1 request head, and against a plain
// copy of the same bytes. Also encodePacket and requestToVars + encodePacket.
//
//   npx tsc -b && node bench/codec.bench.mjs [--rounds 25] [--batch-ms 20] [--quick] [--json FILE]
//                                            [--capture]   (re-capture the packets via nginx)
//
// Ratios are within one run only: the machine is shared and noisy.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import {
  decodePacket,
  decodePacketView,
  encodePacket,
  PacketDecoder,
  requestToVars,
  varsToRequest,
  viewToRequest,
} from '@uwsgi-ts/codec';
import { captureNginxPackets } from './lib/capture.mjs';
import { CPU_CLOCK, consume, fmtInt, fmtNs, markdownTable, run } from './lib/harness.mjs';
import {
  BENCH_FIXTURES,
  httpHeadFromVars,
  loadBenchFixtures,
  requestFromVars,
  walkPacket,
} from './lib/packets.mjs';

const require = createRequire(import.meta.url);
// `_http_common` is the module node:http itself takes its parser from (public builtin name).
const { HTTPParser, parsers } = require('node:_http_common');

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '25' },
    'batch-ms': { type: 'string', default: '20' },
    quick: { type: 'boolean', default: false },
    capture: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const rounds = args.quick ? 3 : Number(args.rounds);
const batchMs = args.quick ? 10 : Number(args['batch-ms']);

async function inputs() {
  const fixtures = args.capture ? undefined : loadBenchFixtures();
  if (fixtures) {
    return {
      source: `fixtures ${Object.values(BENCH_FIXTURES).join(', ')} (HTTP head rebuilt from the vars)`,
      packets: Object.fromEntries(
        Object.entries(fixtures).map(([name, packet]) => [
          name,
          { packet, http: httpHeadFromVars(walkPacket(packet).vars) },
        ]),
      ),
    };
  }
  return {
    source: 'live nginx capture (bench/lib/capture.mjs)',
    packets: await captureNginxPackets(),
  };
}

// llhttp the way node:http uses it: one parser per connection taken from `_http_common`'s
// FreeList (parsers are reused across connections), `initialize()` at connection start, then
// `execute()`; headers arrive in `kOnHeadersComplete`, or first in `kOnHeaders` batches of 32
// when a request has more fields (node_http_parser.cc kMaxHeaderFieldsCount), which
// `_http_common` concatenates. Our callbacks keep the same strings but build no IncomingMessage,
// so this is the parse alone.
function onHeaders(headers, url) {
  this.collected.push(...headers);
  this.url += url;
}
function onHeadersComplete(_maj, _min, headers, method, url) {
  this.result = { method, url: url || this.url, headers: headers ?? this.collected };
  return 0;
}
const noop = () => 0;
function armParser(p) {
  p[HTTPParser.kOnHeaders] = onHeaders;
  p[HTTPParser.kOnHeadersComplete] = onHeadersComplete;
  p[HTTPParser.kOnBody] = noop;
  p[HTTPParser.kOnMessageComplete] = noop;
  p[HTTPParser.kOnExecute] = noop;
  return p;
}
const resource = {}; // node:http passes an HTTPServerAsyncResource; any object is accepted.
function llhttpParse(p, http) {
  p.collected = [];
  p.url = '';
  p.result = undefined;
  p.initialize(HTTPParser.REQUEST, resource, 0, 0);
  const n = p.execute(http);
  if (n !== http.length || !p.result) throw new Error(`llhttp did not parse the head (${n})`);
  return p.result;
}

/** What a server reads by name before it looks at headers (the view's `get`). */
const EIGHT = [
  'REQUEST_METHOD',
  'REQUEST_URI',
  'SERVER_PROTOCOL',
  'CONTENT_LENGTH',
  'CONTENT_TYPE',
  'REMOTE_ADDR',
  'REMOTE_PORT',
  'HTTP_HOST',
];
function readEight(view) {
  let n = 0;
  for (const name of EIGHT) n += view.get(name)?.length ?? 0;
  return n;
}

function casesFor(name, { packet, http }) {
  const reused = armParser(parsers.alloc());
  const copyTarget = new Uint8Array(packet.length);
  const pkt = new Uint8Array(packet.buffer, packet.byteOffset, packet.length);
  const decoded = decodePacket(pkt);
  const request = requestFromVars(decoded.vars);
  const handler = {
    vars: undefined,
    onVars(vars) {
      this.vars = vars;
      return 0;
    },
  };
  // Sanity: all paths see the same request before anything is timed.
  const viaLl = llhttpParse(reused, http);
  if (viaLl.headers.length / 2 !== decoded.vars.filter(([k]) => k.startsWith('HTTP_')).length) {
    throw new Error(`${name}: llhttp header count differs from the packet's HTTP_* vars`);
  }
  const d = new PacketDecoder(handler);
  d.push(pkt);
  d.end();
  if (handler.vars.length !== decoded.vars.length) throw new Error(`${name}: decoder mismatch`);

  // Two passes (see `passes` below): the goal's cases, then everything else against its own
  // llhttp baseline.
  const reusedLl = () => llhttpParse(reused, http);
  return [
    { pass: 0, group: name, name: 'llhttp, reused parser (node:http)', fn: reusedLl },
    { pass: 0, group: name, name: 'decodePacket', fn: () => decodePacket(pkt) },
    {
      pass: 0,
      group: name,
      name: 'PacketDecoder (new, push, end)',
      fn: () => {
        const dec = new PacketDecoder(handler);
        dec.push(pkt);
        dec.end();
        return handler.vars;
      },
    },
    { pass: 0, group: name, name: 'decodePacketView', fn: () => decodePacketView(pkt) },
    {
      pass: 0,
      group: name,
      name: 'decodePacketView + get() of 8 vars',
      fn: () => readEight(decodePacketView(pkt).vars),
    },
    {
      pass: 0,
      group: name,
      name: 'decodePacket + varsToRequest',
      fn: () => varsToRequest(decodePacket(pkt).vars),
    },
    {
      pass: 0,
      group: name,
      name: 'decodePacketView + viewToRequest',
      fn: () => viewToRequest(decodePacketView(pkt).vars),
    },
    { pass: 1, group: name, name: 'copy: Uint8Array slice', fn: () => pkt.slice() },
    {
      pass: 1,
      group: name,
      name: 'copy: set into a preallocated array',
      fn: () => copyTarget.set(pkt),
    },
    { pass: 1, group: name, name: 'llhttp, reused parser (node:http)', fn: reusedLl },
    {
      pass: 1,
      group: name,
      name: 'llhttp, fresh parser',
      fn: () => llhttpParse(armParser(new HTTPParser()), http),
    },
    { pass: 1, group: name, name: 'encodePacket(vars)', fn: () => encodePacket(decoded.vars) },
    {
      pass: 1,
      group: name,
      name: 'requestToVars + encodePacket',
      fn: () => encodePacket(requestToVars(request)),
    },
  ];
}

const { source, packets } = await inputs();
const all = [];
for (const [name, p] of Object.entries(packets)) all.push(...casesFor(name, p));
consume(all.length);
// The harness interleaves cases in a fixed cyclic order, and process CPU time includes the GC
// threads, so a case pays for garbage its predecessor left behind. JS-heap garbage is collected
// at a steady rate by the case that makes it; but 'llhttp, fresh parser' leaves C++ parser
// objects (freed through weak callbacks) and the copies and encoders leave ArrayBuffer backing
// stores (freed by a sweeper thread), charged to whichever case comes next: in one order
// decodePacket, right after the fresh parser, measured 0.93x and PacketDecoder 1.37x; swapped,
// PacketDecoder (now next) 1.58x and decodePacket 2.04x. So the goal's cases, which all leave
// JS-heap garbage only, run in a pass of their own; the others run in a second pass with the
// llhttp baseline measured again for their ratios.
const order = Object.keys(packets);
const results = [];
for (const pass of [0, 1]) {
  const cases = all.filter((c) => c.pass === pass);
  const log = (m) => process.stderr.write(`\rpass ${pass + 1}/2: ${m}   `);
  results.push(...run(cases, { rounds, batchMs, log }).map((r) => ({ ...r, pass })));
}
results.sort((a, b) => order.indexOf(a.group) - order.indexOf(b.group) || a.pass - b.pass);
process.stderr.write('\n');

const baseline = new Map(
  results
    .filter((r) => r.name.startsWith('llhttp, reused'))
    .map((r) => [`${r.pass} ${r.group}`, r.nsPerOp]),
);
const rate = (r) => baseline.get(`${r.pass} ${r.group}`) / r.nsPerOp;
const rows = results.map((r) => {
  const p = packets[r.group];
  return [
    r.group,
    r.pass + 1,
    r.name,
    fmtNs(r.nsPerOp),
    fmtNs(r.nsWallBest),
    fmtInt(r.opsPerSec),
    `${rate(r).toFixed(2)}x`,
    `${p.packet.length} / ${p.http.length}`,
  ];
});
const table = markdownTable(
  [
    'packet',
    'pass',
    'case',
    'CPU ns/op (median)',
    'wall ns/op (best)',
    'ops/s (CPU)',
    'speed vs llhttp',
    'uwsgi / http bytes',
  ],
  rows,
  ['l', 'r', 'l', 'r', 'r', 'r', 'r', 'r'],
);

const goals = Object.keys(packets).map((g) => {
  const dec = results.find((r) => r.group === g && r.name === 'decodePacket');
  const pd = results.find((r) => r.group === g && r.name.startsWith('PacketDecoder'));
  return { packet: g, decodePacket: rate(dec), PacketDecoder: rate(pd) };
});
const missed = goals.filter((g) => g.decodePacket < 3 || g.PacketDecoder < 3);

console.log(`# codec benchmark\n`);
console.log(
  `${new Date().toISOString()}, node ${process.version}, ${rounds} interleaved rounds x ~${batchMs} ms per case; CPU = ${CPU_CLOCK}; speed = llhttp CPU ns / case CPU ns (medians); inputs: ${source}\n`,
);
console.log(table);
console.log(
  `\nGoal (issue 2): decode >= 3x faster than llhttp on each packet: ${
    missed.length === 0
      ? 'met'
      : `MISSED for ${missed.map((g) => `${g.packet} (decodePacket ${g.decodePacket.toFixed(2)}x, PacketDecoder ${g.PacketDecoder.toFixed(2)}x)`).join(', ')}`
  }`,
);
if (args.json) {
  writeFileSync(
    args.json,
    JSON.stringify(
      { date: new Date().toISOString(), node: process.version, source, results, goals },
      null,
      2,
    ),
  );
}
