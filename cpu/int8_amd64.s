//go:build amd64

#include "textflag.h"

// ---------------------------------------------------------------------------
// Weight-only GEMV: func q8gemv{AVX512,AVX2}(rows, c, g int, codes *byte, x, invs, zi, xs, out *float32)
// and func q4gemvAVX2(rows, c, g int, codes *byte, x, invs, zi, xs, out *float32, off int32), whose
// code is the nibble − off. (The 4-bit AVX-512 kernel, q4gemv4AVX512, is further down.)
//
// For 4 bits, x must be in nibble order (q4Perm): within each block of 32 values the 16 even
// ones, then the 16 odd ones, so that the low and high nibbles of 16 code bytes, zero-extended to
// dwords, meet their x values without shuffles.
//
// For each row: per group of g codes (g a multiple of 32) accumulate Σ code·x in float32 (two
// vector accumulators), then row += invs[j]·group sum (vector FMA, reduced once per row) and, when
// zi != nil, zacc += zi[j]·xs[j] (scalar). out[r] = hsum(row) − zacc.
//
// BX rows left, R9 c, R10 g, SI codes (runs through all rows), R11 x, R12 invs (runs), R13 zi
// (runs), R14 xs, DX out; per row DI = x cursor, R8 = xs cursor, AX = values left in the row;
// per group CX = values left in the group.

#define GEMV_PROLOGUE \
	MOVQ rows+0(FP), BX; \
	MOVQ c+8(FP), R9; \
	MOVQ gs+16(FP), R10; \
	MOVQ codes+24(FP), SI; \
	MOVQ x+32(FP), R11; \
	MOVQ invs+40(FP), R12; \
	MOVQ zi+48(FP), R13; \
	MOVQ xs+56(FP), R14; \
	MOVQ out+64(FP), DX; \
	MOVL $0x0f0f0f0f, AX; \
	VMOVD AX, X15; \
	VPBROADCASTD X15, X15

// Group epilogue shared by all four kernels; acc is the group sum register (Z1 or Y1), racc the row
// accumulator, bc a broadcast temporary.
#define GROUP_SCALE(acc, racc, bc) \
	VBROADCASTSS (R12), bc; \
	VFMADD231PS  bc, acc, racc; \
	ADDQ         $4, R12

#define GROUP_ZERO \
	VMOVSS      (R13), X7; \
	VFMADD231SS (R8), X7, X5; \
	ADDQ        $4, R13; \
	ADDQ        $4, R8

TEXT ·q8gemvAVX512(SB), NOSPLIT, $0-72
	GEMV_PROLOGUE

q8z_row:
	VPXORD Z0, Z0, Z0
	VXORPS X5, X5, X5
	MOVQ   R11, DI
	MOVQ   R14, R8
	MOVQ   R9, AX

q8z_group:
	// First 32 values of the group initialise the two accumulators.
	VPMOVSXBD   (SI), Z3
	VPMOVSXBD   16(SI), Z4
	VCVTDQ2PS   Z3, Z3
	VCVTDQ2PS   Z4, Z4
	VMULPS      (DI), Z3, Z1
	VMULPS      64(DI), Z4, Z2
	ADDQ        $32, SI
	ADDQ        $128, DI
	MOVQ        R10, CX
	SUBQ        $32, CX
	JZ          q8z_gend

q8z_k:
	VPMOVSXBD   (SI), Z3
	VPMOVSXBD   16(SI), Z4
	VCVTDQ2PS   Z3, Z3
	VCVTDQ2PS   Z4, Z4
	VFMADD231PS (DI), Z3, Z1
	VFMADD231PS 64(DI), Z4, Z2
	ADDQ        $32, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JNZ         q8z_k

q8z_gend:
	VADDPS      Z2, Z1, Z1
	GROUP_SCALE(Z1, Z0, Z6)
	TESTQ       R13, R13
	JZ          q8z_nz
	GROUP_ZERO

