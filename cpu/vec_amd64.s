//go:build amd64

#include "textflag.h"

// Vector kernels for the non-matmul parts of the forward pass: e^x (softmax, GELU, NLL),
// max / absmax, per-token int8 activation quantization and element-wise add.
//
// e^x, both ISAs: x is clamped to [-88, 88.8] (NaN passes through), k = round(x·log2e),
// r = x − k·ln2 with ln2 split in a 9-bit high part (k·hi exact) and a low part, both by FMA;
// e^r = 1 + r + r²·P(r) with Cephes' degree-5 P (a degree-7 polynomial, ≤ 1 ulp on |r| ≤ ln2/2);
// then ·2^k: VSCALEFPS (AVX-512, exact, overflows to +Inf) or two exponent-bit factors 2^(k>>1),
// 2^(k−k>>1) (AVX2; each within the normal range). Inputs below −87.33654 (where the result
// would be subnormal) give exactly 0, as the scalar expf does.

#define C_LOG2E  $0x3fb8aa3b
#define C_NLN2HI $0xbf318000
#define C_NLN2LO $0x395e8083
#define C_P0     $0x39506967
#define C_P1     $0x3ab743ce
#define C_P2     $0x3c088908
#define C_P3     $0x3d2aa9c1
#define C_P4     $0x3e2aaaaa
#define C_P5     $0x3f000000
#define C_ONE    $0x3f800000
#define C_HI     $0x42b1999a
#define C_LO     $0xc2b00000
#define C_LOTHR  $0xc2aeac4f
#define C_GELU1  $0x3d372713
#define C_GELUM2 $0xbfcc422a

#define BCAST(c, z) \
	MOVL         c, AX; \
	VPBROADCASTD AX, z

// EXPCONST512 loads the e^x constants into Z18..Z30.
#define EXPCONST512 \
	BCAST(C_LOG2E, Z18); \
	BCAST(C_NLN2HI, Z19); \
	BCAST(C_NLN2LO, Z20); \
	BCAST(C_P0, Z21); \
	BCAST(C_P1, Z22); \
	BCAST(C_P2, Z23); \
	BCAST(C_P3, Z24); \
	BCAST(C_P4, Z25); \
	BCAST(C_P5, Z26); \
	BCAST(C_ONE, Z27); \
	BCAST(C_HI, Z28); \
	BCAST(C_LO, Z29); \
	BCAST(C_LOTHR, Z30)

// EXP512(x, k, p, t, m): x = e^x (16 lanes); k, p, t are scratch, m a scratch mask register.
#define EXP512(x, k, p, t, m) \
	VCMPPS      $5, Z30, x, m; \
	VMINPS      x, Z28, x; \
	VMAXPS      x, Z29, x; \
	VMULPS      Z18, x, k; \
	VRNDSCALEPS $0, k, k; \
	VFMADD231PS Z19, k, x; \
	VFMADD231PS Z20, k, x; \
	VMOVAPS     Z21, p; \
	VFMADD213PS Z22, x, p; \
	VFMADD213PS Z23, x, p; \
	VFMADD213PS Z24, x, p; \
	VFMADD213PS Z25, x, p; \
	VFMADD213PS Z26, x, p; \
	VMULPS      x, x, t; \
	VADDPS      Z27, x, x; \
	VFMADD213PS x, t, p; \
	VSCALEFPS.Z k, p, m, x

// HSUM512(z, y): X(z) lane 0 = Σ lanes of z; y is scratch (Z/Y/X views given separately).
#define HSUM512(z, yz, xz, ty, tx) \
	VEXTRACTF64X4 $1, z, ty; \
	VADDPS        ty, yz, yz; \
	VEXTRACTF128  $1, yz, tx; \
	VADDPS        tx, xz, xz; \
	VPERMILPS     $0x4e, xz, tx; \
	VADDPS        tx, xz, xz; \
	VPERMILPS     $0xb1, xz, tx; \
	VADDPS        tx, xz, xz

#define HMAX512(z, yz, xz, ty, tx) \
	VEXTRACTF64X4 $1, z, ty; \
	VMAXPS        ty, yz, yz; \
	VEXTRACTF128  $1, yz, tx; \
	VMAXPS        tx, xz, xz; \
	VPERMILPS     $0x4e, xz, tx; \
	VMAXPS        tx, xz, xz; \
	VPERMILPS     $0xb1, xz, tx; \
	VMAXPS        tx, xz, xz

