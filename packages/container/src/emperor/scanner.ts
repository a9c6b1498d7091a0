/**
 * Finds the vassal files of the watched directories: file-system events (chokidar) trigger a
 * debounced scan, and a periodic rescan is the safety net (a symlink's target edited elsewhere,
 * an event lost). A scan reads every candidate file and hashes its content, so a change is a
 * different text, never an mtime (`touch` is not a change; two edits in one second are two).
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import picomatch from 'picomatch';
import { ContainerError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';

export interface VassalFile {
  /** The file name (uWSGI's vassal name, extension included). */
  readonly name: string;
  /** Absolute path as found in the watched directory (a symlink stays a symlink). */
  readonly file: string;
  readonly text: string;
  readonly hash: string;
  /** Not a change by itself (`touch`); it only retries a vassal that is backing off. */
  readonly mtimeMs: number;
  /** Set when the file could not be taken as a config (over `maxFileBytes`); `text` is empty. */
  readonly error?: string;
}

export interface ScanResult {
  readonly files: ReadonlyMap<string, VassalFile>;
  /** The vassal defaults file's text and hash, when one is configured. */
  readonly defaults:
    | { readonly file: string; readonly text: string; readonly hash: string }
    | undefined;
}

export interface ScannerOptions {
  readonly watch: readonly string[];
  readonly vassalDefaults?: string;
  readonly debounceMs: number;
  readonly rescanMs: number;
  /** Largest vassal (or defaults) file read; a larger one is reported, never read whole. */
  readonly maxFileBytes: number;
  readonly log: Logger;
  readonly onScan: (result: ScanResult) => void;
}

interface Target {
  readonly dir: string;
  readonly match: ((name: string) => boolean) | undefined;
  readonly spec: string;
}

const VASSAL_EXTENSIONS = /\.ya?ml$/;
/** A burst of events never delays a scan by more than this. */
const MAX_WAIT_MS = 250;

