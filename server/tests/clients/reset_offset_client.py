#!/usr/bin/env python3
"""Apache's C++ RocketMQ client (PyPI rocketmq-client-python 0.5.0rc2) for the
offset-reset test (tests/broker_ops_mut.rs).

Usage:
  reset_offset_client.py produce NAMESRV TOPIC N
      Send N messages with bodies reset-00000 .. ; prints RESULT produced=N.
  reset_offset_client.py consume NAMESRV TOPIC GROUP N TIMES DEADLINE_S
      A push consumer of GROUP on TOPIC. Prints `SEEN k` once every message
      0..N-1 has arrived at least k times (k = 1..TIMES), then shuts the
      consumer down (its offsets are committed) and prints
      RESULT seen=<k> deliveries=<total>. FAIL: why and exit 1 at the deadline.

Every wait is bounded.
"""

import sys
import threading
import time

from rocketmq.client import ConsumeStatus, Message, Producer, PushConsumer


def fail(why):
    print("FAIL: " + why, flush=True)
    sys.exit(1)


def body_of(i):
    return "reset-%05d" % i


def produce(namesrv, topic, n):
    p = Producer("reset_py_producer", timeout=5000)
    p.set_namesrv_addr(namesrv)
    p.start()
    try:
        for i in range(n):
            m = Message(topic)
            m.set_keys("k%d" % i)
            m.set_body(body_of(i))
            for attempt in range(6):
                try:
                    r = p.send_sync(m)
                    break
                except Exception as e:  # noqa: BLE001 - the client raises its own types
                    if "No route info" not in str(e) or attempt == 5:
                        fail("send %d: %s" % (i, e))
                    time.sleep(0.5)
            if int(r.status) != 0:
                fail("send %d: status %s" % (i, r.status))
    finally:
        p.shutdown()
    print("RESULT produced=%d" % n, flush=True)


def consume(namesrv, topic, group, n, times, deadline_s):
    lock = threading.Lock()
    counts = {}
    errors = []
    total = [0]

    def on_message(msg):
        try:
            body = msg.body.decode()
            i = int(body[6:])
        except Exception as e:  # noqa: BLE001 - report any decoding problem
            with lock:
                errors.append("undecodable message: %r" % e)
            return ConsumeStatus.CONSUME_SUCCESS
        with lock:
            if body != body_of(i) or not 0 <= i < n:
                errors.append("unexpected message %r" % body)
            counts[i] = counts.get(i, 0) + 1
            total[0] += 1
        return ConsumeStatus.CONSUME_SUCCESS

    c = PushConsumer(group)
    c.set_namesrv_addr(namesrv)
    c.set_thread_count(2)
    c.subscribe(topic, on_message)
    c.start()
    reported = 0
    deadline = time.time() + deadline_s
    try:
        while reported < times:
            if time.time() > deadline:
                with lock:
                    short = [i for i in range(n) if counts.get(i, 0) <= reported]
                fail("after %ds: %d messages seen %d times or fewer (e.g. %s); deliveries %d"
                     % (deadline_s, len(short), reported, short[:5], total[0]))
            with lock:
                if errors:
                    fail(errors[0])
                least = min(counts.get(i, 0) for i in range(n))
            while reported < min(least, times):
                reported += 1
                print("SEEN %d deliveries=%d" % (reported, total[0]), flush=True)
            time.sleep(0.1)
    finally:
        c.shutdown()
    print("RESULT seen=%d deliveries=%d" % (reported, total[0]), flush=True)


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "produce":
        produce(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 8 and sys.argv[1] == "consume":
        consume(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]),
                int(sys.argv[7]))
    else:
        fail("usage: see the docstring")


if __name__ == "__main__":
    main()
