#!/usr/bin/env python3
"""Drive Apache's C++ RocketMQ client (PyPI rocketmq-client-python 0.5.0rc2,
which bundles librocketmq.so) against a ferromq name server and broker.

Usage: python_client.py NAMESRV_ADDR TOPIC

1. A push consumer in group GROUP_PUSH subscribes to TOPIC ('*').
2. A producer sends N messages with tags and keys: N - BATCHED sync sends and
   BATCHED messages in batches of 10 (SEND_BATCH_MESSAGE).
3. A pull consumer (C API of the same library, through ctypes) fetches the
   topic's queues and pulls 32 at a time from offset 0 until NO_NEW_MSG; every
   message must arrive exactly once with body, tags, keys and the user
   property USER_PROP (set with msg.set_property on every message) intact.
4. The push consumer must receive every message; the handler fails once for
   FAIL_KEY, which must come back through the broker's retry topic (it then
   carries the RETRY_TOPIC property and reconsume times >= 1).
5. An orderly push consumer (GROUP_ORDERLY) must receive every message exactly
   once, each queue in offset order; the C++ client consumes a queue orderly
   only while it holds the broker's lock on it (LOCK_BATCH_MQ).

Every wait is bounded. Prints `RESULT key=value ...` and exits 0 on success,
prints `FAIL: why` and exits 1 otherwise.
"""

import ctypes
import sys
import threading
import time
from ctypes import POINTER, Structure, c_char, c_char_p, c_int, c_longlong, c_void_p

from rocketmq.client import ConsumeStatus, Message, Producer, PushConsumer
from rocketmq.ffi import _CMessageQueue, dll

N = 10000
BATCHED = 200
BATCH_SIZE = 10
QUEUES = 4
GROUP_PUSH = "py_push_group"
GROUP_PULL = "py_pull_group"
GROUP_ORDERLY = "py_orderly_group"
FAIL_KEY = "key-42"
PUSH_DEADLINE_S = 150
# Client-side transport failures are retried this many times (see send_sync).
CLIENT_RETRIES = 5
RETRIES = {"send": 0, "pull": 0}
# Pulled messages whose user property came back intact.
PROPS_INTACT = [0]


def fail(why):
    print("FAIL: " + why, flush=True)
    sys.exit(1)


def tag_of(i):
    return "TagA" if i % 2 == 0 else "TagB"


def keys_of(i):
    return "key-%d k%d" % (i, i)


USER_PROP = "ferromq_user_prop"


def prop_of(i):
    # Spaces, punctuation and non-ASCII UTF-8: all must come back byte for byte.
    return "user value %d: a=b, c; \u00e9\u00fc \u2713" % i


def body_of(i):
    return "py-message-%05d-%s" % (i, "x" * (i % 37))


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


E_FOUND, E_NO_NEW_MSG, E_NO_MATCHED_MSG, E_OFFSET_ILLEGAL, E_BROKER_TIMEOUT = range(5)

dll.CreatePullConsumer.argtypes = [c_char_p]
dll.CreatePullConsumer.restype = c_void_p
dll.SetPullConsumerNameServerAddress.argtypes = [c_void_p, c_char_p]
dll.SetPullConsumerNameServerAddress.restype = c_int
dll.SetPullConsumerLogLevel.argtypes = [c_void_p, c_int]
dll.SetPullConsumerLogLevel.restype = c_int
dll.StartPullConsumer.argtypes = [c_void_p]
dll.StartPullConsumer.restype = c_int
dll.ShutdownPullConsumer.argtypes = [c_void_p]
dll.ShutdownPullConsumer.restype = c_int
dll.DestroyPullConsumer.argtypes = [c_void_p]
dll.DestroyPullConsumer.restype = c_int
dll.FetchSubscriptionMessageQueues.argtypes = [
    c_void_p,
    c_char_p,
    POINTER(POINTER(_CMessageQueue)),
    POINTER(c_int),
]
dll.FetchSubscriptionMessageQueues.restype = c_int
dll.ReleaseSubscriptionMessageQueue.argtypes = [POINTER(_CMessageQueue)]
dll.ReleaseSubscriptionMessageQueue.restype = c_int
dll.Pull.argtypes = [c_void_p, POINTER(_CMessageQueue), c_char_p, c_longlong, c_int]
dll.Pull.restype = _CPullResult
dll.ReleasePullResult.argtypes = [_CPullResult]
dll.ReleasePullResult.restype = c_int
for name in ("GetMessageTopic", "GetMessageTags", "GetMessageKeys", "GetMessageId"):
    getattr(dll, name).argtypes = [c_void_p]
    getattr(dll, name).restype = c_char_p
