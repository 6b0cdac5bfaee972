package io.github.batchnorm4j.distributed;

/**
 * A collective operation failed as a whole: the ranks disagreed on the buffer size, another rank failed, closed or
 * aborted the group, a timeout passed, or the communication library reported an error. After it the group may be
 * unusable (see the implementation); the message says which rank saw what.
 */
public class CollectiveException extends RuntimeException {
    public CollectiveException(String message) {
        super(message);
    }

    public CollectiveException(String message, Throwable cause) {
        super(message, cause);
    }
}
