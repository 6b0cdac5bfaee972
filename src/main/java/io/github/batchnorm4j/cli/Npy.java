package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.DType;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads and writes NumPy {@code .npy} files (format versions 1.0, 2.0 and 3.0).
 *
 * <p>Reading accepts little-endian float16, float32 and float64 in C order: descr {@code '<f2'}, {@code '<f4'},
 * {@code '<f8'} (and the {@code '|'} "byte order not applicable" spelling of the same). Float16 values widen to
 * float32 exactly (every float16, NaN payloads included, is a float32, and rounds back to the same bits); float64
 * values are rounded to the nearest float32.
 * Anything else (big-endian, {@code fortran_order: True}, other dtypes, a truncated or over-long file, a malformed
 * header) is a {@link NpyFormatException} naming the file.
 *
 * <p>Writing produces float32 {@code '<f4'} (or, from 16-bit patterns, float16 {@code '<f2'}) C-order files
 * byte-for-byte as {@code numpy.save} does: format 1.0 (2.0
 * only when the header would not fit), the header padded with spaces and a newline so that the data starts at a
 * multiple of 64 bytes, with numpy's spare room after the header dict.
 */
public final class Npy {
    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    /** Data starts at a multiple of this (numpy's ARRAY_ALIGN). */
    static final int ALIGN = 64;
    /** numpy leaves room for this many digits of the first dimension so the file can grow in place. */
    private static final int GROWTH_AXIS_MAX_DIGITS = 21;
    private static final int CHUNK = 1 << 20;

    private Npy() {
    }

    /**
     * Reads a float32 or float64 array. The file is read once, from start to end, so pipes and other files that
     * cannot seek ({@code --x <(cat x.npy)}, {@code /dev/stdin}) are read like regular files.
     *
     * @throws NpyFormatException naming the file when it is not a readable .npy of the accepted kinds, is missing,
     *                            or holds more values than this JVM's memory (see {@link #read(Path, int)})
     * @throws IOException        on an I/O failure
     */
    public static NpyArray read(Path file) throws IOException {
        return read(file, 1);
    }

    /**
     * Reads a float32 or float64 array, first checking (from the header, before allocating) that {@code copies}
     * float arrays of its size fit in the JVM's free heap: a command that will also allocate an output of the same
     * size asks for 2, so that a too-large input is a clear error naming the memory needed, not an
     * OutOfMemoryError halfway through.
     */
    public static NpyArray read(Path file, int copies) throws IOException {
        if (!Files.exists(file)) throw new NpyFormatException(file + ": no such file");
        if (Files.isDirectory(file)) throw new NpyFormatException(file + ": is a directory, expected a .npy file");
        // The size of a regular file is known before reading: a truncated file is refused without allocating.
        long size = Files.isRegularFile(file) ? Files.size(file) : -1;
        try (InputStream in = Files.newInputStream(file)) {
            Prefix p = readPrefix(in, file);
            long headerStart = p.headerStart();
            long headerLen = p.headerLen();
            String header = p.header();
            Header h = parseHeader(header, file);
            long count = 1;
            for (long d : h.dims) {
                if (d != 0 && count > MAX_ELEMENTS / d) {
                    throw new NpyFormatException(file + ": shape " + dimsText(h.dims) + " has more than " + MAX_ELEMENTS
                            + " elements: too many for a Java array");
                }
                count *= d;
            }
            if (count > MAX_ELEMENTS) {
                throw new NpyFormatException(file + ": shape " + dimsText(h.dims) + " has " + count + " elements:"
                        + " too many for a Java array (at most " + MAX_ELEMENTS + ")");
            }
            long dataStart = headerStart + headerLen;
            long expected = count * h.itemSize;
            if (size >= 0 && size - dataStart != expected) {
                long actual = size - dataStart;
                throw new NpyFormatException(file + ": expected " + expected + " data bytes for shape "
                        + dimsText(h.dims) + " of " + h.descr + ", found " + actual
                        + (actual < expected ? " (truncated)" : " (trailing bytes)"));
            }
            requireMemory(file, h.dims, count, copies);
            float[] data = new float[(int) count];
            readData(in, h.itemSize, data, file, expected);
            if (in.read() >= 0) {
                throw new NpyFormatException(file + ": expected " + expected + " data bytes for shape "
                        + dimsText(h.dims) + " of " + h.descr + ", found more (trailing bytes)");
            }
            return new NpyArray(h.dims, data, switch (h.itemSize) {
                case 2 -> "<f2";
                case 4 -> "<f4";
                default -> "<f8";
            });
        } catch (NoSuchFileException e) {
            throw new NpyFormatException(file + ": no such file");
        }
    }

