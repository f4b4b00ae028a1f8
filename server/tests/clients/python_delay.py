#!/usr/bin/env python3
"""Delayed messages through Apache's C++ RocketMQ client (PyPI
rocketmq-client-python 0.5.0rc2) against a ferromq name server and broker.

Usage:
  python_delay.py NAMESRV TOPIC send N FIRST_LEVEL LAST_LEVEL
      N sync sends with `set_delay_time_level`, levels cycling FIRST..LAST; body
      "delay-<i>-L<level>". Prints `SENT <i> <level>` per message and
      `RESULT sent=<N>`.
  python_delay.py NAMESRV TOPIC pull N DEADLINE_S
      Pull every queue of TOPIC from offset 0 (C API pull consumer) until N
      distinct messages arrived or DEADLINE_S passed. Prints one line
      `GOT <body> <born_ms> <store_ms>` per message received (duplicates
      included) and `RESULT distinct=<n> received=<m>`.

The checks (no earlier than the delay, at most a second later) are made by the
Rust test from the printed timestamps: the born timestamp is the client's send
time, the store timestamp the broker's time of delivery to the real topic.
"""

import ctypes
import sys
import time
from ctypes import POINTER, c_int

from rocketmq.client import Message, Producer
from rocketmq.ffi import _CMessageQueue, dll

# The pull consumer's ctypes declarations and status codes.
from python_client import E_FOUND, E_NO_NEW_MSG, send_sync  # noqa: F401  (sets up dll)

for name in ("GetMessageBornTimestamp", "GetMessageStoreTimestamp"):
    getattr(dll, name).argtypes = [ctypes.c_void_p]
    getattr(dll, name).restype = ctypes.c_longlong


def fail(why):
    print("FAIL: " + why, flush=True)
    sys.exit(1)


def send(namesrv, topic, n, first, last):
    p = Producer("py_delay_producer", timeout=5000)
    p.set_namesrv_addr(namesrv)
    p.start()
    try:
        span = last - first + 1
        for i in range(n):
            level = first + i % span
            m = Message(topic)
            m.set_keys("delay-%d" % i)
            m.set_delay_time_level(level)
            m.set_body("delay-%d-L%d" % (i, level))
            r = send_sync(p, m, i)
            m.destroy()
            if int(r.status) != 0:
                fail("send %d: status %s" % (i, r.status))
            print("SENT %d %d" % (i, level), flush=True)
    finally:
        p.shutdown()
    print("RESULT sent=%d" % n, flush=True)


def pull(namesrv, topic, n, deadline_s):
    c = dll.CreatePullConsumer(b"py_delay_pull")
    if not c:
        fail("CreatePullConsumer returned null")
    dll.SetPullConsumerNameServerAddress(c, namesrv.encode())
    if dll.StartPullConsumer(c) != 0:
        fail("StartPullConsumer failed")
    distinct = set()
    received = 0
    deadline = time.time() + deadline_s
    try:
        mqs = POINTER(_CMessageQueue)()
        size = c_int(0)
        while True:
            if dll.FetchSubscriptionMessageQueues(c, topic.encode(), ctypes.byref(mqs), ctypes.byref(size)) == 0:
                break
            if time.time() > deadline:
                fail("no route for %s" % topic)
            time.sleep(0.2)
        offsets = [0] * size.value
        while len(distinct) < n and time.time() < deadline:
            progressed = False
            for qi in range(size.value):
                r = dll.Pull(c, ctypes.byref(mqs[qi]), b"*", offsets[qi], 32)
                if r.pullStatus == E_FOUND:
                    for k in range(r.size):
                        h = r.msgFoundList[k]
                        body = dll.GetMessageBody(h).decode()
                        born = dll.GetMessageBornTimestamp(h)
                        stored = dll.GetMessageStoreTimestamp(h)
                        print("GOT %s %d %d" % (body, born, stored), flush=True)
                        distinct.add(body)
                        received += 1
                    offsets[qi] = r.nextBeginOffset
                    progressed = True
                dll.ReleasePullResult(r)
            if not progressed:
                time.sleep(0.05)
        dll.ReleaseSubscriptionMessageQueue(mqs)
    finally:
        dll.ShutdownPullConsumer(c)
        dll.DestroyPullConsumer(c)
    print("RESULT distinct=%d received=%d" % (len(distinct), received), flush=True)


def main():
    if len(sys.argv) < 5:
        fail(__doc__)
    namesrv, topic, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "send":
        send(namesrv, topic, int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    elif mode == "pull":
        pull(namesrv, topic, int(sys.argv[4]), float(sys.argv[5]))
    else:
        fail("unknown mode " + mode)


if __name__ == "__main__":
    main()
