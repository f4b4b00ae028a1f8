#!/usr/bin/env python3
"""A long-running producer on Apache's C++ RocketMQ client (PyPI
rocketmq-client-python 0.5.0rc2, which bundles librocketmq.so), for
server/tests/interop_python_failover.rs: it keeps sending while the test kills
the master of the broker group, and reports every acknowledged send.

Usage: python_failover_producer.py NAMESRV_ADDR TOPIC [RETRY_TIMES] [MAX_SECONDS]

The producer finds the broker through the name server, as any application
does. Bodies are unique, `cpp-N` (N from 1), each handed once to
`Producer.send_sync`; the client's own retries are the only resends: the C++
`DefaultMQProducer` tries a send up to RETRY_TIMES times in all (its
`setRetryTimes`, default 5, which the Python binding does not expose: called
here through ctypes on the producer the C handle wraps) when a send fails or is
answered with a status other than SEND_OK. When `send_sync` raises, the body
is given up and the next one is sent after 100 ms.

Output, one line each, flushed, times in ms since the Unix epoch:
  RETRY_TIMES default=D set=S     once, before the first send
  ACK <body> <queueOffset> <msgId> <ms>   a send answered SEND_OK
  NOTOK <body> <status> <ms>      answered with another status (not an ack)
  FAIL <body> <ms> <error>        send_sync raised (given up)
  DONE sent=N acked=A notok=K failed=F
Stops (shutting the producer down) when its standard input reaches EOF or
after MAX_SECONDS (default 1800), then prints DONE and exits 0.

The client logs under $HOME/logs/rocketmq-cpp (INFO level here: route
updates show there as `updateTopicRouteInfoFromNameServer changed`).
"""

import ctypes
import sys
import threading
import time
from ctypes import c_int, c_void_p

from rocketmq.client import Message, Producer
from rocketmq.ffi import dll

GROUP = "cpp_failover_group"
SEND_TIMEOUT_MS = 3000
# CLogLevel: FATAL=1, ERROR=2, WARN=3, INFO=4, DEBUG=5, TRACE=6.
LOG_LEVEL_INFO = 4


def now_ms():
    return int(time.time() * 1000)


def inner_producer(p):
    """The C++ DefaultMQProducer behind the C handle: CreateProducer returns a
    struct whose first field points to it (CProducer.cpp, DefaultProducer)."""
    return c_void_p.from_address(p._handle).value


def set_retry_times(p, times):
    inner = inner_producer(p)
    get = getattr(dll, "_ZNK8rocketmq17DefaultMQProducer13getRetryTimesEv")
    get.argtypes = [c_void_p]
    get.restype = c_int
    put = getattr(dll, "_ZN8rocketmq17DefaultMQProducer13setRetryTimesEi")
    put.argtypes = [c_void_p, c_int]
    put.restype = None
    default = get(inner)
    put(inner, times)
    return default, get(inner)


def main():
    if len(sys.argv) < 3:
        print("FAILURE usage: python_failover_producer.py NAMESRV_ADDR TOPIC [RETRY_TIMES] [MAX_SECONDS]", flush=True)
        sys.exit(2)
    namesrv, topic = sys.argv[1], sys.argv[2]
    retries = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    max_seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 1800.0

    stop = threading.Event()

    def watch_stdin():
        try:
            sys.stdin.read()
        finally:
            stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    p = Producer(GROUP, timeout=SEND_TIMEOUT_MS)
    p.set_namesrv_addr(namesrv)
    dll.SetProducerLogLevel.argtypes = [c_void_p, c_int]
    dll.SetProducerLogLevel(p._handle, LOG_LEVEL_INFO)
    default, now = set_retry_times(p, retries)
    print("RETRY_TIMES default=%d set=%d" % (default, now), flush=True)
    p.start()

    sent = acked = notok = failed = 0
    deadline = time.time() + max_seconds
    try:
        while not stop.is_set() and time.time() < deadline:
            sent += 1
            body = "cpp-%d" % sent
            m = Message(topic)
            m.set_keys(body)
            m.set_body(body)
            try:
                r = p.send_sync(m)
            except Exception as e:  # noqa: BLE001 - the binding raises its own types
                failed += 1
                why = " ".join(str(e).split())[:300]
                print("FAIL %s %d %s" % (body, now_ms(), why), flush=True)
                time.sleep(0.1)
                continue
            finally:
                m.destroy()
            if int(r.status) == 0:
                acked += 1
                print("ACK %s %d %s %d" % (body, r.offset, r.msg_id, now_ms()), flush=True)
            else:
                notok += 1
                print("NOTOK %s %d %d" % (body, int(r.status), now_ms()), flush=True)
    finally:
        p.shutdown()
    print("DONE sent=%d acked=%d notok=%d failed=%d" % (sent, acked, notok, failed), flush=True)


if __name__ == "__main__":
    main()