    /** The magic string, version, header length and header text of a .npy stream (left at the first data byte). */
    private record Prefix(long headerStart, long headerLen, String header) {
    }

    private static Prefix readPrefix(InputStream in, Path file) throws IOException {
        byte[] prefix = readFully(in, 8, file, "the magic string and version");
        for (int i = 0; i < MAGIC.length; i++) {
            if (prefix[i] != MAGIC[i]) {
                throw new NpyFormatException(file + ": not a .npy file (missing the \\x93NUMPY magic string)");
            }
        }
        int major = prefix[6] & 0xff;
        int minor = prefix[7] & 0xff;
        long headerLen;
        long headerStart;
        if (major == 1 && minor == 0) {
            headerLen = ByteBuffer.wrap(readFully(in, 2, file, "the header length")).order(ByteOrder.LITTLE_ENDIAN)
                    .getShort(0) & 0xffff;
            headerStart = 10;
        } else if ((major == 2 || major == 3) && minor == 0) {
            headerLen = ByteBuffer.wrap(readFully(in, 4, file, "the header length")).order(ByteOrder.LITTLE_ENDIAN)
                    .getInt(0) & 0xffffffffL;
            headerStart = 12;
        } else {
            throw new NpyFormatException(file + ": unsupported .npy format version " + major + "." + minor
                    + " (expected 1.0, 2.0 or 3.0)");
        }
        if (headerLen > 16 << 20) {
            throw new NpyFormatException(file + ": implausible header length " + headerLen);
        }
        byte[] hbytes = readFully(in, (int) headerLen, file, "the header");
        // Versions 1 and 2 are latin-1; 3 is UTF-8. The keys and values we accept are ASCII either way.
        String header = new String(hbytes, major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        return new Prefix(headerStart, headerLen, header);
    }

    /** A .npy array of one-byte elements as read: its descr ('|u1' or '|b1'), shape and raw bytes. */
    record ByteArray(String descr, long[] dims, byte[] data) {
    }

    /**
     * Reads a C-order .npy array of bytes: unsigned 8-bit integers ({@code '|u1'}, NumPy's {@code uint8}, e.g. the
     * output of {@code np.packbits}) or booleans ({@code '|b1'}). Read once from start to end, like {@link #read}.
     *
     * @throws NpyFormatException naming the file for another dtype, Fortran order, or a wrong data length
     */
    static ByteArray readBytes(Path file) throws IOException {
        if (!Files.exists(file)) throw new NpyFormatException(file + ": no such file");
        if (Files.isDirectory(file)) throw new NpyFormatException(file + ": is a directory, expected a .npy file");
        try (InputStream in = Files.newInputStream(file)) {
            Prefix p = readPrefix(in, file);
            Map<String, Object> dict;
            try {
                dict = new DictParser(p.header()).parse();
            } catch (IllegalStateException e) {
                throw new NpyFormatException(file + ": malformed .npy header (" + e.getMessage() + "): "
                        + printable(p.header()));
            }
            Object descr = dict.get("descr");
            String d = descr instanceof String t ? t : String.valueOf(descr);
            if (!d.equals("|u1") && !d.equals("<u1") && !d.equals("|b1")) {
                throw new NpyFormatException(file + ": unsupported dtype '" + printable(d) + "': expected uint8 ('|u1',"
                        + " bits packed by np.packbits(m, bitorder='little')) or bool ('|b1')");
            }
            if (Boolean.TRUE.equals(dict.get("fortran_order"))) {
                throw new NpyFormatException(file + ": fortran_order True is not supported: expected C order");
            }
            if (!(dict.get("shape") instanceof long[] dims)) {
                throw new NpyFormatException(file + ": shape must be a tuple of integers");
            }
            long count = 1;
            for (long n : dims) {
                if (n != 0 && count > MAX_ELEMENTS / n) {
                    throw new NpyFormatException(file + ": shape " + dimsText(dims) + " is too large");
                }
                count *= n;
            }
            byte[] data = readFully(in, (int) count, file, count + " data bytes for shape " + dimsText(dims));
            if (in.read() >= 0) {
                throw new NpyFormatException(file + ": expected " + count + " data bytes for shape " + dimsText(dims)
                        + ", found more (trailing bytes)");
            }
            return new ByteArray(d.equals("|b1") ? "|b1" : "|u1", dims, data);
        } catch (NoSuchFileException e) {
            throw new NpyFormatException(file + ": no such file");
        }
    }

    /** Writes bytes as a one-dimensional C-order uint8 ({@code '|u1'}) .npy file, as numpy.save would. */
    static void writeBytes(Path file, byte[] data) throws IOException {
        byte[] header = headerBytes("|u1", new long[] {data.length});
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            writeFully(ch, ByteBuffer.wrap(header));
            writeFully(ch, ByteBuffer.wrap(data));
        }
    }

