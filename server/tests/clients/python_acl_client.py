#!/usr/bin/env python3
"""Drive Apache's C++ RocketMQ client (PyPI rocketmq-client-python 0.5.0rc2,
which bundles librocketmq.so 2.1.x) with ACL credentials against a ferromq
broker that has `aclEnable=true`.

Usage:
  python_acl_client.py produce NAMESRV TOPIC ACCESS_KEY SECRET_KEY PREFIX N
  python_acl_client.py consume NAMESRV TOPIC GROUP ACCESS_KEY SECRET_KEY PREFIX N SECONDS
  python_acl_client.py exercise NAMESRV TOPIC ACCESS_KEY SECRET_KEY PREFIX N

ACCESS_KEY `-` means no credentials at all (set_session_credentials is not
called: requests go unsigned). Credentials are set with the channel
"ALIYUN", the C++ client's default (SessionCredentials()), which it adds to
every request as the `OnsChannel` field and signs with the rest.

produce: sends N messages with bodies PREFIX-0..PREFIX-(N-1), one send_sync
  each, and reports how many succeeded and the first failure:
  `RESULT mode=produce sent_ok=K failed=F client_retries=R first_error=...`.
  The C++ client tries a refused send 3 times by itself; a send failing with
  "No route info" is also tried again here (see send_sync).
consume: a push consumer in GROUP subscribes to TOPIC ('*') and counts the
  distinct bodies starting with PREFIX- until it has N of them or SECONDS
  pass: `RESULT mode=consume received=K others=M start_error=...`.

exercise: more request types with one account's credentials, each of which
  must succeed (else `FAIL`): N messages in batches of 10
  (SEND_BATCH_MESSAGE); the C API's pull consumer (group goodPullGroup,
  SetPullConsumerSessionCredentials) pulls them from offset 0; a push
  consumer (goodRetryGroup) fails PREFIX-7 once, which comes back through
  %RETRY%goodRetryGroup (CONSUMER_SEND_MSG_BACK, then pulls of the retry
  topic); an orderly push consumer (goodOrderlyGroup, LOCK_BATCH_MQ) gets
  every message once; then a TransactionMQProducer sends 3 messages in
  transactions, committed, rolled back, and unknown until the broker checks
  back and the check commits it (END_TRANSACTION, signed, from the local
  transaction and from the check-back). `RESULT mode=exercise sent_ok=N+2
  batched=N pulled=N pushed=N via_retry_topic=1 orderly=N txn_checked=1`
  (sent_ok counts what reaches TOPIC: the batches and the 2 commits).

All modes exit 0 when they ran to the end (the test judges the counts) and print
`FAIL: why` with exit 1 on a usage error. Every wait is bounded.
"""

import ctypes
import sys
import threading
import time
from ctypes import POINTER, Structure, c_char_p, c_int, c_longlong, c_void_p

from rocketmq.client import ConsumeStatus, Message, Producer, PushConsumer, TransactionMQProducer, TransactionStatus
from rocketmq.ffi import _CMessageQueue, _CSendResult, dll

CHANNEL = "ALIYUN"
CLIENT_RETRIES = 3


def fail(why):
    print("FAIL: " + why, flush=True)
    sys.exit(1)


def one_line(s):
    return str(s).replace("\n", " ").replace("\r", " ")


def send_sync(p, m, retries):
    """`Producer.send_sync`, tried again (up to CLIENT_RETRIES times) when it
    fails with "No route info of this topic", as python_client.py does: under
    CPU starvation the C++ client fails a send before writing it when its
    transport-table lock is contended, with that text. A refused send ends
    with the same text (after the client's own 3 attempts), so a refused
    message is tried 1 + CLIENT_RETRIES times here and still fails; the
    broker-side count catches a duplicate of a good one."""
    for attempt in range(CLIENT_RETRIES + 1):
        try:
            return p.send_sync(m)
        except Exception as e:  # noqa: BLE001 - the client raises its own types
            if "No route info" not in str(e) or attempt == CLIENT_RETRIES:
                raise
            retries[0] += 1
            time.sleep(0.05)


