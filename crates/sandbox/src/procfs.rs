//! What the process backend reads from /proc: the CPU time and resident memory of a
//! whole process group (RLIMIT_CPU is per process, so an agent that forks workers would
//! otherwise multiply its budget), and sweeping every process of an agent's uid.

use rustix::process::{Pid, Signal};

/// The summed usage of one process group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GroupUsage {
    /// user + system time of live members, plus what they reaped from their children.
    pub cpu_ms: u64,
    pub rss_bytes: u64,
    pub processes: usize,
}

/// One parsed `/proc/<pid>/stat` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    pgrp: i32,
    /// utime + stime + cutime + cstime, in clock ticks.
    ticks: u64,
    rss_pages: u64,
}

fn parse_stat(line: &str) -> Option<Stat> {
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state), so field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<i64>().ok());
    Some(Stat {
        pgrp: i32::try_from(num(5)?).ok()?,
        ticks: [14, 15, 16, 17]
            .iter()
            .filter_map(|n| num(*n))
            .map(|v| v.max(0) as u64)
            .sum(),
        rss_pages: num(24)?.max(0) as u64,
    })
}

fn pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
}

/// Sums the usage of every process in group `pgid`.
pub(crate) fn group_usage(pgid: i32) -> GroupUsage {
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let page = rustix::param::page_size() as u64;
    let mut u = GroupUsage::default();
    for pid in pids() {
        let Ok(line) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(s) = parse_stat(&line) else { continue };
        if s.pgrp == pgid {
            u.cpu_ms += s.ticks * 1000 / hz;
            u.rss_bytes += s.rss_pages * page;
            u.processes += 1;
        }
    }
    u
}

/// SIGKILLs the process group; a group that is already gone is fine.
pub(crate) fn kill_group(pgid: i32) {
    if let Some(pid) = Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
}

/// SIGKILLs every process whose real uid is `uid`: the ones that left the process
/// group with setsid/setpgid. Only meaningful when `uid` belongs to one agent alone.
/// Returns how many were signalled.
pub(crate) fn kill_uid(uid: u32) -> usize {
    let mut n = 0;
    for pid in pids() {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let real_uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u32>().ok());
        // A zombie is already dead: killing it succeeds but means nothing.
        let zombie = status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|v| v.trim_start().starts_with('Z'));
        if real_uid == Some(uid) && !zombie {
            if let Some(p) = Pid::from_raw(pid) {
                if rustix::process::kill_process(p, Signal::KILL).is_ok() {
                    n += 1;
                }
            }
        }
    }
    n
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "1234 (a b) c)) S 1 1230 1230 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 555 1000000 250 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.pgrp, 1230);
        assert_eq!(s.ticks, 13);
        assert_eq!(s.rss_pages, 250);
    }

    #[test]
    fn own_group_is_found() {
        let me = rustix::process::getpgrp().as_raw_nonzero().get();
        let u = group_usage(me);
        assert!(u.processes >= 1);
        assert!(u.rss_bytes > 0);
    }
}