    /** The most elements a .npy file may hold here: a Java array's limit. */
    static final long MAX_ELEMENTS = Integer.MAX_VALUE - 8;

    /** Throws unless {@code copies} float arrays of {@code count} elements fit in the heap the JVM can still use. */
    private static void requireMemory(Path file, long[] dims, long count, int copies) {
        try {
            Inputs.requireMemory(file + ": shape " + dimsText(dims), count * 4 * copies, copies + " float32 array"
                    + (copies > 1 ? "s" : "") + " of " + count + " values");
        } catch (IllegalArgumentException e) {
            throw new NpyFormatException(e.getMessage());
        }
    }

    /**
     * Writes float32 values as a C-order {@code '<f4'} .npy file (replacing an existing file), exactly as numpy.save
     * would.
     *
     * @param dims the shape; the product must equal {@code data.length}
     */
    public static void write(Path file, long[] dims, float[] data) throws IOException {
        checkCount(dims, data.length);
        byte[] header = headerBytes(dims);
        writeChunked(file, header, 4, data.length, (buf, i, n) -> buf.asFloatBuffer().put(data, i, n));
    }

    /**
     * Writes float16 bit patterns as a C-order {@code '<f2'} .npy file (replacing an existing file), exactly as
     * numpy.save would.
     *
     * @param dims the shape; the product must equal {@code bits.length}
     */
    public static void writeFloat16(Path file, long[] dims, short[] bits) throws IOException {
        checkCount(dims, bits.length);
        byte[] header = headerBytes(DType.FLOAT16.npyDescr(), dims);
        writeChunked(file, header, 2, bits.length, (buf, i, n) -> buf.asShortBuffer().put(bits, i, n));
    }

    /** Throws unless the dims are non-negative and their product is {@code length} (the data's value count). */
    private static void checkCount(long[] dims, int length) {
        long count = 1;
        for (long d : dims) {
            if (d < 0) throw new IllegalArgumentException("dims: expected non-negative dimensions, got " + dimsText(dims));
            count *= d;
        }
        if (count != length) {
            throw new IllegalArgumentException("data: expected " + count + " values for shape " + dimsText(dims)
                    + ", got " + length);
        }
    }

    /** Puts {@code n} values from index {@code i} at the start of a little-endian buffer. */
    @FunctionalInterface
    private interface ChunkFill {
        void put(ByteBuffer buf, int i, int n);
    }

