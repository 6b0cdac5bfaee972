package io.github.batchnorm4j;

import java.util.Locale;

/**
 * What follows the batch norm inside one fused call: nothing, or a ReLU (optionally after adding a residual), as in
 * ResNet's "batch norm → ReLU" and "batch norm → add the shortcut → ReLU". See {@link BatchNormOps#forwardTrainingRelu}
 * and {@link ReluMask}.
 */
public enum Activation {
    /** Plain batch norm: y = bn(x). */
    NONE("none"),
    /** y = relu(bn(x) + z) with an optional residual z; backward through a one-bit-per-element mask. */
    RELU("relu");

    private final String cliName;

    Activation(String cliName) {
        this.cliName = cliName;
    }

    /** The lower-case name used on the command line and in JSON: "none" or "relu". */
    public String cliName() {
        return cliName;
    }

    /** The activation named {@code name} (case-insensitive); IllegalArgumentException listing the names otherwise. */
    public static Activation parse(String name) {
        if (name != null) {
            for (Activation a : values()) if (a.cliName.equals(name.toLowerCase(Locale.ROOT))) return a;
        }
        throw new IllegalArgumentException("activation: expected none or relu, got " + name);
    }

    @Override
    public String toString() {
        return cliName;
    }
}