q8z_nz:
	SUBQ        R10, AX
	JNZ         q8z_group

	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS        Y1, Y0, Y0
	VEXTRACTF128  $1, Y0, X1
	VADDPS        X1, X0, X0
	VHADDPS       X0, X0, X0
	VHADDPS       X0, X0, X0
	VSUBSS        X5, X0, X0
	VMOVSS        X0, (DX)
	ADDQ          $4, DX
	DECQ          BX
	JNZ           q8z_row
	VZEROUPPER
	RET

TEXT ·q8gemvAVX2(SB), NOSPLIT, $0-72
	GEMV_PROLOGUE

q8y_row:
	VXORPS Y0, Y0, Y0
	VXORPS X5, X5, X5
	MOVQ   R11, DI
	MOVQ   R14, R8
	MOVQ   R9, AX

q8y_group:
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	MOVQ   R10, CX

q8y_k:
	VPMOVSXBD   (SI), Y3
	VPMOVSXBD   8(SI), Y4
	VPMOVSXBD   16(SI), Y8
	VPMOVSXBD   24(SI), Y9
	VCVTDQ2PS   Y3, Y3
	VCVTDQ2PS   Y4, Y4
	VCVTDQ2PS   Y8, Y8
	VCVTDQ2PS   Y9, Y9
	VFMADD231PS (DI), Y3, Y1
	VFMADD231PS 32(DI), Y4, Y2
	VFMADD231PS 64(DI), Y8, Y1
	VFMADD231PS 96(DI), Y9, Y2
	ADDQ        $32, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JNZ         q8y_k
	VADDPS      Y2, Y1, Y1
	GROUP_SCALE(Y1, Y0, Y6)
	TESTQ       R13, R13
	JZ          q8y_nz
	GROUP_ZERO

q8y_nz:
	SUBQ        R10, AX
	JNZ         q8y_group

	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VSUBSS       X5, X0, X0
	VMOVSS       X0, (DX)
	ADDQ         $4, DX
	DECQ         BX
	JNZ          q8y_row
	VZEROUPPER
	RET

TEXT ·q4gemvAVX2(SB), NOSPLIT, $0-76
	GEMV_PROLOGUE
	VPBROADCASTD X15, Y15
	MOVL         off+72(FP), AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14

q4y_row:
	VXORPS Y0, Y0, Y0
	VXORPS X5, X5, X5
	MOVQ   R11, DI
	MOVQ   R14, R8
	MOVQ   R9, AX

q4y_group:
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	MOVQ   R10, CX

q4y_k:
	VPMOVZXBD   (SI), Y3
	VPMOVZXBD   8(SI), Y8
	VPSRLD      $4, Y3, Y4
	VPSRLD      $4, Y8, Y9
	VPAND       Y15, Y3, Y3
	VPAND       Y15, Y8, Y8
	VPSUBD      Y14, Y3, Y3
	VPSUBD      Y14, Y4, Y4
	VPSUBD      Y14, Y8, Y8
	VPSUBD      Y14, Y9, Y9
	VCVTDQ2PS   Y3, Y3
	VCVTDQ2PS   Y4, Y4
	VCVTDQ2PS   Y8, Y8
	VCVTDQ2PS   Y9, Y9
	VFMADD231PS (DI), Y3, Y1
	VFMADD231PS 64(DI), Y4, Y2
	VFMADD231PS 32(DI), Y8, Y1
	VFMADD231PS 96(DI), Y9, Y2
	ADDQ        $16, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JNZ         q4y_k
	VADDPS      Y2, Y1, Y1
	GROUP_SCALE(Y1, Y0, Y6)
	TESTQ       R13, R13
	JZ          q4y_nz
	GROUP_ZERO

