#!/usr/bin/env node
// The only place the CLI touches the process: argv, streams, env, cwd, signals, exit code.
// First SIGTERM/SIGINT = graceful stop (io.signal); a second one = close now (io.forceSignal).
// SIGHUP, SIGQUIT and SIGUSR1 reach `run` through io.onSignal.
import { main } from '../dist/index.js';

const graceful = new AbortController();
const force = new AbortController();
const onSignal = (name) => {
  if (!graceful.signal.aborted) graceful.abort(name);
  else force.abort(name);
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);

process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stdin: process.stdin,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
  signal: graceful.signal,
  forceSignal: force.signal,
  onSignal(name, handler) {
    process.on(name, handler);
    return () => process.off(name, handler);
  },
});

process.off('SIGTERM', onSignal);
process.off('SIGINT', onSignal);
// After a forced stop, connections the container could not close cleanly must not keep the
// process alive.
if (force.signal.aborted) process.exit();
