package io.github.batchnorm4j.train;

import io.github.batchnorm4j.SplitBatchNormOps;
import io.github.batchnorm4j.distributed.Collective;
import io.github.batchnorm4j.distributed.SyncBatchNormOps;

import io.github.batchnorm4j.DType;
import java.util.List;

import io.github.batchnorm4j.Backends;
import io.github.batchnorm4j.BatchNormOps;

/**
 * The CPU implementation of {@link TrainBackend}: {@link CpuTensor}s in Java arrays, a multi-threaded Java GEMM
 * ({@link CpuGemm}), elementwise loops, and batch norm through the library's CPU backend
 * ({@code Backends.open("cpu")}) and its {@link io.github.batchnorm4j.BatchNorm} layer.
 *
 * <p>Reductions (softmax sums, bias gradients) accumulate in double. Not thread-safe: one training loop per backend.
 */
public final class CpuTrainBackend implements TrainBackend {
    private final BatchNormOps ops;
    private boolean closed;

    /** Opens the library's CPU batch-norm backend; {@link #close()} closes it. */
    public CpuTrainBackend() {
        this.ops = Backends.open("cpu");
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public Tensor allocate(int rows, int cols, DType dtype) {
        checkOpen();
        return new CpuTensor(rows, cols, dtype);
    }

    @Override
    public void upload(float[] src, Tensor dst) {
        float[] d = data("dst", dst);
        TensorChecks.hostArray("src", src, dst);
        System.arraycopy(src, 0, d, 0, d.length);
        cpu(dst).storeRange(0, d.length);
    }

    @Override
    public void download(Tensor src, float[] dst) {
        float[] s = data("src", src);
        TensorChecks.hostArray("dst", dst, src);
        System.arraycopy(s, 0, dst, 0, s.length);
    }

    @Override
    public void gemm(boolean transA, boolean transB, float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        TensorChecks.GemmDims d = TensorChecks.gemm(transA, transB, a, b, c);
        TensorChecks.sameType("b", b, a);
        CpuGemm.gemm(transA, transB, d.m(), d.n(), d.k(), alpha, data("a", a), data("b", b), beta, data("c", c));
        cpu(c).storeRange(0, c.size());
    }

    @Override
    public void addBias(Tensor x, Tensor bias) {
        TensorChecks.rowVector("bias", bias, x.cols());
        TensorChecks.float32("bias", bias);
        float[] xs = data("x", x), bs = data("bias", bias);
        int cols = x.cols();
        for (int r = 0, rows = x.rows(); r < rows; r++) {
            int o = r * cols;
            for (int j = 0; j < cols; j++) xs[o + j] += bs[j];
        }
        cpu(x).storeRange(0, xs.length);
    }

    @Override
    public void sumRows(Tensor x, Tensor out) {
        TensorChecks.rowVector("out", out, x.cols());
        TensorChecks.float32("out", out);
        float[] xs = data("x", x), os = data("out", out);
        int cols = x.cols();
        double[] acc = new double[cols];
        for (int r = 0, rows = x.rows(); r < rows; r++) {
            int o = r * cols;
            for (int j = 0; j < cols; j++) acc[j] += xs[o + j];
        }
        for (int j = 0; j < cols; j++) os[j] = (float) acc[j];
    }

    @Override
    public void reluForward(Tensor x, Tensor y) {
        TensorChecks.sameShape("y", y, x);
        TensorChecks.sameType("y", y, x);
        float[] xs = data("x", x), ys = data("y", y);
        // Math.max propagates NaN, so a diverged run stays visibly NaN (x > 0 ? x : 0 would hide it as 0).
        for (int i = 0; i < xs.length; i++) ys[i] = Math.max(xs[i], 0f);
    }

    @Override
    public void reluBackward(Tensor y, Tensor dy, Tensor dx) {
        TensorChecks.sameShape("dy", dy, y);
        TensorChecks.sameShape("dx", dx, y);
        TensorChecks.sameType("dx", dx, dy);
        float[] ys = data("y", y), dys = data("dy", dy), dxs = data("dx", dx);
        for (int i = 0; i < ys.length; i++) dxs[i] = ys[i] > 0f ? dys[i] : 0f;
    }

    @Override
    public void cast(Tensor src, Tensor dst) {
        TensorChecks.sameShape("dst", dst, src);
        float[] s = data("src", src), d = data("dst", dst);
        System.arraycopy(s, 0, d, 0, s.length);
        cpu(dst).storeRange(0, d.length);
    }

    @Override
    public double softmaxCrossEntropy(Tensor logits, int[] labels, Tensor dlogits, float gradScale, int meanOver) {
        TensorChecks.sameShape("dlogits", dlogits, logits);
        TensorChecks.labels(labels, logits);
        TensorChecks.meanOver(meanOver, logits);
        float[] z = data("logits", logits), g = data("dlogits", dlogits);
        int rows = logits.rows(), cols = logits.cols();
        double total = 0;
        double invRows = 1.0 / meanOver;
        CpuTensor out = cpu(dlogits);
        for (int r = 0; r < rows; r++) {
            int o = r * cols;
            // Subtract the row maximum so exp never overflows.
            float max = z[o];
            for (int j = 1; j < cols; j++) max = Math.max(max, z[o + j]);
            double sum = 0;
            for (int j = 0; j < cols; j++) sum += Math.exp((double) z[o + j] - max);
            double logSum = Math.log(sum);
            total += logSum - ((double) z[o + labels[r]] - max);
            for (int j = 0; j < cols; j++) {
                double p = Math.exp((double) z[o + j] - max - logSum);
                g[o + j] = out.store((float) ((p - (j == labels[r] ? 1.0 : 0.0)) * invRows) * gradScale);
            }
        }
        return total;
    }

    @Override
    public int countCorrect(Tensor logits, int[] labels) {
        TensorChecks.labels(labels, logits);
        float[] z = data("logits", logits);
        int rows = logits.rows(), cols = logits.cols();
        int correct = 0;
        for (int r = 0; r < rows; r++) {
            int o = r * cols, best = 0;
            for (int j = 1; j < cols; j++) if (z[o + j] > z[o + best]) best = j;
            if (best == labels[r]) correct++;
        }
        return correct;
    }

    @Override
    public void sgdUpdate(Tensor param, Tensor grad, Tensor velocity, float lr, float momentum, float weightDecay) {
        TensorChecks.sameShape("grad", grad, param);
        TensorChecks.sameShape("velocity", velocity, param);
        TensorChecks.float32("param", param);
        TensorChecks.float32("grad", grad);
        float[] p = data("param", param), g = data("grad", grad), v = data("velocity", velocity);
        for (int i = 0; i < p.length; i++) {
            float gi = g[i] + weightDecay * p[i];
            v[i] = momentum * v[i] + gi;
            p[i] -= lr * v[i];
        }
    }

    @Override
    public boolean unscale(List<Tensor> grads, float invScale) {
        boolean finite = true;
        for (Tensor t : grads) {
            TensorChecks.float32("grad", t);
            float[] g = data("grad", t);
            for (int i = 0; i < g.length; i++) {
                g[i] *= invScale;
                if (!Float.isFinite(g[i])) finite = false;
            }
        }
        return finite;
    }

    @Override
    public BatchNormUnit batchNorm(int channels, double eps, double momentum, DType dtype) {
        checkOpen();
        return new CpuBatchNormUnit(ops, channels, eps, momentum, dtype);
    }

    /** Through the collective's host all-gather (each float widened to double, exactly), summed in rank order. */
    @Override
    public void sumAcrossRanks(Tensor t, Collective collective) {
        checkOpen();
        if (collective == null) throw new IllegalArgumentException("collective must not be null");
        TensorChecks.float32("t", t);
        float[] v = data("t", t);
        int n = v.length;
        double[] mine = new double[n];
        for (int i = 0; i < n; i++) mine[i] = v[i];
        double[] all = new double[n * collective.worldSize()];
        collective.allGather(mine, all);
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int r = 0; r < collective.worldSize(); r++) s += all[r * n + i];
            v[i] = (float) s;
        }
        cpu(t).storeRange(0, n);
    }

    @Override
    public BatchNormUnit syncBatchNorm(int channels, double eps, double momentum, Collective collective) {
        checkOpen();
        if (collective == null) throw new IllegalArgumentException("collective must not be null");
        if (!(ops instanceof SplitBatchNormOps split)) {
            throw new IllegalStateException("the CPU backend '" + ops.name() + "' cannot split its batch norm");
        }
        return new CpuBatchNormUnit(new SyncBatchNormOps(split, collective), channels, eps, momentum, DType.FLOAT32);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        ops.close();
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("training backend 'cpu' is closed");
    }

    /** A CPU tensor; a clear error for a tensor of another backend. */
    static CpuTensor cpu(Tensor t) {
        data("tensor", t);
        return (CpuTensor) t;
    }

    /** The array of a CPU tensor; a clear error for a tensor of another backend. */
    static float[] data(String name, Tensor t) {
        if (t == null) throw new IllegalArgumentException(name + " must not be null");
        if (!(t instanceof CpuTensor ct)) {
            throw new IllegalArgumentException(name + ": expected a tensor of the cpu backend, got "
                    + t.getClass().getName());
        }
        return ct.data();
    }
}