def produce(namesrv, topic, ak, sk, prefix, n):
    p = Producer("py_acl_producer", timeout=3000)
    p.set_namesrv_addr(namesrv)
    if ak != "-":
        p.set_session_credentials(ak, sk, CHANNEL)
    p.start()
    ok, failed, first_error = 0, 0, ""
    retries = [0]
    try:
        for i in range(n):
            m = Message(topic)
            m.set_tags("TagAcl")
            m.set_keys("%s-key-%d" % (prefix, i))
            m.set_body("%s-%d" % (prefix, i))
            try:
                r = send_sync(p, m, retries)
                if int(r.status) == 0 and r.msg_id:
                    ok += 1
                else:
                    failed += 1
                    first_error = first_error or "status %s" % r.status
            except Exception as e:  # noqa: BLE001 - the client raises its own types
                failed += 1
                first_error = first_error or "%s: %s" % (type(e).__name__, one_line(e))
            finally:
                m.destroy()
    finally:
        p.shutdown()
    print(
        "RESULT mode=produce sent_ok=%d failed=%d client_retries=%d first_error=%s"
        % (ok, failed, retries[0], first_error),
        flush=True,
    )


def consume(namesrv, topic, group, ak, sk, prefix, n, seconds):
    lock = threading.Lock()
    seen = set()
    others = [0]

    def on_message(msg):
        body = msg.body.decode(errors="replace")
        with lock:
            if body.startswith(prefix + "-"):
                seen.add(body)
            else:
                others[0] += 1
        return ConsumeStatus.CONSUME_SUCCESS

    c = PushConsumer(group)
    c.set_namesrv_addr(namesrv)
    if ak != "-":
        c.set_session_credentials(ak, sk, CHANNEL)
    c.set_thread_count(1)
    c.subscribe(topic, on_message)
    start_error = ""
    started = False
    try:
        c.start()
        started = True
    except Exception as e:  # noqa: BLE001
        start_error = "%s: %s" % (type(e).__name__, one_line(e))
    if started:
        deadline = time.time() + seconds
        while time.time() < deadline:
            with lock:
                if len(seen) >= n:
                    break
            time.sleep(0.1)
        time.sleep(0.5)  # let the consumer commit what it consumed
        c.shutdown()
    with lock:
        print(
            "RESULT mode=consume received=%d others=%d start_error=%s" % (len(seen), others[0], start_error),
            flush=True,
        )


class _CPullResult(Structure):
    _fields_ = [
        ("pullStatus", c_int),
        ("nextBeginOffset", c_longlong),
        ("minOffset", c_longlong),
        ("maxOffset", c_longlong),
        ("msgFoundList", POINTER(c_void_p)),
        ("size", c_int),
        ("pData", c_void_p),
    ]


E_FOUND, E_NO_NEW_MSG, E_BROKER_TIMEOUT = 0, 1, 4
dll.CreateBatchMessage.restype = c_void_p
dll.CreatePullConsumer.argtypes = [c_char_p]
dll.CreatePullConsumer.restype = c_void_p
dll.SetPullConsumerNameServerAddress.argtypes = [c_void_p, c_char_p]
dll.SetPullConsumerSessionCredentials.argtypes = [c_void_p, c_char_p, c_char_p, c_char_p]
dll.SetPullConsumerSessionCredentials.restype = c_int
dll.StartPullConsumer.argtypes = [c_void_p]
dll.StartPullConsumer.restype = c_int
dll.ShutdownPullConsumer.argtypes = [c_void_p]
dll.DestroyPullConsumer.argtypes = [c_void_p]
dll.FetchSubscriptionMessageQueues.argtypes = [c_void_p, c_char_p, POINTER(POINTER(_CMessageQueue)), POINTER(c_int)]
dll.FetchSubscriptionMessageQueues.restype = c_int
dll.ReleaseSubscriptionMessageQueue.argtypes = [POINTER(_CMessageQueue)]
dll.Pull.argtypes = [c_void_p, POINTER(_CMessageQueue), c_char_p, c_longlong, c_int]
dll.Pull.restype = _CPullResult
dll.ReleasePullResult.argtypes = [_CPullResult]
dll.GetMessageBody.argtypes = [c_void_p]
dll.GetMessageBody.restype = c_char_p

EXERCISE_SECONDS = 90