q4y_nz:
	SUBQ        R10, AX
	JNZ         q4y_group

	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VSUBSS       X5, X0, X0
	VMOVSS       X0, (DX)
	ADDQ         $4, DX
	DECQ         BX
	JNZ          q4y_row
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// func q4gemv4AVX512(rows, c, gs, gpr int, codes *byte, x, invs, zi, xs, tbl, out *float32, zmask uint16)
//
// 4-bit weight-only GEMV, four rows per pass (rows a multiple of 4): the two x vectors of each
// block of 32 values are loaded once for the four rows, and the four rows' dependency chains
// interleave. Nibbles become floats with one VPERMPS each: the zero-extended code byte indexes the
// 16-float table tbl (VPERMPS reads the low 4 bits of each index, so the low nibble needs no
// mask and the high one only a shift); tbl[n] = n − off folds the +8 storage offset in.
// x is in nibble order (q4Perm). Per group (gs values, a multiple of 32) the sum Σ tbl[code]·x
// is scaled into the row accumulator with the row's invs[j]; when zi != nil, zi[r][j]·xs[j] is
// subtracted lane-wise (16 groups per step, the last gpr%16 under the mask zmask) before the
// horizontal sum. The four sums are reduced together and stored as one 16-byte vector.
//
// BX rows left, DX out, SI/AX codes of rows 0/1 (rows 2/3 at +2·R8), R8 bytes per row, DI x
// cursor, R9 x end, R10 group end, R11 group bytes of x, R12 invs of row 0 (rows 1..3 at
// +CX, +2·CX, +R13), CX gpr·4, R13 3·gpr·4, R14 prefetch cursor. Z31 table, Z16/Z17 x, Z0-Z3
// group sums, Z4-Z7 row accumulators, Z8-Z15 temporaries.

#define Q4ROW_FIRST(addr, t, u, acc) \
	VPMOVZXBD addr, t; \
	VPSRLD    $4, t, u; \
	VPERMPS   Z31, t, t; \
	VPERMPS   Z31, u, u; \
	VMULPS    Z16, t, acc; \
	VFMADD231PS Z17, u, acc

#define Q4ROW_NEXT(addr, t, u, acc) \
	VPMOVZXBD addr, t; \
	VPSRLD    $4, t, u; \
	VPERMPS   Z31, t, t; \
	VPERMPS   Z31, u, u; \
	VFMADD231PS Z16, t, acc; \
	VFMADD231PS Z17, u, acc

TEXT ·q4gemv4AVX512(SB), NOSPLIT, $0-90
	MOVQ rows+0(FP), BX
	MOVQ c+8(FP), R8
	SHRQ $1, R8
	MOVQ gs+16(FP), R11
	SHLQ $2, R11
	MOVQ gpr+24(FP), CX
	SHLQ $2, CX
	LEAQ (CX)(CX*2), R13
	MOVQ codes+32(FP), SI
	MOVQ invs+48(FP), R12
	MOVQ tbl+72(FP), AX
	VMOVUPS (AX), Z31
	MOVQ out+80(FP), DX
	KMOVW zmask+88(FP), K1

q4x_block:
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	MOVQ   x+40(FP), DI
	MOVQ   c+8(FP), R9
	LEAQ   (DI)(R9*4), R9
	LEAQ   (SI)(R8*1), AX
	MOVQ   R8, R14
	SHLQ   $3, R14
	ADDQ   SI, R14

q4x_group:
	// Software prefetch: R14 sweeps the codes of the block after next, one line per 32-value
	// step (the 4×16 bytes a step reads). The four interleaved row streams alone leave the
	// hardware prefetcher well short of the bandwidth a single stream gets.
	PREFETCHT0 (R14)
	ADDQ       $64, R14
	LEAQ       (DI)(R11*1), R10
	VMOVUPS (DI), Z16
	VMOVUPS 64(DI), Z17
	Q4ROW_FIRST((SI), Z8, Z9, Z0)
	Q4ROW_FIRST((AX), Z10, Z11, Z1)
	Q4ROW_FIRST((SI)(R8*2), Z12, Z13, Z2)
	Q4ROW_FIRST((AX)(R8*2), Z14, Z15, Z3)
	ADDQ    $16, SI
	ADDQ    $16, AX
	ADDQ    $128, DI
	CMPQ    DI, R10
	JEQ     q4x_gend

