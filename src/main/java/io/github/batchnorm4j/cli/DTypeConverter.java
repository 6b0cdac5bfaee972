package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.DType;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** {@code --dtype float32|float16|bfloat16}: {@link DType#parse}, its message as picocli's usage error (exit 2). */
final class DTypeConverter implements ITypeConverter<DType> {
    @Override
    public DType convert(String value) {
        try {
            return DType.parse(value);
        } catch (IllegalArgumentException e) {
            throw new TypeConversionException("expected float32, float16 or bfloat16, got '" + value + "'");
        }
    }
}
