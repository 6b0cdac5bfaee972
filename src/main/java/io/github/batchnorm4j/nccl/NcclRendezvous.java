package io.github.batchnorm4j.nccl;

import io.github.batchnorm4j.cuda.CudaDevice;
import io.github.batchnorm4j.distributed.CollectiveException;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.Map;
import java.util.function.Supplier;

/**
 * How the processes of a group find each other, the way {@code torchrun} sets them up: every process gets its rank and
 * the group size in environment variables, and rank 0's NCCL unique id reaches the others through a file that all of
 * them can read (a shared file system across machines, or a local path on one machine):
 * <pre>
 * RANK=r WORLD_SIZE=k LOCAL_RANK=g BATCHNORM4J_NCCL_ID_FILE=/shared/job42.nccl-id  java ...
 * </pre>
 * <ul>
 *   <li>{@code RANK} (0 … k−1) and {@code WORLD_SIZE} (k): required; {@code LOCAL_RANK}: which GPU of this machine
 *       (default: RANK). These are the names torchrun and most launchers (SLURM wrappers, Kubernetes operators) set.</li>
 *   <li>{@code BATCHNORM4J_NCCL_ID_FILE}: rank 0 creates the id (ncclGetUniqueId: it names rank 0's bootstrap socket,
 *       so it must come from rank 0's process) and writes it there atomically (a temporary file, then a rename); the
 *       other ranks wait for it.</li>
 *   <li>{@code BATCHNORM4J_RUN_ID} (or torchrun's {@code TORCHELASTIC_RUN_ID}): written next to the id; the other ranks
 *       accept only a file of their own run, so a file left over from an earlier run is never joined. Without it, use
 *       a fresh path per run.</li>
 *   <li>{@code BATCHNORM4J_NCCL_TIMEOUT_SECONDS}: how long the other ranks wait for the file (default 300).</li>
 * </ul>
 */
public final class NcclRendezvous {
    public static final String RANK = "RANK";
    public static final String WORLD_SIZE = "WORLD_SIZE";
    public static final String LOCAL_RANK = "LOCAL_RANK";
    public static final String ID_FILE = "BATCHNORM4J_NCCL_ID_FILE";
    public static final String RUN_ID = "BATCHNORM4J_RUN_ID";
    public static final String TORCH_RUN_ID = "TORCHELASTIC_RUN_ID";
    public static final String TIMEOUT = "BATCHNORM4J_NCCL_TIMEOUT_SECONDS";

    private NcclRendezvous() {
    }

    /**
     * One process's place in the group.
     *
     * @param localRank the GPU ordinal this process uses
     * @param runId     "" when none was given
     */
    public record Settings(int rank, int worldSize, int localRank, Path idFile, String runId, Duration timeout) {
    }

    /** The settings from this process's environment. */
    public static Settings fromEnvironment() {
        return fromEnvironment(System.getenv());
    }

    /**
     * The settings from {@code env}; every problem is an IllegalArgumentException naming the variable with the
     * expected and the actual value.
     */
    public static Settings fromEnvironment(Map<String, String> env) {
        int worldSize = integer(env, WORLD_SIZE, null, 1, Integer.MAX_VALUE);
        int rank = integer(env, RANK, null, 0, worldSize - 1);
        int localRank = integer(env, LOCAL_RANK, rank, 0, Integer.MAX_VALUE);
        String file = env.get(ID_FILE);
        if (file == null || file.isBlank()) {
            throw new IllegalArgumentException(ID_FILE + ": expected the path of a file every rank can read (rank 0"
                    + " writes the NCCL id there), got " + (file == null ? "nothing" : "'" + file + "'"));
        }
        String runId = env.getOrDefault(RUN_ID, env.getOrDefault(TORCH_RUN_ID, ""));
        if (runId.contains(" ") || runId.contains("\n")) {
            throw new IllegalArgumentException(RUN_ID + ": expected no spaces or line breaks, got '" + runId + "'");
        }
        int seconds = integer(env, TIMEOUT, 300, 1, Integer.MAX_VALUE);
        return new Settings(rank, worldSize, localRank, Path.of(file), runId, Duration.ofSeconds(seconds));
    }

    /**
     * Joins the group described by this process's environment on {@code device} (open it at
     * {@link Settings#localRank()}): exchanges the id through the file, then {@link NcclCollective#create}.
     */
    public static NcclCollective join(CudaDevice device, Settings s) {
        NcclUniqueId id = exchangeId(s, NcclCollective::createUniqueId);
        return NcclCollective.create(device, s.rank(), s.worldSize(), id);
    }

    /**
     * Rank 0: {@code create}s the id and writes it to the file (atomically). Other ranks: wait until the file holds an id
     * of their run, and read it.
     *
     * @throws CollectiveException when the file cannot be written, or does not appear within the timeout
     */
    public static NcclUniqueId exchangeId(Settings s, Supplier<NcclUniqueId> create) {
        if (s.rank() == 0) {
            NcclUniqueId id = create.get();
            write(s, id);
            return id;
        }
        long deadline = System.nanoTime() + s.timeout().toNanos();
        String last = null;
        while (true) {
            try {
                String text = Files.readString(s.idFile(), StandardCharsets.US_ASCII).strip();
                last = text;
                int space = text.indexOf(' ');
                if (space >= 0 && text.substring(0, space).equals(runTag(s))) {
                    return NcclUniqueId.parse(text.substring(space + 1));
                }
            } catch (NoSuchFileException e) {
                // not written yet
            } catch (IOException | IllegalArgumentException e) {
                last = e.toString();
            }
            if (System.nanoTime() > deadline) {
                throw new CollectiveException("rank " + s.rank() + " of " + s.worldSize() + " waited " + s.timeout()
                        + " for rank 0 to write the NCCL id of run '" + s.runId() + "' to " + s.idFile()
                        + (last == null ? " (no such file)" : " (last read: '" + abbreviate(last) + "')"));
            }
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CollectiveException("rank " + s.rank() + " was interrupted waiting for " + s.idFile(), e);
            }
        }
    }

    private static void write(Settings s, NcclUniqueId id) {
        Path file = s.idFile().toAbsolutePath();
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        try {
            Files.writeString(tmp, runTag(s) + " " + id + "\n", StandardCharsets.US_ASCII);
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new CollectiveException("rank 0 could not write the NCCL id to " + file + ": " + e, e);
        }
    }

    /** The first word of the file: the run id, or "-" for none. */
    private static String runTag(Settings s) {
        return s.runId().isEmpty() ? "-" : s.runId();
    }

    private static int integer(Map<String, String> env, String name, Integer fallback, int min, int max) {
        String v = env.get(name);
        if (v == null || v.isBlank()) {
            if (fallback != null) return fallback;
            throw new IllegalArgumentException(name + ": expected an integer in [" + min + ", " + max + "], got nothing"
                    + " (set it as torchrun does)");
        }
        int n;
        try {
            n = Integer.parseInt(v.strip());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + ": expected an integer in [" + min + ", " + max + "], got '" + v
                    + "'");
        }
        if (n < min || n > max) {
            throw new IllegalArgumentException(name + ": expected an integer in [" + min + ", " + max + "], got " + n);
        }
        return n;
    }

    private static String abbreviate(String s) {
        return s.length() <= 40 ? s : s.substring(0, 40) + "…";
    }
}
