package io.github.batchnorm4j.cli;

import io.github.batchnorm4j.train.MiniJson;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The one JSON writer round-trips through the tests' own parser ({@link MiniJson}) in both styles. */
class JsonTest {
    @Test
    void writesValidJsonThatRoundTrips() {
        for (Json j : List.of(new Json(), Json.spaced())) {
            String text = j.put("s", "a\"b\\c\nd\u0001").put("x", 0.05f).put("tiny", 1.5e-9)
                    .put("big", 123456789.0).put("n", -7L).put("nan", Double.NaN).put("inf", Double.NEGATIVE_INFINITY)
                    .put("t", true).put("arr", new double[] {0.25, Double.NaN, 3})
                    .put("nested", new Json().put("k", 1)).put("list", List.of("a", 2.5)).toString();
            assertRoundTrips(MiniJson.parseObject(text));
        }
    }

    @Test
    void theTwoStylesDifferInSpacesOnly() {
        assertEquals("{\"a\":1,\"b\":[2,0.5],\"c\":{\"d\":null}}",
                new Json().put("a", 1).put("b", new double[] {2, 0.5}).put("c", Json.spaced().put("d", null))
                        .toString());
        assertEquals("{\"a\": 1, \"b\": [2, 0.5], \"c\": {\"d\": null}}",
                Json.spaced().put("a", 1).put("b", new double[] {2, 0.5}).put("c", new Json().put("d", null))
                        .toString());
    }

    private static void assertRoundTrips(Map<String, Object> m) {
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
        assertEquals(List.of("a", 2.5), m.get("list"));
    }

    @Test
    void theTestParserRejectsNonJson() {
        assertThrows(IllegalArgumentException.class, () -> MiniJson.parse("{\"a\": NaN}"));
        assertThrows(IllegalArgumentException.class, () -> MiniJson.parse("{\"a\": 1} x"));
        assertThrows(IllegalArgumentException.class, () -> MiniJson.parse("{\"a\": 1,}"));
    }
}
