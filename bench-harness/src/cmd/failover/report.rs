//! What `failover` writes: `results.json`, `NOTES.md` (command, settings,
//! recovery figures, the phases of every kill, what dominates) and
//! `throughput.svg` (acknowledged msgs/s over the run).

use std::fmt::Write as _;
use std::path::Path;

use super::{FailoverArgs, FailoverResult, KillRecord};
use crate::error::Result;
use crate::reporting::ReportFolder;
use crate::stats::median;
use crate::table::Table;

/// One line for people: the recovery percentiles and throughputs.
pub(super) fn summary_line(r: &FailoverResult) -> String {
    format!(
        "failover: {} kills, recovery (SIGKILL -> first ack on the new master) p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; msgs/s before {:.0}, after first ack {:.0}, after in sync {:.0}",
        r.kills.len(),
        r.recovery_p50_ms,
        r.recovery_p99_ms,
        r.recovery_max_ms,
        r.before_msgs_per_sec_median,
        r.after_ack_msgs_per_sec_median,
        r.after_in_sync_msgs_per_sec_median
    )
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"))
}

/// Medians of the phase segments: (name, median ms, what it is).
pub(super) fn segments(kills: &[KillRecord]) -> Vec<(&'static str, f64, &'static str)> {
    let seg = |f: &dyn Fn(&KillRecord) -> Option<f64>| {
        median(&kills.iter().filter_map(f).collect::<Vec<_>>())
    };
    vec![
        (
            "kill -> controller elected",
            seg(&|k| k.controller_elected_ms),
            "the controllers notice the master is gone and elect: a SIGKILLed broker's connections close, which wakes the inactive-master scan at once (RocketMQ's `onBrokerChannelClose`); without a close (a frozen or cut-off master) it waits `controllerHeartBeatTimeoutMills`, scanned every `scanNotActiveBrokerInterval`",
        ),
        (
            "controller elected -> broker is SYNC_MASTER",
            seg(&|k| Some(k.broker_role_ms? - k.controller_elected_ms?)),
            "the new master learns its role: the controller leader's NOTIFY_BROKER_ROLE_CHANGED prompts it to ask at once (`notifyBrokerRoleChanged=true`), else its next replica-info sync (`syncBrokerMetadataPeriod`)",
        ),
        (
            "broker is SYNC_MASTER -> first ack",
            seg(&|k| Some(k.first_ack_ms - k.broker_role_ms?)),
            "the producers find it (runtime info of every replica after a failed or refused send) and the first send is stored and acknowledged by the SyncStateSet",
        ),
    ]
}

