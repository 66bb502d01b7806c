//! What the machine says about its own latency, read once per run and kept
//! in the report: how many CPUs, whether a hypervisor runs them, and how an
//! idle CPU waits for work (the cpuidle driver and the guest's halt polling).
//!
//! The last one can decide a during/before ratio on its own. In a virtual
//! machine whose idle vCPUs halt (cpuidle `haltpoll` with
//! `guest_halt_poll_ns` 0, or any driver without polling), waking a halted
//! vCPU is a trip through the hypervisor, and on the nested 2-core test VM
//! that trip cost every request about 60 µs, in steps: the bench's
//! per-second p50 was 80 or 139 µs, rarely between, and any extra work on
//! an otherwise idle vCPU (a rebalance's copy, or an external `SCHED_IDLE`
//! process spinning 6 ms in every 100) moved it to 139 µs for most of its
//! seconds. With guest halt polling at 200 µs the same load ran at
//! 59–67 µs and the spinner moved nothing (docs/disruption-budget.md,
//! "Host freezes"). So the report names the setting next to the figures, and
//! says when it makes them a measure of the machine.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The facts; a field is `None` where the machine does not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs online.
    pub cpus: Option<usize>,
    /// `/proc/cpuinfo` has the `hypervisor` flag (x86), or the kernel
    /// names a hypervisor type in sysfs.
    pub hypervisor: bool,
    /// `/sys/devices/system/cpu/cpuidle/current_driver`.
    pub cpuidle_driver: Option<String>,
    /// The `haltpoll` driver's polling time before halting, in ns.
    pub guest_halt_poll_ns: Option<u64>,
}

impl Machine {
    /// Reads this machine.
    pub fn read() -> Machine {
        Machine::read_from(Path::new("/"))
    }

    /// Reads a machine whose `/proc` and `/sys` are under `root` (tests
    /// give a directory of their own).
    pub fn read_from(root: &Path) -> Machine {
        let text = |p: &str| std::fs::read_to_string(root.join(p)).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let cpuinfo = text("proc/cpuinfo").unwrap_or_default();
        let flagged = cpuinfo.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
        Machine {
            cpus: text("sys/devices/system/cpu/online").and_then(|s| count_cpus(&s)),
            hypervisor: flagged || text("sys/hypervisor/type").is_some(),
            cpuidle_driver: text("sys/devices/system/cpu/cpuidle/current_driver"),
            guest_halt_poll_ns: text("sys/module/haltpoll/parameters/guest_halt_poll_ns").and_then(|s| s.parse().ok()),
        }
    }

    /// Idle vCPUs halt without polling first, so each wake-up goes
    /// through the hypervisor (see the module docs).
    pub fn halts_without_polling(&self) -> bool {
        self.hypervisor && (self.cpuidle_driver.as_deref() != Some("haltpoll") || self.guest_halt_poll_ns == Some(0))
    }

    /// One line: "2 CPUs, under a hypervisor, cpuidle haltpoll (guest
    /// halt polling 0 ns)".
    pub fn describe(&self) -> String {
        let mut parts = vec![match self.cpus {
            Some(n) => format!("{n} CPUs"),
            None => "CPUs unknown".to_string(),
        }];
        parts.push(if self.hypervisor { "under a hypervisor" } else { "no hypervisor seen" }.to_string());
        parts.push(match (&self.cpuidle_driver, self.guest_halt_poll_ns) {
            (Some(d), Some(ns)) if d == "haltpoll" => format!("cpuidle haltpoll (guest halt polling {ns} ns)"),
            (Some(d), _) => format!("cpuidle {d}"),
            (None, _) => "no cpuidle driver".to_string(),
        });
        parts.join(", ")
    }

