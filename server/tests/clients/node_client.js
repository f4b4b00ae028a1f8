#!/usr/bin/env node
// Drive the pure-JavaScript RocketMQ client `ali-ons` (npm, 3.x) against a
// ferromq name server and broker.
//
// Usage: node node_client.js NAMESRV_ADDR TOPIC
//
// 1. A producer sends N messages with tags and keys: N - ASYNC awaited one by
//    one (sync) and ASYNC with up to 50 sends in flight (async).
// 2. A push consumer in GROUP (from the first offset) receives every message
//    exactly once from the topic, body/tags/keys intact; its handler asks for a
//    retry once for FAIL_KEY, which must come back through the broker's retry
//    topic (RETRY_TOPIC property set, reconsume times >= 1).
//
// Every wait is bounded. Prints `RESULT key=value ...` and exits 0 on success,
// `FAIL: why` and exit code 1 otherwise. No HTTP: the name server address is
// given, and the HTTP client passed in refuses every request.
'use strict';

const { Producer, Consumer, Message } = require('ali-ons');

const N = 10000;
const ASYNC = 1000;
const IN_FLIGHT = 50;
const QUEUES = 4;
const GROUP = 'node_push_group';
const FAIL_KEY = 'nkey-42';
const DEADLINE_MS = 150000;

function fail(why) {
  console.log('FAIL: ' + why);
  process.exit(1);
}

const tagOf = i => (i % 2 === 0 ? 'TagA' : 'TagB');
const keysOf = i => [ `nkey-${i}`, `n${i}` ];
const bodyOf = i => `node-message-${String(i).padStart(5, '0')}-${'y'.repeat(i % 41)}`;

const httpclient = {
  async request(url) {
    throw new Error(`no HTTP expected, asked for ${url}`);
  },
};

function quietLogger() {
  const noop = () => {};
  return { info: noop, debug: noop, warn: noop, error: (...a) => console.error('[ali-ons]', ...a) };
}

async function produce(nameSrv, topic) {
  const producer = new Producer({
    httpclient,
    nameSrv,
    accessKeyId: 'ferromq',
    accessKeySecret: 'ferromq',
    producerGroup: 'node_producer_group',
    logger: quietLogger(),
  });
  await producer.ready();
  const perQueue = {};
  const send = async i => {
    const msg = new Message(topic, tagOf(i), bodyOf(i));
    msg.keys = keysOf(i);
    const r = await producer.send(msg);
    if (r.sendStatus !== 'SEND_OK' || !r.msgId) {
      fail(`send ${i}: ${JSON.stringify(r)}`);
    }
    const q = r.messageQueue.queueId;
    perQueue[q] = (perQueue[q] || 0) + 1;
  };
  for (let i = 0; i < N - ASYNC; i++) {
    await send(i);
    if (i && i % 2000 === 0) console.log(`produced ${i}`);
  }
  for (let start = N - ASYNC; start < N; start += IN_FLIGHT) {
    const batch = [];
    for (let i = start; i < Math.min(start + IN_FLIGHT, N); i++) batch.push(send(i));
    await Promise.all(batch);
  }
  await producer.close();
  if (Object.keys(perQueue).length !== QUEUES) fail(`sends not spread over ${QUEUES} queues: ${JSON.stringify(perQueue)}`);
  return perQueue;
}

async function consume(nameSrv, topic) {
  const first = new Map();
  const retried = new Map();
  const errors = [];
  let failedOnce = false;
  const consumer = new Consumer({
    httpclient,
    nameSrv,
    accessKeyId: 'ferromq',
    accessKeySecret: 'ferromq',
    consumerGroup: GROUP,
    consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
    logger: quietLogger(),
  });
  consumer.on('error', err => errors.push(String(err && err.message)));
  consumer.subscribe(topic, '*', async msg => {
    const body = msg.body.toString();
    const i = Number(body.slice(13, 18));
    if (msg.topic !== topic) errors.push(`message of topic ${msg.topic}`);
    if (body !== bodyOf(i) || msg.tags !== tagOf(i) || msg.keys !== keysOf(i).join(' ')) {
      errors.push(`message ${i} altered: ${body} ${msg.tags} ${msg.keys}`);
    }
    if (msg.retryTopic) {
      if (msg.retryTopic !== topic || msg.reconsumeTimes < 1) {
        errors.push(`retry of ${i}: RETRY_TOPIC=${msg.retryTopic} reconsume=${msg.reconsumeTimes}`);
      }
      retried.set(i, (retried.get(i) || 0) + 1);
    } else {
      first.set(i, (first.get(i) || 0) + 1);
    }
    if (keysOf(i)[0] === FAIL_KEY && !failedOnce) {
      failedOnce = true;
      return Consumer.ACTION_RETRY;
    }
  });
  await consumer.ready();
  const failI = Number(FAIL_KEY.split('-')[1]);
  const deadline = Date.now() + DEADLINE_MS;
  while (Date.now() < deadline && !(first.size === N && retried.has(failI))) {
    await new Promise(r => setTimeout(r, 200));
  }
  await new Promise(r => setTimeout(r, 1000));
  await consumer.close();
  if (errors.length) fail(`push consumer: ${errors.slice(0, 5).join('; ')}`);
  if (first.size !== N) {
    const missing = [];
    for (let i = 0; i < N && missing.length < 10; i++) if (!first.has(i)) missing.push(i);
    fail(`push consumer got ${first.size} of ${N} from the topic, first missing ${missing}`);
  }
  const dups = [ ...first.entries() ].filter(([ , c ]) => c > 1).map(([ i ]) => i);
  if (dups.length) fail(`delivered twice from the topic: ${dups.slice(0, 10)}`);
  if (!retried.has(failI)) fail('the failed message never came back through the retry topic');
  if (retried.size !== 1 || retried.get(failI) !== 1) fail(`unexpected redeliveries: ${[ ...retried.entries() ]}`);
  return { first: first.size, retried: retried.size };
}

async function main() {
  if (process.argv.length !== 4) fail('usage: node_client.js NAMESRV_ADDR TOPIC');
  const [ nameSrv, topic ] = process.argv.slice(2);
  const t0 = Date.now();
  const perQueue = await produce(nameSrv, topic);
  console.log(`produced ${N} in ${((Date.now() - t0) / 1000).toFixed(1)}s over ${JSON.stringify(perQueue)}`);
  const c = await consume(nameSrv, topic);
  console.log(`RESULT produced=${N} sync=${N - ASYNC} async=${ASYNC} queues=${Object.keys(perQueue).length} ` +
    `pushed=${c.first} exactly_once=1 via_retry_topic=${c.retried} seconds=${((Date.now() - t0) / 1000).toFixed(1)}`);
  process.exit(0);
}

main().catch(err => fail(err && err.stack || String(err)));