dll.GetMessageProperty.argtypes = [c_void_p, c_char_p]
dll.GetMessageProperty.restype = c_char_p
dll.GetMessageBody.argtypes = [c_void_p]
dll.GetMessageBody.restype = c_char_p
dll.GetMessageQueueId.argtypes = [c_void_p]
dll.GetMessageQueueId.restype = c_int
dll.GetMessageQueueOffset.argtypes = [c_void_p]
dll.GetMessageQueueOffset.restype = c_longlong
_ = c_char


def send_sync(p, m, i):
    """`Producer.send_sync`, retried when the C++ client fails before writing.

    Under CPU starvation the C++ client (2.1.x) fails a send at once when its
    transport-table lock is contended ("GetTransport of:... get timed_mutex
    timeout" in its log), and then reports "No route info of this topic": the
    request never left the client, so a retry cannot duplicate it. Any other
    failure is final. The broker-side count (exactly N) still catches a
    duplicate."""
    for attempt in range(CLIENT_RETRIES + 1):
        try:
            return p.send_sync(m)
        except Exception as e:  # noqa: BLE001 - the client raises its own types
            if "No route info" not in str(e) or attempt == CLIENT_RETRIES:
                fail("send %d: %s" % (i, e))
            RETRIES["send"] += 1
            print("send %d retried after a client-side failure: %s" % (i, e), flush=True)
            time.sleep(0.2)


def produce(namesrv, topic):
    p = Producer("py_producer_group", timeout=5000)
    p.set_namesrv_addr(namesrv)
    p.start()
    msg_ids = {}
    try:
        sync_n = N - BATCHED
        for i in range(sync_n):
            m = Message(topic)
            m.set_tags(tag_of(i))
            m.set_keys(keys_of(i))
            m.set_body(body_of(i))
            m.set_property(USER_PROP, prop_of(i))
            r = send_sync(p, m, i)
            m.destroy()
            if int(r.status) != 0 or not r.msg_id:
                fail("send %d: status %s msg_id %r" % (i, r.status, r.msg_id))
            msg_ids[i] = r.msg_id
            if i and i % 2000 == 0:
                print("produced %d" % i, flush=True)
        dll.CreateBatchMessage.restype = c_void_p
        from rocketmq.ffi import _CSendResult

        for start in range(sync_n, N, BATCH_SIZE):
            batch = dll.CreateBatchMessage()
            msgs = []
            for i in range(start, min(start + BATCH_SIZE, N)):
                m = Message(topic)
                m.set_tags(tag_of(i))
                m.set_keys(keys_of(i))
                m.set_body(body_of(i))
                m.set_property(USER_PROP, prop_of(i))
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
    return msg_ids


