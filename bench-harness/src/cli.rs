//! Command-line flags several subcommands share, flattened into each
//! subcommand's flags with `#[command(flatten)]`.

use std::path::PathBuf;

/// Folder the report folders go into when `--out` is not given.
pub const DEFAULT_OUT: &str = "results";

/// `--json`: print exactly one JSON object on stdout (`store`, `broker`,
/// `recover`, `disk`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::Args)]
pub struct JsonFlag {
    /// Print exactly one JSON object on stdout (progress and summary go to stderr).
    #[arg(long)]
    pub json: bool,
}

/// `--out`: where the report folder is written (`store`, `sweep`, `compare`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct OutDir {
    /// Folder the report folder is written into.
    #[arg(long, default_value = DEFAULT_OUT)]
    pub out: PathBuf,
}

impl Default for OutDir {
    fn default() -> Self {
        OutDir {
            out: PathBuf::from(DEFAULT_OUT),
        }
    }
}

/// The report folder of `sweep` and `compare`: where it goes, and whether
/// stdout shows only its `results.json` path.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ReportOut {
    /// Folder the report folder is written into.
    #[arg(long, default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    /// Print the report folder's `results.json` path and nothing else on stdout.
    #[arg(long)]
    pub quiet: bool,
}

/// `--dir`: the directory on the disk under test (`store`, `recover`, `disk`).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct DiskDir {
    /// Directory on the disk under test; the stores and scratch files go into
    /// fresh folders in it, removed afterwards. Default: a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Stores the harness creates itself (`sweep`, `compare`): where the stores
/// of started brokers and engine points go, their commitlog file size,
/// where the broker binaries are.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct StartedBrokers {
    /// Directory on the disk under test; every started broker (`--*-props`)
    /// and every engine point gets a fresh store in it. Default: a temporary
    /// directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Commitlog files of 64 MiB instead of RocketMQ's 1 GiB, for started
    /// brokers and engine points.
    #[arg(long = "small-files")]
    pub small_files: bool,
    /// Folder holding ferromq-namesrv and ferromq-broker (for `--*-props`).
    /// Default: the folder of this executable, then `$PATH`.
    #[arg(long = "bin-dir")]
    pub bin_dir: Option<PathBuf>,
}

/// Parse a swept key with its values, `KEY=V1,V2,...` (`--param` of `sweep`
/// and `compare`): `check_key` accepts the key or says why not, then the
/// values are split on commas (at least one).
///
/// # Errors
///
/// Without `=`, when `check_key` refuses the key, or without values.
pub fn parse_param_with(
    s: &str,
    check_key: impl FnOnce(&str) -> Result<(), String>,
) -> Result<(String, Vec<String>), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=V1,V2,..."))?;
    let k = k.trim();
    check_key(k)?;
    let vals: Vec<String> = v
        .split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect();
    if vals.is_empty() {
        return Err(format!("`{s}` has no values"));
    }
    Ok((k.to_string(), vals))
}
