package io.github.batchnorm4j;

import java.util.List;
import java.util.function.Supplier;

/**
 * What a library user does, run by {@link LibraryWithoutCliDependenciesTest} in a class loader that has the library and
 * JCuda but not the command line's dependencies: lists the backends, and trains one step of the layer on the CPU and
 * on the emulator. Returns the backends' names and availability, one per line.
 */
public final class LibraryUser implements Supplier<String> {
    @Override
    public String get() {
        StringBuilder out = new StringBuilder();
        for (BackendInfo i : Backends.probeAll()) out.append(i.name()).append(' ').append(i.available()).append('\n');
        Shape shape = Shape.channelsFirst(2, 3, 4, 5);
        float[] x = new float[shape.elementCountAsInt()];
        for (int i = 0; i < x.length; i++) x[i] = (float) Math.sin(i * 0.7) * 2 + i % 3;
        for (String name : List.of("cpu", "emulator")) {
            try (BatchNormOps ops = Backends.open(name)) {
                BatchNorm bn = BatchNorm.builder(3).build(ops);
                float[] y = bn.forward(shape, x);
                float[] dx = bn.backward(shape, x, y);
                if (!Float.isFinite(y[7]) || !Float.isFinite(dx[7])) throw new AssertionError(name + ": not finite");
            }
        }
        return out.toString();
    }
}
