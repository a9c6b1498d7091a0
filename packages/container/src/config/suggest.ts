/** Did-you-mean hints for unknown keys and enum values. */

/**
 * uWSGI option names people carry over, at the root of the file, and where the concept lives
 * here; consulted before edit distance because none of them is a near-miss spelling.
 */
export const UWSGI_SPELLINGS: Readonly<Record<string, string>> = {
  socket: 'listeners (protocol: uwsgi)',
  'uwsgi-socket': 'listeners (protocol: uwsgi)',
  'http-socket': 'listeners (protocol: http)',
  http: 'listeners (protocol: http)',
  'chmod-socket': 'listeners[].mode',
  listen: 'listeners[].backlog',
  mount: 'mounts',
  'buffer-size': 'limits.bufferSize',
  'max-vars': 'limits.maxVars',
  'limit-post': 'limits.maxBodySize',
  harakiri: 'limits.requestTimeoutMs',
  'reload-mercy': 'shutdownTimeoutMs',
  'worker-reload-mercy': 'shutdownTimeoutMs',
  'disable-logging': 'log.access',
};

/** `; did you mean "x"?` for the closest allowed word, or '' when none is close. */
export function didYouMean(word: string, allowed: readonly string[]): string {
  const fold = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of allowed) {
    // buffer-size, buffer_size and BufferSize all mean bufferSize.
    if (fold(candidate) === fold(word)) return `; did you mean "${candidate}"?`;
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  // Roughly one typo per three letters: "wrokers" -> "workers", not "log" -> "mounts".
  const limit = Math.max(1, Math.floor(word.length / 3));
  return best !== undefined && bestDistance <= limit ? `; did you mean "${best}"?` : '';
}

/**
 * Edit distance counting an adjacent transposition as one edit (optimal string alignment), so
 * the commonest typo, two swapped letters (`uswgi`, `wrokers`), costs 1 like any other slip.
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(
        (rows[i - 1]?.[j] ?? 0) + 1,
        (row[j - 1] ?? 0) + 1,
        (rows[i - 1]?.[j - 1] ?? 0) + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      }
      row[j] = best;
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? 0;
}
