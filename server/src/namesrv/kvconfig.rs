//! The name server's KV config (RocketMQ `KVConfigManager`): namespace ->
//! key -> value, kept in `kvConfigPath` as RocketMQ's JSON
//! (`{"configTable":{"ns":{"k":"v"}}}`), rewritten atomically after every
//! change and read at start. A damaged file stops the start with an error
//! naming it: starting empty would lose every setting without a word.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use ferromq_engine::sync::LockExt;
use serde_json::Value;

use crate::remoting::json;

/// RocketMQ's namespace of the order configs of topics (`NamesrvUtil`):
/// key topic, value the `orderTopicConf` of its route (`brokerName:queueNums;...`).
pub const NAMESPACE_ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

type Table = BTreeMap<String, BTreeMap<String, String>>;

/// A KV config file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum KvConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read the KV config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not RocketMQ's `{"configTable":{...}}`.
    #[error(
        "the KV config file {path} is damaged ({why}); fix it, restore it from \
         {path}.bak if that is good, or move it away to start with no KV config"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// The KV config table and the file it is kept in.
#[derive(Debug)]
pub struct KvConfigManager {
    path: Option<PathBuf>,
    table: RwLock<Table>,
    /// Held from a change until its file is written: changes are written in
    /// the order they are made, and reads never wait for the disk.
    write: Mutex<()>,
}

impl Default for KvConfigManager {
    fn default() -> Self {
        Self::in_memory()
    }
}

/// The default `kvConfigPath`: `$HOME/namesrv/kvConfig.json`, as RocketMQ's
/// `NamesrvConfig` (`user.home`).
pub fn default_kv_config_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join("namesrv").join("kvConfig.json")
}

/// Parse RocketMQ's `KVConfigSerializeWrapper` JSON.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn parse_kv_config(text: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    if text.trim().is_empty() {
        return Err("the file is empty".into());
    }
    let v = json::parse_lenient(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(top) = &v else {
        return Err("not a JSON object".into());
    };
    let mut out = Table::new();
    match top.get("configTable") {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(nss)) => {
            for (ns, kvs) in nss {
                let Value::Object(kvs) = kvs else {
                    return Err(format!("namespace `{ns}` is not an object"));
                };
                let t = out.entry(ns.clone()).or_default();
                for (k, v) in kvs {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        // fastjson leaves null map values out; skip one if written.
                        Value::Null => continue,
                        _ => return Err(format!("value of `{ns}`/`{k}` is not a string")),
                    };
                    t.insert(k.clone(), v);
                }
            }
        }
        Some(_) => return Err("`configTable` is not an object".into()),
    }
    Ok(out)
}

/// RocketMQ's `KVConfigSerializeWrapper` JSON of `table`.
fn to_json(table: &Table) -> String {
    serde_json::json!({ "configTable": table }).to_string()
}

impl KvConfigManager {
    /// An empty table kept only in memory (tests, embedded name servers).
    pub fn in_memory() -> Self {
        KvConfigManager {
            path: None,
            table: RwLock::new(Table::new()),
            write: Mutex::new(()),
        }
    }

