package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.DType;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The output folder of one command ({@code --out DIR}), written all or nothing.
 *
 * <p>{@link #prepare} checks everything that can be checked before any work: the path is not empty, is (or can be
 * created as) a folder, none of the files to be written is a folder or resolves (through symbolic links, hard links,
 * {@code ..}) to one of the command's input files, and the file system accepts a new folder there. It then creates a
 * hidden staging folder, so a folder that cannot be written fails before a long computation, not after. The command
 * writes every file into {@link #file}; {@link #commit} then moves them into place: a new DIR is the staging folder
 * renamed in one atomic step; in an existing DIR each file is renamed over its old version (atomic per file on
 * POSIX file systems, and the renames happen only after every file was written completely and flushed to disk).
 * {@link #close} without a commit (bad input, a failed write, an exception, Ctrl-C) deletes the staging folder and
 * any parent folder it created, so that a failed command leaves the file system as it found it.
 *
 * <p>Files in an existing DIR that the command does not write (a previous run's {@code save_mean.npy} when this run
 * is an eval forward, a user's notes) are left as they are. A file to be written that is a symbolic link to a file
 * that is not an input is replaced by a regular file; the link's target is untouched.
 */
final class OutputFolder implements AutoCloseable {
    private static final String STAGING_PREFIX = ".batchnorm4j-";
    /**
     * System property: "false" skips flushing each file to the disk before the rename (the all-or-nothing rename
     * stays). For tests that run a command hundreds of times on a shared disk; never needed by users.
     */
    static final String FSYNC_PROPERTY = "batchnorm4j.fsync";

    private final String option;
    private final Path dir;
    private final List<String> names;
    private final boolean existed;
    private final Path staging;
    private final List<Path> createdParents;
    private final Thread cleanup;
    private boolean done;

    private OutputFolder(String option, Path dir, List<String> names, boolean existed, Path staging,
                         List<Path> createdParents) {
        this.option = option;
        this.dir = dir;
        this.names = List.copyOf(names);
        this.existed = existed;
        this.staging = staging;
        this.createdParents = createdParents;
        this.cleanup = new Thread(this::abort, "batchnorm4j-output-cleanup");
        try {
            Runtime.getRuntime().addShutdownHook(cleanup);
        } catch (IllegalStateException shuttingDown) {
            // The JVM is already exiting: nothing will be committed either.
        }
    }

    /**
     * Checks {@code dir} for the files {@code names} and creates the staging folder.
     *
     * @param option the option that named the folder, for messages (e.g. "--out")
     * @param inputs the command's input files by option (e.g. "--x" → x.npy); none of them may be overwritten
     * @throws IllegalArgumentException naming the option, the folder or file, and what is wrong (exit 2)
     */
    static OutputFolder prepare(String option, Path dir, List<String> names, Map<String, Path> inputs) {
        if (dir == null || dir.toString().isEmpty()) {
            throw new IllegalArgumentException(option + ": expected a folder, got an empty path");
        }
        boolean existed = Files.exists(dir);
        if (existed && !Files.isDirectory(dir)) {
            throw new IllegalArgumentException(option + " " + dir + ": expected a folder, got an existing file");
        }
        if (existed) {
            for (String name : names) {
                Path target = dir.resolve(name);
                if (Files.isDirectory(target)) {
                    throw new IllegalArgumentException(option + " " + dir + ": " + target + " is a folder, where the"
                            + " output file " + name + " goes; nothing was written");
                }
                if (Files.exists(target) && !Files.isRegularFile(target)) {
                    throw new IllegalArgumentException(option + " " + dir + ": " + target + " is not a regular file,"
                            + " where the output file " + name + " goes; nothing was written");
                }
                for (Map.Entry<String, Path> in : inputs.entrySet()) {
                    if (in.getValue() != null && sameFile(target, in.getValue())) {
                        throw new IllegalArgumentException(option + " " + dir + ": the output " + target + " is the"
                                + " input " + in.getKey() + " " + in.getValue() + "; refusing to overwrite an input"
                                + " (choose another " + option + ")");
                    }
                }
            }
        }
        List<Path> created = new ArrayList<>();
        Path staging;
        try {
            if (existed) {
                staging = Files.createTempDirectory(dir, STAGING_PREFIX);
            } else {
                Path absolute = dir.toAbsolutePath().normalize();
                Path parent = absolute.getParent();
                if (parent == null) throw new IllegalArgumentException(option + ": cannot create the root " + dir);
                createParents(option, dir, parent, created);
                staging = Files.createTempDirectory(parent, STAGING_PREFIX + absolute.getFileName() + "-");
            }
        } catch (IOException e) {
            deleteEmpty(created);
            Path where = existed ? dir : dir.toAbsolutePath().normalize().getParent();
            throw new IllegalArgumentException(option + " " + dir + ": cannot create files in " + where + ": "
                    + Inputs.reason(e), e);
        } catch (RuntimeException e) {
            deleteEmpty(created);
            throw e;
        }
        return new OutputFolder(option, dir, names, existed, staging, created);
    }

    private static boolean sameFile(Path a, Path b) {
        try {
            return Files.exists(a) && Files.exists(b) && Files.isSameFile(a, b);
        } catch (IOException e) {
            return false;
        }
    }

    /** Creates the missing folders above the output folder, recording them (outermost first) for an abort. */
    private static void createParents(String option, Path dir, Path parent, List<Path> created) throws IOException {
        List<Path> missing = new ArrayList<>();
        Path p = parent;
        while (p != null && !Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
            missing.add(0, p);
            p = p.getParent();
        }
        if (p != null && !Files.isDirectory(p)) {
            throw new IllegalArgumentException(option + " " + dir + ": " + p + " is a file, not a folder");
        }
        for (Path m : missing) {
            Files.createDirectory(m);
            created.add(m);
        }
    }

    /** The folder the user named. */
    Path dir() {
        return dir;
    }

    /** The staging folder the files are written into before {@link #commit}. */
    Path stagingDir() {
        return staging;
    }

    /** Where to write the output file {@code name} (one of the names given to {@link #prepare}). */
    Path file(String name) {
        if (!names.contains(name)) throw new IllegalStateException(name + " is not one of " + names);
        return staging.resolve(name);
    }

    /** An action that writes files into the staging folder. */
    @FunctionalInterface
    interface Writer {
        void write(Path stagingDir) throws IOException;
    }

    /**
     * Runs {@code writer}, turning an I/O failure into an IllegalArgumentException that names the option, the folder
     * and what was being written (the staging folder is removed on {@link #close}).
     */
    void write(String what, Writer writer) {
        try {
            writer.write(staging);
        } catch (IOException | UncheckedIOException e) {
            IOException io = e instanceof UncheckedIOException u ? u.getCause() : (IOException) e;
            throw new IllegalArgumentException(option + " " + dir + ": writing " + what + " failed: "
                    + Inputs.describe(io) + "; nothing was written", e);
        }
    }

    /** Writes a float32 .npy output file (see {@link #write}). */
    void writeNpy(String name, long[] dims, float[] data) {
        Path f = file(name);
        write(name, d -> Npy.write(f, dims, data));
    }

    /**
     * Writes a 16-bit output file (see {@link #write}): float16 as {@code '<f2'}; bfloat16, which NumPy lacks, as
     * {@code '<f4'} float32 values that are exactly the bfloat16 values (the upper halves of their bits).
     */
    void writeNpy(String name, long[] dims, DType dtype, short[] bits) {
        Path f = file(name);
        if (dtype == DType.FLOAT16) write(name, d -> Npy.writeFloat16(f, dims, bits));
        else if (dtype == DType.BFLOAT16) write(name, d -> Npy.write(f, dims, dtype.decode(bits)));
        else throw new IllegalArgumentException("dtype: expected float16 or bfloat16, got " + dtype);
    }

    /**
     * Moves every file into place. Every name given to {@link #prepare} must have been written.
     *
     * @throws IllegalArgumentException when the file system refuses (the message says which files were replaced)
     */
    void commit() {
        if (done) throw new IllegalStateException("already committed or closed");
        Map<String, Path> staged = new LinkedHashMap<>();
        for (String name : names) {
            Path f = staging.resolve(name);
            if (!Files.isRegularFile(f)) throw new IllegalStateException("output " + name + " was not written");
            staged.put(name, f);
        }
        try {
            if (!"false".equals(System.getProperty(FSYNC_PROPERTY))) {
                for (Path f : staged.values()) force(f);
            }
        } catch (IOException e) {
            throw new IllegalArgumentException(option + " " + dir + ": flushing the output failed: "
                    + Inputs.describe(e) + "; nothing was written", e);
        }
        if (!existed && moveFolder()) {
            finish();
            return;
        }
        List<String> replaced = new ArrayList<>();
        try {
            if (!Files.isDirectory(dir)) Files.createDirectories(dir);
            for (Map.Entry<String, Path> e : staged.entrySet()) {
                move(e.getValue(), dir.resolve(e.getKey()));
                replaced.add(e.getKey());
            }
            forceDirectory(dir);
        } catch (IOException e) {
            throw new IllegalArgumentException(option + " " + dir + ": moving the output into place failed: "
                    + Inputs.describe(e) + (replaced.isEmpty() ? "; nothing was written"
                    : "; only " + String.join(", ", replaced) + " were replaced"), e);
        }
        finish();
    }

    /** Renames the staging folder to the new output folder; false when something else created it meanwhile. */
    private boolean moveFolder() {
        try {
            Files.move(staging, dir, StandardCopyOption.ATOMIC_MOVE);
            forceDirectory(dir.toAbsolutePath().getParent());
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** Flushes a written file to the disk, so that a crash after the rename cannot leave an empty file. */
    private static void force(Path f) throws IOException {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
            ch.force(true);
        }
    }

    /** Flushes a folder's entries (the renames); not every platform can open a folder, which is then skipped. */
    private static void forceDirectory(Path d) {
        if (d == null) return;
        try (FileChannel ch = FileChannel.open(d, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | UnsupportedOperationException e) {
            // Best effort: the rename itself is what makes the output all or nothing.
        }
    }

    private void finish() {
        done = true;
        deleteTree(staging);
        removeHook();
    }

    /** Without a commit: removes the staging folder and the parent folders this created. Idempotent. */
    @Override
    public void close() {
        if (done) return;
        abort();
        removeHook();
    }

    private synchronized void abort() {
        if (done) return;
        done = true;
        deleteTree(staging);
        deleteEmpty(createdParents);
    }

    private void removeHook() {
        try {
            Runtime.getRuntime().removeShutdownHook(cleanup);
        } catch (IllegalStateException shuttingDown) {
            // The hook runs (or ran) anyway.
        }
    }

    /** Deletes a folder this class created, with the files in it (it has no sub-folders). */
    private static void deleteTree(Path d) {
        if (!Files.exists(d, LinkOption.NOFOLLOW_LINKS)) return;
        try (DirectoryStream<Path> files = Files.newDirectoryStream(d)) {
            for (Path f : files) Files.deleteIfExists(f);
        } catch (IOException e) {
            // Left behind: a hidden .batchnorm4j-* folder is the worst case.
        }
        try {
            Files.deleteIfExists(d);
        } catch (IOException e) {
            // As above.
        }
    }

    /** Deletes the given folders, innermost first, as long as they are empty. */
    private static void deleteEmpty(List<Path> folders) {
        for (int i = folders.size() - 1; i >= 0; i--) {
            try {
                Files.deleteIfExists(folders.get(i));
            } catch (IOException e) {
                return; // not empty (something else wrote there) or not ours to delete
            }
        }
    }
}
