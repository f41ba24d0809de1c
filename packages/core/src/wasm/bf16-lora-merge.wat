;; A LoRA delta merged into bf16 weights in one pass (WebAssembly SIMD with a
;; relaxed multiply-add). Source of bf16-lora-merge.wasm: `npm run build:wasm`.
;;
;;   to[i, j] = bf16(f32(from[i, j]) + f32(factor · Σₖ B[i, k]·A[k, j]))
;;
;; The sum runs k = 0 … r-1 as multiply-adds into a zero, each rounded once: the
;; order of onnxruntime's float32 matmul (and PyTorch's), so the product has
;; their bits, yet never leaves the registers. The scaled product is rounded,
;; added, and the sum rounded to bf16 (to nearest even, NaNs kept quiet) as
;; f32ToBf16 in dtype.ts. relaxed_madd is fused only where the hardware has an
;; FMA: the caller checks with fusedMultiplyAdd before it uses mergeRows.
;;
;; The memory is shared, so that threads merge rows of one weight in place.
(module
  (import "kernel" "memory" (memory 1 65536 shared))

  ;; a·b + c, rounded once where relaxed_madd is fused, else twice
  (func (export "fusedMultiplyAdd") (param $a f32) (param $b f32) (param $c f32) (result f32)
    (f32x4.extract_lane 0
      (f32x4.relaxed_madd (f32x4.splat (local.get $a)) (f32x4.splat (local.get $b)) (f32x4.splat (local.get $c)))))

  ;; Byte offsets: from, to: bf16 [rows, stride]; a: f32 [r, stride];
  ;; b: f32 in tiles of four rows [rows/4, r, 4], b[t, k, q] = B[4t + q, k];
  ;; scratch: 128 bytes. rows is a multiple of 4, stride of 8.
  ;; Each step computes a tile of 4 rows × 8 columns in eight registers.
  (func (export "mergeRows")
      (param $from i32) (param $to i32) (param $a i32) (param $b i32) (param $scratch i32)
      (param $rows i32) (param $stride i32) (param $r i32) (param $factor f32)
    (local $row i32) (local $col i32) (local $ak i32) (local $bk i32) (local $aEnd i32) (local $i i32) (local $at i32)
    (local $a0 v128) (local $a1 v128) (local $bq v128) (local $f v128) (local $x v128) (local $top v128)
    (local $d00 v128) (local $d01 v128) (local $d10 v128) (local $d11 v128)
    (local $d20 v128) (local $d21 v128) (local $d30 v128) (local $d31 v128)
    (local.set $f (f32x4.splat (local.get $factor)))
    (local.set $row (i32.const 0))
    (block $rowsDone (loop $nextRows
      (br_if $rowsDone (i32.ge_u (local.get $row) (local.get $rows)))
      (local.set $col (i32.const 0))
      (block $colsDone (loop $nextCols
        (br_if $colsDone (i32.ge_u (local.get $col) (local.get $stride)))
        ;; d[q, 0..7] = Σₖ B[row + q, k] · A[k, col..col+7]
        (local.set $d00 (v128.const i32x4 0 0 0 0)) (local.set $d01 (v128.const i32x4 0 0 0 0))
        (local.set $d10 (v128.const i32x4 0 0 0 0)) (local.set $d11 (v128.const i32x4 0 0 0 0))
        (local.set $d20 (v128.const i32x4 0 0 0 0)) (local.set $d21 (v128.const i32x4 0 0 0 0))
        (local.set $d30 (v128.const i32x4 0 0 0 0)) (local.set $d31 (v128.const i32x4 0 0 0 0))
        (local.set $ak (i32.add (local.get $a) (i32.shl (local.get $col) (i32.const 2))))
        (local.set $aEnd (i32.add (local.get $ak) (i32.shl (i32.mul (local.get $r) (local.get $stride)) (i32.const 2))))
        (local.set $bk (i32.add (local.get $b) (i32.shl (i32.mul (local.get $row) (local.get $r)) (i32.const 2))))
        (block $kDone (loop $nextK
          (br_if $kDone (i32.ge_u (local.get $ak) (local.get $aEnd)))
          (local.set $a0 (v128.load (local.get $ak)))
          (local.set $a1 (v128.load offset=16 (local.get $ak)))
          (local.set $bq (v128.load32_splat (local.get $bk)))
          (local.set $d00 (f32x4.relaxed_madd (local.get $a0) (local.get $bq) (local.get $d00)))
          (local.set $d01 (f32x4.relaxed_madd (local.get $a1) (local.get $bq) (local.get $d01)))
          (local.set $bq (v128.load32_splat offset=4 (local.get $bk)))
          (local.set $d10 (f32x4.relaxed_madd (local.get $a0) (local.get $bq) (local.get $d10)))
          (local.set $d11 (f32x4.relaxed_madd (local.get $a1) (local.get $bq) (local.get $d11)))
          (local.set $bq (v128.load32_splat offset=8 (local.get $bk)))
          (local.set $d20 (f32x4.relaxed_madd (local.get $a0) (local.get $bq) (local.get $d20)))
          (local.set $d21 (f32x4.relaxed_madd (local.get $a1) (local.get $bq) (local.get $d21)))
          (local.set $bq (v128.load32_splat offset=12 (local.get $bk)))
          (local.set $d30 (f32x4.relaxed_madd (local.get $a0) (local.get $bq) (local.get $d30)))
          (local.set $d31 (f32x4.relaxed_madd (local.get $a1) (local.get $bq) (local.get $d31)))
          (local.set $ak (i32.add (local.get $ak) (i32.shl (local.get $stride) (i32.const 2))))
          (local.set $bk (i32.add (local.get $bk) (i32.const 16)))
          (br $nextK)))
        (v128.store offset=0 (local.get $scratch) (local.get $d00))
        (v128.store offset=16 (local.get $scratch) (local.get $d01))
        (v128.store offset=32 (local.get $scratch) (local.get $d10))
        (v128.store offset=48 (local.get $scratch) (local.get $d11))
        (v128.store offset=64 (local.get $scratch) (local.get $d20))
        (v128.store offset=80 (local.get $scratch) (local.get $d21))
        (v128.store offset=96 (local.get $scratch) (local.get $d30))
        (v128.store offset=112 (local.get $scratch) (local.get $d31))
        ;; the tile's eight runs of four weights: row + i/2, columns col + 4(i%2) ..
        (local.set $i (i32.const 0))
        (block $tileDone (loop $nextRun
          (br_if $tileDone (i32.ge_u (local.get $i) (i32.const 8)))
          (local.set $at (i32.shl
            (i32.add
              (i32.mul (i32.add (local.get $row) (i32.shr_u (local.get $i) (i32.const 1))) (local.get $stride))
              (i32.add (local.get $col) (i32.shl (i32.and (local.get $i) (i32.const 1)) (i32.const 2))))
            (i32.const 1)))
          ;; a bf16 is the top half of an f32
          (local.set $x (i32x4.shl (v128.load16x4_u (i32.add (local.get $from) (local.get $at))) (i32.const 16)))
          (local.set $x (f32x4.add (local.get $x)
            (f32x4.mul (local.get $f) (v128.load (i32.add (local.get $scratch) (i32.shl (local.get $i) (i32.const 4)))))))
          (local.set $top (i32x4.shr_u (local.get $x) (i32.const 16)))
          (local.set $x (v128.bitselect
            ;; NaN: keep the sign and payload's top, set the quiet bit
            (v128.or (local.get $top) (i32x4.splat (i32.const 0x40)))
            ;; else: add 0x7fff plus the lowest kept bit, so ties go to even
            (i32x4.shr_u
              (i32x4.add (i32x4.add (local.get $x) (i32x4.splat (i32.const 0x7fff))) (v128.and (local.get $top) (i32x4.splat (i32.const 1))))
              (i32.const 16))
            (i32x4.gt_u (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000)))))
          (v128.store64_lane 0 (i32.add (local.get $to) (local.get $at)) (i16x8.narrow_i32x4_u (local.get $x) (local.get $x)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $nextRun)))
        (local.set $col (i32.add (local.get $col) (i32.const 8)))
        (br $nextCols)))
      (local.set $row (i32.add (local.get $row) (i32.const 4)))
      (br $nextRows)))))