q4x_k:
	PREFETCHT0 (R14)
	ADDQ       $64, R14
	VMOVUPS (DI), Z16
	VMOVUPS 64(DI), Z17
	Q4ROW_NEXT((SI), Z8, Z9, Z0)
	Q4ROW_NEXT((AX), Z10, Z11, Z1)
	Q4ROW_NEXT((SI)(R8*2), Z12, Z13, Z2)
	Q4ROW_NEXT((AX)(R8*2), Z14, Z15, Z3)
	ADDQ    $16, SI
	ADDQ    $16, AX
	ADDQ    $128, DI
	CMPQ    DI, R10
	JNE     q4x_k

q4x_gend:
	VFMADD231PS.BCST (R12), Z0, Z4
	VFMADD231PS.BCST (R12)(CX*1), Z1, Z5
	VFMADD231PS.BCST (R12)(CX*2), Z2, Z6
	VFMADD231PS.BCST (R12)(R13*1), Z3, Z7
	ADDQ             $4, R12
	CMPQ             DI, R9
	JNE              q4x_group

	// Zero term: R9 = zi of row 0 of this block, DI = xs, R10 = full 16-group steps.
	MOVQ  zi+56(FP), R10
	TESTQ R10, R10
	JZ    q4x_reduce
	MOVQ  R12, R9
	SUBQ  CX, R9
	SUBQ  invs+48(FP), R9
	ADDQ  R10, R9
	MOVQ  xs+64(FP), DI
	MOVQ  gpr+24(FP), R10
	SHRQ  $4, R10
	JZ    q4x_ztail

q4x_zk:
	VMOVUPS      (DI), Z16
	VFNMADD231PS (R9), Z16, Z4
	VFNMADD231PS (R9)(CX*1), Z16, Z5
	VFNMADD231PS (R9)(CX*2), Z16, Z6
	VFNMADD231PS (R9)(R13*1), Z16, Z7
	ADDQ         $64, DI
	ADDQ         $64, R9
	DECQ         R10
	JNZ          q4x_zk

q4x_ztail:
	KORTESTW     K1, K1
	JZ           q4x_reduce
	VMOVUPS.Z    (DI), K1, Z16
	VMOVUPS.Z    (R9), K1, Z8
	VMOVUPS.Z    (R9)(CX*1), K1, Z9
	VMOVUPS.Z    (R9)(CX*2), K1, Z10
	VMOVUPS.Z    (R9)(R13*1), K1, Z11
	VFNMADD231PS Z8, Z16, Z4
	VFNMADD231PS Z9, Z16, Z5
	VFNMADD231PS Z10, Z16, Z6
	VFNMADD231PS Z11, Z16, Z7

q4x_reduce:
	VEXTRACTF64X4 $1, Z4, Y8
	VEXTRACTF64X4 $1, Z5, Y9
	VEXTRACTF64X4 $1, Z6, Y10
	VEXTRACTF64X4 $1, Z7, Y11
	VADDPS        Y8, Y4, Y4
	VADDPS        Y9, Y5, Y5
	VADDPS        Y10, Y6, Y6
	VADDPS        Y11, Y7, Y7
	VHADDPS       Y5, Y4, Y4
	VHADDPS       Y7, Y6, Y6
	VHADDPS       Y6, Y4, Y4
	VEXTRACTF128  $1, Y4, X8
	VADDPS        X8, X4, X4
	VMOVUPS       X4, (DX)
	ADDQ          $16, DX

	// Next block: rows 4..7 from here (SI is at row 1, R12 at invs of row 1).
	LEAQ (SI)(R8*2), SI
	ADDQ R8, SI
	ADDQ R13, R12
	SUBQ $4, BX
	JNZ  q4x_block
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// W8A8 tile, AVX-512 VNNI: func i8dotsVNNI(ngroups, gsteps int, a *[6]*byte, bp *byte, wcorr *int32, out *int32)
//
// Accumulators: token t uses Z(2t) (rows 0..15) and Z(2t+1) (rows 16..31). Per step of 4
// channels: two 64-byte loads of the packed panel, six 4-byte broadcasts of the (unsigned)
// activations, twelve VPDPBUSD. At the end of each group the 128·Σw correction is subtracted and
// the 6×32 int32 dots are stored.