// TAILMASK sets K1 to the low CX bits (CX < 16).
#define TAILMASK \
	MOVL  $1, AX; \
	SHLL  CX, AX; \
	DECL  AX; \
	KMOVW AX, K1

// func expScaleSumAVX512(dst, src *float32, n int, sub, scale float32) float32
// dst[i] = e^((src[i]−sub)·scale); returns Σ dst[i] (float32 lanes).
TEXT ·expScaleSumAVX512(SB), NOSPLIT, $0-36
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS sub+24(FP), Z16
	VBROADCASTSS scale+28(FP), Z17
	EXPCONST512
	VXORPS       Z8, Z8, Z8
	VXORPS       Z9, Z9, Z9

es_loop32:
	CMPQ    CX, $32
	JB      es_loop16
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z4
	VSUBPS  Z16, Z0, Z0
	VSUBPS  Z16, Z4, Z4
	VMULPS  Z17, Z0, Z0
	VMULPS  Z17, Z4, Z4
	EXP512(Z0, Z1, Z2, Z3, K2)
	EXP512(Z4, Z5, Z6, Z7, K3)
	VMOVUPS Z0, (DI)
	VMOVUPS Z4, 64(DI)
	VADDPS  Z0, Z8, Z8
	VADDPS  Z4, Z9, Z9
	ADDQ    $128, SI
	ADDQ    $128, DI
	SUBQ    $32, CX
	JMP     es_loop32

es_loop16:
	CMPQ    CX, $16
	JB      es_tail
	VMOVUPS (SI), Z0
	VSUBPS  Z16, Z0, Z0
	VMULPS  Z17, Z0, Z0
	EXP512(Z0, Z1, Z2, Z3, K2)
	VMOVUPS Z0, (DI)
	VADDPS  Z0, Z8, Z8
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX

es_tail:
	TESTQ     CX, CX
	JZ        es_done
	TAILMASK
	VMOVUPS.Z (SI), K1, Z0
	VSUBPS    Z16, Z0, Z0
	VMULPS    Z17, Z0, Z0
	EXP512(Z0, Z1, Z2, Z3, K2)
	VMOVUPS   Z0, K1, (DI)
	VADDPS    Z0, Z8, K1, Z8

es_done:
	VADDPS Z9, Z8, Z8
	HSUM512(Z8, Y8, X8, Y1, X1)
	MOVSS  X8, ret+32(FP)
	VZEROUPPER
	RET

// GELU512(x, ...): x = x / (1 + e^(−2·√(2/π)·x·(1 + 0.044715·x²))), which is GPT-2's
// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). Z16 = 0.044715, Z17 = −2·√(2/π).
#define GELU512(x, a, k, p, t, m) \
	VMULPS      x, x, a; \
	VFMADD213PS Z27, Z16, a; \
	VMULPS      x, a, a; \
	VMULPS      Z17, a, a; \
	EXP512(a, k, p, t, m); \
	VADDPS      Z27, a, a; \
	VDIVPS      a, x, x

