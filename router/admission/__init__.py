"""Admission control: how many requests of a model run at once, who waits for a slot, who is shed.

One component, ``AdmissionQueue`` (``queue.py``): per model, a bound on this
router's requests in flight (the sum over the model's healthy replicas of what
each may take, ``capacity.py``, from the ``max_num_seqs`` its engine publishes
in its registry record) and a bounded queue of requests waiting for a slot, in
the order a ``QueuePolicy`` (``policy.py``) serves them: by default the weighted
fair share between API keys (``fair_share.py``: the key served the fewest tokens
lately per unit of weight goes next), or first come first served (``FifoPolicy``).
A request beyond the queue bound, or one that waited ``max_wait_seconds``, is
shed (``Shed``; the pipeline's admit step answers it in the dialect's shape,
``shed.py``); a waiter whose client went away leaves the queue at once.
Everything is this router's own, in memory (the fair-share accounts too): O(1) per request, O(log k)
for k keys waiting under fair share; no Redis.
"""

from fleetgate.router.admission.fair_share import FairSharePolicy
from fleetgate.router.admission.policy import FifoPolicy, QueuePolicy, Waiter
from fleetgate.router.admission.queue import AdmissionQueue, ClientLeft, Shed, ShedReason, Slot

__all__ = ["AdmissionQueue", "ClientLeft", "FairSharePolicy", "FifoPolicy", "QueuePolicy", "Shed", "ShedReason",
           "Slot", "Waiter"]
