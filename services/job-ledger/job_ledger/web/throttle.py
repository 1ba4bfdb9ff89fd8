"""Password and token guessing, throttled: failed attempts counted per client and overall.

One :class:`GuessThrottle` per app serves the API's Bearer check and the login form alike (a
guess is a guess). A client with :attr:`~GuessThrottle.per_client` failures within
:attr:`~GuessThrottle.client_window_s` is refused (429 with ``Retry-After``) before its
credential is even looked at, until its oldest failure leaves the window. When failures from
all clients together reach :attr:`~GuessThrottle.overall` within
:attr:`~GuessThrottle.overall_window_s` (many addresses guessing at once), every client that
failed at all in its window is refused until the overall rate drops; a client that has not
failed, the admin at their own address, is let through all along.

The counts live in this process (per instance): several ledger API processes each allow the
budget. Memory is bounded: only the most recent :data:`MAX_CLIENTS` clients are remembered.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_CLIENTS = 10_000


class GuessThrottle:
    """Counts failures and answers whether (and how long) a client must wait.

    Not thread-safe; meant for one event loop, where :meth:`refusal` and :meth:`failed` run
    without an ``await`` in between, so parallel guesses cannot slip past the budget together.
    """

    def __init__(
        self,
        *,
        per_client: int = 10,
        client_window_s: float = 600.0,
        overall: int = 100,
        overall_window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_client = per_client
        self.client_window_s = client_window_s
        self.overall = overall
        self.overall_window_s = overall_window_s
        self._clock = clock
        self._clients: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque(maxlen=overall)

    def refusal(self, client: str) -> int | None:
        """Seconds ``client`` must wait before it may try again (the ``Retry-After``), or None
        when it may try now."""
        now = self._clock()
        failures = self._recent(client, now)
        if len(failures) >= self.per_client:
            return _seconds(failures[0] + self.client_window_s - now)
        self._prune(self._all, self.overall_window_s, now)
        if failures and len(self._all) >= self.overall:
            return _seconds(self._all[0] + self.overall_window_s - now)
        return None

    def failed(self, client: str) -> int:
        """Count a failure of ``client``; return how many it has in its window (this one too).

        The login form counts an attempt as failed before reading it and calls
        :meth:`succeeded` when it was right, so a burst in flight is counted as it arrives.
        """
        now = self._clock()
        failures = self._recent(client, now)
        failures.append(now)
        self._clients[client] = failures
        self._clients.move_to_end(client)
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)
        self._all.append(now)
        return len(failures)

    def succeeded(self, client: str) -> None:
        """Forget ``client``'s failures: it knows a credential."""
        self._clients.pop(client, None)

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._clients.get(client)
        if failures is None:
            return deque(maxlen=self.per_client)
        self._prune(failures, self.client_window_s, now)
        return failures

    @staticmethod
    def _prune(moments: deque[float], window_s: float, now: float) -> None:
        while moments and moments[0] <= now - window_s:
            moments.popleft()


def _seconds(wait_s: float) -> int:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return max(1, math.ceil(wait_s))
