package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.gpu.DevicePointer;
import io.github.batchnorm4j.gpu.DeviceStream;
import jcuda.jcudnn.cudnnHandle;
import jcuda.jcudnn.cudnnTensorDescriptor;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * cuDNN without a GPU: records every call with its arguments, and executes the three batch-norm calls in double on
 * {@link HostDevice} memory, addressing elements through the descriptor's dims and strides exactly as cuDNN does
 * (so a wrong stride or a swapped pointer gives wrong numbers). Any call can be made to fail with a chosen status.
 */
final class FakeCudnnApi implements CudnnApi {
    static final int BAD_PARAM = 2000; // cuDNN 9's CUDNN_STATUS_BAD_PARAM
    static final int NOT_SUPPORTED = 3000; // cuDNN 9's CUDNN_STATUS_NOT_SUPPORTED

    /** Data types this "cuDNN" refuses in tensor descriptors, as cuDNN before 8.1 or before Ampere does bfloat16. */
    final java.util.Set<Integer> refusedDataTypes = new java.util.HashSet<>();

    record Call(String name, Map<String, Object> args) {
    }

    final HostDevice device;
    final List<Call> calls = new ArrayList<>();
    final Map<String, Integer> failures = new HashMap<>();
    final Map<cudnnTensorDescriptor, int[]> descriptors = new IdentityHashMap<>(); // dataType, n,c,h,w, 4 strides
    final Map<cudnnTensorDescriptor, Integer> derivedMode = new IdentityHashMap<>();
    int liveDescriptors;
    int liveHandles;
    long version = 90100;

    FakeCudnnApi(HostDevice device) {
        this.device = device;
    }

    private int call(String name, Object... kv) {
        Map<String, Object> args = new HashMap<>();
        for (int i = 0; i < kv.length; i += 2) args.put((String) kv[i], kv[i + 1]);
        calls.add(new Call(name, args));
        Integer f = failures.get(name);
        return f == null ? 0 : f;
    }

    List<Call> calls(String name) {
        return calls.stream().filter(c -> c.name().equals(name)).toList();
    }

    @Override public long getVersion() { return version; }

    @Override public String getErrorString(int status) {
        return status == BAD_PARAM ? "CUDNN_STATUS_BAD_PARAM" : status == NOT_SUPPORTED ? "CUDNN_STATUS_NOT_SUPPORTED"
                : "CUDNN_STATUS_" + status;
    }

    @Override public int create(cudnnHandle h) {
        int r = call("cudnnCreate");
        if (r == 0) liveHandles++;
        return r;
    }

    @Override public int destroy(cudnnHandle h) {
        liveHandles--;
        return call("cudnnDestroy");
    }

    @Override public int setStream(cudnnHandle h, DeviceStream s) { return call("cudnnSetStream", "stream", s); }

    @Override public int createTensorDescriptor(cudnnTensorDescriptor d) {
        int r = call("cudnnCreateTensorDescriptor");
        if (r == 0) liveDescriptors++;
        return r;
    }

    @Override public int destroyTensorDescriptor(cudnnTensorDescriptor d) {
        liveDescriptors--;
        return call("cudnnDestroyTensorDescriptor");
    }

    @Override public int setTensor4dDescriptorEx(cudnnTensorDescriptor d, int dataType, int n, int c, int h, int w,
                                                 int ns, int cs, int hs, int ws) {
        descriptors.put(d, new int[] {dataType, n, c, h, w, ns, cs, hs, ws});
        int status = call("cudnnSetTensor4dDescriptorEx", "desc", d, "layout",
                new TensorLayout4d(n, c, h, w, ns, cs, hs, ws), "dataType", dataType);
        return status == 0 && refusedDataTypes.contains(dataType) ? NOT_SUPPORTED : status;
    }

