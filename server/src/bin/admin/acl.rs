//! ACL subcommands, with mqadmin's flags: `updateAclConfig`,
//! `deleteAclConfig`, `clusterAclConfigVersion`, `updateGlobalWhiteAddr`.
//!
//! The account's keys are `-a` and `-s` only: mqadmin's long names
//! `--accessKey`/`--secretKey` are ferromq-admin's global flags for the
//! credentials every request is signed with.
//!
//! As mqadmin, `-c` sends the changes to every broker of the cluster,
//! masters and slaves (each keeps its own ACL files), and
//! `clusterAclConfigVersion -c` asks the masters.

use clap::Args;
use ferromq_server::remoting::{request, RemotingCommand};
use serde_json::Value;

use crate::client::{call, num, ok, Admin, Res};
use crate::print::table;
use crate::Target;

/// `updateAclConfig`'s flags (mqadmin's `UpdateAccessConfigSubCommand`).
#[derive(Args, Debug)]
pub(crate) struct UpdateAcl {
    #[command(flatten)]
    target: Target,
    /// Access key of the account to create or update (mqadmin's `-a`; the
    /// global `--accessKey` is the key the request is signed with).
    #[arg(short = 'a', value_name = "ACCESS_KEY")]
    account_key: String,
    /// Its secret key, longer than 6 characters (mqadmin's `-s`).
    #[arg(short = 's', value_name = "SECRET_KEY")]
    account_secret: String,
    /// Addresses let in without a signature (`192.168.0.*`, ...).
    #[arg(short = 'w', long = "whiteRemoteAddress")]
    white_remote_address: Option<String>,
    /// Default topic permission: PUB, SUB, PUB|SUB, DENY.
    #[arg(short = 'i', long = "defaultTopicPerm")]
    default_topic_perm: Option<String>,
    /// Default group permission: PUB, SUB, PUB|SUB, DENY.
    #[arg(short = 'u', long = "defaultGroupPerm")]
    default_group_perm: Option<String>,
    /// Topic permissions, `topicA=DENY,topicD=SUB`.
    #[arg(short = 't', long = "topicPerms")]
    topic_perms: Option<String>,
    /// Group permissions, `groupD=DENY,groupE=SUB`.
    #[arg(short = 'g', long = "groupPerms")]
    group_perms: Option<String>,
    /// Admin account: `true` or `false` (absent: false, as mqadmin sends it).
    #[arg(short = 'm', long = "admin")]
    admin: Option<String>,
}

/// `deleteAclConfig`'s flags.
#[derive(Args, Debug)]
pub(crate) struct DeleteAcl {
    #[command(flatten)]
    target: Target,
    /// Access key of the account to delete (mqadmin's `-a`).
    #[arg(short = 'a', value_name = "ACCESS_KEY")]
    account_key: String,
}

/// `updateGlobalWhiteAddr`'s flags.
#[derive(Args, Debug)]
pub(crate) struct UpdateGlobalWhite {
    #[command(flatten)]
    target: Target,
    /// Global white list, `10.10.103.*,192.168.0.*` (replaces the old one).
    #[arg(short = 'g', long = "globalWhiteRemoteAddresses")]
    addrs: String,
    /// The broker's ACL file to change (default: its `plain_acl.yml`).
    #[arg(short = 'p', long = "aclFileFullPath")]
    file: Option<String>,
}

/// `2024-01-02 03:04:05` (UTC) of ms since the epoch.
pub(crate) fn date_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

impl Admin {
    /// Brokers a change goes to: `-b`, or every broker (masters and slaves)
    /// of `-c`, as mqadmin's `fetchMasterAndSlaveAddrByClusterName`.
    async fn every_broker(&self, t: &Target) -> Res<Vec<String>> {
        match (&t.broker, &t.cluster) {
            (Some(b), _) => Ok(vec![b.clone()]),
            (None, Some(c)) => {
                let v: Vec<String> = self
                    .brokers()
                    .await?
                    .into_iter()
                    .filter(|b| &b.0 == c)
                    .map(|b| b.3)
                    .collect();
                if v.is_empty() {
                    return Err(format!("no broker in cluster {c}"));
                }
                Ok(v)
            }
            (None, None) => Err("give a broker (-b ADDR) or a cluster (-c NAME)".into()),
        }
    }

