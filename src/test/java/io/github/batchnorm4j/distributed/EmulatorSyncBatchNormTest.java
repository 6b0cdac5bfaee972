package io.github.batchnorm4j.distributed;

import io.github.batchnorm4j.Layout;
import io.github.batchnorm4j.SplitBatchNormOps;
import io.github.batchnorm4j.gpu.HostArrayBatchNormOps;
import io.github.batchnorm4j.ptx.EmulatedDevice;

import java.util.ArrayList;
import java.util.List;

/**
 * {@link SyncBatchNormContractTest} with our kernels on an emulated device per rank, through the host API (the merge
 * kernels run with one record there). The device-resident path, where the kernels merge the gathered records
 * themselves, is {@link DeviceResidentSyncBatchNormTest}.
 */
class EmulatorSyncBatchNormTest extends SyncBatchNormContractTest {
    @Override
    protected SplitBatchNormOps open(int rank) {
        return new HostArrayBatchNormOps("emulator", new EmulatedDevice(), true);
    }

    /** The emulator is slow: K = 2, 3, 4 with equal and unequal slices, split between the layouts. */
    @Override
    protected List<SyncCase> cases() {
        List<SyncCase> cf = SyncCase.matrix(Layout.CHANNELS_FIRST, 3, 3, 2);
        List<SyncCase> cl = SyncCase.matrix(Layout.CHANNELS_LAST, 4);
        List<SyncCase> out = new ArrayList<>();
        for (int i = 0; i < cf.size(); i++) out.add(i % 2 == 0 ? cf.get(i) : cl.get(i));
        return out;
    }
}
