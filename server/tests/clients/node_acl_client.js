#!/usr/bin/env node
// Drive the pure-JavaScript RocketMQ client `ali-ons` (npm, 3.x) with ACL
// credentials (its accessKey/secretKey options) against a ferromq broker
// with `aclEnable=true`.
//
// Usage:
//   node node_acl_client.js produce NAMESRV TOPIC ACCESS_KEY SECRET_KEY PREFIX N
//   node node_acl_client.js consume NAMESRV TOPIC GROUP ACCESS_KEY SECRET_KEY PREFIX N SECONDS
//   node node_acl_client.js exercise NAMESRV TOPIC ACCESS_KEY SECRET_KEY PREFIX N
//
// ACCESS_KEY `-` means no credentials: ali-ons then signs nothing
// (Channel.beforeRequest returns early), so requests go unsigned.
//
// produce: sends N messages with bodies PREFIX-0..PREFIX-(N-1), one awaited
//   send each (ali-ons retries a SYSTEM_ERROR answer by itself, 4 tries in
//   all, and then throws without the remark), and reports
//   `RESULT mode=produce sent_ok=K failed=F first_error=... close_error=...`
//   (close() unregisters the producer, and rejects with the broker's remark
//   when that is refused).
// consume: a push consumer in GROUP (from the first offset) counts the
//   distinct bodies starting with PREFIX- until it has N or SECONDS pass:
//   `RESULT mode=consume received=K others=M errors=E ready_error=...
//   first_error=... close_error=...`, where errors counts the consumer's
//   'error' events and ready_error is why ready() rejected.
// exercise: more of ali-ons' requests with one account, each of which must
//   succeed (else `FAIL`): N sends with up to 10 in flight, then a push
//   consumer in goodRetryGroup asks for a retry of PREFIX-7 once, which must
//   come back through %RETRY%goodRetryGroup (CONSUMER_SEND_MSG_BACK, pulls of
//   the retry topic) with every message received:
//   `RESULT mode=exercise sent_ok=N pushed=N via_retry_topic=1`.
//
// Every line ali-ons logs at warn or error that names an AclException is
// printed as `ACL_LOG ...` (the remark the broker answered), at most 20.
// Exits 0 when it ran to the end (the test judges the counts), `FAIL: why`
// and exit 1 on a usage error or a crash. No HTTP: the name server address is
// given, and the HTTP client passed in refuses every request.
'use strict';

const util = require('util');
const { Producer, Consumer, Message } = require('ali-ons');

let aclLogLines = 0;

function fail(why) {
  console.log('FAIL: ' + why);
  process.exit(1);
}

const oneLine = s => String(s).replace(/[\r\n]+/g, ' ');

const httpclient = {
  async request(url) {
    throw new Error(`no HTTP expected, asked for ${url}`);
  },
};

function recordingLogger() {
  const noop = () => {};
  const record = (...a) => {
    const line = oneLine(util.format(...a));
    if (line.includes('AclException') && aclLogLines < 20) {
      aclLogLines++;
      console.log('ACL_LOG ' + line.slice(0, 400));
    }
  };
  return { info: noop, debug: noop, warn: record, error: record };
}

function credentials(ak, sk) {
  return ak === '-' ? {} : { accessKeyId: ak, accessKeySecret: sk };
}

async function produce(nameSrv, topic, ak, sk, prefix, n) {
  const producer = new Producer(Object.assign({
    httpclient,
    nameSrv,
    producerGroup: 'node_acl_producer',
    logger: recordingLogger(),
  }, credentials(ak, sk)));
  let firstError = '';
  producer.on('error', err => { firstError = firstError || `error event: ${oneLine(err && err.message)}`; });
  await producer.ready();
  let ok = 0;
  let failed = 0;
  for (let i = 0; i < n; i++) {
    const msg = new Message(topic, 'TagAcl', `${prefix}-${i}`);
    msg.keys = [ `${prefix}-key-${i}` ];
    try {
      const r = await producer.send(msg);
      if (r.sendStatus === 'SEND_OK' && r.msgId) {
        ok++;
      } else {
        failed++;
        firstError = firstError || `status ${r.sendStatus}`;
      }
    } catch (err) {
      failed++;
      firstError = firstError || `${err.name}: ${oneLine(err.message)}`;
    }
  }
  // close() unregisters the producer: a refused unregister rejects it with
  // the broker's remark.
  let closeError = '';
  try {
    await producer.close();
  } catch (err) {
    closeError = `${err.name} (code ${err.code}): ${oneLine(err.message)}`;
  }
  console.log(`RESULT mode=produce sent_ok=${ok} failed=${failed} first_error=${firstError} close_error=${closeError}`);
}

