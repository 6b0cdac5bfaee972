// block_order: each block's thread 0 takes a ticket from a global counter and writes it to order[blockIdx.x];
// the tickets show the order blocks ran in (the emulator shuffles it by seed; a GPU runs them concurrently).
extern "C" __global__ void block_order(unsigned int* counter, unsigned int* order) {
    if (threadIdx.x == 0) order[blockIdx.x] = atomicAdd(counter, 1u);
}