    /**
     * Writes the header, then {@code length} values of {@code width} bytes in chunks of at most CHUNK bytes (replacing
     * an existing file).
     */
    private static void writeChunked(Path file, byte[] header, int width, int length, ChunkFill fill)
            throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            writeFully(ch, ByteBuffer.wrap(header));
            ByteBuffer buf = ByteBuffer.allocate(Math.min(CHUNK, width * Math.max(1, length)))
                    .order(ByteOrder.LITTLE_ENDIAN);
            int i = 0;
            while (i < length) {
                buf.clear();
                int n = Math.min(CHUNK / width, length - i);
                fill.put(buf, i, n);
                buf.limit(n * width);
                writeFully(ch, buf);
                i += n;
            }
        }
    }

    /** The complete header (magic, version, length, dict, padding) numpy.save writes for a float32 C-order array. */
    static byte[] headerBytes(long[] dims) {
        return headerBytes("<f4", dims);
    }

    /** The header numpy.save writes for a C-order array of {@code descr}. */
    static byte[] headerBytes(String descr, long[] dims) {
        StringBuilder dict = new StringBuilder("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (");
        for (int i = 0; i < dims.length; i++) {
            if (i > 0) dict.append(", ");
            dict.append(dims[i]);
        }
        if (dims.length == 1) dict.append(',');
        dict.append("), }");
        if (dims.length > 0) dict.append(" ".repeat(GROWTH_AXIS_MAX_DIGITS - Long.toString(dims[0]).length()));
        byte[] text = dict.toString().getBytes(StandardCharsets.ISO_8859_1);
        int hlen = text.length + 1; // + the final newline
        int version = 1;
        int prefix = 10;
        int pad = ALIGN - ((prefix + hlen) % ALIGN);
        if (hlen + pad > 0xffff) {
            version = 2;
            prefix = 12;
            pad = ALIGN - ((prefix + hlen) % ALIGN);
        }
        ByteBuffer out = ByteBuffer.allocate(prefix + hlen + pad).order(ByteOrder.LITTLE_ENDIAN);
        out.put(MAGIC).put((byte) version).put((byte) 0);
        if (version == 1) out.putShort((short) (hlen + pad));
        else out.putInt(hlen + pad);
        out.put(text);
        for (int i = 0; i < pad; i++) out.put((byte) ' ');
        out.put((byte) '\n');
        return out.array();
    }

    /**
     * Header text for a one-line message: control and non-ASCII characters as \\xNN (a corrupted header may hold
     * newlines or NEL, which would break the error line in two), at most 200 characters.
     */
    static String printable(String text) {
        StringBuilder b = new StringBuilder();
        String t = text.strip();
        for (int i = 0; i < t.length() && b.length() < 200; i++) {
            char c = t.charAt(i);
            if (c >= 0x20 && c < 0x7f) b.append(c);
            else b.append(String.format("\\x%02x", (int) c & 0xff));
        }
        return b.length() >= 200 ? b + "..." : b.toString();
    }

    record Header(String descr, int itemSize, long[] dims) {
    }

    /** Parses the Python dict literal of the header and checks descr and fortran_order. */
    static Header parseHeader(String header, Path file) {
        Map<String, Object> dict;
        try {
            dict = new DictParser(header).parse();
        } catch (IllegalStateException e) {
            throw new NpyFormatException(file + ": malformed .npy header (" + e.getMessage() + "): " + printable(header));
        }
        for (String key : new String[] {"descr", "fortran_order", "shape"}) {
            if (!dict.containsKey(key)) throw new NpyFormatException(file + ": .npy header lacks '" + key + "'");
        }
        if (!(dict.get("descr") instanceof String descr)) {
            throw new NpyFormatException(file + ": unsupported dtype " + printable(String.valueOf(dict.get("descr")))
                    + " (structured arrays are not supported; expected '<f2', '<f4' or '<f8')");
        }
        if (!(dict.get("fortran_order") instanceof Boolean fortran)) {
            throw new NpyFormatException(file + ": fortran_order must be True or False");
        }
        if (!(dict.get("shape") instanceof long[] dims)) {
            throw new NpyFormatException(file + ": shape must be a tuple of integers");
        }
        int itemSize;
        switch (descr) {
            case "<f2": case "|f2": itemSize = 2; break;
            case "<f4": case "|f4": itemSize = 4; break;
            case "<f8": case "|f8": itemSize = 8; break;
            case ">f2": case ">f4": case ">f8":
                throw new NpyFormatException(file + ": big-endian dtype '" + printable(descr)
                        + "' is not supported: expected little-endian float16 ('<f2'), float32 ('<f4') or float64"
                        + " ('<f8') (in numpy: a.astype('<" + descr.substring(1) + "'))");
            default:
                throw new NpyFormatException(file + ": unsupported dtype '" + printable(descr)
                        + "': expected little-endian float16 ('<f2'), float32 ('<f4') or float64 ('<f8')");
        }
        if (fortran) {
            throw new NpyFormatException(file + ": fortran_order True is not supported: expected C order"
                    + " (in numpy: np.ascontiguousarray(a))");
        }
        return new Header(descr, itemSize, dims);
    }

    private static void readData(InputStream in, int itemSize, float[] out, Path file, long expected)
            throws IOException {
        byte[] chunk = new byte[(int) Math.min(CHUNK, expected)]; // small files: no 1 MiB buffer per read
        ByteBuffer buf = ByteBuffer.wrap(chunk).order(ByteOrder.LITTLE_ENDIAN);
        long read = 0;
        int i = 0;
        while (i < out.length) {
            int n = Math.min(CHUNK / itemSize, out.length - i);
            int bytes = n * itemSize;
            int got = in.readNBytes(chunk, 0, bytes);
            if (got < bytes) {
                throw new NpyFormatException(file + ": expected " + expected + " data bytes, found " + (read + got)
                        + " (truncated)");
            }
            if (itemSize == 4) {
                buf.clear();
                buf.asFloatBuffer().get(out, i, n);
            } else if (itemSize == 2) {
                for (int k = 0; k < n; k++) out[i + k] = DType.FLOAT16.decode(buf.getShort(k * 2));
            } else {
                for (int k = 0; k < n; k++) out[i + k] = (float) buf.getDouble(k * 8);
            }
            read += bytes;
            i += n;
        }
    }

    private static byte[] readFully(InputStream in, int len, Path file, String what) throws IOException {
        byte[] b = in.readNBytes(len);
        if (b.length < len) throw new NpyFormatException(file + ": not a .npy file (too short to hold " + what + ")");
        return b;
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }

    private static String dimsText(long[] dims) {
        StringBuilder sb = new StringBuilder("(");
        for (int i = 0; i < dims.length; i++) {
            if (i > 0) sb.append(", ");
            sb.append(dims[i]);
        }
        return sb.append(dims.length == 1 ? ",)" : ")").toString();
    }

    /**
     * The subset of Python literal syntax numpy writes in headers: a dict of string keys whose values are strings,
     * True/False, or tuples of non-negative integers (a trailing comma and Python 2's "L" suffix allowed). A list
     * (structured dtype) parses to a marker string so the caller can reject it by name.
     */
    private static final class DictParser {
        private final String s;
        private int i;

        DictParser(String s) {
            this.s = s;
        }

        Map<String, Object> parse() {
            Map<String, Object> out = new HashMap<>();
            skip();
            expect('{');
            while (true) {
                skip();
                if (peek() == '}') {
                    i++;
                    break;
                }
                String key = string();
                skip();
                expect(':');
                skip();
                out.put(key, value());
                skip();
                if (peek() == ',') i++;
                else if (peek() != '}') throw new IllegalStateException("expected ',' or '}' at offset " + i);
            }
            skip();
            if (i != s.length()) throw new IllegalStateException("unexpected text after the dict at offset " + i);
            return out;
        }

        private Object value() {
            char c = peek();
            if (c == '\'' || c == '"') return string();
            if (c == '(') return tuple();
            if (c == '[') return "structured dtype " + skipBracketed();
            if (s.startsWith("True", i)) {
                i += 4;
                return Boolean.TRUE;
            }
            if (s.startsWith("False", i)) {
                i += 5;
                return Boolean.FALSE;
            }
            throw new IllegalStateException("unexpected value at offset " + i);
        }

        private String skipBracketed() {
            int start = i;
            int depth = 0;
            do {
                char c = peek();
                if (c == '[' || c == '(') depth++;
                if (c == ']' || c == ')') depth--;
                i++;
            } while (depth > 0);
            return s.substring(start, i);
        }

        private long[] tuple() {
            expect('(');
            List<Long> dims = new ArrayList<>();
            while (true) {
                skip();
                if (peek() == ')') {
                    i++;
                    break;
                }
                int start = i;
                while (i < s.length() && Character.isDigit(s.charAt(i))) i++;
                if (start == i) throw new IllegalStateException("expected an integer in the shape at offset " + i);
                String digits = s.substring(start, i);
                try {
                    dims.add(Long.parseLong(digits));
                } catch (NumberFormatException e) {
                    throw new IllegalStateException("shape dimension " + digits + " is larger than 2^63 - 1");
                }
                if (i < s.length() && s.charAt(i) == 'L') i++;
                skip();
                if (peek() == ',') i++;
                else if (peek() != ')') throw new IllegalStateException("expected ',' or ')' in the shape at offset " + i);
            }
            long[] out = new long[dims.size()];
            for (int k = 0; k < out.length; k++) out[k] = dims.get(k);
            return out;
        }

        private String string() {
            char q = peek();
            if (q != '\'' && q != '"') throw new IllegalStateException("expected a quoted string at offset " + i);
            int end = s.indexOf(q, i + 1);
            if (end < 0) throw new IllegalStateException("unterminated string at offset " + i);
            String v = s.substring(i + 1, end);
            i = end + 1;
            return v;
        }

        private void expect(char c) {
            if (peek() != c) throw new IllegalStateException("expected '" + c + "' at offset " + i);
            i++;
        }

        private char peek() {
            if (i >= s.length()) throw new IllegalStateException("unexpected end of header");
            return s.charAt(i);
        }

        private void skip() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++;
        }
    }
}
