package io.github.batchnorm4j.train;

import io.github.batchnorm4j.cli.JsonReader;

import java.util.Map;

/** The tests' name for {@link JsonReader}, the command line's strict JSON parser. */
public final class MiniJson {
    private MiniJson() {
    }

    public static Object parse(String text) {
        return JsonReader.parse(text);
    }

    public static Map<String, Object> parseObject(String text) {
        return JsonReader.parseObject(text);
    }
}
