/**
 * Reads an npm tarball (gzipped ustar, as `pnpm pack` writes it) into memory: every regular
 * file's path (the `package/` prefix kept off) and bytes. No `tar` binary and no dependency; the
 * packages are small.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';

const BLOCK = 512;

function field(header: Buffer, offset: number, length: number): string {
  const raw = header.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end < 0 ? length : end).toString('utf8');
}

/** Path (relative to the package root, `/`-separated) -> contents, for every regular file. */
export async function readTarball(file: string): Promise<Map<string, Buffer>> {
  const tar = gunzipSync(await readFile(file));
  const files = new Map<string, Buffer>();
  let longName: string | undefined;
  for (let at = 0; at + BLOCK <= tar.length; ) {
    const header = tar.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) break; // end of archive
    const size = Number.parseInt(field(header, 124, 12).trim() || '0', 8);
    const type = field(header, 156, 1);
    const body = tar.subarray(at + BLOCK, at + BLOCK + size);
    at += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    // pax extended header: only `path` matters here (long names).
    if (type === 'x') {
      const path = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
      longName = path?.[1];
      continue;
    }
    if (type !== '0' && type !== '') {
      longName = undefined;
      continue;
    }
    const prefix = field(header, 345, 155);
    const name =
      longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
    longName = undefined;
    files.set(name.replace(/^package\//, ''), Buffer.from(body));
  }
  return files;
}
