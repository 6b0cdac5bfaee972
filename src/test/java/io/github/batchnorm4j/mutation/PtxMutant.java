package io.github.batchnorm4j.mutation;

/**
 * One single-instruction change of a PTX module.
 *
 * @param module     the module file name, e.g. {@code batchnorm_forward.ptx}
 * @param line       1-based line of the changed instruction (the emulator's error messages and coverage use the same
 *                   numbering; a mutant never adds or removes lines)
 * @param function   the {@code .entry}/{@code .func} the line belongs to
 * @param operator   the mutation operator ({@link PtxMutator.Operator})
 * @param original   the instruction as shipped, trimmed
 * @param mutated    the replacement text, trimmed (a comment for a deleted instruction)
 * @param equivalent why the mutant cannot change any result, when that is known without running it; null otherwise
 */
public record PtxMutant(String module, int line, String function, PtxMutator.Operator operator, String original,
                        String mutated, String equivalent) {

    /** A short stable identifier, e.g. {@code batchnorm_forward.ptx:1234:cmp:setp.gt.s64}. */
    public String id() {
        String head = mutated.startsWith("//") ? "deleted" : mutated.split("\\s+", 2)[0];
        return module + ":" + line + ":" + operator.label() + ":" + head + ":" + Integer.toHexString(mutated.hashCode());
    }
}