    /// Read `path`; a missing file is an empty table (as RocketMQ).
    ///
    /// # Errors
    /// [`KvConfigError`] when the file exists but cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Self, KvConfigError> {
        let table = match std::fs::read_to_string(path) {
            Ok(text) => parse_kv_config(&text).map_err(|why| KvConfigError::Damaged {
                path: path.to_path_buf(),
                why,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Table::new(),
            Err(source) => {
                return Err(KvConfigError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let n: usize = table.values().map(BTreeMap::len).sum();
        tracing::info!(path = %path.display(), namespaces = table.len(), items = n, "KV config loaded");
        Ok(KvConfigManager {
            path: Some(path.to_path_buf()),
            table: RwLock::new(table),
            write: Mutex::new(()),
        })
    }

    /// The file the table is kept in, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn persist(&self, snapshot: &str) -> std::io::Result<()> {
        match &self.path {
            Some(p) => crate::util::atomic_write(p, snapshot.as_bytes()),
            None => Ok(()),
        }
    }

    /// Apply `change` to the table and write the file; when the write fails
    /// the change is undone (the table stays what the file holds).
    fn change(
        &self,
        change: impl FnOnce(&mut Table) -> Option<String>,
        undo: impl FnOnce(&mut Table, Option<String>),
    ) -> std::io::Result<()> {
        let _w = self.write.locked();
        let (prev, snapshot) = {
            let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
            let prev = change(&mut t);
            (prev, to_json(&t))
        };
        if let Err(e) = self.persist(&snapshot) {
            let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
            undo(&mut t, prev);
            return Err(e);
        }
        Ok(())
    }

    /// PUT_KV_CONFIG: set `namespace`/`key` to `value` and write the file.
    ///
    /// # Errors
    /// The file cannot be written; the table is left as before.
    pub fn put(&self, namespace: &str, key: &str, value: &str) -> std::io::Result<()> {
        self.change(
            |t| {
                t.entry(namespace.to_string())
                    .or_default()
                    .insert(key.to_string(), value.to_string())
            },
            |t, prev| match prev {
                Some(p) => {
                    t.entry(namespace.to_string())
                        .or_default()
                        .insert(key.to_string(), p);
                }
                None => {
                    if let Some(ns) = t.get_mut(namespace) {
                        ns.remove(key);
                        if ns.is_empty() {
                            t.remove(namespace);
                        }
                    }
                }
            },
        )?;
        tracing::info!(namespace, key, value, "KV config item set");
        Ok(())
    }

    /// DELETE_KV_CONFIG: remove `namespace`/`key` (nothing if absent) and write
    /// the file. The namespace stays, empty, as in RocketMQ.
    ///
    /// # Errors
    /// The file cannot be written; the table is left as before.
    pub fn delete(&self, namespace: &str, key: &str) -> std::io::Result<()> {
        self.change(
            |t| t.get_mut(namespace).and_then(|ns| ns.remove(key)),
            |t, prev| {
                if let Some(p) = prev {
                    t.entry(namespace.to_string())
                        .or_default()
                        .insert(key.to_string(), p);
                }
            },
        )?;
        tracing::info!(namespace, key, "KV config item deleted");
        Ok(())
    }

    /// GET_KV_CONFIG: the value of `namespace`/`key`.
    pub fn get(&self, namespace: &str, key: &str) -> Option<String> {
        let t = self.table.read().unwrap_or_else(|e| e.into_inner());
        t.get(namespace).and_then(|ns| ns.get(key)).cloned()
    }

    /// GET_KVLIST_BY_NAMESPACE: RocketMQ's `KVTable` JSON (`{"table":{...}}`)
    /// of a namespace, `None` if it does not exist.
    pub fn list_json(&self, namespace: &str) -> Option<String> {
        let t = self.table.read().unwrap_or_else(|e| e.into_inner());
        t.get(namespace)
            .map(|ns| serde_json::json!({ "table": ns }).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("kvConfig.json");
        let m = KvConfigManager::load(&path).unwrap();
        assert_eq!(m.get("ns", "k"), None);
        assert_eq!(m.list_json("ns"), None);
        m.put("ns", "k", "v1").unwrap();
        m.put("ns", "k", "v2").unwrap();
        m.put("ORDER_TOPIC_CONFIG", "T", "b:4").unwrap();
        assert_eq!(m.get("ns", "k").as_deref(), Some("v2"));
        assert_eq!(
            m.list_json("ns").as_deref(),
            Some(r#"{"table":{"k":"v2"}}"#)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            r#"{"configTable":{"ORDER_TOPIC_CONFIG":{"T":"b:4"},"ns":{"k":"v2"}}}"#
        );
        let again = KvConfigManager::load(&path).unwrap();
        assert_eq!(again.get("ORDER_TOPIC_CONFIG", "T").as_deref(), Some("b:4"));
        again.delete("ns", "k").unwrap();
        again.delete("nope", "k").unwrap();
        assert_eq!(again.get("ns", "k"), None);
        // The namespace stays, empty, as RocketMQ keeps it.
        assert_eq!(again.list_json("ns").as_deref(), Some(r#"{"table":{}}"#));
        let third = KvConfigManager::load(&path).unwrap();
        assert_eq!(third.get("ns", "k"), None);
        assert_eq!(third.get("ORDER_TOPIC_CONFIG", "T").as_deref(), Some("b:4"));
    }

    #[test]
    fn reads_rocketmq_files_and_refuses_damaged_ones() {
        // As fastjson writes it (pretty printing of RocketMQ's toJson(true) too).
        let t = parse_kv_config(
            "{\n\t\"configTable\":{\n\t\t\"ORDER_TOPIC_CONFIG\":{\n\t\t\t\"T\":\"broker-a:8\"\n\t\t}\n\t}\n}",
        )
        .unwrap();
        assert_eq!(t["ORDER_TOPIC_CONFIG"]["T"], "broker-a:8");
        assert!(parse_kv_config("{}").unwrap().is_empty());
        for bad in [
            "",
            "  \n",
            "{\"configTable\":{\"ns\":{\"k\":\"v\"}",
            "[1]",
            "{\"configTable\":[]}",
            "{\"configTable\":{\"ns\":5}}",
            "{\"configTable\":{\"ns\":{\"k\":{}}}}",
        ] {
            assert!(parse_kv_config(bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kvConfig.json");
        std::fs::write(&path, "{\"configTable\":{\"ns\":{\"k\"").unwrap();
        let e = KvConfigManager::load(&path).unwrap_err().to_string();
        assert!(e.contains("kvConfig.json") && e.contains("damaged"), "{e}");
    }

    #[test]
    fn a_failed_write_leaves_the_table_as_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        let m = KvConfigManager::load(&sub.join("kvConfig.json")).unwrap();
        // The parent "directory" is a file: every write fails.
        std::fs::write(&sub, "x").unwrap();
        assert!(m.put("ns", "k", "v").is_err());
        assert_eq!(m.get("ns", "k"), None);
        assert_eq!(m.list_json("ns"), None);
    }
}
