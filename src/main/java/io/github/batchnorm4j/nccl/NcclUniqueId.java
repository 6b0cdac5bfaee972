package io.github.batchnorm4j.nccl;

import java.util.Arrays;
import java.util.HexFormat;

/**
 * NCCL's {@code ncclUniqueId}: 128 opaque bytes that rank 0 obtains ({@link NcclCollective#createUniqueId()}) and every
 * rank passes to {@link NcclCollective#create}. It names rank 0's bootstrap socket, so the process that created it
 * must take part in the group. Travels as 256 hex digits ({@link #toString()}, {@link #parse}). Immutable.
 */
public final class NcclUniqueId {
    private final byte[] bytes;

    /** @param bytes exactly 128 bytes (copied) */
    public NcclUniqueId(byte[] bytes) {
        if (bytes == null || bytes.length != NcclApi.UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("NCCL unique id: expected " + NcclApi.UNIQUE_ID_BYTES + " bytes, got "
                    + (bytes == null ? "null" : bytes.length));
        }
        this.bytes = bytes.clone();
    }

    /** The id from its 256 hex digits (surrounding white space ignored). */
    public static NcclUniqueId parse(String hex) {
        if (hex == null) throw new IllegalArgumentException("NCCL unique id must not be null");
        String h = hex.strip();
        if (h.length() != 2 * NcclApi.UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("NCCL unique id: expected " + 2 * NcclApi.UNIQUE_ID_BYTES
                    + " hex digits, got " + h.length() + " characters");
        }
        try {
            return new NcclUniqueId(HexFormat.of().parseHex(h));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("NCCL unique id: expected hex digits, got '" + abbreviate(h) + "'", e);
        }
    }

    /** A copy of the 128 bytes. */
    public byte[] bytes() {
        return bytes.clone();
    }

    /** The 256 lower-case hex digits. */
    @Override
    public String toString() {
        return HexFormat.of().formatHex(bytes);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NcclUniqueId u && Arrays.equals(u.bytes, bytes);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(bytes);
    }

    private static String abbreviate(String s) {
        return s.length() <= 16 ? s : s.substring(0, 16) + "…";
    }
}
