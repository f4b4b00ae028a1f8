//! The machine a report was measured on: CPU, memory, kernel, and the file
//! system and device of the directory under test.
//!
//! Everything is read from `/proc` and `/sys`. A file that is missing or
//! unreadable gives `"unknown"`, never an error: a report from a container
//! or an odd kernel is still a report. The parsers take text, so they are
//! tested on samples.

use std::path::{Path, PathBuf};

/// Written where a value could not be read.
pub const UNKNOWN: &str = "unknown";

/// The machine, as far as it could be read.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MachineInfo {
    /// Host name.
    pub hostname: String,
    /// CPU model name.
    pub cpu_model: String,
    /// Logical CPUs listed in `/proc/cpuinfo` (0 if unknown).
    pub cpu_logical: usize,
    /// CPUs this process may run on.
    pub cpu_available: usize,
    /// Total memory in bytes (0 if unknown).
    pub memory_bytes: u64,
    /// Kernel: `uname -srvm` equivalent.
    pub kernel: String,
    /// Load average (1, 5, 15 min) when the run started, from `/proc/loadavg`:
    /// on a shared machine it says how much else was running.
    pub load_average: String,
    /// The directory under test and what it is stored on.
    pub disk: DiskInfo,
}

/// The file system and device behind a directory.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiskInfo {
    /// The directory, as given (canonical when it could be resolved).
    pub dir: String,
    /// Mount point of the file system holding it.
    pub mount_point: String,
    /// File-system type (`ext4`, `xfs`, `btrfs`, ...).
    pub fs_type: String,
    /// Mount source (`/dev/nvme0n1p2`, ...).
    pub source: String,
    /// Mount options.
    pub mount_options: String,
    /// Whole block device the file system is on (`nvme0n1`, `md0`, ...).
    pub device: String,
    /// `/sys/block/<dev>/device/model`.
    pub device_model: String,
    /// `/sys/block/<dev>/queue/rotational`: `"yes"`, `"no"` or unknown.
    pub rotational: String,
    /// Active I/O scheduler from `/sys/block/<dev>/queue/scheduler`.
    pub scheduler: String,
    /// RAID level when the device is an md array (`raid10`, ...), or the
    /// profiles of a multi-device btrfs (`btrfs data raid10, metadata raid10`).
    pub raid_level: String,
    /// Member devices of the md array or btrfs, if any; a loop device names
    /// its backing file (`loop0 (file /x/img0)`).
    pub raid_members: Vec<String>,
}

impl MachineInfo {
    /// Read everything about this machine and the directory `dir`.
    pub fn collect(dir: &Path) -> MachineInfo {
        let cpuinfo = read("/proc/cpuinfo");
        let (cpu_model, cpu_logical) = cpuinfo
            .as_deref()
            .map(parse_cpuinfo)
            .unwrap_or_else(|| (UNKNOWN.to_string(), 0));
        MachineInfo {
            hostname: hostname(),
            cpu_model,
            cpu_logical,
            cpu_available: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            memory_bytes: read("/proc/meminfo")
                .as_deref()
                .and_then(parse_meminfo_total)
                .unwrap_or(0),
            kernel: kernel(),
            load_average: read("/proc/loadavg")
                .as_deref()
                .and_then(parse_loadavg)
                .unwrap_or_else(|| UNKNOWN.to_string()),
            disk: DiskInfo::collect(dir),
        }
    }

    /// Memory in GiB with one decimal, or unknown.
    pub fn memory_display(&self) -> String {
        if self.memory_bytes == 0 {
            UNKNOWN.to_string()
        } else {
            format!("{:.1} GiB", self.memory_bytes as f64 / (1u64 << 30) as f64)
        }
    }
}

