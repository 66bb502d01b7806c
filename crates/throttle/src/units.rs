//! Human-readable rates for decision reasons and status output.

const KIB: f64 = 1024.0;
const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Formats an optional rate the way reasons show it: `None` is
/// "unlimited", `Some(0.0)` is "paused", anything else binary units.
pub fn fmt_rate(rate_bytes_per_s: Option<f64>) -> String {
    match rate_bytes_per_s {
        None => "unlimited".to_owned(),
        Some(0.0) => "paused".to_owned(),
        Some(r) => fmt_bytes_per_s(r),
    }
}

/// Formats a rate in bytes per second with one decimal in binary units.
pub fn fmt_bytes_per_s(rate_bytes_per_s: f64) -> String {
    let r = rate_bytes_per_s;
    if r >= GIB {
        format!("{:.1} GiB/s", r / GIB)
    } else if r >= MIB {
        format!("{:.1} MiB/s", r / MIB)
    } else if r >= KIB {
        format!("{:.1} KiB/s", r / KIB)
    } else {
        format!("{r:.0} B/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_naturally() {
        assert_eq!(fmt_rate(None), "unlimited");
        assert_eq!(fmt_rate(Some(0.0)), "paused");
        assert_eq!(fmt_rate(Some(500.0)), "500 B/s");
        assert_eq!(fmt_rate(Some(256.0 * KIB)), "256.0 KiB/s");
        assert_eq!(fmt_rate(Some(1.5 * MIB)), "1.5 MiB/s");
        assert_eq!(fmt_rate(Some(2.0 * GIB)), "2.0 GiB/s");
    }
}
