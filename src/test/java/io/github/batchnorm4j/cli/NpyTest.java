package io.github.batchnorm4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * .npy reading and writing against bytes produced independently: files written by numpy itself
 * (src/test/resources/npy, generated once by make_fixtures.py there) and files assembled byte by byte here.
 */
class NpyTest {
    private static final Path FIXTURES = Path.of("src/test/resources/npy");

    @TempDir
    Path dir;

    /** The fixtures' float32 values: i·0.5 − 1.25 (exact in float32). */
    private static float[] halfSteps(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (i * 0.5 - 1.25);
        return a;
    }

    /** The fixtures' float64 values i·0.1 − 1, rounded to float32 as the reader does. */
    private static float[] tenthSteps(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (i * 0.1 - 1);
        return a;
    }

    @Test
    void readsNumpyFloat32AndFloat64InEveryHeaderVersion() throws IOException {
        NpyArray a = Npy.read(FIXTURES.resolve("f4_2x3.npy"));
        assertArrayEquals(new long[] {2, 3}, a.dims());
        assertArrayEquals(halfSteps(6), a.data());
        assertEquals("<f4", a.sourceDtype());

        NpyArray b = Npy.read(FIXTURES.resolve("f8_2x3x4.npy"));
        assertArrayEquals(new long[] {2, 3, 4}, b.dims());
        assertArrayEquals(tenthSteps(24), b.data());
        assertEquals("<f8", b.sourceDtype());

        NpyArray v2 = Npy.read(FIXTURES.resolve("f4_v2_3x2.npy"));
        assertArrayEquals(new long[] {3, 2}, v2.dims());
        assertArrayEquals(halfSteps(6), v2.data());

        NpyArray v3 = Npy.read(FIXTURES.resolve("f8_v3_4.npy"));
        assertArrayEquals(new long[] {4}, v3.dims());
        assertArrayEquals(tenthSteps(4), v3.data());

        NpyArray one = Npy.read(FIXTURES.resolve("f4_5.npy"));
        assertArrayEquals(new long[] {5}, one.dims());
        assertArrayEquals(halfSteps(5), one.data());

        NpyArray scalar = Npy.read(FIXTURES.resolve("f4_scalar.npy"));
        assertArrayEquals(new long[0], scalar.dims());
        assertArrayEquals(new float[] {2.5f}, scalar.data());
    }

    /** make_fixtures.py's F2_BITS: every kind of float16 value. */
    private static final short[] F2_BITS = {0x0000, (short) 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0x7C00,
        (short) 0xFC00, 0x7E01};

