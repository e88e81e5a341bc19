//go:build !purego

#include "textflag.h"

// func maskSIMD(b []byte, key uint32, avx2 bool)
//
// Buffers of 64 bytes or more first step to a 16-byte boundary (32 with AVX2) with at most one
// 1-, 2-, 4-, 8- and 16-byte XOR each: vector stores that straddle a cache line cost a fifth to
// a quarter of the throughput. Only the 1- and 2-byte steps leave the key stream off a whole
// period, so only they rotate the key word. The tail is the same in reverse: 16-byte blocks,
// then at most one 8-, 4-, 2- and 1-byte XOR, as the low bits of the remaining length say.
TEXT ·maskSIMD(SB), NOSPLIT, $0-29
	MOVQ b_base+0(FP), DI
	MOVQ b_len+8(FP), CX
	MOVL key+24(FP), AX
	CMPQ CX, $64
	JB   short

	TESTQ $1, DI
	JZ    head2
	XORB  AX, (DI)
	RORL  $8, AX
	INCQ  DI
	DECQ  CX

head2:
	TESTQ $2, DI
	JZ    head4
	XORW  AX, (DI)
	RORL  $16, AX
	ADDQ  $2, DI
	SUBQ  $2, CX

head4:
	TESTQ $4, DI
	JZ    head8
	XORL  AX, (DI)
	ADDQ  $4, DI
	SUBQ  $4, CX

head8:
	// DX is the key word in both halves; the 32-bit operations above left the upper half of
	// AX zero.
	MOVL  AX, DX
	SHLQ  $32, DX
	ORQ   AX, DX
	TESTQ $8, DI
	JZ    vectors
	XORQ  DX, (DI)
	ADDQ  $8, DI
	SUBQ  $8, CX
	JMP   vectors

short:
	MOVL AX, DX
	SHLQ $32, DX
	ORQ  AX, DX

vectors:
	// X0 (Y0 with AVX2) is DX in every 64-bit lane.
	MOVQ DX, X0
	CMPB avx2+28(FP), $0
	JEQ  sse2

	VPBROADCASTQ X0, Y0
	CMPQ         CX, $48
	JB           avx2blocks
	TESTQ        $16, DI
	JZ           avx2blocks
	VPXOR        (DI), X0, X1
	VMOVDQU      X1, (DI)
	ADDQ         $16, DI
	SUBQ         $16, CX

avx2blocks:
	CMPQ CX, $128
	JB   avx2loop32

avx2loop128:
	VPXOR   (DI), Y0, Y1
	VPXOR   32(DI), Y0, Y2
	VPXOR   64(DI), Y0, Y3
	VPXOR   96(DI), Y0, Y4
	VMOVDQU Y1, (DI)
	VMOVDQU Y2, 32(DI)
	VMOVDQU Y3, 64(DI)
	VMOVDQU Y4, 96(DI)
	ADDQ    $128, DI
	SUBQ    $128, CX
	CMPQ    CX, $128
	JAE     avx2loop128

avx2loop32:
	CMPQ    CX, $32
	JB      avx2done
	VPXOR   (DI), Y0, Y1
	VMOVDQU Y1, (DI)
	ADDQ    $32, DI
	SUBQ    $32, CX
	JMP     avx2loop32

avx2done:
	// Clear the upper halves of the Y registers, or the SSE code that runs next (the tail
	// below, and the Go runtime) pays for a state transition.
	VZEROUPPER
	JMP tail

sse2:
	PUNPCKLQDQ X0, X0
	CMPQ       CX, $64
	JB         tail

sse2loop64:
	MOVOU (DI), X1
	MOVOU 16(DI), X2
	MOVOU 32(DI), X3
	MOVOU 48(DI), X4
	PXOR  X0, X1
	PXOR  X0, X2
	PXOR  X0, X3
	PXOR  X0, X4
	MOVOU X1, (DI)
	MOVOU X2, 16(DI)
	MOVOU X3, 32(DI)
	MOVOU X4, 48(DI)
	ADDQ  $64, DI
	SUBQ  $64, CX
	CMPQ  CX, $64
	JAE   sse2loop64

tail:
	CMPQ  CX, $16
	JB    tail8
	MOVOU (DI), X1
	PXOR  X0, X1
	MOVOU X1, (DI)
	ADDQ  $16, DI
	SUBQ  $16, CX
	JMP   tail

tail8:
	TESTQ $8, CX
	JZ    tail4
	XORQ  DX, (DI)
	ADDQ  $8, DI

tail4:
	TESTQ $4, CX
	JZ    tail2
	XORL  DX, (DI)
	ADDQ  $4, DI

tail2:
	TESTQ $2, CX
	JZ    tail1
	XORW  DX, (DI)
	SHRQ  $16, DX
	ADDQ  $2, DI

tail1:
	TESTQ $1, CX
	JZ    done
	XORB  DX, (DI)

done:
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv() (eax, edx uint32)
TEXT ·xgetbv(SB), NOSPLIT, $0-8
	MOVL   $0, CX
	XGETBV
	MOVL   AX, eax+0(FP)
	MOVL   DX, edx+4(FP)
	RET
