#!/usr/bin/env python3
"""Drive Apache's C++ RocketMQ client (PyPI rocketmq-client-python 0.5.0rc2,
which bundles librocketmq.so 2.1.x) with ACL credentials against a ferromq
broker that has `aclEnable=true`.

Usage:
  python_acl_client.py produce NAMESRV TOPIC ACCESS_KEY SECRET_KEY PREFIX N
  python_acl_client.py consume NAMESRV TOPIC GROUP ACCESS_KEY SECRET_KEY PREFIX N SECONDS

ACCESS_KEY `-` means no credentials at all (set_session_credentials is not
called: requests go unsigned). Credentials are set with the channel
"ALIYUN", the C++ client's default (SessionCredentials()), which it adds to
every request as the `OnsChannel` field and signs with the rest.

produce: sends N messages with bodies PREFIX-0..PREFIX-(N-1), one send_sync
  each, and reports how many succeeded and the first failure:
  `RESULT mode=produce sent_ok=K failed=F first_error=...`.
  A failed send is not retried here: the C++ client retries by itself.
consume: a push consumer in GROUP subscribes to TOPIC ('*') and counts the
  distinct bodies starting with PREFIX- until it has N of them or SECONDS
  pass: `RESULT mode=consume received=K others=M start_error=...`.

Both exit 0 when they ran to the end (the test judges the counts) and print
`FAIL: why` with exit 1 on a usage error. Every wait is bounded.
"""

import sys
import threading
import time

from rocketmq.client import ConsumeStatus, Message, Producer, PushConsumer

CHANNEL = "ALIYUN"


def fail(why):
    print("FAIL: " + why, flush=True)
    sys.exit(1)


def one_line(s):
    return str(s).replace("\n", " ").replace("\r", " ")


def produce(namesrv, topic, ak, sk, prefix, n):
    p = Producer("py_acl_producer", timeout=3000)
    p.set_namesrv_addr(namesrv)
    if ak != "-":
        p.set_session_credentials(ak, sk, CHANNEL)
    p.start()
    ok, failed, first_error = 0, 0, ""
    try:
        for i in range(n):
            m = Message(topic)
            m.set_tags("TagAcl")
            m.set_keys("%s-key-%d" % (prefix, i))
            m.set_body("%s-%d" % (prefix, i))
            try:
                r = p.send_sync(m)
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
    print("RESULT mode=produce sent_ok=%d failed=%d first_error=%s" % (ok, failed, first_error), flush=True)


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


def main():
    a = sys.argv[1:]
    if len(a) == 7 and a[0] == "produce":
        produce(a[1], a[2], a[3], a[4], a[5], int(a[6]))
    elif len(a) == 9 and a[0] == "consume":
        consume(a[1], a[2], a[3], a[4], a[5], a[6], int(a[7]), float(a[8]))
    else:
        fail("usage: see the module docstring; got %r" % (a,))


if __name__ == "__main__":
    main()