// func geluAVX512(x *float32, n int)
TEXT ·geluAVX512(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	EXPCONST512
	BCAST(C_GELU1, Z16)
	BCAST(C_GELUM2, Z17)

ge_loop32:
	CMPQ    CX, $32
	JB      ge_loop16
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z5
	GELU512(Z0, Z1, Z2, Z3, Z4, K2)
	GELU512(Z5, Z6, Z7, Z8, Z9, K3)
	VMOVUPS Z0, (DI)
	VMOVUPS Z5, 64(DI)
	ADDQ    $128, DI
	SUBQ    $32, CX
	JMP     ge_loop32

ge_loop16:
	CMPQ    CX, $16
	JB      ge_tail
	VMOVUPS (DI), Z0
	GELU512(Z0, Z1, Z2, Z3, Z4, K2)
	VMOVUPS Z0, (DI)
	ADDQ    $64, DI
	SUBQ    $16, CX

ge_tail:
	TESTQ     CX, CX
	JZ        ge_done
	TAILMASK
	VMOVUPS.Z (DI), K1, Z0
	GELU512(Z0, Z1, Z2, Z3, Z4, K2)
	VMOVUPS   Z0, K1, (DI)

ge_done:
	VZEROUPPER
	RET

// func maxAVX512(x *float32, n int) float32   (n ≥ 1)
TEXT ·maxAVX512(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS (SI), Z0
	VMOVAPS      Z0, Z1

mx_loop32:
	CMPQ    CX, $32
	JB      mx_loop16
	VMAXPS  (SI), Z0, Z0
	VMAXPS  64(SI), Z1, Z1
	ADDQ    $128, SI
	SUBQ    $32, CX
	JMP     mx_loop32

mx_loop16:
	CMPQ   CX, $16
	JB     mx_tail
	VMAXPS (SI), Z0, Z0
	ADDQ   $64, SI
	SUBQ   $16, CX

mx_tail:
	TESTQ  CX, CX
	JZ     mx_done
	TAILMASK
	VMAXPS (SI), Z1, K1, Z1

mx_done:
	VMAXPS Z1, Z0, Z0
	HMAX512(Z0, Y0, X0, Y1, X1)
	MOVSS  X0, ret+16(FP)
	VZEROUPPER
	RET

// func absmaxAVX512(x *float32, n int) float32   (max |x[i]|, 0 for n = 0)
TEXT ·absmaxAVX512(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	MOVL         $0x7fffffff, AX
	VPBROADCASTD AX, Z16
	VXORPS       Z0, Z0, Z0
	VXORPS       Z1, Z1, Z1

am_loop32:
	CMPQ   CX, $32
	JB     am_loop16
	VPANDD (SI), Z16, Z2
	VPANDD 64(SI), Z16, Z3
	VMAXPS Z2, Z0, Z0
	VMAXPS Z3, Z1, Z1
	ADDQ   $128, SI
	SUBQ   $32, CX
	JMP    am_loop32

am_loop16:
	CMPQ   CX, $16
	JB     am_tail
	VPANDD (SI), Z16, Z2
	VMAXPS Z2, Z0, Z0
	ADDQ   $64, SI
	SUBQ   $16, CX

am_tail:
	TESTQ     CX, CX
	JZ        am_done
	TAILMASK
	VMOVUPS.Z (SI), K1, Z2
	VPANDD    Z2, Z16, Z2
	VMAXPS    Z2, Z1, Z1

am_done:
	VMAXPS Z1, Z0, Z0
	HMAX512(Z0, Y0, X0, Y1, X1)
	MOVSS  X0, ret+16(FP)
	VZEROUPPER
	RET

// func quantRowAVX512(qa *int8, u8 *byte, x *float32, n int, scale float32)
// qa[i] = clamp(roundHalfEven(x[i]·scale), ±127) (VCVTPS2DQ under the default MXCSR rounding);
// u8[i] = qa[i] + 128 unless u8 is nil.
TEXT ·quantRowAVX512(SB), NOSPLIT, $0-36
	MOVQ         qa+0(FP), DI
	MOVQ         u8+8(FP), R8
	MOVQ         x+16(FP), SI
	MOVQ         n+24(FP), CX
	VBROADCASTSS scale+32(FP), Z16
	MOVL         $-127, AX
	VPBROADCASTD AX, Z17
	MOVL         $127, AX
	VPBROADCASTD AX, Z18
	MOVL         $128, AX
	VPBROADCASTD AX, Z19
	TESTQ        R8, R8
	JZ           qr_noU8

qr_loop16:
	CMPQ      CX, $16
	JB        qr_tail
	VMULPS    (SI), Z16, Z0
	VCVTPS2DQ Z0, Z0
	VPMAXSD   Z17, Z0, Z0
	VPMINSD   Z18, Z0, Z0
	VPMOVDB   Z0, (DI)
	VPADDD    Z19, Z0, Z0
	VPMOVDB   Z0, (R8)
	ADDQ      $64, SI
	ADDQ      $16, DI
	ADDQ      $16, R8
	SUBQ      $16, CX
	JMP       qr_loop16

qr_tail:
	TESTQ     CX, CX
	JZ        qr_done
	TAILMASK
	VMOVUPS.Z (SI), K1, Z0
	VMULPS    Z16, Z0, Z0
	VCVTPS2DQ Z0, Z0
	VPMAXSD   Z17, Z0, Z0
	VPMINSD   Z18, Z0, Z0
	VPMOVDB   Z0, K1, (DI)
	VPADDD    Z19, Z0, Z0
	VPMOVDB   Z0, K1, (R8)
	JMP       qr_done

qr_noU8:
	CMPQ      CX, $16
	JB        qr_tail2
	VMULPS    (SI), Z16, Z0
	VCVTPS2DQ Z0, Z0
	VPMAXSD   Z17, Z0, Z0
	VPMINSD   Z18, Z0, Z0
	VPMOVDB   Z0, (DI)
	ADDQ      $64, SI
	ADDQ      $16, DI
	SUBQ      $16, CX
	JMP       qr_noU8

qr_tail2:
	TESTQ     CX, CX
	JZ        qr_done
	TAILMASK
	VMOVUPS.Z (SI), K1, Z0
	VMULPS    Z16, Z0, Z0
	VCVTPS2DQ Z0, Z0
	VPMAXSD   Z17, Z0, Z0
	VPMINSD   Z18, Z0, Z0
	VPMOVDB   Z0, K1, (DI)

qr_done:
	VZEROUPPER
	RET

// func addAVX512(a, b *float32, n int)   a[i] += b[i]
TEXT ·addAVX512(SB), NOSPLIT, $0-24
	MOVQ a+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ n+16(FP), CX

ad_loop32:
	CMPQ    CX, $32
	JB      ad_loop16
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	VADDPS  (SI), Z0, Z0
	VADDPS  64(SI), Z1, Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ    $128, SI
	ADDQ    $128, DI
	SUBQ    $32, CX
	JMP     ad_loop32

ad_loop16:
	CMPQ    CX, $16
	JB      ad_tail
	VMOVUPS (DI), Z0
	VADDPS  (SI), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX

ad_tail:
	TESTQ     CX, CX
	JZ        ad_done
	TAILMASK
	VMOVUPS.Z (DI), K1, Z0
	VMOVUPS.Z (SI), K1, Z1
	VADDPS    Z1, Z0, Z0
	VMOVUPS   Z0, K1, (DI)

ad_done:
	VZEROUPPER
	RET

// func scaleAVX512(x *float32, n int, s float32)   x[i] *= s
TEXT ·scaleAVX512(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS s+16(FP), Z16

sc_loop16:
	CMPQ    CX, $16
	JB      sc_tail
	VMULPS  (DI), Z16, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     sc_loop16

sc_tail:
	TESTQ     CX, CX
	JZ        sc_done
	TAILMASK
	VMOVUPS.Z (DI), K1, Z0
	VMULPS    Z16, Z0, Z0
	VMOVUPS   Z0, K1, (DI)

sc_done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// AVX2: e^x over n elements, n a multiple of 8 (the caller does the rest).
// Y0 x then r, Y1 k, Y2 the polynomial, Y3 mask then scratch; Y4 log2e, Y5 −ln2hi, Y6 −ln2lo,
// Y7..Y12 P, Y13 one, Y14 hi, Y15 lo. e^r = 1 + r·(1 + r·(p5 + r·(…))).

DATA expc2<>+0(SB)/4, C_LOTHR
DATA expc2<>+4(SB)/4, C_LOTHR
DATA expc2<>+8(SB)/4, C_LOTHR
DATA expc2<>+12(SB)/4, C_LOTHR
DATA expc2<>+16(SB)/4, C_LOTHR
DATA expc2<>+20(SB)/4, C_LOTHR
DATA expc2<>+24(SB)/4, C_LOTHR
DATA expc2<>+28(SB)/4, C_LOTHR
DATA expc2<>+32(SB)/4, $127
DATA expc2<>+36(SB)/4, $127
DATA expc2<>+40(SB)/4, $127
DATA expc2<>+44(SB)/4, $127
DATA expc2<>+48(SB)/4, $127
DATA expc2<>+52(SB)/4, $127
DATA expc2<>+56(SB)/4, $127
DATA expc2<>+60(SB)/4, $127
GLOBL expc2<>(SB), RODATA|NOPTR, $64

#define BCASTY(c, y) \
	MOVL         c, AX; \
	MOVQ         AX, X0; \
	VPBROADCASTD X0, y

// func expAVX2(dst, src *float32, n int)
TEXT ·expAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	BCASTY(C_LOG2E, Y4)
	BCASTY(C_NLN2HI, Y5)
	BCASTY(C_NLN2LO, Y6)
	BCASTY(C_P0, Y7)
	BCASTY(C_P1, Y8)
	BCASTY(C_P2, Y9)
	BCASTY(C_P3, Y10)
	BCASTY(C_P4, Y11)
	BCASTY(C_P5, Y12)
	BCASTY(C_ONE, Y13)
	BCASTY(C_HI, Y14)
	BCASTY(C_LO, Y15)

ex2_loop:
	CMPQ        CX, $8
	JB          ex2_done
	VMOVUPS     (SI), Y0
	VCMPPS      $5, expc2<>+0(SB), Y0, Y3
	VMINPS      Y0, Y14, Y0
	VMAXPS      Y0, Y15, Y0
	VMULPS      Y4, Y0, Y1
	VROUNDPS    $0, Y1, Y1
	VFMADD231PS Y5, Y1, Y0
	VFMADD231PS Y6, Y1, Y0
	VMOVAPS     Y7, Y2
	VFMADD213PS Y8, Y0, Y2
	VFMADD213PS Y9, Y0, Y2
	VFMADD213PS Y10, Y0, Y2
	VFMADD213PS Y11, Y0, Y2
	VFMADD213PS Y12, Y0, Y2
	VFMADD213PS Y13, Y0, Y2
	VFMADD213PS Y13, Y0, Y2
	VANDPS      Y3, Y2, Y2
	VCVTPS2DQ   Y1, Y1
	VPSRAD      $1, Y1, Y3
	VPSUBD      Y3, Y1, Y1
	VPADDD      expc2<>+32(SB), Y3, Y3
	VPADDD      expc2<>+32(SB), Y1, Y1
	VPSLLD      $23, Y3, Y3
	VPSLLD      $23, Y1, Y1
	VMULPS      Y3, Y2, Y2
	VMULPS      Y1, Y2, Y2
	VMOVUPS     Y2, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         ex2_loop

ex2_done:
	VZEROUPPER
	RET

// func layerNormAVX512(dst, src, w, b *float32, n int, eps float32)
// mean = Σx/n, var = Σ(x−mean)²/n (float32 lanes), dst = (x−mean)·(1/√(var+eps))·w + b.
// n ≥ 1.
TEXT ·layerNormAVX512(SB), NOSPLIT, $0-44
	MOVQ src+8(FP), SI
	MOVQ n+32(FP), CX
	MOVQ CX, DX
	ANDQ $15, DX                   // tail length
	SHRQ $4, CX                    // full vectors
	MOVQ DX, BX
	MOVQ CX, R9

	// Tail mask in K1 (all ones lanes beyond are excluded).
	MOVQ  DX, CX
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	MOVQ  R9, CX

	// Pass 1: Σx.
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	MOVQ   SI, R8
	MOVQ   R9, CX
	SHRQ   $1, CX
	JZ     ln_s1

ln_s2:
	VADDPS (R8), Z0, Z0
	VADDPS 64(R8), Z1, Z1
	ADDQ   $128, R8
	DECQ   CX
	JNZ    ln_s2

ln_s1:
	TESTQ  $1, R9
	JZ     ln_st
	VADDPS (R8), Z0, Z0
	ADDQ   $64, R8

ln_st:
	TESTQ     BX, BX
	JZ        ln_sdone
	VMOVUPS.Z (R8), K1, Z2
	VADDPS    Z2, Z1, Z1

ln_sdone:
	VADDPS        Z1, Z0, Z0
	HSUM512(Z0, Y0, X0, Y1, X1)
	MOVQ          n+32(FP), AX
	VCVTSI2SSQ     AX, X2, X2
	VDIVSS        X2, X0, X0       // mean
	VBROADCASTSS  X0, Z16

	// Pass 2: Σ(x−mean)².
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	MOVQ   SI, R8
	MOVQ   R9, CX
	SHRQ   $1, CX
	JZ     ln_v1

ln_v2:
	VSUBPS      (R8), Z16, Z3
	VSUBPS      64(R8), Z16, Z4
	VFMADD231PS Z3, Z3, Z0
	VFMADD231PS Z4, Z4, Z1
	ADDQ        $128, R8
	DECQ        CX
	JNZ         ln_v2

ln_v1:
	TESTQ       $1, R9
	JZ          ln_vt
	VSUBPS      (R8), Z16, Z3
	VFMADD231PS Z3, Z3, Z0
	ADDQ        $64, R8

ln_vt:
	TESTQ       BX, BX
	JZ          ln_vdone
	VMOVUPS.Z   (R8), K1, Z3
	VSUBPS.Z    Z16, Z3, K1, Z3
	VFMADD231PS Z3, Z3, Z1

ln_vdone:
	VADDPS       Z1, Z0, Z0
	HSUM512(Z0, Y0, X0, Y1, X1)
	VDIVSS       X2, X0, X0        // variance
	VADDSS       eps+40(FP), X0, X0
	VSQRTSS      X0, X0, X0
	MOVL         $0x3f800000, AX
	VMOVD        AX, X1
	VDIVSS       X0, X1, X0        // inv
	VBROADCASTSS X0, Z17

	// Pass 3: dst = (x−mean)·inv·w + b.
	MOVQ dst+0(FP), DI
	MOVQ w+16(FP), R10
	MOVQ b+24(FP), R11
	MOVQ SI, R8
	MOVQ R9, CX
	TESTQ CX, CX
	JZ   ln_at

ln_a:
	VMOVUPS     (R8), Z3
	VSUBPS      Z16, Z3, Z3
	VMULPS      Z17, Z3, Z3
	VMOVUPS     (R11), Z4
	VFMADD231PS (R10), Z3, Z4
	VMOVUPS     Z4, (DI)
	ADDQ        $64, R8
	ADDQ        $64, R10
	ADDQ        $64, R11
	ADDQ        $64, DI
	DECQ        CX
	JNZ         ln_a

ln_at:
	TESTQ       BX, BX
	JZ          ln_done
	VMOVUPS.Z   (R8), K1, Z3
	VSUBPS      Z16, Z3, Z3
	VMULPS      Z17, Z3, Z3
	VMOVUPS.Z   (R11), K1, Z4
	VMOVUPS.Z   (R10), K1, Z5
	VFMADD231PS Z5, Z3, Z4
	VMOVUPS     Z4, K1, (DI)

ln_done:
	VZEROUPPER
	RET

// func accum64AVX512(out, v *float32, stride int, p *float32, n int)
// out[0:64] = Σ_{j<n} p[j]·v[j·stride : j·stride+64], n ≥ 1. Even and odd positions go to two
// sets of four accumulators (eight independent FMA chains), added at the end.
TEXT ·accum64AVX512(SB), NOSPLIT, $0-40
	MOVQ out+0(FP), DI
	MOVQ v+8(FP), SI
	MOVQ stride+16(FP), BX
	SHLQ $2, BX
	MOVQ p+24(FP), DX
	MOVQ n+32(FP), CX
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7
	CMPQ CX, $2
	JLT  accum64one

accum64loop:
	VBROADCASTSS (DX), Z8
	VBROADCASTSS 4(DX), Z9
	VFMADD231PS (SI), Z8, Z0
	VFMADD231PS 64(SI), Z8, Z1
	VFMADD231PS 128(SI), Z8, Z2
	VFMADD231PS 192(SI), Z8, Z3
	VFMADD231PS (SI)(BX*1), Z9, Z4
	VFMADD231PS 64(SI)(BX*1), Z9, Z5
	VFMADD231PS 128(SI)(BX*1), Z9, Z6
	VFMADD231PS 192(SI)(BX*1), Z9, Z7
	ADDQ $8, DX
	LEAQ (SI)(BX*2), SI
	SUBQ $2, CX
	CMPQ CX, $2
	JGE  accum64loop

accum64one:
	TESTQ CX, CX
	JZ    accum64done
	VBROADCASTSS (DX), Z8
	VFMADD231PS (SI), Z8, Z0
	VFMADD231PS 64(SI), Z8, Z1
	VFMADD231PS 128(SI), Z8, Z2
	VFMADD231PS 192(SI), Z8, Z3

accum64done:
	VADDPS  Z4, Z0, Z0
	VADDPS  Z5, Z1, Z1
	VADDPS  Z6, Z2, Z2
	VADDPS  Z7, Z3, Z3
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VZEROUPPER
	RET

// func scores64AVX512(out, q, k *float32, stride int, n int)
// out[j] = Σ_{d<64} q[d]·k[j·stride+d] for j < n, n a positive multiple of 16. q stays in four
// registers; each block of 16 positions accumulates 16 vectors that a transpose-add tree
// (VSHUFF32X4, VUNPCK[LH]PD, VSHUFPS) reduces to one vector of 16 sums. Accumulator 4c+i takes
// position 4i+c, so the tree's 4×4 transposed output comes out in position order.
TEXT ·scores64AVX512(SB), NOSPLIT, $0-40
	MOVQ out+0(FP), DI
	MOVQ q+8(FP), AX
	MOVQ k+16(FP), SI
	MOVQ stride+24(FP), BX
	SHLQ $2, BX
	MOVQ n+32(FP), DX
	SHRQ $4, DX
	LEAQ (BX)(BX*2), CX
	MOVQ BX, R12
	SHLQ $4, R12
	VMOVUPS (AX), Z16
	VMOVUPS 64(AX), Z17
	VMOVUPS 128(AX), Z18
	VMOVUPS 192(AX), Z19

sc64loop:
	LEAQ (SI)(BX*4), R9
	LEAQ (R9)(BX*4), R10
	LEAQ (R10)(BX*4), R11
	VMULPS      (SI), Z16, Z0
	VMULPS      (R9), Z16, Z1
	VMULPS      (R10), Z16, Z2
	VMULPS      (R11), Z16, Z3
	VMULPS      (SI)(BX*1), Z16, Z4
	VMULPS      (R9)(BX*1), Z16, Z5
	VMULPS      (R10)(BX*1), Z16, Z6
	VMULPS      (R11)(BX*1), Z16, Z7
	VMULPS      (SI)(BX*2), Z16, Z8
	VMULPS      (R9)(BX*2), Z16, Z9
	VMULPS      (R10)(BX*2), Z16, Z10
	VMULPS      (R11)(BX*2), Z16, Z11
	VMULPS      (SI)(CX*1), Z16, Z12
	VMULPS      (R9)(CX*1), Z16, Z13
	VMULPS      (R10)(CX*1), Z16, Z14
	VMULPS      (R11)(CX*1), Z16, Z15
	VFMADD231PS 64(SI), Z17, Z0
	VFMADD231PS 64(R9), Z17, Z1
	VFMADD231PS 64(R10), Z17, Z2
	VFMADD231PS 64(R11), Z17, Z3
	VFMADD231PS 64(SI)(BX*1), Z17, Z4
	VFMADD231PS 64(R9)(BX*1), Z17, Z5
	VFMADD231PS 64(R10)(BX*1), Z17, Z6
	VFMADD231PS 64(R11)(BX*1), Z17, Z7
	VFMADD231PS 64(SI)(BX*2), Z17, Z8
	VFMADD231PS 64(R9)(BX*2), Z17, Z9
	VFMADD231PS 64(R10)(BX*2), Z17, Z10
	VFMADD231PS 64(R11)(BX*2), Z17, Z11
	VFMADD231PS 64(SI)(CX*1), Z17, Z12
	VFMADD231PS 64(R9)(CX*1), Z17, Z13
	VFMADD231PS 64(R10)(CX*1), Z17, Z14
	VFMADD231PS 64(R11)(CX*1), Z17, Z15
	VFMADD231PS 128(SI), Z18, Z0
	VFMADD231PS 128(R9), Z18, Z1
	VFMADD231PS 128(R10), Z18, Z2
	VFMADD231PS 128(R11), Z18, Z3
	VFMADD231PS 128(SI)(BX*1), Z18, Z4
	VFMADD231PS 128(R9)(BX*1), Z18, Z5
	VFMADD231PS 128(R10)(BX*1), Z18, Z6
	VFMADD231PS 128(R11)(BX*1), Z18, Z7
	VFMADD231PS 128(SI)(BX*2), Z18, Z8
	VFMADD231PS 128(R9)(BX*2), Z18, Z9
	VFMADD231PS 128(R10)(BX*2), Z18, Z10
	VFMADD231PS 128(R11)(BX*2), Z18, Z11
	VFMADD231PS 128(SI)(CX*1), Z18, Z12
	VFMADD231PS 128(R9)(CX*1), Z18, Z13
	VFMADD231PS 128(R10)(CX*1), Z18, Z14
	VFMADD231PS 128(R11)(CX*1), Z18, Z15
	VFMADD231PS 192(SI), Z19, Z0
	VFMADD231PS 192(R9), Z19, Z1
	VFMADD231PS 192(R10), Z19, Z2
	VFMADD231PS 192(R11), Z19, Z3
	VFMADD231PS 192(SI)(BX*1), Z19, Z4
	VFMADD231PS 192(R9)(BX*1), Z19, Z5
	VFMADD231PS 192(R10)(BX*1), Z19, Z6
	VFMADD231PS 192(R11)(BX*1), Z19, Z7
	VFMADD231PS 192(SI)(BX*2), Z19, Z8
	VFMADD231PS 192(R9)(BX*2), Z19, Z9
	VFMADD231PS 192(R10)(BX*2), Z19, Z10
	VFMADD231PS 192(R11)(BX*2), Z19, Z11
	VFMADD231PS 192(SI)(CX*1), Z19, Z12
	VFMADD231PS 192(R9)(CX*1), Z19, Z13
	VFMADD231PS 192(R10)(CX*1), Z19, Z14
	VFMADD231PS 192(R11)(CX*1), Z19, Z15
	VSHUFF32X4  $0x44, Z1, Z0, Z20
	VSHUFF32X4  $0xEE, Z1, Z0, Z21
	VADDPS      Z21, Z20, Z0
	VSHUFF32X4  $0x44, Z3, Z2, Z20
	VSHUFF32X4  $0xEE, Z3, Z2, Z21
	VADDPS      Z21, Z20, Z2
	VSHUFF32X4  $0x44, Z5, Z4, Z20
	VSHUFF32X4  $0xEE, Z5, Z4, Z21
	VADDPS      Z21, Z20, Z4
	VSHUFF32X4  $0x44, Z7, Z6, Z20
	VSHUFF32X4  $0xEE, Z7, Z6, Z21
	VADDPS      Z21, Z20, Z6
	VSHUFF32X4  $0x44, Z9, Z8, Z20
	VSHUFF32X4  $0xEE, Z9, Z8, Z21
	VADDPS      Z21, Z20, Z8
	VSHUFF32X4  $0x44, Z11, Z10, Z20
	VSHUFF32X4  $0xEE, Z11, Z10, Z21
	VADDPS      Z21, Z20, Z10
	VSHUFF32X4  $0x44, Z13, Z12, Z20
	VSHUFF32X4  $0xEE, Z13, Z12, Z21
	VADDPS      Z21, Z20, Z12
	VSHUFF32X4  $0x44, Z15, Z14, Z20
	VSHUFF32X4  $0xEE, Z15, Z14, Z21
	VADDPS      Z21, Z20, Z14
	VSHUFF32X4  $0x88, Z2, Z0, Z20
	VSHUFF32X4  $0xDD, Z2, Z0, Z21
	VADDPS      Z21, Z20, Z0
	VSHUFF32X4  $0x88, Z6, Z4, Z20
	VSHUFF32X4  $0xDD, Z6, Z4, Z21
	VADDPS      Z21, Z20, Z4
	VSHUFF32X4  $0x88, Z10, Z8, Z20
	VSHUFF32X4  $0xDD, Z10, Z8, Z21
	VADDPS      Z21, Z20, Z8
	VSHUFF32X4  $0x88, Z14, Z12, Z20
	VSHUFF32X4  $0xDD, Z14, Z12, Z21
	VADDPS      Z21, Z20, Z12
	VUNPCKLPD   Z4, Z0, Z20
	VUNPCKHPD   Z4, Z0, Z21
	VADDPS      Z21, Z20, Z0
	VUNPCKLPD   Z12, Z8, Z20
	VUNPCKHPD   Z12, Z8, Z21
	VADDPS      Z21, Z20, Z8
	VSHUFPS     $0x88, Z8, Z0, Z20
	VSHUFPS     $0xDD, Z8, Z0, Z21
	VADDPS      Z21, Z20, Z0
	VMOVUPS     Z0, (DI)
	ADDQ        $64, DI
	ADDQ        R12, SI
	DECQ        DX
	JNZ         sc64loop
	VZEROUPPER
	RET
