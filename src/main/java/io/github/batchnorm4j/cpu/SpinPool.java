package io.github.batchnorm4j.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.IntConsumer;

/**
 * The CPU backend's worker threads: {@link #run} hands task t (t ≥ 1) of a call to worker t − 1 and runs task 0 on the
 * calling thread, so a piece of the tensor always lands on the same thread (and, with the OS's usual affinity, on the
 * same core and its cache) from one pass to the next.
 *
 * <p>Why not a ForkJoinPool: its idle workers park at once, and waking a parked thread costs a system call and a
 * reschedule, tens of microseconds on a virtual machine, about as long as a whole pass over a 1 MB tensor: a second
 * thread made such ops slower, not faster. Here a worker that finished a task keeps polling for the next one for
 * {@link #SPIN_NANOS} before it parks (OpenMP runtimes, which PyTorch's CPU ops use, do the same), so back-to-back
 * calls hand work over in well under a microsecond, and an idle pool costs nothing after that.
 *
 * <p>A task not yet taken by its worker when the calling thread has finished task 0 is taken back and run by the
 * calling thread: on a machine with more runnable threads than cores a descheduled worker then costs no more than
 * running on one thread. One call at a time uses the workers; a call that finds them busy (calls from several threads
 * at once) runs its tasks on its own thread. Either way each task is the same piece: the results do not depend on
 * which thread ran it.
 */
final class SpinPool {
    /** How long an idle worker polls for the next task before it parks. */
    static final long SPIN_NANOS = 200_000L;

    private final Worker[] workers;
    private final ReentrantLock lock = new ReentrantLock();
    private final AtomicInteger pending = new AtomicInteger();
    private volatile boolean closed;
    private volatile Thread caller;
    private volatile RuntimeException failure;

    /** A pool of {@code workers} threads (daemons, named after {@code name}). */
    SpinPool(int workers, String name) {
        this.workers = new Worker[workers];
        for (int i = 0; i < workers; i++) {
            Worker w = new Worker(i + 1);
            Thread t = new Thread(w, name + "-" + (i + 1));
            t.setDaemon(true);
            w.thread = t;
            this.workers[i] = w;
            t.start();
        }
    }

    /** Worker threads (the calling thread is not one of them). */
    int workers() {
        return workers.length;
    }

    /**
     * Runs body(0 .. tasks − 1), task 0 on the calling thread, and returns when all are done; rethrows the first
     * failure (a RuntimeException or Error of any task) after all tasks ended.
     *
     * @throws IllegalArgumentException if tasks &gt; workers() + 1
     */
    void run(int tasks, IntConsumer body) {
        if (tasks > workers.length + 1) {
            throw new IllegalArgumentException("tasks: expected <= " + (workers.length + 1) + ", got " + tasks);
        }
        if (tasks <= 1 || closed || !lock.tryLock()) {
            for (int t = 0; t < tasks; t++) body.accept(t);
            return;
        }
        try {
            failure = null;
            caller = Thread.currentThread();
            pending.set(tasks - 1);
            for (int t = 1; t < tasks; t++) workers[t - 1].hand(body);
            Throwable mine = null;
            try {
                body.accept(0);
                for (int t = 1; t < tasks; t++) { // tasks their workers have not started yet
                    if (workers[t - 1].task.compareAndSet(body, null)) {
                        try {
                            body.accept(t);
                        } finally {
                            pending.decrementAndGet();
                        }
                    }
                }
            } catch (RuntimeException | Error e) {
                mine = e;
                for (int t = 1; t < tasks; t++) { // not run: never to be started either
                    if (workers[t - 1].task.compareAndSet(body, null)) pending.decrementAndGet();
                }
            }
            awaitWorkers(); // even when a task failed: the workers still use the arguments
            if (mine instanceof Error e) throw e;
            RuntimeException first = mine != null ? (RuntimeException) mine : failure;
            if (first != null) throw first;
        } finally {
            caller = null;
            lock.unlock();
        }
    }

    private void awaitWorkers() {
        long start = 0;
        for (int spins = 0; pending.get() > 0; spins++) {
            if (spins < 1 << 10) {
                Thread.onSpinWait();
            } else {
                if (start == 0) start = System.nanoTime();
                if (System.nanoTime() - start < SPIN_NANOS) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.parkNanos(this, 50_000L); // a worker unparks us when it finishes last
                }
            }
        }
    }

    /** Stops the workers (they finish a task in progress first); later calls run on the calling thread. */
    void close() {
        closed = true;
        for (Worker w : workers) LockSupport.unpark(w.thread);
    }

    private final class Worker implements Runnable {
        final int id;
        Thread thread;
        /** The task to run: set by the caller, cleared by whoever takes it (the worker, or the caller taking it back). */
        final AtomicReference<IntConsumer> task = new AtomicReference<>();
        /** True while the worker is parked (or about to park): the caller must unpark it. */
        volatile boolean parked;

        Worker(int id) {
            this.id = id;
        }

        void hand(IntConsumer body) {
            task.set(body);
            if (parked) LockSupport.unpark(thread);
        }

        @Override
        public void run() {
            while (!closed) {
                IntConsumer body = await();
                if (body == null) continue;
                try {
                    body.accept(id);
                } catch (RuntimeException e) {
                    if (failure == null) failure = e;
                } catch (Error e) {
                    if (failure == null) failure = new IllegalStateException("CPU worker " + id + " failed", e);
                } finally {
                    if (pending.decrementAndGet() == 0) {
                        Thread c = caller;
                        if (c != null) LockSupport.unpark(c);
                    }
                }
            }
        }

        /** The next task, taken: polled for SPIN_NANOS, then parked for; null when closed meanwhile. */
        private IntConsumer await() {
            long start = System.nanoTime();
            int spins = 0;
            while (true) {
                IntConsumer body = task.get();
                if (body != null && task.compareAndSet(body, null)) return body;
                if (closed) return null;
                if (++spins < 64 || System.nanoTime() - start < SPIN_NANOS) {
                    Thread.onSpinWait();
                    continue;
                }
                parked = true;
                // Checked again after announcing the park: a task handed in between is seen here or unparks us.
                if (task.get() == null && !closed) LockSupport.park(this);
                parked = false;
            }
        }
    }
}