    @Override public int deriveBNTensorDescriptor(cudnnTensorDescriptor derived, cudnnTensorDescriptor x, int mode) {
        int[] xd = descriptors.get(x);
        // half and bfloat16 data have float scale, bias, means and variances (cuDNN's rule)
        descriptors.put(derived, new int[] {0, 1, xd[2], 1, 1, xd[2], 1, 1, 1});
        derivedMode.put(derived, mode);
        return call("cudnnDeriveBNTensorDescriptor", "derived", derived, "x", x, "mode", mode);
    }

    /** Element offsets (in floats) of channel c, in n, h, w order. */
    private long[] offsets(cudnnTensorDescriptor d, int c) {
        int[] t = descriptors.get(d);
        long[] out = new long[t[1] * t[3] * t[4]];
        int i = 0;
        for (int n = 0; n < t[1]; n++)
            for (int h = 0; h < t[3]; h++)
                for (int w = 0; w < t[4]; w++) out[i++] = (long) n * t[5] + (long) c * t[6] + (long) h * t[7] + (long) w * t[8];
        return out;
    }

    /** Element {@code o} of a tensor of descriptor {@code d}: float, or half / bfloat16 widened exactly. */
    private double get(cudnnTensorDescriptor d, DevicePointer p, long o) {
        io.github.batchnorm4j.DType t = dtype(d);
        return t == io.github.batchnorm4j.DType.FLOAT32 ? device.get(p, o) : device.get16(p, o, t);
    }

    /** Stores a result as cuDNN does: computed wider, rounded once to the tensor's type. */
    private void set(cudnnTensorDescriptor d, DevicePointer p, long o, double v) {
        io.github.batchnorm4j.DType t = dtype(d);
        if (t == io.github.batchnorm4j.DType.FLOAT32) device.set(p, o, (float) v);
        else device.set16(p, o, (float) v, t);
    }

    private io.github.batchnorm4j.DType dtype(cudnnTensorDescriptor d) {
        return switch (descriptors.get(d)[0]) {
            case 2 -> io.github.batchnorm4j.DType.FLOAT16;
            case 9 -> io.github.batchnorm4j.DType.BFLOAT16;
            default -> io.github.batchnorm4j.DType.FLOAT32;
        };
    }

    private int channels(cudnnTensorDescriptor d) {
        return descriptors.get(d)[2];
    }

    @Override
    public int batchNormalizationForwardTraining(cudnnHandle handle, int mode, float alpha, float beta,
                                                 cudnnTensorDescriptor xDesc, DevicePointer x,
                                                 cudnnTensorDescriptor yDesc, DevicePointer y,
                                                 cudnnTensorDescriptor bnDesc, DevicePointer scale, DevicePointer bias,
                                                 double factor, DevicePointer runMean, DevicePointer runVar,
                                                 double eps, DevicePointer saveMean, DevicePointer saveInvVar) {
        int r = call("cudnnBatchNormalizationForwardTraining", "mode", mode, "alpha", alpha, "beta", beta,
                "xDesc", xDesc, "x", x, "yDesc", yDesc, "y", y, "bnDesc", bnDesc, "scale", scale, "bias", bias,
                "factor", factor, "runMean", runMean, "runVar", runVar, "eps", eps, "saveMean", saveMean,
                "saveInvVar", saveInvVar);
        if (r != 0) return r;
        for (int c = 0; c < channels(xDesc); c++) {
            long[] xo = offsets(xDesc, c);
            long[] yo = offsets(yDesc, c);
            double sum = 0;
            for (long o : xo) sum += get(xDesc, x, o);
            double mean = sum / xo.length;
            double m2 = 0;
            for (long o : xo) m2 += (get(xDesc, x, o) - mean) * (get(xDesc, x, o) - mean);
            double invstd = 1 / Math.sqrt(m2 / xo.length + eps);
            double g = device.get(scale, c);
            double b = device.get(bias, c);
            for (int i = 0; i < xo.length; i++) {
                double v = alpha * ((get(xDesc, x, xo[i]) - mean) * invstd * g + b);
                if (beta != 0) v += beta * get(yDesc, y, yo[i]);
                set(yDesc, y, yo[i], v);
            }
            device.set(runMean, c, (float) ((1 - factor) * device.get(runMean, c) + factor * mean));
            device.set(runVar, c, (float) ((1 - factor) * device.get(runVar, c) + factor * m2 / (xo.length - 1)));
            device.set(saveMean, c, (float) mean);
            device.set(saveInvVar, c, (float) invstd);
        }
        return 0;
    }