def pull_all(namesrv, topic):
    c = dll.CreatePullConsumer(GROUP_PULL.encode())
    if not c:
        fail("CreatePullConsumer returned null")
    dll.SetPullConsumerNameServerAddress(c, namesrv.encode())
    if dll.StartPullConsumer(c) != 0:
        fail("StartPullConsumer failed")
    seen = {}
    per_queue = {}
    try:
        mqs = POINTER(_CMessageQueue)()
        size = c_int(0)
        if dll.FetchSubscriptionMessageQueues(c, topic.encode(), ctypes.byref(mqs), ctypes.byref(size)) != 0:
            fail("FetchSubscriptionMessageQueues failed")
        if size.value != QUEUES:
            fail("expected %d queues, got %d" % (QUEUES, size.value))
        deadline = time.time() + 120
        for qi in range(size.value):
            mq = mqs[qi]
            offset = 0
            pulls = 0
            while True:
                if time.time() > deadline:
                    fail("pull consumer timed out")
                pulls += 1
                if pulls > 10 * N:
                    fail("too many pulls on queue %d" % mq.queueId)
                r = dll.Pull(c, ctypes.byref(mq), b"*", offset, 32)
                status = r.pullStatus
                if status == E_BROKER_TIMEOUT and RETRIES["pull"] < 10 * CLIENT_RETRIES:
                    # A pull is idempotent: the C++ client reports its own
                    # transport failures as BROKER_TIMEOUT; ask again.
                    dll.ReleasePullResult(r)
                    RETRIES["pull"] += 1
                    print("pull at queue %d offset %d retried after status %d" % (mq.queueId, offset, status), flush=True)
                    time.sleep(0.2)
                    continue
                if status == E_FOUND:
                    if r.size <= 0 or r.size > 32:
                        fail("FOUND with %d messages" % r.size)
                    for k in range(r.size):
                        h = r.msgFoundList[k]
                        body = dll.GetMessageBody(h).decode()
                        i = int(body[11:16])
                        if body != body_of(i):
                            fail("body of %d: %r" % (i, body))
                        if dll.GetMessageTags(h).decode() != tag_of(i):
                            fail("tags of %d" % i)
                        if dll.GetMessageKeys(h).decode() != keys_of(i):
                            fail("keys of %d: %r" % (i, dll.GetMessageKeys(h)))
                        prop = dll.GetMessageProperty(h, USER_PROP.encode())
                        if prop is None or prop.decode("utf-8") != prop_of(i):
                            fail("user property of %d: %r" % (i, prop))
                        PROPS_INTACT[0] += 1
                        if dll.GetMessageTopic(h).decode() != topic:
                            fail("topic of %d" % i)
                        if dll.GetMessageQueueId(h) != mq.queueId:
                            fail("queue of %d" % i)
                        if i in seen:
                            fail("message %d pulled twice" % i)
                        seen[i] = dll.GetMessageQueueOffset(h)
                    per_queue[mq.queueId] = per_queue.get(mq.queueId, 0) + r.size
                    if r.nextBeginOffset != offset + r.size:
                        fail("nextBeginOffset %d after %d+%d" % (r.nextBeginOffset, offset, r.size))
                    offset = r.nextBeginOffset
                    dll.ReleasePullResult(r)
                elif status == E_NO_NEW_MSG:
                    dll.ReleasePullResult(r)
                    break
                else:
                    dll.ReleasePullResult(r)
                    fail("pull status %d at queue %d offset %d" % (status, mq.queueId, offset))
        dll.ReleaseSubscriptionMessageQueue(mqs)
    finally:
        dll.ShutdownPullConsumer(c)
        dll.DestroyPullConsumer(c)
    if len(seen) != N:
        missing = sorted(set(range(N)) - set(seen))[:10]
        fail("pull consumer got %d of %d, first missing %s" % (len(seen), N, missing))
    if len(per_queue) != QUEUES or min(per_queue.values()) == 0:
        fail("messages not spread over %d queues: %s" % (QUEUES, per_queue))
    return per_queue


class PushState:
    """What the push consumer saw. A first delivery comes from the topic itself;
    a redelivery must come through the broker's retry topic (RETRY_TOPIC set,
    reconsume times >= 1). The C++ client hands a whole pulled batch to one
    callback and gives the whole batch back when it fails, so the messages
    consumed before FAIL_KEY in that batch come back too, and those after it
    (never handed to Python) arrive only through the retry topic."""

    def __init__(self, topic):
        self.topic = topic
        self.lock = threading.Lock()
        self.first = {}
        self.retried = {}
        self.errors = []
        self.failed_once = False

    def on_message(self, msg):
        if msg.topic != self.topic:
            with self.lock:
                self.errors.append("message of topic %r" % msg.topic)
            return ConsumeStatus.CONSUME_SUCCESS
        try:
            body = msg.body.decode()
            i = int(body[11:16])
            keys = msg.keys.decode()
            tags = msg.tags.decode()
            rt = msg.get_property("RETRY_TOPIC")
            rt = rt.decode() if rt else ""
            reconsume = msg.reconsume_times
        except Exception as e:  # noqa: BLE001 - report any decoding problem
            with self.lock:
                self.errors.append("undecodable message: %r" % e)
            return ConsumeStatus.CONSUME_SUCCESS
        with self.lock:
            if body != body_of(i) or keys != keys_of(i) or tags != tag_of(i):
                self.errors.append("message %d altered: %r %r %r" % (i, body, keys, tags))
            if rt:
                if rt != self.topic or reconsume < 1:
                    self.errors.append("retry of %d: RETRY_TOPIC=%r reconsume=%d" % (i, rt, reconsume))
                self.retried[i] = self.retried.get(i, 0) + 1
            else:
                if reconsume != 0:
                    self.errors.append("first delivery of %d with reconsume %d" % (i, reconsume))
                self.first[i] = self.first.get(i, 0) + 1
            if keys.split()[0] == FAIL_KEY and not self.failed_once:
                self.failed_once = True
                return ConsumeStatus.RECONSUME_LATER
        return ConsumeStatus.CONSUME_SUCCESS