/** Whether a directory entry name is a vassal file (not hidden, `.yaml`/`.yml`). */
export function isVassalName(name: string): boolean {
  return !name.startsWith('.') && VASSAL_EXTENSIONS.test(name) && name.length < 255;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * `dir` or `dir/pattern` (wildcards in the last segment only).
 * @throws ContainerError `UWSGI_ERR_EMPEROR_WATCH` for wildcards in a directory segment.
 */
export function parseTarget(spec: string): Target {
  const scan = picomatch.scan(spec);
  if (!scan.isGlob) return { dir: spec, match: undefined, spec };
  const dir = dirname(spec);
  if (picomatch.scan(dir).isGlob) {
    throw new ContainerError(
      'UWSGI_ERR_EMPEROR_WATCH',
      `cannot watch ${spec}: wildcards are allowed in the file name only (vassals/*.yaml)`,
    );
  }
  const isMatch = picomatch(basename(spec), { dot: false });
  return { dir, match: (name) => isMatch(name), spec };
}

export class Scanner {
  readonly #options: ScannerOptions;
  readonly #targets: Target[];
  #watcher: FSWatcher | undefined;
  #rescan: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #firstEventAt = 0;
  #scanning: Promise<void> | undefined;
  #again = false;
  #closed = false;
  /** Directories that could not be read last time, and the duplicate names reported. */
  readonly #reported = new Set<string>();
  #lastDefaults: ScanResult['defaults'];
  #lastFiles = new Map<string, VassalFile>();

  constructor(options: ScannerOptions) {
    this.#options = options;
    this.#targets = options.watch.map(parseTarget);
  }

  /**
   * Checks every directory, scans once (the result goes to `onScan` before this resolves),
   * then watches.
   * @throws ContainerError `UWSGI_ERR_EMPEROR_WATCH` when a directory cannot be read, or
   *   `UWSGI_ERR_CONFIG_INVALID` when the vassal defaults file cannot be read.
   */
  async start(): Promise<void> {
    for (const target of this.#targets) {
      try {
        await readdir(target.dir);
      } catch (cause) {
        throw new ContainerError(
          'UWSGI_ERR_EMPEROR_WATCH',
          `cannot read the watched directory ${target.dir} (${(cause as NodeJS.ErrnoException).code ?? cause})`,
          { cause },
        );
      }
    }
    if (this.#options.vassalDefaults !== undefined) {
      try {
        const { text } = await readBounded(
          this.#options.vassalDefaults,
          this.#options.maxFileBytes,
        );
        if (text === undefined) {
          throw new Error(`larger than emperor.maxFileBytes (${this.#options.maxFileBytes} bytes)`);
        }
      } catch (cause) {
        throw new ContainerError(
          'UWSGI_ERR_EMPEROR_WATCH',
          `cannot read the vassal defaults ${this.#options.vassalDefaults} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`,
          { cause },
        );
      }
    }
    await this.#scanOnce();
    const paths = this.#targets.map((t) => t.dir);
    if (this.#options.vassalDefaults !== undefined) paths.push(this.#options.vassalDefaults);
    this.#watcher = watch(paths, {
      depth: 0,
      ignoreInitial: true,
      followSymlinks: true,
      // Every event only schedules a scan: chokidar's own delays would only add latency.
      atomic: false,
      awaitWriteFinish: false,
    });
    this.#watcher.on('all', () => this.#schedule());
    this.#watcher.on('error', (err) => this.#options.log.warn({ err }, 'emperor watcher error'));
    await new Promise<void>((resolve) => this.#watcher?.once('ready', resolve));
    this.#rescan = setInterval(() => this.scan(), this.#options.rescanMs);
  }

  /** Scans now (or right after the running scan). */
  scan(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#scanning !== undefined) {
      this.#again = true;
      return this.#scanning;
    }
    this.#scanning = this.#scanOnce().finally(() => {
      this.#scanning = undefined;
      if (this.#again) {
        this.#again = false;
        void this.scan();
      }
    });
    return this.#scanning;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#rescan);
    clearTimeout(this.#debounce);
    await this.#watcher?.close();
    await this.#scanning;
  }

  #schedule(): void {
    const now = Date.now();
    if (this.#debounce === undefined) this.#firstEventAt = now;
    clearTimeout(this.#debounce);
    const wait = Math.max(
      0,
      Math.min(this.#options.debounceMs, this.#firstEventAt + MAX_WAIT_MS - now),
    );
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      void this.scan();
    }, wait);
  }

  async #scanOnce(): Promise<void> {
    const files = new Map<string, VassalFile>();
    for (const target of this.#targets) {
      const found = await this.#scanTarget(target);
      if (found === undefined) {
        // Unreadable for now (not gone): keep what it held, so its vassals keep serving.
        for (const [name, file] of this.#lastFiles) {
          if (dirname(file.file) === target.dir && !files.has(name)) files.set(name, file);
        }
        continue;
      }
      for (const file of found) {
        const other = files.get(file.name);
        if (other !== undefined) {
          const key = `duplicate:${file.file}`;
          if (!this.#reported.has(key)) {
            this.#reported.add(key);
            this.#options.log.warn(
              { vassal: file.name, file: file.file, serving: other.file },
              'vassal name taken by an earlier watched directory: file ignored',
            );
          }
          continue;
        }
        files.set(file.name, file);
      }
    }
    const defaults = await this.#readDefaults();
    if (this.#closed) return;
    this.#lastFiles = files;
    this.#options.onScan({ files, defaults });
  }

  async #scanTarget(target: Target): Promise<VassalFile[] | undefined> {
    let names: string[];
    try {
      names = await readdir(target.dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return [];
      const key = `dir:${target.dir}`;
      if (!this.#reported.has(key)) {
        this.#reported.add(key);
        this.#options.log.error({ dir: target.dir, code }, 'cannot read a watched directory');
      }
      return undefined;
    }
    this.#reported.delete(`dir:${target.dir}`);
    const out: VassalFile[] = [];
    for (const name of names.sort()) {
      if (!isVassalName(name)) continue;
      if (target.match !== undefined && !target.match(name)) continue;
      const file = join(target.dir, name);
      try {
        // stat, not lstat: a symlink is followed (a dangling one is no file).
        const info = await stat(file);
        if (!info.isFile()) continue;
        const read = await readBounded(file, this.#options.maxFileBytes);
        if (read.text === undefined) {
          const error = `the file is larger than emperor.maxFileBytes (${this.#options.maxFileBytes} bytes): not read`;
          const hash = `too-large:${info.size}:${info.mtimeMs}:${info.ino}`;
          out.push({ name, file, text: '', hash, mtimeMs: info.mtimeMs, error });
          continue;
        }
        const text = read.text;
        if (text.trim() === '') {
          // Truncated by a writer that has not written yet (an in-place rewrite): no config can
          // be empty, so keep what was read before (or nothing) and let the write's event rescan.
          const last = this.#lastFiles.get(name);
          if (last !== undefined && last.file === file) out.push(last);
          continue;
        }
        out.push({ name, file, text, hash: sha256(text), mtimeMs: info.mtimeMs });
      } catch {
        // Removed or renamed between readdir and read: the next event rescans.
      }
    }
    return out;
  }

  async #readDefaults(): Promise<ScanResult['defaults']> {
    const file = this.#options.vassalDefaults;
    if (file === undefined) return undefined;
    try {
      const { text } = await readBounded(file, this.#options.maxFileBytes);
      if (text === undefined) {
        throw Object.assign(new Error('too large'), {
          code: `larger than emperor.maxFileBytes (${this.#options.maxFileBytes} bytes)`,
        });
      }
      this.#reported.delete('defaults');
      this.#lastDefaults = { file, text, hash: sha256(text) };
    } catch (err) {
      if (!this.#reported.has('defaults')) {
        this.#reported.add('defaults');
        this.#options.log.error(
          { file, code: (err as NodeJS.ErrnoException).code },
          'cannot read the vassal defaults: the last ones read stay in use',
        );
      }
    }
    return this.#lastDefaults;
  }
}

/**
 * Reads at most `max` bytes of `file` as UTF-8: `{ text }`, or `{ text: undefined }` when the
 * file holds more (a hostile or mistaken file never lands in memory whole). One open, so a file
 * growing between a stat and the read cannot slip past the limit.
 */
export async function readBounded(
  file: string,
  max: number,
): Promise<{ text: string | undefined }> {
  // Non-blocking, so a FIFO does not wait for a writer; regular files only, checked on the
  // opened file itself (nothing can swap it between the check and the read).
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (!info.isFile()) {
      throw Object.assign(new Error(`${file} is not a regular file`), { code: 'ENOTREG' });
    }
    // Sized by the file (plus one byte, to see it grew), so a rescan allocates what it reads.
    let buffer = Buffer.allocUnsafe(Math.min(info.size, max) + 1);
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        if (length > max) break;
        const bigger = Buffer.allocUnsafe(Math.min(length * 2, max + 1));
        buffer.copy(bigger, 0, 0, length);
        buffer = bigger;
      }
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return { text: length > max ? undefined : buffer.toString('utf8', 0, length) };
  } finally {
    await handle.close();
  }
}