    /// The caution printed under [`Machine::describe`], if the machine's
    /// idle policy can move the figures by itself.
    pub fn caution(&self) -> Option<&'static str> {
        if !self.halts_without_polling() {
            return None;
        }
        Some(if self.cpuidle_driver.as_deref() == Some("haltpoll") {
            "idle vCPUs halt without polling: each wake-up is a trip through the hypervisor, and extra work on an idle vCPU (a rebalance's copy) can move every request's latency; guest halt polling (haltpoll guest_halt_poll_ns) took that step away on the test VM (docs/disruption-budget.md, Host freezes)"
        } else {
            "idle vCPUs halt without polling: each wake-up is a trip through the hypervisor, and extra work on an idle vCPU (a rebalance's copy) can move every request's latency; this kernel's idle driver is not haltpoll, so guest halt polling, which took that step away on a test VM that had it, is not available here (docs/disruption-budget.md, Host freezes)"
        })
    }
}

/// CPUs in a sysfs list such as `0-3,5`.
fn count_cpus(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.split(',') {
        n += match part.split_once('-') {
            Some((a, b)) => b.trim().parse::<usize>().ok()?.checked_sub(a.trim().parse().ok()?)? + 1,
            None => {
                part.trim().parse::<usize>().ok()?;
                1
            }
        };
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, body) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        dir
    }

    const VM_CPUINFO: &str = "processor\t: 0\nflags\t\t: fpu vme sse2 hypervisor lahf_lm\n";

    #[test]
    fn a_haltpoll_guest_without_polling_is_flagged() {
        let dir = fake(&[
            ("proc/cpuinfo", VM_CPUINFO),
            ("sys/devices/system/cpu/online", "0-1\n"),
            ("sys/devices/system/cpu/cpuidle/current_driver", "haltpoll\n"),
            ("sys/module/haltpoll/parameters/guest_halt_poll_ns", "0\n"),
        ]);
        let m = Machine::read_from(dir.path());
        assert_eq!(m, Machine { cpus: Some(2), hypervisor: true, cpuidle_driver: Some("haltpoll".into()), guest_halt_poll_ns: Some(0) });
        assert_eq!(m.describe(), "2 CPUs, under a hypervisor, cpuidle haltpoll (guest halt polling 0 ns)");
        assert!(m.caution().unwrap().contains("took that step away"));
    }

    #[test]
    fn a_polling_guest_and_bare_metal_are_not() {
        let polling = fake(&[
            ("proc/cpuinfo", VM_CPUINFO),
            ("sys/devices/system/cpu/cpuidle/current_driver", "haltpoll"),
            ("sys/module/haltpoll/parameters/guest_halt_poll_ns", "200000"),
        ]);
        assert!(Machine::read_from(polling.path()).caution().is_none());
        let metal = fake(&[
            ("proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu vme sse2\n"),
            ("sys/devices/system/cpu/online", "0-3,6,8-9"),
            ("sys/devices/system/cpu/cpuidle/current_driver", "intel_idle"),
        ]);
        let m = Machine::read_from(metal.path());
        assert_eq!((m.cpus, m.hypervisor), (Some(7), false));
        assert!(m.caution().is_none());
        assert_eq!(m.describe(), "7 CPUs, no hypervisor seen, cpuidle intel_idle");
    }

    #[test]
    fn a_guest_with_another_idle_driver_halts_without_polling() {
        let dir = fake(&[("proc/cpuinfo", VM_CPUINFO), ("sys/devices/system/cpu/cpuidle/current_driver", "acpi_idle")]);
        let m = Machine::read_from(dir.path());
        assert!(m.halts_without_polling());
        assert!(m.caution().unwrap().contains("not available here"), "no remedy this machine lacks is offered");
        let empty = fake(&[]);
        let m = Machine::read_from(empty.path());
        assert_eq!(m, Machine { cpus: None, hypervisor: false, cpuidle_driver: None, guest_halt_poll_ns: None });
        assert_eq!(m.describe(), "CPUs unknown, no hypervisor seen, no cpuidle driver");
    }

    #[test]
    fn cpu_lists_count_ranges_and_refuse_nonsense() {
        assert_eq!(count_cpus("0"), Some(1));
        assert_eq!(count_cpus("0-1"), Some(2));
        assert_eq!(count_cpus("0-3,5,7-8"), Some(7));
        assert_eq!(count_cpus("3-1"), None);
        assert_eq!(count_cpus("x"), None);
    }
}
