// Writes the expected occupancy of many launch configurations, computed by NVIDIA's own occupancy calculator
// (cuda_occupancy.h of the CUDA toolkit, host-only code), for OccupancyTest to compare gpu/Occupancy with.
//
//   g++ -O1 -I/usr/local/cuda/include src/test/cuda/occupancy_table.cpp -o /tmp/occupancy_table \
//     && /tmp/occupancy_table > src/test/resources/occupancy/cuda_occupancy_table.tsv
//
// Device properties are those of gpu/Architecture (the CUDA C++ Programming Guide's per-compute-capability table);
// cases are drawn with a fixed seed so the file is reproducible.
#include <cstdio>
#include <cstdint>
#include <cuda_occupancy.h>

struct Arch { int major, minor, threadsPerSm, sharedPerSmKiB, optinKiB, reserved; };

static const Arch ARCHS[] = {
    {7, 5, 1024, 64, 64, 0},
    {8, 0, 2048, 164, 163, 1024},
    {8, 6, 1536, 100, 99, 1024},
    {8, 9, 1536, 100, 99, 1024},
    {9, 0, 2048, 228, 227, 1024},
};

static uint64_t state = 20260101;
static uint32_t next(uint32_t n) {  // xorshift64*, uniform enough for picking cases
    state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
    return (uint32_t) ((state * 2685821657736338717ULL) >> 33) % n;
}

int main() {
    const int blocks[] = {32, 64, 96, 128, 160, 192, 256, 288, 384, 512, 640, 768, 1024};
    const int regs[] = {0, 16, 24, 32, 40, 46, 57, 64, 72, 74, 96, 128, 168, 224, 255};
    const int statics[] = {0, 400, 4096, 20000};
    const int dynamics[] = {0, 0, 0, 1000, 3000, 30000, 49152, 70000, 100000, 232448};
    std::printf("# arch\tblock_threads\tregisters\tstatic_shared\tdynamic_shared\tblocks_per_sm (cuda_occupancy.h, CUDA 13.0)\n");
    for (const Arch &a : ARCHS) {
        for (int i = 0; i < 160; i++) {
            int bt = blocks[next(13)], r = regs[next(15)], st = statics[next(4)], dyn = dynamics[next(10)];
            cudaOccDeviceProp p;
            p.computeMajor = a.major;
            p.computeMinor = a.minor;
            p.maxThreadsPerBlock = 1024;
            p.maxThreadsPerMultiprocessor = a.threadsPerSm;
            p.regsPerBlock = 65536;
            p.regsPerMultiprocessor = 65536;
            p.warpSize = 32;
            p.sharedMemPerBlock = 48 * 1024;
            p.sharedMemPerMultiprocessor = (size_t) a.sharedPerSmKiB * 1024;
            p.numSms = 1;
            p.sharedMemPerBlockOptin = (size_t) a.optinKiB * 1024;
            p.reservedSharedMemPerBlock = a.reserved;
            cudaOccFuncAttributes f;
            f.maxThreadsPerBlock = 1024;
            f.numRegs = r;
            f.sharedSizeBytes = st;
            // What a launch with this much dynamic shared memory needs: the opt-in above 48 KiB.
            f.shmemLimitConfig = (st + dyn > 48 * 1024) ? FUNC_SHMEM_LIMIT_OPTIN : FUNC_SHMEM_LIMIT_DEFAULT;
            f.maxDynamicSharedSizeBytes = dyn;
            cudaOccDeviceState s;
            cudaOccResult res;
            cudaOccError e = cudaOccMaxActiveBlocksPerMultiprocessor(&res, &p, &f, &s, bt, dyn);
            int out = e == CUDA_OCC_SUCCESS ? res.activeBlocksPerMultiprocessor : -1;
            std::printf("sm_%d%d\t%d\t%d\t%d\t%d\t%d\n", a.major, a.minor, bt, r, st, dyn, out);
        }
    }
    return 0;
}
