#!/usr/bin/env python3
"""Send with Apache's C++ RocketMQ client (PyPI rocketmq-client-python
0.5.0rc2) to show which queues a producer writes after a name server's
wipeWritePerm / addWritePerm (server/tests/namesrv_ops.rs).

Usage: python_drain.py NAMESRV_ADDR TOPIC COUNT

A fresh producer (it reads the route from the name server at start) sends
COUNT sync messages; each must be SEND_OK. Prints `RESULT sent=COUNT` and
exits 0, or `FAIL: why` and exits 1. Which broker stored them the test reads
from the brokers' max offsets.
"""

import sys
import time

from rocketmq.client import Message, Producer

# Client-side transport failures ("No route info" before the request left the
# client, under CPU starvation) are retried this many times.
CLIENT_RETRIES = 5


def fail(why):
    print("FAIL: " + why, flush=True)
    sys.exit(1)


def main():
    if len(sys.argv) != 4:
        fail("usage: python_drain.py NAMESRV_ADDR TOPIC COUNT")
    namesrv, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    p = Producer("py_drain_producer_%d" % int(time.time() * 1000), timeout=5000)
    p.set_namesrv_addr(namesrv)
    p.start()
    try:
        for i in range(count):
            m = Message(topic)
            m.set_keys("drain-%d" % i)
            m.set_body(("drain body %d" % i).encode())
            for attempt in range(CLIENT_RETRIES + 1):
                try:
                    r = p.send_sync(m)
                    break
                except Exception as e:  # noqa: BLE001 - the client raises its own types
                    if "No route info" not in str(e) or attempt == CLIENT_RETRIES:
                        fail("send %d: %s" % (i, e))
                    time.sleep(0.2)
            if int(r.status) != 0:
                fail("send %d: status %s" % (i, r.status))
    finally:
        p.shutdown()
    print("RESULT sent=%d" % count, flush=True)


if __name__ == "__main__":
    main()
