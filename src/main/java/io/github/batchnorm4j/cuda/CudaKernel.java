package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Kernel;
import io.github.batchnorm4j.gpu.KernelResources;
import jcuda.driver.CUfunction;

/** An entry point of a {@link CudaModule}, with its PTX parameter list (null when the PTX text could not be read). */
final class CudaKernel implements Kernel {
    private final CudaModule module;
    private final String name;
    private final CUfunction function;
    private final PtxSignatures.Entry signature;
    /** The largest dynamic shared size the function has been opted in to (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES). */
    int optedInSharedBytes;

    CudaKernel(CudaModule module, String name, CUfunction function, PtxSignatures.Entry signature) {
        this.module = module;
        this.name = name;
        this.function = function;
        this.signature = signature;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public DeviceModule module() {
        return module;
    }

    @Override
    public KernelResources resources() {
        return module.device().resources(this);
    }

    CudaModule cudaModule() {
        return module;
    }

    CUfunction function() {
        return function;
    }

    PtxSignatures.Entry signature() {
        return signature;
    }

    @Override
    public String toString() {
        return module.name() + ":" + name;
    }
}
