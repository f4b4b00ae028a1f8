//! The answer to a request the ACL refuses, and its log line: one place for
//! the broker's check of every request and the name server's check of
//! registrations.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use super::{parse_request, AccessRequest, AclDenied};
use crate::remoting::{response, RemotingCommand};
use crate::warn_limit::WarnLimiter;

/// WARN lines about requests the ACL refuses: one per client address and
/// reason (slot) per minute, with the count suppressed meanwhile.
static ACL_REFUSED: WarnLimiter = WarnLimiter::new(Duration::from_secs(60));

/// The most characters of a refusal's reason quoted in the log (it holds
/// names the client chose).
const LOGGED_REASON_CHARS: usize = 200;

/// The answer to `req` from `peer` when `check` refuses it (or its resources
/// cannot be read): `None` when it may proceed, else the refusal RocketMQ 4.9
/// sends when its RPC hook throws an `AclException`
/// (`NettyRemotingAbstract.processRequestCommand`): response code
/// SYSTEM_ERROR, remark the exception's description (which names the access
/// key or resource, never a secret). Logged at most once per client address
/// and reason per minute.
pub fn refusal_with(
    req: &RemotingCommand,
    peer: SocketAddr,
    check: impl FnOnce(&AccessRequest<'_>) -> Result<(), AclDenied>,
) -> Option<RemotingCommand> {
    let (remark, reason) = match parse_request(req, Some(peer)) {
        Err(e) => (e.remark(), e.to_string()),
        Ok(parsed) => match check(&parsed.as_request()) {
            Ok(()) => return None,
            Err(denied) => (denied.remark(), denied.to_string()),
        },
    };
    let mut key = std::collections::hash_map::DefaultHasher::new();
    (peer.ip(), &reason).hash(&mut key);
    if let Some(suppressed) = ACL_REFUSED.check_key(key.finish()) {
        let quoted: String = reason.chars().take(LOGGED_REASON_CHARS).collect();
        tracing::warn!(
            peer = %peer,
            code = req.code,
            reason = ?quoted,
            suppressed,
            "request refused by the ACL"
        );
    }
    Some(RemotingCommand::error(response::SYSTEM_ERROR, remark))
}
