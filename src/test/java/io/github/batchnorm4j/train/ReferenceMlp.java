package io.github.batchnorm4j.train;

import java.util.List;
import java.util.Map;

/**
 * The float64 reference of {@link Mlp}'s training-mode loss, written for clarity and never for speed: plain loops over
 * rows and columns, batch norm with biased variance (docs/design.md §1), ReLU, softmax cross-entropy averaged over
 * rows. Parameters are named as {@link Mlp#parameters()} names them ("fc1.weight", "bn1.gamma", "fc3.bias", ...).
 */
final class ReferenceMlp {
    private ReferenceMlp() {
    }

    /** The hidden layers' ReLU inputs of the last {@link #loss} call, per layer [rows][width] (for the kink check). */
    static double[][][] lastPreActivations;

    /**
     * @param sizes  inputs, hidden widths..., classes
     * @param params name → values (weights row-major [fanIn, fanOut])
     */
    static double loss(int[] sizes, boolean batchNorm, double eps, Map<String, double[]> params, double[] x,
                       int[] labels) {
        int rows = labels.length;
        int layers = sizes.length - 1;
        double[][] h = new double[rows][];
        for (int r = 0; r < rows; r++) {
            h[r] = new double[sizes[0]];
            for (int i = 0; i < sizes[0]; i++) h[r][i] = x[r * sizes[0] + i];
        }
        lastPreActivations = new double[layers - 1][][];
        for (int l = 0; l < layers; l++) {
            int in = sizes[l], out = sizes[l + 1];
            double[] w = params.get("fc" + (l + 1) + ".weight");
            double[] b = params.get("fc" + (l + 1) + ".bias");
            double[][] z = new double[rows][out];
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < out; j++) {
                    double s = b == null ? 0 : b[j];
                    for (int i = 0; i < in; i++) s += h[r][i] * w[i * out + j];
                    z[r][j] = s;
                }
            }
            if (l == layers - 1) {
                return crossEntropy(z, labels);
            }
            if (batchNorm) {
                double[] gamma = params.get("bn" + (l + 1) + ".gamma");
                double[] beta = params.get("bn" + (l + 1) + ".beta");
                for (int j = 0; j < out; j++) {
                    double mean = 0;
                    for (int r = 0; r < rows; r++) mean += z[r][j];
                    mean /= rows;
                    double var = 0;
                    for (int r = 0; r < rows; r++) var += (z[r][j] - mean) * (z[r][j] - mean);
                    var /= rows;
                    for (int r = 0; r < rows; r++) {
                        z[r][j] = (z[r][j] - mean) / Math.sqrt(var + eps) * gamma[j] + beta[j];
                    }
                }
            }
            lastPreActivations[l] = z;
            h = new double[rows][out];
            for (int r = 0; r < rows; r++) for (int j = 0; j < out; j++) h[r][j] = Math.max(z[r][j], 0);
        }
        throw new AssertionError("unreachable");
    }

    private static double crossEntropy(double[][] z, int[] labels) {
        double total = 0;
        for (int r = 0; r < z.length; r++) {
            double sum = 0;
            for (double v : z[r]) sum += Math.exp(v);
            total += Math.log(sum) - z[r][labels[r]];
        }
        return total / z.length;
    }

    /** Central finite differences of {@link #loss} for every element of every parameter, step {@code step}. */
    static Map<String, double[]> numericGradients(int[] sizes, boolean batchNorm, double eps,
                                                  Map<String, double[]> params, double[] x, int[] labels,
                                                  List<String> names, double step) {
        Map<String, double[]> grads = new java.util.LinkedHashMap<>();
        for (String name : names) {
            double[] p = params.get(name);
            double[] g = new double[p.length];
            for (int i = 0; i < p.length; i++) {
                double keep = p[i];
                p[i] = keep + step;
                double up = loss(sizes, batchNorm, eps, params, x, labels);
                p[i] = keep - step;
                double down = loss(sizes, batchNorm, eps, params, x, labels);
                p[i] = keep;
                g[i] = (up - down) / (2 * step);
            }
            grads.put(name, g);
        }
        return grads;
    }
}