def consume_orderly(namesrv, topic):
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
            i = int(msg.body.decode()[11:16])
            seen[i] = seen.get(i, 0) + 1
        return ConsumeStatus.CONSUME_SUCCESS

    c = PushConsumer(GROUP_ORDERLY, orderly=True)
    c.set_namesrv_addr(namesrv)
    c.subscribe(topic, on_message)
    c.start()
    deadline = time.time() + PUSH_DEADLINE_S
    while time.time() < deadline:
        with lock:
            if len(seen) >= N:
                break
        time.sleep(0.2)
    time.sleep(0.5)
    c.shutdown()
    with lock:
        if errors:
            fail("orderly consumer: %s" % errors[:5])
        if len(seen) != N or max(seen.values()) != 1:
            fail("orderly consumer got %d distinct of %d, %d deliveries" % (len(seen), N, sum(seen.values())))
        if len(last) != QUEUES:
            fail("orderly consumer saw queues %s" % sorted(last))
    return len(seen)


def main():
    if len(sys.argv) != 3:
        fail("usage: python_client.py NAMESRV_ADDR TOPIC")
    namesrv, topic = sys.argv[1], sys.argv[2]
    t0 = time.time()

    state = PushState(topic)
    push = PushConsumer(GROUP_PUSH)
    push.set_namesrv_addr(namesrv)
    push.set_thread_count(2)
    # One message per callback: a failed callback gives back its whole batch.
    push.set_message_batch_max_size(1)
    push.subscribe(topic, state.on_message)
    push.start()
    print("push consumer started", flush=True)

    msg_ids = produce(namesrv, topic)
    print("produced %d in %.1fs" % (N, time.time() - t0), flush=True)

    per_queue = pull_all(namesrv, topic)
    print("pulled %d exactly once over queues %s" % (N, per_queue), flush=True)

    fail_i = int(FAIL_KEY.split("-")[1])
    deadline = time.time() + PUSH_DEADLINE_S
    while time.time() < deadline:
        with state.lock:
            done = len(set(state.first) | set(state.retried)) == N and fail_i in state.retried
        if done:
            break
        time.sleep(0.2)
    time.sleep(1)  # let stray redeliveries show up before judging
    push.shutdown()
    with state.lock:
        if state.errors:
            fail("push consumer: %s" % state.errors[:5])
        got = set(state.first) | set(state.retried)
        if len(got) != N:
            missing = sorted(set(range(N)) - got)[:10]
            fail("push consumer got %d of %d, first missing %s" % (len(got), N, missing))
        dups = sorted(i for i, c in state.first.items() if c > 1)
        if dups:
            fail("delivered twice from the topic itself: %s" % dups[:10])
        if fail_i not in state.retried:
            fail("the failed message never came back through the retry topic")
        if max(state.retried.values()) > 1 or len(state.retried) > 32:
            fail("unexpected redeliveries: %s" % sorted(state.retried.items())[:10])
        retried = len(state.retried)
    orderly = consume_orderly(namesrv, topic)
    print("orderly consumer got %d in queue order" % orderly, flush=True)
    print(
        "RESULT produced=%d sync=%d batched=%d msg_ids=%d pulled=%d queues=%d pushed=%d "
        "user_props_intact=%d push_from_topic_at_most_once=%d via_retry_topic=%d orderly_in_queue_order=%d "
        "client_send_retries=%d client_pull_retries=%d seconds=%.1f"
        % (N, N - BATCHED, BATCHED, len(msg_ids), N, len(per_queue), len(got), PROPS_INTACT[0],
           len(state.first),
           retried, orderly, RETRIES["send"], RETRIES["pull"], time.time() - t0),
        flush=True,
    )


if __name__ == "__main__":
    main()
