//! The client keeps up: the harness's own cost per message, measured against
//! the in-process null broker (answers SUCCESS at once). Printed for the
//! notes; asserted only loosely, since a debug build on a shared machine is
//! slow. `ferromq-bench broker --null` gives the release figures.

use std::time::Duration;

use ferromq_bench::broker::null_broker_figures;
use ferromq_bench::workload::Workload;

fn workload(inflight: usize, batch: usize) -> Workload {
    let mut w = Workload::new(100_000_000);
    w.producers = 2;
    w.inflight = inflight;
    w.batch = batch;
    w.max_duration = Some(Duration::from_millis(800));
    w
}

#[test]
fn null_broker_overhead_per_message() {
    for (inflight, batch) in [(1, 1), (64, 1), (16, 8)] {
        let f =
            null_broker_figures(&workload(inflight, batch), 1, Duration::from_millis(100)).unwrap();
        eprintln!(
            "null broker, inflight {inflight} batch {batch}: {:.0} msgs/s, wall {:.0} ns/msg, CPU {:.0} ns/msg, p99 {:.0} µs",
            f.msgs_per_sec,
            1e9 / f.msgs_per_sec.max(1e-9),
            f.cpu_ns_per_msg,
            f.latency_us.p99
        );
        assert_eq!(f.errors, 0, "{:?}", f.first_error);
        assert!(f.messages > 100, "{f:?}");
        assert_eq!(f.statuses.get("SUCCESS").copied(), Some(f.messages));
        if inflight > 1 {
            // Pipelining must beat one request at a time by far, even in debug.
            assert!(f.msgs_per_sec > 5_000.0, "{f:?}");
        }
    }
}
