#!/usr/bin/env node
// The cost of one access record (bench/README.md "Access records"): writes N records through a
// JSON logger of the checkout DIR (its built packages/container/dist) to /dev/null, after 20,000
// to warm up. Run under callgrind with two N; the difference per record is the record path
// alone (accessRecord, AccessLog.write, the batch, its share of GC).
//
//   for n in 20000 120000; do valgrind --tool=callgrind --callgrind-out-file=cg.$n \
//     node bench/tools/access-record.mjs . $n; done
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = path.resolve(process.argv[2] ?? '.');
const n = Number(process.argv[3] ?? 100000);
const { createLogger, accessLog, accessRecord, flushLogger } = await import(
  pathToFileURL(path.join(dir, 'packages/container/dist/shared/log.js')).href
);
const logger = createLogger(
  { access: true, format: 'json', level: 'info', file: '/dev/null' },
  { bindings: { worker: 1 } },
);
const log = accessLog(logger);
const urls = ['/hello', '/api/users/42?x=1', '/hello'];
function one(i) {
  log.write(
    accessRecord(
      'GET',
      urls[i % 3],
      200,
      151 + (i & 7),
      40 + (i % 997),
      '/',
      '127.0.0.1',
      'unix:/tmp/uwsgi-ts-bench/app.sock',
      false,
      null,
    ),
  );
}
// Short calls from an optimised caller, as dispatch makes them (one long loop at the top level
// of a module is run on-stack-replaced and deoptimised).
function batch(from) {
  for (let i = from; i < from + 100; i++) one(i);
}
function run(count) {
  for (let j = 0; j < count; j += 100) batch(j);
}
run(20000);
run(n);
flushLogger(logger);
