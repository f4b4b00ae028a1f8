//! From [`Properties`] to [`StoreConfig`] and back, and validation.
//!
//! One table, [`FIELDS`](super::fields::FIELDS), maps each RocketMQ key to its field, its type and its bounds;
//! loading, [`StoreConfig::validate`] and [`StoreConfig::to_properties`] all read it, so a
//! new field needs one line here.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::fields::{
    parse_delete_when, Field, Kind, FIELDS, INDEX_ENTRY_BYTES, INDEX_HEADER_BYTES,
    INDEX_SLOT_BYTES, JAVA_INT_MAX,
};
use super::keys::{BROKER_KEYS, LEGACY_KEYS, UNSUPPORTED_FEATURES};
use super::properties::escape;
use super::{ConfigWarning, Properties, StoreConfig, WarningKind};
use crate::error::{Error, Result};

fn parse_int(v: &str) -> Option<i128> {
    if v.len() > 40 {
        return None;
    }
    v.parse::<i128>().ok()
}

fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn int_expected(min: u64, max: u64, unit: &str, clamp: bool) -> String {
    if clamp {
        format!("an integer from {min} to {max} ({unit}; values from a file outside that range are clamped into it)")
    } else {
        format!("an integer from {min} to {max} ({unit})")
    }
}

fn with_line(expected: String, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{expected}; line {l}"),
        None => expected,
    }
}

impl Field {
    fn keys(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.key).chain(self.alias)
    }

    /// The field's value as written in a file, or `None` for an unset optional field.
    fn format(&self, c: &StoreConfig) -> Option<String> {
        match &self.kind {
            Kind::Int { get, .. } => Some(get(c).to_string()),
            Kind::Bool { get, .. } => Some(get(c).to_string()),
            Kind::Text { get, .. } => get(c),
        }
    }

    /// Sets the field from `value`, read under `key` (the spelling used in the file).
    fn apply(
        &self,
        c: &mut StoreConfig,
        key: &str,
        value: &str,
        line: Option<usize>,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<()> {
        match &self.kind {
            Kind::Int {
                min,
                max,
                unit,
                clamp,
                set,
                ..
            } => {
                let expected = || with_line(int_expected(*min, *max, unit, *clamp), line);
                let n = parse_int(value).ok_or_else(|| Error::config(key, value, expected()))?;
                let (lo, hi) = (i128::from(*min), i128::from(*max));
                if *clamp {
                    let clamped = n.clamp(lo, hi);
                    if clamped != n {
                        warnings.push(ConfigWarning {
                            kind: WarningKind::Clamped,
                            key: key.to_string(),
                            value: value.to_string(),
                            line,
                            message: format!(
                                "{key}={value} is outside {min}..={max}; using {clamped}, \
                                 as RocketMQ does"
                            ),
                        });
                    }
                    set(c, u64::try_from(clamped).unwrap_or(*max));
                } else if (lo..=hi).contains(&n) {
                    set(c, u64::try_from(n).unwrap_or(*max));
                } else {
                    return Err(Error::config(key, value, expected()));
                }
            }
            Kind::Bool { set, .. } => {
                let b = parse_bool(value).ok_or_else(|| {
                    Error::config(key, value, with_line("true or false".to_string(), line))
                })?;
                set(c, b);
            }
            Kind::Text { check, set, .. } => {
                check(value).map_err(|e| Error::config(key, value, with_line(e, line)))?;
                set(c, value);
            }
        }
        Ok(())
    }

    /// Checks the field of an already built config.
    fn check(&self, c: &StoreConfig) -> Result<()> {
        match &self.kind {
            Kind::Int {
                min,
                max,
                unit,
                clamp,
                get,
                ..
            } => {
                let v = get(c);
                if v < *min || v > *max {
                    return Err(Error::config(
                        self.key,
                        v.to_string(),
                        int_expected(*min, *max, unit, *clamp),
                    ));
                }
            }
            Kind::Bool { .. } => {}
            Kind::Text { get, check, .. } => {
                if let Some(v) = get(c) {
                    check(&v).map_err(|e| Error::config(self.key, v, e))?;
                }
            }
        }
        Ok(())
    }
}

fn field_for(key: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.keys().any(|k| k == key))
}