#define VNNI_TOKEN(areg, bc, acc0, acc1) \
	VPBROADCASTD (areg)(AX*1), bc; \
	VPDPBUSD     Z24, bc, acc0; \
	VPDPBUSD     Z25, bc, acc1

TEXT ·i8dotsVNNI(SB), NOSPLIT, $0-48
	MOVQ ngroups+0(FP), BX
	MOVQ gsteps+8(FP), R14
	MOVQ a+16(FP), AX
	MOVQ 0(AX), R8
	MOVQ 8(AX), R9
	MOVQ 16(AX), R10
	MOVQ 24(AX), R11
	MOVQ 32(AX), R12
	MOVQ 40(AX), R13
	MOVQ bp+24(FP), DX
	MOVQ wcorr+32(FP), SI
	MOVQ out+40(FP), DI
	XORQ AX, AX

vn_group:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	MOVQ   R14, CX

vn_step:
	VMOVDQU32 (DX), Z24
	VMOVDQU32 64(DX), Z25
	VNNI_TOKEN(R8, Z26, Z0, Z1)
	VNNI_TOKEN(R9, Z27, Z2, Z3)
	VNNI_TOKEN(R10, Z28, Z4, Z5)
	VNNI_TOKEN(R11, Z29, Z6, Z7)
	VNNI_TOKEN(R12, Z30, Z8, Z9)
	VNNI_TOKEN(R13, Z31, Z10, Z11)
	ADDQ      $4, AX
	ADDQ      $128, DX
	DECQ      CX
	JNZ       vn_step

	VMOVDQU32 (SI), Z24
	VMOVDQU32 64(SI), Z25
	VPSUBD    Z24, Z0, Z0
	VPSUBD    Z25, Z1, Z1
	VPSUBD    Z24, Z2, Z2
	VPSUBD    Z25, Z3, Z3
	VPSUBD    Z24, Z4, Z4
	VPSUBD    Z25, Z5, Z5
	VPSUBD    Z24, Z6, Z6
	VPSUBD    Z25, Z7, Z7
	VPSUBD    Z24, Z8, Z8
	VPSUBD    Z25, Z9, Z9
	VPSUBD    Z24, Z10, Z10
	VPSUBD    Z25, Z11, Z11
	VMOVDQU32 Z0, (DI)
	VMOVDQU32 Z1, 64(DI)
	VMOVDQU32 Z2, 128(DI)
	VMOVDQU32 Z3, 192(DI)
	VMOVDQU32 Z4, 256(DI)
	VMOVDQU32 Z5, 320(DI)
	VMOVDQU32 Z6, 384(DI)
	VMOVDQU32 Z7, 448(DI)
	VMOVDQU32 Z8, 512(DI)
	VMOVDQU32 Z9, 576(DI)
	VMOVDQU32 Z10, 640(DI)
	VMOVDQU32 Z11, 704(DI)
	ADDQ      $128, SI
	ADDQ      $768, DI
	DECQ      BX
	JNZ       vn_group
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// W8A8 tile chunk, AVX2: func i8dotsAVX2(ngroups, gsteps int, a *[4]*int16, bp *byte, out *int32)
//
// 4 tokens × 8 rows. Per step of 4 channels: the chunk's 32 packed bytes are sign-extended to
// two registers of 16-bit values (rows 0-3 and 4-7, 4 channels each), each token's 4 int16
// activations are broadcast as a qword and VPMADDWD gives per row two pair sums (channels 0+1 and
// 2+3), accumulated in int32. At the end of a group VPHADDD adds the pairs and VPERMQ restores the
// row order.

#define AVX2_TOKEN(areg, acc0, acc1) \
	VPBROADCASTQ (areg)(AX*1), Y10; \
	VPMADDWD     Y8, Y10, Y11; \
	VPADDD       Y11, acc0, acc0; \
	VPMADDWD     Y9, Y10, Y12; \
	VPADDD       Y12, acc1, acc1

#define AVX2_STORE(acc0, acc1, off) \
	VPHADDD acc1, acc0, acc0; \
	VPERMQ  $0xD8, acc0, acc0; \
	VMOVDQU acc0, off(DI)

