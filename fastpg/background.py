"""One call run in a thread beside the training loop: an overlapped update, a checkpoint being written."""
import threading


class Background:
    """``function(*args)`` in a daemon thread from :meth:`start` on; :meth:`result` waits for it and returns its
    value or re-raises its exception in the caller's thread.

    It pays only for calls that spend their time outside the interpreter's lock: compiled kernels that release
    it, file writes and fsync.
    """

    def __init__(self, function, *args, name="fastpg-background"):
        self._value = self._error = None

        def run():
            try:
                self._value = function(*args)
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc

        self._thread = threading.Thread(target=run, name=name, daemon=True)

    def start(self):
        """Start the call, unless it has started already."""
        if self._thread.ident is None:
            self._thread.start()

    def result(self):
        """Wait for the call (starting it first if need be); its value, or its exception raised here."""
        self.start()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