/// True for every key ferromq recognises: the store's own (both spellings of the
/// `maped*` sizes), [`BROKER_KEYS`] and [`LEGACY_KEYS`].
pub fn is_known_key(key: &str) -> bool {
    field_for(key).is_some()
        || BROKER_KEYS.contains(&key)
        || LEGACY_KEYS.iter().any(|(k, _)| *k == key)
}

/// RocketMQ's default store root, `$HOME/store`; `None` when `HOME` is not set.
pub fn default_store_root() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join("store"))
}

/// Lowercase, with the `mapped`/`maped` spelling difference folded away: what a typo
/// most often changes.
fn fold_key(key: &str) -> String {
    key.to_ascii_lowercase().replace("mapped", "maped")
}

fn suggestion(key: &str) -> Option<&'static str> {
    let folded = fold_key(key);
    FIELDS
        .iter()
        .flat_map(Field::keys)
        .chain(BROKER_KEYS.iter().copied())
        .chain(LEGACY_KEYS.iter().map(|(k, _)| *k))
        .find(|k| fold_key(k) == folded)
}

impl StoreConfig {
    /// Every `.properties` key the store reads, both spellings of the `maped*` sizes
    /// included.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        FIELDS.iter().flat_map(Field::keys)
    }

    /// Builds a config from RocketMQ broker properties, then [validates](Self::validate) it.
    ///
    /// Absent keys keep RocketMQ's defaults; an absent `storePathRootDir` means
    /// `$HOME/store`. The historical spellings `mapedFileSizeCommitLog` and
    /// `mapedFileSizeConsumeQueue` load like the current ones (RocketMQ 4.5.2+ silently
    /// ignores them; ferromq honours them, as files written for older brokers intend).
    ///
    /// Returns the config and the warnings, each also logged with `tracing::warn!`:
    /// parse problems, unknown keys (with a suggestion when one is close), legacy 3.x keys,
    /// a clamped `diskMaxUsedSpaceRatio`, broker keys asking for features ferromq lacks.
    /// [`BROKER_KEYS`] load silently and stay in `props` for the broker.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the key as spelled in the file, the value and what was
    /// expected (with the line number), when a value does not parse or is out of range;
    /// when both spellings of a size key are present with different values; when
    /// `storePathRootDir` is absent and `HOME` is not set.
    pub fn from_properties(props: &Properties) -> Result<(StoreConfig, Vec<ConfigWarning>)> {
        load(props, default_store_root())
    }

    /// Reads a `.properties` file and builds a config from it; see
    /// [`StoreConfig::from_properties`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path when the file cannot be read; otherwise as
    /// [`StoreConfig::from_properties`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<(StoreConfig, Vec<ConfigWarning>)> {
        let props = Properties::from_file(path)?;
        StoreConfig::from_properties(&props)
    }

    /// Checks every value; the store calls this before it touches any file.
    ///
    /// Rejected: a commitlog file size under 4096 bytes or over 16 GiB; a consume-queue
    /// file size under 20 bytes or over 2 147 483 640; `maxMessageSize` 0;
    /// `defaultTopicQueueNums` 0 or over 1024; a zero interval for a loop that would
    /// busy-spin (flush, commit, clean, sync-flush timeout, page-cache busy timeout);
    /// `deleteWhen` that is not `;`-separated hours 0..=23; ratios outside 0..=100 and
    /// `diskMaxUsedSpaceRatio` outside 10..=95 (a file's value is clamped on load instead);
    /// an empty store path, several commitlog paths, an empty `brokerIP1`; an index file
    /// (`40 + 4 * maxHashSlotNum + 20 * maxIndexNum` bytes) over 2 GiB. Other integers are
    /// bounded by Java's `int`, as in RocketMQ.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] with the RocketMQ key, the value and what is expected.
    pub fn validate(&self) -> Result<()> {
        for field in FIELDS {
            field.check(self)?;
        }
        let index_bytes = INDEX_HEADER_BYTES
            + INDEX_SLOT_BYTES * u64::from(self.max_hash_slot_num)
            + INDEX_ENTRY_BYTES * u64::from(self.max_index_num);
        if index_bytes > JAVA_INT_MAX {
            return Err(Error::config(
                "maxIndexNum",
                self.max_index_num.to_string(),
                format!(
                    "an index file of at most {JAVA_INT_MAX} bytes: 40 + 4 x maxHashSlotNum \
                     ({}) + 20 x maxIndexNum is {index_bytes}",
                    self.max_hash_slot_num
                ),
            ));
        }
        Ok(())
    }

    /// Sets the field of `key` from `value` with the rules a properties file is
    /// loaded by (the same parsing, bounds and clamping), then
    /// [validates](Self::validate) the whole config. `value` is trimmed as a
    /// file's value is. On error `self` is unchanged.
    ///
    /// Returns the warnings, as loading would (a clamped
    /// `diskMaxUsedSpaceRatio`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the key, the value and what was expected, when the
    /// key is not a store key, or the value does not parse or is out of range.
    pub fn set_key(&mut self, key: &str, value: &str) -> Result<Vec<ConfigWarning>> {
        let value = super::properties::trim_blank(value);
        let field = field_for(key).ok_or_else(|| {
            Error::config(key, value, "a store key (StoreConfig::keys lists them)")
        })?;
        let mut next = self.clone();
        let mut warnings = Vec::new();
        field.apply(&mut next, key, value, None, &mut warnings)?;
        next.validate()?;
        *self = next;
        Ok(warnings)
    }

    /// The hours of `deleteWhen`, sorted and de-duplicated (`"04;16"` gives `[4, 16]`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for `deleteWhen` when it is not `;`-separated hours 0..=23.
    pub fn delete_when_hours(&self) -> Result<Vec<u8>> {
        parse_delete_when(&self.delete_when)
            .map_err(|e| Error::config("deleteWhen", self.delete_when.clone(), e))
    }

    /// The effective config as `key=value` lines with RocketMQ key names, one per field, in
    /// a fixed order. An unset `storePathCommitLog` is written as a comment. Reading the
    /// text back with [`Properties::parse`] and [`StoreConfig::from_properties`] gives an
    /// equal config (paths that are not valid UTF-8 excepted).
    pub fn to_properties(&self) -> String {
        let mut out = String::from("# ferromq store configuration (effective values)\n");
        for field in FIELDS {
            // Writing to a String cannot fail.
            let _ = match field.format(self) {
                Some(v) => writeln!(out, "{}={}", escape(field.key, true), escape(&v, false)),
                None if field.key == "storePathCommitLog" => writeln!(
                    out,
                    "# {} is not set: the commitlog is in {}",
                    field.key,
                    escape(&self.commit_log_dir().to_string_lossy(), false)
                ),
                None => writeln!(out, "# {} is not set", field.key),
            };
        }
        out
    }
}

