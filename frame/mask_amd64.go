//go:build !purego

package frame

// maskAsmMin is the length from which Mask hands b to maskSIMD. Below it the Go word loops
// win: the call into assembly, which the compiler cannot inline and which takes its arguments
// on the stack, costs more than the vectors save (measured on AMD EPYC, where the two break
// even between 320 and 384 bytes). It is a variable only so that tests can move it: to 0 to
// run the assembly on every length from 8, and past every length to run the pure-Go path.
var maskAsmMin = 384

// maskAVX2 reports whether maskSIMD may use AVX2; otherwise it uses SSE2, which every amd64
// CPU has. Tests clear it to cover the SSE2 code on machines with AVX2.
var maskAVX2 = cpuHasAVX2()

// maskAsm masks b with the key stream word key (see Mask) in assembly and reports true, or
// reports false without touching b when b is too short for that to pay.
func maskAsm(b []byte, key uint32) bool {
	if len(b) < maskAsmMin {
		return false
	}
	maskSIMD(b, key, maskAVX2)
	return true
}

// maskSIMD XORs all of b, whatever its length, with key repeated, where key is the next 4
// bytes of the key stream in the order a little-endian load sees them. It uses AVX2, 128
// bytes per iteration, if avx2 is set, and SSE2, 64 bytes per iteration, if not.
//
//go:noescape
func maskSIMD(b []byte, key uint32, avx2 bool)

// cpuHasAVX2 reports whether AVX2 instructions can be used: the CPU has them and the OS saves
// the YMM registers on context switches. The standard library's internal/cpu does the same
// but cannot be imported, and golang.org/x/sys/cpu would be a dependency for one bit.
func cpuHasAVX2() bool {
	// The procedure is from the Intel 64 and IA-32 Architectures Software Developer's Manual,
	// volume 1, section 14.3 "Detection of AVX instructions"; the bit positions are from
	// volume 2A, CPUID and XGETBV.
	const (
		osxsave = 1 << 27     // CPUID.1:ECX, the OS has enabled XGETBV
		avx     = 1 << 28     // CPUID.1:ECX
		avx2    = 1 << 5      // CPUID.(EAX=7,ECX=0):EBX
		xmmYMM  = 1<<1 | 1<<2 // XCR0: the OS saves the XMM and YMM state
	)
	if maxID, _, _, _ := cpuid(0, 0); maxID < 7 {
		return false
	}
	if _, _, ecx, _ := cpuid(1, 0); ecx&osxsave == 0 || ecx&avx == 0 {
		return false
	}
	if xcr0, _ := xgetbv(); xcr0&xmmYMM != xmmYMM {
		return false
	}
	_, ebx, _, _ := cpuid(7, 0)
	return ebx&avx2 != 0
}

// cpuid executes the CPUID instruction for leaf eaxArg and subleaf ecxArg.
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// xgetbv executes XGETBV for XCR0, in which the OS says which register state it saves. Only
// call it after CPUID reported OSXSAVE.
func xgetbv() (eax, edx uint32)
