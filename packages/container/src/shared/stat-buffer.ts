/**
 * Node keeps the result of the last stat (sync or async) in one shared buffer, and
 * fs.realpathSync, which module resolution uses, reads that buffer for the path prefixes it has
 * cached: when it says "pipe or socket", resolution stops there and returns the path with its
 * symlinks. A package reached through a symlink (pnpm's node_modules) then keeps its symlinked
 * path, and its own dependencies are not found (`Cannot find module 'body-parser'` from Express).
 * So after a stat of a pipe or a socket, stat a regular file.
 */
import { statSync } from 'node:fs';

export function forgetSocketStat(): void {
  try {
    statSync(process.execPath);
  } catch {
    // Nothing to stat: nothing better to do.
  }
}
