import json,glob,sys,statistics as st
d=sys.argv[1]
print("| variant | runs | send->ack p99 ms | send->consume p50 ms | p99 ms (each run) | p99.9 ms | late sends (>1 ms) | lateness p99 µs | broker CPU µs/msg | client CPU µs/msg | loopback p99 µs back to back | loopback paced 10k/s p50 / p99 µs |")
print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for b in ['old','new','io1','exp']:
    rows=[]
    for f in sorted(glob.glob(f'{d}/{b}-*.json')):
        fg=json.load(open(f))['figures']
        c=fg['consume']; lb=fg['loopback']; o=fg['open_loop']
        rows.append(dict(ack=fg['latency_us']['p99']/1e3, c50=c['latency_us']['p50']/1e3, c99=c['latency_us']['p99']/1e3, c999=c['latency_us']['p999']/1e3,
          late=o['late_sends'], lat99=o['lateness_us']['p99'], bcpu=(fg.get('broker_cpu_ns_per_msg') or 0)/1e3, ccpu=fg['cpu_ns_per_msg']/1e3,
          lb=lb[0]['p99_us'], lp50=lb[1]['p50_us'], lp99=lb[1]['p99_us'], drained=c['drained'], errors=fg['errors']+c['errors']))
    if not rows: continue
    m=lambda k: st.median(r[k] for r in rows)
    each=', '.join(f"{r['c99']:.2f}" for r in rows)
    print(f"| {b} | {len(rows)} | {m('ack'):.2f} | {m('c50'):.3f} | **{m('c99'):.2f}** ({each}) | {m('c999'):.2f} | {m('late'):.0f} | {m('lat99'):.0f} | {m('bcpu'):.1f} | {m('ccpu'):.1f} | {m('lb'):.0f} | {m('lp50'):.0f} / {m('lp99'):.0f} |")
    assert all(r['drained'] and r['errors']==0 for r in rows), b
