//! What the interop drivers share: a bounded wait, and the client runtime
//! set up, run and shut down around a driver's work, ending in its one
//! `RESULT ...` line and exit code.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocketmq_client_rust::prelude::DefaultMQProducer;
use rocketmq_client_rust::{ClientRuntime, ClientRuntimeConfig};
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendStatus;
use rocketmq_runtime::RuntimeOwner;

/// Bound on starting or shutting down a producer, consumer or the runtime.
pub const LIFECYCLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one send, given to the client (ms).
pub const SEND_TIMEOUT_MS: u64 = 5_000;
/// How long one message may keep failing to send (the first sends wait for
/// the route and the topic's creation) before the run gives up.
pub const SEND_RETRY_BUDGET: Duration = Duration::from_secs(30);

/// Send the message `make` builds (built again for each try) until the
/// broker answers SEND_OK, retrying every 500 ms for up to
/// [`SEND_RETRY_BUDGET`]; `what` names it in the log and the error.
pub async fn send_retrying(
    p: &mut DefaultMQProducer,
    what: &str,
    mut make: impl FnMut() -> Result<Message, String>,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let why = match bounded(
            "send",
            Duration::from_millis(SEND_TIMEOUT_MS * 2),
            p.send_with_timeout(make()?, SEND_TIMEOUT_MS),
        )
        .await
        {
            Ok(Ok(Some(r))) if r.send_status == SendStatus::SendOk => return Ok(()),
            Ok(Ok(Some(r))) => format!("status {:?}", r.send_status),
            Ok(Ok(None)) => "no send result".to_string(),
            Ok(Err(e)) => format!("{e}"),
            Err(e) => e,
        };
        if started.elapsed() > SEND_RETRY_BUDGET {
            return Err(format!("{what} kept failing: {why}"));
        }
        eprintln!("{what} failed, retrying: {why}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `f`, or an error naming `what` when it takes longer than `limit`.
pub async fn bounded<T>(
    what: &str,
    limit: Duration,
    f: impl Future<Output = T>,
) -> Result<T, String> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| format!("{what} did not finish within {limit:?}"))
}

/// Set up the client runtime, run `work` on it, shut it down (bounded), and
/// print `RESULT ok <line>` / `RESULT FAILED <line>` / `RESULT FAILED
/// error=...`. Exit code success only for `Ok((_, true))`.
pub async fn run_client<F, Fut>(work: F) -> ExitCode
where
    F: FnOnce(Arc<ClientRuntime>) -> Fut,
    Fut: Future<Output = Result<(String, bool), String>>,
{
    let owner = match RuntimeOwner::new() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("client runtime owner: {e}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry = match rocketmq_observability::install_global(&Default::default()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("client telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match ClientRuntime::try_new(
        owner.root_context().component("client"),
        ClientRuntimeConfig::default(),
        telemetry.handle(),
    ) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("client runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = work(rt.clone()).await;
    let _ = bounded("client runtime shutdown", LIFECYCLE_TIMEOUT, rt.shutdown()).await;
    let _ = bounded(
        "runtime tasks shutdown",
        LIFECYCLE_TIMEOUT,
        owner.shutdown_tasks(),
    )
    .await;
    owner.shutdown_background();
    drop(telemetry);
    match outcome {
        Ok((line, ok)) => {
            println!("RESULT {} {line}", if ok { "ok" } else { "FAILED" });
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(why) => {
            println!("RESULT FAILED error={why:?}");
            ExitCode::FAILURE
        }
    }
}
