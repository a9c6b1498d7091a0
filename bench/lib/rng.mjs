// A small seeded PRNG (sfc32: fast, 128-bit state, passes PractRand far beyond what a fuzz run
// draws) so every fuzz run is reproducible from its printed seed.

export function createRng(seed) {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = () => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 16; i++) next();
  const rng = {
    /** uniform u32 */
    u32: next,
    /** integer in [0, n) */
    int: (n) => (n <= 0 ? 0 : Math.floor((next() / 0x100000000) * n)),
    /** integer in [lo, hi] */
    range: (lo, hi) => lo + rng.int(hi - lo + 1),
    /** true with probability p */
    chance: (p) => next() / 0x100000000 < p,
    pick: (arr) => arr[rng.int(arr.length)],
    /** index chosen by weights */
    weighted: (weights) => {
      let total = 0;
      for (const w of weights) total += w;
      let x = rng.int(total);
      for (let i = 0; i < weights.length; i++) {
        x -= weights[i];
        if (x < 0) return i;
      }
      return weights.length - 1;
    },
    bytes: (n) => {
      const out = Buffer.allocUnsafe(n);
      let i = 0;
      for (; i + 4 <= n; i += 4) out.writeUInt32LE(next(), i);
      for (; i < n; i++) out[i] = next() & 0xff;
      return out;
    },
    /** small lengths far more often than large ones */
    length: (max) => {
      const bucket = rng.int(4);
      const cap = bucket === 0 ? 8 : bucket === 1 ? 64 : bucket === 2 ? 1024 : max;
      return rng.int(Math.min(cap, max) + 1);
    },
  };
  return rng;
}
