package io.github.batchnorm4j.gpu;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A {@link Device} that executes nothing: it records allocations and launches, and checks every launch's arguments
 * against the kernel's {@code .param} list in the PTX (count and sizes), as a real driver would. For tests of host
 * orchestration (validation before launch, geometry, workspace reuse) that need no kernel results.
 */
final class RecordingDevice implements Device {
    record Launch(String kernel, Dim3 grid, Dim3 block, KernelArgs args) {
    }

    final List<Launch> launches = new ArrayList<>();
    int allocations;
    int live;
    private final DeviceProperties props;
    private boolean closed;

    RecordingDevice(int sms) {
        props = Architecture.SM_90.properties(sms);
    }

    @Override
    public String name() {
        return "recording device";
    }

    @Override
    public DeviceProperties properties() {
        return props;
    }

    @Override
    public DeviceBuffer allocate(long bytes) {
        if (bytes < 1) throw new IllegalArgumentException("bytes must be >= 1, got " + bytes);
        allocations++;
        live++;
        RecordingDevice self = this;
        return new DeviceBuffer() {
            boolean freed;

            @Override
            public long bytes() {
                return bytes;
            }

            @Override
            public Device device() {
                return self;
            }

            @Override
            public boolean isClosed() {
                return freed;
            }

            @Override
            public void close() {
                if (!freed) live--;
                freed = true;
            }
        };
    }

    @Override
    public void copyToDevice(float[] src, int srcOffset, DevicePointer dst, int count, DeviceStream stream) {
        checkRoom(dst, count * 4L);
    }

    @Override
    public void copyToDevice(int[] src, int srcOffset, DevicePointer dst, int count, DeviceStream stream) {
        checkRoom(dst, count * 4L);
    }

    @Override
    public void copyToHost(DevicePointer src, float[] dst, int dstOffset, int count, DeviceStream stream) {
        checkRoom(src, count * 4L);
    }

    @Override
    public void copyToHost(DevicePointer src, int[] dst, int dstOffset, int count, DeviceStream stream) {
        checkRoom(src, count * 4L);
    }

    @Override
    public void copyDeviceToDevice(DevicePointer src, DevicePointer dst, long bytes, DeviceStream stream) {
    }

    @Override
    public void memset(DevicePointer dst, byte value, long bytes, DeviceStream stream) {
        checkRoom(dst, bytes);
    }

    private static void checkRoom(DevicePointer p, long bytes) {
        if (p.buffer().isClosed()) throw new IllegalStateException("use of a closed buffer");
        if (p.remaining() < bytes) throw new DeviceException("out of bounds: " + bytes + " bytes at " + p);
    }

    private static final Pattern ENTRY = Pattern.compile("\\.entry\\s+(\\w+)\\s*\\(([^)]*)\\)");
    private static final Pattern PARAM = Pattern.compile("\\.param\\s+\\.(\\w)(\\d+)\\s+\\w+");

    @Override
    public DeviceModule loadModule(String name, String ptx) {
        Map<String, List<Integer>> params = new LinkedHashMap<>();
        Matcher m = ENTRY.matcher(ptx);
        while (m.find()) {
            List<Integer> sizes = new ArrayList<>();
            Matcher p = PARAM.matcher(m.group(2));
            while (p.find()) sizes.add(Integer.parseInt(p.group(2)) / 8);
            params.put(m.group(1), sizes);
        }
        return new DeviceModule() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public Kernel kernel(String entryName) {
                if (!params.containsKey(entryName)) throw new DeviceException(name + " has no entry " + entryName);
                DeviceModule mod = this;
                return new RecordedKernel(entryName, mod, params.get(entryName), RecordingDevice.this);
            }

            @Override
            public void close() {
            }
        };
    }

    /** What every kernel claims to use (40 registers by default: 6 blocks of 256 threads per SM on sm_90). */
    KernelResources resources = new KernelResources(40, 512, 0, 256, "recording device");

    record RecordedKernel(String name, DeviceModule module, List<Integer> paramSizes, RecordingDevice device)
            implements Kernel {
        @Override
        public KernelResources resources() {
            return device.resources;
        }
    }

    @Override
    public int maxActiveBlocksPerMultiprocessor(Kernel kernel, int blockThreads, int dynamicSharedBytes) {
        return Occupancy.of(props, kernel.resources(), blockThreads, dynamicSharedBytes).blocksPerSm();
    }

    @Override
    public void launch(Kernel kernel, Dim3 grid, Dim3 block, int dynamicSharedBytes, DeviceStream stream,
                       KernelArgs args) {
        List<Integer> sizes = ((RecordedKernel) kernel).paramSizes();
        if (sizes.size() != args.size()) {
            throw new DeviceException(kernel.name() + ": expected " + sizes.size() + " arguments, got " + args.size());
        }
        for (int i = 0; i < sizes.size(); i++) {
            KernelArgs.Arg a = args.list().get(i);
            if (a.kind().bytes() != sizes.get(i)) {
                throw new DeviceException(kernel.name() + ": argument " + i + " is " + a.kind() + ", the PTX expects "
                        + sizes.get(i) + " bytes");
            }
            if (a.value() instanceof DevicePointer p && p.buffer().isClosed()) {
                throw new DeviceException(kernel.name() + ": argument " + i + " points into a closed buffer");
            }
        }
        if (block.volume() > props.maxThreadsPerBlock() || block.x() > 1024 || block.y() > 1024 || block.z() > 64
                || grid.y() > 65535 || grid.z() > 65535) {
            throw new DeviceException(kernel.name() + ": bad geometry grid " + grid + " block " + block);
        }
        launches.add(new Launch(kernel.name(), grid, block, args));
    }

    private final DeviceStream stream = new DeviceStream() {
        @Override
        public void synchronize() {
        }

        @Override
        public void waitFor(DeviceEvent event) {
            if (event == null) throw new IllegalArgumentException("event must not be null");
        }

        @Override
        public boolean isClosed() {
            return false;
        }

        @Override
        public void close() {
        }
    };

    /** Work completes when it is queued here, so an event has nothing to wait for. */
    @Override
    public DeviceEvent createEvent() {
        return new DeviceEvent() {
            @Override
            public void record(DeviceStream s) {
            }

            @Override
            public void synchronize() {
            }

            @Override
            public void close() {
            }
        };
    }

    @Override
    public DeviceStream defaultStream() {
        return stream;
    }

    @Override
    public DeviceStream createStream() {
        return stream;
    }

    @Override
    public void synchronize() {
    }

    @Override
    public void close() {
        closed = true;
    }

    boolean isClosed() {
        return closed;
    }
}