/// [`StoreConfig::from_properties`] with the default root given (tests pass their own).
pub(crate) fn load(
    props: &Properties,
    default_root: Option<PathBuf>,
) -> Result<(StoreConfig, Vec<ConfigWarning>)> {
    let mut warnings: Vec<ConfigWarning> = props.warnings().to_vec();
    let mut config = StoreConfig::new(root_dir(props, default_root)?);
    let used = apply_fields(props, &mut config, &mut warnings)?;
    warn_unread_keys(props, &mut warnings);
    warn_tilde_paths(props, &config, &mut warnings);
    validate_as_spelled(&config, &used)?;
    for w in &warnings {
        tracing::warn!(key = %w.key, line = ?w.line, kind = ?w.kind, "{}", w.message);
    }
    Ok((config, warnings))
}

/// Canonical key -> (spelling used in the file, line), to word validation errors.
type UsedKeys = HashMap<&'static str, (String, Option<usize>)>;

/// The store root to start from: the given default, or (when the file sets
/// `storePathRootDir` itself) an empty path; an error when neither is known.
fn root_dir(props: &Properties, default_root: Option<PathBuf>) -> Result<PathBuf> {
    Ok(match default_root {
        Some(root) => root,
        None if props.contains_key("storePathRootDir") => PathBuf::new(),
        None => {
            return Err(Error::config(
                "storePathRootDir",
                "",
                "a directory path: the key is absent and HOME is not set, so RocketMQ's \
                 default $HOME/store is unknown",
            ))
        }
    })
}