impl DiskInfo {
    /// Find the mount holding `dir` and the block device under it.
    pub fn collect(dir: &Path) -> DiskInfo {
        let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut info = DiskInfo {
            dir: canonical.display().to_string(),
            mount_point: UNKNOWN.to_string(),
            fs_type: UNKNOWN.to_string(),
            source: UNKNOWN.to_string(),
            mount_options: UNKNOWN.to_string(),
            device: UNKNOWN.to_string(),
            device_model: UNKNOWN.to_string(),
            rotational: UNKNOWN.to_string(),
            scheduler: UNKNOWN.to_string(),
            raid_level: "none".to_string(),
            raid_members: Vec::new(),
        };
        let Some(mountinfo) = read("/proc/self/mountinfo") else {
            info.raid_level = UNKNOWN.to_string();
            return info;
        };
        let mounts = parse_mountinfo(&mountinfo);
        let Some(mount) = find_mount(&mounts, &canonical) else {
            info.raid_level = UNKNOWN.to_string();
            return info;
        };
        info.mount_point = mount.mount_point.clone();
        info.fs_type = mount.fs_type.clone();
        info.source = mount.source.clone();
        info.mount_options = mount.options.clone();

        let btrfs = if mount.fs_type == "btrfs" {
            btrfs_raid(Path::new("/sys/fs/btrfs"), &mount.source)
        } else {
            None
        };
        if let Some(b) = &btrfs {
            info.raid_level = b.level.clone();
            info.raid_members = b.members.iter().map(|m| with_backing(m)).collect();
        }
        let sys = block_device_dir(&mount.major_minor, &mount.source).or_else(|| {
            // btrfs reports an anonymous device number: describe its first member.
            let first = btrfs.as_ref()?.members.first()?;
            std::fs::canonicalize(Path::new("/sys/class/block").join(first)).ok()
        });
        let Some(sys) = sys else {
            info.raid_level = UNKNOWN.to_string();
            return info;
        };
        let name = sys
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| UNKNOWN.to_string());
        info.device_model = read_trimmed(sys.join("device/model"))
            .or_else(|| read_trimmed(sys.join("md/level")).map(|l| format!("md {l}")))
            .or_else(|| read_trimmed(sys.join("dm/name")).map(|n| format!("device-mapper {n}")))
            .or_else(|| {
                read_trimmed(sys.join("loop/backing_file")).map(|f| format!("loop over file {f}"))
            })
            .unwrap_or_else(|| UNKNOWN.to_string());
        info.rotational = match read_trimmed(sys.join("queue/rotational")).as_deref() {
            Some("1") => "yes".to_string(),
            Some("0") => "no".to_string(),
            _ => UNKNOWN.to_string(),
        };
        info.scheduler = read_trimmed(sys.join("queue/scheduler"))
            .map(|s| parse_scheduler(&s))
            .unwrap_or_else(|| UNKNOWN.to_string());
        if name.starts_with("md") {
            let raid = read("/proc/mdstat").and_then(|t| parse_mdstat(&t, &name));
            match raid {
                Some(r) => {
                    info.raid_level = r.level;
                    info.raid_members = r.members.iter().map(|m| with_backing(m)).collect();
                }
                None => {
                    info.raid_level =
                        read_trimmed(sys.join("md/level")).unwrap_or_else(|| UNKNOWN.to_string());
                }
            }
        }
        info.device = name;
        info
    }
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the file system's device.
    pub major_minor: String,
    /// Where it is mounted (octal escapes decoded).
    pub mount_point: String,
    /// Per-mount options.
    pub options: String,
    /// File-system type.
    pub fs_type: String,
    /// Mount source (device path or a name).
    pub source: String,
}

/// Parse `/proc/self/mountinfo`; lines that do not parse are skipped.
///
/// Format (proc(5)): `id parent major:minor root mount-point options
/// [optional fields...] - fs-type source super-options`.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            if sep < 6 || fields.len() < sep + 3 {
                return None;
            }
            Some(MountEntry {
                major_minor: fields[2].to_string(),
                mount_point: unescape_octal(fields[4]),
                options: fields[5].to_string(),
                fs_type: fields[sep + 1].to_string(),
                source: unescape_octal(fields[sep + 2]),
            })
        })
        .collect()
}

/// The mount whose mount point is the longest path prefix of `path`; among
/// equal ones the last (it is mounted over the earlier).
pub fn find_mount<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    let mut best: Option<&MountEntry> = None;
    for m in mounts {
        if path.starts_with(Path::new(&m.mount_point))
            && best.is_none_or(|b| m.mount_point.len() >= b.mount_point.len())
        {
            best = Some(m);
        }
    }
    best
}