TEXT ·i8dotsAVX2(SB), NOSPLIT, $0-40
	MOVQ ngroups+0(FP), BX
	MOVQ gsteps+8(FP), R14
	MOVQ a+16(FP), AX
	MOVQ 0(AX), R8
	MOVQ 8(AX), R9
	MOVQ 16(AX), R10
	MOVQ 24(AX), R11
	MOVQ bp+24(FP), DX
	MOVQ out+32(FP), DI
	XORQ AX, AX

av_group:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
	MOVQ  R14, CX

av_step:
	VPMOVSXBW (DX), Y8
	VPMOVSXBW 16(DX), Y9
	AVX2_TOKEN(R8, Y0, Y1)
	AVX2_TOKEN(R9, Y2, Y3)
	AVX2_TOKEN(R10, Y4, Y5)
	AVX2_TOKEN(R11, Y6, Y7)
	ADDQ      $8, AX
	ADDQ      $128, DX
	DECQ      CX
	JNZ       av_step

	AVX2_STORE(Y0, Y1, 0)
	AVX2_STORE(Y2, Y3, 128)
	AVX2_STORE(Y4, Y5, 256)
	AVX2_STORE(Y6, Y7, 384)
	ADDQ $768, DI
	DECQ BX
	JNZ  av_group
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// W8A8 float epilogue, AVX-512:
// func w8EpiAVX512(gpr int, dots *int32, invs, zinv, qs *float32, ldq int, facc *float32)
//
// facc[t][j] = Σ_grp invs[grp][j]·float(dots[grp][t][j]) − zinv[grp][j]·qs[t*ldq+grp], the whole
// 6×32 tile in Z0..Z11.

#define EPI_DOTS(off, acc0, acc1) \
	VCVTDQ2PS   off(SI), Z14; \
	VFMADD231PS Z14, Z12, acc0; \
	VCVTDQ2PS   off+64(SI), Z15; \
	VFMADD231PS Z15, Z13, acc1

#define EPI_ZERO(qreg, acc0, acc1) \
	VBROADCASTSS  (qreg), Z14; \
	VFNMADD231PS  Z14, Z12, acc0; \
	VFNMADD231PS  Z14, Z13, acc1; \
	ADDQ          $4, qreg

TEXT ·w8EpiAVX512(SB), NOSPLIT, $0-56
	MOVQ gpr+0(FP), CX
	MOVQ dots+8(FP), SI
	MOVQ invs+16(FP), DX
	MOVQ zinv+24(FP), R8
	MOVQ qs+32(FP), R9
	MOVQ ldq+40(FP), R10
	SHLQ $2, R10
	LEAQ (R9)(R10*1), R11
	LEAQ (R11)(R10*1), R12
	LEAQ (R12)(R10*1), R13
	LEAQ (R13)(R10*1), R14
	LEAQ (R14)(R10*1), BX
	MOVQ facc+48(FP), DI
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11

ez_loop:
	VMOVUPS (DX), Z12
	VMOVUPS 64(DX), Z13
	EPI_DOTS(0, Z0, Z1)
	EPI_DOTS(128, Z2, Z3)
	EPI_DOTS(256, Z4, Z5)
	EPI_DOTS(384, Z6, Z7)
	EPI_DOTS(512, Z8, Z9)
	EPI_DOTS(640, Z10, Z11)
	TESTQ   R8, R8
	JZ      ez_next
	VMOVUPS (R8), Z12
	VMOVUPS 64(R8), Z13
	EPI_ZERO(R9, Z0, Z1)
	EPI_ZERO(R11, Z2, Z3)
	EPI_ZERO(R12, Z4, Z5)
	EPI_ZERO(R13, Z6, Z7)
	EPI_ZERO(R14, Z8, Z9)
	EPI_ZERO(BX, Z10, Z11)
	ADDQ    $128, R8

ez_next:
	ADDQ $128, DX
	ADDQ $768, SI
	DECQ CX
	JNZ  ez_loop

	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VMOVUPS Z4, 256(DI)
	VMOVUPS Z5, 320(DI)
	VMOVUPS Z6, 384(DI)
	VMOVUPS Z7, 448(DI)
	VMOVUPS Z8, 512(DI)
	VMOVUPS Z9, 576(DI)
	VMOVUPS Z10, 640(DI)
	VMOVUPS Z11, 704(DI)
	VZEROUPPER
	RET

