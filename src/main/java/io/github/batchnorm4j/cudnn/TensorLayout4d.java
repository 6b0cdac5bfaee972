package io.github.batchnorm4j.cudnn;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.Shape;

/**
 * How a {@link Shape} is described to cuDNN: a 4-D float tensor (n, c, h, w) with explicit strides, for
 * {@code cudnnSetTensor4dDescriptorEx}. Spatial batch norm reduces over n, h and w, so any spatial rank folds into
 * h·w without changing memory:
 * <ul>
 *   <li>spatial dims S1..Sk: h = S1·…·S(k−1), w = Sk (k ≥ 2); h = S1, w = 1 (k = 1); h = w = 1 (k = 0, plain [N, C]);</li>
 *   <li>channels-first (NCHW memory): strides (c·h·w, h·w, w, 1);</li>
 *   <li>channels-last (NHWC memory): strides (h·w·c, 1, w·c, c).</li>
 * </ul>
 * A 4-D input keeps its own H and W. cuDNN's 4-D descriptors take ints: a shape whose folded sizes or strides do not fit
 * is rejected with the offending value.
 */
record TensorLayout4d(int n, int c, int h, int w, int nStride, int cStride, int hStride, int wStride) {

    static TensorLayout4d of(Shape shape) {
        long[] d = shape.dims();
        int k = d.length - 2;
        long[] spatial = new long[k];
        System.arraycopy(d, shape.layout() == Layout.CHANNELS_FIRST ? 2 : 1, spatial, 0, k);
        long h = 1;
        long w = 1;
        if (k == 1) {
            h = spatial[0];
        } else if (k >= 2) {
            for (int i = 0; i < k - 1; i++) h *= spatial[i];
            w = spatial[k - 1];
        }
        long n = shape.batch();
        long c = shape.channels();
        long hw = h * w;
        if (shape.layout() == Layout.CHANNELS_FIRST) {
            return new TensorLayout4d(fit("n", n, shape), fit("c", c, shape), fit("h", h, shape), fit("w", w, shape),
                    fit("nStride", c * hw, shape), fit("cStride", hw, shape), fit("hStride", w, shape), 1);
        }
        return new TensorLayout4d(fit("n", n, shape), fit("c", c, shape), fit("h", h, shape), fit("w", w, shape),
                fit("nStride", hw * c, shape), 1, fit("hStride", w * c, shape), fit("wStride", c, shape));
    }

    private static int fit(String what, long v, Shape shape) {
        if (v > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("shape " + shape + " is too large for cuDNN's 4-D tensor descriptor: "
                    + what + " = " + v + " exceeds " + Integer.MAX_VALUE);
        }
        return (int) v;
    }
}