/// Write the report folder.
pub(super) fn write(
    args: &FailoverArgs,
    r: &FailoverResult,
    started_utc: &str,
    dir: &Path,
) -> Result<ReportFolder> {
    let (stamp, _) = crate::reporting::utc_now();
    let machine = crate::machine::MachineInfo::collect(dir);
    let name = args.name.clone().unwrap_or_else(|| {
        if args.quick {
            "failover-quick".to_string()
        } else {
            "failover".to_string()
        }
    });
    let folder = ReportFolder::create(&args.out.out, &stamp, &machine.hostname, &name, r)?;
    let series = vec![("acknowledged msgs/s".to_string(), r.acks_per_bucket.clone())];
    let marks: Vec<f64> = r.kills.iter().map(|k| k.killed_at_s).collect();
    crate::plot::plot_over_time_marked(
        &folder.path().join("throughput.svg"),
        "acknowledged msgs/s over the run (100 ms buckets), kills in grey",
        &series,
        &marks,
    )?;

    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Failover: time to recover from a SIGKILLed master (controller mode{})\n",
        if r.quick {
            ", test-like timeouts"
        } else {
            ", default timeouts"
        }
    );
    crate::reporting::origin_lines(
        &mut s,
        &r.command,
        &crate::reporting::git_commit(),
        started_utc,
        r.seconds,
    );
    let _ = writeln!(
        s,
        "- seed: {} (`--seed {}` repeats the kill moments)\n",
        r.seed, r.seed
    );
    let _ = writeln!(
        s,
        "Three controllers (`ferromq-controller`), one name server, one broker group of three replicas \
         in controller mode (`allAckInSyncStateSet=true`, commitlog files of {} bytes), all processes on \
         loopback. {} producers (one connection and one synchronous send of {} B each) send to the master, \
         found through the replicas' runtime info and found again after any failed or refused send. \
         {} times the master is SIGKILLed {:.1} s plus a random 0-{} ms after the SyncStateSet is back at three, \
         then restarted on its store once a send was acknowledged by the new master. The first kill \
         comes no earlier than {:.0} s after the cluster started (`--settle-seconds`: a new controller \
         leader elects no master until it has led for the heartbeat timeout).\n",
        r.file_size_bytes,
        r.producers,
        r.size_bytes,
        r.kills.len(),
        r.window_seconds,
        args.max_delay_ms,
        r.settle_seconds
    );
    let _ = writeln!(s, "## Settings\n");
    let mut t = Table::new(&["process", "key", "value"], "llr");
    for (k, v) in &r.broker_keys {
        t.row(["broker", k.as_str(), v.as_str()]);
    }
    for (k, v) in &r.controller_keys {
        t.row(["controller", k.as_str(), v.as_str()]);
    }
    s.push_str(&t.finish());
    let _ = writeln!(s, "\n## Recovery\n");
    let _ = writeln!(
        s,
        "Recovery = SIGKILL of the master -> the first send acknowledged by another replica, as the producers see it.\n"
    );
    let mut t = Table::key_value();
    t.kv("kills", r.kills.len());
    let rec_median = median(&r.kills.iter().map(|k| k.first_ack_ms).collect::<Vec<_>>());
    t.kv(
        "recovery median (mean of the middle two when even)",
        format!("{rec_median:.0} ms"),
    );
    t.kv(
        "recovery p50 (nearest rank)",
        format!("{:.0} ms", r.recovery_p50_ms),
    );
    t.kv("recovery p99", format!("{:.0} ms", r.recovery_p99_ms));
    t.kv("recovery max", format!("{:.0} ms", r.recovery_max_ms));
    t.kv(
        "msgs/s before the kill (median over kills)",
        format!("{:.0}", r.before_msgs_per_sec_median),
    );
    t.kv(
        "msgs/s after the first ack (median)",
        format!("{:.0}", r.after_ack_msgs_per_sec_median),
    );
    t.kv(
        "msgs/s after the SyncStateSet is back at three (median)",
        format!("{:.0}", r.after_in_sync_msgs_per_sec_median),
    );
    t.kv(
        "sends acknowledged / refused / failed",
        format!("{} / {} / {}", r.acked, r.refused, r.failed),
    );
    s.push_str(&t.finish());
    let _ = writeln!(s, "\n## What the recovery time is made of\n");
    let _ = writeln!(
        s,
        "Each phase is polled every {} ms after the kill (the three controllers' replica info, every live \
         replica's runtime info and the name server's route, concurrently), so a phase is seen up to one \
         round of queries late; one seen after a later phase counts at the later one's time (an ack on \
         the new master means it was master by then).\n",
        super::POLL.as_millis()
    );
    let segs = segments(&r.kills);
    let mut t = Table::new(&["phase", "median ms", "what happens"], "lrl");
    for (name, m, what) in &segs {
        t.row([name.to_string(), format!("{m:.0}"), what.to_string()]);
    }
    s.push_str(&t.finish());
    if let Some((name, m, _)) = segs.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        let share = if rec_median > 0.0 {
            m / rec_median * 100.0
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "\nThe largest part: **{name}**, a median {m:.0} ms of the median recovery {rec_median:.0} ms ({share:.0} %)."
        );
    }
    let route = median(
        &r.kills
            .iter()
            .filter_map(|k| k.route_ms)
            .collect::<Vec<_>>(),
    );
    let seen = r.kills.iter().filter(|k| k.route_ms.is_some()).count();
    let _ = writeln!(
        s,
        "The name server's route named the new master after a median {route:.0} ms ({seen} of {} kills seen \
         within {} s of the first ack); the producers here do not use it; a RocketMQ client \
         routes through it and would also wait for its next route poll (`pollNameServerInterval`, 30 s by default) \
         unless a failed send makes it fetch the route again.\n",
        r.kills.len(),
        super::ROUTE_GRACE.as_secs()
    );
    let _ = writeln!(s, "## Each kill\n");
    let _ = writeln!(
        s,
        "Times in ms after the SIGKILL; msgs/s over {:.1} s windows: before the kill, from the first ack, \
         from the SyncStateSet back at three.\n",
        r.window_seconds
    );
    let mut t = Table::new(
        &[
            "kill",
            "killed",
            "epoch",
            "new master",
            "controller elected",
            "SYNC_MASTER",
            "route",
            "first ack",
            "in sync again",
            "msgs/s before",
            "after ack",
            "after in sync",
        ],
        "rrrrrrrrrrrr",
    );
    for k in &r.kills {
        t.row([
            k.kill.to_string(),
            format!("replica {}", k.killed_replica),
            format!(
                "{} -> {}",
                k.old_epoch,
                k.new_epoch
                    .map_or_else(|| "?".to_string(), |e| e.to_string())
            ),
            k.new_replica
                .map_or_else(|| "?".to_string(), |i| format!("replica {i}")),
            opt_ms(k.controller_elected_ms),
            opt_ms(k.broker_role_ms),
            opt_ms(k.route_ms),
            format!("{:.0}", k.first_ack_ms),
            format!("{:.0}", k.in_sync_again_ms),
            format!("{:.0}", k.before_msgs_per_sec),
            format!("{:.0}", k.after_ack_msgs_per_sec),
            format!("{:.0}", k.after_in_sync_msgs_per_sec),
        ]);
    }
    s.push_str(&t.finish());
    let _ = writeln!(
        s,
        "\n![acknowledged msgs/s over the run](throughput.svg)\n\nThe dips are the kills (at {} s).\n",
        r.kills
            .iter()
            .map(|k| format!("{:.1}", k.killed_at_s))
            .collect::<Vec<_>>()
            .join(", ")
    );
    crate::reporting::machine_section(&mut s, &machine);
    folder.put("NOTES.md", &s)?;
    Ok(folder)
}
