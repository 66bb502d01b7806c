//! INFO's `stats` and `commandstats` sections: counters kept by the
//! router since it started.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands: AtomicU64,
    pub error_replies: AtomicU64,
    /// Per command: calls, microseconds, calls answered with an error.
    per_command: Mutex<BTreeMap<&'static str, (u64, u64, u64)>>,
}

impl Stats {
    /// One command answered after `micros`, with an error or not.
    pub fn command(&self, name: &'static str, micros: u64, failed: bool) {
        self.commands.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.error_replies.fetch_add(1, Ordering::Relaxed);
        }
        let mut per = self.per_command.lock();
        let entry = per.entry(name).or_default();
        entry.0 += 1;
        entry.1 += micros;
        entry.2 += failed as u64;
    }

    /// The `# Stats` section's fields (`ops_last_second` from the latency
    /// window; the channels, patterns and shard channels this router's
    /// clients subscribe to).
    pub fn section(&self, ops_last_second: u64, [channels, patterns, shard]: [usize; 3], [_, keys, items, prefixes]: [usize; 4]) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{ops_last_second}\r\nrejected_connections:{}\r\npubsub_channels:{channels}\r\npubsub_patterns:{patterns}\r\npubsubshard_channels:{shard}\r\ntracking_total_keys:{keys}\r\ntracking_total_items:{items}\r\ntracking_total_prefixes:{prefixes}\r\ntotal_error_replies:{}\r\n\r\n",
            load(&self.connections),
            load(&self.commands),
            load(&self.rejected_connections),
            load(&self.error_replies),
        )
    }

    /// The `# Commandstats` section, Redis 7.0's fields (every error
    /// reply counts as a failed call; none as rejected).
    pub fn command_section(&self) -> String {
        let mut text = String::from("# Commandstats\r\n");
        for (name, (calls, usec, failed)) in self.per_command.lock().iter() {
            let per_call = if *calls == 0 { 0.0 } else { *usec as f64 / *calls as f64 };
            text += &format!("cmdstat_{name}:calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls=0,failed_calls={failed}\r\n");
        }
        text + "\r\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_commands_and_their_time() {
        let stats = Stats::default();
        stats.command("get", 10, false);
        stats.command("get", 20, true);
        stats.command("set", 5, false);
        assert!(stats.section(7, [0; 3], [0; 4]).contains("total_commands_processed:3\r\ninstantaneous_ops_per_sec:7\r\n"));
        assert!(stats.section(0, [1, 2, 3], [1, 4, 5, 6]).contains("tracking_total_keys:4\r\ntracking_total_items:5\r\ntracking_total_prefixes:6\r\ntotal_error_replies:1\r\n"));
        assert_eq!(
            stats.command_section(),
            "# Commandstats\r\ncmdstat_get:calls=2,usec=30,usec_per_call=15.00,rejected_calls=0,failed_calls=1\r\ncmdstat_set:calls=1,usec=5,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n\r\n"
        );
    }
}
