package io.github.batchnorm4j.cuda;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Parameter lists read from PTX text (the launch check's source of truth). */
class PtxSignaturesTest {

    @Test
    void readsEveryEntryWithParameterSizes() throws IOException {
        String ptx;
        try (InputStream in = getClass().getResourceAsStream("/io/github/batchnorm4j/gpu/device_smoke.ptx")) {
            ptx = new String(in.readAllBytes(), StandardCharsets.US_ASCII);
        }
        Map<String, PtxSignatures.Entry> m = PtxSignatures.parse(ptx);
        assertEquals(2, m.size());
        assertEquals(List.of("axpb_p", "axpb_a", "axpb_n"), m.get("axpb").paramNames());
        assertEquals(List.of(8, 4, 4), m.get("axpb").paramBytes());
        assertEquals(List.of(8, 4), m.get("shared_probe").paramBytes());
    }

    @Test
    void alignedByteArrayParametersCountTheirBytes() {
        String ptx = ".visible .entry k(\n\t.param .align 8 .b8 k_param_0[24],\n\t.param .f64 k_param_1,\n\t.param .s16 s\n)\n{ ret; }";
        PtxSignatures.Entry e = PtxSignatures.parse(ptx).get("k");
        assertEquals(List.of(24, 8, 2), e.paramBytes());
    }
}
