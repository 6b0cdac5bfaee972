package io.github.batchnorm4j.cuda;

import io.github.batchnorm4j.gpu.DeviceModule;
import io.github.batchnorm4j.gpu.Kernel;
import jcuda.driver.CUmodule;

import java.util.HashMap;
import java.util.Map;

/** A PTX module loaded with cuModuleLoadData; kernels are looked up once and cached. */
final class CudaModule implements DeviceModule {
    private final CudaDevice device;
    private final String name;
    private final CUmodule module;
    private final Map<String, PtxSignatures.Entry> signatures;
    private final Map<String, CudaKernel> kernels = new HashMap<>();
    private boolean closed;

    CudaModule(CudaDevice device, String name, CUmodule module, Map<String, PtxSignatures.Entry> signatures) {
        this.device = device;
        this.name = name;
        this.module = module;
        this.signatures = signatures;
    }

    @Override
    public String name() {
        return name;
    }

    CudaDevice device() {
        return device;
    }

    synchronized void checkOpen() {
        if (closed) throw new IllegalStateException("module " + name + " is closed");
    }

    @Override
    public synchronized Kernel kernel(String entryName) {
        checkOpen();
        CudaKernel k = kernels.get(entryName);
        if (k == null) {
            k = new CudaKernel(this, entryName, device.getFunction(module, name, entryName), signatures.get(entryName));
            kernels.put(entryName, k);
        }
        return k;
    }

    @Override
    public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        device.unloadModule(module, name);
    }
}
