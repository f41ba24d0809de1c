/**
 * Exact SVD of a low-rank product ΔW = B·A (B [m, R], A [R, n], R small)
 * without forming the [m, n] matrix:
 *
 *   B = Q_b·R_b,  Aᵀ = Q_a·R_a   (thin QR, Householder-free modified Gram-Schmidt, twice)
 *   R_b·R_aᵀ = U·S·Vᵀ            (one-sided Jacobi on an R×R matrix)
 *   ΔW = (Q_b·U)·S·(Q_a·V)ᵀ
 *
 * Everything is float64; the result is exact up to rounding for any rank k ≤ R.
 */

type Matrix = { rows: number; cols: number; data: Float64Array }; // row-major

const matrix = (rows: number, cols: number): Matrix => ({ rows, cols, data: new Float64Array(rows * cols) });

/** Columns of `m` orthonormalised: m = Q·R, Q [rows, cols], R [cols, cols] upper triangular. */
function thinQR(m: Matrix): { q: Matrix; r: Matrix } {
  const { rows, cols } = m;
  const q = { rows, cols, data: m.data.slice() };
  const r = matrix(cols, cols);
  for (let j = 0; j < cols; j++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < j; i++) {
        let dot = 0;
        for (let k = 0; k < rows; k++) dot += q.data[k * cols + i] * q.data[k * cols + j];
        r.data[i * cols + j] += dot;
        for (let k = 0; k < rows; k++) q.data[k * cols + j] -= dot * q.data[k * cols + i];
      }
    }
    let norm = 0;
    for (let k = 0; k < rows; k++) norm += q.data[k * cols + j] ** 2;
    norm = Math.sqrt(norm);
    r.data[j * cols + j] = norm;
    for (let k = 0; k < rows; k++) q.data[k * cols + j] = norm > 1e-300 ? q.data[k * cols + j] / norm : 0;
  }
  return { q, r };
}

function multiply(a: Matrix, b: Matrix, transposeB = false): Matrix {
  const cols = transposeB ? b.rows : b.cols;
  const out = matrix(a.rows, cols);
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < a.cols; k++) s += a.data[i * a.cols + k] * (transposeB ? b.data[j * b.cols + k] : b.data[k * b.cols + j]);
      out.data[i * cols + j] = s;
    }
  }
  return out;
}

function transpose(a: Matrix): Matrix {
  const out = matrix(a.cols, a.rows);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) out.data[j * a.rows + i] = a.data[i * a.cols + j];
  return out;
}

/** SVD of a small square matrix by one-sided Jacobi: m = U·diag(s)·Vᵀ, s descending. */
function jacobiSvd(m: Matrix): { u: Matrix; s: Float64Array; v: Matrix } {
  const n = m.rows;
  const w = { rows: n, cols: n, data: m.data.slice() };
  const v = matrix(n, n);
  for (let i = 0; i < n; i++) v.data[i * n + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        let alpha = 0, beta = 0, gamma = 0;
        for (let k = 0; k < n; k++) {
          const wp = w.data[k * n + p], wq = w.data[k * n + q];
          alpha += wp * wp;
          beta += wq * wq;
          gamma += wp * wq;
        }
        if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (const x of [w, v]) {
          for (let k = 0; k < n; k++) {
            const xp = x.data[k * n + p], xq = x.data[k * n + q];
            x.data[k * n + p] = c * xp - s * xq;
            x.data[k * n + q] = s * xp + c * xq;
          }
        }
      }
    }
    if (!rotated) break;
  }
  const norms = Array.from({ length: n }, (_, j) => Math.sqrt(Array.from({ length: n }, (_, k) => w.data[k * n + j] ** 2).reduce((a, b) => a + b, 0)));
  const order = norms.map((_, j) => j).sort((a, b) => norms[b] - norms[a]);
  const u = matrix(n, n);
  const vSorted = matrix(n, n);
  const s = new Float64Array(n);
  order.forEach((j, rank) => {
    s[rank] = norms[j];
    for (let k = 0; k < n; k++) {
      u.data[k * n + rank] = norms[j] > 1e-300 ? w.data[k * n + j] / norms[j] : 0;
      vSorted.data[k * n + rank] = v.data[k * n + j];
    }
  });
  return { u, s, v: vSorted };
}

/**
 * The best rank-k factorisation of B·A, split as PEFT's svd combination does:
 * newB = U_k·S_k [m, k], newA = V_kᵀ [k, n].
 */
export function truncatedProduct(b: Float64Array, a: Float64Array, m: number, rank: number, n: number, k: number): { newB: Float64Array; newA: Float64Array; singularValues: Float64Array } {
  const qb = thinQR({ rows: m, cols: rank, data: b });
  const qa = thinQR(transpose({ rows: rank, cols: n, data: a }));
  const { u, s, v } = jacobiSvd(multiply(qb.r, qa.r, true)); // R_b · R_aᵀ
  const left = multiply(qb.q, u); // [m, R]
  const right = multiply(qa.q, v); // [n, R]
  const kept = Math.min(k, rank);
  const newB = new Float64Array(m * k);
  const newA = new Float64Array(k * n);
  for (let j = 0; j < kept; j++) {
    for (let i = 0; i < m; i++) newB[i * k + j] = left.data[i * rank + j] * s[j];
    for (let i = 0; i < n; i++) newA[j * n + i] = right.data[i * rank + j];
  }
  return { newB, newA, singularValues: s };
}