/// Decode the `\ooo` escapes mountinfo uses for spaces, tabs and backslashes.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let d = &bytes[i + 1..i + 4];
            if d.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (u32::from(d[0] - b'0') << 6)
                    | (u32::from(d[1] - b'0') << 3)
                    | u32::from(d[2] - b'0');
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An md array as `/proc/mdstat` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaidInfo {
    /// Level (`raid0`, `raid1`, `raid10`, `raid5`, `linear`, ...), or `inactive`.
    pub level: String,
    /// Member devices, role numbers and flags removed (`sdb1`, ...).
    pub members: Vec<String>,
}

/// Find array `md` (`md0`, `md127`) in `/proc/mdstat` text.
///
/// A line looks like `md0 : active raid10 sdd1[3] sdc1[2] sdb1[1] sda1[0]`,
/// possibly with `(auto-read-only)` after `active`, or `inactive` and no level.
pub fn parse_mdstat(text: &str, md: &str) -> Option<RaidInfo> {
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != md {
            continue;
        }
        let mut level = None;
        let mut members = Vec::new();
        for token in rest.split_whitespace() {
            if token == "active" || token.starts_with('(') {
                continue;
            }
            if token == "inactive" {
                level.get_or_insert_with(|| "inactive".to_string());
                continue;
            }
            if let Some(bracket) = token.find('[') {
                members.push(token[..bracket].to_string());
            } else if level.is_none() {
                level = Some(token.to_string());
            }
        }
        members.reverse();
        return Some(RaidInfo {
            level: level.unwrap_or_else(|| UNKNOWN.to_string()),
            members,
        });
    }
    None
}

/// `name`, with ` (file F)` when it is a loop device backed by file `F`.
fn with_backing(name: &str) -> String {
    match read_trimmed(
        Path::new("/sys/class/block")
            .join(name)
            .join("loop/backing_file"),
    ) {
        Some(f) => format!("{name} (file {f})"),
        None => name.to_string(),
    }
}

/// The btrfs whose devices include `source` (`/dev/loop3`), from a sysfs
/// tree like `/sys/fs/btrfs`: `<uuid>/devices/<dev>` names its members and
/// `<uuid>/allocation/{data,metadata}/<profile>/` its RAID profiles
/// (`single`, `dup`, `raid0`, `raid1`, `raid10`, `raid5`, `raid6`, `raid1c3`, ...).
/// Level: `btrfs data raid10, metadata raid10` (profiles joined by `+` while
/// a balance converts).
pub fn btrfs_raid(sysfs: &Path, source: &str) -> Option<RaidInfo> {
    let dev = Path::new(source).file_name()?;
    let fs = std::fs::read_dir(sysfs)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.join("devices").join(dev).exists())?;
    let profiles = |kind: &str| -> String {
        let mut v: Vec<String> = std::fs::read_dir(fs.join("allocation").join(kind))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        if v.is_empty() {
            UNKNOWN.to_string()
        } else {
            v.join("+")
        }
    };
    let mut members: Vec<String> = std::fs::read_dir(fs.join("devices"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    members.sort();
    Some(RaidInfo {
        level: format!(
            "btrfs data {}, metadata {}",
            profiles("data"),
            profiles("metadata")
        ),
        members,
    })
}

/// CPU model and number of logical CPUs from `/proc/cpuinfo` text.
pub fn parse_cpuinfo(text: &str) -> (String, usize) {
    let mut model = None;
    let mut count = 0;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        if key == "processor" {
            count += 1;
        }
        // x86 says "model name"; some ARM and RISC-V kernels "Hardware", "uarch" or "cpu model".
        if model.is_none()
            && matches!(key, "model name" | "cpu model" | "Hardware" | "uarch")
            && !value.is_empty()
        {
            model = Some(value.to_string());
        }
    }
    (model.unwrap_or_else(|| UNKNOWN.to_string()), count)
}

/// `MemTotal` in bytes from `/proc/meminfo` text.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value * 1024),
        Some(_) => None,
    }
}

/// The three load averages of `/proc/loadavg` text: `0.52 0.58 0.59 1/467 1234` -> `0.52 0.58 0.59`.
pub fn parse_loadavg(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split_whitespace().take(3).collect();
    (parts.len() == 3 && parts.iter().all(|p| p.parse::<f64>().is_ok())).then(|| parts.join(" "))
}

