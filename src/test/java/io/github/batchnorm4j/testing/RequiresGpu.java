package io.github.batchnorm4j.testing;

import io.github.batchnorm4j.cuda.CudaProbe;
import io.github.batchnorm4j.cudnn.CudnnProbe;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.platform.commons.support.AnnotationSupport;

import java.util.Optional;

/**
 * The condition behind {@link GpuTest}: enabled where the CUDA probe (and, for {@code cudnn = true}, the cuDNN probe)
 * finds a usable device, else disabled with the probe's one-line reason. Probes once per JVM.
 */
final class RequiresGpu implements ExecutionCondition {
    private static final class Probes {
        static final CudaProbe.Result CUDA = probe(false);
        static final CudaProbe.Result CUDNN = probe(true);

        private static CudaProbe.Result probe(boolean cudnn) {
            try {
                return cudnn ? CudnnProbe.probe() : CudaProbe.probe();
            } catch (RuntimeException | LinkageError e) {
                return new CudaProbe.Result(false, "probe failed: " + e);
            }
        }
    }

    @Override
    public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
        Optional<GpuTest> gpu = AnnotationSupport.findAnnotation(context.getElement(), GpuTest.class);
        if (gpu.isEmpty()) return ConditionEvaluationResult.enabled("no @GpuTest here");
        CudaProbe.Result r = gpu.get().cudnn() ? Probes.CUDNN : Probes.CUDA;
        return r.available() ? ConditionEvaluationResult.enabled("GPU: " + r.detail())
                : ConditionEvaluationResult.disabled((gpu.get().cudnn() ? "no cuDNN: " : "no GPU: ") + r.detail());
    }
}
