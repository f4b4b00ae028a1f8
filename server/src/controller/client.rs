//! Calling the controllers: the requests that need the Raft leader go to
//! the first controller that answers, follow a `CONTROLLER_NOT_LEADER`
//! answer's `leader: host:port` remark to the leader, and are retried for a
//! while when no leader is known (an election in progress). Used by brokers
//! in controller mode and by `ferromq-admin`'s controller commands.

use std::future::Future;
use std::time::{Duration, Instant};

use ferromq_controller::response_code as code;

use crate::remoting::RemotingCommand;

/// Pause between two rounds over the controllers while no leader answers.
const RETRY_PAUSE: Duration = Duration::from_millis(300);

/// The `host:port` a `CONTROLLER_NOT_LEADER` remark names, if any (the
/// remark ends `leader: host:port`, or `leader unknown`).
pub fn named_leader(remark: &str) -> Option<String> {
    let (_, tail) = remark.rsplit_once("leader: ")?;
    let addr = tail.trim();
    addr.rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        .map(|_| addr.to_owned())
}

/// Send `req` to the controller leader with `call`: to `first` (the
/// leader last seen) if given, then to each of `addrs`; when none of those
/// is the leader, to the leaders their `CONTROLLER_NOT_LEADER` answers name
/// (`leader: host:port`); rounds repeat until `wait` has passed. The listed
/// addresses come first, so a broker that reaches the controllers through
/// addresses of its own (proxies, a load balancer) keeps using them and
/// follows a named address only when the list has no leader (a list of one
/// controller of three, as in RocketMQ's quick start). Returns the address
/// that answered and its answer (any code but `CONTROLLER_NOT_LEADER` and
/// `CONTROLLER_JRAFT_INTERNAL_ERROR`).
///
/// # Errors
/// A message naming the last failure when no leader answered within `wait`,
/// or when `addrs` is empty.
pub async fn call_leader<F, Fut>(
    addrs: &[String],
    first: Option<String>,
    req: &RemotingCommand,
    wait: Duration,
    mut call: F,
) -> Result<(String, RemotingCommand), String>
where
    F: FnMut(String, RemotingCommand) -> Fut,
    Fut: Future<Output = Result<RemotingCommand, String>>,
{
    if addrs.is_empty() {
        return Err("no controller address".into());
    }
    let deadline = Instant::now() + wait;
    let mut last = String::new();
    let mut first = first;
    loop {
        let head = first.take();
        let mut round: Vec<String> = head.clone().into_iter().collect();
        round.extend(addrs.iter().filter(|a| head.as_ref() != Some(*a)).cloned());
        let mut named: Vec<String> = Vec::new();
        let mut i = 0;
        while i < round.len() {
            let addr = round[i].clone();
            i += 1;
            match call(addr.clone(), req.clone()).await {
                Ok(r) if r.code == code::CONTROLLER_NOT_LEADER => {
                    let remark = r.remark.unwrap_or_default();
                    last = format!("{addr}: {remark}");
                    if let Some(leader) = named_leader(&remark) {
                        if !round.contains(&leader) && !named.contains(&leader) {
                            named.push(leader);
                        }
                    }
                }
                Ok(r) if r.code == code::CONTROLLER_JRAFT_INTERNAL_ERROR => {
                    last = format!("{addr}: {}", r.remark.unwrap_or_default());
                }
                Ok(r) => return Ok((addr, r)),
                Err(e) => last = format!("controller {e}"),
            }
            if i == round.len() {
                // The list has no leader: try the leaders it named.
                round.append(&mut named);
            }
            if Instant::now() >= deadline {
                return Err(format!("no controller leader answered: {last}"));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("no controller leader answered: {last}"));
        }
        // A full round without a leader: an election may be under way.
        tokio::time::sleep(RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now())))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_leader_reads_the_not_leader_remark() {
        assert_eq!(
            named_leader("The controller is not in leader state, leader: 127.0.0.1:9878"),
            Some("127.0.0.1:9878".into())
        );
        assert_eq!(
            named_leader("The controller is not in leader state, leader unknown"),
            None
        );
        assert_eq!(named_leader("leader: nohost"), None);
    }

    #[tokio::test]
    async fn listed_addresses_come_before_a_named_leader() {
        // The list holds the leader (c:3) under another name than the one
        // the others name (real:9): it is used, the named one never called.
        let addrs = vec!["a:1".to_string(), "c:3".to_string()];
        let req = RemotingCommand::request(1);
        let calls = std::sync::Mutex::new(Vec::new());
        let (addr, _) = call_leader(&addrs, None, &req, Duration::from_secs(1), |a, _| {
            calls.lock().unwrap().push(a.clone());
            async move {
                if a == "c:3" {
                    Ok(RemotingCommand::success())
                } else {
                    Ok(RemotingCommand::error(
                        code::CONTROLLER_NOT_LEADER,
                        "not leader, leader: real:9".to_string(),
                    ))
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(addr, "c:3");
        assert!(!calls.lock().unwrap().contains(&"real:9".to_string()));
    }

    #[tokio::test]
    async fn follows_the_named_leader_and_gives_up_after_the_wait() {
        let addrs = vec!["a:1".to_string(), "b:2".to_string()];
        let req = RemotingCommand::request(1);
        let (addr, r) = call_leader(
            &addrs,
            None,
            &req,
            Duration::from_secs(1),
            |a, _| async move {
                if a == "b:2" {
                    Ok(RemotingCommand::success())
                } else {
                    Ok(RemotingCommand::error(
                        code::CONTROLLER_NOT_LEADER,
                        "not leader, leader: b:2".to_string(),
                    ))
                }
            },
        )
        .await
        .unwrap();
        assert_eq!((addr.as_str(), r.code), ("b:2", 0));
        let started = Instant::now();
        let err = call_leader(
            &addrs,
            None,
            &req,
            Duration::from_millis(400),
            |_, _| async { Err::<RemotingCommand, _>("refused".to_string()) },
        )
        .await
        .unwrap_err();
        assert!(err.contains("refused"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
