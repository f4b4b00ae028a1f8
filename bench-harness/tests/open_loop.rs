//! Open-loop workloads (`--rate`) against the in-process null broker:
//! the scheduler offers the asked rate, and latency counts from each
//! message's intended send time, so a broker stall shows in the tail even
//! though the client sends nothing while it lasts. Loopback only, a few
//! seconds each.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use ferromq_bench::broker::{client_runtime, null_broker_figures, warm_and_measure, LoadFigures};
use ferromq_bench::target::null_broker::NullBroker;
use ferromq_bench::workload::{Arrivals, OpenLoop, Workload};

fn open_workload(rate: f64, arrivals: Arrivals, seconds: f64) -> Workload {
    let mut w = Workload::new(100_000_000);
    w.producers = 2;
    w.inflight = 16;
    w.max_duration = Some(Duration::from_secs_f64(seconds));
    w.open_loop = Some(OpenLoop { rate, arrivals });
    w
}

#[test]
fn open_loop_offers_the_asked_rate_within_2_percent() {
    for arrivals in [Arrivals::Constant, Arrivals::Poisson] {
        let (rate, seconds) = (5000.0, 2.0);
        let f = null_broker_figures(&open_workload(rate, arrivals, seconds), 1, Duration::ZERO)
            .unwrap();
        let o = f.open_loop.as_ref().expect("open-loop figures");
        eprintln!(
            "{arrivals:?}: {} msgs in {:.3} s = {:.0} msgs/s; {} sends, {} late, {} unsent; \
             lateness p50 {:.1} µs p99 {:.1} µs max {:.1} µs; send->ack p99 {:.1} µs",
            f.messages,
            f.seconds,
            f.msgs_per_sec,
            o.sends,
            o.late_sends,
            o.unsent,
            o.lateness_us.p50,
            o.lateness_us.p99,
            o.lateness_us.max,
            f.latency_us.p99
        );
        assert_eq!(f.errors, 0, "{:?}", f.first_error);
        let expected = rate * seconds;
        assert!(
            (f.messages as f64 - expected).abs() <= 0.02 * expected,
            "{arrivals:?}: {} messages acknowledged, {expected} offered",
            f.messages
        );
        assert!(
            (f.msgs_per_sec - rate).abs() <= 0.02 * rate,
            "{arrivals:?}: {:.0} msgs/s for {rate} asked",
            f.msgs_per_sec
        );
        assert_eq!(o.sends, f.messages, "one message per send");
        assert_eq!(o.rate, rate);
        assert_eq!(o.arrivals, arrivals);
    }
}

/// Figures of `workload` against a null broker that stops answering for
/// 100 ms once, 300 ms after it starts.
fn against_a_stall(workload: &Workload) -> LoadFigures {
    let null =
        NullBroker::start_stalling(Duration::from_millis(300), Duration::from_millis(100)).unwrap();
    let rt = client_runtime(1).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (m, cpu) = warm_and_measure(
        &rt,
        &null.addr().to_string(),
        workload,
        Duration::ZERO,
        &stop,
    )
    .unwrap();
    LoadFigures::new(&m, cpu)
}

#[test]
fn open_loop_latency_counts_a_stall_from_the_intended_send_time() {
    // One producer, one request in flight: during the stall the client
    // cannot send anything (the one request it sent is unanswered).
    let mut w = Workload::new(100_000_000);
    w.max_duration = Some(Duration::from_secs(1));
    let closed = against_a_stall(&w);
    w.open_loop = Some(OpenLoop {
        rate: 500.0,
        arrivals: Arrivals::Constant,
    });
    let open = against_a_stall(&w);
    for (name, f) in [("closed", &closed), ("open", &open)] {
        eprintln!(
            "{name} loop: {} msgs, send->ack p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs max {:.0} µs",
            f.messages, f.latency_us.p50, f.latency_us.p99, f.latency_us.p999, f.latency_us.max
        );
        assert_eq!(f.errors, 0, "{name}: {:?}", f.first_error);
    }
    let o = open.open_loop.as_ref().expect("open-loop figures");
    eprintln!(
        "open loop: {} sends, {} late; lateness p99 {:.0} µs max {:.0} µs",
        o.sends, o.late_sends, o.lateness_us.p99, o.lateness_us.max
    );
    // The closed loop sees the stall once: in its max, not its p99.
    assert!(closed.latency_us.max >= 95_000.0, "{:?}", closed.latency_us);
    assert!(closed.latency_us.p99 < 40_000.0, "{:?}", closed.latency_us);
    // The open loop sees it in every message whose turn came during it:
    // ~50 of ~500, waiting from 100 ms down to 0.
    assert!(open.latency_us.max >= 95_000.0, "{:?}", open.latency_us);
    assert!(open.latency_us.p999 >= 90_000.0, "{:?}", open.latency_us);
    assert!(open.latency_us.p99 >= 75_000.0, "{:?}", open.latency_us);
    // And the report says the sends left late, by up to the stall.
    assert!(o.late_sends >= 30, "{o:?}");
    assert!(o.lateness_us.max >= 90_000.0, "{o:?}");
    assert!(
        (open.messages as f64 - 500.0).abs() <= 10.0,
        "the schedule is kept: {} msgs",
        open.messages
    );
}
