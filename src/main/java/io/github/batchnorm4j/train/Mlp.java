package io.github.batchnorm4j.train;

import io.github.batchnorm4j.distributed.Collective;

import io.github.batchnorm4j.DType;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * A multilayer perceptron for classification, written once against {@link TrainBackend}:
 * <pre>
 * x [B, in] → Linear → (BatchNorm) → ReLU → … → Linear → logits [B, classes] → softmax cross-entropy
 * </pre>
 * Each hidden layer is {@code h = relu(bn(x·W))} with batch norm, or {@code h = relu(x·W + b)} without: a bias before
 * batch norm is redundant (the mean subtraction cancels it, its gradient is exactly 0), so it is left out, as is
 * usual. The output layer always has a bias. Weights are {@code [fanIn, fanOut]} so the forward pass is one plain
 * GEMM per layer.
 *
 * <p>Initialization from a seed: He (Kaiming) normal, std = sqrt(2/fanIn), for layers followed by ReLU; Xavier
 * (Glorot) normal, std = sqrt(2/(fanIn + fanOut)), for the output layer; biases 0; batch norm gamma 1, beta 0. The
 * weights are drawn in the same order with and without batch norm, so the same seed gives both networks the same
 * initial weights.
 *
 * <p><b>Mixed precision</b> ({@code dtype} float16 or bfloat16), as PyTorch's autocast runs such a network: the
 * activations and their gradients between layers (x, x·W, batch-norm output, ReLU output) are stored in the 16-bit type;
 * the weights are float32 master copies, cast to 16 bits once per forward pass for the GEMMs, which accumulate in
 * float32 and round their 16-bit outputs once; weight gradients come out of the GEMM in float32; biases, gamma, beta,
 * their gradients and the batch-norm running statistics are float32, and so is the optimizer. The loss gradient can be
 * scaled ({@link #computeGradients(float[], int[], float)}, see {@link GradScaler}).
 *
 * <p>Activation buffers are allocated once per batch size and reused (a training run meets at most two sizes:
 * the batch and the last partial batch; evaluation two more). Not thread-safe.
 */
public final class Mlp implements AutoCloseable {
    private final TrainBackend backend;
    private final int[] sizes;
    private final boolean batchNorm;
    private final int layers;
    private final DType dtype;
    private final Tensor[] weights;
    /** The 16-bit copies of the weights that the GEMMs read (the float32 masters themselves for float32). */
    private final Tensor[] weightsLow;
    private final Tensor[] weightGrads;
    private final Tensor[] biases;
    private final Tensor[] biasGrads;
    private final BatchNormUnit[] norms;
    private final List<Parameter> parameters = new ArrayList<>();
    private final List<Tensor> owned = new ArrayList<>();
    private final Map<Integer, Activations> buffers = new HashMap<>();
    /** Data-parallel training: the group this replica belongs to, or null. */
    private final Collective collective;
    private boolean closed;

    /** The result of one training step on a batch. */
    public record StepResult(double lossSum, int correct, int rows) {
    }

    /**
     * The model on a data set in eval mode.
     *
     * @param loss         mean cross-entropy
     * @param accuracy     fraction of rows classified correctly
     * @param deadFraction per hidden layer, the fraction of units whose ReLU output is 0 for every row (dead units)
     */
    public record Evaluation(double loss, double accuracy, double[] deadFraction) {
    }

    /**
     * @param inputs    features per sample
     * @param hidden    hidden layer widths (may be empty: softmax regression)
     * @param classes   number of classes (≥ 2)
     * @param batchNorm whether each hidden layer has batch norm before its ReLU
     * @param bnEps     batch-norm epsilon (1e-5 in PyTorch)
     * @param bnMomentum running-statistics momentum, the weight of the new batch (0.1 in PyTorch)
     */
    public Mlp(TrainBackend backend, int inputs, int[] hidden, int classes, boolean batchNorm, long seed,
               double bnEps, double bnMomentum) {
        this(backend, inputs, hidden, classes, batchNorm, seed, bnEps, bnMomentum, DType.FLOAT32);
    }

    /**
     * A network whose activations are stored in {@code dtype} (see the class comment on mixed precision); the same
     * seed gives the same float32 initial weights for every dtype.
     */
    public Mlp(TrainBackend backend, int inputs, int[] hidden, int classes, boolean batchNorm, long seed,
               double bnEps, double bnMomentum, DType dtype) {
        this(backend, inputs, hidden, classes, batchNorm, seed, bnEps, bnMomentum, dtype, null);
    }

    /**
     * One replica of a data-parallel network over the ranks of {@code collective} (null: a network of its own): the
     * same seed gives every replica the same weights; its batch norms are synchronized
     * ({@link TrainBackend#syncBatchNorm}) and {@link #computeGradients(float[], int[], float, int)} sums the weight and
     * bias gradients across the ranks, so every replica takes the same step. Float32 only.
     */
    public Mlp(TrainBackend backend, int inputs, int[] hidden, int classes, boolean batchNorm, long seed,
               double bnEps, double bnMomentum, DType dtype, Collective collective) {
        if (backend == null) throw new IllegalArgumentException("backend must not be null");
        if (dtype == null) throw new IllegalArgumentException("dtype must not be null");
        if (collective != null && dtype != DType.FLOAT32) {
            throw new IllegalArgumentException("dtype: data-parallel training supports float32 only, got " + dtype);
        }
        this.collective = collective;
        this.dtype = dtype;
        if (inputs < 1) throw new IllegalArgumentException("inputs: expected >= 1, got " + inputs);
        if (classes < 2) throw new IllegalArgumentException("classes: expected >= 2, got " + classes);
        if (hidden == null) throw new IllegalArgumentException("hidden must not be null");
        for (int i = 0; i < hidden.length; i++) {
            if (hidden[i] < 1) throw new IllegalArgumentException("hidden[" + i + "]: expected >= 1, got " + hidden[i]);
        }
        this.backend = backend;
        this.batchNorm = batchNorm;
        this.layers = hidden.length + 1;
        this.sizes = new int[layers + 1];
        sizes[0] = inputs;
        System.arraycopy(hidden, 0, sizes, 1, hidden.length);
        sizes[layers] = classes;
        weights = new Tensor[layers];
        weightsLow = new Tensor[layers];
        weightGrads = new Tensor[layers];
        biases = new Tensor[layers];
        biasGrads = new Tensor[layers];
        norms = new BatchNormUnit[layers - 1];

        Random rng = new Random(seed);
        for (int l = 0; l < layers; l++) {
            int fanIn = sizes[l], fanOut = sizes[l + 1];
            boolean output = l == layers - 1;
            double std = output ? Math.sqrt(2.0 / (fanIn + fanOut)) : Math.sqrt(2.0 / fanIn);
            float[] w = new float[fanIn * fanOut];
            for (int i = 0; i < w.length; i++) w[i] = (float) (rng.nextGaussian() * std);
            weights[l] = own(fanIn, fanOut);
            backend.upload(w, weights[l]);
            weightsLow[l] = dtype == DType.FLOAT32 ? weights[l] : own(fanIn, fanOut, dtype);
            weightGrads[l] = own(fanIn, fanOut);
            parameters.add(new Parameter("fc" + (l + 1) + ".weight", weights[l], weightGrads[l], own(fanIn, fanOut)));
            if (output || !batchNorm) {
                biases[l] = own(1, fanOut);
                biasGrads[l] = own(1, fanOut);
                parameters.add(new Parameter("fc" + (l + 1) + ".bias", biases[l], biasGrads[l], own(1, fanOut)));
            } else {
                BatchNormUnit bn = collective == null ? backend.batchNorm(fanOut, bnEps, bnMomentum, dtype)
                        : backend.syncBatchNorm(fanOut, bnEps, bnMomentum, collective);
                norms[l] = bn;
                parameters.add(new Parameter("bn" + (l + 1) + ".gamma", bn.gamma(), bn.gammaGrad(), own(1, fanOut)));
                parameters.add(new Parameter("bn" + (l + 1) + ".beta", bn.beta(), bn.betaGrad(), own(1, fanOut)));
            }
        }
    }

    /**
     * About how many bytes a model of these layer widths holds during training, for a size check before anything is
     * allocated: per layer the weights, their gradients, their momentum and the initial values drawn on the host
     * (4 floats per weight), and per batch size met (the batch, the last partial batch, and two evaluation chunks) the
     * input and, per layer, up to 6 activation tensors (pre-activation, its gradient, batch-norm output and gradient,
     * ReLU output and gradient).
     *
     * @param sizes inputs, hidden widths…, classes
     */
    public static long estimatedBytes(int[] sizes, boolean batchNorm, int batchSize, int evalRows) {
        double weights = 0;
        double activations = sizes[0];
        for (int l = 0; l + 1 < sizes.length; l++) {
            weights += (double) sizes[l] * sizes[l + 1];
            boolean hiddenLayer = l + 2 < sizes.length;
            activations += (double) sizes[l + 1] * (hiddenLayer ? (batchNorm ? 6 : 4) : 2);
        }
        double rows = 2.0 * batchSize + 2.0 * evalRows;
        double bytes = 4 * (4 * weights + rows * activations);
        return bytes >= Long.MAX_VALUE ? Long.MAX_VALUE : (long) bytes;
    }

    private Tensor own(int rows, int cols) {
        return own(rows, cols, DType.FLOAT32);
    }

    private Tensor own(int rows, int cols, DType type) {
        Tensor t = backend.allocate(rows, cols, type);
        owned.add(t);
        return t;
    }

    /** The storage type of the activations. */
    public DType dtype() {
        return dtype;
    }

    /** Layer widths: inputs, hidden…, classes. */
    public int[] sizes() {
        return sizes.clone();
    }

    public boolean hasBatchNorm() {
        return batchNorm;
    }

    /** Number of hidden layers. */
    public int hiddenLayers() {
        return layers - 1;
    }

    /** The learnable tensors, in a fixed order (layer by layer: weight, then bias or gamma and beta). */
    public List<Parameter> parameters() {
        return Collections.unmodifiableList(parameters);
    }

    /**
     * Training-mode forward and backward on one batch: fills every {@link Parameter#grad()} with the gradient of the
     * mean cross-entropy over the batch, and updates batch-norm running statistics.
     *
     * @param x      rows·inputs floats, row-major
     * @param labels one class per row (rows = labels.length, at least 2 with batch norm)
     */
    public StepResult computeGradients(float[] x, int[] labels) {
        return computeGradients(x, labels, 1f);
    }

    /**
     * {@link #computeGradients(float[], int[])} with the loss gradient multiplied by {@code lossScale}: every gradient
     * comes out multiplied by it (unscale before the step, see {@link GradScaler}). The returned loss is not scaled.
     */
    public StepResult computeGradients(float[] x, int[] labels, float lossScale) {
        return computeGradients(x, labels, lossScale, labels.length);
    }

    /**
     * {@link #computeGradients(float[], int[], float)} of this replica's rows of a data-parallel batch of
     * {@code globalRows} rows: the loss gradient is that of the mean over the global batch, and with a collective the
     * weight and bias gradients are summed across the ranks (batch norm's are whole-batch sums already), so that every
     * replica ends with the gradient of the global batch. The returned loss and hits are this replica's rows'.
     */
    public StepResult computeGradients(float[] x, int[] labels, float lossScale, int globalRows) {
        checkOpen();
        Activations a = activations(checkBatch(x, labels));
        forward(a, x, true);
        int last = layers - 1;
        double loss = backend.softmaxCrossEntropy(a.z[last], labels, a.dz[last], lossScale, globalRows);
        int correct = backend.countCorrect(a.z[last], labels);
        for (int l = last; l >= 0; l--) {
            Tensor input = l == 0 ? a.x : a.h[l - 1];
            backend.gemm(true, false, 1f, input, a.dz[l], 0f, weightGrads[l]);
            if (biases[l] != null) backend.sumRows(a.dz[l], biasGrads[l]);
            if (l == 0) break;
            int k = l - 1; // the hidden layer feeding layer l
            backend.gemm(false, true, 1f, a.dz[l], weightsLow[l], 0f, a.dh[k]);
            if (batchNorm) {
                norms[k].backwardRelu(a.z[k], a.dh[k], a.dz[k]);   // through the forward's ReLU mask
            } else {
                backend.reluBackward(a.h[k], a.dh[k], a.dz[k]);
            }
        }
        if (collective != null) {
            for (int l = 0; l < layers; l++) {   // a fixed order, the same on every rank
                backend.sumAcrossRanks(weightGrads[l], collective);
                if (biases[l] != null) backend.sumAcrossRanks(biasGrads[l], collective);
            }
        }
        return new StepResult(loss, correct, labels.length);
    }

    /** The gradient tensors of {@link #parameters()}, in the same order (all float32). */
    public List<Tensor> gradients() {
        List<Tensor> g = new ArrayList<>(parameters.size());
        for (Parameter p : parameters) g.add(p.grad());
        return g;
    }

    /** One SGD-with-momentum step over every parameter, from the gradients of {@link #computeGradients}. */
    public void sgdStep(float lr, float momentum, float weightDecay) {
        checkOpen();
        for (Parameter p : parameters) backend.sgdUpdate(p.value(), p.grad(), p.velocity(), lr, momentum, weightDecay);
    }

    /** {@link #computeGradients} then {@link #sgdStep}. */
    public StepResult trainStep(float[] x, int[] labels, float lr, float momentum, float weightDecay) {
        StepResult r = computeGradients(x, labels);
        sgdStep(lr, momentum, weightDecay);
        return r;
    }

    /**
     * Eval-mode pass over a data set in chunks (batch norm uses its running statistics): mean loss, accuracy and the
     * fraction of dead ReLU units per hidden layer. Changes no state of the model.
     *
     * @param x     rows·inputs floats, row-major
     * @param chunk rows per forward pass
     */
    public Evaluation evaluate(float[] x, int[] labels, int chunk) {
        checkOpen();
        int rows = checkBatch(x, labels);
        if (chunk < 1) throw new IllegalArgumentException("chunk: expected >= 1, got " + chunk);
        int in = sizes[0];
        boolean[][] alive = new boolean[layers - 1][];
        for (int k = 0; k < layers - 1; k++) alive[k] = new boolean[sizes[k + 1]];
        double loss = 0;
        int correct = 0;
        for (int r0 = 0; r0 < rows; r0 += chunk) {
            int n = Math.min(chunk, rows - r0);
            float[] xb = new float[n * in];
            System.arraycopy(x, r0 * in, xb, 0, n * in);
            int[] yb = new int[n];
            System.arraycopy(labels, r0, yb, 0, n);
            Activations a = activations(n);
            forward(a, xb, false);
            int last = layers - 1;
            loss += backend.softmaxCrossEntropy(a.z[last], yb, a.dz[last]);
            correct += backend.countCorrect(a.z[last], yb);
            for (int k = 0; k < layers - 1; k++) {
                float[] h = new float[a.h[k].size()];
                backend.download(a.h[k], h);
                int w = sizes[k + 1];
                for (int i = 0; i < h.length; i++) if (h[i] > 0f) alive[k][i % w] = true;
            }
        }
        double[] dead = new double[layers - 1];
        for (int k = 0; k < layers - 1; k++) {
            int d = 0;
            for (boolean b : alive[k]) if (!b) d++;
            dead[k] = (double) d / alive[k].length;
        }
        return new Evaluation(loss / rows, (double) correct / rows, dead);
    }

    /** Logits of x in eval mode, as a new array of rows·classes floats. */
    public float[] predictLogits(float[] x, int rows) {
        checkOpen();
        if (x == null || rows < 1 || x.length != rows * sizes[0]) {
            throw new IllegalArgumentException("x: expected rows·inputs = " + rows + "·" + sizes[0] + " floats, got "
                    + (x == null ? "null" : x.length));
        }
        Activations a = activations(rows);
        forward(a, x, false);
        float[] out = new float[rows * sizes[layers]];
        backend.download(a.z[layers - 1], out);
        return out;
    }

    private void forward(Activations a, float[] x, boolean training) {
        backend.upload(x, a.x);
        if (dtype != DType.FLOAT32) {
            for (int l = 0; l < layers; l++) backend.cast(weights[l], weightsLow[l]); // this step's 16-bit weights
        }
        for (int l = 0; l < layers; l++) {
            Tensor input = l == 0 ? a.x : a.h[l - 1];
            backend.gemm(false, false, 1f, input, weightsLow[l], 0f, a.z[l]);
            if (biases[l] != null) backend.addBias(a.z[l], biases[l]);
            if (l < layers - 1) {
                if (batchNorm) norms[l].forwardRelu(a.z[l], a.h[l], training);   // fused batch norm + ReLU
                else backend.reluForward(a.z[l], a.h[l]);
            }
        }
    }

    private int checkBatch(float[] x, int[] labels) {
        if (labels == null) throw new IllegalArgumentException("labels must not be null");
        int rows = labels.length;
        if (rows < 1) throw new IllegalArgumentException("labels: expected at least 1 row, got 0");
        if (x == null || x.length != (long) rows * sizes[0]) {
            throw new IllegalArgumentException("x: expected labels.length·inputs = " + rows + "·" + sizes[0]
                    + " floats, got " + (x == null ? "null" : x.length));
        }
        return rows;
    }

    private Activations activations(int rows) {
        return buffers.computeIfAbsent(rows, Activations::new);
    }

    /** Per-batch-size buffers: forward values and their gradients. */
    private final class Activations {
        final Tensor x;
        final Tensor[] z = new Tensor[layers];      // x·W (+ b): pre-BN, or pre-activation without BN; z[last] = logits
        final Tensor[] dz = new Tensor[layers];
        final Tensor[] h = new Tensor[layers - 1];  // ReLU outputs
        final Tensor[] dh = new Tensor[layers - 1];

        Activations(int rows) {
            x = own(rows, sizes[0], dtype);
            for (int l = 0; l < layers; l++) {
                z[l] = own(rows, sizes[l + 1], dtype);
                dz[l] = own(rows, sizes[l + 1], dtype);
                if (l < layers - 1) {
                    h[l] = own(rows, sizes[l + 1], dtype);
                    dh[l] = own(rows, sizes[l + 1], dtype);
                }
            }
        }
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("model is closed");
    }

    /** Releases every tensor and batch-norm unit of the model (not the backend). Idempotent. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        for (BatchNormUnit bn : norms) if (bn != null) bn.close();
        for (Tensor t : owned) t.close();
        owned.clear();
        buffers.clear();
    }
}
