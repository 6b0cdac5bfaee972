package io.github.batchnorm4j.train;

/**
 * One learnable tensor of a model with its gradient (written by backward) and its SGD momentum buffer.
 *
 * @param name     e.g. "fc1.weight", "bn1.gamma"
 * @param value    the parameter (updated in place by the optimizer)
 * @param grad     dL/dvalue of the last backward pass
 * @param velocity the momentum buffer (initially 0)
 */
public record Parameter(String name, Tensor value, Tensor grad, Tensor velocity) {
}