def send_batches(namesrv, topic, ak, sk, prefix, n):
    p = Producer("py_acl_batch_producer", timeout=3000)
    p.set_namesrv_addr(namesrv)
    p.set_session_credentials(ak, sk, CHANNEL)
    p.start()
    try:
        for start in range(0, n, 10):
            batch = dll.CreateBatchMessage()
            msgs = []
            for i in range(start, min(start + 10, n)):
                m = Message(topic)
                m.set_tags("TagAcl")
                m.set_keys("%s-key-%d" % (prefix, i))
                m.set_body("%s-%d" % (prefix, i))
                dll.AddMessage(batch, m)
                msgs.append(m)
            res = _CSendResult()
            st = dll.SendBatchMessage(p._handle, batch, ctypes.pointer(res))
            dll.DestroyBatchMessage(batch)
            for m in msgs:
                m.destroy()
            if int(st) != 0 or res.sendStatus != 0:
                fail("batch send at %d: status %s/%s" % (start, st, res.sendStatus))
    finally:
        p.shutdown()


def pull_all(namesrv, topic, ak, sk, prefix, n):
    c = dll.CreatePullConsumer(b"goodPullGroup")
    if not c:
        fail("CreatePullConsumer returned null")
    dll.SetPullConsumerNameServerAddress(c, namesrv.encode())
    if dll.SetPullConsumerSessionCredentials(c, ak.encode(), sk.encode(), CHANNEL.encode()) != 0:
        fail("SetPullConsumerSessionCredentials failed")
    if dll.StartPullConsumer(c) != 0:
        fail("StartPullConsumer failed")
    seen = set()
    timeouts = [0]
    try:
        mqs = POINTER(_CMessageQueue)()
        size = c_int(0)
        if dll.FetchSubscriptionMessageQueues(c, topic.encode(), ctypes.byref(mqs), ctypes.byref(size)) != 0:
            fail("FetchSubscriptionMessageQueues failed")
        deadline = time.time() + EXERCISE_SECONDS
        for qi in range(size.value):
            mq = mqs[qi]
            offset = 0
            for _ in range(10 * n + 100):
                if time.time() > deadline:
                    fail("pull consumer timed out")
                r = dll.Pull(c, ctypes.byref(mq), b"*", offset, 32)
                status = r.pullStatus
                if status == E_FOUND:
                    for k in range(r.size):
                        body = dll.GetMessageBody(r.msgFoundList[k]).decode()
                        if body.startswith(prefix + "-"):
                            if body in seen:
                                fail("pulled %s twice" % body)
                            seen.add(body)
                    offset = r.nextBeginOffset
                    dll.ReleasePullResult(r)
                elif status == E_NO_NEW_MSG:
                    dll.ReleasePullResult(r)
                    break
                elif status == E_BROKER_TIMEOUT and timeouts[0] < 20:
                    # A pull is idempotent: the C++ client reports its own
                    # transport failures (CPU starvation) as BROKER_TIMEOUT.
                    dll.ReleasePullResult(r)
                    timeouts[0] += 1
                    time.sleep(0.2)
                else:
                    dll.ReleasePullResult(r)
                    fail("pull status %d at queue %d offset %d" % (status, mq.queueId, offset))
            else:
                fail("too many pulls on queue %d" % mq.queueId)
        dll.ReleaseSubscriptionMessageQueue(mqs)
    finally:
        dll.ShutdownPullConsumer(c)
        dll.DestroyPullConsumer(c)
    return len(seen)


def push_with_retry(namesrv, topic, ak, sk, prefix, n):
    lock = threading.Lock()
    first, retried = set(), set()
    fail_body = "%s-7" % prefix
    state = {"failed": False}

    def on_message(msg):
        body = msg.body.decode(errors="replace")
        if not body.startswith(prefix + "-"):
            return ConsumeStatus.CONSUME_SUCCESS
        rt = msg.get_property("RETRY_TOPIC")
        with lock:
            (retried if rt else first).add(body)
            if body == fail_body and not state["failed"]:
                state["failed"] = True
                return ConsumeStatus.RECONSUME_LATER
        return ConsumeStatus.CONSUME_SUCCESS

    c = PushConsumer("goodRetryGroup")
    c.set_namesrv_addr(namesrv)
    c.set_session_credentials(ak, sk, CHANNEL)
    c.set_thread_count(1)
    c.set_message_batch_max_size(1)
    c.subscribe(topic, on_message)
    c.start()
    deadline = time.time() + EXERCISE_SECONDS
    while time.time() < deadline:
        with lock:
            if len(first | retried) >= n and fail_body in retried:
                break
        time.sleep(0.1)
    time.sleep(0.5)
    c.shutdown()
    with lock:
        return len(first | retried), int(fail_body in retried)


