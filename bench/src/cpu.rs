//! The CPU time the machine spends outside the load generator while a scenario is measured.
//! With nothing but Spin serving, that is Spin's CPU per request: a figure the machine's
//! scheduling noise moves far less than throughput, so two builds can be told apart by it when
//! their requests/s overlap.

use std::time::Duration;

/// Linux reports both counters in USER_HZ ticks, 100 a second on every architecture it runs on.
const MILLIS_PER_TICK: u64 = 10;

/// The machine's busy ticks and the load generator's own, at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    machine_busy: u64,
    own: u64,
}

impl CpuSample {
    /// Reads `/proc`; `None` where it is not Linux's.
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        Some(Self {
            machine_busy: machine_busy_ticks(&stat)?,
            own: own_ticks(&own)?,
        })
    }

    /// CPU time spent since `earlier` by everything but this process.
    pub fn others_since(&self, earlier: &Self) -> Duration {
        let machine = self.machine_busy.saturating_sub(earlier.machine_busy);
        let own = self.own.saturating_sub(earlier.own);
        Duration::from_millis(MILLIS_PER_TICK * machine.saturating_sub(own))
    }
}

/// user + nice + system + irq + softirq of the first line of `/proc/stat` (guest time is
/// already inside user; idle, iowait and the hypervisor's steal are not work done here).
fn machine_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, _idle, _iowait, irq, softirq, ..] = ticks[..] else {
        return None;
    };
    Some(user + nice + system + irq + softirq)
}

/// utime + stime of `/proc/self/stat` (fields 14 and 15; the command name before them may hold
/// spaces, so counting starts after its closing parenthesis).
fn own_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_time_leaves_out_idle_iowait_and_steal() {
        let stat = "cpu  100 5 40 9000 70 3 2 800 0 0\ncpu0 50 2 20 4500 35 1 1 400 0 0\n";
        assert_eq!(machine_busy_ticks(stat), Some(150));
    }

    #[test]
    fn own_time_is_read_after_a_command_name_with_spaces() {
        let stat = "4242 (bench (x) y) S 1 4242 4242 0 -1 4194304 500 0 0 0 37 12 0 0 20 0 9 0";
        assert_eq!(own_ticks(stat), Some(49));
    }

    #[test]
    fn others_time_subtracts_the_load_generator() {
        let before = CpuSample {
            machine_busy: 1_000,
            own: 300,
        };
        let after = CpuSample {
            machine_busy: 1_500,
            own: 450,
        };
        assert_eq!(after.others_since(&before), Duration::from_millis(3_500));
    }

    #[test]
    fn this_machine_reports_its_counters() {
        if cfg!(target_os = "linux") {
            assert!(CpuSample::now().is_some());
        }
    }
}