/// Set every field of [`FIELDS`] the file gives (under its key or its alias;
/// both only if they mean the same value) and return the spelling and line
/// each came from.
fn apply_fields(
    props: &Properties,
    config: &mut StoreConfig,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<UsedKeys> {
    let mut used: UsedKeys = HashMap::new();
    for field in FIELDS {
        let present: Vec<(&str, &str, Option<usize>)> = field
            .keys()
            .filter_map(|k| props.get(k).map(|v| (k, v, props.line(k))))
            .collect();
        match present.as_slice() {
            [] => {}
            [(key, value, line)] => {
                field.apply(config, key, value, *line, warnings)?;
                used.insert(field.key, (key.to_string(), *line));
            }
            [first, second, ..] => {
                check_spellings_agree(field, config, *first, *second)?;
                field.apply(config, first.0, first.1, first.2, warnings)?;
                used.insert(field.key, (first.0.to_string(), first.2));
            }
        }
    }
    Ok(used)
}

/// A setting given under two spellings (its key and its alias) must mean one
/// value: an error names both when they differ.
fn check_spellings_agree(
    field: &Field,
    config: &StoreConfig,
    first: (&str, &str, Option<usize>),
    second: (&str, &str, Option<usize>),
) -> Result<()> {
    let mut a = config.clone();
    let mut b = config.clone();
    let mut scratch = Vec::new();
    field.apply(&mut a, first.0, first.1, first.2, &mut scratch)?;
    field.apply(&mut b, second.0, second.1, second.2, &mut scratch)?;
    if field.format(&a) != field.format(&b) {
        let at = |line: Option<usize>| line.map_or(String::new(), |l| format!(" (line {l})"));
        return Err(Error::config(
            format!("{} and {}", first.0, second.0),
            format!(
                "{}{} and {}{}",
                first.1,
                at(first.2),
                second.1,
                at(second.2)
            ),
            format!(
                "one value: {} and {} are two spellings of the same setting; \
                 keep one",
                first.0, second.0
            ),
        ));
    }
    Ok(())
}

/// Warn about each key the store does not read: a legacy key, an unsupported
/// broker feature turned on, or an unknown key (with a suggestion).
fn warn_unread_keys(props: &Properties, warnings: &mut Vec<ConfigWarning>) {
    for (key, value, line) in props.iter_with_lines() {
        if field_for(key).is_some() {
            continue;
        }
        let warning = |kind, message| ConfigWarning {
            kind,
            key: key.to_string(),
            value: value.to_string(),
            line,
            message,
        };
        let at = line.map_or(String::new(), |l| format!(" (line {l})"));
        if let Some((_, meaning)) = LEGACY_KEYS.iter().find(|(k, _)| *k == key) {
            warnings.push(warning(
                WarningKind::LegacyKey,
                format!("{key}={value}{at}: {meaning}"),
            ));
        } else if BROKER_KEYS.contains(&key) {
            if let Some((_, harmless, what)) = UNSUPPORTED_FEATURES
                .iter()
                .find(|(k, harmless, _)| *k == key && !value.eq_ignore_ascii_case(harmless))
            {
                warnings.push(warning(
                    WarningKind::Unsupported,
                    format!("{key}={value}{at}: {what}; the setting is ignored (only {harmless} is supported)"),
                ));
            }
        } else {
            let hint = suggestion(key)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            warnings.push(warning(
                WarningKind::UnknownKey,
                format!("unknown key `{key}`{at}: neither the store nor a RocketMQ 4.x broker reads it{hint}"),
            ));
        }
    }
}

/// Warn about a store path that starts with `~`: it is not expanded.
fn warn_tilde_paths(props: &Properties, config: &StoreConfig, warnings: &mut Vec<ConfigWarning>) {
    let root = config.store_path_root_dir.to_string_lossy();
    for (key, value) in [
        ("storePathRootDir", Some(root.as_ref())),
        ("storePathCommitLog", props.get("storePathCommitLog")),
    ] {
        if let Some(v) = value.filter(|v| *v == "~" || v.starts_with("~/")) {
            warnings.push(ConfigWarning {
                kind: WarningKind::Suspicious,
                key: key.to_string(),
                value: v.to_string(),
                line: props.line(key),
                message: format!(
                    "{key}={v}: `~` is not expanded (RocketMQ does not expand it either); \
                     this is a directory literally named `~`"
                ),
            });
        }
    }
}

/// Validate `config`, naming a bad setting by the spelling and line the file
/// used for it.
fn validate_as_spelled(config: &StoreConfig, used: &UsedKeys) -> Result<()> {
    config.validate().map_err(|e| match e {
        Error::Config {
            key,
            value,
            expected,
        } => match used.get(key.as_str()) {
            Some((spelling, line)) => {
                Error::config(spelling.clone(), value, with_line(expected, *line))
            }
            None => Error::Config {
                key,
                value,
                expected,
            },
        },
        other => other,
    })
}
