package io.github.batchnorm4j.testing;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * A minimal little-endian ELF64 reader: section headers, the dynamic symbol table (.dynsym with its .dynstr) and the
 * DT_NEEDED entries of the dynamic section. Enough to ask "does this shared library export that symbol, and what does
 * it link against" without a GPU, without loading it and without binutils.
 */
public final class ElfFile {
    private static final int SHT_DYNAMIC = 6;
    private static final int SHT_DYNSYM = 11;
    private static final long DT_NEEDED = 1;

    private final ByteBuffer b;
    private final List<long[]> sections = new ArrayList<>(); // type, offset, size, link, entsize

    public ElfFile(byte[] bytes) {
        b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (bytes.length < 64 || b.getInt(0) != 0x464c457f) throw new IllegalArgumentException("not an ELF file");
        if (bytes[4] != 2) throw new IllegalArgumentException("not ELF64 (EI_CLASS = " + bytes[4] + ")");
        if (bytes[5] != 1) throw new IllegalArgumentException("not little-endian (EI_DATA = " + bytes[5] + ")");
        long shoff = b.getLong(0x28);
        int shentsize = Short.toUnsignedInt(b.getShort(0x3A));
        int shnum = Short.toUnsignedInt(b.getShort(0x3C));
        for (int i = 0; i < shnum; i++) {
            int h = (int) (shoff + (long) i * shentsize);
            sections.add(new long[] {Integer.toUnsignedLong(b.getInt(h + 4)), b.getLong(h + 0x18), b.getLong(h + 0x20),
                    Integer.toUnsignedLong(b.getInt(h + 0x28)), b.getLong(h + 0x38)});
        }
    }

    /** The machine field (62 = x86-64). */
    public int machine() {
        return Short.toUnsignedInt(b.getShort(0x12));
    }

    private String string(long[] strtab, long offset) {
        int start = (int) (strtab[1] + offset);
        int end = start;
        while (b.get(end) != 0) end++;
        byte[] s = new byte[end - start];
        b.get(start, s);
        return new String(s, StandardCharsets.US_ASCII);
    }

    /** Names of the symbols the dynamic symbol table defines (st_shndx != SHN_UNDEF). */
    public Set<String> definedDynamicSymbols() {
        Set<String> out = new LinkedHashSet<>();
        for (long[] s : sections) {
            if (s[0] != SHT_DYNSYM) continue;
            long[] strtab = sections.get((int) s[3]);
            long entsize = s[4] == 0 ? 24 : s[4];
            for (long off = s[1]; off + entsize <= s[1] + s[2]; off += entsize) {
                int shndx = Short.toUnsignedInt(b.getShort((int) off + 6));
                long name = Integer.toUnsignedLong(b.getInt((int) off));
                if (shndx != 0 && name != 0) out.add(string(strtab, name));
            }
        }
        return out;
    }

    /** The DT_NEEDED libraries, in order. */
    public List<String> needed() {
        List<String> out = new ArrayList<>();
        for (long[] s : sections) {
            if (s[0] != SHT_DYNAMIC) continue;
            long[] strtab = sections.get((int) s[3]);
            for (long off = s[1]; off + 16 <= s[1] + s[2]; off += 16) {
                long tag = b.getLong((int) off);
                if (tag == 0) break; // DT_NULL
                if (tag == DT_NEEDED) out.add(string(strtab, b.getLong((int) off + 8)));
            }
        }
        return out;
    }

    /** Every NUL-terminated (or newline-NUL-terminated) printable ASCII string of at least {@code min} characters that starts with {@code prefix}. */
    public List<String> strings(String prefix, int min) {
        List<String> out = new ArrayList<>();
        byte[] p = prefix.getBytes(StandardCharsets.US_ASCII);
        int n = b.capacity();
        for (int i = 0; i < n; i++) {
            if (i > 0 && b.get(i - 1) != 0) continue; // strings in .rodata start after a NUL
            int j = i;
            while (j < n && b.get(j) >= 0x20 && b.get(j) < 0x7f) j++;
            int end = j;
            if (j + 1 < n && b.get(j) == '\n' && b.get(j + 1) == 0) j++; // log formats end with a newline
            if (j < n && b.get(j) == 0 && end - i >= min && end - i >= p.length) {
                boolean match = true;
                for (int k = 0; k < p.length && match; k++) match = b.get(i + k) == p[k];
                if (match) {
                    byte[] s = new byte[end - i];
                    b.get(i, s);
                    out.add(new String(s, StandardCharsets.US_ASCII));
                }
            }
            i = Math.max(i, j);
        }
        return out;
    }
}
