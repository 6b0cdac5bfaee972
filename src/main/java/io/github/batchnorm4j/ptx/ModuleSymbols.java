package io.github.batchnorm4j.ptx;

/**
 * Places module-level {@code .global} and {@code .const} variables in device memory while a module is parsed, so that
 * instructions naming them decode to fixed addresses.
 */
interface ModuleSymbols {

    /**
     * Allocates a module variable and returns its generic address.
     *
     * @param name  the variable name (for messages)
     * @param bytes its size
     * @param init  its initial bytes (zeros when the PTX gives no initializer)
     */
    long allocate(String name, long bytes, byte[] init);

    /** For parsing alone: hands out increasing fake addresses. */
    ModuleSymbols NONE = new ModuleSymbols() {
        private long next = 0x7000_0000_0000L;

        @Override
        public long allocate(String name, long bytes, byte[] init) {
            long a = next;
            next += (bytes + 511) & ~255L;
            return a;
        }
    };
}