def consume_orderly(namesrv, topic, ak, sk, prefix, n):
    lock = threading.Lock()
    seen = {}
    last = {}
    errors = []

    def on_message(msg):
        with lock:
            q, off = msg.queue_id, msg.queue_offset
            if q in last and off != last[q] + 1:
                errors.append("queue %d: offset %d after %d" % (q, off, last[q]))
            last[q] = off
            body = msg.body.decode(errors="replace")
            if body.startswith(prefix + "-"):
                seen[body] = seen.get(body, 0) + 1
        return ConsumeStatus.CONSUME_SUCCESS

    c = PushConsumer("goodOrderlyGroup", orderly=True)
    c.set_namesrv_addr(namesrv)
    c.set_session_credentials(ak, sk, CHANNEL)
    c.subscribe(topic, on_message)
    c.start()
    deadline = time.time() + EXERCISE_SECONDS
    while time.time() < deadline:
        with lock:
            if len(seen) >= n:
                break
        time.sleep(0.1)
    time.sleep(0.5)
    c.shutdown()
    with lock:
        if errors:
            fail("orderly consumer: %s" % errors[:5])
        if seen and max(seen.values()) != 1:
            fail("orderly consumer got a message twice")
        return len(seen)


def transactions(namesrv, topic, ak, sk, prefix):
    """Commit, rollback, and unknown-then-committed-on-check-back; returns
    whether the broker checked the unknown one back."""
    lock = threading.Lock()
    checked = []
    unknown_body = "%s_txn-2" % prefix

    def on_check(msg):
        body = msg.body.decode(errors="replace")
        with lock:
            checked.append(body)
        return TransactionStatus.COMMIT if body == unknown_body else TransactionStatus.ROLLBACK

    p = TransactionMQProducer("goodTxnProducer", on_check)
    p.set_namesrv_addr(namesrv)
    p.set_session_credentials(ak, sk, CHANNEL)
    p.start()
    try:
        answers = [TransactionStatus.COMMIT, TransactionStatus.ROLLBACK, TransactionStatus.UNKNOWN]
        for i, answer in enumerate(answers):
            m = Message(topic)
            m.set_keys("%s_txn-key-%d" % (prefix, i))
            m.set_body("%s_txn-%d" % (prefix, i))
            r = p.send_message_in_transaction(m, lambda msg, arg, a=answer: a, None)
            m.destroy()
            if int(r.status) != 0:
                fail("transactional send %d: status %s" % (i, r.status))
        deadline = time.time() + EXERCISE_SECONDS
        while time.time() < deadline:
            with lock:
                if unknown_body in checked:
                    break
            time.sleep(0.1)
        time.sleep(0.5)  # the oneway END_TRANSACTION of the check goes out
    finally:
        p.shutdown()
    with lock:
        return int(unknown_body in checked)


def exercise(namesrv, topic, ak, sk, prefix, n):
    send_batches(namesrv, topic, ak, sk, prefix, n)
    pulled = pull_all(namesrv, topic, ak, sk, prefix, n)
    pushed, via_retry = push_with_retry(namesrv, topic, ak, sk, prefix, n)
    orderly = consume_orderly(namesrv, topic, ak, sk, prefix, n)
    txn_checked = transactions(namesrv, topic, ak, sk, prefix)
    print(
        "RESULT mode=exercise sent_ok=%d batched=%d pulled=%d pushed=%d via_retry_topic=%d orderly=%d txn_checked=%d"
        % (n + 2, n, pulled, pushed, via_retry, orderly, txn_checked),
        flush=True,
    )


def main():
    a = sys.argv[1:]
    if len(a) == 7 and a[0] == "produce":
        produce(a[1], a[2], a[3], a[4], a[5], int(a[6]))
    elif len(a) == 7 and a[0] == "exercise":
        exercise(a[1], a[2], a[3], a[4], a[5], int(a[6]))
    elif len(a) == 9 and a[0] == "consume":
        consume(a[1], a[2], a[3], a[4], a[5], a[6], int(a[7]), float(a[8]))
    else:
        fail("usage: see the module docstring; got %r" % (a,))


if __name__ == "__main__":
    main()
