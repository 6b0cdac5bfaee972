package io.github.batchnorm4j.ptx;

import io.github.batchnorm4j.gpu.Architecture;

/**
 * Settings of an {@link EmulatedDevice}: which checks run, the order blocks execute in, and the reported device size.
 * Immutable; the {@code withX} methods return modified copies. All checks are on by default; switching them off makes
 * a benchmark run faster but lets the bugs they catch pass silently.
 *
 * @param memoryCheck      out-of-bounds and misaligned global/shared/local/param accesses
 * @param initCheck        reads of global memory never written since allocation
 * @param raceCheck        shared-memory data races between barriers (threads of different warps)
 * @param syncCheck        warp-synchronous instructions (shfl/vote/bar.warp.sync) whose member mask names lanes that
 *                         are not converged at that instruction
 * @param orderCheck       the memory-ordering model ({@link MemoryOrder}): reads of global bytes another block wrote in
 *                         the same launch without a fence/atomic/fence chain or with a load that may hit a stale L1
 *                         line, .nc reads of bytes written in the launch, stores to bytes read through .nc, and
 *                         regions declared zero between launches ({@link EmulatedDevice#declareSelfResetting}) left
 *                         non-zero
 * @param shuffleBlocks    run blocks in a pseudo-random order drawn from {@code blockOrderSeed}; false runs them in
 *                         linear block-index order
 * @param blockOrderSeed   seed of the block order
 * @param multiprocessorCount the SM count the device reports (132, an H100 SXM, by default)
 * @param throwOnLeak      {@link EmulatedDevice#close()} throws a DeviceException listing buffers still open; when
 *                         false it only records them ({@link EmulatedDevice#leakReport()})
 * @param maxBlockInstructions thread-instructions one block may execute before the launch fails as a hang (an
 *                         endless loop, or a spin-wait on another block, which can never finish here because blocks
 *                         run one at a time); 2^34 by default
 * @param architecture     the GPU the device behaves as: its per-SM limits ({@link Architecture}) and the ptxas target
 *                         that says how many registers each kernel needs, so that occupancy, grid sizes and refused
 *                         launches are those of that GPU (sm_90, an H100, by default)
 */
public record EmulatorOptions(boolean memoryCheck, boolean initCheck, boolean raceCheck, boolean syncCheck,
                              boolean orderCheck, boolean shuffleBlocks, long blockOrderSeed, int multiprocessorCount,
                              boolean throwOnLeak, long maxBlockInstructions, Architecture architecture) {

    public EmulatorOptions {
        if (maxBlockInstructions < 1) {
            throw new IllegalArgumentException("maxBlockInstructions must be >= 1, got " + maxBlockInstructions);
        }
        if (multiprocessorCount < 1) {
            throw new IllegalArgumentException("multiprocessorCount must be >= 1, got " + multiprocessorCount);
        }
        if (architecture == null) throw new IllegalArgumentException("architecture must not be null");
    }

    /** Every check on, blocks shuffled with seed 1, an H100 SXM (sm_90, 132 SMs), leaks thrown at close. */
    public static EmulatorOptions defaults() {
        return new EmulatorOptions(true, true, true, true, true, true, 1L, 132, true, 1L << 34, Architecture.SM_90);
    }

    /** All checks off (for benchmarks). */
    public EmulatorOptions withoutChecks() {
        return new EmulatorOptions(false, false, false, false, false, shuffleBlocks, blockOrderSeed, multiprocessorCount,
                throwOnLeak, maxBlockInstructions, architecture);
    }

    public EmulatorOptions withMemoryCheck(boolean on) {
        return new EmulatorOptions(on, initCheck, raceCheck, syncCheck, orderCheck, shuffleBlocks, blockOrderSeed,
                multiprocessorCount, throwOnLeak, maxBlockInstructions, architecture);
    }

    public EmulatorOptions withInitCheck(boolean on) {
        return new EmulatorOptions(memoryCheck, on, raceCheck, syncCheck, orderCheck, shuffleBlocks, blockOrderSeed,
                multiprocessorCount, throwOnLeak, maxBlockInstructions, architecture);
    }

    public EmulatorOptions withOrderCheck(boolean on) {
        return new EmulatorOptions(memoryCheck, initCheck, raceCheck, syncCheck, on, shuffleBlocks, blockOrderSeed,
                multiprocessorCount, throwOnLeak, maxBlockInstructions, architecture);
    }

    public EmulatorOptions withRaceCheck(boolean on) {
        return new EmulatorOptions(memoryCheck, initCheck, on, syncCheck, orderCheck, shuffleBlocks, blockOrderSeed,
                multiprocessorCount, throwOnLeak, maxBlockInstructions, architecture);
    }

    /** Blocks in a shuffled order from this seed. */
    public EmulatorOptions withBlockOrderSeed(long seed) {
        return new EmulatorOptions(memoryCheck, initCheck, raceCheck, syncCheck, orderCheck, true, seed, multiprocessorCount,
                throwOnLeak, maxBlockInstructions, architecture);
    }

    /** Blocks in linear index order. */
    public EmulatorOptions withSequentialBlocks() {
        return new EmulatorOptions(memoryCheck, initCheck, raceCheck, syncCheck, orderCheck, false, blockOrderSeed,
                multiprocessorCount, throwOnLeak, maxBlockInstructions, architecture);
    }

    public EmulatorOptions withMultiprocessorCount(int sms) {
        return new EmulatorOptions(memoryCheck, initCheck, raceCheck, syncCheck, orderCheck, shuffleBlocks, blockOrderSeed, sms,
                throwOnLeak, maxBlockInstructions, architecture);
    }

    public EmulatorOptions withMaxBlockInstructions(long max) {
        return new EmulatorOptions(memoryCheck, initCheck, raceCheck, syncCheck, orderCheck, shuffleBlocks, blockOrderSeed,
                multiprocessorCount, throwOnLeak, max, architecture);
    }

    /** Behave as a GPU of {@code arch} (per-SM limits, registers from ptxas for that target). */
    public EmulatorOptions withArchitecture(Architecture arch) {
        return new EmulatorOptions(memoryCheck, initCheck, raceCheck, syncCheck, orderCheck, shuffleBlocks, blockOrderSeed,
                multiprocessorCount, throwOnLeak, maxBlockInstructions, arch);
    }

    public EmulatorOptions withThrowOnLeak(boolean on) {
        return new EmulatorOptions(memoryCheck, initCheck, raceCheck, syncCheck, orderCheck, shuffleBlocks, blockOrderSeed,
                multiprocessorCount, on, maxBlockInstructions, architecture);
    }
}
