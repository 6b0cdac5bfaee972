package io.github.batchnorm4j.gpu;

import io.github.batchnorm4j.Shape;
import io.github.batchnorm4j.ptx.EmulatedDevice;
import io.github.batchnorm4j.ptx.EmulatorOptions;
import io.github.batchnorm4j.testing.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static io.github.batchnorm4j.testing.Messages.assertMentions;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * In-place operation on device buffers (y = x, dx = dy), as {@link DeviceResidentBatchNorm} documents it: the same bits
 * as out of place, on every kernel path, with the emulator's .nc check on; the old bn_dx PTX (dy declared
 * {@code const __restrict__}, so read with {@code ld.global.nc}) is caught in place; and partial overlaps between
 * arguments are refused before anything runs.
 */
class EmulatorInPlaceTest {
    private static final double EPS = 1e-5;

    /** Shapes reaching the four elementwise kernels: channels-first view and rows view, float4 and scalar. */
    static Stream<Object[]> paths() {
        return Stream.of(new Object[]{Shape.channelsFirst(2, 3, 16, 16), 0}, new Object[]{Shape.channelsFirst(2, 3, 16, 16), 4},
                new Object[]{Shape.channelsLast(4, 9, 9, 8), 0}, new Object[]{Shape.channelsLast(4, 9, 9, 8), 4});
    }

    /** dx of a training backward, out of place and with dx = dy, as raw bits. */
    private static int[][] backward(Shape shape, int skew, UnaryOperatorPtx ptx, boolean alsoOutOfPlace) {
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        SplittableRandom rng = TestData.random(shape.elementCount() + skew);
        float[] x = TestData.perChannelNormal(rng, shape);
        float[] dy = TestData.normal(rng, n, 0, 1);
        float[] gamma = TestData.uniform(rng, c, 0.5, 1.5);
        float[] mean = TestData.normal(rng, c, 0, 1);
        float[] invstd = TestData.uniform(rng, c, 0.5, 2);
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults());
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev, ptx::of);
             DeviceBuffer bx = dev.allocate(4L * n + 16); DeviceBuffer bdy = dev.allocate(4L * n + 16);
             DeviceBuffer bdx = dev.allocate(4L * n + 16); DeviceBuffer ch = dev.allocate(4L * 256 * 8)) {
            DeviceStream s = dev.defaultStream();
            DevicePointer px = bx.at(skew), pdy = bdy.at(skew), pdx = bdx.at(skew);
            DevicePointer[] cv = new DevicePointer[7];
            for (int i = 0; i < cv.length; i++) cv[i] = ch.at(1024L * i + skew);
            dev.copyToDevice(x, 0, px, n, s);
            dev.copyToDevice(gamma, 0, cv[0], c, s);
            dev.copyToDevice(mean, 0, cv[1], c, s);
            dev.copyToDevice(invstd, 0, cv[2], c, s);
            int[][] out = new int[2][];
            if (alsoOutOfPlace) {
                dev.copyToDevice(dy, 0, pdy, n, s);
                dev.copyToDevice(TestData.poisoned(n), 0, pdx, n, s);
                bn.backwardTraining(shape, px, pdy, cv[0], cv[1], cv[2], pdx, cv[3], cv[4], s);
                out[0] = bits(dev, pdx, n);
            }
            dev.copyToDevice(dy, 0, pdy, n, s);
            bn.backwardTraining(shape, px, pdy, cv[0], cv[1], cv[2], pdy, cv[5], cv[6], s);   // dx = dy
            out[1] = bits(dev, pdy, n);
            return out;
        }
    }

    private static int[] bits(Device dev, DevicePointer p, int n) {
        float[] f = TestData.poisoned(n);
        dev.copyToHost(p, f, 0, n, dev.defaultStream());
        int[] b = new int[n];
        for (int i = 0; i < n; i++) b[i] = Float.floatToRawIntBits(f[i]);
        return b;
    }

    /** The PTX text of a module, by name. */
    @FunctionalInterface
    interface UnaryOperatorPtx {
        String of(String module);
    }

    @ParameterizedTest(name = "{0} skew {1}")
    @MethodSource("paths")
    void backwardInPlaceGivesTheSameBitsAsOutOfPlace(Shape shape, int skew) {
        int[][] r = backward(shape, skew, PtxModules::read, true);
        assertArrayEquals(r[0], r[1], "dx = dy must give the bits of a separate dx");
    }

    private static final Pattern ENTRY = Pattern.compile("^\\.visible \\.entry (\\w+)\\(");

    /**
     * The shipped backward module with every plain global load of the bn_dx kernels turned into ld.global.nc: what
     * nvcc emitted while dy was declared {@code const __restrict__}.
     */
    static String restrictDy(String module) {
        String ptx = PtxModules.read(module);
        if (!module.equals(PtxModules.BACKWARD)) return ptx;
        StringBuilder out = new StringBuilder();
        boolean dx = false;
        for (String line : ptx.split("\n", -1)) {
            Matcher e = ENTRY.matcher(line);
            if (e.find()) dx = e.group(1).startsWith("bn_dx");
            if (dx) line = line.replace("ld.global.f32", "ld.global.nc.f32").replace("ld.global.v4.f32", "ld.global.nc.v4.f32");
            out.append(line).append('\n');
        }
        return out.toString();
    }

    @ParameterizedTest(name = "{0} skew {1}")
    @MethodSource("paths")
    void inPlaceOnRestrictDyIsCaughtByTheNonCoherentCheck(Shape shape, int skew) {
        DeviceException e = assertThrows(DeviceException.class,
                () -> backward(shape, skew, EmulatorInPlaceTest::restrictDy, false));
        assertMentions(e.getMessage(), "kernel bn_dx_", "(module batchnorm_backward.ptx) line ", "st.global",
                "write to global address 0x", "read through the non-coherent path (ld.global.nc; first at line ",
                "block (", "thread (");
    }

    @Test
    void forwardInPlaceGivesTheSameBitsAsOutOfPlace() {
        Shape shape = Shape.channelsFirst(2, 3, 16, 16);
        int n = shape.elementCountAsInt();
        int c = shape.channels();
        SplittableRandom rng = TestData.random(41);
        float[] x = TestData.perChannelNormal(rng, shape);
        try (EmulatedDevice dev = new EmulatedDevice(EmulatorOptions.defaults());
             DeviceResidentBatchNorm bn = new DeviceResidentBatchNorm(dev);
             DeviceBuffer bx = dev.allocate(4L * n); DeviceBuffer by = dev.allocate(4L * n);
             DeviceBuffer ch = dev.allocate(4L * 256 * 4)) {
            DeviceStream s = dev.defaultStream();
            dev.copyToDevice(x, 0, bx.pointer(), n, s);
            bn.forwardTraining(shape, bx.pointer(), null, null, EPS, null, null, 0.1, by.pointer(), ch.at(0),
                    ch.at(1024), s);
            int[] separate = bits(dev, by.pointer(), n);
            bn.forwardTraining(shape, bx.pointer(), null, null, EPS, null, null, 0.1, bx.pointer(), ch.at(2048),
                    ch.at(3072), s);   // y = x
            assertArrayEquals(separate, bits(dev, bx.pointer(), n), "y = x must give the bits of a separate y");
        }
    }
}
