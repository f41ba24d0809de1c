/**
 * Seeded random numbers: xoshiro128** seeded through splitmix32, so every
 * random init is reproducible with `manualSeed(n)` and its state can be saved
 * and restored exactly (training checkpoints do).
 *
 *   manualSeed(0); const a = randn([2, 3]);
 *   manualSeed(0); const b = randn([2, 3]);  // same values as a
 */

export class Generator {
  #s = new Uint32Array(4);
  #spareNormal: number | null = null;

  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  manualSeed(seed: number): this {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.#s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    this.#spareNormal = null;
    return this;
  }

  nextUint32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }

  /**
   * Fill `mask` with 0 where a draw falls below p (probability p) and `keep` elsewhere: one 32-bit draw per
   * element, compared with p·2³² (a drop probability exact to 2⁻³²). The same draws as nextUint32, in a loop
   * on local state, since a dropout mask per LoRA layer is millions of draws a step.
   */
  fillDropoutMask(mask: Float32Array | Float64Array, p: number, keep: number): void {
    const threshold = Math.floor(p * 2 ** 32);
    let [s0, s1, s2, s3] = this.#s;
    for (let i = 0; i < mask.length; i++) {
      const scrambled = Math.imul(s1, 5);
      const draw = Math.imul((scrambled << 7) | (scrambled >>> 25), 9) >>> 0;
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      mask[i] = draw < threshold ? 0 : keep;
    }
    this.#s.set([s0 >>> 0, s1 >>> 0, s2 >>> 0, s3 >>> 0]);
  }

  /** Standard normal (Box-Muller, both values used). */
  normal(): number {
    if (this.#spareNormal !== null) {
      const spare = this.#spareNormal;
      this.#spareNormal = null;
      return spare;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const radius = Math.sqrt(-2 * Math.log(u));
    const angle = 2 * Math.PI * this.uniform();
    this.#spareNormal = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  getState(): number[] {
    return [...this.#s, this.#spareNormal ?? Number.NaN];
  }

  setState(state: readonly number[]): void {
    if (state.length !== 5) throw new Error(`Generator.setState: expected 5 numbers, got ${state.length}`);
    this.#s.set(state.slice(0, 4));
    this.#spareNormal = Number.isNaN(state[4]) ? null : state[4];
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The generator used when none is passed. */
export const defaultGenerator = new Generator(0);

export function manualSeed(seed: number): Generator {
  return defaultGenerator.manualSeed(seed);
}
