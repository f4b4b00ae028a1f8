//! The ACL admin requests of RocketMQ 4.9's `AdminBrokerProcessor`:
//! UPDATE_AND_CREATE_ACL_CONFIG (50), DELETE_ACL_CONFIG (51),
//! GET_BROKER_CLUSTER_ACL_INFO (52), UPDATE_GLOBAL_WHITE_ADDRS_CONFIG (53)
//! and GET_BROKER_CLUSTER_ACL_CONFIG (54), on the broker's live rules
//! ([`crate::acl::AclLive`]).
//!
//! Only an admin account gets here (the ACL check before the handler, see
//! [`crate::acl::perm::ADMIN_REQUEST_CODES`]). A change that fails is
//! answered with RocketMQ's failure code (209, 210, 211) and the reason as
//! remark; the file is then unchanged. With `aclEnable=false` each request is
//! answered with its failure code (SYSTEM_ERROR for 52 and 54) and a remark
//! saying so.

use std::sync::Arc;

use super::{Broker, HandlerResult, Request};
use crate::acl::AccountUpdate;
use crate::remoting::{response, RemotingCommand};

/// The remark when ACL admin requests reach a broker with `aclEnable=false`.
pub const ACL_DISABLED_REMARK: &str = "ACL is not enabled on this broker (aclEnable=false)";

/// `UtilAll.split(s, ",")`: `None` stays `None`.
fn split_commas(s: Option<&str>) -> Option<Vec<String>> {
    s.map(|s| s.split(',').map(str::to_string).collect())
}

impl Broker {
    /// UPDATE_AND_CREATE_ACL_CONFIG: create or update an account from
    /// `CreateAccessConfigRequestHeader`'s fields.
    pub(super) async fn update_acl_account(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        const FAILED: i32 = response::UPDATE_AND_CREATE_ACL_CONFIG_FAILED;
        let Some(acl) = self.acl.clone() else {
            return Ok(RemotingCommand::error(FAILED, ACL_DISABLED_REMARK));
        };
        let f = &req.cmd.ext_fields;
        let access_key = f.get_str("accessKey")?.to_string();
        let text = |k: &str| f.opt_str(k).map(str::to_string);
        let update = AccountUpdate {
            access_key: access_key.clone(),
            secret_key: text("secretKey"),
            white_remote_address: text("whiteRemoteAddress"),
            admin: f
                .opt_str("admin")
                .is_some_and(|a| a.trim().eq_ignore_ascii_case("true")),
            default_topic_perm: text("defaultTopicPerm"),
            default_group_perm: text("defaultGroupPerm"),
            topic_perms: split_commas(f.opt_str("topicPerms")),
            group_perms: split_commas(f.opt_str("groupPerms")),
        };
        let peer = req.conn.peer;
        let result = self
            .run_on(req.on, "update acl config", move |_| {
                acl.update_account(&update)
            })
            .await?;
        Ok(match result {
            Ok(()) => {
                tracing::info!(%peer, access_key = %access_key, "ACL account created or updated");
                RemotingCommand::success()
            }
            Err(why) => {
                tracing::warn!(%peer, access_key = %access_key, reason = %why, "ACL account not updated");
                RemotingCommand::error(
                    FAILED,
                    format!(
                        "The accesskey[{access_key}] corresponding to accessConfig has been updated failed: {why}"
                    ),
                )
            }
        })
    }

    /// DELETE_ACL_CONFIG: delete the account `accessKey`.
    pub(super) async fn delete_acl_account(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        const FAILED: i32 = response::DELETE_ACL_CONFIG_FAILED;
        let Some(acl) = self.acl.clone() else {
            return Ok(RemotingCommand::error(FAILED, ACL_DISABLED_REMARK));
        };
        let access_key = req.cmd.ext_fields.get_str("accessKey")?.to_string();
        let peer = req.conn.peer;
        let key = access_key.clone();
        let result = self
            .run_on(req.on, "delete acl config", move |_| {
                acl.delete_account(&key)
            })
            .await?;
        Ok(match result {
            Ok(()) => {
                tracing::info!(%peer, access_key = %access_key, "ACL account deleted");
                RemotingCommand::success()
            }
            Err(why) => RemotingCommand::error(
                FAILED,
                format!(
                    "The accesskey[{access_key}] corresponding to accessConfig has been deleted failed: {why}"
                ),
            ),
        })
    }

    /// UPDATE_GLOBAL_WHITE_ADDRS_CONFIG: replace the global white list
    /// (`globalWhiteAddrs`, comma separated) of `aclFileFullPath` (one of the
    /// broker's ACL files; absent or empty: the default file).
    pub(super) async fn update_acl_global_white(
        self: &Arc<Self>,
        req: Request<'_>,
    ) -> HandlerResult {
        const FAILED: i32 = response::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED;
        let Some(acl) = self.acl.clone() else {
            return Ok(RemotingCommand::error(FAILED, ACL_DISABLED_REMARK));
        };
        let f = &req.cmd.ext_fields;
        let given = f.get_str("globalWhiteAddrs")?.to_string();
        let addrs = split_commas(Some(&given)).unwrap_or_default();
        let file = f.opt_str("aclFileFullPath").map(str::to_string);
        let peer = req.conn.peer;
        let result = self
            .run_on(req.on, "update global white addrs", move |_| {
                acl.update_global_white(&addrs, file.as_deref())
            })
            .await?;
        Ok(match result {
            Ok(()) => {
                tracing::info!(%peer, addrs = %given, "ACL global white list updated");
                RemotingCommand::success()
            }
            Err(why) => RemotingCommand::error(
                FAILED,
                format!("The globalWhiteAddresses[{given}] has been updated failed: {why}"),
            ),
        })
    }

    /// GET_BROKER_CLUSTER_ACL_INFO: `GetBrokerAclConfigResponseHeader`:
    /// `version` (the default file's data version), `allAclFileVersion`
    /// (every file's, by path), `brokerName`, `brokerAddr`, `clusterName`.
    pub(super) async fn acl_version_info(self: &Arc<Self>, _req: Request<'_>) -> HandlerResult {
        let Some(acl) = &self.acl else {
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                ACL_DISABLED_REMARK,
            ));
        };
        let info = acl.version_info();
        let all: serde_json::Map<String, serde_json::Value> = info
            .all
            .iter()
            .map(|(p, v)| (p.clone(), v.to_json()))
            .collect();
        Ok(RemotingCommand::success()
            .with_ext("version", info.default_version.to_json())
            .with_ext("allAclFileVersion", serde_json::Value::Object(all))
            .with_ext("brokerName", &self.cfg.broker_name)
            .with_ext("brokerAddr", &self.broker_addr)
            .with_ext("clusterName", &self.cfg.broker_cluster_name))
    }

    /// GET_BROKER_CLUSTER_ACL_CONFIG: `GetBrokerClusterAclConfigResponseBody`
    /// JSON (`globalWhiteAddrs`, `plainAccessConfigs`).
    pub(super) async fn acl_config(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let Some(acl) = self.acl.clone() else {
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                ACL_DISABLED_REMARK,
            ));
        };
        let peer = req.conn.peer;
        let body = self
            .run_on(req.on, "acl config", move |_| acl.all_config_json())
            .await?;
        // The answer holds every secret key: who asked is worth a line.
        tracing::info!(%peer, "ACL accounts read (GET_BROKER_CLUSTER_ACL_CONFIG)");
        Ok(RemotingCommand::success().with_body(body.to_string().into_bytes()))
    }
}