/// The load average now (`1 5 15` minutes), or unknown: reports quote it at
/// the end of a run next to the machine section's value at the start.
pub fn load_average_now() -> String {
    read("/proc/loadavg")
        .as_deref()
        .and_then(parse_loadavg)
        .unwrap_or_else(|| UNKNOWN.to_string())
}

/// The active scheduler is the bracketed one: `mq-deadline [none] kyber` -> `none`.
pub fn parse_scheduler(text: &str) -> String {
    text.split_whitespace()
        .find_map(|t| t.strip_prefix('[').and_then(|t| t.strip_suffix(']')))
        .map(str::to_string)
        .unwrap_or_else(|| text.trim().to_string())
}

/// `/sys/block/<dev>` of the whole device behind a mount: from `major:minor`
/// through `/sys/dev/block`, else from the source's name; a partition is
/// replaced by its parent disk.
fn block_device_dir(major_minor: &str, source: &str) -> Option<PathBuf> {
    let by_number = if major_minor.starts_with("0:") {
        None
    } else {
        std::fs::canonicalize(Path::new("/sys/dev/block").join(major_minor)).ok()
    };
    let dev = by_number.or_else(|| {
        let name = Path::new(source).file_name()?;
        std::fs::canonicalize(Path::new("/sys/class/block").join(name)).ok()
    })?;
    if dev.join("partition").exists() {
        dev.parent().map(Path::to_path_buf)
    } else {
        Some(dev)
    }
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    read(path)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The host name, from the kernel, else `$HOSTNAME`, else unknown.
pub fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| UNKNOWN.to_string())
}

/// `uname -srvm`, read from `/proc/sys/kernel`.
fn kernel() -> String {
    let parts = [
        read_trimmed("/proc/sys/kernel/ostype"),
        read_trimmed("/proc/sys/kernel/osrelease"),
        read_trimmed("/proc/sys/kernel/version"),
    ];
    if parts.iter().all(Option::is_none) {
        return UNKNOWN.to_string();
    }
    let mut out: Vec<String> = parts
        .into_iter()
        .map(|p| p.unwrap_or_else(|| UNKNOWN.to_string()))
        .collect();
    out.push(std::env::consts::ARCH.to_string());
    out.join(" ")
}