    /// `updateAclConfig`: create or update an account on each target broker.
    pub(crate) async fn update_acl_config(&self, u: UpdateAcl) -> Res<()> {
        let admin = u
            .admin
            .as_deref()
            .is_some_and(|a| a.trim().eq_ignore_ascii_case("true"));
        let mut req = RemotingCommand::request(request::UPDATE_AND_CREATE_ACL_CONFIG)
            .with_ext("accessKey", u.account_key.trim())
            .with_ext("secretKey", u.account_secret.trim())
            .with_ext("admin", admin);
        for (k, v) in [
            ("whiteRemoteAddress", &u.white_remote_address),
            ("defaultTopicPerm", &u.default_topic_perm),
            ("defaultGroupPerm", &u.default_group_perm),
            ("topicPerms", &u.topic_perms),
            ("groupPerms", &u.group_perms),
        ] {
            if let Some(v) = v {
                req = req.with_ext(k, v.trim());
            }
        }
        for addr in self.every_broker(&u.target).await? {
            let what = format!("update acl config on {addr}");
            ok(call(&addr, req.clone()).await?, &what)?;
            println!("create or update plain access config to {addr} success.");
        }
        println!(
            "PlainAccessConfig{{accessKey='{}', whiteRemoteAddress='{}', admin={admin}, defaultTopicPerm='{}', defaultGroupPerm='{}', topicPerms={}, groupPerms={}}}",
            u.account_key.trim(),
            u.white_remote_address.as_deref().unwrap_or(""),
            u.default_topic_perm.as_deref().unwrap_or(""),
            u.default_group_perm.as_deref().unwrap_or(""),
            u.topic_perms.as_deref().unwrap_or(""),
            u.group_perms.as_deref().unwrap_or(""),
        );
        Ok(())
    }

    /// `deleteAclConfig`: delete an account on each target broker.
    pub(crate) async fn delete_acl_config(&self, d: DeleteAcl) -> Res<()> {
        let key = d.account_key.trim();
        for addr in self.every_broker(&d.target).await? {
            let req =
                RemotingCommand::request(request::DELETE_ACL_CONFIG).with_ext("accessKey", key);
            ok(
                call(&addr, req).await?,
                &format!("delete acl config on {addr}"),
            )?;
            println!("delete plain access config account from {addr} success.");
        }
        println!("account's accesskey is:{key}");
        Ok(())
    }

    /// `updateGlobalWhiteAddr`: replace the global white list on each
    /// target broker.
    pub(crate) async fn update_global_white_addr(&self, g: UpdateGlobalWhite) -> Res<()> {
        let mut req = RemotingCommand::request(request::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG)
            .with_ext("globalWhiteAddrs", g.addrs.trim());
        if let Some(f) = &g.file {
            req = req.with_ext("aclFileFullPath", f.trim());
        }
        for addr in self.every_broker(&g.target).await? {
            let what = format!("update global white addresses on {addr}");
            ok(call(&addr, req.clone()).await?, &what)?;
            println!("update global white remote addresses to {addr} success.");
        }
        Ok(())
    }

    /// `clusterAclConfigVersion`: each ACL file's version on `-b`, or on
    /// every master of `-c`.
    pub(crate) async fn cluster_acl_config_version(&self, t: Target) -> Res<()> {
        let mut rows = Vec::new();
        for addr in self.targets(&t).await? {
            let req = RemotingCommand::request(request::GET_BROKER_CLUSTER_ACL_INFO);
            let r = ok(
                call(&addr, req).await?,
                &format!("acl config version of {addr}"),
            )?;
            let f = |k: &str| r.ext_fields.opt_str(k).unwrap_or("").to_string();
            let all = f("allAclFileVersion");
            let versions: Value = serde_json::from_str(&all)
                .map_err(|e| format!("acl config version of {addr}: allAclFileVersion: {e}"))?;
            for (file, v) in versions.as_object().into_iter().flatten() {
                rows.push(vec![
                    f("clusterName"),
                    f("brokerName"),
                    f("brokerAddr"),
                    file.clone(),
                    num(&v["counter"]).to_string(),
                    date_time(num(&v["timestamp"])),
                ]);
            }
        }
        table(
            &[
                "#Cluster Name",
                "#Broker Name",
                "#Broker Addr",
                "#AclFilePath",
                "#AclConfigVersionNum",
                "#AclLastUpdateTime",
            ],
            &rows,
        );
        if t.broker.is_some() {
            println!("get broker's plain access config version success.");
        } else {
            println!("get cluster's plain access config version success.");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::date_time;

    #[test]
    fn dates() {
        assert_eq!(date_time(0), "1970-01-01 00:00:00");
        assert_eq!(date_time(1_709_251_199_000), "2024-02-29 23:59:59");
        assert_eq!(date_time(951_782_400_000), "2000-02-29 00:00:00");
    }
}