// W8A8 float epilogue, AVX2, tokens 0..3 × 8 columns:
// func w8EpiAVX2(gpr int, dots *int32, invs, zinv, qs *float32, ldq int, facc *float32)

#define EPI2_DOTS(off, acc) \
	VCVTDQ2PS   off(SI), Y14; \
	VFMADD231PS Y14, Y12, acc

#define EPI2_ZERO(qreg, acc) \
	VBROADCASTSS (qreg), Y14; \
	VFNMADD231PS Y14, Y13, acc; \
	ADDQ         $4, qreg

TEXT ·w8EpiAVX2(SB), NOSPLIT, $0-56
	MOVQ gpr+0(FP), CX
	MOVQ dots+8(FP), SI
	MOVQ invs+16(FP), DX
	MOVQ zinv+24(FP), R8
	MOVQ qs+32(FP), R9
	MOVQ ldq+40(FP), R10
	SHLQ $2, R10
	LEAQ (R9)(R10*1), R11
	LEAQ (R11)(R10*1), R12
	LEAQ (R12)(R10*1), R13
	MOVQ facc+48(FP), DI
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

ey_loop:
	VMOVUPS (DX), Y12
	EPI2_DOTS(0, Y0)
	EPI2_DOTS(128, Y1)
	EPI2_DOTS(256, Y2)
	EPI2_DOTS(384, Y3)
	TESTQ   R8, R8
	JZ      ey_next
	VMOVUPS (R8), Y13
	EPI2_ZERO(R9, Y0)
	EPI2_ZERO(R11, Y1)
	EPI2_ZERO(R12, Y2)
	EPI2_ZERO(R13, Y3)
	ADDQ    $128, R8

ey_next:
	ADDQ $128, DX
	ADDQ $768, SI
	DECQ CX
	JNZ  ey_loop

	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 128(DI)
	VMOVUPS Y2, 256(DI)
	VMOVUPS Y3, 384(DI)
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// func packPanelAVX(c int, src *byte, dst *byte)
//
// Packs w8Panel (32) rows of c signed codes (c a multiple of 16, rows c bytes apart) into the
// W8A8 panel layout dst[(k/4)*128 + j*4 + k%4] = src[j*c + k]: 4×4 dword transposes of 4 rows ×
// 16 bytes.
TEXT ·packPanelAVX(SB), NOSPLIT, $0-24
	MOVQ c+0(FP), CX
	MOVQ src+8(FP), SI
	MOVQ dst+16(FP), DI
	LEAQ (CX)(CX*2), R11
	XORQ R8, R8
	MOVQ $8, R9

pk_rows:
	MOVQ SI, AX
	LEAQ (DI)(R8*1), DX
	MOVQ CX, R10

pk_k:
	VMOVDQU     (AX), X0
	VMOVDQU     (AX)(CX*1), X1
	VMOVDQU     (AX)(CX*2), X2
	VMOVDQU     (AX)(R11*1), X3
	VPUNPCKLDQ  X1, X0, X4
	VPUNPCKHDQ  X1, X0, X5
	VPUNPCKLDQ  X3, X2, X6
	VPUNPCKHDQ  X3, X2, X7
	VPUNPCKLQDQ X6, X4, X0
	VPUNPCKHQDQ X6, X4, X1
	VPUNPCKLQDQ X7, X5, X2
	VPUNPCKHQDQ X7, X5, X3
	VMOVDQU     X0, (DX)
	VMOVDQU     X1, 128(DX)
	VMOVDQU     X2, 256(DX)
	VMOVDQU     X3, 384(DX)
	ADDQ        $16, AX
	ADDQ        $512, DX
	SUBQ        $16, R10
	JNZ         pk_k

	LEAQ (SI)(CX*4), SI
	ADDQ $16, R8
	DECQ R9
	JNZ  pk_rows
	RET
