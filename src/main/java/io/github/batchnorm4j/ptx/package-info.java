/**
 * The PTX emulator: runs the PTX text nvcc emits on the CPU behind the {@link io.github.batchnorm4j.gpu.Device}
 * interface ({@link io.github.batchnorm4j.ptx.EmulatedDevice}), so GPU code paths are tested on machines without a GPU.
 *
 * <h2>Pipeline</h2>
 * {@code PtxParser} splits the text into statements (comments removed, lines kept) and decodes every function once
 * ({@code InsnDecoder}) into {@code Insn} objects: int opcodes specialised for hot cases, register indices, immediates
 * and symbol addresses turned into preloaded constant registers; {@code Linker} appends called {@code .func}s to an
 * entry's code. {@code Interpreter} executes a launch (scheduling, barriers, warp collectives), {@code MemoryUnit} its
 * memory instructions, checks and traffic counts, {@code SharedRaceDetector} the race check, {@code MemoryOrder}
 * the memory-ordering check between blocks; {@code Alu} and
 * {@code FloatOps} hold instruction semantics. Speed: {@code EmulatorBenchmark} in the test sources.
 *
 * <h2>Execution model</h2>
 * Blocks run one at a time in an order shuffled by a seed ({@link io.github.batchnorm4j.ptx.EmulatorOptions}). A
 * block's warps of 32 lanes are interpreted SIMT-style with min-pc scheduling: each step executes the instruction at
 * the lowest pc among the warp's runnable lanes for all lanes at that pc, which reconverges structured code by itself
 * and gives shfl/vote the converged lanes. A warp runs until its lanes wait at a barrier or exit; when all warps are
 * stopped, complete barriers are released; a barrier that can never complete is reported (barrier divergence), never a
 * hang; a block exceeding an instruction budget (an endless loop, or a spin-wait on another block) is reported too.
 * Generic 64-bit addresses: global allocations from 2^44 (256-byte aligned, 4 KiB gaps, never reused), a shared
 * window at 2^40 and a local window at 2^41 ({@code cvta}/{@code cvta.to} convert).
 *
 * <h2>Checks (each on by default, each a DeviceException naming kernel, PTX line and text, block, thread, address)</h2>
 * Out-of-bounds and misaligned global/shared/local/param accesses (including use after free); reads of global memory
 * never written since allocation (host copies, memset and stores initialize; {@code copyToHost} of unwritten bytes also
 * fails); shared-memory data races between barriers, at byte granularity: between threads of different warps where
 * at least one access is a plain write, or one is plain and the other atomic; and between lanes of one warp (Volta's
 * independent thread scheduling does not keep a warp in lockstep): a lane's plain write followed by another lane's
 * read, write or atomic with no {@code bar.warp.sync} ({@code __syncwarp}), {@code shfl/vote/match .sync} covering both
 * lanes, or barrier in between, and two lanes of one store instruction writing different values to the same byte
 * (equal values are accepted, as racecheck only warns about them; read-then-write by another lane is not checked);
 * barrier divergence (lanes of a warp at
 * different barriers, or a barrier some threads exit without reaching); warp-synchronous instructions whose member
 * mask names lanes not converged at that instruction; memory ordering between blocks ({@code MemoryOrder}, see
 * docs/emulator.md): a read of global bytes another block of the launch stored, unless the store was fenced and
 * released by an atomic of its block that the reader's block acquired (atomic, barrier, fence) and the load bypasses
 * L1 ({@code .cg/.cv/.volatile/.relaxed.gpu/.acquire.gpu}), a {@code .nc} load of bytes written in the launch or a
 * store to bytes read through {@code .nc}, and regions declared self-resetting left non-zero after a launch;
 * unsupported instructions (named, with line, when executed;
 * {@link io.github.batchnorm4j.ptx.PtxCheck} lists them statically); leaks at device close. Shared memory starts each
 * block filled with 0xFF bytes (NaN floats, -1 integers) so reads before writes are visible.
 *
 * <h2>Coverage</h2>
 * {@link io.github.batchnorm4j.ptx.Coverage} counts, per kernel and PTX instruction, the threads that reached it and
 * those whose guard was true; {@code BATCHNORM4J_COVERAGE=<folder>} records every device of a process and writes
 * {@code coverage.tsv} and {@code coverage.txt} there at exit. Kernels are keyed by the module's PTX text as well
 * as its name, so a mutated text never counts for the original. Off, it costs one null test per warp-instruction.
 *
 * <h2>Floating point</h2>
 * {@code .rn} arithmetic is Java's IEEE arithmetic ({@code Math.fma} for fma/mad); {@code .rz/.rm/.rp} are exact
 * (error-free transforms or BigDecimal); {@code .ftz} flushes f32 subnormal inputs and results; {@code .sat} clamps to
 * [0, 1] with NaN to 0; cvt implements every rounding mode and saturation (float to int saturates, NaN to 0). The
 * approximate instructions (rsqrt, rcp, sqrt, ex2, lg2, sin, cos, tanh .approx; div.approx and div.full) are computed
 * in double and rounded: within 1 ulp of the exact value, where a GPU is within about 2 ulp (or 2^-20.9 absolute for
 * sin/cos), so their results can differ from a GPU's in the last bits.
 *
 * <h2>Instruction families</h2>
 * mov (incl. vector pack/unpack, special registers, symbol addresses), add/sub/mul(.lo/.hi/.wide)/mad(.lo/.hi/.wide)/
 * div/rem/min/max/abs/neg for integers; and/or/xor/not/cnot/shl/shr/bfe/bfi/popc/clz/brev/bfind/prmt (default mode)/sad/
 * shf/lop3; add/sub/mul/fma/mad/div/sqrt/rsqrt/rcp/ex2/lg2/sin/cos/tanh/min/max/abs/neg/copysign/testp for f32 and f64;
 * setp (all comparisons incl. unordered, .and/.or/.xor with negated predicate, two destinations), set, selp; cvt
 * between all integer and float types, .f16 and .bf16 included (each rounding mode, rounded once from the exact source;
 * the pair forms cvt.rn.f16x2/.bf16x2.f32 d, a, b put a in the upper half; a 16-bit NaN widens to the canonical NaN
 * 0x7FFFFFFF and any NaN narrows to 0x7FFF, as NVIDIA's conversions do; 16-bit values otherwise live in .b16 registers
 * and move through mov/ld/st as raw bits, and inline-asm blocks may declare scoped registers without %); cvta, cvta.to,
 * isspacep; ld/ldu/st on global, shared, local,
 * param, const and generic addresses, scalar and .v2/.v4, with .nc/.volatile/.relaxed/.acquire/.release/cache hints;
 * atom and red (add incl. .f32/.f64, min, max, inc, dec, cas, exch, and, or, xor) on global and shared; membar/fence
 * (their scope and the accesses' .nc/.cg/.volatile/.relaxed/.acquire/.release qualifiers feed the ordering check);
 * bar.sync/barrier.sync (ids, thread counts), bar.red (popc/and/or), bar.warp.sync; shfl.sync (up/down/bfly/idx with
 * clamp and segment mask), vote (all/any/uni/ballot), match.any/.all, activemask; %clock/%clock64; bra, ret, exit, trap, nanosleep,
 * prefetch; call to .func (non-recursive, direct; linked into one code array, parameters through per-thread call frames).
 * Not implemented (fail when executed): indirect calls and external functions (vprintf), add.cc/addc/madc, mul24/mad24, redux,
 * bar.arrive, f16/bf16 arithmetic (add/mul/fma/... .f16, .f16x2, .bf16, .bf16x2), cvt with .relu/.satfinite/.rs, 128-bit and .v8 accesses, texture/surface, tensor-core instructions.
 */
package io.github.batchnorm4j.ptx;