/// `dir` when given, else a new temporary directory. The guard (`Some` for a
/// temporary directory) deletes it when dropped: keep it alive while the
/// directory is used.
///
/// # Errors
/// When no temporary directory can be created.
pub fn dir_or_temp(
    dir: Option<&std::path::Path>,
) -> crate::error::Result<(std::path::PathBuf, Option<tempfile::TempDir>)> {
    match dir {
        Some(d) => Ok((d.to_path_buf(), None)),
        None => {
            let tmp = tempfile::tempdir()
                .map_err(|e| crate::error::BenchError::io("creating a temp dir", e))?;
            Ok((tmp.path().to_path_buf(), Some(tmp)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btrfs_profiles_and_members_from_sysfs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("features")).unwrap();
        let fs = root.join("0b6c1f2e-aaaa-bbbb-cccc-123456789abc");
        for d in ["loop2", "loop3", "loop4", "loop5"] {
            std::fs::create_dir_all(fs.join("devices").join(d)).unwrap();
        }
        for d in ["data/raid10", "metadata/raid10", "system/raid10"] {
            std::fs::create_dir_all(fs.join("allocation").join(d)).unwrap();
        }
        std::fs::write(fs.join("allocation/data/total_bytes"), "1\n").unwrap();
        let r = btrfs_raid(root, "/dev/loop4").unwrap();
        assert_eq!(r.level, "btrfs data raid10, metadata raid10");
        assert_eq!(r.members, vec!["loop2", "loop3", "loop4", "loop5"]);
        assert_eq!(btrfs_raid(root, "/dev/sda1"), None);
    }

    const MOUNTINFO: &str = "\
22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw,errors=remount-ro
25 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
31 22 259:3 / /data rw,noatime shared:20 master:3 - xfs /dev/nvme0n1p1 rw,attr2,inode64
32 31 9:0 / /data/raid rw,noatime - ext4 /dev/md0 rw,stripe=256
33 22 0:45 / /mnt/my\\040disk rw - btrfs /dev/sdc rw,space_cache
34 22 8:2 / /data rw - tmpfs tmpfs rw
garbage line
";

    #[test]
    fn mountinfo_fields_and_optional_fields() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 6);
        assert_eq!(m[0].fs_type, "ext4");
        assert_eq!(m[0].source, "/dev/sda2");
        assert_eq!(m[0].major_minor, "8:2");
        assert_eq!(m[2].fs_type, "xfs");
        assert_eq!(m[2].source, "/dev/nvme0n1p1");
        assert_eq!(m[2].options, "rw,noatime");
        assert_eq!(m[4].mount_point, "/mnt/my disk");
    }

    #[test]
    fn longest_prefix_wins_and_later_mount_shadows() {
        let m = parse_mountinfo(MOUNTINFO);
        let find = |p: &str| find_mount(&m, Path::new(p)).map(|e| e.mount_point.clone());
        assert_eq!(find("/home/x").as_deref(), Some("/"));
        assert_eq!(find("/data/raid/store").as_deref(), Some("/data/raid"));
        // /data was mounted over by the tmpfs at line 34.
        assert_eq!(
            find_mount(&m, Path::new("/data/x")).unwrap().fs_type,
            "tmpfs"
        );
        // Component-wise: /database is not under /data.
        assert_eq!(find("/database").as_deref(), Some("/"));
        assert_eq!(find("/mnt/my disk/a").as_deref(), Some("/mnt/my disk"));
        assert!(find_mount(&[], Path::new("/")).is_none());
    }

    const MDSTAT: &str = "\
Personalities : [raid10] [raid1] [linear]
md1 : active (auto-read-only) raid1 sdf1[1] sde1[0]
      1047552 blocks super 1.2 [2/2] [UU]

md0 : active raid10 sdd1[3] sdc1[2] sdb1[1] sda1[0](F)
      2093056 blocks super 1.2 512K chunks 2 near-copies [4/4] [UUUU]

md127 : inactive sdg[0](S)
      1048576 blocks

unused devices: <none>
";

    #[test]
    fn mdstat_levels_and_members() {
        let r = parse_mdstat(MDSTAT, "md0").unwrap();
        assert_eq!(r.level, "raid10");
        assert_eq!(r.members, vec!["sda1", "sdb1", "sdc1", "sdd1"]);
        let r = parse_mdstat(MDSTAT, "md1").unwrap();
        assert_eq!(r.level, "raid1");
        assert_eq!(r.members, vec!["sde1", "sdf1"]);
        let r = parse_mdstat(MDSTAT, "md127").unwrap();
        assert_eq!(r.level, "inactive");
        assert_eq!(r.members, vec!["sdg"]);
        assert!(parse_mdstat(MDSTAT, "md9").is_none());
        assert!(parse_mdstat("", "md0").is_none());
    }

    #[test]
    fn cpuinfo_meminfo_scheduler() {
        let cpu = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6248\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6248\n";
        assert_eq!(
            parse_cpuinfo(cpu),
            ("Intel(R) Xeon(R) Gold 6248".to_string(), 2)
        );
        assert_eq!(parse_cpuinfo("").0, UNKNOWN);
        let arm = "processor : 0\nBogoMIPS : 50.00\n\nHardware : BCM2835\n";
        assert_eq!(parse_cpuinfo(arm), ("BCM2835".to_string(), 1));
        assert_eq!(
            parse_meminfo_total("MemTotal:       24684544 kB\nMemFree: 1 kB\n"),
            Some(24684544 * 1024)
        );
        assert_eq!(parse_meminfo_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_scheduler("mq-deadline [none] kyber"), "none");
        assert_eq!(parse_scheduler("none"), "none");
        assert_eq!(
            parse_loadavg("3.90 2.88 1.35 4/301 25290\n").as_deref(),
            Some("3.90 2.88 1.35")
        );
        assert_eq!(parse_loadavg("garbage"), None);
    }

    #[test]
    fn collect_never_panics() {
        let info = MachineInfo::collect(Path::new("/definitely/not/here"));
        assert!(!info.kernel.is_empty());
        let here = MachineInfo::collect(&std::env::temp_dir());
        assert!(!here.disk.fs_type.is_empty());
    }
}
