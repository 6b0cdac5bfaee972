package io.github.batchnorm4j.train;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

class JsonTextTest {
    @Test
    void writesValidJsonThatRoundTrips() {
        String text = new JsonText().put("s", "a\"b\\c\nd\u0001").put("x", 0.05f).put("tiny", 1.5e-9)
                .put("big", 123456789.0).put("n", -7L).put("nan", Double.NaN).put("inf", Double.NEGATIVE_INFINITY)
                .put("t", true).raw("arr", JsonText.array(new double[] {0.25, Double.NaN, 3}))
                .raw("nested", new JsonText().put("k", 1).toString()).toString();
        Map<String, Object> m = MiniJson.parseObject(text);
        assertEquals("a\"b\\c\nd\u0001", m.get("s"));
        assertEquals(0.05, (Double) m.get("x"), 1e-12, "float 0.05f is written as 0.05, not 0.0500000007");
        assertEquals(1.5e-9, (Double) m.get("tiny"), 1e-21);
        assertEquals(123456789.0, m.get("big"));
        assertEquals(-7.0, m.get("n"));
        assertNull(m.get("nan"));
        assertNull(m.get("inf"));
        assertEquals(true, m.get("t"));
        assertEquals(List.of(0.25, 3.0), ((List<?>) m.get("arr")).stream().filter(o -> o != null).toList());
        assertEquals(Map.of("k", 1.0), m.get("nested"));
    }

    @Test
    void theTestParserRejectsNonJson() {
        assertThrows(IllegalArgumentException.class, () -> MiniJson.parse("{\"a\": NaN}"));
        assertThrows(IllegalArgumentException.class, () -> MiniJson.parse("{\"a\": 1} x"));
        assertThrows(IllegalArgumentException.class, () -> MiniJson.parse("{\"a\": 1,}"));
    }
}
