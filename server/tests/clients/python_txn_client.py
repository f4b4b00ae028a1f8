#!/usr/bin/env python3
"""The seed's transactional producer flow with Apache's C++ RocketMQ client
(PyPI rocketmq-client-python 0.5.0rc2, TransactionMQProducer) against ferromq.

Usage: python_txn_client.py NAMESRV_ADDR TOPIC N

1. A push consumer (GROUP_CONSUMER) subscribes to TOPIC ('*').
2. A TransactionMQProducer sends N messages with sendMessageInTransaction. The
   local transaction answers COMMIT for i % 3 == 0, ROLLBACK for i % 3 == 1 and
   UNKNOWN for i % 3 == 2.
3. The broker checks the unknown ones back; the check listener commits those
   with (i // 3) even and rolls back the others (and repeats the first answer
   for any other message it is asked about).
4. The consumer must receive exactly the committed messages, each once.

Every wait is bounded. Prints `RESULT key=value ...` and exits 0 on success,
prints `FAIL: why` and exits 1 otherwise.
"""

import sys
import threading
import time

from rocketmq.exceptions import ProducerSendSyncFailed
from rocketmq.client import (
    ConsumeStatus,
    Message,
    PushConsumer,
    TransactionMQProducer,
    TransactionStatus,
)

GROUP_PRODUCER = "py_txn_producer"
GROUP_CONSUMER = "py_txn_consumer"
DEADLINE_S = 120
SEND_ATTEMPTS = 10
PREFIX = "txn-body-"


def fail(why):
    print("FAIL: " + why, flush=True)
    sys.exit(1)


def body_of(i):
    return "%s%05d" % (PREFIX, i)


def index_of(body):
    text = body.decode() if isinstance(body, bytes) else body
    if not text.startswith(PREFIX):
        raise ValueError("foreign body %r" % text)
    return int(text[len(PREFIX):])


def local_answer(i):
    return (TransactionStatus.COMMIT, TransactionStatus.ROLLBACK, TransactionStatus.UNKNOWN)[i % 3]


def check_answer(i):
    if i % 3 == 2:
        return TransactionStatus.COMMIT if (i // 3) % 2 == 0 else TransactionStatus.ROLLBACK
    return local_answer(i)


def committed(i):
    return check_answer(i) == TransactionStatus.COMMIT


class Seen:
    def __init__(self):
        self.lock = threading.Lock()
        self.consumed = {}
        self.checked = {}
        self.errors = []

    def on_message(self, msg):
        try:
            i = index_of(msg.body)
        except Exception as e:  # noqa: BLE001 - report anything undecodable
            with self.lock:
                self.errors.append("consumer: %r" % e)
            return ConsumeStatus.CONSUME_SUCCESS
        with self.lock:
            self.consumed[i] = self.consumed.get(i, 0) + 1
            if msg.get_property("TRAN_MSG"):
                self.errors.append("message %d still carries TRAN_MSG" % i)
        return ConsumeStatus.CONSUME_SUCCESS

    def on_check(self, msg):
        try:
            i = index_of(msg.body)
        except Exception as e:  # noqa: BLE001
            with self.lock:
                self.errors.append("check: %r" % e)
            return TransactionStatus.UNKNOWN
        with self.lock:
            self.checked[i] = self.checked.get(i, 0) + 1
        return check_answer(i)


def main():
    if len(sys.argv) != 4:
        fail("usage: python_txn_client.py NAMESRV_ADDR TOPIC N")
    namesrv, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t0 = time.time()
    seen = Seen()

    consumer = PushConsumer(GROUP_CONSUMER)
    consumer.set_namesrv_addr(namesrv)
    consumer.set_thread_count(2)
    consumer.subscribe(topic, seen.on_message)
    consumer.start()

    producer = TransactionMQProducer(GROUP_PRODUCER, seen.on_check)
    producer.set_namesrv_addr(namesrv)
    producer.start()
    print("producer and consumer started", flush=True)

    def local_execute(msg, user_args):
        return local_answer(index_of(msg.body))

    retries = 0
    try:
        for i in range(n):
            m = Message(topic)
            m.set_keys("txn-%d" % i)
            m.set_tags("TagTxn")
            m.set_body(body_of(i))
            r = None
            for attempt in range(SEND_ATTEMPTS):
                try:
                    r = producer.send_message_in_transaction(m, local_execute, None)
                    break
                except ProducerSendSyncFailed as e:
                    # The C++ client fails a send at once when its transport table
                    # lock is busy (another thread answering a check-back holds it):
                    # "GetTransport ... get timed_mutex timeout", then "No route
                    # info". Nothing was sent; send again.
                    retries += 1
                    if attempt + 1 == SEND_ATTEMPTS:
                        fail("send %d failed %d times: %s" % (i, SEND_ATTEMPTS, e))
                    time.sleep(0.05)
            m.destroy()
            if int(r.status) != 0 or not r.msg_id:
                fail("send %d: status %s msg_id %r" % (i, r.status, r.msg_id))
            if i and i % 1000 == 0:
                print("sent %d in %.1fs" % (i, time.time() - t0), flush=True)
        sent_s = time.time() - t0
        print("sent %d in %.1fs" % (n, sent_s), flush=True)

        want = {i for i in range(n) if committed(i)}
        unknown = {i for i in range(n) if i % 3 == 2}
        deadline = time.time() + DEADLINE_S
        while time.time() < deadline:
            with seen.lock:
                done = set(seen.consumed) >= want and set(seen.checked) >= unknown
            if done:
                break
            time.sleep(0.2)
        # Let stray duplicates or late commits show up before judging.
        time.sleep(3)
    finally:
        producer.shutdown()
        consumer.shutdown()

    with seen.lock:
        if seen.errors:
            fail("errors: %s" % seen.errors[:5])
        got = set(seen.consumed)
        missing = sorted(want - got)
        extra = sorted(got - want)
        dups = sorted(i for i, c in seen.consumed.items() if c > 1)
        if missing:
            fail("%d committed messages never consumed, first %s" % (len(missing), missing[:10]))
        if extra:
            fail("%d rolled-back or unknown messages consumed, first %s" % (len(extra), extra[:10]))
        if dups:
            fail("%d messages consumed twice, first %s" % (len(dups), dups[:10]))
        not_checked = sorted(unknown - set(seen.checked))
        if not_checked:
            fail("%d unknown transactions never checked back, first %s" % (len(not_checked), not_checked[:10]))
        checks = sum(seen.checked.values())
        checked_known = sorted(i for i in seen.checked if i % 3 != 2)
    print(
        "RESULT sent=%d committed=%d consumed=%d duplicates=0 rolled_back_seen=0 "
        "unknown=%d checked_unknown=%d checks=%d checked_decided=%d send_retries=%d "
        "send_seconds=%.1f seconds=%.1f"
        % (n, len(want), len(got), len(unknown), len(unknown), checks, len(checked_known), retries, sent_s,
           time.time() - t0),
        flush=True,
    )


if __name__ == "__main__":
    main()
