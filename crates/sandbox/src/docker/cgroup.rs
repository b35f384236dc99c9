//! Reading a running container's CPU time, memory and OOM kills straight from its
//! cgroup (v1 or v2), found through `/proc/<init pid>/cgroup`. This is how the CPU time
//! budget is enforced from the host: the kernel accounts, we compare and kill. Reading
//! files costs microseconds, where the stats API takes a round trip per sample; the
//! stats API remains the fallback when the daemon is not on this host.

use std::path::{Path, PathBuf};

/// One reading of a container's cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    pub cpu_ns: u64,
    /// Current usage, or the peak where the kernel keeps one.
    pub memory_bytes: Option<u64>,
    pub oom_kills: u64,
}

/// Where to read one container's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CgroupProbe {
    V1 {
        cpuacct: PathBuf,
        memory: Option<PathBuf>,
    },
    V2 {
        dir: PathBuf,
    },
}

impl CgroupProbe {
    /// Locates the cgroup of the process `pid` under `root` (normally /sys/fs/cgroup).
    pub(crate) fn locate(root: &Path, pid: i64) -> Option<CgroupProbe> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        Self::from_proc_cgroup(root, &text)
    }

    pub(crate) fn from_proc_cgroup(root: &Path, text: &str) -> Option<CgroupProbe> {
        let mut cpuacct = None;
        let mut memory = None;
        let mut unified = None;
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let rel = path.trim_start_matches('/');
            if controllers.is_empty() {
                unified = Some(root.join(rel));
            }
            for c in controllers.split(',') {
                match c {
                    "cpuacct" => {
                        cpuacct = [controllers, "cpuacct", "cpu,cpuacct"]
                            .iter()
                            .map(|m| root.join(m).join(rel))
                            .find(|p| p.join("cpuacct.usage").exists());
                    }
                    "memory" => memory = Some(root.join("memory").join(rel)),
                    _ => {}
                }
            }
        }
        if let Some(cpuacct) = cpuacct {
            return Some(CgroupProbe::V1 { cpuacct, memory });
        }
        let dir = unified?;
        dir.join("cpu.stat")
            .exists()
            .then_some(CgroupProbe::V2 { dir })
    }

    /// Reads the counters; `None` once the cgroup is gone (the container stopped).
    pub(crate) fn sample(&self) -> Option<Sample> {
        match self {
            CgroupProbe::V1 { cpuacct, memory } => {
                let cpu_ns = read_u64(&cpuacct.join("cpuacct.usage"))?;
                let (memory_bytes, oom_kills) = match memory {
                    Some(m) => (
                        read_u64(&m.join("memory.max_usage_in_bytes")),
                        read_key(&m.join("memory.oom_control"), "oom_kill").unwrap_or(0),
                    ),
                    None => (None, 0),
                };
                Some(Sample {
                    cpu_ns,
                    memory_bytes,
                    oom_kills,
                })
            }
            CgroupProbe::V2 { dir } => {
                let cpu_ns = read_key(&dir.join("cpu.stat"), "usage_usec")?.saturating_mul(1000);
                let memory_bytes = read_u64(&dir.join("memory.peak"))
                    .or_else(|| read_u64(&dir.join("memory.current")));
                let oom_kills = read_key(&dir.join("memory.events"), "oom_kill").unwrap_or(0);
                Some(Sample {
                    cpu_ns,
                    memory_bytes,
                    oom_kills,
                })
            }
        }
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Reads `key value` from a flat-keyed cgroup file.
fn read_key(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_and_v2_layouts() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("cpu,cpuacct/docker/abc")).unwrap();
        std::fs::write(r.join("cpu,cpuacct/docker/abc/cpuacct.usage"), "1500000\n").unwrap();
        std::fs::create_dir_all(r.join("memory/docker/abc")).unwrap();
        std::fs::write(
            r.join("memory/docker/abc/memory.max_usage_in_bytes"),
            "4096",
        )
        .unwrap();
        std::fs::write(
            r.join("memory/docker/abc/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        let v1 = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/";
        let p = CgroupProbe::from_proc_cgroup(r, v1).unwrap();
        assert_eq!(
            p.sample().unwrap(),
            Sample {
                cpu_ns: 1_500_000,
                memory_bytes: Some(4096),
                oom_kills: 2
            }
        );

        std::fs::create_dir_all(r.join("system.slice/docker-x.scope")).unwrap();
        let d = r.join("system.slice/docker-x.scope");
        std::fs::write(d.join("cpu.stat"), "usage_usec 250\nuser_usec 200\n").unwrap();
        std::fs::write(d.join("memory.current"), "8192\n").unwrap();
        std::fs::write(d.join("memory.events"), "low 0\noom 1\noom_kill 1\n").unwrap();
        let p = CgroupProbe::from_proc_cgroup(r, "0::/system.slice/docker-x.scope\n").unwrap();
        let s = p.sample().unwrap();
        assert_eq!(
            (s.cpu_ns, s.memory_bytes, s.oom_kills),
            (250_000, Some(8192), 1)
        );

        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(p.sample(), None, "a removed cgroup reads as gone");
    }
}
