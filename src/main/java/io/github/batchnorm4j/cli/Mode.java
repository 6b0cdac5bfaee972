package io.github.batchnorm4j.cli;

/** {@code --mode}: training (batch statistics) or evaluation (running statistics). */
public enum Mode {
    /** Batch statistics; running statistics updated. */
    train,
    /** Running statistics (batch statistics when they are not tracked). */
    eval
}
