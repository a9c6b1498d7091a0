/**
 * Header questions answered from `IncomingMessage.rawHeaders` (name, value, name, value...):
 * `req.headers` is built lazily by Node on first read, and it keeps only the first of some
 * duplicated names (Host), so a check made for every request reads the raw list instead.
 */

/** How many times the header `lowerName` (lower case) occurs in `rawHeaders`. */
export function rawHeaderCount(rawHeaders: readonly string[], lowerName: string): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) n++;
  }
  return n;
}