async function consume(nameSrv, topic, group, ak, sk, prefix, n, seconds) {
  const seen = new Set();
  let others = 0;
  let errors = 0;
  let firstError = '';
  const consumer = new Consumer(Object.assign({
    httpclient,
    nameSrv,
    consumerGroup: group,
    consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
    logger: recordingLogger(),
  }, credentials(ak, sk)));
  consumer.on('error', err => {
    errors++;
    firstError = firstError || `${err && err.name}: ${oneLine(err && err.message)}`;
  });
  consumer.subscribe(topic, '*', async msg => {
    const body = msg.body.toString();
    if (body.startsWith(prefix + '-')) seen.add(body);
    else others++;
  });
  const deadline = Date.now() + seconds * 1000;
  // ready() rejects when the client's first rebalance is refused; bounded in
  // case it never settles.
  let readyError = '';
  try {
    await Promise.race([ consumer.ready(), new Promise(r => setTimeout(r, seconds * 1000)) ]);
  } catch (err) {
    readyError = `${err.name} (code ${err.code}): ${oneLine(err.message)}`;
  }
  while (Date.now() < deadline && seen.size < n) {
    await new Promise(r => setTimeout(r, 100));
  }
  await new Promise(r => setTimeout(r, 500));
  let closeError = '';
  try {
    await Promise.race([ consumer.close(), new Promise(r => setTimeout(r, 5000)) ]);
  } catch (err) {
    closeError = `${err.name} (code ${err.code}): ${oneLine(err.message)}`;
  }
  console.log(`RESULT mode=consume received=${seen.size} others=${others} errors=${errors} ` +
    `ready_error=${readyError} first_error=${firstError} close_error=${closeError}`);
}

const EXERCISE_MS = 90000;

async function exercise(nameSrv, topic, ak, sk, prefix, n) {
  const producer = new Producer(Object.assign({
    httpclient,
    nameSrv,
    producerGroup: 'node_acl_async_producer',
    logger: recordingLogger(),
  }, credentials(ak, sk)));
  await producer.ready();
  for (let start = 0; start < n; start += 10) {
    const sends = [];
    for (let i = start; i < Math.min(start + 10, n); i++) {
      const msg = new Message(topic, 'TagAcl', `${prefix}-${i}`);
      msg.keys = [ `${prefix}-key-${i}` ];
      sends.push(producer.send(msg).then(r => {
        if (r.sendStatus !== 'SEND_OK') fail(`send ${i}: ${JSON.stringify(r)}`);
      }));
    }
    await Promise.all(sends);
  }
  await producer.close();

  const first = new Set();
  const retried = new Set();
  const errors = [];
  const failBody = `${prefix}-7`;
  let failedOnce = false;
  const consumer = new Consumer(Object.assign({
    httpclient,
    nameSrv,
    consumerGroup: 'goodRetryGroup',
    consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
    logger: recordingLogger(),
  }, credentials(ak, sk)));
  consumer.on('error', err => errors.push(oneLine(err && err.message)));
  consumer.subscribe(topic, '*', async msg => {
    const body = msg.body.toString();
    if (!body.startsWith(prefix + '-')) return;
    (msg.retryTopic ? retried : first).add(body);
    if (body === failBody && !failedOnce) {
      failedOnce = true;
      return Consumer.ACTION_RETRY;
    }
  });
  await consumer.ready();
  const deadline = Date.now() + EXERCISE_MS;
  const all = () => new Set([ ...first, ...retried ]).size;
  while (Date.now() < deadline && !(all() >= n && retried.has(failBody))) {
    await new Promise(r => setTimeout(r, 100));
  }
  await new Promise(r => setTimeout(r, 500));
  await consumer.close();
  if (errors.length) fail(`consumer errors: ${errors.slice(0, 5).join('; ')}`);
  console.log(`RESULT mode=exercise sent_ok=${n} pushed=${all()} via_retry_topic=${retried.has(failBody) ? 1 : 0}`);
}

async function main() {
  const a = process.argv.slice(2);
  if (a.length === 7 && a[0] === 'produce') {
    await produce(a[1], a[2], a[3], a[4], a[5], Number(a[6]));
  } else if (a.length === 7 && a[0] === 'exercise') {
    await exercise(a[1], a[2], a[3], a[4], a[5], Number(a[6]));
  } else if (a.length === 9 && a[0] === 'consume') {
    await consume(a[1], a[2], a[3], a[4], a[5], a[6], Number(a[7]), Number(a[8]));
  } else {
    fail(`usage: see the header comment; got ${JSON.stringify(a)}`);
  }
  process.exit(0);
}

main().catch(err => fail(err && err.stack || String(err)));