    @Test
    void readsNumpyFloat16ExactlyAndWritesItBackByteForByte() throws IOException {
        Path fixture = FIXTURES.resolve("f2_2x5.npy");
        NpyArray a = Npy.read(fixture);
        assertArrayEquals(new long[] {2, 5}, a.dims());
        assertEquals("<f2", a.sourceDtype());
        float[] expected = {0f, -0f, 0x1p-24f, 1023 * 0x1p-24f, 0x1p-14f, 1f, 65504f, Float.POSITIVE_INFINITY,
            Float.NEGATIVE_INFINITY, Float.intBitsToFloat(0x7FC02000)}; // NaN payload 0x001 moved to the top bits
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(a.data()[i]), "element " + i);
            assertEquals(F2_BITS[i], io.github.batchnorm4j.DType.FLOAT16.encode(a.data()[i]), "round trip " + i);
        }
        Path mine = dir.resolve("f2.npy");
        Npy.writeFloat16(mine, new long[] {2, 5}, F2_BITS);
        assertArrayEquals(Files.readAllBytes(fixture), Files.readAllBytes(mine));
        assertThrows(IllegalArgumentException.class, () -> Npy.writeFloat16(mine, new long[] {3}, F2_BITS));
    }

    @Test
    void writesExactlyTheBytesNumpySaveWrites() throws IOException {
        String[][] cases = {{"f4_2x3.npy", "2,3"}, {"f4_5.npy", "5"}, {"f4_scalar.npy", ""},
            {"f4_2x3x4x5.npy", "2,3,4,5"}};
        for (String[] c : cases) {
            long[] dims = c[1].isEmpty() ? new long[0]
                    : java.util.Arrays.stream(c[1].split(",")).mapToLong(Long::parseLong).toArray();
            int n = 1;
            for (long d : dims) n *= (int) d;
            float[] data = c[1].isEmpty() ? new float[] {2.5f} : halfSteps(n);
            Path mine = dir.resolve(c[0]);
            Npy.write(mine, dims, data);
            assertArrayEquals(Files.readAllBytes(FIXTURES.resolve(c[0])), Files.readAllBytes(mine), c[0]);
        }
    }

    @Test
    void headersAreAlignedTo64BytesForManyShapes() throws IOException {
        for (int rank = 0; rank <= 6; rank++) {
            for (long big : new long[] {1, 7, 12345, 9_876_543_210L}) {
                long[] dims = new long[rank];
                for (int i = 0; i < rank; i++) dims[i] = i == 0 ? big : i + 2;
                byte[] h = Npy.headerBytes(dims);
                assertEquals(0, h.length % 64, () -> "header length " + h.length + " for rank " + dims.length);
                assertEquals('\n', h[h.length - 1]);
                ByteBuffer b = ByteBuffer.wrap(h).order(ByteOrder.LITTLE_ENDIAN);
                assertEquals(1, h[6], "version 1.0 while the header fits in 65535 bytes");
                assertEquals(h.length - 10, b.getShort(8) & 0xffff, "the length field counts the padding");
            }
        }
        // A header too long for a 16-bit length switches to version 2.0, still aligned, and reads back.
        long[] many = new long[30_000];
        java.util.Arrays.fill(many, 1);
        many[0] = 3;
        Path p = dir.resolve("v2.npy");
        Npy.write(p, many, new float[] {1f, -2f, 3.5f});
        byte[] bytes = Files.readAllBytes(p);
        assertEquals(2, bytes[6]);
        int hlen = ByteBuffer.wrap(bytes, 8, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
        assertEquals(0, (12 + hlen) % 64);
        NpyArray back = Npy.read(p);
        assertArrayEquals(many, back.dims());
        assertArrayEquals(new float[] {1f, -2f, 3.5f}, back.data());
    }

    /** A file assembled here: magic, version, length field of the given width, header padded to 64, payload. */
    private Path handMade(String name, int major, String dict, byte[] payload) throws IOException {
        int prefix = major == 1 ? 10 : 12;
        int pad = (64 - (prefix + dict.length() + 1) % 64) % 64;
        String header = dict + " ".repeat(pad) + "\n";
        ByteBuffer b = ByteBuffer.allocate(prefix + header.length() + payload.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', (byte) major, 0});
        if (major == 1) b.putShort((short) header.length());
        else b.putInt(header.length());
        b.put(header.getBytes(StandardCharsets.UTF_8)).put(payload);
        Path p = dir.resolve(name);
        Files.write(p, b.array());
        return p;
    }

    private static byte[] floats(float... v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) b.putFloat(f);
        return b.array();
    }

    private static byte[] doubles(double... v) {
        ByteBuffer b = ByteBuffer.allocate(8 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (double d : v) b.putDouble(d);
        return b.array();
    }

    @Test
    void readsHandMadeVariants() throws IOException {
        // '|' byte order, keys in another order, double quotes, no trailing comma, Python 2 long suffix.
        Path a = handMade("a.npy", 1, "{\"shape\": (2L, 2L), \"fortran_order\": False, \"descr\": \"|f4\"}",
                floats(1.5f, -0.25f, 3e-8f, Float.NaN));
        NpyArray ra = Npy.read(a);
        assertArrayEquals(new long[] {2, 2}, ra.dims());
        assertArrayEquals(new float[] {1.5f, -0.25f, 3e-8f, Float.NaN}, ra.data());

        Path b = handMade("b.npy", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                doubles(0.1, 1e300, -1.0 / 3));
        assertArrayEquals(new float[] {0.1f, Float.POSITIVE_INFINITY, (float) (-1.0 / 3)}, Npy.read(b).data(),
                "float64 rounds to the nearest float32 (overflow to infinity)");
    }

    private void rejected(Path file, String... fragments) {
        NpyFormatException e = assertThrows(NpyFormatException.class, () -> Npy.read(file));
        assertTrue(e.getMessage().contains(file.toString()), "names the file: " + e.getMessage());
        for (String f : fragments) assertTrue(e.getMessage().contains(f), () -> f + " in " + e.getMessage());
    }

    @Test
    void rejectsWhatItCannotReadWithAMessageNamingTheFile() throws IOException {
        rejected(FIXTURES.resolve("bad_big_endian.npy"), "big-endian", "'>f4'");
        rejected(FIXTURES.resolve("bad_fortran.npy"), "fortran_order");
        rejected(FIXTURES.resolve("bad_int32.npy"), "'<i4'", "float32");
        rejected(FIXTURES.resolve("bad_big_endian_f2.npy"), "big-endian", "'>f2'", "a.astype('<f2')");
        rejected(dir.resolve("missing.npy"), "no such file");
        rejected(handMade("trunc.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                floats(1, 2, 3, 4, 5)), "expected 24 data bytes", "truncated");
        rejected(handMade("long.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                floats(1, 2, 3)), "trailing");
        rejected(handMade("nodescr.npy", 1, "{'fortran_order': False, 'shape': (2,), }", floats(1, 2)), "'descr'");
        rejected(handMade("garbled.npy", 1, "{'descr': '<f4', 'fortran_order': Nope, 'shape': (2,), }",
                floats(1, 2)), "malformed");
        rejected(handMade("struct.npy", 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
                floats(1, 2)), "structured");
        Path v9 = dir.resolve("v9.npy");
        Files.write(v9, new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 9, 0, 0, 0});
        rejected(v9, "version 9.0");
        Path text = dir.resolve("text.npy");
        Files.writeString(text, "x,y\n1,2\n");
        rejected(text, "not a .npy file");
    }

    @Test
    void writeRejectsDataThatDoesNotMatchTheShape() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Npy.write(dir.resolve("w.npy"), new long[] {2, 3}, new float[5]));
        assertTrue(e.getMessage().contains("expected 6 values"), e.getMessage());
    }
}
