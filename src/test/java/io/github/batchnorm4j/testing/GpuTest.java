package io.github.batchnorm4j.testing;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.extension.ExtendWith;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Marks a test class (or method) that needs a real NVIDIA GPU, and cuDNN when {@link #cudnn()} is set. Tagged
 * {@value #TAG} ({@code mvn -B test -Dgroups=gpu} runs only these on a GPU machine); where the probe finds no usable
 * device the tests are skipped with the probe's reason, which {@link SkippedTestsReport} prints in the test output.
 */
@Target({ElementType.TYPE, ElementType.METHOD})
@Retention(RetentionPolicy.RUNTIME)
@Tag(GpuTest.TAG)
@ExtendWith(RequiresGpu.class)
public @interface GpuTest {
    /** The tag of the GPU-only tests. */
    String TAG = "gpu";

    /** Whether cuDNN is needed too (else CUDA alone). */
    boolean cudnn() default false;
}