    @Override
    public int batchNormalizationForwardInference(cudnnHandle handle, int mode, float alpha, float beta,
                                                  cudnnTensorDescriptor xDesc, DevicePointer x,
                                                  cudnnTensorDescriptor yDesc, DevicePointer y,
                                                  cudnnTensorDescriptor bnDesc, DevicePointer scale, DevicePointer bias,
                                                  DevicePointer estMean, DevicePointer estVar, double eps) {
        int r = call("cudnnBatchNormalizationForwardInference", "mode", mode, "alpha", alpha, "beta", beta,
                "xDesc", xDesc, "x", x, "yDesc", yDesc, "y", y, "bnDesc", bnDesc, "scale", scale, "bias", bias,
                "estMean", estMean, "estVar", estVar, "eps", eps);
        if (r != 0) return r;
        for (int c = 0; c < channels(xDesc); c++) {
            long[] xo = offsets(xDesc, c);
            long[] yo = offsets(yDesc, c);
            double invstd = 1 / Math.sqrt(device.get(estVar, c) + eps);
            for (int i = 0; i < xo.length; i++) {
                double v = (get(xDesc, x, xo[i]) - device.get(estMean, c)) * invstd * device.get(scale, c)
                        + device.get(bias, c);
                set(yDesc, y, yo[i], alpha * v);
            }
        }
        return 0;
    }

    @Override
    public int batchNormalizationBackward(cudnnHandle handle, int mode, float alphaData, float betaData,
                                          float alphaParam, float betaParam, cudnnTensorDescriptor xDesc,
                                          DevicePointer x, cudnnTensorDescriptor dyDesc, DevicePointer dy,
                                          cudnnTensorDescriptor dxDesc, DevicePointer dx,
                                          cudnnTensorDescriptor bnDesc, DevicePointer scale, DevicePointer dScale,
                                          DevicePointer dBias, double eps, DevicePointer savedMean,
                                          DevicePointer savedInvVar) {
        int r = call("cudnnBatchNormalizationBackward", "mode", mode, "alphaData", alphaData, "betaData", betaData,
                "alphaParam", alphaParam, "betaParam", betaParam, "xDesc", xDesc, "x", x, "dyDesc", dyDesc, "dy", dy,
                "dxDesc", dxDesc, "dx", dx, "bnDesc", bnDesc, "scale", scale, "dScale", dScale, "dBias", dBias,
                "eps", eps, "savedMean", savedMean, "savedInvVar", savedInvVar);
        if (r != 0) return r;
        for (int c = 0; c < channels(xDesc); c++) {
            long[] xo = offsets(xDesc, c);
            long[] dyo = offsets(dyDesc, c);
            long[] dxo = offsets(dxDesc, c);
            double mean = device.get(savedMean, c);
            double invstd = device.get(savedInvVar, c);
            double sdy = 0;
            double sdyx = 0;
            for (int i = 0; i < xo.length; i++) {
                double g = get(dyDesc, dy, dyo[i]);
                sdy += g;
                sdyx += g * (get(xDesc, x, xo[i]) - mean) * invstd;
            }
            int m = xo.length;
            double k = device.get(scale, c) * invstd / m;
            for (int i = 0; i < xo.length; i++) {
                double xhat = (get(xDesc, x, xo[i]) - mean) * invstd;
                set(dxDesc, dx, dxo[i], alphaData * k * (m * get(dyDesc, dy, dyo[i]) - sdy - xhat * sdyx));
            }
            device.set(dScale, c, (float) (alphaParam * sdyx));
            device.set(dBias, c, (float) (alphaParam * sdy));
        }
        return 0;
    }
}
