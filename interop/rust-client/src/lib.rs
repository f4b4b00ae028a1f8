//! What the interop drivers share: a bounded wait, and the client runtime
//! set up, run and shut down around a driver's work, ending in its one
//! `RESULT ...` line and exit code.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rocketmq_client_rust::{ClientRuntime, ClientRuntimeConfig};
use rocketmq_runtime::RuntimeOwner;

/// Bound on starting or shutting down a producer, consumer or the runtime.
pub const LIFECYCLE_TIMEOUT: Duration = Duration::from_secs(30);

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
