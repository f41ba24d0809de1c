;; bf16 weights plus a float32 delta, rounded back to bf16, eight lanes at a
;; time (WebAssembly SIMD). Source of bf16-add.wasm: `npm run build:wasm`.
;;
;;   to[i] = bf16(f32(from[i]) + f32(factor · d[i]))     i < n
;;
;; f32 arithmetic as PyTorch does it (the product rounded, then the sum), and
;; bf16 rounding to nearest even with NaNs kept quiet, as f32ToBf16 in dtype.ts.
(module
  (memory (export "memory") 1)

  ;; from: n bf16 (u16), d: n f32, to: n bf16; byte offsets; n a multiple of 8
  (func (export "addScaledBf16") (param $from i32) (param $d i32) (param $to i32) (param $n i32) (param $factor f32)
    (local $end i32) (local $f v128) (local $bf16 v128) (local $low v128) (local $high v128)
    (local.set $f (f32x4.splat (local.get $factor)))
    (local.set $end (i32.add (local.get $from) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $from) (local.get $end)))
        (local.set $bf16 (v128.load (local.get $from)))
        ;; widen: a bf16 is the top half of an f32
        (local.set $low (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $bf16)) (i32.const 16)))
        (local.set $high (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $bf16)) (i32.const 16)))
        (local.set $low (f32x4.add (local.get $low) (f32x4.mul (local.get $f) (v128.load (local.get $d)))))
        (local.set $high (f32x4.add (local.get $high) (f32x4.mul (local.get $f) (v128.load offset=16 (local.get $d)))))
        (v128.store (local.get $to) (i16x8.narrow_i32x4_u (call $roundToBf16 (local.get $low)) (call $roundToBf16 (local.get $high))))
        (local.set $from (i32.add (local.get $from) (i32.const 16)))
        (local.set $d (i32.add (local.get $d) (i32.const 32)))
        (local.set $to (i32.add (local.get $to) (i32.const 16)))
        (br $next))))

  ;; four f32 (as bits) -> their bf16 bits in the low half of each lane
  (func $roundToBf16 (param $bits v128) (result v128)
    (local $top v128)
    (local.set $top (i32x4.shr_u (local.get $bits) (i32.const 16)))
    (v128.bitselect
      ;; NaN: keep the sign and payload's top, set the quiet bit
      (v128.or (local.get $top) (i32x4.splat (i32.const 0x40)))
      ;; else: add 0x7fff plus the lowest kept bit, so ties go to even
      (i32x4.shr_u
        (i32x4.add (i32x4.add (local.get $bits) (i32x4.splat (i32.const 0x7fff))) (v128.and (local.get $top) (i32x4.splat (i32.const 1))))
        (i32.const 16))
      (i32x4.gt_u (v128.and (local.get $bits) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000))))))
