package io.github.batchnorm4j;

import static io.github.batchnorm4j.testing.Messages.assertRejected;
import static io.github.batchnorm4j.testing.Tolerances.FORWARD_RTOL;
import static io.github.batchnorm4j.testing.Tolerances.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.batchnorm4j.testing.Reference64;
import io.github.batchnorm4j.testing.TestData;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** Chan's merge of (count, mean, M2) triples, independent of any backend. */
class ChannelStatisticsTest {

    /** The triple of x[from, to) per channel of a plain [rows, C] tensor, by the two-pass formulas. */
    private static ChannelStatistics of(float[] x, int channels, int fromRow, int toRow) {
        Shape part = Shape.channelsLast(toRow - fromRow, channels);
        float[] slice = Arrays.copyOfRange(x, fromRow * channels, toRow * channels);
        double[] mean = Reference64.mean(part, slice);
        return new ChannelStatistics(toRow - fromRow, mean, Reference64.m2(part, slice, mean));
    }

    @Test
    void mergingUnequalPartsInAnyGroupingGivesTheWhole() {
        int channels = 3;
        int rows = 37;
        float[] x = TestData.normal(TestData.random(21), rows * channels, 1e3, 2);
        ChannelStatistics whole = of(x, channels, 0, rows);
        ChannelStatistics a = of(x, channels, 0, 5);
        ChannelStatistics b = of(x, channels, 5, 6);
        ChannelStatistics c = of(x, channels, 6, rows);

        for (ChannelStatistics merged : new ChannelStatistics[] {a.merge(b).merge(c), a.merge(b.merge(c)),
                c.merge(a).merge(b)}) {
            assertEquals(rows, merged.count());
            assertClose("mean", whole.means(), merged.means(), FORWARD_RTOL);
            assertClose("m2", whole.m2s(), merged.m2s(), FORWARD_RTOL);
        }
    }

    @Test
    void emptyIsTheIdentity() {
        ChannelStatistics s = new ChannelStatistics(4, new double[] {1, 2}, new double[] {3, 4});
        assertSame(s, s.merge(ChannelStatistics.empty(2)));
        assertSame(s, ChannelStatistics.empty(2).merge(s));
    }

    @Test
    void varianceAndInvstd() {
        ChannelStatistics s = new ChannelStatistics(4, new double[] {1}, new double[] {6});
        assertEquals(1.5, s.variance(0));
        assertEquals(2.0, s.unbiasedVariance(0));
        assertEquals(1 / Math.sqrt(1.5 + 1e-5), s.invstd(0, 1e-5), 1e-15);
        assertThrows(IllegalStateException.class, () -> new ChannelStatistics(1, new double[] {1}, new double[] {0})
                .unbiasedVariance(0));
    }

    @Test
    void badArgumentsAreRejected() {
        assertRejected("count", () -> new ChannelStatistics(-1, new double[1], new double[1]));
        assertRejected("mean", () -> new ChannelStatistics(1, null, new double[1]));
        assertRejected("same length", () -> new ChannelStatistics(1, new double[2], new double[1]));
        assertRejected("m2[1]", () -> new ChannelStatistics(1, new double[2], new double[] {0, -1}));
        assertRejected("channel counts differ", () -> ChannelStatistics.empty(2).merge(ChannelStatistics.empty(3)));
        // NaN is data, not a bad argument: it propagates.
        assertTrue(Double.isNaN(new ChannelStatistics(2, new double[] {1}, new double[] {Double.NaN}).variance(0)));
    }

}
